"""The live detector and the analysis service on the real InfluxDB and Mosquitto, with simulated telemetry
whose bottleneck moves from s3 to s2 half an hour in."""

from __future__ import annotations

import re
import threading
import time

import pytest
from conftest import wait_until
from fastapi.testclient import TestClient

from analysis.alerts import AlertRules, AlertSink, MqttAlertPublisher, stored_alerts
from analysis.calls import call_of
from analysis.constraint import MIN_REGIME_S
from analysis.live import LiveConfig, LiveDetector, history
from analysis.service import create_app
from shopfloor.contract import sample_line
from shopfloor.store import Store
from simulators.scenario import Scenario
from simulators.telemetry import simulate_telemetry

pytestmark = pytest.mark.servers
MIN = 60_000
CONFIG = LiveConfig(window_s=60, memory_s=300, confirm_s=180, lookback_s=3600, rewrite_s=1800,
                    rules=AlertRules(moved_dwell_min=5))


def moving_line(plant_id: str) -> Scenario:
    """Four stations at 10 s; s3 at 13 s for the first half hour, then s2 at 13 s."""
    stations = [{"id": f"s{i}", "cycle_s": 13.0 if i == 3 else 10.0, "cv": 0.2, "buffer": 3}
                for i in range(1, 5)]
    return Scenario.model_validate({"name": "moving", "plant": plant_id, "line": "l1", "warmup_min": 20,
                                    "station": stations, "change": [
                                        {"at_hour": 0.5, "station": "s3", "slow_by_pct": -23.08},
                                        {"at_hour": 0.5, "station": "s2", "slow_by_pct": 30}]})


def store_run(store: Store, scenario: Scenario, start_ms: int, hours: float) -> None:
    telemetry = simulate_telemetry(scenario, hours, 1, start_ms)
    store.write([sample_line(key, sample) for key, sample in telemetry.records(scenario.plant_id, "l1")])


def finals(store: Store, plant_id: str) -> dict[int, bool]:
    rows = store.query(f"SELECT final FROM bottleneck WHERE plant = '{plant_id}' AND line = 'l1'").rows()
    return {row["time"]: row["final"] for row in rows if row["final"] is not None}


def test_live_detector_follows_the_move_alerts_once_and_rebuilds_after_a_restart(stack, store, plant_id):
    scenario = moving_line(plant_id)
    t0 = 1_790_000_040_000
    store_run(store, scenario, t0, 1.1)
    publisher = MqttAlertPublisher(stack.mosquitto.url, client_id=f"live-{plant_id}")
    try:
        def detector() -> LiveDetector:
            sink = AlertSink(plant_id, "l1", store, publisher)
            return LiveDetector(store, scenario.plant, "l1", CONFIG, sink)

        first = detector()
        answers = {}
        for minute in range(6, 52, 3):
            answers[minute] = first.tick(t0 + minute * MIN).current
            if minute == 21:
                open_then = finals(store, plant_id)
        # The default method (crn) judges a window on its regime: the move at minute 30 is named once
        # the new regime is MIN_REGIME_S (15 min) old, and becomes current after confirm_s (3 min).
        assert answers[27] == "s3" and answers[42] == "s3" and answers[51] == "s2"
        # A restarted detector (nothing in memory) continues from the store: same answer, no repeats.
        second = detector()
        status = second.tick(t0 + 54 * MIN)
        assert status.current == "s2" and status.alerts_sent == 0
        for minute in range(57, 64, 3):
            assert second.tick(t0 + minute * MIN).current == "s2"
        # The recent past is rewritten: s3's active period was open at minute 21, so were the windows
        # it touches; it closed at the half hour, and the next tick (33) rewrote the last 30 minutes.
        final_now = finals(store, plant_id)
        rewritten = [ts for ts, final in open_then.items()
                     if not final and t0 + 3 * MIN <= ts < t0 + 21 * MIN]
        assert len(rewritten) >= 15 and all(final_now[ts] for ts in rewritten)
        changes = history(store, plant_id, "l1", t0 - 60 * MIN)
        assert [station for _, station in changes] == ["s3", "s2"]
        assert t0 + 29 * MIN <= changes[1][0] <= t0 + 30 * MIN + MIN_REGIME_S * 1000
        moved = [a for a in stored_alerts(store, plant_id, "l1", t0 - MIN) if a["kind"] == "bottleneck_moved"]
        assert [(a["station"], a["ts"]) for a in moved] == [("s2", changes[1][0])]
        assert "from s3 to s2" in moved[0]["message"]
    finally:
        publisher.close()


def test_service_serves_the_live_answer_timeline_shares_and_alerts(stack, store, plant_id):
    scenario = moving_line(plant_id)
    now = int(time.time() * 1000)
    store_run(store, scenario, now - 65 * MIN, 65 / 60)
    live = LiveConfig(interval_s=0.5, window_s=60, memory_s=300, confirm_s=180)
    app = create_app(scenario.plant, lambda: Store(store.url, store.database), live=live,
                     mqtt_url=stack.mosquitto.url)
    with TestClient(app) as client:
        wait_until(lambda: client.get("/healthz").json()["ticks"] >= 1, 30, "a live tick")
        assert client.get("/healthz").json()["last_error"] is None
        current = client.get("/api/lines/l1/bottleneck").json()
        assert current["station"] == "s2" and current["since"] <= now
        timeline = client.get("/api/lines/l1/timeline", params={"from": now - 30 * MIN}).json()
        assert len(timeline["windows"]) >= 25
        assert {w["bottleneck"] for w in timeline["windows"][-10:]} == {"s2"}
        newest = timeline["windows"][-1]  # the live crn answer, graded (analysis/calls.py)
        assert newest["call"] == call_of(newest["confidence"]).kind and newest["right_at_least"] > 0
        shares = client.get("/api/lines/l1/shares").json()["shifts"]
        assert shares and set(shares[-1]["shares"]) == {"s1", "s2", "s3", "s4"}
        assert client.get("/api/lines/l1/alerts").status_code == 200
        assert client.get("/api/lines/l9/bottleneck").status_code == 404
        assert "/api/lines/{line_id}/timeline" in client.get("/openapi.json").json()["paths"]
    # A second service instance (a restart) answers the same from the store alone.
    again = create_app(scenario.plant, lambda: Store(store.url, store.database), live=None)
    with TestClient(again) as client:
        assert client.get("/api/lines/l1/bottleneck").json() == current


def test_admin_config_and_the_test_alert_need_the_token(stack, store, plant_id):
    scenario = moving_line(plant_id)
    token = "t0ken-for-this-test"
    app = create_app(scenario.plant, lambda: Store(store.url, store.database), live=None,
                     mqtt_url=stack.mosquitto.url, webhooks=("https://hooks.example.com/T0/secret-path",),
                     api_token=token)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert client.get("/admin/config").status_code == 401
        assert client.post("/api/lines/l1/alerts/test").status_code == 401
        config = client.get("/admin/config", headers=auth).json()
        assert config["webhooks"] == ["https://hooks.example.com/…"] and "secret-path" not in str(config)
        assert client.post("/api/lines/l9/alerts/test", headers=auth).status_code == 404
        # The real path: stored, published to the real broker (the webhook host does not resolve: logged).
        app_with_no_hook = create_app(scenario.plant, lambda: Store(store.url, store.database), live=None,
                                      mqtt_url=stack.mosquitto.url, api_token=token)
        with TestClient(app_with_no_hook) as plain:
            sent = plain.post("/api/lines/l1/alerts/test", headers=auth).json()
        assert sent["sent"] is True and sent["alert"]["kind"] == "test"
        listed = client.get("/api/lines/l1/alerts").json()["alerts"]
        assert [a["kind"] for a in listed] == ["test"]


def two_lines(plant_id: str):
    """The moving line twice: l1 and l2, same stations."""
    from shopfloor.plant import Plant

    line = moving_line(plant_id).plant.lines[0].model_dump()
    return Plant.model_validate({"plant": plant_id, "line": [{**line, "id": "l1"}, {**line, "id": "l2"}]})


def test_one_lines_bug_neither_kills_the_loop_nor_skips_the_other_line(stack, store, plant_id, monkeypatch):
    """A non-ShopfloorError in l1's tick is logged, counted and retried; l2 still ticks and writes."""
    scenario = moving_line(plant_id)
    now = int(time.time() * 1000)
    telemetry = simulate_telemetry(scenario, 20 / 60, 1, now - 20 * MIN)
    store.write([sample_line(key, sample) for key, sample in telemetry.records(plant_id, "l2")])
    real_tick = LiveDetector.tick

    def tick(self, now_ms):
        if self.line.id == "l1":
            raise RuntimeError("a bug on l1's data")
        return real_tick(self, now_ms)

    monkeypatch.setattr(LiveDetector, "tick", tick)
    app = create_app(two_lines(plant_id), lambda: Store(store.url, store.database),
                     live=LiveConfig(interval_s=0.2, window_s=60, memory_s=300, confirm_s=180), alerts=False)
    with TestClient(app) as client:
        # l2 ticks after l1 in each round (and its crn tick takes a while): wait for both counts
        health = wait_until(lambda: (h := client.get("/healthz").json())["lines"]["l1"]["errors"] >= 3
                            and h["lines"]["l2"]["ticks"] >= 3 and h, 30, "three rounds of l1 and l2")
        assert health["ok"] is True and app.state.live_loop.thread.is_alive()
        assert health["lines"]["l1"]["last_error"] == "line l1: RuntimeError: a bug on l1's data"
        assert health["lines"]["l2"]["last_error"] is None
        assert client.get("/api/lines/l2/bottleneck").json()["station"] in {"s1", "s2", "s3", "s4"}
        assert client.get("/api/lines/l1/bottleneck").json()["station"] is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_says_when_the_loop_is_dead_or_stuck(stack, store, plant_id, monkeypatch):
    scenario = moving_line(plant_id)
    release = threading.Event()

    def hang(self, now_ms):
        release.wait(30)

    monkeypatch.setattr(LiveDetector, "tick", hang)
    app = create_app(scenario.plant, lambda: Store(store.url, store.database),
                     live=LiveConfig(interval_s=0.2), alerts=False)
    with TestClient(app) as client:
        app.state.live_loop.stuck_after_s = 0.5
        answer = wait_until(lambda: (a := client.get("/healthz")).status_code == 503 and a, 10, "stuck")
        assert answer.json()["ok"] is False and "has not moved on" in answer.json()["reason"]
        release.set()

    def die(self, now_ms):
        raise SystemExit("the thread ends")  # not an Exception: nothing in the loop may catch it

    monkeypatch.setattr(LiveDetector, "tick", die)
    app = create_app(scenario.plant, lambda: Store(store.url, store.database),
                     live=LiveConfig(interval_s=0.2), alerts=False)
    with TestClient(app) as client:
        answer = wait_until(lambda: (a := client.get("/healthz")).status_code == 503 and a, 10, "dead")
        assert answer.json()["reason"] == "the live detector thread has stopped"


def test_api_ranges_lines_and_docs_answer_in_one_line_offline(stack, store, plant_id):
    """A range InfluxDB cannot hold, a reversed one or one over the cap is a 422 (never a 503); an unknown
    line is a 404 on every path; /docs loads Swagger UI from the service itself."""
    scenario = moving_line(plant_id)
    app = create_app(scenario.plant, lambda: Store(store.url, store.database), live=None)
    with TestClient(app) as client:
        for view in ("timeline", "shares", "alerts"):
            for params in ({"from": "-99999999999999999"}, {"from": "2300-01-01T00:00:00Z"},
                           {"from": "2027-03-02T10:00:00Z", "to": "2027-03-02T09:00:00Z"},
                           {"from": "2027-01-01T00:00:00Z", "to": "2027-03-01T00:00:00Z"},
                           {"to": "next tuesday"}):
                answer = client.get(f"/api/lines/l1/{view}", params=params)
                detail = answer.json()["detail"]
                assert answer.status_code == 422 and isinstance(detail, str), answer.text
                assert "\n" not in detail and "--" not in detail
        for path in ("bottleneck", "timeline", "shares", "alerts"):
            assert client.get(f"/api/lines/l9/{path}").status_code == 404
        page = client.get("/docs").text
        assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
        assert not [url for url in re.findall(r"""(?:src|href)=["']([^"']+)""", page) if "//" in url]
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs-assets/swagger-ui.css").status_code == 200
        redoc = client.get("/redoc").text
        assert "/docs-assets/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
        assert not [url for url in re.findall(r"""(?:src|href)=["']([^"']+)""", redoc) if "//" in url]


def test_shares_split_shifting_time_and_the_runner_up_is_never_the_bottleneck(stack, store, plant_id):
    """Hand-made timeline windows in shift 1 (06:00-14:00 Berlin) of 21 September 2026:
    10:00Z s1 share 1.0 (sole 0.5), s2 0.5 shifting with it -> s1 0.75, s2 0.25;
    10:01Z s1, s2, s3 all shifting the whole window (three at once) -> a third each.
    Mean: s1 0.5417, s2 0.2917, s3 0.1667, s4 0 (sum 1); averaging `share` would give 2.25."""
    from shopfloor.contract import BOTTLENECK_MEASUREMENT, line_protocol

    t0 = 1_789_984_800_000  # 2026-09-21T10:00:00Z
    tags = {"plant": plant_id, "line": "l1"}
    windows = [(t0, {"s1": (1.0, 0.5), "s2": (0.5, 0.0), "s3": (0.0, 0.0), "s4": (0.0, 0.0)}),
               (t0 + MIN, {"s1": (1.0, 0.0), "s2": (1.0, 0.0), "s3": (1.0, 0.0), "s4": (0.0, 0.0)})]
    points = []
    for start, stations in windows:
        points.append(line_protocol(BOTTLENECK_MEASUREMENT, tags, {
            "bottleneck_share": 1.0, "bottleneck": "s2", "runner_up": "s2", "margin": 0.0,
            "shifting": "s1,s2", "final": True}, start))
        for station, (share, sole) in stations.items():
            fields = {"share": share, "sole": sole, "blocked": 0.0, "starved": 0.0}
            points.append(line_protocol(BOTTLENECK_MEASUREMENT, {**tags, "station": station}, fields, start))
    store.write(points)
    scenario = moving_line(plant_id)
    app = create_app(scenario.plant, lambda: Store(store.url, store.database), live=None)
    with TestClient(app) as client:
        span = {"from": t0 - 60 * MIN, "to": t0 + 60 * MIN}
        shifts = client.get("/api/lines/l1/shares", params=span).json()["shifts"]
        assert [(shift["name"], shift["day"]) for shift in shifts] == [("1", "2026-09-21")]
        shares = shifts[0]["shares"]
        assert shares == pytest.approx({"s1": 0.5417, "s2": 0.2917, "s3": 0.1667, "s4": 0.0}, abs=1e-4)
        assert sum(shares.values()) <= 1.0 + 1e-3 and shifts[0]["bottleneck"] == "s1"
        assert shifts[0]["split"]["s1"] == {"share": 0.5417, "sole": 0.25, "shifting": 0.2917}
        timeline = client.get("/api/lines/l1/timeline", params=span).json()["windows"]
        assert [(w["bottleneck"], w["runner_up"]) for w in timeline] == [("s2", "s1"), ("s2", "s1")]


def test_docs_render_in_chromium_without_any_network(stack, store, plant_id, tmp_path):
    """Swagger UI must understand FastAPI's OpenAPI 3.1 (Swagger UI 4 shows "Unable to render this
    definition"): the operations appear in the rendered page, from the service's own files."""
    import subprocess

    import uvicorn
    from test_huddle_page import CHROMIUM_FLAGS, chromium

    from shopfloor.stack import free_port

    app = create_app(moving_line(plant_id).plant, lambda: Store(store.url, store.database), live=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, "the service")
        pages = (("docs", "/api/lines/{line_id}/timeline"), ("redoc", "The bottleneck per window"))
        for page, wanted in pages:
            dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / page}",
                                  "--dump-dom", f"http://127.0.0.1:{port}/{page}"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
            assert wanted in dom and "Unable to render" not in dom, dom[-2000:]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
