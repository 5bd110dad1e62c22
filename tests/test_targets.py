"""Decomposition of the annual goal: exact sums at every grain on a real calendar (holidays, planned
downtime, DST changes, a night shift across midnight and the year end), re-plans, and clear errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.targets import GRAINS, PlanError, decompose, largest_remainder
from shopfloor.errors import ConfigError
from shopfloor.plan import Plan, load_plan

BERLIN = """
[[objective]]
line = "l1"
year = 2027
units = 1234567

[calendar]
timezone = "Europe/Berlin"
workdays = ["mon", "tue", "wed", "thu", "fri", "sat"]
shifts = [{ name = "A", start = "06:00", end = "14:00" }, { name = "B", start = "14:00", end = "22:00" },
          { name = "N", start = "22:00", end = "06:00" }]
holidays = ["2027-01-01", "2027-05-01", "2027-12-24", "2027-12-25"]
downtime = [{ date = "2027-08-02", hours = 16 }, { date = "2027-03-10", hours = 3, start = "12:00" }]
reserve = 0.10
"""


def write_plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def berlin(tmp_path_factory) -> Plan:
    return load_plan(write_plan(tmp_path_factory.mktemp("plan"), BERLIN))


def within(inner, outer) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


def assert_nested_sums(children, parents) -> None:
    """Every parent period's units are exactly the sum of the child periods inside it."""
    totals = defaultdict(int)
    for child in children:
        owners = [index for index, parent in enumerate(parents) if within(child, parent)]
        assert len(owners) == 1, f"{child.label} is not inside exactly one parent"
        totals[owners[0]] += child.units
    assert [totals[index] for index in range(len(parents))] == [parent.units for parent in parents]


def test_every_grain_sums_exactly_to_the_grain_above(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    periods = {grain: targets.periods(grain) for grain in GRAINS}
    assert [p.units for p in periods["year"]] == [1234567]
    for grain in GRAINS:
        assert sum(p.units for p in periods[grain]) == 1234567, grain
        assert all(isinstance(p.units, int) and p.units >= 0 for p in periods[grain])
    assert_nested_sums(periods["quarter"], periods["year"])
    assert_nested_sums(periods["month"], periods["quarter"])
    assert_nested_sums(periods["day"], periods["month"])
    assert_nested_sums(periods["day"], periods["week"])
    assert_nested_sums(periods["hour"], periods["day"])
    # shifts cross midnight, so they do not nest in days; hours nest in shifts (all start on the hour)
    hours = periods["hour"]
    by_start = {h.start: index for index, h in enumerate(hours)}
    for shift in periods["shift"]:
        first = by_start[shift.start]
        inside = [h.units for h in hours[first:first + 10] if within(h, shift)]
        assert sum(inside) == shift.units, shift.label


def test_every_period_of_the_year_is_listed_including_empty_ones(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    assert len(targets.periods("day")) == 365
    assert len(targets.periods("hour")) == 8760  # 23 h on 28 March and 25 h on 31 October
    assert len(targets.periods("month")) == 12 and len(targets.periods("quarter")) == 4
    days = targets.periods("day")
    assert all(a.end == b.start for a, b in zip(days, days[1:], strict=False))
    shifts = {p.label: p for p in targets.periods("shift")}
    # every shift of every day (0 units on Sundays and holidays), and 2026-12-31 N reaches into the year
    assert len(shifts) == 3 * 365 + 1
    assert shifts["2027-01-10 A"].units == shifts["2027-01-10 N"].units == 0


def test_dst_changes_give_real_elapsed_hours(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    shifts = {p.label: p for p in targets.periods("shift")}
    assert shifts["2027-03-27 N"].production_hours == 7  # clocks jump 02:00 -> 03:00
    assert shifts["2027-10-30 N"].production_hours == 9  # clocks fall back 03:00 -> 02:00
    assert shifts["2027-03-26 N"].production_hours == 8
    per_hour = shifts["2027-03-26 N"].units / 8
    assert abs(shifts["2027-03-27 N"].units - 7 * per_hour) < 3
    assert abs(shifts["2027-10-30 N"].units - 9 * per_hour) < 3
    twice = [h for h in targets.periods("hour") if h.start.date() == dt.date(2027, 10, 31)
             and h.start.hour == 2]
    assert [h.start.isoformat() for h in twice] == ["2027-10-31T02:00:00+02:00", "2027-10-31T02:00:00+01:00"]
    assert all(h.units > 0 for h in twice)


def test_holidays_downtime_and_the_night_shift_belong_to_the_day_they_start(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    days = {p.start.date(): p for p in targets.periods("day")}
    # 1 January is a holiday, but the night shift of Thursday 31 December 2026 runs until 06:00
    assert days[dt.date(2027, 1, 1)].production_hours == 6
    # 2 August (a Monday): 16 h of maintenance from 06:00 leave only the night shift, 2 hours of it
    # before midnight; Sunday's night shift does not run
    assert days[dt.date(2027, 8, 2)].production_hours == 2
    shifts = {p.label: p for p in targets.periods("shift")}
    assert shifts["2027-08-02 A"].units == shifts["2027-08-02 B"].units == 0
    assert shifts["2027-08-02 N"].production_hours == 8
    assert shifts["2027-03-10 A"].production_hours == 6 and shifts["2027-03-10 B"].production_hours == 7
    assert shifts["2027-12-24 A"].units == 0 and shifts["2027-12-23 N"].units > 0
    # Sunday is not a workday, yet Saturday's night shift fills its first 6 hours
    assert days[dt.date(2027, 1, 10)].production_hours == 6 and days[dt.date(2027, 1, 10)].units > 0


def test_targets_are_fair_shares_of_the_production_time(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    rate = 1234567 / targets.production_hours
    # each level is within one unit of its share of its parent: a day within 3 of its share of the
    # year; weeks and shifts, which cross months and days, stay close because ties are spread
    for grain, bound in (("quarter", 1), ("month", 2), ("day", 3), ("week", 3), ("shift", 2)):
        for period in targets.periods(grain):
            assert abs(period.units - rate * period.production_hours) < bound, period.label


def test_iso_weeks_are_clipped_to_the_year(berlin: Plan) -> None:
    targets = decompose(berlin, "l1")
    weeks = targets.periods("week")
    assert weeks[0].label == "2026-W53"
    assert weeks[0].start.isoformat() == "2027-01-01T00:00:00+01:00"
    assert weeks[0].end.isoformat() == "2027-01-04T00:00:00+01:00"
    days = targets.periods("day")
    assert weeks[0].units == sum(d.units for d in days[:3]) > 0
    assert weeks[-1].end.isoformat() == "2028-01-01T00:00:00+01:00"
    shifts = targets.periods("shift")
    assert shifts[0].label == "2026-12-31 N" and shifts[0].start.isoformat() == "2027-01-01T00:00:00+01:00"
    assert shifts[-1].label == "2027-12-31 N" and shifts[-1].end.isoformat() == "2028-01-01T00:00:00+01:00"


def test_a_replan_keeps_the_delivered_units_and_spreads_the_rest(berlin: Plan) -> None:
    as_of = dt.datetime(2027, 7, 14, 10, 30)  # mid-shift, mid-hour, mid-month, mid-week
    targets = decompose(berlin, "l1", as_of=as_of, delivered=500_001)
    cut = as_of.replace(tzinfo=targets.zone)
    hours = targets.periods("hour")
    before = sum(h.units for h in hours if h.end <= cut)
    straddling = next(h for h in hours if h.start < cut < h.end)
    assert targets.due_between(targets.year_start_ms, int(cut.timestamp() * 1000)) == pytest.approx(500_001)
    assert before < 500_001 <= before + straddling.units
    for grain in GRAINS:
        assert sum(p.units for p in targets.periods(grain)) == 1234567, grain
    future_hours = targets.production_ms_between(int(cut.timestamp() * 1000), targets.year_end_ms) / 3_600_000
    rate = (1234567 - 500_001) / future_hours
    for day in targets.periods("day"):
        if day.start > cut:
            assert abs(day.units - rate * day.production_hours) < 3, day.label


def test_a_replan_in_the_file_and_over_delivery(tmp_path: Path) -> None:
    text = BERLIN.replace("units = 1234567", "units = 1000\nas_of = 2027-06-01\ndelivered = 1200")
    targets = decompose(load_plan(write_plan(tmp_path, text)), "l1")
    months = targets.periods("month")
    assert sum(m.units for m in months[:5]) == 1200 and sum(m.units for m in months[5:]) == 0


def test_reserve_does_not_change_targets(tmp_path: Path, berlin: Plan) -> None:
    without = load_plan(write_plan(tmp_path, BERLIN.replace("reserve = 0.10", "reserve = 0.0")))
    assert [p.units for p in decompose(without, "l1").periods("day")] == \
        [p.units for p in decompose(berlin, "l1").periods("day")]


def test_largest_remainder_goes_to_the_largest_fractions() -> None:
    assert largest_remainder(10, np.array([1, 1, 1])).tolist() == [4, 3, 3]
    assert largest_remainder(7, np.array([5, 3, 2])).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4
    assert largest_remainder(0, np.array([5, 3])).tolist() == [0, 0]


@settings(max_examples=25, deadline=None)
@given(units=st.integers(0, 10**9), day_weights=st.lists(st.integers(0, 86_400_000), min_size=1, max_size=40))
def test_largest_remainder_is_exact_and_within_one_unit(units: int, day_weights: list[int]) -> None:
    weights = np.array(day_weights, dtype=np.int64)
    if weights.sum() == 0:
        weights[0] = 1
    shares = largest_remainder(units, weights)
    assert int(shares.sum()) == units
    exact = units * weights / weights.sum()
    assert np.all(np.abs(shares - exact) < 1)


@settings(max_examples=12, deadline=None)
@given(units=st.integers(0, 5_000_000), year=st.integers(2024, 2030),
       zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]),
       night=st.booleans())
def test_sums_are_exact_for_any_units_year_and_zone(tmp_path_factory, units: int, year: int, zone: str,
                                                    night: bool) -> None:
    text = (BERLIN.replace("units = 1234567", f"units = {units}").replace("year = 2027", f"year = {year}")
            .replace("Europe/Berlin", zone).replace("downtime = [", "# downtime = ["))
    text = text.replace('"2027-', f'"{year}-')
    if not night:
        text = text.replace(', { name = "N", start = "22:00", end = "06:00" }', "")
    targets = decompose(load_plan(write_plan(tmp_path_factory.mktemp("p"), text)), "l1")
    for grain in GRAINS:
        periods = targets.periods(grain)
        assert sum(p.units for p in periods) == units
        assert all(a.end == b.start for a, b in zip(periods, periods[1:], strict=False)) or grain == "shift"


@pytest.mark.parametrize(("change", "message"), [
    (('end = "14:00" }', 'end = "15:00" }'), "shifts A and B overlap"),
    (('start = "22:00", end = "06:00"', 'start = "22:00", end = "06:30"'), "shifts A and N overlap"),
    (('"2027-05-01"', '"2027-02-30"'), "'2027-02-30' is not a date that exists"),
    (('"2027-05-01"', '"2072-05-01"'), "holiday 2072-05-01 is in no year of the plan's objectives (2027)"),
    (('"2027-05-01"', '2027-05-01T10:00:00'), "is a date and time: give a date like 2027-08-02"),
    (('{ date = "2027-08-02", hours = 16 }', '{ date = "2027-08-08", hours = 4 }'),
     "downtime on 2027-08-08 falls on a day without shifts"),
    (('{ date = "2027-08-02", hours = 16 }', '{ date = "2027-08-02", hours = 25 }'),
     "less than or equal to 24"),
    (('"sat"]', '"saturday"]'), "unknown weekday 'saturday'"),
    (("Europe/Berlin", "Europe/Atlantis"), "unknown timezone 'Europe/Atlantis'"),
    (('start = "06:00"', 'start = "6am"'), "'6am' is not a clock time"),
    (("reserve = 0.10", "reserve = 1.5"), "reserve"),
    (("units = 1234567", "units = 1\nas_of = 2027-01-05"), "a re-plan needs both as_of and delivered"),
    (("units = 1234567", "units = 1\nas_of = 2028-01-05\ndelivered = 0"), "outside the year 2027"),
])
def test_bad_plans_are_one_line_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in BERLIN
    with pytest.raises(ConfigError) as error:
        decompose(load_plan(write_plan(tmp_path, BERLIN.replace(*change))), "l1")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(tmp_path))


def test_decomposition_errors(tmp_path: Path, berlin: Plan) -> None:
    no_time = """[[objective]]\nline = "l1"\nyear = 2027\nunits = 5\n[calendar]\nworkdays = []
shifts = [{ name = "A", start = "06:00", end = "14:00" }]\n"""
    with pytest.raises(PlanError, match="l1 has no production time in 2027"):
        decompose(load_plan(write_plan(tmp_path, no_time)), "l1")
    short = BERLIN.replace('hours = 3, start = "12:00"', 'hours = 20, start = "12:00"')
    with pytest.raises(PlanError, match="on 2027-03-10 removes 20 h but the day's shifts have only 18 h"):
        decompose(load_plan(write_plan(tmp_path, short)), "l1")
    with pytest.raises(ConfigError, match="no objective for line 'l9'; it has \\['l1'\\]"):
        decompose(berlin, "l9")
    with pytest.raises(ConfigError, match="no objective for line l1 in 2031"):
        decompose(berlin, "l1", 2031)
    with pytest.raises(PlanError, match="units remain after .* no production time left"):
        decompose(berlin, "l1", as_of=dt.datetime(2028, 1, 1), delivered=5)
    with pytest.raises(ConfigError, match="plan file .*missing.toml does not exist"):
        load_plan(tmp_path / "missing.toml")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from shopfloor.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_the_design_json_shape_and_one_line_errors(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, BERLIN)
    done = run_cli("targets", "show", "--plan", str(plan), "--line", "l1", "--grain", "day", "--json")
    assert done.returncode == 0, done.stderr
    document = orjson.loads(done.stdout)
    assert set(document) == {"line", "grain", "targets"} and document["line"] == "l1"
    assert document["grain"] == "day" and len(document["targets"]) == 365
    monday = document["targets"][3]
    assert monday == {"start": "2027-01-04T00:00:00+01:00", "end": "2027-01-05T00:00:00+01:00",
                      "units": monday["units"]} and monday["units"] > 0
    assert document["targets"][200]["start"].endswith("+02:00")
    assert sum(t["units"] for t in document["targets"]) == 1234567
    table = run_cli("targets", "show", "--plan", str(plan), "--line", "l1", "--grain", "quarter")
    assert table.returncode == 0 and "2027-Q3" in table.stdout and "1,234,567 units" in table.stdout
    bad = run_cli("targets", "show", "--plan", str(plan), "--line", "l1", "--grain", "fortnight")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown grain" in bad.stderr
    missing = run_cli("targets", "show", "--plan", str(tmp_path / "nope.toml"), "--line", "l1")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_example_plan_decomposes() -> None:
    example = Path(__file__).parent.parent / "examples" / "plan.toml"
    targets = decompose(load_plan(example), "l1")
    assert targets.total_units == 1_200_000 and targets.calendar.reserve == 0.10


def test_a_billion_units_on_a_24_hour_shift_in_a_leap_year_stay_exact() -> None:
    plan = Plan.model_validate({"objective": [{"line": "l1", "year": 2028, "units": 10**9}], "calendar": {
        "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "shifts": [{"name": "D", "start": "00:00", "end": "00:00"}]}})
    targets = decompose(plan, "l1")
    days = targets.periods("day")
    assert len(days) == 366 and targets.production_hours == 366 * 24
    assert sum(d.units for d in days) == 10**9 and {d.units for d in days} <= {2732240, 2732241}
    with pytest.raises(ValueError, match="less than or equal to 1000000000"):
        Plan.model_validate({**plan.model_dump(),
                             "objective": [{"line": "l1", "year": 2028, "units": 10**9 + 1}]})


def test_watch_reports_a_store_that_is_away_and_goes_on(tmp_path: Path) -> None:
    plant = tmp_path / "plant.toml"
    plant.write_text('plant = "p1"\n[[line]]\nid = "l1"\n[[line.station]]\nid = "s1"\nbuffer = 2\n'
                     'ideal_cycle_s = 10.0\n')
    done = run_cli("targets", "watch", "--plant", str(plant), "--plan", str(write_plan(tmp_path, BERLIN)),
                   "--rounds", "1", "--no-alerts", "--influx-url", "http://127.0.0.1:9",
                   "--now", "2027-03-02T10:00:00+01:00")
    assert done.returncode == 0, done.stderr
    assert "line l1: skipped: InfluxDB at http://127.0.0.1:9 is not reachable" in done.stdout


@settings(max_examples=15, deadline=None)
@given(minute=st.integers(0, 365 * 24 * 60), delivered=st.integers(0, 2_000_000))
def test_any_replan_keeps_the_delivered_units_before_it(berlin: Plan, minute: int, delivered: int) -> None:
    as_of = dt.datetime(2027, 1, 1) + dt.timedelta(minutes=minute)
    try:
        targets = decompose(berlin, "l1", as_of=as_of, delivered=delivered)
    except PlanError as error:  # no production time on one side of the cut: said so, in one line
        assert "no production time" in str(error) and "\n" not in str(error)
        return
    cut = int(as_of.replace(tzinfo=targets.zone).timestamp() * 1000)
    before = int(targets.leaf_units[targets.leaf_start_ms < cut].sum())
    assert before == delivered
    assert targets.total_units == max(1234567, delivered)
    assert sum(p.units for p in targets.periods("week")) == targets.total_units


def test_shift_hours_of_half_hour_shifts_are_exact_and_on_the_shift() -> None:
    """Shifts at 05:30 and 13:30: the shift_hour grain starts at :30, sums exactly to the year, each
    shift's hours sum to its shift target, and a shift hour is the decomposition's due in it."""
    from shopfloor.plan import Plan

    plan = Plan.model_validate({"objective": [{"line": "l1", "year": 2027, "units": 123_457}], "calendar": {
        "timezone": "Europe/Berlin", "shifts": [{"name": "A", "start": "05:30", "end": "13:30"},
                                                {"name": "B", "start": "13:30", "end": "21:30"}]}})
    targets = decompose(plan, "l1")
    hours = targets.periods("shift_hour")
    assert {period.start.minute for period in hours} == {30}
    assert sum(period.units for period in hours) == 123_457
    shifts = {period.label: period.units for period in targets.periods("shift")}
    per_shift: dict[str, int] = {}
    for period in hours:
        shift = period.label.rsplit(" ", 1)[0]
        per_shift[shift] = per_shift.get(shift, 0) + period.units
    assert per_shift == shifts
    for period in hours[:200]:
        start, end = int(period.start.timestamp() * 1000), int(period.end.timestamp() * 1000)
        assert period.units == pytest.approx(targets.due_between(start, end), abs=1e-9)
    assert sum(period.units for period in targets.periods("hour")) == 123_457  # clock hours unchanged
