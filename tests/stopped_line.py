"""A small serial line simulated second by second with stops injected at known times (issue 14 tests).

Why not simulators/: its engine draws failures at random; here each stop is placed by hand (which
station, when, how long, which reason), so the truth of every lost minute at the constraint is known.
The line is deterministic: s3 (40 s a unit) is the constraint, every other station makes a unit in
30 s, and the buffers start full, so without an injected event s3 never waits. The simulation records
per second the state of every station, which is the truth the loss analysis is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shopfloor.contract import Sample
from shopfloor.plant import Plant

START_MS = 1_790_000_000_000
CYCLES_S = (30, 30, 40, 30, 30)
BUFFER = 3
IDS = tuple(f"s{i + 1}" for i in range(len(CYCLES_S)))


@dataclass(frozen=True, slots=True)
class Event:
    station: str
    kind: str  # down | setup | idle | slow
    start_s: int
    seconds: int
    reason: str | None = None
    cycle_s: int = 0  # for `slow`: the cycle in force while it lasts


@dataclass(slots=True)
class StoppedLine:
    seconds: int
    events: list[Event]
    states: dict[str, list[str]] = field(default_factory=dict)
    samples: list[tuple[str, Sample]] = field(default_factory=list)

    def plant(self, plant_id: str = "p1") -> Plant:
        return Plant.model_validate({"plant": plant_id, "line": [{"id": "l1", "station": [
            {"id": s, "buffer": BUFFER, "ideal_cycle_s": float(c)}
            for s, c in zip(IDS, CYCLES_S, strict=True)]}]})

    def seconds_in(self, station: str, state: str, start_s: int = 0, end_s: int | None = None) -> int:
        return self.states[station][start_s:end_s].count(state)


def simulate(seconds: int, events: list[Event]) -> StoppedLine:
    n = len(IDS)
    queue = [BUFFER] * n  # in front of each station; the first one's is the saturated source
    remaining = [0] * n
    holding = [True] * n
    count = [0] * n
    line = StoppedLine(seconds, events, {s: [] for s in IDS})

    def event_at(j: int, t: int, kinds: tuple[str, ...]) -> Event | None:
        for event in events:
            if event.station == IDS[j] and event.kind in kinds and \
                    event.start_s <= t < event.start_s + event.seconds:
                return event
        return None

    def cycle(j: int, t: int) -> int:
        slow = event_at(j, t, ("slow",))
        return slow.cycle_s if slow else CYCLES_S[j]

    for j in range(n):
        remaining[j] = cycle(j, 0)
    for t in range(seconds):
        now: list[str] = [""] * n
        reasons: list[str | None] = [None] * n
        for j in reversed(range(n)):  # downstream first: a departure frees room in the same second
            stop = event_at(j, t, ("down", "setup", "idle"))
            if stop is not None:
                now[j], reasons[j] = stop.kind, stop.reason
                continue
            if holding[j] and remaining[j] <= 0 and (j == n - 1 or queue[j + 1] < BUFFER):
                if j < n - 1:
                    queue[j + 1] += 1
                count[j] += 1
                holding[j] = False
            if not holding[j]:
                if j == 0 or queue[j] > 0:
                    if j > 0:
                        queue[j] -= 1
                    holding[j], remaining[j] = True, cycle(j, t)
                else:
                    now[j] = "starved"
                    continue
            if remaining[j] > 0:
                remaining[j] -= 1
                now[j] = "working"
            else:
                now[j] = "blocked"
        for j, station in enumerate(IDS):
            line.states[station].append(now[j])
            sample: Sample = {"ts": START_MS + t * 1000, "seq": t, "count": count[j],
                              "queue": queue[j] if j else BUFFER, "state": now[j]}  # type: ignore[typeddict-item]
            if reasons[j]:
                sample["reason"] = reasons[j]  # type: ignore[typeddict-item]
            line.samples.append((station, sample))
    return line
