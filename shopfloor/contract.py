"""The wire contract (docs/DESIGN.md §4 and §5), owned here and nowhere else.

Every part that touches an MQTT topic, a telemetry payload, a JSON Lines telemetry file or an
InfluxDB line speaks through this module, so that the agent, collector, simulators and analysis
cannot drift apart. Validation is pydantic in strict mode (about 1 µs a sample): a bool is not a
count, a float is not a timestamp, and an unknown key is an error, not a silent drop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NotRequired, Required

import orjson
from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from shopfloor.errors import ShopfloorError

if TYPE_CHECKING:
    import numpy as np

VERSION = 1
TOPIC_ROOT = "shopfloor/v1"
REJECTED_TOPIC = f"{TOPIC_ROOT}/_rejected"
TELEMETRY_FILTER = f"{TOPIC_ROOT}/+/+/+/telemetry"
STATUS_FILTER = f"{TOPIC_ROOT}/+/+/agent/+/status"
RECEIPT_FILTER = f"{TOPIC_ROOT}/+/+/+/stored"
ALERTS_FILTER = f"{TOPIC_ROOT}/+/+/alerts"
MAX_RECEIPT_RANGES = 10_000  # seq ranges in one receipt; a collector's batch of 100,000 samples fits
MAX_BATCH = 1000
REJECT_PAYLOAD_BYTES = 256

IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")
# For pydantic `Field(pattern=...)`, which searches rather than matches: anchored.
IDENTIFIER_PATTERN = f"^{IDENTIFIER.pattern}$"
STATES = ("working", "setup", "down", "starved", "blocked", "idle")
# A sample's `reason` (why the station stops) holds only while it is in one of these states.
STOP_STATES = frozenset({"down", "setup", "idle"})
ACTIVE_STATES = frozenset({"working", "setup", "down"})
INACTIVE_STATES = frozenset({"starved", "blocked"})
SEVERITIES = ("info", "warning", "critical")

# Measurement names in InfluxDB (docs/DESIGN.md §5), named here once. Each writer documents its fields
# beside the constant; the boards and tests query by these names.
STATION_MEASUREMENT = "station"  # tags plant,line,station; fields count,scrap,queue,state,reason,seq
# A supervisor's correction of a past stop's reason (analysis/losses_api.py), never a rewrite of
# `station`: tags plant,line,station; timestamp = a moment inside the stop; fields reason (str),
# by (str, who corrected it), at (int ms, when it was corrected). The latest correction of a stop wins.
REASON_MEASUREMENT = "reason_correction"
# The detector's timeline per line (analysis/live.py writes it; timestamps = window start or tick):
#   per window, tags plant,line: fields bottleneck (str), bottleneck_share (float 0-1), runner_up (str),
#     margin (float), shifting (str, comma-separated stations), method (str), window_s (int),
#     final (bool: no active period touching the window was open when it was last rewritten);
#   per window and station, tags plant,line,station: fields share (sole + shifting, 0-1), sole,
#     blocked, starved (shares of the window, 0-1), split (sole + its part of the shifting time by
#     analysis.shares: the window's splits sum to at most 1);
#   per tick, tags plant,line: fields current (str: the live answer, with hysteresis), since (int ms),
#     settled (int ms: windows starting before it are never rewritten again).
BOTTLENECK_MEASUREMENT = "bottleneck"
# Every alert sent (analysis/alerts.py), one point per alert at the event's start: tags plant, line,
# station, kind; fields severity (str), message (str), lost_units (float, when known).
ALERT_MEASUREMENT = "alert"
# Good units per station and clock hour of the plant (analysis/output_hours.py, the live loop writes it;
# a rewrite of an hour lands on the same point): tags plant,line,station; timestamp = the hour's local
# start; fields good (int, shopfloor.counters' rule, the boards' hourly query), final (bool: the hour
# had ended when it was written). The executive's month and quarter panels sum it instead of raw samples.
OUTPUT_HOUR_MEASUREMENT = "output_hour"
# decomposed targets (analysis/targets.py `target_lines`, `shopfloor targets write`): one point per period
# at its start; tags plant,line,grain (year|quarter|month|week|day|shift|hour); fields units (int),
# hours (planned production hours, float), end (period end, ms since the epoch, int)
TARGET_MEASUREMENT = "target"
# leading indicators (analysis/indicators.py `indicator_lines`, `shopfloor targets indicators --write`):
# tags plant,line,period (day|shift|hour), timestamp = the period's start. A day/shift point has fields
# output (int), target, pace, constraint_uptime, constraint_active_share, buffer_health, constraint_oee,
# line_oee, scrap_rate (floats) and constraint (string, the station id); an hour point output and target.
INDICATOR_MEASUREMENT = "indicator"
# The constraint's losses per plan shift (analysis/losses_store.py `losses_lines`, written by the service's
# live loop every 5 minutes, the shift rewritten until it ends), timestamp = the shift's start, tag
# grain=shift, every point with field end (int ms, the shift's end):
#   per cause, tags plant,line,grain,cause (the Pareto label),station (the constraint),kind: fields minutes,
#     corrected_minutes, units (at the constraint's demonstrated rate), money (with the plan's
#     throughput_per_unit); a cause gone from a rewritten shift is written as 0;
#   per shift, tags plant,line,grain: fields lost_minutes, lost_units, output_units, target_units (due so
#     far), through (int ms: data up to), top_cause (str), and with money lost_money, output_money,
#     target_money, constraint_hour_value.
LOSSES_MEASUREMENT = "losses"
COLLECTOR_MEASUREMENT = "collector"  # tag collector; fields: the collector's counters (collector/)
# Whether a mapped source (Sparkplug B, issue 15) is alive, one point per birth or death at its time:
# tags plant,line,station; fields online (bool), source (str, e.g. "sparkplug:group/node/device"),
# event (str: NBIRTH, DBIRTH, NDEATH, DDEATH). After a death the station is unknown: no state is invented.
SOURCE_MEASUREMENT = "source"

State = Literal["working", "setup", "down", "starved", "blocked", "idle"]
# InfluxDB stores ns since the epoch in an int64: ms must stay below about 9.2e12 (year 2262).
MAX_TS_MS = 9_000_000_000_000
Counter = Annotated[int, Field(ge=0, le=2**63 - 1)]
Timestamp = Annotated[int, Field(ge=0, le=MAX_TS_MS)]
_STRICT = ConfigDict(strict=True, extra="forbid")


# Strict int: pydantic's Literal[1] takes true and 1.0 even in strict mode (found by the fuzz test).
Version = Annotated[int, Strict(), Field(ge=VERSION, le=VERSION)]


class Sample(TypedDict, total=False):
    """One station reading, as it travels inside a batch (no `v` of its own)."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    ts: Required[Timestamp]
    seq: Required[Counter]
    count: Required[Counter]
    queue: Required[Counter]
    scrap: NotRequired[Counter]
    state: NotRequired[State]
    reason: NotRequired[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]]


def _reason_needs_a_stop(sample: Sample) -> Sample:
    """A reason says why a station stopped: with no state, or a state that is not a stop, it is a lie."""
    if "reason" in sample and sample.get("state") not in STOP_STATES:
        raise ValueError(f"reason {sample['reason']!r} needs state down, setup or idle, not "
                         f"{sample.get('state', 'none')}")
    return sample


class _SingleSample(Sample, total=False):
    v: Required[Version]


class _Batch(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    v: Version
    samples: Annotated[list[Annotated[Sample, AfterValidator(_reason_needs_a_stop)]],
                       Field(min_length=1, max_length=MAX_BATCH)]


_single = TypeAdapter(Annotated[_SingleSample, AfterValidator(_reason_needs_a_stop)])
_batch = TypeAdapter(_Batch)
_sample = TypeAdapter(Annotated[Sample, AfterValidator(_reason_needs_a_stop)])


class ContractError(ShopfloorError, ValueError):
    """A topic, payload or record that breaks the contract; `str()` is the one-line reason."""


@dataclass(frozen=True, slots=True)
class StationKey:
    """Where a sample comes from: the three identity tags of every point."""

    plant: str
    line: str
    station: str

    def __post_init__(self) -> None:
        for name in ("plant", "line", "station"):
            check_identifier(name, getattr(self, name))


def check_identifier(what: str, value: object) -> str:
    """Return `value` if it is a valid identifier, else raise ContractError naming `what`."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ContractError(f"{what} {value!r} is not an identifier: use 1-64 of A-Z a-z 0-9 _ -")
    return value


# --- topics -------------------------------------------------------------------------------------


def telemetry_topic(key: StationKey) -> str:
    return f"{TOPIC_ROOT}/{key.plant}/{key.line}/{key.station}/telemetry"


def status_topic(plant: str, line: str, agent: str) -> str:
    for what, value in (("plant", plant), ("line", line), ("agent", agent)):
        check_identifier(what, value)
    return f"{TOPIC_ROOT}/{plant}/{line}/agent/{agent}/status"


def receipt_topic(key: StationKey) -> str:
    """Where the collector confirms a station's samples stored (docs/DESIGN.md §4, issue 13)."""
    return f"{TOPIC_ROOT}/{key.plant}/{key.line}/{key.station}/stored"


def parse_receipt_topic(topic: str) -> StationKey:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT or parts[5] != "stored":
        raise ContractError(f"topic {topic!r} is not {TOPIC_ROOT}/PLANT/LINE/STATION/stored")
    return StationKey(parts[2], parts[3], parts[4])


def alerts_topic(plant: str, line: str) -> str:
    check_identifier("plant", plant)
    check_identifier("line", line)
    return f"{TOPIC_ROOT}/{plant}/{line}/alerts"


# The plant's own MQTT network (issue 15, docs/DESIGN.md §6): the Sparkplug B topics the collector
# subscribes and publishes as a host application, and the filter of a mapped JSON topic template.
SPARKPLUG_NAMESPACE = "spBv1.0"


def sparkplug_filter(group: str) -> str:
    return f"{SPARKPLUG_NAMESPACE}/{group}/#"


def sparkplug_command_topic(group: str, node: str) -> str:
    return f"{SPARKPLUG_NAMESPACE}/{group}/NCMD/{node}"


def sparkplug_state_topic(host_id: str) -> str:
    return f"{SPARKPLUG_NAMESPACE}/STATE/{host_id}"


def json_topic_filter(template: str) -> str:
    """`factory/{line}/{station}/metrics` -> `factory/+/+/metrics`."""
    return "/".join("+" if level in ("{line}", "{station}") else level for level in template.split("/"))


@lru_cache(maxsize=65536)  # a plant has a few thousand stations: skip the checks for known topics
def parse_telemetry_topic(topic: str) -> StationKey:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT or parts[5] != "telemetry":
        raise ContractError(f"topic {topic!r} is not {TOPIC_ROOT}/PLANT/LINE/STATION/telemetry")
    return StationKey(parts[2], parts[3], parts[4])


# --- payloads -----------------------------------------------------------------------------------


def _reason(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"payload is not UTF-8 JSON: {first['ctx']['error']}"
    if not first["loc"] and first["type"] in ("dict_type", "model_type"):
        return "payload must be a JSON object (a sample or a batch)"
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg'].removeprefix('Value error, ')}{more}"


def decode_telemetry(payload: bytes) -> list[Sample]:
    """Decode one telemetry payload (a single sample or a batch) into samples, or raise ContractError.

    A single sample is validated straight from the bytes (pydantic parses the JSON: the collector's
    per-message path); a batch is parsed by orjson first, which is faster per sample.
    """
    if b'"samples"' not in payload:
        try:
            sample = _single.validate_json(payload)
        except ValidationError as error:
            raise ContractError(_reason(error)) from None
        del sample["v"]
        return [sample]
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise ContractError(f"payload is not UTF-8 JSON: {error}") from None
    return _validated_batch(document)


def _validated_batch(document: object) -> list[Sample]:
    """The samples of a parsed batch document by the contract's pydantic model, or ContractError."""
    if not isinstance(document, dict):
        raise ContractError("payload must be a JSON object (a sample or a batch)")
    try:
        return _batch.validate_python(document)["samples"]
    except ValidationError as error:
        raise ContractError(_reason(error)) from None


def validate_sample(document: dict) -> Sample:
    """Check a sample that a mapping built (collector/ingest.py) against the contract, or ContractError."""
    try:
        return _sample.validate_python(document)
    except ValidationError as error:
        raise ContractError(_reason(error)) from None


def encode_sample(sample: Sample) -> bytes:
    return orjson.dumps({"v": VERSION, **sample})


def encode_batch(samples: Iterable[Sample]) -> bytes:
    samples = list(samples)
    if not 1 <= len(samples) <= MAX_BATCH:
        raise ContractError(f"a batch holds 1 to {MAX_BATCH} samples, not {len(samples)}")
    return orjson.dumps({"v": VERSION, "samples": samples})


def rejection(topic: str, reason: str, payload: bytes) -> bytes:
    """The message the collector publishes to REJECTED_TOPIC for a refused telemetry message."""
    head = payload[:REJECT_PAYLOAD_BYTES].decode("utf-8", errors="backslashreplace")
    return orjson.dumps({"v": VERSION, "topic": topic, "reason": reason, "payload": head,
                         "bytes": len(payload)})


SeqRange = tuple[int, int]


def seq_ranges(seqs: Iterable[int]) -> list[SeqRange]:
    """Sorted, de-duplicated seqs as inclusive (first, last) runs: a receipt's compact form."""
    ordered = sorted(set(seqs))
    if ordered and ordered[-1] - ordered[0] == len(ordered) - 1:
        return [(ordered[0], ordered[-1])]  # one run, the usual receipt: no loop over every seq
    ranges: list[SeqRange] = []
    for seq in ordered:
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def encode_receipt(stored: Iterable[SeqRange], rejected: Iterable[SeqRange] = ()) -> bytes:
    """A receipt: `{"v":1,"stored":[[first,last],…],"rejected":[[first,last],…]}`, inclusive seq ranges
    of one station's samples that InfluxDB accepted (or refused for good: those went to the reject
    topic with the reason, and resending them cannot help)."""
    return orjson.dumps({"v": VERSION, "stored": [list(r) for r in stored],
                         "rejected": [list(r) for r in rejected]})


def _ranges(value: object, what: str) -> list[SeqRange]:
    if not isinstance(value, list) or len(value) > MAX_RECEIPT_RANGES:
        raise ContractError(f"receipt {what} must be a list of at most {MAX_RECEIPT_RANGES} "
                            f"[first, last] ranges")
    ranges = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in item)
                or item[0] > item[1]):
            raise ContractError(f"receipt {what}: {item!r} is not a [first, last] seq range")
        ranges.append((item[0], item[1]))
    return ranges


def decode_receipt(payload: bytes) -> tuple[list[SeqRange], list[SeqRange]]:
    """(stored, rejected) seq ranges of a receipt, or ContractError with the reason."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise ContractError(f"receipt is not UTF-8 JSON: {error}") from None
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise ContractError(f"receipt must be a JSON object with v = {VERSION}")
    unknown = set(document) - {"v", "stored", "rejected"}
    if unknown:
        raise ContractError(f"receipt has unknown keys {sorted(unknown)}")
    return _ranges(document.get("stored", []), "stored"), _ranges(document.get("rejected", []), "rejected")


# --- InfluxDB line protocol ---------------------------------------------------------------------

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})
# InfluxDB has no escape for a backslash in a name: one before a space, comma, equals sign or double
# quote (or at the end) is read as an escape, so the point splits or the name changes; a leading tab or
# NUL is skipped as whitespace (found by tests/test_fuzz.py). Refused, as is a newline, which line
# protocol cannot carry outside a string field.
_UNENCODABLE = re.compile(r'^[\t\x00]|\n|\\(?=[ ,="]|$)')
FieldValue = int | float | bool | str


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ContractError(f"integer field {value} is outside InfluxDB's 64-bit range")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError(f"float field {value} is not finite: InfluxDB stores no NaN or infinity")
        return repr(value)
    return f'"{value.translate(_STRING_ESCAPES)}"'


def line_protocol(measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], ts_ms: int) -> str:
    """One point in InfluxDB line protocol at millisecond precision, escaped for any names and strings.

    Tags are sorted (InfluxDB's preferred order); empty tag values are left out, as InfluxDB requires.
    Line protocol has no escape for a newline outside a string field, so such a name is refused.
    """
    if not fields:
        raise ContractError(f"a point of {measurement!r} needs at least one field")
    names = [measurement, *tags, *tags.values(), *fields]
    if any(_UNENCODABLE.search(name) for name in names):
        raise ContractError(f"a name or tag of {measurement!r} has a newline, a leading tab, or a backslash "
                            f"before a space, comma, equals sign, double quote or its end")
    if not measurement or measurement.startswith("#") or "" in tags or "" in fields:
        raise ContractError(f"measurement {measurement!r} or one of its tag or field keys is empty or starts "
                            f"a comment (#)")
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    for key in sorted(tags):
        if tags[key] != "":
            head += f",{key.translate(_KEY_ESCAPES)}={tags[key].translate(_KEY_ESCAPES)}"
    body = ",".join(f"{key.translate(_KEY_ESCAPES)}={_field(value)}" for key, value in fields.items())
    return f"{head} {body} {ts_ms}"


def sample_line(key: StationKey, sample: Sample) -> str:
    """A validated sample as its point in measurement `station` (docs/DESIGN.md §5).

    Identifiers are checked to need no escaping, so this is the fast path the collector runs per sample.
    """
    tail = _optional_tail(sample.get("scrap"), sample.get("state"), sample.get("reason"))
    return _station_point(_station_series(key), sample["count"], sample["queue"], sample["seq"], tail,
                          sample["ts"])


def _station_series(key: StationKey) -> str:
    """The measurement and tags of a station's points, with the space before the fields: written once
    for `sample_line` and the batch path (`_batch_fast_lines`)."""
    return f"{STATION_MEASUREMENT},line={key.line},plant={key.plant},station={key.station} "


def _station_point(series: str, count: int, queue: int, seq: int, tail: str, ts: int) -> str:
    """A station point's line: its series, the required fields in their order, the optional ones
    (`_optional_tail`) and the time. The one place the field order is written, for `sample_line` and
    the batch path alike."""
    return f"{series}count={count}i,queue={queue}i,seq={seq}i{tail} {ts}"


def _optional_tail(scrap: int | None, state: str | None, reason: str | None) -> str:
    """The optional fields of a station point, in their order, each only when given (values already
    checked: a state and a reason are identifiers, so they need no escaping)."""
    tail = "" if scrap is None else f",scrap={scrap}i"
    if state is not None:
        tail += f',state="{state}"'
    if reason is not None:
        tail += f',reason="{reason}"'
    return tail


_MAX_COUNTER = 2**63 - 1
_STATE_NAMES = frozenset(STATES)
_STATE_FIELDS = {state: _optional_tail(None, state, None) for state in STATES}


def _batch_fast_lines(key: StationKey, document: object) -> tuple[list[str], list[int]] | None:
    """A batch's lines and seqs by plain checks, or None to let pydantic decide (and word the error).

    Accepts only what `_batch` accepts (strict ints in range, known keys, a known state, a reason only
    with a stop state): anything else, even what pydantic would take, returns None, so the caller falls
    back to pydantic and this path can never let through what the contract refuses. Why it exists: a
    batch of 1,000 samples spent about 1 us a sample in pydantic and 0.9 us in `sample_line`, CPU that
    InfluxDB on the same cores needs during a drain. Column by column (one comprehension a field, the
    type and range checks on whole columns) it costs about half.
    """
    if type(document) is not dict or len(document) != 2 or type(document.get("v")) is not int \
            or document["v"] != VERSION:
        return None
    samples = document.get("samples")
    if type(samples) is not list or not 1 <= len(samples) <= MAX_BATCH or set(map(type, samples)) != {dict}:
        return None
    try:
        ts = [sample["ts"] for sample in samples]
        seq = [sample["seq"] for sample in samples]
        count = [sample["count"] for sample in samples]
        queue = [sample["queue"] for sample in samples]
        # Four keys: no optional field; five: the state alone, if it is one (else None: checked below).
        tails = ["" if size == 4 else _STATE_FIELDS.get(sample.get("state")) if size == 5 else None
                 for sample, size in zip(samples, map(len, samples), strict=True)]
    except (KeyError, TypeError):  # a required key missing, or an unhashable state
        return None
    for column, highest in ((ts, MAX_TS_MS), (seq, _MAX_COUNTER), (count, _MAX_COUNTER),
                            (queue, _MAX_COUNTER)):
        if set(map(type, column)) != {int} or min(column) < 0 or max(column) > highest:
            return None
    for index, tail in enumerate(tails):
        if tail is None and (tail := _optional_fields(samples[index])) is None:
            return None
        tails[index] = tail
    series = _station_series(key)
    return [_station_point(series, c, q, s, tail, t)
            for c, q, s, tail, t in zip(count, queue, seq, tails, ts, strict=True)], seq


def _optional_fields(sample: dict) -> str | None:
    """The scrap, state and reason fields of a sample's line, or None if one breaks the contract or an
    unknown key is there (`_batch_fast_lines` then leaves the batch to pydantic)."""
    scrap, state, reason = sample.get("scrap"), sample.get("state"), sample.get("reason")
    if scrap is not None and (type(scrap) is not int or not 0 <= scrap <= _MAX_COUNTER):
        return None
    if state is not None and (type(state) is not str or state not in _STATE_NAMES):
        return None
    if reason is not None and (type(reason) is not str or state not in STOP_STATES
                               or IDENTIFIER.fullmatch(reason) is None):
        return None
    found = (scrap is not None) + (state is not None) + (reason is not None)
    # Else an unknown key, or a key given as null (`"state": null`): pydantic decides and words it.
    return _optional_tail(scrap, state, reason) if found == len(sample) - 4 else None


def telemetry_lines(key: StationKey, payload: bytes) -> tuple[list[str], list[int]]:
    """One telemetry payload of station `key` as its points' lines and its samples' seqs, or ContractError.

    The collector's path: the very points of `sample_line` over `decode_telemetry`, and the same
    refusals with the same reasons (tests/test_contract.py and tests/test_fuzz.py compare them), in
    about half the CPU for a batch (`_batch_fast_lines`); a batch that path does not pass whole goes
    through pydantic, which words the reason or, where the quick checks were only stricter, accepts it.
    """
    if b'"samples"' in payload:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise ContractError(f"payload is not UTF-8 JSON: {error}") from None
        fast = _batch_fast_lines(key, document)
        if fast is not None:
            return fast
        samples = _validated_batch(document)
    else:
        samples = decode_telemetry(payload)
    return [sample_line(key, sample) for sample in samples], [sample["seq"] for sample in samples]


# --- offline file form: JSON Lines, one sample a line with plant, line and station ----------------


def record(key: StationKey, sample: Sample) -> bytes:
    """One line of the offline file form, without its newline."""
    return orjson.dumps({"plant": key.plant, "line": key.line, "station": key.station, **sample})


def parse_record(line: bytes | str) -> tuple[StationKey, Sample]:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ContractError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ContractError("a record must be a JSON object")
    try:
        key = StationKey(document.pop("plant", None), document.pop("line", None),
                         document.pop("station", None))
        document.pop("v", None)
        return key, _sample.validate_python(document)
    except ValidationError as error:
        raise ContractError(_reason(error)) from None


def read_records(path: str | Path) -> Iterator[tuple[StationKey, Sample]]:
    """Read a telemetry file; a bad line raises ContractError naming the file and line number."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield parse_record(line)
            except ContractError as error:
                raise ContractError(f"{path}:{number}: {error}") from None


def write_records(path: str | Path, records: Iterable[tuple[StationKey, Sample]]) -> int:
    """Write the offline file form; returns the number of records written."""
    written = 0
    with open(path, "wb") as out:
        for key, sample in records:
            out.write(record(key, sample) + b"\n")
            written += 1
    return written


# --- the offline file form in bulk: columns for analysis (10^6 samples a day and line) -------------


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """A whole telemetry file as columns, one row per record in file order.

    Why: analysis works on columns, and a day of a 20-station line is 1.7 million records; building a
    dict and a pydantic check per record costs some 17 us each, the columns well under 2 us.
    """

    keys: list[StationKey]  # distinct keys, in order of first appearance
    key: np.ndarray  # per row: index into `keys` (int32)
    ts: np.ndarray  # int64, like seq, count, queue
    seq: np.ndarray
    count: np.ndarray
    queue: np.ndarray
    scrap: np.ndarray  # int64, 0 where the record has none (`has_scrap` False)
    has_scrap: np.ndarray
    state: np.ndarray  # int8: index into STATES, -1 where the record has none
    reasons: list[str]
    reason: np.ndarray  # int32: index into `reasons`, -1 where the record has none

    def __len__(self) -> int:
        return len(self.ts)


def read_columns(path: str | Path) -> RecordColumns:
    """Read a telemetry file as columns; a bad line raises read_records' ContractError (file:line: why).

    A file in the form `write_records` writes (one object a line, ASCII) is parsed by pyarrow's
    multi-threaded JSON reader and checked against this contract's rules in bulk (`_bulk_columns`).
    Anything that check cannot vouch for (a bad record, a blank line, CRLF, an explicit null ...) goes
    through `read_records` line by line, so a bad file gets exactly the error it always got.
    """
    data = Path(path).read_bytes()
    columns = _bulk_columns(data)
    return columns if columns is not None else _columns_of(read_records(path))


_BULK_INTS = ("ts", "seq", "count", "queue", "scrap", "v")
_BULK_STRINGS = ("plant", "line", "station", "state", "reason")
_BULK_REQUIRED = ("plant", "line", "station", "ts", "seq", "count", "queue")
_BULK_BLOCK_BYTES = 16 << 20  # pyarrow's unit of parallel parsing; a longer line falls back


def _bulk_columns(data: bytes) -> RecordColumns | None:
    """The columns of a file the bulk rules vouch for, else None (then read_records decides).

    Each rule here is one of `parse_record`'s, applied to whole columns; where pyarrow's JSON reader
    is looser than orjson + pydantic strict, a guard sends the file to the per-line path: two objects
    on one line (one object a line, checked by the row count and the `}\n{` joints), an explicit null
    (pyarrow reads it as missing; the contract refuses it), non-ASCII bytes (never valid in a record:
    keys, identifiers and states are ASCII). Strict types come from pyarrow's explicit schema: a float,
    bool, string or out-of-range number in an integer column, an unknown key or a duplicate key fails
    the parse.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.json as pa_json

    if (not data.startswith(b"{") or not (data.endswith(b"}") or data.endswith(b"}\n"))
            or not data.isascii() or b"null" in data):
        return None
    schema = pa.schema([(name, pa.int64()) for name in _BULK_INTS]
                       + [(name, pa.string()) for name in _BULK_STRINGS])
    try:
        table = pa_json.read_json(
            pa.BufferReader(data), read_options=pa_json.ReadOptions(block_size=_BULK_BLOCK_BYTES),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))
    except pa.ArrowException:
        return None
    # One object a line: as many rows as lines, and every line break a `}\n{` joint (a blank, indented
    # or CRLF line, two objects on a line or one object over two lines break one of the equalities).
    breaks = data.count(b"\n") - data.endswith(b"\n")
    if (breaks != table.num_rows - 1 or data.count(b"}\n{") != breaks
            or any(table.column(name).null_count for name in _BULK_REQUIRED)):
        return None
    def numbers(name: str, missing: int) -> np.ndarray:
        return _numpy([chunk.fill_null(missing) for chunk in table.column(name).chunks], np.int64)

    ints = {name: numbers(name, 0) for name in ("ts", "seq", "count", "queue", "scrap")}
    if (ints["ts"] > MAX_TS_MS).any() or any((column < 0).any() for column in ints.values()):
        return None
    scrap = ints.pop("scrap")
    has_scrap = numbers("scrap", -1) >= 0
    codes = {}
    for name in _BULK_STRINGS:
        encoded = table.column(name).combine_chunks().dictionary_encode()
        codes[name] = (encoded.dictionary.to_pylist(), _numpy([encoded.indices.fill_null(-1)], np.int32))
    identifiers = [value for name in ("plant", "line", "station", "reason") for value in codes[name][0]]
    if not all(map(IDENTIFIER.fullmatch, identifiers)) or not set(codes["state"][0]) <= set(STATES):
        return None
    state_names, state_index = codes["state"]
    to_state = np.array([STATES.index(name) for name in state_names] + [-1], dtype=np.int8)
    state = to_state[state_index]  # index -1 (no state) picks the trailing -1
    reasons, reason = codes["reason"]
    stops = np.array([STATES.index(name) for name in STOP_STATES])
    if ((reason >= 0) & ~np.isin(state, stops)).any():
        return None
    (plants, plant), (line_ids, line), (stations, station) = (codes[n] for n in ("plant", "line", "station"))
    triple = (plant.astype(np.int64) * len(line_ids) + line) * len(stations) + station
    if len(plants) * len(line_ids) * len(stations) > len(triple) + 4096:  # many names: compact (a sort)
        codes_of, triple = np.unique(triple, return_inverse=True)
    else:
        codes_of = np.arange(len(plants) * len(line_ids) * len(stations))
    first = np.full(len(codes_of), len(triple), dtype=np.int64)
    np.minimum.at(first, triple, np.arange(len(triple)))  # each key's first row (no sort of the rows)
    seen = np.flatnonzero(first < len(triple))
    seen = seen[np.argsort(first[seen])]  # keys in order of first appearance, as read_records meets them
    rank = np.zeros(len(first), dtype=np.int32)
    rank[seen] = np.arange(len(seen), dtype=np.int32)
    keys = []
    for code in codes_of[seen].tolist():
        rest, s = divmod(code, len(stations))
        p, li = divmod(rest, len(line_ids))
        keys.append(StationKey(plants[p], line_ids[li], stations[s]))
    return RecordColumns(keys, rank[triple], ints["ts"], ints["seq"], ints["count"], ints["queue"],
                         scrap, has_scrap, state, reasons, reason.astype(np.int32))


def _numpy(arrays: list, dtype: type) -> np.ndarray:
    """pyarrow arrays of fixed-width numbers without nulls as one numpy array, from their buffers
    (why not pyarrow's own to_numpy: it imports pandas, 0.4 s)."""
    import numpy as np

    size = np.dtype(dtype).itemsize
    parts = [np.frombuffer(a.buffers()[1], dtype, len(a), a.offset * size) for a in arrays]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _columns_of(records: Iterable[tuple[StationKey, Sample]]) -> RecordColumns:
    """Columns built record by record (the path of files the bulk rules do not vouch for)."""
    import numpy as np

    keys: dict[StationKey, int] = {}
    reasons: dict[str, int] = {}
    state_code = {name: code for code, name in enumerate(STATES)}
    rows = []
    for key, sample in records:
        code = keys.setdefault(key, len(keys))
        scrap = sample.get("scrap")
        state = sample.get("state")
        reason = sample.get("reason")
        rows.append((code, sample["ts"], sample["seq"], sample["count"], sample["queue"], scrap or 0,
                     scrap is not None, -1 if state is None else state_code[state],
                     -1 if reason is None else reasons.setdefault(reason, len(reasons))))
    table = np.array(rows, dtype=np.int64).reshape(-1, 9)
    return RecordColumns(list(keys), table[:, 0].astype(np.int32), table[:, 1].copy(), table[:, 2].copy(),
                         table[:, 3].copy(), table[:, 4].copy(), table[:, 5].copy(), table[:, 6].astype(bool),
                         table[:, 7].astype(np.int8), list(reasons), table[:, 8].astype(np.int32))
