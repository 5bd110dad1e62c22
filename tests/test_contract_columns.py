"""The telemetry file read in bulk (`contract.read_columns`) against the per-record path (`read_records`).

The bulk path exists for speed only; its promise is to change nothing: every file it vouches for gives
exactly the columns the per-record path builds, and every other file goes through that path, with its
errors (file:line: reason). Fuzzed with files of valid, nearly valid and mangled records, and checked
on the bad-line cases one by one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.telemetry import TelemetryError, from_file, gather
from shopfloor import contract
from shopfloor.contract import (
    MAX_TS_MS,
    STATES,
    STOP_STATES,
    ContractError,
    StationKey,
    _bulk_columns,
    _columns_of,
    read_columns,
    read_records,
    record,
    write_records,
)
from shopfloor.plant import Plant

INT64 = 2**63 - 1
FIELDS = ("key", "ts", "seq", "count", "queue", "scrap", "has_scrap", "state", "reason")
keys = st.builds(StationKey, st.sampled_from(["p1", "p2"]), st.sampled_from(["l1", "l2"]),
                 st.sampled_from(["s1", "s2", "s3"]))
counters = st.one_of(st.integers(0, 1000), st.just(INT64))
samples = st.fixed_dictionaries(
    {"ts": st.one_of(st.integers(0, 10), st.just(MAX_TS_MS)), "seq": counters, "count": counters,
     "queue": counters},
    optional={"scrap": counters, "state": st.sampled_from(STATES),
              "reason": st.sampled_from(["jam", "breakdown"])})
odd_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.just(INT64 + 1),
                       st.just(MAX_TS_MS + 1), st.floats(allow_nan=False, allow_infinity=False),
                       st.sampled_from(["", "x", "a b", "ä"]), st.just({"a": 1}), st.just([1]))


@st.composite
def lines(draw) -> bytes:
    """One line of a telemetry file: mostly canonical records, some nearly valid, some mangled."""
    key, sample = draw(keys), dict(draw(samples))
    if "reason" in sample and draw(st.booleans()):
        sample["state"] = draw(st.sampled_from(sorted(STOP_STATES)))
    kind = draw(st.sampled_from(["record"] * 6 + ["odd", "spaced", "v", "blank", "two", "crlf", "cut",
                                                  "split"]))
    if kind == "record":
        return record(key, sample)
    document = {"plant": key.plant, "line": key.line, "station": key.station, **sample}
    if kind == "odd":
        document[draw(st.sampled_from([*document, "v", "x"]))] = draw(odd_values)
    if kind == "v":
        document["v"] = draw(st.one_of(st.just(1), odd_values))
    text = json.dumps(document).encode()  # spaces after separators, integers of any size
    return {"odd": text, "spaced": text, "v": text, "blank": draw(st.sampled_from([b"", b"  "])),
            "two": text + record(key, sample), "crlf": text + b"\r",
            "cut": text[:draw(st.integers(0, len(text)))],
            "split": (lambda at: text[:at] + b"\n" + text[at:])(draw(st.integers(1, len(text) - 1)))}[kind]


def same_columns(a: contract.RecordColumns, b: contract.RecordColumns) -> bool:
    return (a.keys == b.keys and a.reasons == b.reasons
            and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines(), max_size=6), st.booleans())
def test_bulk_columns_are_those_of_the_per_record_path_or_it_declines(tmp_path_factory, body, newline):
    data = b"\n".join(body) + (b"\n" if newline and body else b"")
    path = tmp_path_factory.mktemp("f") / "t.jsonl"
    path.write_bytes(data)
    bulk = _bulk_columns(data)
    try:
        slow = _columns_of(read_records(path))
    except ContractError as error:
        assert bulk is None, f"bulk accepted a file the contract refuses: {error}"
        with pytest.raises(ContractError) as caught:
            read_columns(path)
        assert str(caught.value) == str(error)
        return
    if bulk is not None:
        assert same_columns(bulk, slow)
    assert same_columns(read_columns(path), slow)


def test_a_written_file_takes_the_bulk_path(tmp_path):
    """Without this the fuzz test above could pass with a bulk path that always declines."""
    records = [(StationKey("p1", "l1", f"s{i % 3}"), {"ts": i, "seq": i, "count": i, "queue": 1,
                                                      **({"scrap": 1} if i % 2 else {}),
                                                      **({"state": "down", "reason": "jam"} if i % 5 == 0
                                                         else {"state": "working"})}) for i in range(50)]
    path = tmp_path / "t.jsonl"
    write_records(path, records)
    bulk = _bulk_columns(path.read_bytes())
    assert bulk is not None and same_columns(bulk, _columns_of(read_records(path)))
    assert bulk.keys == [StationKey("p1", "l1", f"s{i}") for i in range(3)] and bulk.reasons == ["jam"]


@pytest.mark.parametrize("bad, reason", [
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":-1,"queue":0}', "count"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":1,"queue":0,"scrap":null}', "scrap"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":1.0,"queue":0}', "count"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":1,"queue":0,"state":"working",'
     b'"reason":"jam"}', "needs state down, setup or idle"),
    (b'{"plant":"p1","line":"l1","station":"s 1","ts":1,"seq":1,"count":1,"queue":0}', "not an identifier"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":1,"queue":0,"x":1}', "x"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":1,"queue":0}{"plant":"p1"}', "JSON"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":9000000000001,"seq":1,"count":1,"queue":0}', "ts"),
    # pyarrow reads an object over two lines as one row; the contract reads lines
    (b'{"plant":"p1","line":"l1","station":"s1",\n"ts":1,"seq":1,"count":1,"queue":0}', "JSON"),
])
def test_a_bad_line_gets_the_per_record_error_with_its_number(tmp_path, bad, reason):
    path = tmp_path / "t.jsonl"
    write_records(path, [(StationKey("p1", "l1", "s1"), {"ts": i, "seq": i, "count": i, "queue": 0})
                         for i in range(3)])
    with open(path, "ab") as out:
        out.write(bad + b"\n")
    with pytest.raises(ContractError) as expected:
        list(read_records(path))
    assert reason in str(expected.value) and ":4: " in str(expected.value)
    with pytest.raises(ContractError) as caught:
        read_columns(path)
    assert str(caught.value) == str(expected.value)


STATIONS = [{"id": f"s{i}", "buffer": 5, "ideal_cycle_s": 30.0} for i in (1, 2, 3)]
PLANT = Plant.model_validate({"plant": "p1", "line": [{"id": "l1", "station": STATIONS}]})


def test_from_file_is_gather_of_the_records(tmp_path):
    """Out of order, repeated timestamps (the last wins), scrap on some samples only, other lines."""
    rng = np.random.default_rng(7)
    records = []
    for i in range(3000):
        key = StationKey("p1", str(rng.choice(["l1", "l1", "l2"])), f"s{rng.integers(1, 4)}")
        sample = {"ts": int(rng.integers(0, 500)), "seq": i, "count": int(rng.integers(0, 99)),
                  "queue": int(rng.integers(0, 5)), "state": str(rng.choice(STATES))}
        if rng.random() < 0.3:
            sample["scrap"] = int(rng.integers(0, 9))
        records.append((key, sample))
    path = tmp_path / "t.jsonl"
    write_records(path, records)
    fast = from_file(PLANT, "l1", path)
    slow = gather(PLANT, "l1", ((k.station, s) for k, s in read_records(path) if k.line == "l1"), "x")
    for a, b in zip(fast.series, slow.series, strict=True):
        for field in ("ts", "count", "queue", "scrap", "state"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert fast.series[0].state.dtype == np.int8 and len(fast.series[0]) > 100


def test_from_file_names_an_unknown_station_and_a_foreign_plant(tmp_path):
    path = tmp_path / "t.jsonl"
    write_records(path, [(StationKey("p1", "l1", s), {"ts": 1, "seq": 1, "count": 1, "queue": 0})
                         for s in ("s1", "s9", "s8")])
    with pytest.raises(TelemetryError, match="has station 's9' on line l1, which the plant file does not"):
        from_file(PLANT, "l1", path)
    write_records(path, [(StationKey("p7", "l1", "s1"), {"ts": 1, "seq": 1, "count": 1, "queue": 0})])
    with pytest.raises(TelemetryError, match=r"holds plant\(s\) \['p7'\], not p1"):
        from_file(PLANT, "l1", path)


def test_many_distinct_names_keep_their_order_of_appearance(tmp_path):
    """100 plants x 100 lines x 100 stations could be 10^6 keys: the codes are compacted first."""
    path = tmp_path / "t.jsonl"
    sample = {"ts": 1, "seq": 1, "count": 1, "queue": 0}
    write_records(path, [(StationKey(f"p{i}", f"l{i}", f"s{99 - i}"), sample) for i in range(100)] * 2)
    bulk = _bulk_columns(path.read_bytes())
    assert bulk is not None and same_columns(bulk, _columns_of(read_records(path)))
    assert bulk.keys[:2] == [StationKey("p0", "l0", "s99"), StationKey("p1", "l1", "s98")]
