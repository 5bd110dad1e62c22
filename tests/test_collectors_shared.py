"""Collectors sharing a broker: three in one shared subscription, one SIGKILLed, loses nothing; and
their persistent session's expiry default is one value.

The collector's session expiry used to be 3600 s (collector/config.py) while every other persistent
session used shopfloor/mqtt.py's 24 h (issue 13): a collector away between one hour and a day lost its
queue. The default is now owned by shopfloor/mqtt.py alone.

The SIGKILL runs on the real Mosquitto, InfluxDB and three `shopfloor collector run` processes, each
counted through its own /metrics. The members' sessions expire at once (`--session-expiry 0`, what
docs/DESIGN.md §3 asks of a member that may be gone for good: an offline persistent member keeps
receiving its share), so the broker hands the killed one's share to the two left, and the agent resends
what the killed one had taken but not receipted.
"""

from __future__ import annotations

import httpx
import pytest
from test_agent_support import RunningAgent, wait_for, write_config
from test_collector_faults import _metrics
from test_receipts import _expect_stored_once

from collector.config import CollectorConfig
from shopfloor.mqtt import DEFAULT_SESSION_EXPIRY_S
from shopfloor.stack import free_port


def test_the_collector_session_expiry_default_is_the_one_of_shopfloor_mqtt():
    assert CollectorConfig().session_expiry_s == DEFAULT_SESSION_EXPIRY_S == 24 * 3600


def _written(port: int) -> int:
    """Samples this collector wrote to InfluxDB, from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return int(_metrics(text)["shopfloor_collector_samples_written_total"])


@pytest.mark.servers
def test_one_of_three_shared_collectors_sigkilled_loses_nothing_and_the_two_left_take_its_share(
        stack, store, plant_id, tmp_path, collector_process):
    ports = [free_port() for _ in range(3)]
    collectors = [collector_process(stack, store.database, client_id=f"c{n}{plant_id}", group=f"g{plant_id}",
                                    session_expiry=0, http_port=port) for n, port in enumerate(ports)]
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url, stations=4,
                          delete_on="receipt", extra="receipt_timeout_s = 1.0\nreceipt_max_s = 1.0")
    running = RunningAgent(config)
    agent = running.agent
    wait_for(lambda: all(_written(port) > 20 for port in ports), 20, "all three collectors writing")
    collectors[0].kill()
    before = [_written(port) for port in ports[1:]]
    produced_at_kill = agent.produced  # read after `before`: all produced from here is written after it
    wait_for(lambda: agent.receipted > produced_at_kill + 200, 30, "receipts after the SIGKILL")
    running.stop()
    total = _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", ["s0", "s1", "s2", "s3"])
    after = [_written(port) for port in ports[1:]]
    taken = [a - b for a, b in zip(after, before, strict=True)]
    assert all(share > 0 for share in taken), taken  # both of the two left took a share
    assert sum(taken) >= total - produced_at_kill, (taken, total, produced_at_kill)  # all of the rest
    assert total > 200
