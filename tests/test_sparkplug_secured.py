"""The collector as a Sparkplug host on a broker secured by `shopfloor security init`: its generated
credential may subscribe the mapped Sparkplug and JSON topics and publish its STATE (Mosquitto 2.0.11
drops the connection after a refused publish, so a missing ACL line would show as a lost broker)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from conftest import wait_until

from shopfloor import security
from shopfloor.plant import load_plant
from shopfloor.stack import Server, free_port

pytestmark = pytest.mark.servers


def test_the_generated_collector_credential_runs_the_sparkplug_host(stack, store, tmp_path,
                                                                    collector_process):
    credentials = security.init([load_plant("examples/plant-mqtt.toml")], tmp_path / "auth")
    broker = Server("mosquitto", tmp_path / "mosquitto", free_port(),
                    broker_auth=security.broker_config(tmp_path / "auth", anonymous_line=False))
    broker.start()
    try:
        url = f"mqtt://collector:{credentials.passwords['collector']}@127.0.0.1:{broker.port}"
        secured = SimpleNamespace(mosquitto=SimpleNamespace(url=url), influxdb=stack.influxdb)
        collector = collector_process(secured, store.database, plant="examples/plant-mqtt.toml",
                                      group=credentials.group, client_id=credentials.collector_client_id)
        time.sleep(1.0)  # the STATE publish right after the SUBACK has had its PUBACK
        log = collector.log()
        assert "subscribed to" in log and "refused" not in log and "lost the broker" not in log, log
        collector.stop()
        wait_until(lambda: not collector.running(), 10, "the collector's exit")
        assert "lost the broker" not in collector.log()
    finally:
        broker.stop()
