"""The live detector: every few seconds, the current bottleneck of a line, from InfluxDB back to InfluxDB.

Why it is built this way:
- The active period method needs the END of an active period, which live data does not have yet. Each
  tick re-reads the last `lookback_s` of telemetry, treats open periods as lasting until now (a lower
  bound), and rewrites the timeline windows of the recent past (`rewrite_s`): once periods close, the
  windows they touch are recomputed with the full lengths and marked `final`. Older windows keep their
  last, better-informed version.
- The live answer (`current`) has hysteresis: a challenger replaces it only after it has been each
  window's answer for `confirm_s`; the move takes effect at the start of that run. Each window's own
  answer is judged on `memory_s` of trailing time, which also damps flapping.
- Nothing that matters lives only in this process: the current answer and since when are written
  every tick, and a restarted detector reads them back (`history`); alerts are deduplicated by the
  store (analysis/alerts.py). Any instance can take over a line.
- Method `crn` (analysis/constraint.py) fits and simulates the line, about 0.8 s for 20 stations, so a
  tick judges only the newest window (its regime so far: up to now) and the older windows of the
  lookback keep the answer stored when each was the newest (`stored_answers`); windows written before
  are rewritten without a `bottleneck` field, so InfluxDB keeps it. The span methods judge every window.
- The stored live answer (`current`) is the line's constraint for every consumer: feasibility and
  the indicators (analysis/rollup.py, `live_constraint`), the huddle page, the boards and the alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from analysis.alerts import AlertRules, AlertSink, constraint_alerts
from analysis.bottleneck import ANALYZE_DEFAULT_METHOD, Timeline, analyze
from analysis.output_hours import HourRollup
from analysis.shares import window_shares
from analysis.states import StateSpans
from analysis.states import spans as state_spans
from analysis.telemetry import LineTelemetry, TelemetryError, from_store
from shopfloor.contract import BOTTLENECK_MEASUREMENT, line_protocol
from shopfloor.plant import Plant
from shopfloor.store import Store, quote_ident, quote_string

log = logging.getLogger(__name__)
# With `crn` the span method still gives each window's shares, sole, blocked and starved time.
SPAN_FOR_CRN = "combined"


@dataclass(frozen=True, slots=True)
class LiveConfig:
    interval_s: float = 5.0  # how often a tick runs
    lookback_s: float = 3600.0  # telemetry each tick re-reads (the longest period it can see whole)
    rewrite_s: float = 1800.0  # windows newer than this are rewritten each tick
    window_s: float = 60.0  # timeline resolution
    memory_s: float = 1800.0  # each window's answer is judged on this much trailing time
    confirm_s: float = 300.0  # a new bottleneck must hold this long before it becomes current
    method: str = ANALYZE_DEFAULT_METHOD  # the offline command's method: one constraint everywhere
    rules: AlertRules = field(default_factory=AlertRules)
    rollup_every_s: float = 300.0  # how often the hourly output rollup is rewritten (output_hours.py)


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """What one tick concluded for one line."""

    line: str
    now_ms: int
    current: str | None
    since_ms: int | None
    timeline: Timeline
    alerts_sent: int


def history(store: Store, plant: str, line: str, since_ms: int) -> list[tuple[int, str]]:
    """The live answer's history from the store: (since ms, station), oldest first, one per change."""
    result = store.query(
        f'SELECT "current", "since" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE plant = '
        f"{quote_string(plant)} AND line = {quote_string(line)} AND time >= {since_ms}ms")
    changes: list[tuple[int, str]] = []
    for row in sorted(result.rows(), key=lambda row: row["time"]):
        if row["current"] is None:
            continue
        since = int(row["since"] if row["since"] is not None else row["time"])
        if not changes or changes[-1][1] != row["current"]:
            changes.append((since, row["current"]))
    return changes


def last_current(store: Store, plant: str, line: str) -> tuple[int, str] | None:
    """The latest stored live answer of a line (since ms, station), or None."""
    rows = store.query(
        f'SELECT "current", "since" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE plant = '
        f"{quote_string(plant)} AND line = {quote_string(line)} ORDER BY time DESC LIMIT 1").rows()
    if not rows or rows[0]["current"] is None:
        return None
    since = rows[0]["since"] if rows[0]["since"] is not None else rows[0]["time"]
    return int(since), rows[0]["current"]


def live_constraint(store: Store, plant: str, line: str, start_ms: int, end_ms: int) -> str | None:
    """The live detector's answer as it stood at the end of [start_ms, end_ms), or None when no live
    detector wrote for the line in that range: the constraint feasibility and the indicators use."""
    rows = store.query(
        f'SELECT "current" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE plant = {quote_string(plant)} '
        f"AND line = {quote_string(line)} AND \"current\" =~ /./ AND time >= {int(start_ms)}ms "
        f"AND time < {int(end_ms)}ms ORDER BY time DESC LIMIT 1").rows()
    return rows[0]["current"] if rows else None


# window start ms -> (bottleneck, runner-up, margin, confidence)
Answers = dict[int, tuple[str, str | None, float, float | None]]


def stored_answers(store: Store, plant: str, line: str, since_ms: int) -> Answers:
    """The `crn` answers stored per window since `since_ms`: start ms -> (bottleneck, runner-up, margin,
    confidence; None where a window was stored before the confidence was)."""
    rows = store.query(
        f'SELECT "bottleneck", "runner_up", "margin", "confidence" '
        f"FROM {quote_ident(BOTTLENECK_MEASUREMENT)} "
        f"WHERE plant = {quote_string(plant)} AND line = {quote_string(line)} AND \"method\" = 'crn' "
        f"AND time >= {int(since_ms)}ms").rows()
    return {int(row["time"]): (row["bottleneck"], row["runner_up"], float(row["margin"] or 0.0),
                               row.get("confidence")) for row in rows if row["bottleneck"]}


def newest_answer(timeline: Timeline) -> Answers:
    """The newest window's answer as `stored_answers` reads it back (a replay carries it on)."""
    if not timeline.windows or not timeline.windows[-1].bottleneck:
        return {}
    w = timeline.windows[-1]
    return {w.start: (w.bottleneck, w.runner_up, float(w.margin), w.confidence)}


def decide(previous: tuple[int, str] | None, timeline: Timeline, confirm_s: float) -> tuple[int, str] | None:
    """The live answer with hysteresis: keep `previous` unless a challenger held for `confirm_s`."""
    answers = [(w.start, w.bottleneck) for w in timeline.windows if w.bottleneck]
    if not answers:
        return previous
    needed = max(1, int(np.ceil(confirm_s / max(1, (timeline.windows[0].end - timeline.windows[0].start)
                                                   / 1000))))
    latest = answers[-1][1]
    run_start = answers[-1][0]
    held = 0
    for start, station in reversed(answers):
        if station != latest:
            break
        held += 1
        run_start = start
    if previous is None:
        return run_start, latest
    if latest != previous[1] and held >= needed:
        return run_start, latest
    return previous


def timeline_lines(plant: str, timeline: Timeline, window_s: float, from_ms: int, open_since_ms: int
                   ) -> list[str]:
    """The timeline windows starting at or after `from_ms` as points (see shopfloor/contract.py)."""
    lines = []
    for w in timeline.windows:
        if w.start < from_ms:
            continue
        tags = {"plant": plant, "line": timeline.line}
        fields: dict = {"shifting": ",".join(w.shifting), "window_s": int(window_s),
                        "final": bool(w.end <= open_since_ms)}
        if w.bottleneck or timeline.method != "crn":  # a crn window without an answer keeps the stored one
            share = float(w.shares.get(w.bottleneck, 0.0)) if w.bottleneck else 0.0
            fields.update({"bottleneck_share": share, "margin": float(w.margin), "method": timeline.method})
        if w.bottleneck and w.confidence is not None:  # crn's, graded into a kind of call (analysis/calls.py)
            fields["confidence"] = float(w.confidence)
        if w.bottleneck:
            fields["bottleneck"] = w.bottleneck
        if w.runner_up:
            fields["runner_up"] = w.runner_up
        lines.append(line_protocol(BOTTLENECK_MEASUREMENT, tags, fields, w.start))
        # the window's split (analysis.shares): its stations' splits sum to at most 1, so a board's
        # mean of it over a range never sums above 100 % (a three-way shifting window included)
        split = window_shares({s: w.shares[s] for s in timeline.stations}, w.sole)
        for station in timeline.stations:
            alone, shifting = split[station]
            lines.append(line_protocol(BOTTLENECK_MEASUREMENT, {**tags, "station": station}, {
                "share": float(w.shares[station]), "sole": float(w.sole.get(station, 0.0)),
                "split": float(alone + shifting),
                "blocked": float(w.blocked.get(station, 0.0)), "starved": float(w.starved.get(station, 0.0)),
            }, w.start))
    return lines


def judge_newest(timeline: Timeline, spans: StateSpans, data: LineTelemetry,
                 stored: Answers, backfill_from_ms: int | None = None) -> None:
    """Method `crn` live: the newest window by simulation of its regime so far, the older ones from
    their stored answers. When none is stored (the first tick, a restart after a gap longer than the
    lookback), the windows from `backfill_from_ms` on (the range a tick rewrites) are simulated too, each
    on its regime as the offline command judges it (up to 1 h past its end, within the data read).
    Otherwise a window without a stored answer (one between two ticks) has none, so neither hysteresis
    nor the store sees a span method's."""
    from analysis.constraint import by_simulation

    timeline.method = "crn"
    simulate = timeline.windows[-1:]
    for window in timeline.windows[:-1]:
        window.method = "crn"
        window.bottleneck, window.runner_up, window.margin, window.confidence = stored.get(
            window.start, (None, None, 0.0, None))
        if not stored and backfill_from_ms is not None and window.start >= backfill_from_ms:
            simulate.insert(-1, window)
    if timeline.windows:
        timeline.windows[-1].method = "crn"
        by_simulation(simulate, spans, data)


def conclude(data: LineTelemetry, config: LiveConfig, previous: tuple[int, str] | None,
             stored: Answers | None = None
             ) -> tuple[StateSpans, Timeline, int, tuple[int, str] | None]:
    """One tick's reasoning on the telemetry it read: spans, timeline, the moment from which active
    periods are still open, and the live answer after hysteresis. Pure: the benchmark replays it.
    With method `crn`, `stored` holds the older windows' answers (`stored_answers`)."""
    spans = state_spans(data)
    crn = config.method == "crn"
    timeline = analyze(spans, data.stations, data.line.id, config.window_s,
                       SPAN_FOR_CRN if crn else config.method, config.memory_s)
    if crn:  # the windows a tick rewrites (LiveDetector.tick: from now - rewrite_s) get an answer
        judge_newest(timeline, spans, data, stored or {}, spans.end_ms - int(config.rewrite_s * 1000))
    active = spans.active()
    still_open = active.stop >= spans.end_ms
    open_since = int(active.start[still_open].min()) if still_open.any() else spans.end_ms
    return spans, timeline, open_since, decide(previous, timeline, config.confirm_s)


class LiveDetector:
    """One line's live detector; `tick(now_ms)` does one round and returns what it concluded."""

    def __init__(self, store: Store, plant: Plant, line_id: str, config: LiveConfig = LiveConfig(),
                 sink: AlertSink | None = None):
        self.store = store
        self.plant = plant
        self.line = plant.get_line(line_id)
        self.config = config
        self.sink = sink
        self.rollup = HourRollup(plant, line_id, config.rollup_every_s)

    def tick(self, now_ms: int) -> LiveStatus | None:
        config = self.config
        self.rollup.maybe_write(self.store, now_ms)  # the executive's hours, whatever the detector says
        begin = now_ms - int(config.lookback_s * 1000)
        try:
            data = from_store(self.store, self.plant, self.line.id, begin, now_ms)
        except TelemetryError:
            return None  # no telemetry in the lookback: nothing to say, nothing to write
        previous = last_current(self.store, self.plant.plant, self.line.id)
        stored = (stored_answers(self.store, self.plant.plant, self.line.id, begin)
                  if config.method == "crn" else None)
        spans, timeline, open_since, current = conclude(data, config, previous, stored)
        lines = timeline_lines(self.plant.plant, timeline, config.window_s,
                               now_ms - int(config.rewrite_s * 1000), open_since)
        if current is not None:
            tags = {"plant": self.plant.plant, "line": self.line.id}
            lines.append(line_protocol(BOTTLENECK_MEASUREMENT, tags,
                                       {"current": current[1], "since": int(current[0]),
                                        "settled": now_ms - int(config.rewrite_s * 1000)}, now_ms))
        self.store.write(lines)
        sent = 0
        if self.sink is not None and current is not None:
            changes = history(self.store, self.plant.plant, self.line.id, begin)
            if not changes or changes[-1][1] != current[1]:
                changes.append(current)
            # Runs cut by the lookback's start are not events of their own: their start is unknown.
            newest = timeline.windows[-1] if timeline.windows else None
            alerts = [(alert, lost) for alert, lost in constraint_alerts(self.line, changes, spans, now_ms,
                                                                         config.rules, self.plant.timezone,
                                                                         newest)
                      if alert["ts"] > spans.begin_ms]
            sent = len(self.sink.send_all(alerts))
        return LiveStatus(self.line.id, now_ms, current[1] if current else None,
                          current[0] if current else None, timeline, sent)
