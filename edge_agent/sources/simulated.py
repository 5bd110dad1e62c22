"""A simulated station: plausible counts, queue and state from a seeded random process.

Why it exists: demos, tests and benchmarks need an agent that runs without a PLC. Each read advances
the station by the wall time since the last read: while working it completes about one unit per
`cycle_s`; it sometimes goes down, needs setup, or is starved (empty queue) or blocked; the queue
wanders between 0 and the buffer. `count_width` makes it wrap like a 16- or 32-bit PLC counter.
"""

from __future__ import annotations

import random
import time

from edge_agent.config import SimulatedSource
from edge_agent.sources.base import Reading

# (state, mean seconds in it) -- rough shares of a real serial line
_STATES = (("working", 600.0), ("down", 60.0), ("setup", 120.0), ("starved", 30.0), ("blocked", 30.0))
_WEIGHTS = (0.6, 0.1, 0.1, 0.1, 0.1)


class SimulatedStation:
    def __init__(self, spec: SimulatedSource, station: str):
        self.spec = spec
        self._random = random.Random(f"{spec.seed}:{station}")
        self._count = 0.0
        self._scrap = 0.0
        self._queue = spec.buffer // 2
        self._state = "working"
        self._state_left_s = self._random.expovariate(1 / 600.0)
        self._last = time.monotonic()

    def _next_state(self) -> None:
        state, mean_s = self._random.choices(_STATES, _WEIGHTS)[0]
        self._state, self._state_left_s = state, self._random.expovariate(1 / mean_s)

    def read(self) -> list[Reading]:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self._state_left_s -= elapsed
        if self._state_left_s <= 0:
            self._next_state()
        if self._state == "working":
            made = elapsed / self.spec.cycle_s * self._random.uniform(0.8, 1.2)
            self._count += made
            self._scrap += made * 0.02
        if self._random.random() < min(1.0, elapsed / self.spec.cycle_s):
            step = -1 if self._state == "working" else 1
            self._queue = min(self.spec.buffer, max(0, self._queue + step + self._random.choice((-1, 0, 1))))
        if self._state == "starved":
            self._queue = 0
        wrap = 1 << self.spec.count_width if self.spec.count_width else None
        count = int(self._count)
        return [Reading(count=count % wrap if wrap else count, queue=self._queue, scrap=int(self._scrap),
                        state=self._state)]

    def close(self) -> None:
        """Nothing to release."""
