"""Property-based tests of the wire contract: the telemetry decoder and the line-protocol encoder.

- Decoder: any bytes either decode to samples that satisfy the contract, or are refused with a
  ContractError (a reason), never another exception.
- Encoder: any point the encoder accepts is stored by the real InfluxDB and reads back identically
  (names and strings with quotes, commas, spaces, equals signs, backslashes, newlines in string
  fields, unicode); what it cannot encode faithfully it refuses with a ContractError.

Hypothesis runs derandomized with a bounded number of examples, so CI sees the same cases each run.
"""

from __future__ import annotations

import json
import math
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.contract import (
    IDENTIFIER,
    MAX_BATCH,
    MAX_TS_MS,
    STATES,
    ContractError,
    StationKey,
    decode_telemetry,
    encode_batch,
    encode_sample,
    line_protocol,
    parse_record,
    sample_line,
    telemetry_lines,
)
from shopfloor.store import Store, quote_string

# SHOPFLOOR_FUZZ_SCALE=20 runs 20 times the examples with fresh random seeds (a longer bug hunt);
# the default is fixed cases, bounded in time, for CI.
SCALE = int(os.environ.get("SHOPFLOOR_FUZZ_SCALE", "0"))
FUZZ = settings(max_examples=400 * max(SCALE, 1), deadline=None, derandomize=not SCALE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SERVER_FUZZ = settings(FUZZ, max_examples=150 * max(SCALE, 1))
KEYS = ("ts", "seq", "count", "queue", "scrap", "state")
INT64 = 2**63 - 1

# --- the decoder -----------------------------------------------------------------------------------

counters = st.integers(min_value=0, max_value=INT64)
valid_samples = st.fixed_dictionaries(
    {"ts": st.integers(0, MAX_TS_MS), "seq": counters, "count": counters, "queue": counters},
    optional={"scrap": counters, "state": st.sampled_from(STATES)})
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@st.composite
def near_samples(draw) -> dict:
    """A valid sample with some keys removed, retyped or added: mostly invalid, sometimes still valid."""
    sample = dict(draw(valid_samples))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "retype", "add", "negate", "overflow"]))
        key = draw(st.sampled_from(KEYS))
        if action == "drop":
            sample.pop(key, None)
        elif action == "retype":
            sample[key] = draw(json_scalars)
        elif action == "add":
            sample[draw(st.sampled_from([*KEYS, "v", "samples", "x", ""]))] = draw(json_values)
        elif action == "negate":
            sample[key] = -1
        else:
            sample[key] = draw(st.sampled_from([INT64 + 1, 2**64, MAX_TS_MS + 1, 1e19]))
    return sample


def dump(document: object) -> bytes:
    """JSON with integers of any size (orjson refuses those beyond 64 bits; a sender may not)."""
    return json.dumps(document).encode()


def documents() -> st.SearchStrategy[bytes]:
    singles = st.builds(lambda s, v: dump({"v": v, **s}), st.one_of(valid_samples, near_samples()),
                        st.sampled_from([1, 1, 1, 2, 0, "1", True, None]))
    batches = st.builds(lambda samples, v: dump({"v": v, "samples": samples}),
                        st.lists(st.one_of(valid_samples, near_samples()), max_size=5),
                        st.sampled_from([1, 1, 2]))
    raw_json = json_values.map(dump)
    mangled = st.tuples(st.one_of(singles, batches), st.integers(0, 200), st.binary(max_size=4)).map(
        lambda t: t[0][:t[1]] + t[2])
    return st.one_of(singles, batches, raw_json, mangled, st.binary(max_size=64))


def assert_is_contract_sample(sample: object) -> None:
    assert isinstance(sample, dict)
    assert {"ts", "seq", "count", "queue"} <= set(sample) <= set(KEYS)
    for key, value in sample.items():
        if key == "state":
            assert value in STATES
        else:
            assert type(value) is int and 0 <= value <= INT64, (key, value)
    assert sample["ts"] <= MAX_TS_MS


@FUZZ
@given(documents())
def test_any_payload_decodes_to_valid_samples_or_is_rejected_with_a_reason(payload: bytes):
    try:
        samples = decode_telemetry(payload)
    except ContractError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert 1 <= len(samples) <= MAX_BATCH
    for sample in samples:
        assert_is_contract_sample(sample)
        line = sample_line(StationKey("p1", "l1", "s1"), sample)
        assert "\n" not in line and line.startswith("station,line=l1,plant=p1,station=s1 ")


identifiers = st.one_of(st.sampled_from(["p1", "l1", "s1", "a-b_C9"]), json_scalars)


@FUZZ
@given(st.one_of(documents(), st.builds(
    lambda doc, plant, line, station: dump({**doc, "plant": plant, "line": line, "station": station}),
    st.one_of(valid_samples, near_samples()), identifiers, identifiers, identifiers)))
def test_any_offline_record_parses_to_a_valid_sample_or_is_rejected_with_a_reason(line: bytes):
    try:
        key, sample = parse_record(line)
    except ContractError as error:
        assert str(error)
        return
    assert all(IDENTIFIER.fullmatch(part) for part in (key.plant, key.line, key.station))
    assert_is_contract_sample(sample)


@FUZZ
@given(st.lists(valid_samples, min_size=1, max_size=20))
def test_valid_samples_survive_encoding_unchanged(samples: list[dict]):
    assert decode_telemetry(encode_batch(samples)) == samples
    assert decode_telemetry(encode_sample(samples[0])) == samples[:1]


def test_the_version_must_be_the_integer_1():
    """Found by the collector fuzz test: pydantic's Literal[1] accepted true and 1.0, even in strict mode."""
    tail = b',"ts":1790000000000,"seq":1,"count":1,"queue":0}'
    for version in (b"true", b"1.0", b'"1"', b"null", b"2"):
        with pytest.raises(ContractError, match="^v: "):
            decode_telemetry(b'{"v":' + version + tail)
        with pytest.raises(ContractError, match="^v: "):
            decode_telemetry(b'{"v":' + version + b',"samples":[{' + tail[1:] + b"]}")
    assert decode_telemetry(b'{"v":1' + tail)[0]["seq"] == 1


def test_pathological_json_is_a_reason_not_a_crash():
    tail = b',"seq":1,"count":1,"queue":0}'
    for payload in (b"[" * 100_000, b'{"v":1,"samples":' + b"[" * 5000, b"\xef\xbb\xbf{}",
                    "{}".encode("utf-16"), b'{"v":1,"ts":NaN' + tail, b'{"v":1,"ts":1e400' + tail,
                    b'{"v":1,"ts":' + b"9" * 5000 + tail, b"", b"\x00", b"null"):
        with pytest.raises(ContractError):
            decode_telemetry(payload)


# --- the encoder, through the real InfluxDB ----------------------------------------------------------

# Every Unicode character except surrogates (not encodable in UTF-8), with the line protocol's special
# characters drawn often.
SPECIAL = st.sampled_from(list(' ,="\\\'=#\t\r\nüé€😀\u2028'))
text = st.lists(st.one_of(SPECIAL, st.characters(blacklist_categories=("Cs",))), max_size=12).map("".join)
names = text.filter(lambda n: n != "" and n != "time")
field_values = st.one_of(st.integers(-INT64, INT64), st.floats(allow_nan=False, allow_infinity=False),
                         st.booleans(), text)


@pytest.fixture(scope="module")
def fuzz_store(stack):
    store = Store(stack.influxdb.url, f"fuzz_{uuid.uuid4().hex[:12]}")
    store.create_database()
    yield store
    store.query(f"DROP DATABASE {store.database}", method="POST", database=None)
    store.close()


def stored_point(store: Store, measurement: str, example: str) -> tuple[dict, dict] | None:
    """(tags, fields) of the one point tagged `example`, read back with SELECT * GROUP BY *."""
    where = f"WHERE example = {quote_string(example)}"
    result = store.query(f"SELECT * FROM \"{measurement}\" {where} GROUP BY *")
    if not result.series:
        return None
    (series,) = result.series
    (row,) = series.rows()
    tags = {k: v for k, v in series.tags.items() if v != "" and k != "example"}
    fields = {k: v for k, v in row.items() if k != "time" and v is not None}
    return tags, fields


@pytest.mark.servers
@SERVER_FUZZ
@given(tags=st.dictionaries(names, text, max_size=4),
       fields=st.dictionaries(names, field_values, min_size=1, max_size=4))
def test_any_tags_and_fields_read_back_identically_from_influxdb(fuzz_store, tags, fields):
    fields = {k: v for k, v in fields.items() if k not in tags and k != "example"} or {"f": 1}
    tags = {k: v for k, v in tags.items() if k != "example"}
    example = uuid.uuid4().hex
    measurement = f"m{example}"
    try:
        line = line_protocol(measurement, {**tags, "example": example}, fields, 1_790_000_000_000)
    except ContractError:
        return  # refused with a reason: acceptable for names the line protocol cannot carry
    fuzz_store.write([line])
    stored = stored_point(fuzz_store, measurement, example)
    assert stored is not None, f"InfluxDB accepted but did not store {line!r}"
    # InfluxDB's JSON prints a float without a fraction as an integer: compare floats as floats
    read = {k: float(stored[1][k]) if isinstance(v, float) else stored[1].get(k) for k, v in fields.items()}
    assert stored[0] == {k: v for k, v in tags.items() if v != ""}, line
    assert read == fields and set(stored[1]) == set(fields), line
    assert all(type(read[k]) is type(v) for k, v in fields.items()), line


@pytest.mark.servers
@SERVER_FUZZ
@given(measurement=names)
def test_any_measurement_name_reads_back_identically_from_influxdb(fuzz_store, measurement):
    example = uuid.uuid4().hex
    try:
        line = line_protocol(measurement, {"example": example}, {"value": 1}, 1_790_000_000_000)
    except ContractError:
        return
    fuzz_store.write([line])
    shown = fuzz_store.query(f"SHOW MEASUREMENTS WHERE example = {quote_string(example)}")
    assert [row["name"] for row in shown.rows()] == [measurement], line


def test_the_encoder_refuses_what_line_protocol_cannot_carry():
    for measurement, tags, fields in (("m\n", {}, {"f": 1}), ("m", {"t\n": "v"}, {"f": 1}),
                                      ("m", {"t": "v\\"}, {"f": 1}), ("m", {}, {}),
                                      ("m", {}, {"f": math.nan}), ("m", {}, {"f": math.inf}),
                                      ("m", {}, {"f": 2**63}), ("#m", {}, {"f": 1}), ("", {}, {"f": 1}),
                                      ("m", {"": "v"}, {"f": 1}), ("m", {}, {"": 1}),
                                      # found by the fuzzer: InfluxDB reads these differently than meant
                                      ("m", {}, {"\\ ": 0}), ("m", {}, {'k\\"': 0}), ("m", {}, {"\t": 0}),
                                      ("m", {"t": "a\\,b"}, {"f": 1}), ("m", {"t\\=": "v"}, {"f": 1}),
                                      ("\x00m", {}, {"f": 1})):
        with pytest.raises(ContractError):
            line_protocol(measurement, tags, fields, 1_790_000_000_000)


# --- the collector's one-pass path against the reference path ---------------------------------------

reasons = st.one_of(st.sampled_from(["jam", "no-operator", "a_B9"]), st.text(max_size=8), json_scalars)


@st.composite
def reason_samples(draw) -> dict:
    """A sample with a reason, under any state or none: valid only with down, setup or idle."""
    sample = dict(draw(valid_samples))
    sample["reason"] = draw(reasons)
    if draw(st.booleans()):
        sample.pop("state", None)
    return sample


def line_documents() -> st.SearchStrategy[bytes]:
    batches = st.builds(lambda samples, v: dump({"v": v, "samples": samples}),
                        st.lists(st.one_of(valid_samples, near_samples(), reason_samples()), min_size=0,
                                 max_size=6),
                        st.sampled_from([1, 1, 1, 2, True, 1.0]))
    return st.one_of(batches, documents())


def reference_lines(key: StationKey, payload: bytes) -> tuple[list[str], list[int]]:
    """The points and seqs the collector stored before `telemetry_lines`: decode, then one line a sample."""
    samples = decode_telemetry(payload)
    return [sample_line(key, sample) for sample in samples], [sample["seq"] for sample in samples]


@FUZZ
@given(line_documents())
def test_one_pass_lines_equal_the_reference_path_or_the_same_refusal(payload: bytes):
    key = StationKey("p1", "l1", "s1")
    try:
        expected = reference_lines(key, payload)
    except ContractError as error:
        with pytest.raises(ContractError) as refused:
            telemetry_lines(key, payload)
        assert str(refused.value) == str(error)
        return
    assert telemetry_lines(key, payload) == expected
