"""The random draws of a run: process times, setups and failures per unit and station.

Draws are made per unit of WORK, before and apart from the flow through the line, so that every
version of a line (a station sped up, a machine added) replays exactly the same luck: common random
numbers make a 5 % speed-up's effect visible with a handful of replications. Failures are
operation-dependent (the failure clock runs only while a station works, the textbook assumption for
machines that wear when they run) and land at an offset inside one unit's work.

All times are integer microseconds, so the departure recursion and the SimPy reference agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

US = 1_000_000


@dataclass(frozen=True, slots=True)
class StationLaws:
    """The numeric laws of every station, as arrays over stations (flow order)."""

    cycle_us: np.ndarray  # mean process time, float
    dist: tuple[str, ...]  # deterministic | gamma | lognormal
    cv: np.ndarray
    mtbf_us: np.ndarray  # inf: never fails
    mttr_us: np.ndarray
    mttr_cv: np.ndarray
    setup_every: np.ndarray  # int, 0: never
    setup_us: np.ndarray  # int

    @property
    def size(self) -> int:
        return len(self.dist)


@dataclass(frozen=True, slots=True)
class Failures:
    """Every failure of a chunk: which replication, unit and station, where in the unit's work, how long."""

    rep: np.ndarray
    unit: np.ndarray  # global unit number
    station: np.ndarray
    offset_us: np.ndarray  # base work done on the unit when it failed
    repaired_before_us: np.ndarray  # base repair time of earlier failures on the same unit and station
    repair_us: np.ndarray  # base repair time of this failure

    @staticmethod
    def concat(parts: list[Failures]) -> Failures:
        if not parts:
            empty = np.zeros(0, np.int64)
            return Failures(empty, empty, empty, empty, empty, empty)
        return Failures(*(np.concatenate([getattr(p, f) for p in parts]) for f in Failures.__slots__))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Draws for units [first, first + size) of every replication: arrays (unit, rep, station)."""

    first: int
    process_us: np.ndarray
    setup_us: np.ndarray
    repair_us: np.ndarray  # total base repair time inside each unit's work
    failures: Failures


def _unit_mean(rng: np.random.Generator, dist: str, cv: float, size: tuple[int, int]) -> np.ndarray:
    """Draws with mean 1 and the given coefficient of variation."""
    if dist == "deterministic" or cv == 0:
        return np.ones(size)
    if dist == "gamma":
        shape = 1.0 / (cv * cv)
        return rng.gamma(shape, 1.0 / shape, size)
    sigma2 = np.log1p(cv * cv)
    return rng.lognormal(-sigma2 / 2.0, np.sqrt(sigma2), size)


class DrawStream:
    """Chunks of draws for `reps` replications, reproducible from (seed, stream)."""

    def __init__(self, laws: StationLaws, seed: int, reps: int, stream: int = 0):
        self.laws = laws
        self.reps = reps
        stations = np.random.SeedSequence([seed, stream]).spawn(laws.size)
        self._process = [np.random.default_rng(s.spawn(1)[0]) for s in stations]
        self._failure = [np.random.default_rng(s.spawn(1)[0]) for s in stations]
        self._work_done = np.zeros((reps, laws.size), np.int64)
        self._next_failure = np.zeros((reps, laws.size), np.int64)
        for j in range(laws.size):
            if np.isfinite(laws.mtbf_us[j]):
                self._next_failure[:, j] = self._gaps(j, (reps,))
        self.first = 0

    def _gaps(self, j: int, size: tuple[int, ...]) -> np.ndarray:
        gaps = self._failure[j].exponential(self.laws.mtbf_us[j], size)
        return np.maximum(1, np.rint(gaps)).astype(np.int64)

    def _repairs(self, j: int, size: int) -> np.ndarray:
        laws = self.laws
        draws = _unit_mean(self._failure[j], "gamma", float(laws.mttr_cv[j]), (1, size))[0]
        return np.rint(draws * laws.mttr_us[j]).astype(np.int64)

    def next(self, size: int) -> Chunk:
        laws, reps = self.laws, self.reps
        shape = (size, reps, laws.size)
        process = np.empty(shape, np.int64)
        setup = np.zeros(shape, np.int64)
        repair = np.zeros(shape, np.int64)
        units = np.arange(self.first, self.first + size)
        failures: list[Failures] = []
        for j in range(laws.size):
            z = _unit_mean(self._process[j], laws.dist[j], float(laws.cv[j]), (reps, size))
            process[:, :, j] = np.maximum(1, np.rint(z * laws.cycle_us[j])).astype(np.int64).T
            if laws.setup_every[j]:
                setup[(units > 0) & (units % laws.setup_every[j] == 0), :, j] = laws.setup_us[j]
            if np.isfinite(laws.mtbf_us[j]):
                failures.append(self._fail(j, process[:, :, j].T, repair[:, :, j]))
        self.first += size
        return Chunk(int(units[0]), process, setup, repair, Failures.concat(failures))

    def _fail(self, j: int, process: np.ndarray, repair_out: np.ndarray) -> Failures:
        """Place station j's failures on this chunk's units; `process` is (rep, unit)."""
        reps, size = process.shape
        ends = self._work_done[:, j, None] + np.cumsum(process, axis=1)  # work done after each unit
        end = ends[:, -1]
        current = self._next_failure[:, j].copy()
        expected = float((end - current).max()) / self.laws.mtbf_us[j]
        width = int(max(expected, 0.0) * 1.2 + 4 * np.sqrt(max(expected, 0.0)) + 4)
        times = [current[:, None]]
        while not (current >= end).all():  # `current`: each replication's next failure not yet listed
            steps = np.cumsum(self._gaps(j, (reps, width)), axis=1)
            times.append(current[:, None] + steps)
            current = current + steps[:, -1]
        at = np.concatenate(times, axis=1)
        inside = at < end[:, None]
        count = inside.sum(axis=1)
        self._next_failure[:, j] = at[np.arange(reps), count]
        self._work_done[:, j] = end
        rep, k = np.nonzero(inside)
        when = at[rep, k]
        big = int(end.max()) + 1
        unit = np.searchsorted((ends + np.arange(reps)[:, None] * big).ravel(), when + rep * big,
                               side="right") - rep * size
        offset = when - (ends[rep, unit] - process[rep, unit])
        amount = self._repairs(j, len(when))
        np.add.at(repair_out, (unit, rep), amount)
        before = np.cumsum(amount) - amount
        group_start = np.ones(len(when), bool)
        group_start[1:] = (rep[1:] != rep[:-1]) | (unit[1:] != unit[:-1])
        starts = np.maximum.accumulate(np.where(group_start, np.arange(len(when)), 0))
        before = before - before[starts] if len(when) else before
        return Failures(rep, unit + self.first, np.full(len(when), j), offset, before, amount)
