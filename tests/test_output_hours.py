"""The hourly output rollup (analysis/output_hours.py) and the executive panels that sum it, on the real
InfluxDB, with test_counting's hand-made exit station (a mid-hour start, a 16-bit wrap, a reset, late
scrap, samples without scrap): every number below is worked out by hand from its SAMPLES table.
"""

from __future__ import annotations

import pytest
from test_counting import DAY, H8, HOUR_MS, HOURS, MIN, plant, records

from analysis.live import LiveConfig, LiveDetector
from analysis.output_hours import HourRollup, hour_start, newest_hour, write_hours
from dashboards import queries as q
from dashboards.macros import QueryContext, expand
from shopfloor.contract import OUTPUT_HOUR_MEASUREMENT, StationKey, sample_line
from shopfloor.plant import Plant
from shopfloor.store import quote_ident

pytestmark = pytest.mark.servers

ROLLUP = quote_ident(OUTPUT_HOUR_MEASUREMENT)


def rollup(store) -> dict[int, tuple[int, bool]]:
    rows = store.query(f'SELECT "good", "final" FROM {ROLLUP} WHERE "station" = \'s1\'').rows()
    return {row["time"]: (row["good"], row["final"]) for row in rows}


def panel(store, query: str, plant_id: str, start_ms: int, end_ms: int, timezone: str = "UTC") -> list[dict]:
    context = QueryContext(start_ms, end_ms, {"plant": plant_id, "line": "l1", "timezone": timezone,
                                              "bucket_offset": "0s"})
    return store.query(expand(query, context)).rows()


@pytest.fixture
def filled(store, plant_id):
    store.write([sample_line(key, sample) for key, sample in records(plant_id)])
    return store, plant(plant_id)


def test_rollup_holds_the_hand_computed_hours_and_a_rewrite_changes_nothing(filled) -> None:
    store, model = filled
    assert write_hours(store, model, "l1", DAY, H8 + 2 * HOUR_MS, H8 + 2 * HOUR_MS) == 2
    assert rollup(store) == {hour: (good, True) for hour, good in HOURS.items()}  # 15 and 6
    assert write_hours(store, model, "l1", DAY, H8 + 2 * HOUR_MS, H8 + 2 * HOUR_MS) == 2
    count = store.query(f'SELECT count("good") FROM {ROLLUP}').rows()[0]["count"]
    assert count == 2 and rollup(store) == {hour: (good, True) for hour, good in HOURS.items()}
    assert newest_hour(store, model.plant, "l1") == H8 + HOUR_MS


def test_rollup_hours_are_the_plants_clock_hours(store, plant_id) -> None:
    """Kolkata is UTC+05:30: its hours start at :30 UTC. 07:30-08:30 UTC holds the samples of 08:20
    (the baseline) and 08:25 (+3); 08:30-09:30 the rest: 2 + 5 + 2 + 2 + 0 + 2 + 3 + 4 = 20 count
    units, 2 scrapped (08:50 and 09:10): 18 good. 3 + 18 = 21, the day's good units."""
    store.write([sample_line(key, sample) for key, sample in records(plant_id)])
    model = Plant.model_validate({"plant": plant_id, "timezone": "Asia/Kolkata", "line": [
        {"id": "l1", "station": [{"id": "s1", "buffer": 4, "ideal_cycle_s": 10.0}]}]})
    assert hour_start(H8, "Asia/Kolkata") == H8 - 30 * MIN
    write_hours(store, model, "l1", DAY, H8 + 3 * HOUR_MS, H8 + 3 * HOUR_MS)
    assert rollup(store) == {H8 - 30 * MIN: (3, True), H8 + 30 * MIN: (18, True)}


def test_executive_to_date_sums_the_rollup_and_follows_the_running_hour_each_round(filled, plant_id) -> None:
    store, model = filled
    exits = q.exit_filter(model.lines)
    now = H8 + 75 * MIN  # 09:15: hour 08 has ended, hour 09 runs
    writer = HourRollup(model, "l1", every_s=60)
    assert writer.maybe_write(store, now) == 2  # first round: backfills 08 and writes the running 09
    assert rollup(store) == {H8: (15, True), H8 + HOUR_MS: (6, False)}
    assert panel(store, q.period_output(exits), plant_id, DAY, now)[0]["actual"] == 21
    assert panel(store, q.period_output(exits, by_line=False), plant_id, DAY, now)[0]["actual"] == 21
    daily = [row for row in panel(store, q.daily_output(exits), plant_id, DAY, now) if row["actual"]]
    assert [(row["time"], row["actual"]) for row in daily] == [(DAY, 21)]
    # the ended hours only: hour 09 is not final, so the demonstrated rate is hour 08's
    assert panel(store, q.demonstrated_rate(exits), plant_id, DAY, now)[0]["rate"] == 15
    # a unit made at 09:12 after the round: raw samples say 22 at once, the rollup at its next round
    late = StationKey(plant_id, "l1", "s1")
    store.write([sample_line(late, {"ts": H8 + 72 * MIN, "seq": 99, "count": 10, "queue": 1,
                                    "state": "working"})])
    assert panel(store, q.range_output(exits), plant_id, DAY, now)[0]["actual"] == 22
    assert writer.maybe_write(store, now + 30_000) == 0  # not due yet (every 60 s)
    assert panel(store, q.period_output(exits), plant_id, DAY, now)[0]["actual"] == 21
    assert writer.maybe_write(store, now + 60_000) == 2  # the round rewrites hour 09 on its point
    assert rollup(store) == {H8: (15, True), H8 + HOUR_MS: (7, False)}
    assert panel(store, q.period_output(exits), plant_id, DAY, now)[0]["actual"] == 22
    # after 10:00 hour 09 is rewritten as final and becomes demonstrated capacity
    writer.maybe_write(store, H8 + 2 * HOUR_MS + 5 * MIN)
    assert rollup(store)[H8 + HOUR_MS] == (7, True)
    assert panel(store, q.demonstrated_rate(exits), plant_id, DAY, H8 + 125 * MIN)[0]["rate"] == 15


def test_the_live_detector_tick_writes_the_rollup(filled) -> None:
    store, model = filled
    LiveDetector(store, model, "l1", LiveConfig()).tick(H8 + 2 * HOUR_MS)
    assert rollup(store) == {hour: (good, True) for hour, good in HOURS.items()}


def test_the_rollup_command_fills_history_and_refuses_a_reversed_range(filled, plant_id, tmp_path) -> None:
    from typer.testing import CliRunner

    from shopfloor.cli import _mount_subcommands, app
    from shopfloor.errors import ConfigError

    store, _ = filled
    plant_file = tmp_path / "plant.toml"
    plant_file.write_text(f'plant = "{plant_id}"\ntimezone = "UTC"\n[[line]]\nid = "l1"\n'
                          '[[line.station]]\nid = "s1"\nbuffer = 4\nideal_cycle_s = 10.0\n')
    _mount_subcommands()
    common = ["--plant", str(plant_file), "--influx-url", store.url, "--influx-db", store.database]
    done = CliRunner().invoke(app, ["analysis", "rollup", *common, "--from", "2027-03-02T08:30:00Z",
                                    "--to", "2027-03-02T10:00:00Z"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "l1: 2 station hours written"  # 08:30 moved back to 08:00
    # 2027 is after the wall clock: the hours are counted, and not final (they have not ended yet)
    assert rollup(store) == {hour: (good, False) for hour, good in HOURS.items()}
    wrong = CliRunner().invoke(app, ["analysis", "rollup", *common, "--from", "2027-03-02T10:00:00Z",
                                     "--to", "2027-03-02T08:00:00Z"])
    # the entry point prints a ConfigError as its one line (shopfloor/cli.py)
    assert wrong.exit_code != 0 and isinstance(wrong.exception, ConfigError)
    assert "must be before" in str(wrong.exception) and "\n" not in str(wrong.exception)


def test_after_a_start_the_backfill_walks_back_a_few_hours_a_round(filled) -> None:
    """Started at 18:00 with nothing stored: each round writes the running hour and the two before
    it, plus one 3-hour chunk further back, so hours 08 and 09 arrive in the third round (07-10)."""
    store, model = filled
    writer = HourRollup(model, "l1", every_s=60)
    now = H8 + 10 * HOUR_MS
    for round_ in range(3):
        assert rollup(store) == {}, round_
        writer.maybe_write(store, now + round_ * 60_000)
    assert rollup(store) == {hour: (good, True) for hour, good in HOURS.items()}
    for round_ in range(3, 12):  # down to 24 h back, then no more chunks
        writer.maybe_write(store, now + round_ * 60_000)
    assert writer.backfilled_ms == writer.backfill_to_ms == hour_start(now, "UTC") - 24 * HOUR_MS
