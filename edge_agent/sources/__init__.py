"""Where station data comes from: simulated, Modbus TCP, OPC UA, or a file the station appends to.

`open_source` builds the right reader for a station's `[station.source]` table; field libraries are
imported only for the kinds in use, so an agent of simulated or file stations stays small.
"""

from __future__ import annotations

from edge_agent.config import FileSource, ModbusSource, OpcUaSource, SimulatedSource, Station
from edge_agent.sources.base import Reading, Source, SourceError

__all__ = ["Reading", "Source", "SourceError", "counter_widths", "open_source"]


def open_source(station: Station) -> Source:
    """Connect the station's source; raises SourceError if it cannot be reached now."""
    spec = station.source
    if isinstance(spec, SimulatedSource):
        from edge_agent.sources.simulated import SimulatedStation

        return SimulatedStation(spec, station.id)
    if isinstance(spec, ModbusSource):
        from edge_agent.sources.modbus import ModbusStation

        return ModbusStation(spec, station.id)
    if isinstance(spec, OpcUaSource):
        from edge_agent.sources.opcua import OpcUaStation

        return OpcUaStation(spec, station.id)
    from edge_agent.sources.files import FileStation

    assert isinstance(spec, FileSource)
    return FileStation(spec, station.id)


def counter_widths(station: Station) -> tuple[int, int]:
    """Bits of the station's count and scrap counters (0: they never wrap)."""
    spec = station.source
    if isinstance(spec, SimulatedSource):
        return spec.count_width, 0
    if isinstance(spec, ModbusSource):
        return spec.count.width, spec.scrap.width if spec.scrap else 0
    if isinstance(spec, OpcUaSource):
        return spec.count.width, spec.scrap.width if spec.scrap else 0
    return 0, 0
