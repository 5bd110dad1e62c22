"""The built-in huddle page and its JSON, served by the analysis service (no Grafana needed).

`huddle_router(plant, store_factory, plan)` is an APIRouter the analysis service includes:
  GET /huddle                 the page (dashboards/huddle.html, self-contained, auto-refreshing)
  GET /api/huddle             the plant's lines, for the page's line picker
  GET /api/huddle/{line}      hour by hour actual vs target, the constraint and its share this shift,
                              station states and buffers, the state timeline, alerts

The numbers come from the same InfluxQL text as the Grafana panels (dashboards.queries, expanded by
dashboards.macros as Grafana would), read through shopfloor.store; hour targets come from the plan's
decomposition (analysis.targets) when a plan is given, else from the `target` measurement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from analysis.calls import call_fields, call_of, describe
from analysis.escalation import DAY_KINDS
from analysis.http_range import HUDDLE_MAX_RANGE_DAYS, checked_range, moment_ms
from analysis.shares import period_shares, stored_windows
from analysis.targets import check_zones, local_ms, shift_label, shifts_between, to_local
from dashboards import analysis_queries as aq
from dashboards import queries as q
from dashboards.macros import QueryContext, expand, grafana_interval
from shopfloor.errors import ConfigError
from shopfloor.plan import Plan
from shopfloor.plant import Line, Plant
from shopfloor.store import Store, StoreError, StoreRejected

PAGE = Path(__file__).with_name("huddle.html")
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_ALERTS = 6  # the page lists at most this many, newest first, and says how many more there are
TIMELINE_BUCKETS = 96  # the page draws at most this many state segments per station
CONSTRAINT_WINDOW_S = 900.0  # the detector's window for the huddle: 15 minutes
Json = dict[str, Any]


def call_json(station: str | None, runner_up: str | None, confidence: float | None) -> Json | None:
    """The newest window's answer graded as a kind of call (analysis/calls.py): `station` (which may
    differ from the constraint now, held by the live detector's hysteresis), `runner_up`, `call`, its
    lower bounds and `text`, what the page says (analysis.calls.describe); None without a confidence
    (a method other than crn, an older store)."""
    call = call_of(confidence)
    if station is None or call is None:
        return None
    return {"station": station, "runner_up": runner_up, **call_fields(call),
            "text": describe(call, station, runner_up)}


@dataclass(frozen=True, slots=True)
class HuddleRange:
    """The time the huddle looks at: normally the current shift, else today so far."""

    start_ms: int
    end_ms: int
    label: str


def current_range(plant: Plant, plan: Plan | None, now_ms: int, back: int = 0) -> HuddleRange:
    """The shift that holds `now` (or the last one that started), or the `back`-th shift before it.

    Shifts are the plan's production calendar (analysis.targets.shifts_between: workdays, holidays,
    DST), so a Saturday without shifts shows Friday's last one. Without a plan: today, or the `back`-th
    day before it. A huddle at a shift's start looks at the shift that just ended: `back=1`.
    """
    zone = ZoneInfo(plan.calendar.timezone if plan else plant.timezone)
    if plan:
        runs: list = []
        for days in (3, 14, 62):  # far enough back for weekends, holiday weeks, a summer shutdown
            runs = [run for run in shifts_between(plan.calendar, now_ms - days * DAY_MS, now_ms + 1)
                    if run.start_ms <= now_ms]
            if len(runs) > back:
                break
        if len(runs) > back:
            run = runs[-1 - back]
            start = datetime.fromtimestamp(run.start_ms / 1000, UTC).astimezone(zone)
            dated = back or run.end_ms <= now_ms  # not the shift running now: say which day it was
            return HuddleRange(run.start_ms, run.end_ms, f"Shift {shift_label(plan.calendar, run)}"
                               + (f" of {start:%a %d %b}" if dated else ""))
    now = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    day = now.date() - timedelta(days=back)
    start_ms, end_ms = local_ms(day, 0, zone), local_ms(day + timedelta(days=1), 0, zone)
    return HuddleRange(start_ms, end_ms, f"Day {day:%Y-%m-%d}")


class ConstraintCache:
    """The detector's answer per line and shift, recomputed at most every `ttl_s` seconds.

    Reading a shift of 1 Hz samples of a line takes seconds (2.4 s for 5 stations x 8 h here), and
    every wall screen refreshes every 30 s: one computation serves all screens of a line. Only a
    cache: after a restart it is simply computed again.
    """

    def __init__(self, ttl_s: float = 60.0):
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, str, int], tuple[float, Json | None]] = {}
        self._locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    def _fresh(self, key: tuple[str, str, int]) -> tuple[float, Json | None] | None:
        found = self._entries.get(key)
        return found if found and time.monotonic() - found[0] < self.ttl_s else None

    def get(self, key: tuple[str, str, int], compute: Callable[[], Json | None]) -> Json | None:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one computation per line and shift; the screens waiting on it then find it fresh
            found = self._fresh(key)
            if found:
                return found[1]
            value = compute()
            with self._guard:
                self._entries = {k: v for k, v in self._entries.items() if self._fresh(k)}
                self._locks = {k: v for k, v in self._locks.items() if k in self._entries or k == key}
                self._entries[key] = (time.monotonic(), value)
            return value


class HuddleReader:
    """Reads one line's huddle numbers from InfluxDB with the boards' own queries."""

    def __init__(self, store: Store, plant: Plant, plan: Plan | None = None,
                 cache: ConstraintCache | None = None):
        self.store = store
        self.plant = plant
        self.plan = plan
        self.cache = cache

    def _context(self, line: Line, start_ms: int, end_ms: int, interval: str | None = None,
                 anchor_ms: int | None = None) -> QueryContext:
        """The boards' variables; hour buckets start at the minute of `anchor_ms` (the range's start: a
        05:30 shift gets 05:30-06:30 hours, whatever minute the plan's other shifts start at)."""
        anchor = to_local(anchor_ms if anchor_ms is not None else start_ms, ZoneInfo(self.plant.timezone))
        offset = f"{anchor.minute}m"
        variables = {"plant": self.plant.plant, "line": line.id, "timezone": self.plant.timezone,
                     "bucket_offset": offset}
        return QueryContext(start_ms, end_ms, variables, interval)

    def _rows(self, query: str, context: QueryContext) -> list[Json]:
        return self.store.query(expand(query, context)).rows()

    def hours(self, line: Line, span: HuddleRange, now_ms: int) -> list[Json]:
        """One row per hour of the range: its start, the good units made (actual) and the target units."""
        context = self._context(line, span.start_ms, span.end_ms, anchor_ms=span.start_ms)
        actual = {row["time"]: row["actual"]
                  for row in self._rows(q.hourly_output(q.exit_filter([line])), context)}
        targets = self._targets(line, span, context)
        rows = []
        start = span.start_ms
        while start < span.end_ms:
            end = min(start + HOUR_MS, span.end_ms)
            rows.append({"start": start, "end": end, "actual": actual.get(start) if start <= now_ms else None,
                         "target": targets.get(start), "current": start <= now_ms < end})
            start = end
        return rows

    def _targets(self, line: Line, span: HuddleRange, context: QueryContext) -> dict[int, int]:
        """Hour targets from the plan's decomposition; where the plan has no goal for the line and
        year, from the stored `target` points (`shopfloor targets write`)."""
        if self.plan is not None:
            from analysis.targets import decompose

            year = datetime.fromtimestamp(span.start_ms / 1000, UTC).astimezone(
                ZoneInfo(self.plan.calendar.timezone)).year
            try:
                goal = decompose(self.plan, line.id, year)
            except ConfigError:
                goal = None
            if goal is not None:
                return {start: round(goal.due_between(start, min(start + HOUR_MS, span.end_ms)))
                        for start in range(span.start_ms, span.end_ms, HOUR_MS)}
        grain = "hour" if context.variables["bucket_offset"] == "0m" else "shift_hour"
        return {row["time"]: int(row["target"]) for row in self._rows(aq.hourly_target(grain), context)
                if row.get("target") is not None}

    def stations(self, line: Line, span: HuddleRange, now_ms: int) -> list[Json]:
        """Each station in flow order: state now, buffer now and capacity, units in the range."""
        context = self._context(line, span.start_ms, min(span.end_ms, now_ms))
        states = {row["station"]: row["state"] for row in self._rows(q.STATES_NOW, context)}
        queues = {row["station"]: row["queue"] for row in self._rows(q.BUFFERS_NOW, context)}
        output = {row["station"]: row["units"] for row in self._rows(q.station_output(), context)}
        return [{"station": station.id, "state": states.get(station.id), "queue": queues.get(station.id),
                 "buffer": station.buffer, "output": output.get(station.id)} for station in line.stations]

    def timeline(self, line: Line, span: HuddleRange, now_ms: int) -> Json:
        """Per station, the state in each of up to TIMELINE_BUCKETS equal slices of the range so far."""
        end = max(span.start_ms + 1000, min(span.end_ms, now_ms))
        interval = grafana_interval(end - span.start_ms, TIMELINE_BUCKETS, min_interval_s=10)
        context = self._context(line, span.start_ms, end, interval)
        series: dict[str, list[list[Any]]] = {station: [] for station in line.station_ids}
        for row in self._rows(q.STATE_TIMELINE, context):
            if row["station"] in series and row["time"] >= span.start_ms:
                series[row["station"]].append([row["time"], row["state"]])
        return {"interval": interval, "stations": series}

    def stored_constraint(self, line: Line, span: HuddleRange, now_ms: int) -> Json | None:
        """The live detector's current answer in the range, each station's share of the range as the
        constraint (analysis.shares: sole + split shifting, at most 100 % in all), and every move of
        the answer inside the range, so a changed "since" is always shown as a move.

        The shares count only the settled windows, those the detector will not rewrite again (before
        its latest `settled` mark): the detector rewrites its last `rewrite_s` (30 min) each tick,
        and counting those windows made the shift's share swing (87 <-> 100 %) from refresh to
        refresh. The unsettled tail is given apart (`tail`); before the first window settles the
        shares are the tail's, marked `provisional`."""
        from analysis.live import history

        context = self._context(line, span.start_ms, min(span.end_ms, now_ms))
        current = self._rows(aq.CURRENT_CONSTRAINT, context)
        if not current:
            return None
        marks = self._rows(aq.SETTLED, self._context(line, span.start_ms, now_ms))
        settled = int(marks[0]["settled"]) if marks else None
        rows = self.store.query(expand(aq.CONSTRAINT_WINDOWS, context))

        def windows(keep: Callable[[int], bool]) -> list[tuple[dict, dict, float]]:
            kept = [(series.tags["station"], [row for row in series.rows() if keep(row["time"])])
                    for series in rows.series]
            return stored_windows(kept, line.station_ids)

        done = windows(lambda at: settled is None or at < settled)
        tail = windows(lambda at: settled is not None and at >= settled)
        shares = period_shares(done or tail, line.station_ids)
        station = current[0]["constraint"]
        changes = history(self.store, self.plant.plant, line.id, span.start_ms - DAY_MS)
        moves = [{"at": at, "from": before, "to": after}
                 for (_, before), (at, after) in zip(changes, changes[1:], strict=False)
                 if span.start_ms <= at <= now_ms]
        tail_shares = period_shares(tail, line.station_ids) if tail else None
        newest = self._rows(aq.NEWEST_ANSWER, context)
        answer = newest[0] if newest else {}
        return {"station": station, "share": round(shares[station].share, 4) if station in shares else None,
                "since": current[0]["since"],
                "shares": {s: round(shares[s].share, 4) for s in line.station_ids},
                "split": {s: shares[s].to_json() for s in line.station_ids}, "moves": moves,
                "settled": settled, "provisional": not done and bool(tail),
                "tail": None if tail_shares is None else {
                    "from": max(settled or span.start_ms, span.start_ms),
                    "shares": {s: round(tail_shares[s].share, 4) for s in line.station_ids}},
                "call": call_json(answer.get("bottleneck"), answer.get("runner_up"),
                                  answer.get("confidence")),
                "source": "live detector"}

    def detected_constraint(self, line: Line, span: HuddleRange, now_ms: int) -> Json | None:
        """The detector (analysis.bottleneck, the live loop's method) on the shift's samples in windows
        of CONSTRAINT_WINDOW_S, when no live detector writes for the line: the last window's constraint,
        shares as the live path computes them, and no "since" (recomputed on every read, it would move
        silently)."""
        from analysis.bottleneck import ANALYZE_DEFAULT_METHOD, analyze
        from analysis.states import spans
        from analysis.telemetry import TelemetryError, from_store

        end = min(span.end_ms, now_ms)
        try:
            data = from_store(self.store, self.plant, line.id, span.start_ms, end)
            timeline = analyze(spans(data), data.stations, line.id, CONSTRAINT_WINDOW_S,
                               ANALYZE_DEFAULT_METHOD, telemetry=data)
        except (TelemetryError, ValueError):
            return None
        windows = [window for window in timeline.windows if window.bottleneck]
        if not windows:
            return None
        shares = period_shares([(window.shares, window.sole, window.end - window.start)
                                for window in timeline.windows], line.station_ids)
        station = windows[-1].bottleneck
        return {"station": station, "share": round(shares[station].share, 4), "since": None,
                "shares": {s: round(shares[s].share, 4) for s in line.station_ids},
                "split": {s: shares[s].to_json() for s in line.station_ids}, "moves": [],
                "call": call_json(station, windows[-1].runner_up, windows[-1].confidence),
                "source": "detector on this shift's samples"}

    def constraint(self, line: Line, span: HuddleRange, now_ms: int) -> Json | None:
        """The constraint now and each station's share of this shift as (sole or shifting) bottleneck.

        From the live detector's timeline (measurement `bottleneck`, what the boards show) when the
        analysis service writes it for this shift; else the detector runs here on the shift's samples,
        cached per line and shift when the reader has a cache.
        """
        stored = self.stored_constraint(line, span, now_ms)
        if stored is not None:
            return stored
        if self.cache is None:
            return self.detected_constraint(line, span, now_ms)
        key = (self.store.database, line.id, span.start_ms)
        return self.cache.get(key, lambda: self.detected_constraint(line, span, now_ms))

    def alerts(self, line: Line, span: HuddleRange, now_ms: int) -> list[Json]:
        """Every alert of the line in the range, newest first, of any kind (constraint, pace, uptime,
        forecast, test). Day-level alerts (constraint uptime, month forecast) carry their day's local
        midnight as `ts` (analysis/escalation.py), often before a shift begins: they count for every
        shift that starts on that day, and `day` marks them (the page shows their day, not 00:00). Any
        other alert before the range, even one at exactly midnight, belongs to an earlier shift."""
        zone = ZoneInfo(self.plant.timezone)
        midnight = local_ms(to_local(span.start_ms, zone).date(), 0, zone)
        context = self._context(line, min(midnight, span.start_ms), min(span.end_ms, now_ms) + 1)
        # Before the range, only a day-level alert of the range's first day counts: a night shift's stop
        # that happened to be stamped at 00:00 stays with the night shift.
        rows = [row for row in self._rows(aq.ALERT_LIST, context)
                if row["time"] >= span.start_ms or (row["time"] == midnight and row.get("kind") in DAY_KINDS)]
        rank = {"critical": 0, "warning": 1, "info": 2}  # at the same moment, the graver first
        rows.sort(key=lambda row: (-row["time"], rank.get(row.get("severity"), 3)))
        return [{"ts": row["time"], "kind": row.get("kind"), "severity": row.get("severity"),
                 "station": row.get("station"), "message": row.get("message"),
                 "day": row.get("kind") in DAY_KINDS} for row in rows]

    def snapshot(self, line_id: str, *, now_ms: int | None = None, start_ms: int | None = None,
                 end_ms: int | None = None, back: int = 0) -> Json:
        """Everything the page shows for one line, as one JSON document."""
        line = self.plant.get_line(line_id)
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        span = current_range(self.plant, self.plan, now_ms, back)
        if start_ms is not None and end_ms is not None:
            span = HuddleRange(start_ms, end_ms, "Chosen range")
        hours = self.hours(line, span, now_ms)
        for row in hours:  # the part of the hour's target due by now: the current hour pro rata
            row["due"] = None if row["target"] is None else round(row["target"] * _elapsed(row, now_ms))
        actual = sum(row["actual"] or 0 for row in hours)
        # due since the range's start, the running hour pro rata: the one definition the boards' "Output
        # vs target" and the indicators' target use (tests/test_numbers_equal.py), so the page's
        # "made / due" is theirs; an hour the line did not report in is due all the same
        due = sum(row["due"] or 0 for row in hours)
        return {
            "plant": self.plant.plant, "line": line.id, "name": line.name or line.id,
            "timezone": self.plant.timezone, "now": now_ms,
            "range": {"start": span.start_ms, "end": span.end_ms, "label": span.label},
            "hours": hours,
            "total": {"actual": actual, "target_due": due,
                      "target": sum(row["target"] or 0 for row in hours)},
            "constraint": self.constraint(line, span, now_ms),
            "stations": self.stations(line, span, now_ms),
            "timeline": self.timeline(line, span, now_ms),
            "alerts": shown_alerts(alerts := self.alerts(line, span, now_ms)),
            "alerts_total": len(alerts),
        }


def shown_alerts(alerts: list[Json], limit: int = MAX_ALERTS) -> list[Json]:
    """At most `limit` alerts, newest first, and every kind present among them: the newest of each kind
    first, then the newest of the rest, so a burst of one kind never hides a critical forecast."""
    chosen: list[int] = []
    kinds: set = set()
    for index, alert in enumerate(alerts):  # alerts are newest first
        if alert["kind"] not in kinds:
            kinds.add(alert["kind"])
            chosen.append(index)
    chosen = chosen[:limit]
    for index in range(len(alerts)):
        if len(chosen) >= limit:
            break
        if index not in chosen:
            chosen.append(index)
    return [alerts[index] for index in sorted(chosen)]


def _elapsed(hour: Json, now_ms: int) -> float:
    """The share of an hour that lies before `now` (1 for past hours, 0 for future ones)."""
    return min(1.0, max(0.0, (now_ms - hour["start"]) / (hour["end"] - hour["start"])))


def huddle_router(plant: Plant, store_factory: Callable[[], Store], plan: Plan | None = None) -> APIRouter:
    """The page and its JSON; `store_factory` gives a Store per request (closed after it)."""
    if plan is not None:
        check_zones(plant.timezone, plan.calendar)
    router = APIRouter()
    cache = ConstraintCache()

    @router.get("/huddle", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    @router.get("/api/huddle")
    def lines() -> Json:
        return {"plant": plant.plant, "lines": [{"id": line.id, "name": line.name or line.id}
                                                for line in plant.lines]}

    @router.get("/api/huddle/{line}")
    def huddle(line: str, start: int | None = Query(None, description="range start, ms since the epoch"),
               end: int | None = Query(None, description="range end, ms since the epoch"),
               back: int = Query(0, ge=0, le=21, description="shifts back: 1 = the shift before this")
               ) -> Json:
        if line not in {item.id for item in plant.lines}:
            raise HTTPException(404, f"plant {plant.plant} has no line {line!r}")
        if (start is None) != (end is None):
            raise HTTPException(422, "give both start and end, or neither (the current shift)")
        if start is not None and end is not None:
            start, end = checked_range(moment_ms(start, "start"), moment_ms(end, "end"),
                                       HUDDLE_MAX_RANGE_DAYS, names=("start", "end"))
        with store_factory() as store:
            try:
                return HuddleReader(store, plant, plan, cache).snapshot(line, start_ms=start, end_ms=end,
                                                                        back=back)
            except StoreRejected as error:
                raise HTTPException(422, str(error)) from None
            except StoreError as error:
                raise HTTPException(503, str(error)) from None

    return router
