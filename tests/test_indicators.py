"""Leading indicators on a small hand-made case whose every value is computed by hand in the comments."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from analysis.indicators import (
    CODE,
    MISSING,
    NoTelemetry,
    by_station,
    hour_by_hour,
    increments,
    indicators,
    likely_constraint,
    line_states,
    state_ms,
    to_date,
    units_between,
)
from analysis.states import spans
from analysis.targets import decompose
from analysis.telemetry import LineTelemetry, StationSeries, from_file
from shopfloor.contract import StationKey, write_records
from shopfloor.plan import Plan
from shopfloor.plant import Line, Plant

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
    return series(TS, count, queue, scrap, [CODE[state] for state in states])


def series(ts, count, queue, scrap=None, state=None) -> StationSeries:
    n = len(ts)
    return StationSeries(np.asarray(ts, dtype=np.int64), np.asarray(count, dtype=np.int64),
                         np.asarray(queue, dtype=np.int64),
                         np.asarray(scrap if scrap is not None else [0] * n, dtype=np.int64),
                         np.asarray(state if state is not None else [MISSING] * n, dtype=np.int8))


def with_states(series: StationSeries, state: np.ndarray) -> StationSeries:
    return StationSeries(series.ts, series.count, series.queue, series.scrap, state.astype(np.int8))


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
    # line: 13 units finished or scrapped (10 + 2 + 1) in b's 360 s working at the line's ideal 30 s
    # is 108 %: more than the constraint can make, a data problem held at 100 % and named
    assert result.line_oee.performance == 1.0
    assert "faster than its ideal cycle of 30 s (108%)" in result.line_oee.problem
    assert result.line_oee.quality == pytest.approx(10 / 13)
    assert result.line_oee.oee == pytest.approx(0.6 * 10 / 13)
    assert result.line_oee.oee <= result.constraint_oee.oee and result.constraint_oee.problem is None
    assert result.scrap_rate == pytest.approx(3 / 13)
    executive = result.executive()
    assert len(executive) <= 7 and executive["constraint_oee"] == pytest.approx(0.55)
    assert result.to_json()["executive"]["output_vs_target"] == pytest.approx(10 / 12)


def test_a_cycle_faster_than_the_ideal_one_is_a_data_problem_not_234_percent() -> None:
    """b made 12 units in 360 s of working time; with a 70 s ideal cycle that would be 233 %."""
    slow = Line.model_validate({"id": "l1", "station": [
        {"id": "a", "buffer": 4, "ideal_cycle_s": 20.0}, {"id": "b", "buffer": 4, "ideal_cycle_s": 70.0},
        {"id": "c", "buffer": 2, "ideal_cycle_s": 10.0}]})
    result = indicators(small_line(), slow, 0, 10 * MIN, constraint="b")
    oee = result.constraint_oee
    assert oee.performance == 1.0 and oee.oee == pytest.approx(0.6 * 11 / 12)
    assert oee.problem == ("the constraint b made 12 units in 360 s of working time, faster than its "
                           "ideal cycle of 70 s (233%): check ideal_cycle_s in the plant file or the "
                           "station's states")
    assert result.to_json()["constraint_oee"]["problem"] == oee.problem
    assert result.line_oee.oee <= oee.oee


def test_the_constraint_is_the_most_active_station_when_not_given() -> None:
    # a: active 7 of 10 minutes (blocked 3), b: 9 of 10, c: 5 of 10
    assert likely_constraint(line_states(small_line(), LINE), LINE, 0, 10 * MIN) == "b"
    assert indicators(small_line(), LINE, 0, 10 * MIN).constraint == "b"


def test_states_hold_until_the_next_sample_and_the_last_for_the_usual_interval() -> None:
    b = line_states(small_line(), LINE)["b"]
    spent = state_ms(b, 0, 10 * MIN)
    assert spent == {"working": 6 * MIN, "setup": MIN, "down": 2 * MIN, "starved": MIN, "blocked": 0,
                     "idle": 0}
    assert state_ms(b, 0, 5 * MIN + 30_000)["working"] == 5 * MIN + 30_000


def test_missing_states_come_from_the_detectors_inference_only() -> None:
    """No second inference: without reported states the indicators use analysis.states' WIP
    conservation, so the indicators and the detector cannot name two constraints from one data set."""
    line = {name: with_states(s, np.full(len(s), MISSING)) for name, s in small_line().items()}
    found = line_states(line, LINE)
    detector = spans(LineTelemetry("", LINE, [line[s.id] for s in LINE.stations]))
    assert detector.inferred
    for index, station in enumerate(LINE.stations):
        assert found[station.id].code.tolist() == detector.code[index].tolist()
        assert found[station.id].ts.tolist() == detector.ts[index].tolist()
    # c's queue is empty at most samples, which `queue == 0` would call starved; WIP conservation
    # (b's good output arrives, c completes it) keeps c working while it holds a unit
    c_states = state_ms(found["c"], 0, 10 * MIN)
    assert c_states["working"] > c_states["starved"]


def test_a_counter_reset_counts_from_zero() -> None:
    assert increments(np.array([5, 7, 2, 4])).tolist() == [2, 2, 2]
    counter = series(np.arange(4) * MIN, [90, 95, 3, 8], [0] * 4)
    assert units_between(counter, 0, 4 * MIN) == 5 + 3 + 5


def test_a_station_without_telemetry_is_a_clear_error() -> None:
    line = small_line()
    del line["c"]
    with pytest.raises(NoTelemetry, match="no telemetry of station c on line l1"):
        indicators(line, LINE, 0, 10 * MIN)


def test_telemetry_of_a_file_is_keyed_by_station(tmp_path) -> None:
    records = [(StationKey("p", "l1", "a"), {"ts": 2, "seq": 1, "count": 3, "queue": 0}),
               (StationKey("p", "l1", "a"), {"ts": 1, "seq": 0, "count": 1, "queue": 0}),
               (StationKey("p", "l2", "a"), {"ts": 1, "seq": 0, "count": 1, "queue": 0})]
    write_records(tmp_path / "t.jsonl", records)
    plant = Plant(plant="p", line=[LINE])
    telemetry = by_station(from_file(plant, "l1", tmp_path / "t.jsonl"))
    assert list(telemetry) == ["a", "b", "c"] and telemetry["a"].ts.tolist() == [1, 2]
    assert len(telemetry["b"]) == 0
    with pytest.raises(NoTelemetry, match="no telemetry of station b on line l1"):
        indicators(telemetry, LINE, 0, 10)


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
    telemetry = {"c": series([day + h * 3_600_000 + 1 for h in range(24)], [h * 20 for h in range(24)],
                             [0] * 24)}
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


def test_a_state_does_not_hold_across_a_gap_in_the_samples() -> None:
    # one sample a minute, then the agent is away for an hour: the last state before the gap holds
    # one usual interval, not the whole hour
    ts = [0, MIN, 2 * MIN, 62 * MIN, 63 * MIN]
    away = series(ts, [0, 1, 2, 3, 4], [1] * 5, state=[CODE["working"]] * 2 + [CODE["down"]] + [0] * 2)
    spent = state_ms(line_states({"a": away}, LINE)["a"], 0, 64 * MIN)
    assert spent["down"] == MIN and spent["working"] == 4 * MIN
