"""One value per topic in-process (no broker: these test the plant file's rules and the combining of
values, not transport; tests/test_mapped_json.py runs the same on the real Mosquitto and InfluxDB)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.check import describe_source
from collector.mapped import Decoded
from collector.mapped_values import JsonValues
from shopfloor.plant import Plant

T = 1_790_000_000_000
LINE = [{"id": "l1", "station": [{"id": "s1", "buffer": 1, "ideal_cycle_s": 1.0}]}]


def plant(**template) -> Plant:
    mapping = {"topic": "f/{line}/{station}/{field}", "count": "good", "queue": "wip", **template}
    return Plant.model_validate({"plant": "p1", "line": LINE, "json_value": [mapping]})


@pytest.mark.parametrize(("template", "message"), [
    ({"topic": "f/{line}/{station}/x"}, "needs levels {line}, {station} and {field} once each"),
    ({"topic": "f/{line}/{station}/{field}/{field}"}, "once each"),
    ({"topic": "f/+/{line}/{station}/{field}"}, "a level is {line}, {station}, {field} or plain text"),
    ({"queue": "good"}, "two fields of 'f/{line}/{station}/{field}' name the same topic level"),
    ({"queue": "a/+"}, "'a/+' is not plain topic levels"),
    ({"queue": "a//b"}, "is not plain topic levels"),
    ({"ts": "t"}, "`ts` needs `value`"),
    ({"reason": "stop"}, "mapped to reason without a state"),
])
def test_the_plant_file_refuses_templates_that_cannot_be_matched_or_combined(template, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("+", r"\+")):
        plant(**template)


def test_fields_may_sit_at_different_depths_and_each_gets_its_own_filter():
    mapped = plant(count="counters/good", queue="buffer/in/now", state="s", states={"1": "down"})
    values = JsonValues(mapped)
    assert values.subscriptions == ["f/+/+/buffer/in/now", "f/+/+/counters/good", "f/+/+/s"]
    assert not values.handles("f/l1/s1/temperature") and values.handles("f/l1/s1/buffer/in/now")
    assert describe_source(mapped, "l1", mapped.lines[0].stations[0]).startswith(
        "json count=f/l1/s1/counters/good | json queue=f/l1/s1/buffer/in/now | json state=f/l1/s1/s | "
        "agent s1")


def test_values_held_until_count_and_queue_then_each_message_a_sample_with_the_rest_held():
    values = JsonValues(plant(state="mode", states={"RUN": "working", "STOP": "down"}),
                        clock=lambda: T / 1000)
    assert values.decode("f/l1/s1/mode", b"STOP") == Decoded([], None)
    assert values.decode("f/l1/s1/good", b"3") == Decoded([], None)
    assert values.decode("f/l1/s1/wip", b"1").lines == [
        f'station,line=l1,plant=p1,station=s1 count=3i,queue=1i,seq={T}i,state="down" {T}']
    values._clock = lambda: (T + 5) / 1000
    assert values.decode("f/l1/s1/mode", b"RUN").lines == [
        f'station,line=l1,plant=p1,station=s1 count=3i,queue=1i,seq={T + 5}i,state="working" {T + 5}']
    refused = values.decode("f/l1/s1/good", b"-4")
    assert refused.lines == []
    assert "'good' -> count: Input should be greater than or equal to 0" in refused.reason
    assert values.decode("f/l1/s1/wip", b"2").lines[0].startswith(  # the refused -4 was not held
        "station,line=l1,plant=p1,station=s1 count=3i,queue=2i")
    assert "is not a JSON value" in values.decode("f/l1/s1/good", b"RUN").reason  # text only for state
    assert "no value for 'good' (count)" in values.decode("f/l1/s1/good", b"null").reason


def test_a_wrong_value_is_refused_even_before_the_station_has_a_sample():
    values = JsonValues(plant(state="mode", states={"RUN": "working"}))
    coffee = values.decode("f/l1/s1/mode", b"COFFEE")
    assert "'mode' value 'COFFEE' is not in the states table" in coffee.reason
    assert "Input should be a valid integer" in values.decode("f/l1/s1/good", b"1.5").reason
    assert values.decode("f/l1/s1/good", b"1") == Decoded([], None)


def test_a_value_object_with_its_own_time():
    values = JsonValues(plant(value="v", ts="t", ts_unit="s"))
    assert values.decode("f/l1/s1/good", b'{"v": 4, "t": 1790000000}') == Decoded([], None)
    assert values.decode("f/l1/s1/wip", b'{"v": 0, "t": 1790000001.5}').lines == [
        f"station,line=l1,plant=p1,station=s1 count=4i,queue=0i,seq={T + 1500}i {T + 1500}"]
    assert "no value at path 'v'" in values.decode("f/l1/s1/wip", b'{"t": 1}').reason
    assert "is a JSON object or list" in values.decode("f/l1/s1/wip", b'{"v": [1], "t": 1}').reason


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(["good", "wip", "mode", "stop", "other"]), payload=st.binary(max_size=60))
def test_any_bytes_give_a_sample_a_hold_or_a_reason_never_an_exception(field, payload):
    values = JsonValues(plant(state="mode", reason="stop", states={"1": "down", "RUN": "working"},
                              reasons={"3": "jam"}), clock=lambda: T / 1000)
    values.decode("f/l1/s1/good", b"1")
    values.decode("f/l1/s1/wip", b"0")
    decoded = values.decode(f"f/l1/s1/{field}", payload)
    assert (len(decoded.lines) == 1) != (decoded.reason is not None) or field == "other"


def test_a_restarted_collector_begins_with_the_stations_newest_stored_point():
    from shopfloor.store import StoreUnavailable

    mapped = plant(state="mode", reason="stop", states={"1": "working", "2": "down"}, reasons={"3": "jam"})
    asked: list = []

    def newest(key):
        asked.append(key)
        return {"time": T - 1000, "count": 40, "queue": 2, "state": "down", "reason": "jam", "seq": 5}

    values = JsonValues(mapped, clock=lambda: T / 1000, newest=newest)
    assert values.decode("f/l1/s1/wip", b"3").lines == [  # the first message after a restart: a sample
        f'station,line=l1,plant=p1,station=s1 count=40i,queue=3i,seq={T}i,state="down",reason="jam" {T}']
    assert values.decode("f/l1/s1/mode", b"1").lines[0].endswith(f'state="working" {T}')
    assert len(asked) == 1  # read once per station

    def away(key):
        asked.append(key)
        raise StoreUnavailable("InfluxDB at http://127.0.0.1:1 is not reachable")

    values = JsonValues(mapped, newest=away)
    assert values.decode("f/l1/s1/wip", b"3") == Decoded([], None)  # held: nothing to begin with
    values._held.clear()
    assert values.decode("f/l1/s1/wip", b"3") == Decoded([], None)
    assert len(asked) == 2  # not asked again while it is away: each try could wait for a timeout
