"""Good units from counters, one rule (shopfloor.counters) in every consumer, on the real InfluxDB.

A hand-made exit station that starts mid-hour, wraps its 16-bit counter, is reset, scraps a unit a
sample after counting it and leaves `scrap` out of some samples; every expected number is worked out
by hand in the comments. The same numbers must come from the indicators (from the store and from a
file), the stored to-date sum, `shopfloor targets indicators --json` and the boards' panel queries.
Then the three forms of the rule (the agent's `step`, numpy, InfluxQL) are checked against each
other on random counter series.
"""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from analysis.indicators import by_station, hour_by_hour, read_line_output, units_between
from analysis.output_hours import write_hours
from analysis.rollup import stored_day_report
from analysis.targets import decompose
from analysis.telemetry import from_file
from dashboards import queries as q
from dashboards.macros import QueryContext, expand
from edge_agent.counters import Counter
from shopfloor.cli import _mount_subcommands, app
from shopfloor.contract import STATION_MEASUREMENT, StationKey, sample_line, write_records
from shopfloor.counters import increments, influxql_units, step
from shopfloor.plan import Plan
from shopfloor.plant import Plant
from shopfloor.store import quote_ident

MIN = 60_000
HOUR_MS = 3_600_000
H8 = int(dt.datetime(2027, 3, 2, 8, tzinfo=dt.UTC).timestamp() * 1000)  # a Tuesday, 08:00 UTC
DAY = H8 - 8 * HOUR_MS

# (minutes after 08:00, count, scrap or None)            count units   scrap units
SAMPLES = [
    (20, 65_530, None),  # the line starts mid-hour:     baseline
    (25, 65_533, None),  #                                +3
    (30, 65_535, 7),     # first scrap: its baseline      +2            0
    (35, 4, None),       # 16-bit wrap: 4 + 65536 - 65535 +5
    (40, 6, None),       # no scrap: not 0, no reset      +2
    (45, 8, 7),          #                                +2            0
    (50, 8, 8),          # the unit of 08:45 scrapped     0             +1
    (55, 2, None),       # reset on the PLC: 2 made since +2
    (60, 5, None),       # 09:00                          +3
    (70, 9, 9),          #                                +4            +1
]
# hour 08: 3 + 2 + 5 + 2 + 2 + 0 + 2 = 16 units, 1 scrapped: 15 good; hour 09: 3 + 4 = 7, 1: 6 good
HOURS = {H8: 15, H8 + HOUR_MS: 6}
UNITS = 16 + 7

PLAN = Plan.model_validate({
    "objective": [{"line": "l1", "year": 2027, "units": 40_000}],
    "calendar": {"timezone": "UTC", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"}]},
})


def plant(plant_id: str) -> Plant:
    return Plant.model_validate({"plant": plant_id, "timezone": "UTC", "line": [
        {"id": "l1", "station": [{"id": "s1", "buffer": 4, "ideal_cycle_s": 10.0}]}]})


def records(plant_id: str) -> list[tuple[StationKey, dict]]:
    key = StationKey(plant_id, "l1", "s1")
    out = []
    for seq, (minute, count, scrap) in enumerate(SAMPLES):
        sample = {"ts": H8 + minute * MIN, "seq": seq, "count": count, "queue": 1, "state": "working"}
        if scrap is not None:
            sample["scrap"] = scrap
        out.append((key, sample))
    return out


@pytest.fixture
def filled(store, plant_id):
    store.write([sample_line(key, sample) for key, sample in records(plant_id)])
    return store, plant(plant_id)


def board_rows(store, query: str, plant_id: str, start_ms: int, end_ms: int) -> list[dict]:
    context = QueryContext(start_ms, end_ms, {"plant": plant_id, "line": "l1", "timezone": "UTC",
                                              "bucket_offset": "0s"})
    return store.query(expand(query, context)).rows()


def test_every_consumer_counts_the_hand_computed_good_units(filled, plant_id, tmp_path) -> None:
    store, model = filled
    line = model.lines[0]
    end = H8 + 2 * HOUR_MS
    # the boards' panel queries (the huddle's hourly bars and total, the executive's to-date sum)
    exits = q.exit_filter([line])
    hourly = board_rows(store, q.hourly_output(exits), plant_id, DAY, end - 1)
    assert {row["time"]: row["actual"] for row in hourly if row["actual"]} == HOURS
    assert board_rows(store, q.range_output(exits), plant_id, DAY, end - 1)[0]["actual"] == 21
    # the executive's to-date sum reads the hourly rollup the live loop writes (analysis/output_hours.py)
    write_hours(store, model, "l1", DAY, end, end)
    assert board_rows(store, q.period_output(exits), plant_id, DAY, end - 1)[0]["actual"] == 21
    assert board_rows(store, q.station_output(), plant_id, DAY, end - 1)[0]["units"] == UNITS
    # a range that starts mid-run takes its baseline from the hour before: 08:50 on is 0 + 2 + 3 + 4
    # count units less 1 + 1 scrap units = 7
    assert board_rows(store, q.range_output(exits), plant_id, H8 + 50 * MIN, end - 1)[0]["actual"] == 7
    # the indicators from the store, the stored to-date sum, and the command's JSON
    report = stored_day_report(store, model, PLAN, line, DAY, end)
    assert {hour["start"]: hour["output"] for hour in report.hours if hour["output"]} == HOURS
    assert report.indicators.output == 21 and report.month.actual == 21 == report.quarter.actual
    assert read_line_output(store, plant_id, line, H8 + 50 * MIN, end) == 7
    assert report.indicators.data_from_ms == H8 + 20 * MIN
    answer = indicators_command(store, plant_id, tmp_path)
    assert {hour["start"]: hour["output"] for hour in answer["hours"] if hour["output"]} == HOURS
    assert answer["indicators"]["output"] == 21 and answer["month_to_date"]["actual"] == 21
    # the same samples from a telemetry file
    path = tmp_path / "line.jsonl"
    write_records(path, records(plant_id))
    telemetry = by_station(from_file(model, "l1", path))
    hours = hour_by_hour(telemetry, line, decompose(PLAN, "l1"), DAY, end)
    assert {hour["start"]: hour["output"] for hour in hours if hour["output"]} == HOURS
    assert units_between(telemetry["s1"], DAY, end) == UNITS


def test_the_old_rules_would_have_miscounted_this_station() -> None:
    """Why the rule matters, on the same samples: differences of count - scrap with a missing scrap read
    as 0 see drops of thousands and count them as resets; last-minus-previous-hour loses hour 08."""
    count = np.array([c for _, c, _ in SAMPLES])
    scrap = np.array([s or 0 for _, _, s in SAMPLES])
    good = count - scrap
    naive = np.where(np.diff(good) < 0, good[1:], np.diff(good))
    assert naive.sum() != sum(HOURS.values())
    assert increments(count).sum() == UNITS


def random_counter(rng: random.Random, n: int) -> list[int]:
    """A counter that rises, wraps at 16 or 32 bits, is reset, or jumps, in random order."""
    value = rng.choice([0, 65_000, 4_294_966_000, 123_456])
    values = [value]
    for _ in range(n - 1):
        roll = rng.random()
        if roll < 0.07:
            value = rng.randrange(0, 20)  # reset
        elif roll < 0.12 and value < 1 << 16:
            value = (value + rng.randrange(0, 300)) % (1 << 16)  # 16-bit, may wrap
        elif roll < 0.15 and value < 1 << 32:
            value = (value + rng.randrange(0, 300)) % (1 << 32)  # 32-bit, may wrap
        else:
            value += rng.randrange(0, 4)
        values.append(value)
    return values


@pytest.mark.parametrize("seed", range(6))
def test_the_agent_numpy_and_influxql_forms_of_the_rule_agree(store, plant_id, seed) -> None:
    rng = random.Random(seed)
    values = random_counter(rng, 300)
    ts = [H8 + i * 10_000 + rng.randrange(0, 5_000) for i in range(len(values))]
    by_step = [step(old, new)[0] for old, new in zip(values, values[1:], strict=False)]
    assert increments(np.array(values)).tolist() == by_step
    store.write([f"{STATION_MEASUREMENT},plant={plant_id},line=l1,station=s1 count={v}i,queue=0i {t}"
                 for v, t in zip(values, ts, strict=True)])
    start = ts[rng.randrange(20, 100)]
    end = ts[-1]
    where = f"\"plant\" = '{plant_id}'"
    measurement = quote_ident(STATION_MEASUREMENT)
    subqueries = ", ".join(influxql_units("count", measurement, where, f"{start}ms", f"{end}ms"))
    rows = store.query(f'SELECT sum("n") AS "n" FROM {subqueries} WHERE time >= {start}ms - 60m '
                       f"AND time <= {end}ms").rows()
    expected = sum(u for u, t in zip(by_step, ts[1:], strict=True) if t >= start)
    assert rows[0]["n"] == expected


def test_the_agent_keeps_its_cumulative_count_by_the_same_rule() -> None:
    counter = Counter(width=16, max_step=1000)
    raw = [65_530, 65_535, 4, 6, 2, 5]  # wrap, then a reset
    cumulative = [counter.update(value) for value in raw]
    assert np.diff(cumulative).tolist() == [step(o, n, widths=(16,))[0] for o, n in zip(raw, raw[1:],
                                                                                        strict=False)]
    assert (counter.wraps, counter.resets) == (1, 1)


@pytest.mark.parametrize("seed", range(4))
def test_the_state_inference_counts_units_by_the_same_rule(seed) -> None:
    """analysis.states compares neighbours' counts sample by sample: its cumulative counter must rise by
    shopfloor.counters' units (a 16-bit wrap of 65,535 -> 2 is 3 units, not a reset of 2)."""
    from analysis.states import _unwrapped

    assert _unwrapped(np.array([65_534, 65_535, 2, 5, 3])).tolist() == [65_534, 65_535, 65_538,
                                                                        65_541, 65_544]
    values = np.array(random_counter(random.Random(seed), 200))
    assert np.diff(_unwrapped(values)).tolist() == increments(values).tolist()


def indicators_command(store, plant_id: str, folder) -> dict:
    """`shopfloor targets indicators --json` at 10:00 on the counting station's plant and plan files."""
    plant_file, plan_file = folder / "plant.toml", folder / "plan.toml"
    plant_file.write_text(f'plant = "{plant_id}"\ntimezone = "UTC"\n[[line]]\nid = "l1"\n'
                          '[[line.station]]\nid = "s1"\nbuffer = 4\nideal_cycle_s = 10.0\n')
    plan_file.write_text('[[objective]]\nline = "l1"\nyear = 2027\nunits = 40000\n'
                         '[calendar]\ntimezone = "UTC"\n'
                         'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\n')
    _mount_subcommands()
    result = CliRunner().invoke(app, ["targets", "indicators", "--plant", str(plant_file), "--plan",
                                      str(plan_file), "--line", "l1", "--now", "2027-03-02T10:00:00+00:00",
                                      "--json", "--influx-url", store.url, "--influx-db", store.database])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)
