"""The Sparkplug host's protocol rules in-process (no broker: these test decoding and state, not transport).

Payloads are encoded by pysparkplug, decoded by the host (tahutils). The broker path is in
tests/test_sparkplug.py.
"""

from __future__ import annotations

import pysparkplug as spb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tahutils.parse import payload_from_string

from collector.ingest import Ingest
from collector.sparkplug import REBIRTH_METRIC
from shopfloor.plant import Plant

PLANT = Plant.model_validate({"plant": "p1", "line": [{"id": "l1", "station": [
    {"id": "s1", "buffer": 1, "ideal_cycle_s": 1.0,
     "sparkplug": {"group": "G", "node": "N", "count": "C", "queue": "Q", "state": "S",
                   "states": {"true": "working", "false": "down"}}}]}]})
T = 1_790_000_000_000


def host() -> tuple[Ingest, list]:
    sent: list = []
    return Ingest(PLANT, "h", lambda *args: sent.append(args)), sent


def metric(name, datatype, value, alias=None, ts=T):
    return spb.Metric(timestamp=ts, name=name, datatype=datatype, value=value, alias=alias)


def born(ingest: Ingest, count_type=spb.DataType.UINT32, count=0, bd_seq=3, seq=250) -> None:
    birth = spb.NBirth(timestamp=T, seq=seq, metrics=[
        metric("bdSeq", spb.DataType.INT64, bd_seq), metric("C", count_type, count, 1),
        metric("Q", spb.DataType.UINT16, 2, 2), metric("S", spb.DataType.BOOLEAN, True, 3)])
    decoded = ingest.decode("spBv1.0/G/NBIRTH/N", birth.encode())
    assert decoded.reason is None, decoded.reason


def data(ingest: Ingest, seq: int, ts: int, **values):
    aliases = {"C": (1, spb.DataType.UINT32), "Q": (2, spb.DataType.UINT16), "S": (3, spb.DataType.BOOLEAN)}
    metrics = [metric(None, aliases[k][1], v, aliases[k][0], ts) for k, v in values.items()]
    return ingest.decode("spBv1.0/G/NDATA/N", spb.NData(timestamp=ts, seq=seq, metrics=metrics).encode())


def test_seq_wraps_from_255_to_0_and_node_metrics_map_to_a_station():
    ingest, sent = host()
    born(ingest, seq=254)
    assert data(ingest, 255, T + 1000, C=1).lines[0].endswith(f"count=1i,queue=2i,seq={T + 1000}i,"
                                                              f'state="working" {T + 1000}')
    assert data(ingest, 0, T + 2000, S=False).lines[0].endswith(f'state="down" {T + 2000}')
    assert data(ingest, 1, T + 3000, C=2).reason is None
    assert sent == []


def test_a_gap_asks_one_rebirth_and_refuses_until_the_node_is_born_again():
    ingest, sent = host()
    born(ingest, seq=10)
    assert "seq gap: expected 11, got 12" in data(ingest, 12, T + 1000, C=1).reason
    assert "after a seq gap" in data(ingest, 13, T + 2000, C=2).reason
    assert len(sent) == 1
    topic, payload, qos, retain = sent[0]
    assert (topic, qos, retain) == ("spBv1.0/G/NCMD/N", 0, False)
    command = spb.NCmd.decode(payload)  # the edge's own library reads our request
    assert [(m.name, m.value) for m in command.metrics] == [(REBIRTH_METRIC, True)]
    born(ingest, seq=0)
    assert data(ingest, 1, T + 3000, C=3).lines


def test_a_stale_ndeath_is_refused_and_a_current_one_marks_the_station_unknown():
    ingest, _ = host()
    born(ingest, bd_seq=3)
    stale = spb.NDeath(timestamp=T + 5, bd_seq_metric=metric("bdSeq", spb.DataType.INT64, 2, ts=None))
    assert "stale NDEATH: bdSeq 2" in ingest.decode("spBv1.0/G/NDEATH/N", stale.encode()).reason
    death = spb.NDeath(timestamp=T + 6, bd_seq_metric=metric("bdSeq", spb.DataType.INT64, 3, ts=None))
    decoded = ingest.decode("spBv1.0/G/NDEATH/N", death.encode())
    assert decoded.lines == [f'source,line=l1,plant=p1,station=s1 online=false,source="sparkplug:G/N",'
                             f'event="NDEATH" {T + 6}']
    assert "before the node's NBIRTH" in data(ingest, 0, T + 7, C=1).reason


def test_signed_and_wide_integers_and_a_negative_count():
    ingest, _ = host()  # an Int32 -5 travels as 2**32 - 5: read as -5, refused as a count
    assert "'C' -> count: Input should be greater than or equal to 0" in _birth_reason(ingest)
    ingest, _ = host()
    born(ingest, count_type=spb.DataType.UINT64, count=2**40)
    line = data(ingest, 251, T + 1, Q=3).lines[0]
    assert line.startswith(f"station,line=l1,plant=p1,station=s1 count={2**40}i,queue=3i")


def _birth_reason(ingest: Ingest) -> str:
    birth = spb.NBirth(timestamp=T, seq=0, metrics=[
        metric("bdSeq", spb.DataType.INT64, 0), metric("C", spb.DataType.INT32, -5, 1),
        metric("Q", spb.DataType.UINT16, 2, 2)])
    return ingest.decode("spBv1.0/G/NBIRTH/N", birth.encode()).reason


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH", "STATE", "XYZ"]),
       payload=st.binary(max_size=200), flip=st.integers(0, 400))
def test_any_bytes_give_points_or_a_reason_never_an_exception(kind, payload, flip):
    ingest, _ = host()
    born(ingest)
    valid = spb.NData(timestamp=T, seq=251, metrics=[metric(None, spb.DataType.UINT32, 7, 1)]).encode()
    mutated = bytearray(valid + payload)
    mutated[flip % len(mutated)] ^= 0xFF
    for body in (payload, bytes(mutated)):
        decoded = ingest.decode(f"spBv1.0/G/{kind}/N" + ("/d" if kind[0] == "D" else ""), body)
        assert decoded is not None
        for line in decoded.lines:
            assert line.startswith(("station,line=l1,plant=p1,station=s1 ", "source,"))
        if not decoded.lines and kind == "NDATA" and not decoded.reason:  # only a valid message that
            parsed = payload_from_string(body)                            # maps nothing is left alone
            assert not [m for m in parsed.metrics if m.alias in (1, 2, 3) or m.name in ("C", "Q", "S")]


def test_pysparkplug_and_tahutils_agree_on_the_wire():
    payload = spb.DData(timestamp=T, seq=9, metrics=[metric(None, spb.DataType.DOUBLE, 2.5, 4)]).encode()
    decoded = payload_from_string(payload)
    assert (decoded.seq, decoded.metrics[0].alias, decoded.metrics[0].double_value) == (9, 4, 2.5)


def test_an_unmapped_device_counts_in_seq_but_is_neither_stored_nor_refused():
    ingest, sent = host()
    born(ingest, seq=5)
    other = spb.DData(timestamp=T, seq=6, metrics=[metric("X", spb.DataType.UINT32, 1)]).encode()
    decoded = ingest.decode("spBv1.0/G/DDATA/N/other", other)
    assert (decoded.lines, decoded.reason) == ([], None)
    assert data(ingest, 7, T + 1, C=1).lines  # seq 6 was the other device's
    assert sent == []


def test_a_reason_mapped_without_a_state_is_refused_in_the_plant_file(tmp_path):

    from shopfloor.errors import ConfigError
    from shopfloor.plant import load_plant

    path = tmp_path / "plant.toml"
    path.write_text('plant = "p1"\n[[line]]\nid = "l1"\n[[line.station]]\nid = "s1"\nbuffer = 1\n'
                    'ideal_cycle_s = 1.0\n[line.station.sparkplug]\ngroup = "G"\nnode = "N"\ncount = "C"\n'
                    'queue = "Q"\nreason = "R"\nreasons = { 3 = "jam" }\n')
    with pytest.raises(ConfigError, match="'R' is mapped to reason without a state"):
        load_plant(path)
    path.write_text(path.read_text().replace(
        'reasons = { 3 = "jam" }', 'state = "S"\nstates = { 1 = "down" }\nreasons = { 3 = "no good" }'))
    with pytest.raises(ConfigError, match="reasons.3"):  # a table's reason must be an identifier
        load_plant(path)
