"""The edge agent against the real Mosquitto: order, no loss, backlog after a cut-off, status and will.

What a subscriber receives is compared sample by sample (`seq` per station), so a loss, a duplicate
or a reordering shows as a list that is not 0, 1, 2, ...
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from test_agent_support import (
    AgentProcess,
    RunningAgent,
    Subscriber,
    backlog_of,
    contiguous,
    run_agent_for,
    wait_for,
    write_config,
)

from shopfloor.stack import free_port

pytestmark = pytest.mark.servers


def test_samples_arrive_in_order_and_nothing_is_lost(stack, plant_id, tmp_path):
    watcher = Subscriber(stack.mosquitto.url, plant_id)
    agent = run_agent_for(write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                                       stations=3), 1.5)
    wait_for(lambda: watcher.received() >= agent.produced, 10, "every sample at the subscriber")
    seqs = watcher.seqs()
    watcher.close()
    assert sorted(seqs) == ["s0", "s1", "s2"]
    assert contiguous(seqs), seqs
    assert sum(map(len, seqs.values())) == agent.produced >= 3 * 15
    assert backlog_of(tmp_path / "outbox.sqlite") == 0


def test_backlog_from_a_cut_off_agent_restarted_meanwhile_arrives_in_order_as_batches(stack, plant_id,
                                                                                     tmp_path):
    closed = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there: the agent is cut off
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=closed, stations=3)
    first = run_agent_for(config, 1.0)
    second = run_agent_for(config, 0.8)  # restarted while still cut off: seq goes on from disk
    waiting = backlog_of(tmp_path / "outbox.sqlite")
    assert waiting == first.produced + second.produced > 3 * 25

    watcher = Subscriber(stack.mosquitto.url, plant_id)
    running = RunningAgent(write_config(config, plant=plant_id, mqtt_url=stack.mosquitto.url, stations=3,
                                        mqtt_extra="window = 4"))
    widest = 0
    deadline = time.monotonic() + 15
    while watcher.received() < waiting and time.monotonic() < deadline:
        widest = max(widest, len(running.agent.inflight))
        time.sleep(0.002)
    third = running.stop()
    wait_for(lambda: watcher.received() >= waiting + third.produced, 10, "backlog and live samples")
    seqs = watcher.seqs()
    batches = [len(samples) for _, samples in watcher.telemetry]
    watcher.close()
    assert contiguous(seqs), seqs  # in order per station, across both restarts, nothing lost or doubled
    assert sum(map(len, seqs.values())) == first.produced + second.produced + third.produced
    assert max(batches) > 20 and len(batches) < waiting / 10  # the backlog went as batches
    assert widest <= 4 + 3  # window, plus the messages of one outbox read
    assert backlog_of(tmp_path / "outbox.sqlite") == 0


def test_broker_stopped_and_started_again_loses_nothing(own_stack, plant_id, tmp_path):
    watcher = Subscriber(own_stack.mosquitto.url, plant_id, client_id="persistent-watcher", persistent=True)
    running = RunningAgent(write_config(tmp_path / "agent.toml", plant=plant_id,
                                        mqtt_url=own_stack.mosquitto.url, stations=2))
    wait_for(lambda: watcher.received() > 10, 10, "live samples")
    own_stack.mosquitto.stop()
    wait_for(lambda: running.agent.outbox.backlog > 20, 10, "a backlog while the broker is away")
    own_stack.mosquitto.start()
    wait_for(lambda: running.agent.connected and running.agent.outbox.backlog < 5, 15, "the backlog drained")
    agent = running.stop()
    wait_for(lambda: watcher.received() >= agent.produced, 15, "every sample at the subscriber")
    seqs = watcher.seqs()
    watcher.close()
    # a message in flight when the broker stopped may arrive twice (at least once), never out of order
    assert {station: sorted(set(values)) for station, values in seqs.items()} == \
        {station: list(range(max(values) + 1)) for station, values in seqs.items()}
    assert sum(max(values) + 1 for values in seqs.values()) == agent.produced


def test_status_is_retained_and_the_will_says_offline_after_sigkill(stack, plant_id, tmp_path):
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url, stations=2)
    # telemetry needs a taker: with none the broker answers "No matching subscribers" and the agent
    # reports that as a problem in its status (it keeps those samples and resends them)
    taker = Subscriber(stack.mosquitto.url, plant_id, client_id="taker")
    agent = AgentProcess(config, tmp_path / "agent.log")  # the plain CLI, as a line PC runs it
    agent.wait_connected()
    late = Subscriber(stack.mosquitto.url, plant_id, client_id="late")  # joins after the status was sent
    status, retained = wait_for(lambda: late.status and late.status[0], 10, "the retained status")
    assert retained and status["online"] is True and status["v"] == 1
    assert status["stations"] == ["s0", "s1"] and status["version"] and status["problems"] == []
    agent.kill()
    offline = wait_for(lambda: [s for s, _ in late.status if s["online"] is False], 15, "the will")
    assert offline[0]["stations"] == ["s0", "s1"]
    late.close()
    after = Subscriber(stack.mosquitto.url, plant_id, client_id="after")
    status, retained = wait_for(lambda: after.status and after.status[-1], 10, "the retained will")
    after.close()
    taker.close()
    assert retained and status["online"] is False


def test_sigterm_sends_everything_then_says_offline(stack, plant_id, tmp_path):
    watcher = Subscriber(stack.mosquitto.url, plant_id)
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url, stations=2)
    agent = AgentProcess(config, tmp_path / "agent.log")
    agent.wait_connected()
    wait_for(lambda: watcher.received() > 20, 10, "samples")
    assert agent.terminate() == 0, agent.log()
    assert backlog_of(tmp_path / "outbox.sqlite") == 0
    wait_for(lambda: watcher.status and watcher.status[-1][0]["online"] is False, 5, "offline status")
    assert watcher.status[-1][0]["backlog"] == 0
    time.sleep(0.2)
    assert contiguous(watcher.seqs())
    watcher.close()


def test_unwritable_outbox_is_one_clear_error_line(tmp_path, plant_id):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url="mqtt://127.0.0.1:1",
                          outbox=str(blocker / "outbox.sqlite"))
    done = subprocess.run([sys.executable, "-m", "shopfloor", "agent", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: outbox ") and "writable" in lines[0], done.stderr
