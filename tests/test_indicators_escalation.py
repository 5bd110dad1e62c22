"""Escalation triggers: the day's pace at a checkpoint, the constraint's uptime, the month's forecast."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis.escalation import Escalator, last_checkpoint
from analysis.indicators import Indicators, Oee, ToDate
from analysis.targets import decompose
from shopfloor.contract import SEVERITIES
from shopfloor.plan import Plan

PLAN = Plan.model_validate({
    "objective": [{"line": "l1", "year": 2027, "units": 417_600}],  # 261 days x 8 h = 2088 h: 200/h
    "calendar": {"timezone": "Europe/Berlin", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"}]},
    "escalation": {"pace_tolerance": 0.10, "checkpoints": ["10:00", "13:00"], "constraint_uptime": 0.85},
})
ZONE = PLAN.calendar.zone


def at(hour: int, minute: int = 0, day: int = 3) -> int:
    return int(dt.datetime(2027, 3, day, hour, minute, tzinfo=ZONE).timestamp() * 1000)


def day_indicators(uptime: float, data_from: int | None = None) -> Indicators:
    oee = Oee(0.8, 0.9, 0.99)
    return Indicators(at(6), at(14), "s4", 700, 800.0, uptime, 0.95, 0.5, 0.1, oee, oee, 0.01,
                      data_from_ms=at(6) if data_from is None else data_from)


def month(forecast: float | None, target: int = 4600) -> ToDate:
    return ToDate("month", at(0, day=1), at(0, day=31), 400, 400.0, target, forecast, 40 * 3_600_000)


@pytest.fixture
def escalator() -> tuple[Escalator, list[dict]]:
    sent: list[dict] = []
    return Escalator("l1", decompose(PLAN, "l1"), PLAN.escalation, sent.append), sent


def test_no_pace_check_before_the_first_checkpoint(escalator) -> None:
    checker, sent = escalator
    assert last_checkpoint(checker.targets, PLAN.escalation, at(9, 59)) is None
    assert last_checkpoint(checker.targets, PLAN.escalation, at(11)) == at(10)
    assert checker.check(at(9, 59), 0, day_indicators(0.9), month(4600)) == [] and sent == []


def test_pace_behind_by_more_than_the_tolerance_alerts_once_per_checkpoint(escalator) -> None:
    checker, sent = escalator
    # at 10:30, 4.5 h of 200/h are due: 900 units; 800 is 11 % behind, over the 10 % tolerance
    alerts = checker.check(at(10, 30), 800, day_indicators(0.9), month(4600))
    assert [a["kind"] for a in alerts] == ["pace_behind_target"] and sent == alerts
    alert = alerts[0]
    assert alert["severity"] == "warning" and alert["station"] == "s4" and alert["v"] == 1
    assert alert["ts"] == at(10)  # the checkpoint: the alert's identity in the sink
    assert alert["message"] == ("line l1 at 10:30: 800 of 900 units due (89%) over the 4.5 planned h "
                                "since its data began today, 11% behind; the tolerance is 10%")
    assert checker.check(at(10, 45), 800, day_indicators(0.9), month(4600)) == []
    assert [a["kind"] for a in checker.check(at(13, 5), 1000, day_indicators(0.9), month(4600))] == \
        ["pace_behind_target"]


def test_pace_is_judged_since_the_lines_data_began_and_not_below_an_hour_of_it(escalator) -> None:
    checker, sent = escalator
    started = at(9, 40)  # the line's first sample today
    # 10:00 checkpoint at 10:10: 30 min of data (100 units due) is under the hour pace needs: silent
    assert checker.check(at(10, 10), 10, day_indicators(0.9, started), month(4600)) == []
    # 13:00 checkpoint at 13:04: 3 h 24 min since 09:40 at 200/h = 680 due, 500 made: 26 % behind
    alerts = checker.check(at(13, 4), 500, day_indicators(0.9, started), month(4600))
    assert [a["kind"] for a in alerts] == ["pace_behind_target"]
    assert "500 of 680 units due (74%) over the 3.4 planned h since its data began" in alerts[0]["message"]
    # judged from 06:00 the same 500 would be 1,413 due: "65 % behind" for hours the line had no data
    assert sent == alerts


def test_pace_within_the_tolerance_is_quiet(escalator) -> None:
    checker, sent = escalator
    assert checker.check(at(10, 30), 811, day_indicators(0.9), month(4600)) == [] and sent == []


def test_low_constraint_uptime_and_a_short_forecast_alert(escalator) -> None:
    checker, sent = escalator
    alerts = checker.check(at(9), 0, day_indicators(0.80), month(4000))
    assert [a["kind"] for a in alerts] == ["constraint_uptime_low", "forecast_below_target"]
    uptime, forecast = alerts
    assert uptime["station"] == "s4" and uptime["severity"] == "warning" and uptime["ts"] == at(0)
    assert "the constraint s4 was up 80% of planned time, below its 85% target" in uptime["message"]
    assert forecast["severity"] == "critical"
    assert "at the run rate of the last 40.0 planned h the month ends at 4000 of 4600 units (13% short)" \
        in forecast["message"]
    assert all(a["severity"] in SEVERITIES and set(a) == {"v", "ts", "kind", "severity", "station", "message"}
               for a in alerts)
    assert checker.check(at(11), 2000, day_indicators(0.80), month(4000)) == []
    assert checker.check(at(9, day=4), 0, day_indicators(0.80), month(None)) != []


def test_checkpoints_are_wall_clock_times_on_a_dst_day(escalator) -> None:
    checker, _ = escalator
    # 28 March 2027: clocks jump from 02:00 to 03:00; 10:00 local is 08:00 UTC, not 09:00
    spring = int(dt.datetime(2027, 3, 28, 8, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert last_checkpoint(checker.targets, PLAN.escalation, spring) == at(10, day=28)
    assert at(10, day=28) == int(dt.datetime(2027, 3, 28, 8, tzinfo=dt.UTC).timestamp() * 1000)
