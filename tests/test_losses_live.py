"""Money escalations and the `losses` measurement (issue 14), by hand and on the real InfluxDB.

By hand: a shift whose constraint (90 units per working hour, 50 EUR a unit, so 75 EUR a minute) was
starved 20 minutes and down 10 has lost 30 minutes, 45 units and 2,250.00 EUR; a 2,000 limit fires, a
2,500 one does not. On the real InfluxDB: the injected-stop line of tests/stopped_line.py goes in as
the collector writes it, the service's losses round (analysis/losses_live.py) writes the shift's points
and sends the alert through the real AlertSink (store memory, no broker: MQTT is its own test), once,
also after a restart; the points hold `period_losses`' figures, and a corrected cause is zeroed.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from stopped_line import START_MS
from test_losses_api import NOW_MS, _telemetry_in

from analysis.alerts import AlertSink, stored_alerts
from analysis.escalation import LOSS_KIND, loss_alert
from analysis.losses import Cause, Losses
from analysis.losses_live import LOSSES_EVERY_MS, LossesWatch
from analysis.losses_store import correction_line, period_losses
from shopfloor.errors import ConfigError
from shopfloor.plan import Escalation, Plan, load_plan
from shopfloor.store import Store, quote_string

MINUTE_MS = 60_000
SHIFT_START = int(dt.datetime(2026, 9, 21, 6, tzinfo=dt.UTC).timestamp() * 1000)


def _hand_losses(per_unit: float | None = 50.0) -> Losses:
    causes = [Cause("s3", "starved", "s1", 20 * MINUTE_MS), Cause("s3", "down", "jam", 10 * MINUTE_MS)]
    return Losses("l1", SHIFT_START, SHIFT_START + 8 * 3_600_000, {"s3": 8 * 3_600_000}, {"s3": 90.0}, causes,
                  [], 600, 720, per_unit, "EUR" if per_unit else None)


def test_a_money_limit_fires_with_the_figure_and_the_top_cause():
    alert = loss_alert("l1", SHIFT_START, "2026-09-21 A", _hand_losses(), Escalation(shift_loss_money=2000))
    assert alert is not None
    assert (alert["ts"], alert["kind"], alert["severity"], alert["station"]) == (
        SHIFT_START, LOSS_KIND, "warning", "s3")
    # 30 min x 1.5 units/min x 50 EUR = 2,250; the top cause 20 min x 75 EUR = 1,500
    assert alert["message"] == (
        "line l1, shift 2026-09-21 A: the constraint lost 30 min, 2,250.00 EUR so far, over the 2,000.00 EUR "
        "limit; top cause s3 starved by s1 (20 min, 1,500.00 EUR)")
    assert loss_alert("l1", SHIFT_START, "A", _hand_losses(), Escalation(shift_loss_money=2500)) is None
    assert loss_alert("l1", SHIFT_START, "A", _hand_losses(), Escalation()) is None


def test_a_minutes_limit_fires_without_money():
    rules = Escalation(shift_loss_minutes=25)
    alert = loss_alert("l1", SHIFT_START, "2026-09-21 A", _hand_losses(None), rules)
    assert alert is not None and alert["message"] == (
        "line l1, shift 2026-09-21 A: the constraint lost 30 min so far, over the 25 min limit; "
        "top cause s3 starved by s1 (20 min)")
    both = Escalation(shift_loss_money=100, shift_loss_minutes=25)
    assert "over the 100.00 EUR limit and the 25 min limit" in loss_alert(
        "l1", SHIFT_START, "A", _hand_losses(), both)["message"]
    assert loss_alert("l1", SHIFT_START, "A", _hand_losses(None), Escalation(shift_loss_minutes=30)) is None


def test_a_money_rule_needs_the_lines_money(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('[[objective]]\nline = "l1"\nyear = 2026\nunits = 1000\n\n[calendar]\n'
                    'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\n\n'
                    '[escalation]\nshift_loss_money = 2000\n')
    with pytest.raises(ConfigError) as error:
        load_plan(path)
    message = str(error.value)
    assert "\n" not in message and "needs a [[line]] throughput_per_unit for line l1" in message
    path.write_text(path.read_text().replace("shift_loss_money = 2000", "shift_loss_minutes = 45"))
    assert load_plan(path).escalation.shift_loss_minutes == 45


def _plan(limit: float) -> Plan:
    return Plan.model_validate({
        "objective": [{"line": "l1", "year": 2026, "units": 500_000}],
        "calendar": {"timezone": "UTC", "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "shifts": [{"name": "A", "start": "06:00", "end": "22:00"}]},
        "escalation": {"shift_loss_money": limit},
        "line": [{"id": "l1", "throughput_per_unit": 50.0, "currency": "EUR"}]})


def _stored_causes(store, plant_id: str) -> dict[str, dict]:
    rows = store.query(f'SELECT "minutes", "units", "money" FROM "losses" WHERE plant = '
                       f'{quote_string(plant_id)} AND time = {SHIFT_START}ms GROUP BY "cause"').rows()
    return {row["cause"]: row for row in rows}


@pytest.mark.servers
def test_the_live_round_writes_the_shift_and_alerts_once(stack, store, plant_id):
    line = _telemetry_in(store, plant_id)
    plant, plan = line.plant(plant_id), _plan(2000)
    sink = AlertSink(plant_id, "l1", store)
    watch = LossesWatch(store, plant, plan, "l1", sink.send)
    written = watch.tick(NOW_MS)
    assert [r.losses.start for r in written] == [SHIFT_START]  # the shift before has no telemetry
    expected = period_losses(store, plant, plan, "l1", "shift", NOW_MS).to_json()
    assert expected["lost_money"] > 2000 and expected["lost_minutes"] > 50

    causes = _stored_causes(store, plant_id)
    assert {label: row["minutes"] for label, row in causes.items()} == {
        row["label"]: row["minutes"] for row in expected["causes"]}
    assert {label: row["money"] for label, row in causes.items()} == {
        row["label"]: row["money"] for row in expected["causes"]}
    jam = causes["s3 down: jam"]
    assert jam["minutes"] == pytest.approx(10, rel=0.02) and jam["money"] == pytest.approx(750, rel=0.02)
    total = store.query(f'SELECT * FROM "losses" WHERE plant = {quote_string(plant_id)} AND "cause" = \'\''
                        ).rows()
    assert len(total) == 1 and total[0]["time"] == SHIFT_START
    assert total[0]["lost_money"] == expected["lost_money"] and total[0]["through"] == NOW_MS
    assert total[0]["output_money"] == pytest.approx(expected["output_units"] * 50.0)
    assert total[0]["target_money"] == pytest.approx(expected["target_units"] * 50.0)
    assert total[0]["top_cause"] == expected["causes"][0]["label"]

    alerts = [a for a in stored_alerts(store, plant_id, "l1", SHIFT_START) if a["kind"] == LOSS_KIND]
    assert len(alerts) == 1 and alerts[0]["ts"] == SHIFT_START
    assert f"{expected['lost_money']:,.2f} EUR so far, over the 2,000.00 EUR limit" in alerts[0]["message"]
    assert f"top cause {expected['causes'][0]['label']}" in alerts[0]["message"]
    assert watch.tick(NOW_MS + 1000) == []  # a round every LOSSES_EVERY_MS, not every tick

    # a correction moves the unassigned stop's minutes to its reason, and the old cause is written as
    # 0; a restarted service (a new watch, a new sink) rewrites the shift but sends no second alert
    stop_ms = START_MS + 6000 * 1000
    store.write([correction_line(plant_id, "l1", "s3", stop_ms + 90_000, "material_shortage", "ana",
                                 NOW_MS)])
    later = NOW_MS + LOSSES_EVERY_MS
    restarted = LossesWatch(store, plant, plan, "l1", AlertSink(plant_id, "l1", store).send)
    assert [r.losses.start for r in restarted.tick(later)] == [SHIFT_START]
    assert [a for a in stored_alerts(store, plant_id, "l1", SHIFT_START) if a["kind"] == LOSS_KIND] == alerts
    causes = _stored_causes(store, plant_id)
    assert causes["s3 down: unassigned"]["minutes"] == 0 and causes["s3 down: unassigned"]["money"] == 0
    assert causes["s3 down: material_shortage"]["minutes"] == pytest.approx(4, rel=0.02)
    now = period_losses(store, plant, plan, "l1", "shift", later).to_json()
    assert sum(row["minutes"] for row in causes.values()) == pytest.approx(now["lost_minutes"], abs=0.05)
    assert sum(row["money"] for row in causes.values()) == pytest.approx(now["lost_money"], abs=0.05)

    # after the shift's end (22:00) it is written whole once; the rounds until the next shift rest
    night = SHIFT_START + 17 * 3_600_000
    assert [r.losses.end for r in restarted.tick(night)] == [SHIFT_START + 16 * 3_600_000]
    assert restarted.tick(night + LOSSES_EVERY_MS) == []


@pytest.mark.servers
def test_the_service_with_a_plan_writes_losses_and_the_money_alert(stack, store, plant_id):
    """`analysis serve --plan`: the live loop's first round writes the running shift's `losses` points and
    sends the money alert (a 1-unit limit, so any loss passes it) through the real alert path."""
    from conftest import wait_until
    from fastapi.testclient import TestClient
    from test_service import moving_line

    from analysis.live import LiveConfig
    from analysis.service import create_app
    from shopfloor.contract import sample_line
    from simulators.telemetry import simulate_telemetry

    scenario = moving_line(plant_id)
    now = int(time.time() * 1000)
    telemetry = simulate_telemetry(scenario, 20 / 60, 1, now - 20 * MINUTE_MS)
    store.write([sample_line(key, sample) for key, sample in telemetry.records(plant_id, "l1")])
    shift_start = (now - 2 * 3_600_000) // 3_600_000 * 3_600_000  # now is 2-3 h into a 24-hour shift
    clock = dt.datetime.fromtimestamp(shift_start / 1000, dt.UTC)
    year, begin = clock.year, f"{clock.hour:02d}:00"
    plan = Plan.model_validate({
        "objective": [{"line": "l1", "year": year, "units": 1_000_000}],
        "calendar": {"timezone": "UTC", "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "shifts": [{"name": "D", "start": begin, "end": begin}]},
        "escalation": {"shift_loss_money": 1},
        "line": [{"id": "l1", "throughput_per_unit": 10.0, "currency": "EUR"}]})
    app = create_app(scenario.plant, lambda: Store(store.url, store.database), plan=plan,
                     live=LiveConfig(interval_s=0.2, window_s=60, memory_s=300, confirm_s=180),
                     mqtt_url=stack.mosquitto.url)
    with TestClient(app):
        rows = wait_until(lambda: store.query(
            f'SELECT "lost_minutes", "lost_money", "top_cause" FROM "losses" WHERE plant = '
            f"{quote_string(plant_id)}").rows(), 60, "the live loop's losses round")
        alerts = wait_until(lambda: [a for a in stored_alerts(store, plant_id, "l1", now - 86_400_000)
                                     if a["kind"] == LOSS_KIND], 30, "the money alert")
    assert [row["time"] for row in rows] == [shift_start] and rows[0]["lost_minutes"] > 0
    assert len(alerts) == 1 and alerts[0]["ts"] == shift_start
    assert f"top cause {rows[0]['top_cause']}" in alerts[0]["message"]


@pytest.mark.servers
def test_backfill_writes_past_shifts_as_the_live_round_would(stack, store, plant_id, tmp_path):
    """`shopfloor losses backfill`: telemetry stored while no service ran with --plan (the injected-stop
    line, 4 h from 14:13, split by a shift change at 16:00) gets its `losses` points per shift, equal to
    `losses_of` of each shift; a reversed range and a line the plan does not know are one-line errors."""
    from test_losses_api import _files, run_cli

    from analysis.losses_store import losses_of, shifts_between

    line = _telemetry_in(store, plant_id)
    plant_file, plan_file = _files(tmp_path, plant_id)
    two_shifts = Path(plan_file).read_text().replace(
        'shifts = [{ name = "A", start = "06:00", end = "22:00" }]',
        'shifts = [{ name = "A", start = "06:00", end = "16:00" },\n'
        '          { name = "B", start = "16:00", end = "22:00" }]')
    Path(plan_file).write_text(two_shifts)
    plan = load_plan(plan_file)
    begin, end = SHIFT_START - 3_600_000, SHIFT_START + 12 * 3_600_000
    shifts = shifts_between(plan, "l1", begin, end)
    assert [(s.label[-1], s.start.hour, s.end.hour) for s in shifts] == [("A", 6, 16), ("B", 16, 22)]

    done = run_cli(stack, store, "losses", "backfill", "--plant", plant_file, "--plan", plan_file,
                   "--from", str(begin), "--to", str(end))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "l1: 2 of 2 shifts written (the others had not begun or had no telemetry)"
    plant = line.plant(plant_id)
    lost = []
    for shift in shifts:
        start = int(shift.start.timestamp() * 1000)
        expected = losses_of(store, plant, plan, "l1", "shift", shift, int(time.time() * 1000)).to_json()
        rows = store.query(f'SELECT "minutes", "money" FROM "losses" WHERE plant = {quote_string(plant_id)} '
                           f'AND time = {start}ms AND "cause" != \'\' GROUP BY "cause"').rows()
        assert {r["cause"]: r["minutes"] for r in rows if r["minutes"]} == {
            c["label"]: c["minutes"] for c in expected["causes"]}
        total = store.query(f'SELECT "lost_money", "through" FROM "losses" WHERE plant = '
                            f"{quote_string(plant_id)} AND time = {start}ms AND \"cause\" = ''").rows()
        assert [(t["lost_money"], t["through"]) for t in total] == [
            (expected["lost_money"], int(shift.end.timestamp() * 1000))]
        lost.append(expected["lost_minutes"])
    assert min(lost) > 0  # both shifts hold some of the line's stops

    reversed_range = run_cli(stack, store, "losses", "backfill", "--plant", plant_file, "--plan", plan_file,
                             "--from", str(end), "--to", str(begin))
    assert reversed_range.returncode != 0 and "must be before --to" in reversed_range.stderr
    assert len(reversed_range.stderr.strip().splitlines()) == 1
    unknown = run_cli(stack, store, "losses", "backfill", "--plant", plant_file, "--plan", plan_file,
                      "--line", "l9", "--from", str(begin), "--to", str(end))
    assert unknown.returncode != 0 and "l9" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
