"""A plant model written back as a plant file (docs/DESIGN.md §6), for tools that take `--plant`."""

from __future__ import annotations

import orjson

from shopfloor.plant import Plant


def _string(text: str) -> str:
    return orjson.dumps(text).decode()  # a JSON string is a valid TOML basic string


def plant_toml(plant: Plant) -> str:
    lines = [f"plant = {_string(plant.plant)}", f"timezone = {_string(plant.timezone)}"]
    for line in plant.lines:
        lines += ["", "[[line]]", f"id = {_string(line.id)}", f"name = {_string(line.name)}"]
        for station in line.stations:
            lines += ["", "[[line.station]]", f"id = {_string(station.id)}", f"buffer = {station.buffer}",
                      f"ideal_cycle_s = {station.ideal_cycle_s!r}"]
    return "\n".join(lines) + "\n"
