"""The store adapter and the local stack against the real servers, and their one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shopfloor import contract
from shopfloor.stack import Stack, StackError, find_binary, free_port
from shopfloor.store import Store, StoreRejected, StoreUnavailable, quote_ident


@pytest.mark.servers
def test_escaped_names_and_strings_come_back_identical(store):
    tags = {"plant": "p,1 =x", "weird key": 'q"uo\\te'}
    fields = {"message": 'line "one"\nline two \\ end', "n": 42, "ratio": 0.25, "ok": False}
    store.write([contract.line_protocol("odd measurement", tags, fields, 1790000000123)])
    rows = store.query(f"SELECT * FROM {quote_ident('odd measurement')}").rows()
    assert rows == [{"time": 1790000000123, **fields, **tags}]


@pytest.mark.servers
def test_store_errors_are_one_line_and_tell_retry_from_refusal(store):
    with pytest.raises(StoreRejected, match="error parsing query"):
        store.query("SELEKT nonsense")
    with pytest.raises(StoreRejected):
        store.write([b"station count=notanumber 1".decode()])
    missing = Store(f"http://127.0.0.1:{free_port()}", "x", timeout_s=1)
    with pytest.raises(StoreUnavailable, match="not reachable.*shopfloor stack up") as error:
        missing.write(["m v=1i 1"])
    assert "\n" not in str(error.value)
    assert not missing.ping()


@pytest.mark.servers
def test_write_creates_a_missing_database(stack):
    fresh = Store(stack.influxdb.url, "created_on_first_write")
    fresh.write(["m v=1i 1790000000000"])
    assert fresh.query("SELECT v FROM m").rows() == [{"time": 1790000000000, "v": 1}]


@pytest.mark.servers
def test_stack_cli_up_status_env_down(tmp_path):
    def shopfloor(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shopfloor", "stack", *args, "--dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)

    assert shopfloor("up").returncode == 0
    try:
        status = Stack(tmp_path).status()
        assert status["mosquitto"]["running"] and status["influxdb"]["running"]
        assert '"mqtt_url":"mqtt://127.0.0.1:' in shopfloor("status", "--json").stdout
        assert f"export SHOPFLOOR_INFLUX_URL={status['influx_url']}" in shopfloor("env").stdout
        assert Store(status["influx_url"]).ping()
    finally:
        assert shopfloor("down").returncode == 0
    assert not Stack(tmp_path).status()["influxdb"]["running"]


def test_a_missing_server_binary_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("shopfloor.stack.shutil.which", lambda name, path=None: None)
    with pytest.raises(StackError, match="apt-get install influxdb"):
        find_binary("influxdb")
