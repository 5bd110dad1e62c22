"""HTTP endpoints for targets, indicators and feasibility: an APIRouter the analysis service includes.

Why a router of its own: the service (analysis/service.py) owns the app, the live loop and the
huddle page; this file owns only the three read-only views of issue 5, built on the same glue as
the `shopfloor targets` commands (analysis.rollup), so the API and the command line agree.

    GET /api/lines/{line}/targets?grain=day[&year=2027][&as_of=2027-07-01T00:00&delivered=560000]
        -> {"line", "grain", "targets": [{"start", "end", "units"}, ...]}   (docs/DESIGN.md §7)
    GET /api/lines/{line}/indicators[?day=YYYY-MM-DD][&now=ISO]   -> the day's report (rollup.DayReport)
    GET /api/lines/{line}/feasibility[?day=YYYY-MM-DD][&now=ISO][&needed_per_hour=X]

A user-fixable problem answers 4xx with its one-line message as `detail` (a line the plant does not have
or the plan has no goal for: 404; a time that is malformed or outside InfluxDB's range: 422); only
InfluxDB down answers 503. Messages name query parameters, never command-line flags.
Handlers are plain functions: FastAPI runs them in its thread pool, so the blocking store is fine.
The service includes `router_factory` explicitly (analysis.service.ANALYSIS_ROUTERS).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query

from analysis.feasibility import NotMeasurable
from analysis.http_range import moment_ms
from analysis.indicators import NoTelemetry, by_station
from analysis.rollup import day_window, feasibility, stored_constraint, stored_day_report
from analysis.targets import GRAINS, check_zones, decompose, to_local
from analysis.telemetry import TelemetryError, from_store
from shopfloor.counters import BASELINE_MS
from shopfloor.errors import ShopfloorError
from shopfloor.plan import Plan, load_plan
from shopfloor.plant import Plant
from shopfloor.store import Store, StoreRejected, StoreUnavailable


def _http_error(error: ShopfloorError) -> HTTPException:
    if isinstance(error, StoreUnavailable):
        return HTTPException(503, str(error))
    if isinstance(error, StoreRejected):  # a request InfluxDB refuses is the caller's to fix, not an outage
        return HTTPException(422, str(error))
    if isinstance(error, NoTelemetry | NotMeasurable | TelemetryError):
        return HTTPException(404, str(error))
    return HTTPException(400, str(error))


def _moment(now: str | None) -> int:
    if now is None:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    try:
        moment = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise HTTPException(422, f"now={now!r} is not an ISO 8601 time with an offset")
    return moment_ms(int(moment.timestamp() * 1000), "now")


def router_factory(plant: Plant, store_factory: Callable[[], Store], plan: Plan | str | Path | None
                   ) -> APIRouter:
    """The service's hook: the targets router for the plan it serves (a Plan or a plan file).

    Without a plan the same paths answer 404 saying how to give one, instead of not existing.
    """
    if plan is None:
        return _without_plan()
    return targets_router(plant, plan if isinstance(plan, Plan) else load_plan(plan), store_factory)


def _without_plan(prefix: str = "/api") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["targets"])

    @router.get("/lines/{line}/targets", summary="Targets (needs a plan)")
    @router.get("/lines/{line}/indicators", summary="Leading indicators (needs a plan)")
    @router.get("/lines/{line}/feasibility", summary="Goal feasibility (needs a plan)")
    def no_plan(line: str) -> dict:
        raise HTTPException(404, "this analysis service was started without a plan file, so it has no "
                                 "targets, indicators or feasibility")

    return router


def targets_router(plant: Plant, plan: Plan, store: Callable[[], Store], prefix: str = "/api") -> APIRouter:
    """The router for one plant and plan; `store()` gives a Store the handler closes after use.

    Every path answers 404 for a line the plant file does not have, and the plan must keep the plant's
    clock (a one-line ConfigError otherwise)."""
    check_zones(plant.timezone, plan.calendar)
    router = APIRouter(prefix=prefix, tags=["targets"])

    def known(line: str, year: int | None = None) -> None:
        """404 for a line the plant does not have, or one without a goal in the plan (for `year`)."""
        try:
            plant.get_line(line)
            plan.objective_for(line, year)
        except ShopfloorError as error:
            raise HTTPException(404, str(error)) from None

    def day_of(day: dt.date | None, now_ms: int) -> dt.date:
        return day or to_local(now_ms, plan.calendar.zone).date()

    def window(day: dt.date | None, now_ms: int) -> tuple[int, int]:
        """The day so far; a day that has not begun at `now` is an empty (reversed) range: 422."""
        start, end = day_window(plan, day_of(day, now_ms))
        if min(end, now_ms) <= start:
            raise HTTPException(422, f"day {day_of(day, now_ms)} has not begun at now "
                                     f"({to_local(now_ms, plan.calendar.zone).isoformat()})")
        return start, min(end, now_ms)

    @router.get("/lines/{line}/targets", summary="The decomposed goal at one grain (docs/DESIGN.md §7)")
    def targets(line: str, grain: str = Query("day", description=", ".join(GRAINS)), year: int | None = None,
                as_of: dt.datetime | None = None, delivered: int | None = Query(None, ge=0)) -> dict:
        if year is None and len({goal.year for goal in plan.objective if goal.line == line}) > 1:
            year = to_local(_moment(None), plan.calendar.zone).year  # several goals: this year's
        known(line, year)
        if grain not in GRAINS:
            raise HTTPException(400, f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
        if (as_of is None) != (delivered is None):
            raise HTTPException(422, "a re-plan needs both as_of and delivered")
        try:
            periods = decompose(plan, line, year, as_of=as_of, delivered=delivered).periods(grain)
        except ShopfloorError as error:
            raise _http_error(error) from None
        return {"line": line, "grain": grain, "targets": [period.to_json() for period in periods]}

    @router.get("/lines/{line}/indicators", summary="The day's seven leading indicators, hours, to date")
    def indicators(line: str, day: dt.date | None = None, now: str | None = None,
                   constraint: str | None = None) -> dict:
        now_ms = _moment(now)
        known(line, day_of(day, now_ms).year)
        try:
            line_model = plant.get_line(line)
            start, end = window(day, now_ms)
            with store() as client:
                report = stored_day_report(client, plant, plan, line_model, start, end, constraint=constraint)
        except ShopfloorError as error:
            raise _http_error(error) from None
        return report.to_json()

    @router.get("/lines/{line}/feasibility", summary="The plan's rate against the constraint's capacity")
    def feasibility_view(line: str, day: dt.date | None = None, now: str | None = None,
                         constraint: str | None = None,
                         needed_per_hour: float | None = Query(None, gt=0)) -> dict:
        now_ms = _moment(now)
        known(line, day_of(day, now_ms).year)
        try:
            line_model = plant.get_line(line)
            start, end = window(day, now_ms)
            with store() as client:
                # the hour before the window too: its last sample is the first interval's baseline
                telemetry = by_station(from_store(client, plant, line, start - BASELINE_MS, end))
                constraint = constraint or stored_constraint(client, plant.plant, line, start, end)
            result = feasibility(plan, line_model, telemetry, start, end, constraint=constraint,
                                 needed_per_hour=needed_per_hour)
        except ShopfloorError as error:
            raise _http_error(error) from None
        return result.to_json()

    return router
