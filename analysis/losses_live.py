"""The losses at the constraint in the live loop: the shift's `losses` points and the money escalation.

Why in the live loop: Grafana reads only InfluxDB, so the shift's Pareto at the constraint must be
there (measurement `losses`, analysis/losses_store.py), and a shift that crosses the plan's money or
minutes limit (`[escalation] shift_loss_money`, `shift_loss_minutes`) must be told while it still runs.
A round computes the current shift's losses with `period_losses`, the function the API and
`shopfloor losses show` call, so the boards, the page and the alert give one figure.

A round every `every_ms` (5 minutes), not every tick: the shift's losses re-read up to a shift of
telemetry, far more than a tick's hour (measured: 2.0-2.3 s for a whole 8-hour shift of the demo
line, 5 stations sampled every second, 144,000 samples; 4.3 s for 4 h of tests/stopped_line.py while
other tests ran; most of it reading the samples, analysis/telemetry.from_store), and the round runs
in the live loop's thread (between two lines' ticks, far below its 60 s stuck limit); 5 minutes is
finer than anyone reads a shift's losses or needs its money alert. When the shift changes (or at the
first round, for a restart across a shift change) the shift before is written whole once, so its last
minutes are not missing from the boards. The alert's `ts` is the shift's start, and
before sending one the stored alerts of that kind at that moment are read, whatever their station: a
restarted service (or a second instance) does not repeat a shift's alert after its top cause moved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.alerts import stored_alerts
from analysis.escalation import LOSS_KIND, loss_alert
from analysis.losses_store import PeriodLosses, losses_of, plan_period, write_losses
from analysis.telemetry import TelemetryError
from shopfloor.errors import ShopfloorError
from shopfloor.plan import Plan
from shopfloor.plant import Plant
from shopfloor.store import Store

LOSSES_EVERY_MS = 300_000

Alert = dict


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class LossesWatch:
    """One line's losses rounds: write the shift's `losses` points, escalate once per shift."""

    store: Store
    plant: Plant
    plan: Plan
    line: str
    send: Callable[[Alert], bool | None] | None = None  # AlertSink.send; None: write points only
    every_ms: int = LOSSES_EVERY_MS
    last_round_ms: int | None = None
    shift_start_ms: int | None = None  # the shift of the last round
    alerted: set[int] = field(default_factory=set)  # shift starts alerted (or found alerted)
    whole: set[int] = field(default_factory=set)  # shift starts written after their end: final

    def tick(self, now_ms: int) -> list[PeriodLosses]:
        """A round when `every_ms` has passed since the last one: the shifts written, newest last."""
        if self.last_round_ms is not None and now_ms - self.last_round_ms < self.every_ms:
            return []
        self.last_round_ms = now_ms
        try:
            period = plan_period(self.plan, self.line, "shift", now_ms)
        except ShopfloorError:  # no shift of this line has begun this plan year yet
            return []
        start = _ms(period.start)
        shifts = []
        if start != self.shift_start_ms:  # a new shift (or the first round): the one before, whole
            try:
                before = plan_period(self.plan, self.line, "shift", start - 1)
            except ShopfloorError:
                before = None
            if before is not None:
                shifts.append((before, _ms(before.end)))
            self.shift_start_ms = start
        shifts.append((period, now_ms))
        written = []
        for shift, until in shifts:
            first, end = _ms(shift.start), _ms(shift.end)
            if until >= end and first in self.whole:  # ended and written whole: between shifts, rest
                continue
            try:
                result = losses_of(self.store, self.plant, self.plan, self.line, "shift", shift, until)
            except TelemetryError:  # no telemetry in the shift: nothing lost that anyone can see
                continue
            write_losses(self.store, self.plant.plant, result)
            self.escalate(result)
            written.append(result)
            if until >= end:
                self.whole.add(first)
        return written

    def escalate(self, result: PeriodLosses) -> Alert | None:
        """Send the shift's money (or minutes) alert if it crossed a limit and was not sent before."""
        if self.send is None:
            return None
        start = result.losses.start
        if start in self.alerted:
            return None
        alert = loss_alert(self.line, start, result.period.label, result.losses, self.plan.escalation)
        if alert is None:
            return None
        sent = stored_alerts(self.store, self.plant.plant, self.line, start, start + 1)
        if any(row["kind"] == LOSS_KIND for row in sent):
            self.alerted.add(start)
            return None
        self.send(alert)
        self.alerted.add(start)
        return alert
