"""The edge agent: reads a line PC's stations, keeps every sample on disk, publishes them over MQTT.

`shopfloor agent run --config agent.toml` (see agent.example.toml and README.md in this folder).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shopfloor-constraint-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+source"
