"""Issue 2 end to end: agents -> Mosquitto -> collector -> InfluxDB, every sample stored exactly once.

Two agents run at 20 Hz; one of them starts cut off from the broker (its samples wait in its outbox)
and is restarted pointing at the broker, so live samples and a drained backlog meet in the collector.
The collector is the real `shopfloor collector run` child process.
"""

from __future__ import annotations

import pytest
from conftest import wait_until
from support import stored_seqs, stored_total
from test_agent_support import RunningAgent, run_agent_for, write_config

from shopfloor.stack import free_port

pytestmark = pytest.mark.servers


def test_every_sample_the_agents_produced_is_stored_exactly_once(stack, store, plant_id, tmp_path,
                                                                  collector_process):
    collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0,
                      client_id=f"c{plant_id}")
    url = stack.mosquitto.url
    cut_off = write_config(tmp_path / "b.toml", plant=plant_id, agent="b", outbox="b.sqlite",
                           mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                           stations={f"b{i}": f'{{ kind = "simulated", cycle_s = 0.1, seed = {i} }}'
                                     for i in range(2)})
    live = RunningAgent(write_config(tmp_path / "a.toml", plant=plant_id, agent="a", outbox="a.sqlite",
                                     mqtt_url=url, stations=3))
    offline = run_agent_for(cut_off, 1.0)
    back = RunningAgent(write_config(cut_off, plant=plant_id, agent="b", outbox="b.sqlite", mqtt_url=url,
                                     stations={f"b{i}": f'{{ kind = "simulated", cycle_s = 0.1, seed = {i} }}'
                                               for i in range(2)}))
    wait_until(lambda: back.agent.outbox.backlog < 5, 15, "agent b's backlog drained", every_s=0.05)
    a, b = live.stop(), back.stop()

    produced = a.produced + offline.produced + b.produced
    wait_until(lambda: stored_total(store, plant_id) >= produced, 30, f"{produced} points")
    seqs = stored_seqs(store, plant_id)
    assert sorted(seqs) == ["b0", "b1", "s0", "s1", "s2"]
    for station, values in seqs.items():  # points per station = samples produced, each exactly once
        assert values == list(range(len(values))), station
    assert sum(map(len, seqs.values())) == produced
    assert a.outbox.backlog == b.outbox.backlog == 0
