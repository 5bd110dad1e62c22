"""Run the reference implementation (`active-period-method` on PyPI) on the same active periods.

Why: the detector claims to compute exactly Roser's method; the tests and the speed benchmark prove it
by feeding both implementations the same periods. The reference wants a pandas frame of status changes
(`station`, `timestamp`, `status` 1/0) and only counts periods that have ended, so every station gets
a closing change at `end` (the end of the data, where this project closes its periods too) and a
marker change just after it.
The package and pandas are test extras: they are imported only when this module is used.
"""

from __future__ import annotations

import warnings

import numpy as np

from analysis.apm import Periods


def status_changes(active: Periods, stations: list[str], begin_ms: int, end_ms: int):
    """The reference's input frame for these active periods, observed from `begin_ms` to `end_ms`."""
    import pandas as pd

    names, times, statuses = [], [], []
    for index, name in enumerate(stations):
        mine = active.take(np.flatnonzero(active.station == index)).sorted()
        events = [(begin_ms, 0)]
        for start, stop in zip(mine.start.tolist(), mine.stop.tolist(), strict=True):
            events += [(start, 1), (stop, 0)]
        if events[-1][0] < end_ms:
            events.append((end_ms, 1 - events[-1][1]))
        # A change at the same moment replaces the one before it (a period of zero length is none).
        merged: list[tuple[int, int]] = []
        for time, status in events:
            if merged and merged[-1][0] == time:
                merged.pop()
            if not merged or merged[-1][1] != status or time == end_ms:
                merged.append((time, status))
        # The reference walks only up to the last period start of any station: one more change a
        # millisecond later makes `end_ms` that start, so the walk covers the whole observation.
        merged.append((end_ms + 1, 1 - merged[-1][1]))
        for time, status in merged:
            names.append(name)
            times.append(time)
            statuses.append(status)
    return pd.DataFrame({"station": names, "timestamp": pd.to_datetime(np.asarray(times), unit="ms"),
                         "status": statuses})


def reference_momentary(active: Periods, stations: list[str], begin_ms: int, end_ms: int
                        ) -> tuple[set[tuple[int, int, int]], set[tuple[int, int, int]]]:
    """(sole, shifting) pieces from the reference as sets of (station index, start ms, stop ms)."""
    from active_period_method import ActivePeriodMethod

    frame = status_changes(active, stations, begin_ms, end_ms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = ActivePeriodMethod(frame)
        result = method.calculate_momentary_bottlenecks()
    index = {name: i for i, name in enumerate(stations)}
    sole: set[tuple[int, int, int]] = set()
    shifting: set[tuple[int, int, int]] = set()
    if result.empty:
        return sole, shifting
    starts = result["start"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    stops = result["stop"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    for name, start, stop, kind in zip(result["station"], starts.tolist(), stops.tolist(),
                                       result["bottleneck_type"], strict=True):
        (sole if kind == "sole" else shifting).add((index[name], start, stop))
    return sole, shifting
