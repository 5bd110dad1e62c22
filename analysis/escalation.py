"""When the targets become alerts: the day's pace at a checkpoint, the constraint's uptime, the month's
forecast, and (issue 14) the money or constraint minutes a shift lost at the constraint. Pure
functions that return alert payloads in the contract's form (docs/DESIGN.md §4), so they
travel the same path as the constraint alerts (analysis/alerts.py) and the tests need no broker.

Why checkpoints: a pace alert every minute is noise; the ops director wants to hear at fixed hours
(10:00, 14:00, ...) whether the day is behind by more than the tolerance. An alert's identity in the
sink is (kind, station, ts), so a pace alert carries its checkpoint as `ts` and the uptime and
forecast alerts their day's start: however often the checks run, and across restarts, the sink
(analysis.alerts.AlertSink, which remembers through the store) delivers each one once.

Evidence before verdicts: pace is judged against the target due since the line's first sample of
the day (a line that started at 09:40 is not 100 % behind at 10:00 for the hours before), and pace
and forecast stay silent below MIN_EVIDENCE_MS (an hour) of planned production with data; each
message says how many hours it rests on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.alerts import make_alert
from analysis.indicators import HOUR_MS, MIN_EVIDENCE_MS, Indicators, ToDate
from analysis.losses import Losses
from analysis.targets import Decomposition, local_ms, to_local
from shopfloor.plan import Escalation

# The alerts that judge a whole day and carry its local midnight as `ts` (their identity in the sink):
# a screen shows their day, not "00:00" (dashboards/huddle_api.py marks them `day`).
UPTIME_KIND = "constraint_uptime_low"
FORECAST_KIND = "forecast_below_target"
DAY_KINDS = (UPTIME_KIND, FORECAST_KIND)

Alert = dict


def last_checkpoint(targets: Decomposition, rules: Escalation, now_ms: int) -> int | None:
    """The latest checkpoint of today (local time) at or before now, in ms; None before the first."""
    zone = targets.zone
    today = to_local(now_ms, zone).date()
    passed = [local_ms(today, minutes, zone) for minutes in rules.checkpoints]  # wall clock, DST-safe
    passed = [moment for moment in passed if moment <= now_ms]
    return max(passed) if passed else None


def pace_alert(line: str, station: str, checkpoint_ms: int, now_ms: int, output: int, due: float,
               rules: Escalation, zone: dt.tzinfo, evidence_ms: int = HOUR_MS) -> Alert | None:
    """Warning when the output since the line's data began today is more than the tolerance below
    what was due over that time; silent below MIN_EVIDENCE_MS of planned production with data."""
    if evidence_ms < MIN_EVIDENCE_MS or due <= 0 or output >= due * (1 - rules.pace_tolerance):
        return None
    clock = to_local(now_ms, zone).strftime("%H:%M")
    return make_alert(checkpoint_ms, "pace_behind_target", "warning", station,
                 f"line {line} at {clock}: {output} of {due:.0f} units due ({output / due:.0%}) over the "
                 f"{evidence_ms / HOUR_MS:.1f} planned h since its data began today, "
                 f"{1 - output / due:.0%} behind; the tolerance is {rules.pace_tolerance:.0%}")


def uptime_alert(line: str, result: Indicators, rules: Escalation, day_ms: int) -> Alert | None:
    """Warning when the constraint was up less than its target share of planned time."""
    if result.constraint_uptime >= rules.constraint_uptime:
        return None
    return make_alert(day_ms, UPTIME_KIND, "warning", result.constraint,
                 f"line {line}: the constraint {result.constraint} was up {result.constraint_uptime:.0%} of "
                 f"planned time, below its {rules.constraint_uptime:.0%} target")


def forecast_alert(line: str, station: str, month: ToDate, rules: Escalation, day_ms: int) -> Alert | None:
    """Critical when the month's run-rate forecast misses the month's target by more than the tolerance;
    silent while there is no forecast (under MIN_EVIDENCE_MS of planned production with data)."""
    if month.forecast is None or month.forecast >= month.target * (1 - rules.forecast_tolerance):
        return None
    short = 1 - month.forecast / month.target if month.target else 1.0
    return make_alert(day_ms, FORECAST_KIND, "critical", station,
                 f"line {line}: at the run rate of the last {month.evidence_ms / HOUR_MS:.1f} planned h the "
                 f"month ends at {month.forecast:.0f} of {month.target} units ({short:.0%} short); the "
                 f"constraint is {station}")


LOSS_KIND = "constraint_loss_shift"


def _money(value: float, currency: str | None) -> str:
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def loss_alert(line: str, shift_start_ms: int, shift_label: str, result: Losses, rules: Escalation
               ) -> Alert | None:
    """Warning when the shift so far lost more than the plan's money or minutes at the constraint.

    The figures are those of the losses API and the huddle page (`Losses.to_json`: every cause, no data
    included), so the alert and the Pareto on the screen agree. `ts` is the shift's start, so the sink
    sends one per shift however often it is checked; the station is the top cause's constraint.
    """
    if rules.shift_loss_money is None and rules.shift_loss_minutes is None:
        return None
    figures = result.to_json()
    money, minutes = figures["lost_money"], figures["lost_minutes"]
    over = []
    if rules.shift_loss_money is not None and money is not None and money > rules.shift_loss_money:
        over.append(f"the {_money(rules.shift_loss_money, result.currency)} limit")
    if rules.shift_loss_minutes is not None and minutes > rules.shift_loss_minutes:
        over.append(f"the {rules.shift_loss_minutes:g} min limit")
    if not over or not figures["causes"]:
        return None
    top = figures["causes"][0]
    lost = f"{minutes:.0f} min" + ("" if money is None else f", {_money(money, result.currency)}")
    top_text = f"{top['minutes']:.0f} min" + ("" if top["money"] is None
                                               else f", {_money(top['money'], result.currency)}")
    return make_alert(shift_start_ms, LOSS_KIND, "warning", top["station"],
                      f"line {line}, shift {shift_label}: the constraint lost {lost} so far, over "
                      f"{' and '.join(over)}; top cause {top['label']} ({top_text})")


@dataclass
class Escalator:
    """Runs the three checks and hands each alert to `send` once per kind and checkpoint (or day).

    `send` is normally `AlertSink.send`, whose memory is the store; the set here only spares it the
    look-ups inside one running process.
    """

    line: str
    targets: Decomposition
    rules: Escalation
    send: Callable[[Alert], bool | None]
    sent: set[tuple[str, int]] = field(default_factory=set)

    def check(self, now_ms: int, day_output: int, result: Indicators, month: ToDate) -> list[Alert]:
        zone = self.targets.zone
        today = to_local(now_ms, zone).date()
        day_start = local_ms(today, 0, zone)
        alerts: list[tuple[tuple[str, int], Alert | None]] = []
        checkpoint = last_checkpoint(self.targets, self.rules, now_ms)
        if checkpoint is not None:  # pace since the line's data began today, judged once per checkpoint
            since = max(day_start, result.data_from_ms if result.data_from_ms is not None else now_ms)
            due = self.targets.due_between(since, now_ms)
            evidence = self.targets.production_ms_between(since, now_ms) if since < now_ms else 0
            pace = pace_alert(self.line, result.constraint, checkpoint, now_ms, day_output, due, self.rules,
                              zone, evidence)
            alerts.append((("pace", checkpoint), pace))
        alerts.append((("uptime", day_start), uptime_alert(self.line, result, self.rules, day_start)))
        alerts.append((("forecast", day_start),
                       forecast_alert(self.line, result.constraint, month, self.rules, day_start)))
        fresh = []
        for key, payload in alerts:
            if payload is not None and key not in self.sent:
                self.sent.add(key)
                if self.send(payload) is not False:  # AlertSink.send says False for a repeat
                    fresh.append(payload)
        return fresh
