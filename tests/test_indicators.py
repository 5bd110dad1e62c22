"""Leading indicators on a small hand-made case whose every value is computed by hand in the comments."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from analysis.indicators import (
    MISSING,
    NoTelemetry,
    StationSeries,
    hour_by_hour,
    increments,
    indicators,
    infer_states,
    likely_constraint,
    series_from_records,
    state_ms,
    to_date,
    units_between,
)
from analysis.targets import decompose
from shopfloor.contract import StationKey
from shopfloor.plan import Plan
from shopfloor.plant import Line

LINE = Line.model_validate({"id": "l1", "station": [
    {"id": "a", "buffer": 4, "ideal_cycle_s": 20.0},
    {"id": "b", "buffer": 4, "ideal_cycle_s": 30.0},
    {"id": "c", "buffer": 2, "ideal_cycle_s": 10.0},
]})
MIN = 60_000
# one sample a minute; the first (t = -1 min) is the baseline before the window [0, 10 min)
TS = np.arange(-1, 10) * MIN


def station(name: str, count: list[int], scrap: list[int], queue: list[int], states: list[str]
            ) -> StationSeries:
    samples = [{"ts": int(t), "seq": i, "count": c, "scrap": s, "queue": q, "state": st}
               for i, (t, c, s, q, st) in enumerate(zip(TS, count, scrap, queue, states, strict=True))]
    return StationSeries.from_samples(name, samples)


def small_line() -> dict[str, StationSeries]:
    return {
        # a: working, 14 units, 2 scrapped in the window; mostly blocked by b
        "a": station("a", [50, 52, 54, 56, 58, 60, 62, 64, 64, 64, 64], [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2],
                     [3] * 11, ["working"] * 8 + ["blocked"] * 3),
        # b, the constraint: 6 min working, 2 down, 1 setup, 1 starved -> planned 10 min;
        # 12 units, 1 scrapped; queue 4,4,2,2,0,0,1,1,3,3 over the window (capacity 4)
        "b": station("b", [100, 102, 104, 106, 108, 109, 112, 112, 112, 112, 112],
                     [5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6], [4, 4, 4, 2, 2, 0, 0, 1, 1, 3, 3],
                     ["working", "working", "working", "working", "working", "working", "working", "down",
                      "down", "setup", "starved"]),
        # c: 10 good units out of the line, starved half the time
        "c": station("c", [0, 2, 4, 5, 6, 7, 8, 9, 10, 10, 10], [0] * 11, [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0],
                     ["working"] * 6 + ["starved"] * 5),
    }


def test_the_seven_indicators_match_the_hand_computed_values() -> None:
    result = indicators(small_line(), LINE, 0, 10 * MIN, target=12, constraint="b")
    assert result.constraint == "b"
    assert result.output == 10  # c: 10 units, none scrapped
    assert result.pace == pytest.approx(10 / 12)
    assert result.constraint_uptime == pytest.approx(1 - 2 / 10)  # 2 of 10 planned minutes down
    assert result.constraint_active_share == pytest.approx(9 / 10)  # working 6 + down 2 + setup 1
    assert result.buffer_health == pytest.approx((4 + 4 + 2 + 2 + 0 + 0 + 1 + 1 + 3 + 3) / 10 / 4)
    assert result.buffer_empty_share == pytest.approx(2 / 10)
    # b: availability 6/10, performance 30 s x 12 units / 360 s = 1, quality 11/12
    assert result.constraint_oee.availability == pytest.approx(0.6)
    assert result.constraint_oee.performance == pytest.approx(1.0)
    assert result.constraint_oee.quality == pytest.approx(11 / 12)
    assert result.constraint_oee.oee == pytest.approx(0.55)
    # line: ideal 30 s x 10 good units / 600 s planned = 0.5; 13 units finished or scrapped (10 + 2 + 1)
    assert result.line_oee.oee == pytest.approx(0.5)
    assert result.line_oee.quality == pytest.approx(10 / 13)
    assert result.scrap_rate == pytest.approx(3 / 13)
    executive = result.executive()
    assert len(executive) <= 7 and executive["constraint_oee"] == pytest.approx(0.55)
    assert result.to_json()["executive"]["output_vs_target"] == pytest.approx(10 / 12)


def test_the_constraint_is_the_most_active_station_when_not_given() -> None:
    # a: active 7 of 10 minutes (blocked 3), b: 9 of 10, c: 5 of 10
    assert likely_constraint(small_line(), LINE, 0, 10 * MIN) == "b"
    assert indicators(small_line(), LINE, 0, 10 * MIN).constraint == "b"


def test_states_hold_until_the_next_sample_and_the_last_for_the_usual_interval() -> None:
    spent = state_ms(small_line()["b"], 0, 10 * MIN)
    assert spent == {"working": 6 * MIN, "setup": MIN, "down": 2 * MIN, "starved": MIN, "blocked": 0,
                     "idle": 0}
    assert state_ms(small_line()["b"], 0, 5 * MIN + 30_000)["working"] == 5 * MIN + 30_000


def test_missing_states_are_inferred_from_the_queues() -> None:
    line = small_line()
    a, b = line["a"], line["b"]
    line["a"] = a.with_states(np.full(len(a), MISSING, dtype=np.int8))
    line["b"] = b.with_states(np.full(len(b), MISSING, dtype=np.int8))
    filled = infer_states(line, LINE)
    # a is blocked wherever b's buffer holds 4 (its capacity), b is starved where its queue is 0
    assert [s for s in filled["a"].state.tolist()] == [4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0]
    assert [s for s in filled["b"].state.tolist()] == [0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0]
    assert filled["c"] is line["c"]


def test_a_counter_reset_counts_from_zero() -> None:
    assert increments(np.array([5, 7, 2, 4])).tolist() == [2, 2, 2]
    series = StationSeries.from_samples("x", [
        {"ts": t * MIN, "seq": t, "count": c, "queue": 0} for t, c in enumerate([90, 95, 3, 8])])
    assert units_between(series, 0, 4 * MIN) == 5 + 3 + 5


def test_a_station_without_telemetry_is_a_clear_error() -> None:
    line = small_line()
    del line["c"]
    with pytest.raises(NoTelemetry, match="no telemetry of station c on line l1"):
        indicators(line, LINE, 0, 10 * MIN)


def test_records_are_grouped_by_station_of_the_line() -> None:
    records = [(StationKey("p", "l1", "a"), {"ts": 2, "seq": 1, "count": 3, "queue": 0}),
               (StationKey("p", "l1", "a"), {"ts": 1, "seq": 0, "count": 1, "queue": 0}),
               (StationKey("p", "l2", "a"), {"ts": 1, "seq": 0, "count": 1, "queue": 0})]
    telemetry = series_from_records(records, "l1")
    assert list(telemetry) == ["a"] and telemetry["a"].ts.tolist() == [1, 2]
    assert telemetry["a"].state.tolist() == [MISSING, MISSING] and telemetry["a"].scrap.tolist() == [0, 0]


PLAN = Plan.model_validate({
    "objective": [{"line": "l1", "year": 2027, "units": 40_000}],
    "calendar": {"timezone": "UTC", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"}],
                 "holidays": ["2027-01-01"]},
})


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def test_hour_by_hour_output_against_the_hour_targets() -> None:
    targets = decompose(PLAN, "l1")
    rate = 40_000 / targets.production_hours  # about 19.6 units an hour, 250 days x 8 h
    day = ms(2027, 3, 2)
    last = StationSeries.from_samples("c", [
        {"ts": day + h * 3_600_000 + 1, "seq": h, "count": h * 20, "queue": 0} for h in range(24)])
    telemetry = {"c": last}
    hours = hour_by_hour(telemetry, LINE, targets, day, day + 24 * 3_600_000)
    assert len(hours) == 24
    assert [h["output"] for h in hours] == [0] + [20] * 23
    assert sum(h["target"] for h in hours[6:14]) == pytest.approx(8 * rate, abs=1)
    assert hours[5]["target"] == 0 and hours[14]["target"] == 0


def test_month_to_date_and_the_run_rate_forecast() -> None:
    targets = decompose(PLAN, "l1")
    now = ms(2027, 3, 16, 10)  # March: 23 workdays; 11 full days and 4 hours done (92 of 184 h)
    month = to_date(targets, "month", now, actual=1500)
    assert month.start_ms == ms(2027, 3, 1) and month.end_ms == ms(2027, 4, 1)
    assert month.due == pytest.approx(targets.due_between(ms(2027, 3, 1), now))
    assert month.target == sum(p.units for p in targets.periods("day")
                               if ms(2027, 3, 1) <= p.start.timestamp() * 1000 < ms(2027, 4, 1))
    assert month.forecast == pytest.approx(1500 / 92 * 184)
    quarter = to_date(targets, "quarter", now, actual=5000)
    assert quarter.start_ms == ms(2027, 1, 1) and quarter.end_ms == ms(2027, 4, 1)
    assert to_date(targets, "month", ms(2027, 3, 1), actual=0).forecast is None
