"""The same line as a discrete-event model in SimPy, driven by the same draws: the engine's referee.

Only the tests and the benchmark import this (SimPy is a test extra). It follows the physical story,
event by event, instead of the recursion: a machine waits for its next unit, sets up, works, fails and
is repaired, then holds the finished unit until the next station has a free slot (buffer + machines)
and the unit before it has left. Every machine logs its state changes, so the sampled telemetry can be
checked against an independent account of what each station was doing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import simpy

from simulators.engine import Run


@dataclass
class ReferenceRun:
    start: np.ndarray  # (unit, station)
    depart: np.ndarray
    states: list[list[list[tuple[int, str]]]]  # station -> machine -> [(time, state)]


def simulate_reference(run: Run, row: int = 0, units: int | None = None) -> ReferenceRun:
    """Replay `units` units of a recorded engine run's row in SimPy, with that row's draws and rates."""
    model, rates = run.model, run.rates
    rep = int(rates.rep_of_row[row])
    process, setup, _, failures = run.draws()
    units = run.units if units is None else units
    m = model.size
    machines = [int(c) for c in rates.machines[row]]
    breaks = model.breaks_us
    failures_of: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for r, n, j, u, before, amount in zip(failures.rep, failures.unit, failures.station, failures.offset_us,
                                          failures.repaired_before_us, failures.repair_us, strict=True):
        if r == rep and n < units:
            failures_of[int(n), int(j)].append((int(u), int(before), int(amount)))

    env = simpy.Environment()
    arrived = [[env.event() for _ in range(units)] for _ in range(m)]
    departed = [[env.event() for _ in range(units)] for _ in range(m)]
    slots = [simpy.Container(env, capacity=int(model.buffer[j]) + machines[j],
                             init=int(model.buffer[j]) + machines[j]) for j in range(m)]
    start = np.zeros((units, m), np.int64)
    depart = np.zeros((units, m), np.int64)
    states: list[list[list[tuple[int, str]]]] = [[[] for _ in range(machines[j])] for j in range(m)]

    def machine(j: int, k: int):
        log = states[j][k]
        for n in range(k, units, machines[j]):
            log.append((env.now, "starved"))
            if j > 0:
                yield arrived[j][n]
            s = env.now
            start[n, j] = s
            period = int(np.searchsorted(breaks, s, side="right"))
            work_rate = float(rates.process[period, row, j])
            repair_rate = float(rates.repair[period, row, j])
            setting_up = round(float(rates.setup[row, j]) * int(setup[n, rep, j]))
            if setting_up:
                log.append((env.now, "setup"))
                yield env.timeout(setting_up)
            log.append((env.now, "working"))
            worked = 0
            for u, before, amount in failures_of.get((n, j), []):
                at = round(work_rate * u)
                yield env.timeout(at - worked)
                worked = at
                log.append((env.now, "down"))
                yield env.timeout(round(repair_rate * (before + amount)) - round(repair_rate * before))
                log.append((env.now, "working"))
            yield env.timeout(round(work_rate * int(process[n, rep, j])) - worked)
            log.append((env.now, "blocked"))
            if n > 0:
                yield departed[j][n - 1]
            if j + 1 < m:
                yield slots[j + 1].get(1)
            if j > 0:
                yield slots[j].put(1)
            depart[n, j] = env.now
            departed[j][n].succeed()
            if j + 1 < m:
                arrived[j + 1][n].succeed()
        log.append((env.now, "starved"))

    for j in range(m):
        for k in range(machines[j]):
            env.process(machine(j, k))
    env.run()
    return ReferenceRun(start, depart, states)


PRIORITY = ("working", "setup", "down", "blocked", "starved")


def reference_states(reference: ReferenceRun, times_us: np.ndarray) -> list[list[str]]:
    """Each station's state at each time: the best of its machines' last logged states."""
    result = []
    for machines in reference.states:
        codes = np.full(len(times_us), len(PRIORITY) - 1)
        for log in machines:
            when = np.array([t for t, _ in log], np.int64)
            what = np.array([PRIORITY.index(s) for _, s in log])
            i = np.searchsorted(when, times_us, side="right") - 1
            codes = np.minimum(codes, np.where(i >= 0, what[np.maximum(i, 0)], len(PRIORITY) - 1))
        result.append([PRIORITY[c] for c in codes])
    return result
