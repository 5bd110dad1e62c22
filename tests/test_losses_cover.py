"""When the live detector's stored windows cover a period, the losses take them without running the
detector again (analysis/losses_store.py `_covers`): the coverage rule, gaps and edges."""

from __future__ import annotations

import pytest
from stopped_line import START_MS, simulate
from test_losses import HOUR_S

from analysis.losses import ConstraintWindow
from analysis.losses_store import _covers, window_losses
from shopfloor.contract import BOTTLENECK_MEASUREMENT, StationKey, line_protocol, sample_line


def windows(*spans: tuple[int, int]) -> list[ConstraintWindow]:
    return [ConstraintWindow(a, b, "s1") for a, b in spans]


def test_stored_windows_cover_a_period_only_without_a_gap():
    assert _covers(windows((0, 60), (60, 120)), 0, 120)
    assert _covers(windows((60, 120), (-60, 0), (0, 60)), 10, 100)  # any order, reaching past the edges
    assert _covers(windows((0, 90), (30, 150)), 0, 150)  # overlapping
    assert not _covers(windows((0, 60), (61, 120)), 0, 120)  # a 1 ms gap
    assert not _covers(windows((10, 120)), 0, 120)  # the period starts before the first window
    assert not _covers(windows((0, 100)), 0, 120)  # and ends after the last
    assert not _covers([], 0, 120)


@pytest.mark.servers
def test_a_covered_period_takes_the_stored_timeline_and_a_gap_the_detector(store, plant_id):
    """On the real InfluxDB: stored windows naming s1 over the whole hour make s1 the constraint of every
    minute; with the second half-hour not stored, the detector (crn) names that half itself."""
    line = simulate(HOUR_S, ())
    store.write([sample_line(StationKey(plant_id, "l1", station), sample)
                 for station, sample in line.samples])
    start, end = START_MS, START_MS + HOUR_S * 1000
    stored = [line_protocol(BOTTLENECK_MEASUREMENT, {"plant": plant_id, "line": "l1"},
                            {"bottleneck": "s1", "window_s": 60}, t) for t in range(start, end, 60_000)]
    store.write(stored[:30])
    half = window_losses(store, line.plant(plant_id), None, "l1", start, end)
    store.write(stored[30:])
    whole = window_losses(store, line.plant(plant_id), None, "l1", start, end)
    assert whole.constraint_ms == {"s1": HOUR_S * 1000}
    assert half.constraint_ms.get("s1", 0) >= 30 * 60_000 and set(half.constraint_ms) != {"s1"}
