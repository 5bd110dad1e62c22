"""Collectors sharing a broker: their persistent session's expiry default is one value.

The collector's session expiry used to be 3600 s (collector/config.py) while every other persistent
session used shopfloor/mqtt.py's 24 h (issue 13): a collector away between one hour and a day lost its
queue. The default is now owned by shopfloor/mqtt.py alone.
"""

from __future__ import annotations

from collector.config import CollectorConfig
from shopfloor.mqtt import DEFAULT_SESSION_EXPIRY_S


def test_the_collector_session_expiry_default_is_the_one_of_shopfloor_mqtt():
    assert CollectorConfig().session_expiry_s == DEFAULT_SESSION_EXPIRY_S == 24 * 3600
