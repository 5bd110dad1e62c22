"""HTTP endpoints of the losses at the constraint (issue 14): an APIRouter the analysis service includes.

    GET  /api/lines/{line}/losses?period=shift|day|month|hour[&now=ISO]
         -> the period's loss Pareto at the constraint (analysis.losses_store.PeriodLosses.to_json)
    POST /api/lines/{line}/stations/{station}/reasons   {"ts": MS or ISO, "reason": "jam", "by": "ana"}
         -> 201 {"stop": {...}, "correction": {...}}: a supervisor assigns or corrects the reason of the
            past stop that holds `ts`; stored in measurement `reason_correction`, never in `station`

The POST is a write, so the service's token middleware (analysis/auth.py) lets it through only with
the API token: 401 without it. A correction for a moment at which the station was not stopped is a
422 with one line; InfluxDB down answers 503; other user-fixable problems 400/404 with one line.
Compose it explicitly: `app.include_router(losses_router(plant, plan, store_factory))`, or with the
service's (plant, store_factory, plan-or-path-or-None) arguments `losses_router_for(...)`, which without
a plan answers the same paths with a 404 saying how to give one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from analysis.losses_store import GRAINS, NoStop, correction_line, period_losses, stop_at
from analysis.telemetry import TelemetryError
from shopfloor.contract import IDENTIFIER_PATTERN
from shopfloor.errors import ShopfloorError
from shopfloor.plan import Plan, load_plan
from shopfloor.plant import Plant
from shopfloor.store import Store, StoreUnavailable


class Correction(BaseModel):
    """A supervisor's reason for a past stop; `ts` is any moment inside the stop."""

    model_config = ConfigDict(extra="forbid")
    ts: int | dt.datetime
    reason: str = Field(pattern=IDENTIFIER_PATTERN)
    by: str = Field("supervisor", min_length=1, max_length=64)


def _moment(value: int | dt.datetime | str | None) -> int:
    if value is None:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(400, f"{value!r} is not an ISO 8601 time with an offset") from None
    if value.tzinfo is None:
        raise HTTPException(400, f"{value.isoformat()} has no offset: add one, e.g. +01:00 or Z")
    return int(value.timestamp() * 1000)


def _http_error(error: ShopfloorError) -> HTTPException:
    if isinstance(error, StoreUnavailable):
        return HTTPException(503, str(error))
    if isinstance(error, NoStop):
        return HTTPException(422, str(error))
    if isinstance(error, TelemetryError):
        return HTTPException(404, str(error))
    return HTTPException(400, str(error))


def losses_router_for(plant: Plant, store_factory: Callable[[], Store], plan: Plan | str | Path | None
                      ) -> APIRouter:
    """The losses router for the service's arguments: a Plan, a plan file, or None (404s saying why)."""
    if plan is None:
        router = APIRouter(prefix="/api", tags=["losses"])

        @router.get("/lines/{line}/losses", summary="Losses at the constraint (needs a plan)")
        @router.post("/lines/{line}/stations/{station}/reasons",
                     summary="Correct a stop's reason (needs a plan)")
        def no_plan(line: str, station: str | None = None) -> dict:
            raise HTTPException(404, "the analysis service runs without a plan file: start it with "
                                     "--plan PLAN.toml")

        return router
    return losses_router(plant, plan if isinstance(plan, Plan) else load_plan(plan), store_factory)


def losses_router(plant: Plant, plan: Plan, store: Callable[[], Store], prefix: str = "/api") -> APIRouter:
    """The losses router for one plant and plan; `store()` gives a Store the handler closes after use."""
    router = APIRouter(prefix=prefix, tags=["losses"])

    @router.get("/lines/{line}/losses", summary="The constraint's lost minutes, units and money by cause")
    def losses_view(line: str, period: str = Query("shift", description=", ".join(GRAINS)),
                    now: str | None = None) -> dict:
        now_ms = _moment(now)
        try:
            with store() as client:
                return period_losses(client, plant, plan, line, period, now_ms).to_json()
        except ShopfloorError as error:
            raise _http_error(error) from None

    @router.post("/lines/{line}/stations/{station}/reasons", status_code=201,
                 summary="Assign or correct the reason of a past stop (token required)")
    def correct(line: str, station: str, body: Correction) -> dict:
        ts = _moment(body.ts)
        at = _moment(None)
        try:
            with store() as client:
                stop = stop_at(client, plant, line, station, ts)
                client.write([correction_line(plant.plant, line, station, ts, body.reason, body.by, at)])
        except ShopfloorError as error:
            raise _http_error(error) from None
        return {"stop": {**stop.to_json(), "reason": body.reason, "corrected": True},
                "correction": {"station": station, "ts": ts, "reason": body.reason, "by": body.by, "at": at}}

    return router
