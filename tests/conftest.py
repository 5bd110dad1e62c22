"""Fixtures that start the real servers (Debian's mosquitto and influxdb) through shopfloor.stack.

`stack` is one broker and one database server for the whole session; each test isolates itself with
its own database (`store`) and its own plant id (`plant_id`). Tests that stop or kill a server take
`own_stack`, a stack of their own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shopfloor.stack import Stack, StackError
from shopfloor.store import Store


def _start(path) -> Stack:
    stack = Stack(path)
    try:
        stack.up()
    except StackError as error:
        pytest.fail(f"the real servers are needed: {error}")
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    stack = _start(tmp_path_factory.mktemp("stack"))
    yield stack
    stack.down()


@pytest.fixture
def own_stack(tmp_path) -> Iterator[Stack]:
    stack = _start(tmp_path / "stack")
    yield stack
    stack.down()


@pytest.fixture
def plant_id() -> str:
    """A plant id no other test uses, so topics and points never mix between tests."""
    return f"p{uuid.uuid4().hex[:10]}"


def _store(stack: Stack) -> Iterator[Store]:
    store = Store(stack.influxdb.url, f"test_{uuid.uuid4().hex[:12]}")
    store.create_database()
    yield store
    store.close()


@pytest.fixture
def store(stack: Stack) -> Iterator[Store]:
    """A fresh database on the session's InfluxDB."""
    yield from _store(stack)


@pytest.fixture
def own_store(own_stack: Stack) -> Iterator[Store]:
    """A fresh database on the test's own InfluxDB."""
    yield from _store(own_stack)


class CollectorProcess:
    """`shopfloor collector run` as a child process, so a test can SIGKILL it like a crash."""

    def __init__(self, stack: Stack, database: str, log_path, client_id: str = "collector-test", **flags):
        self.argv = [sys.executable, "-m", "shopfloor", "collector", "run", "-v",
                     "--mqtt-url", stack.mosquitto.url, "--influx-url", stack.influxdb.url,
                     "--influx-db", database, "--client-id", client_id, "--batch-wait", "0.05"]
        for name, value in flags.items():
            self.argv += [f"--{name.replace('_', '-')}", str(value)]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> CollectorProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while b"subscribed to" not in Path(self.log_path).read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"collector did not connect: {Path(self.log_path).read_text()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


@pytest.fixture
def collector_process(tmp_path) -> Iterator[Callable[..., CollectorProcess]]:
    """Factory: `collector_process(stack, store.database, **flags)` starts a collector child process."""
    started: list[CollectorProcess] = []

    def start(stack: Stack, database: str, **flags) -> CollectorProcess:
        process = CollectorProcess(stack, database, tmp_path / f"collector-{len(started)}.log", **flags)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.2) -> object:
    """Poll `condition` until it is truthy; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {value!r})")
        time.sleep(every_s)
