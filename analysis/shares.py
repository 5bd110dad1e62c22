"""Each station's share of a period as the constraint, from the timeline's windows, never above 100 % in all.

Why a module of its own: a window's `share` of a station is its sole plus its shifting bottleneck time
(analysis/bottleneck.py), and shifting time is, by the active period method, time that two (rarely
more) stations hold AT THE SAME MOMENT. Averaging `share` therefore counts every shifting moment
twice: five stations at 100 % at a shift's start, 300 % in all later. Here the shifting time is split
between the stations that share it (half each, the pair case), and a window where that still sums
above its observed time (three stations shifting at once) has its shifting parts scaled down to the
time left after the sole bottlenecks, so the stations' shares of a period always sum to at most 1.
The huddle page, its JSON and the service's /shares read this one function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StationShare:
    """A station's share of the period: sole, shifting (its split part) and their sum."""

    share: float
    sole: float
    shifting: float

    def to_json(self) -> dict:
        return {"share": round(self.share, 4), "sole": round(self.sole, 4),
                "shifting": round(self.shifting, 4)}


def window_shares(share: Mapping[str, float], sole: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """One window: station -> (sole, split shifting), summing to at most 1 over the stations."""
    soles = {s: max(0.0, min(float(sole.get(s, 0.0) or 0.0), float(v or 0.0))) for s, v in share.items()}
    halves = {s: max(0.0, float(v or 0.0) - soles[s]) / 2 for s, v in share.items()}
    room = max(0.0, 1.0 - sum(soles.values()))
    total = sum(halves.values())
    scale = room / total if total > room and total > 0 else 1.0
    return {s: (soles[s], halves[s] * scale) for s in share}


def period_shares(windows: Iterable[tuple[Mapping[str, float], Mapping[str, float], float]],
                  stations: list[str]) -> dict[str, StationShare]:
    """Time-weighted mean over windows of (share, sole, weight) per station; every station listed."""
    sole_sum = dict.fromkeys(stations, 0.0)
    shifting_sum = dict.fromkeys(stations, 0.0)
    weight_sum = 0.0
    for share, sole, weight in windows:
        if weight <= 0:
            continue
        weight_sum += weight
        for station, (alone, shifting) in window_shares(share, sole).items():
            if station in sole_sum:
                sole_sum[station] += alone * weight
                shifting_sum[station] += shifting * weight
    if weight_sum == 0:
        return {s: StationShare(0.0, 0.0, 0.0) for s in stations}
    return {s: StationShare((sole_sum[s] + shifting_sum[s]) / weight_sum, sole_sum[s] / weight_sum,
                            shifting_sum[s] / weight_sum) for s in stations}


def stored_windows(series: Iterable, stations: list[str]) -> list[tuple[dict, dict, float]]:
    """The timeline's per-station window points (`SELECT "share", "sole" ... GROUP BY "station"`, rows
    of time, share, sole) regrouped per window, each of weight 1 (windows have one length)."""
    by_time: dict[int, tuple[dict, dict]] = {}
    for station, rows in series:
        if station not in stations:
            continue
        for row in rows:
            if row["share"] is None:
                continue
            share, sole = by_time.setdefault(int(row["time"]), ({}, {}))
            share[station] = row["share"]
            sole[station] = row["sole"] if row.get("sole") is not None else row["share"]
    return [(share, sole, 1.0) for _, (share, sole) in sorted(by_time.items())]
