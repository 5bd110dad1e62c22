"""Service security: the analysis API token, webhook URLs, InfluxDB credentials, no secret in a log line.

The InfluxDB test runs a real InfluxDB 1.6.7 with `auth-enabled = true`; the webhook test a real local
HTTP server that refuses the alert.
"""

from __future__ import annotations

import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import wait_until
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import Publisher, stored_seqs

from analysis import auth
from analysis.alerts import AlertSink, make_alert
from shopfloor.contract import StationKey
from shopfloor.errors import ConfigError
from shopfloor.security import API_TOKEN_ENV, new_token
from shopfloor.settings import INFLUX_PASSWORD_ENV, INFLUX_USER_ENV, SettingsError, mqtt_endpoint
from shopfloor.stack import Server, free_port
from shopfloor.store import Store, StoreRejected

# --- the API token ---------------------------------------------------------------------------------


def tiny_service(token: str | None) -> TestClient:
    """A FastAPI app with a read, a write and an admin route, protected as the analysis service is."""
    app = FastAPI()
    app.get("/lines/{line}/targets")(lambda line: {"line": line})
    app.post("/lines/{line}/targets")(lambda line: {"written": line})
    app.delete("/lines/{line}/alerts")(lambda line: {"deleted": line})
    app.get("/admin/config")(lambda: {"config": "x"})
    auth.install(app, token)
    return TestClient(app)


def test_writes_and_admin_need_the_token_reads_do_not():
    token = new_token()
    client = tiny_service(token)
    assert client.get("/lines/l1/targets").json() == {"line": "l1"}
    for method, path in (("POST", "/lines/l1/targets"), ("DELETE", "/lines/l1/alerts"),
                         ("GET", "/admin/config")):
        for headers in ({}, {"Authorization": f"Bearer {token[:-1]}"}, {"Authorization": f"Basic {token}"},
                        {"X-API-Token": "guess"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert token not in response.text
        assert client.request(method, path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.request(method, path, headers={"X-API-Token": token}).status_code == 200


def test_without_a_configured_token_the_service_accepts_no_writes(monkeypatch):
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    client = tiny_service(None)
    refused = client.post("/lines/l1/targets", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 401 and API_TOKEN_ENV in refused.json()["detail"]
    assert client.get("/lines/l1/targets").status_code == 200
    monkeypatch.setenv(API_TOKEN_ENV, "from-the-environment")
    client = tiny_service(None)
    assert client.post("/lines/l1/targets", headers={"Authorization": "Bearer from-the-environment"}
                       ).status_code == 200


def test_the_analysis_service_answers_401_to_every_write_without_the_token():
    """The real service app (analysis.service.create_app): each write or admin route, no token: 401."""
    from analysis.service import create_app
    from shopfloor.plant import load_plant

    token = new_token()
    plant = load_plant(Path(__file__).parent.parent / "examples" / "plant.toml")
    app = create_app(plant, lambda: Store("http://127.0.0.1:9", "unused"), api_token=token)
    client = TestClient(app)  # no lifespan: the 401s must come before any store is touched
    routes = app.openapi()["paths"]  # every route, also those of included routers
    writes = [(method.upper(), path) for path, methods in routes.items() for method in methods
              if auth.needs_token(method, path)]
    assert ("POST", "/api/lines/{line_id}/alerts/test") in writes and ("GET", "/admin/config") in writes
    for method, path in writes:
        concrete = path.replace("{line_id}", "l1").replace("{line}", "l1")
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = client.request(method, concrete, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
    config = client.get("/admin/config", headers={"Authorization": f"Bearer {token}"})
    assert config.status_code == 200 and config.json()["plant"] == "p1"
    assert client.get("/healthz").status_code == 200


# --- webhooks ----------------------------------------------------------------------------------------


def test_webhook_urls_must_be_http_or_https():
    store = Store("http://127.0.0.1:9", "unused")
    for bad in ("ftp://hooks.example.com/x", "file:///etc/passwd", "hooks.example.com/x", "http://"):
        with pytest.raises(ConfigError, match="webhook URL"):
            AlertSink("p1", "l1", store, None, [bad])
    assert AlertSink("p1", "l1", store, None, ["https://hooks.example.com/T0/B0/secret"]).webhooks
    store.close()


class Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.mark.servers
def test_a_refusing_webhook_is_logged_without_its_secret_path_or_password(store, caplog):
    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = uuid.uuid4().hex
    url = f"http://hookuser:{secret}@127.0.0.1:{server.server_port}/services/{secret}"
    sink = AlertSink("p1", "l1", store, None, [url])
    with caplog.at_level(logging.INFO):
        assert sink.send(make_alert(1_790_000_000_000, "constraint_down", "critical", "s1", "s1 is down"))
    server.shutdown()
    refused = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    shown = f"http://***@127.0.0.1:{server.server_port}/…"
    assert refused == [f"webhook {shown} refused alert constraint_down: 500"]
    assert secret not in caplog.text


# --- InfluxDB credentials ---------------------------------------------------------------------------


class AuthInflux(Server):
    """The stack's InfluxDB with `auth-enabled = true` in its [http] section."""

    def _write_config(self):
        config = super()._write_config()
        config.write_text(config.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
        return config


@pytest.fixture(scope="module")
def influx_with_auth(tmp_path_factory):
    server = AuthInflux("influxdb", tmp_path_factory.mktemp("influx-auth"), free_port(), rpc_port=free_port())
    server.start()
    password = new_token()
    with Store(server.url, "x") as first:  # InfluxDB lets the first admin be created without credentials
        first.query(f"CREATE USER admin WITH PASSWORD '{password}' WITH ALL PRIVILEGES", method="POST",
                    database=None)
    yield SimpleNamespace(server=server, password=password)
    server.stop()


@pytest.mark.servers
def test_influxdb_credentials_from_the_environment_or_the_url(influx_with_auth, monkeypatch):
    url, password = influx_with_auth.server.url, influx_with_auth.password
    monkeypatch.delenv(INFLUX_USER_ENV, raising=False)
    monkeypatch.delenv(INFLUX_PASSWORD_ENV, raising=False)
    with Store(url, "secured") as anonymous, pytest.raises(StoreRejected, match="401"):
        anonymous.create_database()
    monkeypatch.setenv(INFLUX_USER_ENV, "admin")
    monkeypatch.setenv(INFLUX_PASSWORD_ENV, password)
    with Store(url, "secured") as from_env:
        from_env.create_database()
        from_env.write(["m,tag=a value=1i 1790000000000"])
        assert from_env.query("SELECT value FROM m").rows() == [{"time": 1790000000000, "value": 1}]
    monkeypatch.delenv(INFLUX_USER_ENV)
    monkeypatch.delenv(INFLUX_PASSWORD_ENV)
    with_userinfo = url.replace("http://", f"http://admin:{password}@")
    with Store(with_userinfo, "secured") as from_url:
        assert from_url.url == url and password not in repr(from_url.__dict__)
        assert from_url.query("SELECT count(value) FROM m").rows()[0]["count"] == 1
        with pytest.raises(StoreRejected) as caught:
            from_url.query("SELEKT nonsense")
        assert password not in str(caught.value)
    with Store(url.replace("http://", "http://admin:wrong@"), "secured") as wrong, \
            pytest.raises(StoreRejected, match="401"):
        wrong.query("SELECT * FROM m")


@pytest.mark.servers
def test_the_collector_writes_with_influxdb_credentials_and_logs_no_secret(
        influx_with_auth, stack, plant_id, collector_process, monkeypatch):
    password = influx_with_auth.password
    influx = SimpleNamespace(url=influx_with_auth.server.url.replace("http://", f"http://admin:{password}@"))
    collector = collector_process(SimpleNamespace(mosquitto=stack.mosquitto, influxdb=influx), "secured",
                                  group=f"g{plant_id}", session_expiry=0)
    publisher = Publisher(stack.mosquitto.url, f"pub-{plant_id}")
    publisher.publish(StationKey(plant_id, "l1", "s1"), range(50))
    publisher.close()
    monkeypatch.setenv(INFLUX_USER_ENV, "admin")
    monkeypatch.setenv(INFLUX_PASSWORD_ENV, password)
    with Store(influx_with_auth.server.url, "secured") as store:
        wait_until(lambda: len(stored_seqs(store, plant_id).get("s1", [])) == 50, 20, "50 points")
    collector.stop()
    assert password not in collector.log() and "admin:" not in collector.log()


def test_a_malformed_url_error_never_shows_the_password():
    with pytest.raises(SettingsError) as caught:
        mqtt_endpoint("mqtt://agent:s3cret-pw@host:99999")
    assert "s3cret-pw" not in str(caught.value) and "agent:***@host" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Store("ftp://admin:s3cret-pw@host:8086")
    assert "s3cret-pw" not in str(caught.value)
