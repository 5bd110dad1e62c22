"""Properties of every number the huddle and the executive view print, over random simulated days.

Each example is a simulator run of a library scenario (random seed, length, a start in the middle of
an hour), then made harder the way real lines are: the exit station's counter is reset once, it
scraps units a few samples after counting them and reports `scrap` only in some samples, states may
be missing (so the detector's inference runs), and the plant file's ideal cycles may be too slow or
too fast. Whatever the data, OEE and each factor stay in [0, 1] (line OEE at most the constraint's),
the hours add up to the day, and a quarter's forecast is never below the forecast of a month in it.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.indicators import Oee, by_station
from analysis.rollup import day_report
from analysis.telemetry import gather
from shopfloor.plan import Plan
from shopfloor.plant import Line, Plant
from simulators.scenario import load_scenario
from simulators.telemetry import simulate_telemetry

SCENARIOS = sorted((Path(__file__).parent.parent / "simulators" / "scenarios").glob("*.toml"))
DAY_MS = 1_789_948_800_000  # 2026-09-21 00:00 UTC, a Monday
HOUR_MS = 3_600_000


def plan(line: str) -> Plan:
    return Plan.model_validate({
        "objective": [{"line": line, "year": 2026, "units": 900_000}],
        "calendar": {"timezone": "UTC", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"},
                                                   {"name": "B", "start": "14:00", "end": "22:00"}]}})


def bounded(oee: Oee) -> bool:
    return all(0.0 <= value <= 1.0 for value in (oee.availability, oee.performance, oee.quality, oee.oee))


@st.composite
def days(draw):
    scenario = load_scenario(draw(st.sampled_from(SCENARIOS)))
    start = DAY_MS + 6 * HOUR_MS + draw(st.integers(0, 59)) * 60_000  # the line starts mid-hour
    hours, seed = draw(st.sampled_from([1.5, 2.5, 3.5])), draw(st.integers(0, 999))
    telemetry = simulate_telemetry(scenario, hours, seed, start)
    records = list(telemetry.records(scenario.plant_id, scenario.line_id))
    line = scenario.plant.line[0]
    exit_id = line.station_ids[-1]
    reset_at = draw(st.floats(0.1, 0.9))
    lag = draw(st.integers(1, 5))
    keep_states = draw(st.booleans())
    reported = draw(st.floats(0.2, 1.0))
    exits = [sample for key, sample in records if key.station == exit_id]
    cut = exits[int(len(exits) * reset_at)]["count"]
    history: list[int] = []
    samples = []
    for index, (key, sample) in enumerate(records):
        sample = dict(sample)
        if not keep_states:
            sample.pop("state", None)
        if key.station == exit_id:
            history.append(sample["count"])
            scrapped = history[max(0, len(history) - 1 - lag)] // 11  # counted, then scrapped later
            if sample["ts"] >= exits[int(len(exits) * reset_at)]["ts"]:
                sample["count"] -= cut  # the PLC counter was reset: it counts from 0 again
                scrapped = max(0, scrapped - cut // 11)
            if (index * 7919 % 1000) / 1000 < reported:  # scrap in some samples only
                sample["scrap"] = scrapped
        samples.append((key.station, sample))
    factor = draw(st.sampled_from([0.5, 1.0, 1.6]))
    plant = Plant(plant=scenario.plant_id, line=[Line.model_validate({
        "id": line.id, "station": [{"id": s.id, "buffer": s.buffer, "ideal_cycle_s": s.ideal_cycle_s * factor}
                                   for s in line.stations]})])
    extra = draw(st.integers(0, 50_000))  # units made earlier in the quarter, before this month
    since = draw(st.integers(0, 80)) * 24 * HOUR_MS  # when the line's data began, days into the quarter
    return plant, by_station(gather(plant, line.id, samples, "simulation")), extra, since


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_every_figure_is_bounded_and_consistent(day) -> None:
    plant, telemetry, extra, since = day
    line = plant.lines[0]
    end = max(int(series.ts[-1]) for series in telemetry.values()) + 1
    report = day_report(plan(line.id), line, telemetry, DAY_MS, end)
    result = report.indicators
    for indicators in [result, *(shift for _, shift in report.shifts)]:
        assert bounded(indicators.constraint_oee) and bounded(indicators.line_oee)
        assert indicators.line_oee.oee <= indicators.constraint_oee.oee + 1e-12
        assert 0.0 <= indicators.scrap_rate <= 1.0 and 0.0 <= indicators.constraint_uptime <= 1.0
    assert sum(hour["output"] for hour in report.hours) == result.output
    assert sum(shift.output for _, shift in report.shifts) == result.output
    assert report.month.forecast is None or report.quarter.forecast >= report.month.forecast
    # the same with more units earlier in the quarter and the data starting earlier in it
    quarter_start = report.quarter.start_ms
    again = day_report(plan(line.id), line, telemetry, DAY_MS, end, month_actual=report.month.actual,
                       quarter_actual=report.month.actual + extra, data_since_ms=quarter_start + since)
    if again.month.forecast is not None:
        assert again.quarter.forecast >= again.month.forecast
    else:
        assert again.quarter.forecast is None
