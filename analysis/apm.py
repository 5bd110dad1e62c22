"""Roser's active period method (shifting bottleneck detection), vectorized with numpy.

Why it is built this way: the reference implementation (`active-period-method` on PyPI) walks time
in Python, asking every station object for the period that holds the current moment. Here the
question "which active period, of any station, is the longest one holding time t?" is one
`searchsorted` over a (station, start) key for all stations at once; a long walk instead gets every
question it can ever ask (every period start and stop) answered beforehand, one `searchsorted` per
station. The sole/shifting split is array arithmetic over consecutive pairs of the chain.

Semantics are the reference's, on purpose, so the two agree exactly on the same periods:
- at a moment t the bottleneck is the station whose active period holding t is the longest; equal
  longest periods are all bottlenecks, in (start, station) order;
- the walk jumps from a bottleneck period to its end (or, when nothing is active, to the next start);
- where consecutive bottleneck periods overlap, both stations are *shifting* bottlenecks over the
  overlap, otherwise the period is a *sole* bottleneck.
Periods are half-open `[start, stop)` in integer milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NONE = -1


@dataclass(frozen=True, slots=True)
class Periods:
    """Intervals `[start, stop)` in ms, each belonging to a station (an index into the line's stations)."""

    station: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    @classmethod
    def empty(cls) -> Periods:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, nothing)

    @classmethod
    def of(cls, station, start, stop) -> Periods:
        return cls(np.asarray(station, dtype=np.int64), np.asarray(start, dtype=np.int64),
                   np.asarray(stop, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index) -> Periods:
        return Periods(self.station[index], self.start[index], self.stop[index])

    def sorted(self) -> Periods:
        return self.take(np.lexsort((self.stop, self.start, self.station)))

    def tuples(self) -> list[tuple[int, int, int]]:
        return list(zip(self.station.tolist(), self.start.tolist(), self.stop.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Momentary:
    """The method's answer: the chain of bottleneck periods and its split into sole and shifting parts."""

    raw: Periods
    sole: Periods
    shifting: Periods


def raw_bottlenecks(active: Periods, n_stations: int) -> Periods:
    """The chain of bottleneck active periods, in walk order (the reference's `raw_bottlenecks`).

    A real line's chain is short (the bottleneck periods are its longest ones), so the walk first
    asks only the moments it visits, all stations at once; a chain that turns out long (many short
    periods) is answered for every candidate moment at once instead (`_raw_all_at_once`).
    """
    if len(active) == 0:
        return Periods.empty()
    walked = _raw_walk(active, n_stations, budget=max(1000, len(active) // 8))
    return walked if walked is not None else _raw_all_at_once(active, n_stations)


def _raw_walk(active: Periods, n_stations: int, budget: int) -> Periods | None:
    """The walk, one visited moment at a time; None when it needs more than `budget` steps."""
    order = np.lexsort((active.start, active.station))
    station, start, stop = active.station[order], active.start[order], active.stop[order]
    duration = stop - start
    origin = int(start.min())
    span = int(stop.max()) - origin + 1
    # One sorted key per period, (station, start), so one searchsorted finds every station's period.
    keys = station * span + (start - origin)
    offsets = np.arange(n_stations, dtype=np.int64) * span
    every_station = np.arange(n_stations, dtype=np.int64)
    active_starts = np.unique(start)
    chain: list[int] = []
    t = int(active_starts[0])
    for _ in range(budget):
        index = np.searchsorted(keys, offsets + (t - origin), side="right") - 1
        index = np.maximum(index, 0)
        inside = (station[index] == every_station) & (start[index] <= t) & (stop[index] > t)
        if not inside.any():  # nothing active: jump to the next start of an active period
            k = int(np.searchsorted(active_starts, t, side="right"))
            if k >= len(active_starts):
                return Periods(station[chain], start[chain], stop[chain])
            t = int(active_starts[k])
            continue
        lengths = np.where(inside, duration[index], _NONE)
        members = index[lengths == lengths.max()]
        if len(members) > 1:
            members = members[np.lexsort((station[members], start[members]))]
        chain.extend(members.tolist())
        t = int(stop[members].max())
    return None


def _raw_all_at_once(active: Periods, n_stations: int) -> Periods:
    """The walk with every question it can ask (each period start and stop) answered beforehand."""
    order = np.lexsort((active.start, active.station))
    station, start, stop = active.station[order], active.start[order], active.stop[order]
    duration = stop - start
    queries = np.unique(np.concatenate([start, stop]))
    bounds = np.searchsorted(station, np.arange(n_stations + 1))
    lengths = np.full((n_stations, len(queries)), _NONE, dtype=np.int64)
    holder = np.full((n_stations, len(queries)), _NONE, dtype=np.int64)
    for s in range(n_stations):
        first, last = bounds[s], bounds[s + 1]
        if first == last:
            continue
        index = np.searchsorted(start[first:last], queries, side="right") - 1 + first
        inside = index >= first
        index = np.where(inside, index, first)
        inside &= stop[index] > queries
        lengths[s] = np.where(inside, duration[index], _NONE)
        holder[s] = np.where(inside, index, _NONE)
    longest = lengths.max(axis=0)
    winner = holder[lengths.argmax(axis=0), np.arange(len(queries))]
    tied = np.flatnonzero((lengths == longest).sum(axis=0) > 1)
    # Where nothing is active the walk jumps to the next start of any active period.
    active_starts = np.unique(start)
    next_start = np.searchsorted(active_starts, queries, side="right")
    jump_time = np.where(longest >= 0, stop[np.maximum(winner, 0)],
                         active_starts[np.minimum(next_start, len(active_starts) - 1)])
    ends = (longest < 0) & (next_start >= len(active_starts))
    jump = np.searchsorted(queries, jump_time)
    tie_members: dict[int, list[int]] = {}
    for q in tied.tolist():
        if longest[q] < 0:
            continue
        members = holder[lengths[:, q] == longest[q], q]
        members = members[np.lexsort((station[members], start[members]))]
        tie_members[q] = members.tolist()
        jump[q] = np.searchsorted(queries, stop[members].max())
    chain: list[int] = []
    jump_list, winner_list, ends_list, active_list = (jump.tolist(), winner.tolist(), ends.tolist(),
                                                      (longest >= 0).tolist())
    q = int(np.searchsorted(queries, start.min()))
    while True:
        if active_list[q]:
            members = tie_members.get(q)
            if members is None:
                chain.append(winner_list[q])
            else:
                chain.extend(members)
        elif ends_list[q]:
            break
        following = jump_list[q]
        if following <= q:
            break
        q = following
        if q >= len(queries):
            break
    picked = np.asarray(chain, dtype=np.int64)
    return Periods(station[picked], start[picked], stop[picked])


def split_sole_shifting(raw: Periods) -> Momentary:
    """Split the chain into sole and shifting bottleneck pieces, exactly as the reference does.

    For each consecutive pair (i, i+1) that overlaps, both get a shifting piece over the overlap; the
    piece of i is merged into the previous shifting piece of the same station when they touch; the
    rest of each period is sole.
    """
    n = len(raw)
    if n < 2:
        return Momentary(raw, raw, Periods.empty())
    key, start, stop = raw.station, raw.start, raw.stop
    pair = np.arange(n - 1)
    overlap = stop[:-1] > start[1:]
    # The last overlapping pair strictly before pair i (its "next" piece is the newest shifting piece).
    marked = np.where(overlap, pair, -1)
    newest = np.concatenate([[-1], np.maximum.accumulate(marked)[:-1]])
    has_newest = newest >= 0
    k = np.maximum(newest, 0)
    # That piece is (key[k+1], [start[k+1], stop[k])); it continues pair i's current station when it
    # is that station's and it still reaches the current period.
    continues = has_newest & (key[k + 1] == key[pair]) & (stop[k] >= start[pair])
    sole_from = np.where(continues, stop[k], start[pair])

    merge = overlap & continues & (stop[k] >= start[pair + 1])
    # A merge extends the newest piece (emitted for pair k) up to stop[i]; pieces of pairs never
    # merged into keep their own end.
    next_piece_stop = np.where(overlap, stop[:-1], 0)
    merged_until = next_piece_stop.copy()
    merged_until[k[merge]] = stop[pair][merge]  # each piece is merged into at most once
    shifting_station = np.concatenate([key[pair + 1][overlap], key[pair][overlap & ~merge]])
    shifting_start = np.concatenate([start[pair + 1][overlap], start[pair + 1][overlap & ~merge]])
    shifting_stop = np.concatenate([merged_until[overlap], stop[pair][overlap & ~merge]])
    sole_to = np.where(overlap, start[pair + 1], stop[pair])
    keep = sole_to > sole_from
    sole_station = [key[pair][keep]]
    sole_start = [sole_from[keep]]
    sole_stop = [sole_to[keep]]
    last = n - 2
    if overlap[last]:
        if stop[last + 1] > stop[last]:
            sole_station.append(key[[last + 1]])
            sole_start.append(stop[[last]])
            sole_stop.append(stop[[last + 1]])
    else:
        sole_station.append(key[[last + 1]])
        sole_start.append(start[[last + 1]])
        sole_stop.append(stop[[last + 1]])
    sole = Periods(np.concatenate(sole_station), np.concatenate(sole_start), np.concatenate(sole_stop))
    shifting = Periods(shifting_station, shifting_start, shifting_stop)
    return Momentary(raw, sole, shifting)


def momentary_bottlenecks(active: Periods, n_stations: int) -> Momentary:
    """The active period method on the stations' active periods: chain, sole and shifting pieces."""
    return split_sole_shifting(raw_bottlenecks(active, n_stations))
