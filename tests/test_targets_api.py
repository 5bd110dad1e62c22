"""The targets router: the docs/DESIGN.md §7 targets shape over HTTP, and indicators and feasibility read
from the real InfluxDB, equal to what the commands compute."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from analysis.targets import decompose
from analysis.targets_api import router_factory, targets_router
from shopfloor.plan import load_plan
from shopfloor.plant import Plant, load_plant
from shopfloor.store import Store
from tests.test_feasibility import LINE
from tests.test_targets_store import write_telemetry

EXAMPLES = Path(__file__).parent.parent / "examples"


def client_for(plant: Plant, plan_path: Path, store_factory) -> TestClient:
    app = FastAPI()
    app.include_router(targets_router(plant, load_plan(plan_path), store_factory))
    return TestClient(app)


def test_the_service_hook_loads_the_plan_file_or_says_how_to_give_one() -> None:
    plant = load_plant(EXAMPLES / "plant.toml")
    app = FastAPI()
    app.include_router(router_factory(plant, unreachable, EXAMPLES / "plan.toml"))
    assert TestClient(app).get("/api/lines/l1/targets", params={"grain": "year"}).json()["targets"][0][
        "units"] == 1_200_000
    bare = FastAPI()
    bare.include_router(router_factory(plant, unreachable, None))
    for view in ("targets", "indicators", "feasibility"):
        answer = TestClient(bare).get(f"/api/lines/l1/{view}")
        assert answer.status_code == 404 and "without a plan file" in answer.json()["detail"]
        assert "--" not in answer.json()["detail"]  # an HTTP answer names no command-line flag


def unreachable() -> Store:
    return Store("http://127.0.0.1:9", "nowhere", timeout_s=1)


def test_targets_over_http_are_the_decomposition() -> None:
    client = client_for(load_plant(EXAMPLES / "plant.toml"), EXAMPLES / "plan.toml", unreachable)
    answer = client.get("/api/lines/l1/targets", params={"grain": "week"})
    assert answer.status_code == 200
    document = answer.json()
    expected = decompose(load_plan(EXAMPLES / "plan.toml"), "l1").periods("week")
    assert document == {"line": "l1", "grain": "week", "targets": [p.to_json() for p in expected]}
    replan = {"grain": "quarter", "as_of": "2027-07-01T00:00:00", "delivered": 500_000}
    replanned = client.get("/api/lines/l1/targets", params=replan).json()["targets"]
    assert sum(q["units"] for q in replanned[:2]) == 500_000
    assert sum(q["units"] for q in replanned) == 1_200_000
    assert client.get("/api/lines/l1/targets", params={"grain": "fortnight"}).status_code == 400
    for view in ("targets", "indicators", "feasibility"):  # a line the plant does not have: 404 everywhere
        missing = client.get(f"/api/lines/l9/{view}")
        assert missing.status_code == 404 and "l9" in missing.json()["detail"], missing.text
    half = client.get("/api/lines/l1/targets", params={"as_of": "2027-07-01T00:00:00"})
    assert half.status_code == 422 and half.json()["detail"] == "a re-plan needs both as_of and delivered"
    for now in ("2027-03-02T10:00:00", "99999-01-01T00:00:00Z", "tomorrow"):
        bad = client.get("/api/lines/l1/indicators", params={"now": now})
        assert bad.status_code == 422 and "\n" not in bad.json()["detail"], bad.text
    early = client.get("/api/lines/l1/indicators",
                       params={"day": "2027-03-03", "now": "2027-03-02T10:00:00Z"})
    assert early.status_code == 422 and "has not begun" in early.json()["detail"]


def test_a_plan_on_another_clock_than_the_plant_is_refused_in_one_line(tmp_path: Path) -> None:
    from shopfloor.errors import ConfigError

    plan = tmp_path / "plan.toml"
    plan.write_text('[[objective]]\nline = "l1"\nyear = 2027\nunits = 1000\n[calendar]\ntimezone = "UTC"\n'
                    'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\n')
    with pytest.raises(ConfigError, match="Europe/Berlin and the plan's calendar timezone UTC differ"):
        client_for(load_plant(EXAMPLES / "plant.toml"), plan, unreachable)


def test_a_store_that_is_down_answers_503_in_one_line() -> None:
    client = client_for(load_plant(EXAMPLES / "plant.toml"), EXAMPLES / "plan.toml", unreachable)
    moment = {"day": "2027-03-02", "now": "2027-03-02T10:00:00Z"}
    answer = client.get("/api/lines/l1/indicators", params=moment)
    assert answer.status_code == 503 and "not reachable" in answer.json()["detail"]


@pytest.mark.servers
def test_indicators_and_feasibility_from_the_store(stack, store, plant_id, tmp_path: Path) -> None:
    write_telemetry(store, plant_id)
    plant = Plant(plant=plant_id, line=[LINE])
    plan = tmp_path / "plan.toml"
    plan.write_text('[[objective]]\nline = "l1"\nyear = 2027\nunits = 730800\n[calendar]\n'
                    'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\nreserve = 0.1\n')
    client = client_for(plant, plan, lambda: Store(stack.influxdb.url, store.database))
    moment = {"day": "2027-03-02", "now": "2027-03-02T08:00:10Z"}
    report = client.get("/api/lines/l1/indicators", params=moment)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["indicators"]["constraint"] == "b" and body["indicators"]["output"] == 584
    assert body["month_to_date"]["actual"] == 584 and len(body["indicators"]["executive"]) == 7
    verdict = client.get("/api/lines/l1/feasibility", params=moment).json()
    assert verdict["constraint"] == "b" and verdict["feasible"] is False
    assert verdict["shortfall"] == pytest.approx(0.25, abs=0.01)
    next_day = {"day": "2027-03-03", "now": "2027-03-03T10:00:00Z"}
    empty = client.get("/api/lines/l1/indicators", params=next_day)
    assert empty.status_code == 404 and "no samples" in empty.json()["detail"]
