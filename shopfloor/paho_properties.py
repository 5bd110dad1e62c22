"""paho-mqtt's MQTT 5 `Properties`, with its lookup tables built once instead of once per PUBLISH.

Why: paho (2.1-2.2) decodes every incoming MQTT 5 PUBLISH into a new `Properties`, whose constructor
builds three tables of the protocol's 27 property names and types, and whose `unpack` first walks
all 27 names to clear them. That is 16 us of a 41-48 us PUBLISH read on this project's 2-core test
machine (a subscriber fed from memory, 60,000 messages; MQTT 3.1.1, which has no properties, reads
the same packet in 20 us), and the collector reads one PUBLISH per single-sample message.
`LeanProperties` shares the tables (they never change), and returns at once for the usual empty
property block; everything else is paho's own code. `use_lean_publish_properties` puts it where
paho's PUBLISH decoder looks it up, and only if that decoder is where paho 2.1-2.2 keeps it: a paho
that moved it keeps its own class (slower, still right), and tests/test_paho_properties.py, which
checks that the swap took, then fails and says so.
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_TABLES = Properties(PacketTypes.PUBLISH)


class LeanProperties(Properties):
    """paho's `Properties` whose name and type tables are the class's, shared by every instance."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int):
        object.__setattr__(self, "packetType", packetType)

    def clear(self) -> None:
        for name in [name for name in vars(self) if name != "packetType"]:
            delattr(self, name)

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        if buffer and buffer[0] == 0:  # a property length of 0: nearly every PUBLISH
            self.clear()
            return self, 1
        return super().unpack(buffer)


def use_lean_publish_properties() -> bool:
    """Make paho decode PUBLISH properties into `LeanProperties`; True if it now does."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # a paho without the module: its own class stays
        return False
    if getattr(_packet, "Properties", None) not in (Properties, LeanProperties):
        return False
    _packet.Properties = LeanProperties
    return True

