"""Fixtures that start the real servers (Debian's mosquitto and influxdb) through shopfloor.stack.

`stack` is one broker and one database server for the whole session; each test isolates itself with
its own database (`store`) and its own plant id (`plant_id`). Tests that stop or kill a server take
`own_stack`, a stack of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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
