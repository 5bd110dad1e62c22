"""The wire contract as pure logic: topics, sample and batch validation, line protocol, the file form."""

from __future__ import annotations

import orjson
import pytest

from shopfloor import contract
from shopfloor.contract import ContractError, StationKey

KEY = StationKey("p1", "l1", "s1")


def test_topics_build_and_parse():
    topic = contract.telemetry_topic(KEY)
    assert topic == "shopfloor/v1/p1/l1/s1/telemetry"
    assert contract.parse_telemetry_topic(topic) == KEY
    assert contract.status_topic("p1", "l1", "a-7") == "shopfloor/v1/p1/l1/agent/a-7/status"
    assert contract.alerts_topic("p1", "l1") == "shopfloor/v1/p1/l1/alerts"
    for bad in ("shopfloor/v1/p1/l1/telemetry", "shopfloor/v2/p1/l1/s1/telemetry",
                "shopfloor/v1/p1/l1/s1/status", "shopfloor/v1/p 1/l1/s1/telemetry",
                f"shopfloor/v1/p1/l1/{'s' * 65}/telemetry"):
        with pytest.raises(ContractError):
            contract.parse_telemetry_topic(bad)


def test_single_sample_and_batch_decode_to_the_same_samples():
    one = {"ts": 1790000000000, "seq": 3, "count": 10, "queue": 2, "scrap": 1, "state": "down"}
    assert contract.decode_telemetry(contract.encode_sample(one)) == [one]
    assert contract.decode_telemetry(contract.encode_batch([one, one])) == [one, one]


@pytest.mark.parametrize("payload, reason", [
    ({"v": 1, "ts": 1, "seq": 0, "count": 0}, "queue: Field required"),
    ({"v": 1, "ts": 1, "seq": 0, "count": 0, "queue": 0, "state": "Working"}, "state"),
    ({"v": 1, "ts": -1, "seq": 0, "count": 0, "queue": 0}, "ts"),
    ({"v": 1, "ts": 2**63, "seq": 0, "count": 0, "queue": 0}, "ts"),
    ({"v": 1, "ts": 1, "seq": 0, "count": 2**63, "queue": 0}, "count"),
    ({"ts": 1, "seq": 0, "count": 0, "queue": 0}, "v: Field required"),
    ({"v": 1, "samples": [{"v": 1, "ts": 1, "seq": 0, "count": 0, "queue": 0}]}, "samples.0.v"),
    ({"v": 1, "samples": "nope"}, "samples"),
])
def test_invalid_payloads_say_why(payload, reason):
    with pytest.raises(ContractError, match=reason.replace(".", r"\.")):
        contract.decode_telemetry(orjson.dumps(payload))


def test_encode_batch_refuses_sizes_outside_the_contract():
    with pytest.raises(ContractError):
        contract.encode_batch([])
    with pytest.raises(ContractError):
        contract.encode_batch([{"ts": 1, "seq": i, "count": 0, "queue": 0} for i in range(1001)])


def test_sample_line_is_the_schema_of_design_section_5():
    line = contract.sample_line(KEY, {"ts": 5, "seq": 1, "count": 2, "queue": 3, "scrap": 0, "state": "idle"})
    assert line == 'station,line=l1,plant=p1,station=s1 count=2i,queue=3i,seq=1i,scrap=0i,state="idle" 5'
    assert contract.sample_line(KEY, {"ts": 5, "seq": 1, "count": 2, "queue": 3}) == \
        "station,line=l1,plant=p1,station=s1 count=2i,queue=3i,seq=1i 5"


def test_line_protocol_escapes_names_and_strings():
    line = contract.line_protocol("my meas,x", {"t k": "a=b,c", "empty": ""},
                                  {"msg": 'say "hi" \\ bye', "n": 3, "f": 1.5, "ok": True}, 7)
    assert line == r'my\ meas\,x,t\ k=a\=b\,c msg="say \"hi\" \\ bye",n=3i,f=1.5,ok=true 7'
    with pytest.raises(ContractError):
        contract.line_protocol("m", {"t": "a\nb"}, {"v": 1}, 1)
    with pytest.raises(ContractError):
        contract.line_protocol("m", {}, {}, 1)


def test_identity_tags_are_checked():
    for bad in ("", "a b", "a,b", "x" * 65, "ä"):
        with pytest.raises(ContractError, match="not an identifier"):
            StationKey(bad, "l1", "s1")


def test_file_form_round_trips_and_names_the_bad_line(tmp_path):
    samples = [(KEY, {"ts": i, "seq": i, "count": i, "queue": 0}) for i in range(3)]
    path = tmp_path / "t.jsonl"
    assert contract.write_records(path, samples) == 3
    assert list(contract.read_records(path)) == samples
    with open(path, "ab") as out:
        out.write(b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":1,"count":-1,"queue":0}\n')
    with pytest.raises(ContractError, match=r"t\.jsonl:4: count"):
        list(contract.read_records(path))


def test_a_reason_holds_only_while_the_station_stops():
    down = {"ts": 1, "seq": 0, "count": 0, "queue": 0, "state": "down", "reason": "material_shortage"}
    assert contract.decode_telemetry(contract.encode_sample(down)) == [down]
    assert contract.decode_telemetry(contract.encode_batch([down])) == [down]
    assert contract.sample_line(KEY, down) == ('station,line=l1,plant=p1,station=s1 count=0i,queue=0i,seq=0i,'
                                               'state="down",reason="material_shortage" 1')
    assert contract.parse_record(contract.record(KEY, down)) == (KEY, down)
    for state, match in (("working", "needs state down, setup or idle, not working"),
                         (None, "not none"), ("blocked", "not blocked")):
        bad = {**down, "state": state} if state else {k: v for k, v in down.items() if k != "state"}
        with pytest.raises(ContractError, match=match):
            contract.decode_telemetry(contract.encode_sample(bad))
        with pytest.raises(ContractError, match=f"samples.0: reason .*{match}"):
            contract.decode_telemetry(contract.encode_batch([bad]))
    with pytest.raises(ContractError, match="reason: String should match pattern"):
        contract.decode_telemetry(contract.encode_sample({**down, "reason": "no good"}))


GOOD = {"ts": 1790000000000, "seq": 7, "count": 12, "queue": 3}


@pytest.mark.parametrize("samples", [
    [GOOD],
    [{**GOOD, "scrap": 1, "state": "down", "reason": "jam"}, {**GOOD, "seq": 8, "state": "working"}],
    [{**GOOD, "ts": contract.MAX_TS_MS, "count": 2**63 - 1, "queue": 0, "seq": 0, "scrap": 2**63 - 1}],
    [{**GOOD, "ts": contract.MAX_TS_MS + 1}],
    [{**GOOD, "count": 2**63}],
    [{**GOOD, "queue": -1}],
    [{**GOOD, "seq": True}],
    [{**GOOD, "scrap": 1.0}],
    [{**GOOD, "scrap": 2**63}],
    [{**GOOD, "scrap": -1, "state": "down"}],
    [{**GOOD, "state": None}],
    [{**GOOD, "state": "Working"}],
    [{**GOOD, "state": "working", "reason": "jam"}],
    [{**GOOD, "reason": "jam"}],
    [{**GOOD, "state": "idle", "reason": "no operator"}],
    [{**GOOD, "state": "idle", "reason": "x" * 65}],
    [{**GOOD, "extra": 1}],
    [{**GOOD, "v": 1}],
    [{k: v for k, v in GOOD.items() if k != "queue"}],
    [GOOD, "not a sample"],
    [],
    [{**GOOD, "seq": n} for n in range(contract.MAX_BATCH + 1)],
])
def test_one_pass_lines_equal_decode_then_sample_line(samples):
    """The collector's `telemetry_lines` stores the very points of `decode_telemetry` + `sample_line`, or
    refuses with the same reason, at each edge of the contract (tests/test_fuzz.py does random ones)."""
    payload = orjson.dumps({"v": 1, "samples": samples})
    try:
        decoded = contract.decode_telemetry(payload)
    except ContractError as error:
        with pytest.raises(ContractError) as refused:
            contract.telemetry_lines(KEY, payload)
        assert str(refused.value) == str(error)
        return
    expected = [contract.sample_line(KEY, sample) for sample in decoded], [s["seq"] for s in decoded]
    assert contract.telemetry_lines(KEY, payload) == expected


@pytest.mark.parametrize("document", [{"v": True, "samples": [GOOD]}, {"v": 2, "samples": [GOOD]},
                                      {"v": 1, "samples": [GOOD], "x": 1}, {"v": 1, "samples": GOOD},
                                      [GOOD]])
def test_one_pass_lines_refuse_what_the_batch_model_refuses(document):
    payload = orjson.dumps(document) + (b' "samples"' if isinstance(document, list) else b"")
    with pytest.raises(ContractError) as refused:
        contract.decode_telemetry(payload)
    with pytest.raises(ContractError) as again:
        contract.telemetry_lines(KEY, payload)
    assert str(again.value) == str(refused.value)


def test_seq_ranges_one_run_and_gaps():
    assert contract.seq_ranges([]) == []
    assert contract.seq_ranges([4, 2, 3, 3, 5]) == [(2, 5)]  # one run, given out of order and doubled
    assert contract.seq_ranges([1, 3]) == [(1, 1), (3, 3)]
    assert contract.seq_ranges([0, 1, 1, 3, 4]) == [(0, 1), (3, 4)]  # as many seqs as one run would hold
