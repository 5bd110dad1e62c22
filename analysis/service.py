"""The analysis service (`shopfloor analysis serve`): live detector loop plus an HTTP API over its results.

Why it is built this way:
- Everything it answers is read back from InfluxDB through shopfloor.store (the timeline, the live
  answer, alerts), so any number of service instances, or a restarted one, answer the same.
- The live loop runs in one background thread for the lines of the plant file; each line ticks on its
  own, and a tick that fails (InfluxDB away, broker away, or any bug) is logged, counted per line and
  retried at the next interval: it never stops the loop nor the other lines. /healthz answers 503 when
  the loop's thread is dead or has not moved on for `stuck_after_s`.
- Routers are composed explicitly: `create_app(..., routers=...)` includes exactly the factories it is
  given, `ANALYSIS_ROUTERS` (targets, losses) by default. Higher layers (the dashboards' huddle page)
  are passed in by the entry point (shopfloor/cli.py) as "module:factory" names, so analysis never
  imports them (data flows one way) and no module fills a global list another one reads.
FastAPI serves the OpenAPI document at /openapi.json; /docs (Swagger UI) and /redoc load their files
from the fastapi-offline package, never a CDN.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from analysis import auth
from analysis.alerts import AlertSink, MqttAlertPublisher, make_alert, send_alert, stored_alerts
from analysis.calls import call_fields, call_of
from analysis.http_range import MAX_RANGE_DAYS, time_range
from analysis.live import LiveConfig, LiveDetector, last_current
from analysis.losses_api import losses_router_for
from analysis.losses_live import LossesWatch
from analysis.shares import period_shares, stored_windows
from analysis.targets import check_zones, rolling_calendar, shifts_between
from analysis.targets_api import router_factory as targets_router_factory
from shopfloor.contract import BOTTLENECK_MEASUREMENT
from shopfloor.errors import ShopfloorError
from shopfloor.plant import Line, Plant
from shopfloor.security import redact_url
from shopfloor.store import Store, StoreRejected, quote_ident, quote_string

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
Json = dict[str, Any]
RouterFactory = Callable[..., APIRouter]
DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, served from the installed package


def _resolve(factory: RouterFactory | str) -> RouterFactory:
    """A router factory `factory(plant, store_factory, plan) -> APIRouter`, or its "module:name"
    (imported only when a service is built, so the entry point can name higher layers' routers)."""
    if callable(factory):
        return factory
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


# The analysis layer's own routers: /api/lines/{line}/targets, /indicators, /feasibility; /losses, /reasons
ANALYSIS_ROUTERS: tuple[RouterFactory | str, ...] = (targets_router_factory, losses_router_for)


class LiveLoop:
    """The live detectors of all lines, ticking every `interval_s` in one daemon thread.

    Each line is ticked on its own: an error in one line (a ShopfloorError such as InfluxDB away, or
    any other exception, a bug on odd data) is logged, counted and retried at the next round, and the
    other lines still tick. `health()` says whether the thread is alive and not stuck, so /healthz can
    tell a dead or hung loop from a working one.
    """

    def __init__(self, plant: Plant, store_factory: Callable[[], Store], config: LiveConfig,
                 mqtt_url: str | None = None, webhooks: tuple[str, ...] = (), alerts: bool = True,
                 plan: Any = None):
        self.plant, self.store_factory, self.config, self.plan = plant, store_factory, config, plan
        self.mqtt_url, self.webhooks, self.alerts = mqtt_url, webhooks, alerts
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-detector", daemon=True)
        self.ticks = 0
        self.last_error: str | None = None
        self.lines = {line.id: LineHealth() for line in plant.lines}
        self.beat = time.monotonic()  # the last moment the loop was seen between two steps
        # a round that has not moved on for this long counts as stuck (a hung read, a dead lock)
        self.stuck_after_s = max(60.0, 10 * config.interval_s)

    def start(self) -> None:
        self.beat = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def health(self) -> Json:
        """Alive (the thread runs), stuck (no step for `stuck_after_s`), per line ticks and errors."""
        alive = self.thread.is_alive() or not self.thread.ident  # not started yet is not dead
        quiet_s = time.monotonic() - self.beat
        stuck = alive and quiet_s > self.stuck_after_s
        reason = None if alive and not stuck else (
            "the live detector thread has stopped" if not alive else
            f"the live detector has not moved on for {quiet_s:.0f} s (limit {self.stuck_after_s:.0f} s)")
        return {"ok": reason is None, "reason": reason, "ticks": self.ticks, "last_error": self.last_error,
                "lines": {line: asdict(state) for line, state in self.lines.items()}}

    def _run(self) -> None:
        store = self.store_factory()
        publisher = None
        detectors: dict[str, LiveDetector] = {}
        watches: dict[str, LossesWatch] = {}  # with a plan: the shift's losses points, money escalation
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                self.beat = began
                errors = []
                try:
                    if not detectors:
                        store.create_database()  # analysis creates it when it is missing (docs/DESIGN.md §5)
                        if self.alerts and publisher is None:
                            publisher = MqttAlertPublisher(self.mqtt_url,
                                                           client_id=f"shopfloor-analysis-{self.plant.plant}")
                        detectors = {line.id: self._detector(store, line, publisher)
                                     for line in self.plant.lines}
                        watches = self._watches(store, detectors)
                except Exception as error:  # noqa: BLE001 - anything here is retried next round
                    errors.append(self._failed(None, error))
                now = int(time.time() * 1000)
                for line_id, detector in detectors.items():
                    try:
                        detector.tick(now)
                        if line_id in watches:
                            watches[line_id].tick(now)
                    except Exception as error:  # noqa: BLE001 - one line's fault never stops the others
                        errors.append(self._failed(line_id, error))
                    else:
                        self.lines[line_id].ok(now)
                    self.beat = time.monotonic()
                if detectors:
                    self.ticks += 1
                self.last_error = errors[-1] if errors else None
                self.stop_event.wait(max(0.0, self.config.interval_s - (time.monotonic() - began)))
        finally:
            if publisher is not None:
                publisher.close()
            store.close()

    def _failed(self, line_id: str | None, error: Exception) -> str:
        """Log (once per distinct message a line), count, and return the one-line reason."""
        text = str(error) if isinstance(error, ShopfloorError) else f"{type(error).__name__}: {error}"
        message = text if line_id is None else f"line {line_id}: {text}"
        state = self.lines.get(line_id) if line_id else None
        previous = state.last_error if state else self.last_error
        if message != previous:
            if isinstance(error, ShopfloorError):
                log.warning("live detector: %s (retrying every %.0f s)", message, self.config.interval_s)
            else:  # a bug: keep the traceback
                log.exception("live detector: %s (retrying every %.0f s)", message, self.config.interval_s)
        if state is not None:
            state.errors += 1
            state.last_error = message
        return message

    def _detector(self, store: Store, line: Line, publisher: MqttAlertPublisher | None) -> LiveDetector:
        sink = None
        if self.alerts:
            sink = AlertSink(self.plant.plant, line.id, store, publisher, list(self.webhooks))
        return LiveDetector(store, self.plant, line.id, self.config, sink)

    def _watches(self, store: Store, detectors: dict[str, LiveDetector]) -> dict[str, LossesWatch]:
        """A losses watch for each line the plan has an objective for (analysis/losses_live.py)."""
        if self.plan is None:
            return {}
        planned = {goal.line for goal in self.plan.objective}
        return {line_id: LossesWatch(store, self.plant, self.plan, line_id,
                                     detector.sink.send if detector.sink is not None else None)
                for line_id, detector in detectors.items() if line_id in planned}


@dataclass(slots=True)
class LineHealth:
    """One line's record in the live loop: good ticks, failed ticks, the last error, the last good tick."""

    ticks: int = 0
    errors: int = 0
    last_error: str | None = None
    last_ok_ms: int | None = None

    def ok(self, now_ms: int) -> None:
        self.ticks += 1
        self.last_error = None
        self.last_ok_ms = now_ms


def distinct_runner_up(bottleneck: str | None, runner_up: str | None, shares: dict[str, float]
                       ) -> str | None:
    """The runner-up as stored, unless it is the bottleneck itself (the turning-point rule may pick the
    APM's second): then the station with the largest window share other than the bottleneck, if any."""
    if runner_up is None or runner_up != bottleneck:
        return runner_up
    others = {station: share for station, share in shares.items() if station != bottleneck and share > 0}
    return max(others, key=others.__getitem__) if others else None


def analysis_router(plant: Plant, store_factory: Callable[[], Store], *, first_shift: str = "06:00",
                    shift_hours: float = 8.0, plan: Any = None) -> APIRouter:
    router = APIRouter(prefix="/api")
    calendar = plan.calendar if plan is not None else rolling_calendar(plant.timezone, first_shift,
                                                                        shift_hours)

    @contextlib.contextmanager
    def store() -> Iterator[Store]:
        opened = store_factory()
        try:
            yield opened
        except StoreRejected as error:  # a request InfluxDB refuses is the caller's to fix
            raise HTTPException(status_code=422, detail=str(error)) from None
        except ShopfloorError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        finally:
            opened.close()

    def known(line_id: str) -> Line:
        try:
            return plant.get_line(line_id)
        except ShopfloorError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None

    def where(line_id: str) -> str:
        return f"plant = {quote_string(plant.plant)} AND line = {quote_string(line_id)}"

    @router.get("/lines", summary="The plant's lines and their stations in flow order")
    def lines() -> Json:
        return {"plant": plant.plant, "lines": [
            {"id": line.id, "name": line.name, "stations": line.station_ids} for line in plant.lines]}

    @router.get("/lines/{line_id}/bottleneck", summary="The line's bottleneck now (the live answer)")
    def current(line_id: str) -> Json:
        known(line_id)
        with store() as s:
            latest = last_current(s, plant.plant, line_id)
        return {"line": line_id, "station": latest[1] if latest else None,
                "since": latest[0] if latest else None}

    @router.get("/lines/{line_id}/timeline", summary="The bottleneck per window, oldest first")
    def timeline(line_id: str, start: str | None = Query(None, alias="from", description="ISO 8601 or ms"),
                 end: str | None = Query(None, alias="to", description="ISO 8601 or ms")) -> Json:
        known(line_id)
        from_ms, to_ms = time_range(start, end, default_ms=8 * HOUR_MS, now_ms=int(time.time() * 1000))
        with store() as s:
            rows = s.query(
                f'SELECT "bottleneck", "bottleneck_share", "runner_up", "margin", "confidence", "shifting", '
                f'"final" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE {where(line_id)} '
                f"AND time >= {from_ms}ms AND time < {to_ms}ms").rows()
            stations = s.query(
                f'SELECT "share" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE {where(line_id)} AND '
                f'"station" =~ /./ AND time >= {from_ms}ms AND time < {to_ms}ms GROUP BY station')
        per_window: dict[int, dict[str, float]] = {}
        for series in stations.series:
            for t, share in series.values:
                if share is not None:
                    per_window.setdefault(t, {})[series.tags["station"]] = share
        windows = [{"start": row["time"], "bottleneck": row["bottleneck"], "share": row["bottleneck_share"],
                    "runner_up": distinct_runner_up(row["bottleneck"], row["runner_up"],
                                                    per_window.get(row["time"], {})),
                    "margin": row["margin"], "confidence": row.get("confidence"),
                    **call_fields(call_of(row.get("confidence")) if row["bottleneck"] else None),
                    "shifting": [x for x in (row["shifting"] or "").split(",") if x], "final": row["final"]}
                   for row in rows if row["bottleneck_share"] is not None]
        return {"line": line_id, "windows": windows}

    @router.get("/lines/{line_id}/shares", summary="Each station's share of each shift as the constraint "
                "(sole + its split of shifting time: at most 100 % in all), on the plan's calendar (else the "
                "settings' shifts)")
    def shares(line_id: str, start: str | None = Query(None, alias="from", description="ISO 8601 or ms"),
               end: str | None = Query(None, alias="to", description="ISO 8601 or ms")) -> Json:
        line = known(line_id)
        from_ms, to_ms = time_range(start, end, default_ms=24 * HOUR_MS, now_ms=int(time.time() * 1000))
        spans = shifts_between(calendar, from_ms, to_ms)
        if not spans:
            return {"line": line_id, "shifts": []}
        with store() as s:
            result = s.query(
                f'SELECT "share", "sole" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE {where(line_id)} '
                f"AND \"station\" =~ /./ AND time >= {spans[0].start_ms}ms AND time < {spans[-1].end_ms}ms "
                f"GROUP BY station")
        series = [(item.tags["station"], item.rows()) for item in result.series]
        shifts = []
        for occurrence in spans:
            begin, finish = occurrence.start_ms, occurrence.end_ms
            inside = [(station, [row for row in rows if begin <= row["time"] < finish])
                      for station, rows in series]
            windows = stored_windows(inside, line.station_ids)
            if not windows:
                continue
            per_station = period_shares(windows, line.station_ids)
            top = max(per_station, key=lambda s: per_station[s].share)
            shifts.append({"name": occurrence.name, "day": occurrence.day.isoformat(),
                           "start": occurrence.start_ms, "end": occurrence.end_ms, "bottleneck": top,
                           "shares": {s: round(per_station[s].share, 4) for s in line.station_ids},
                           "split": {s: per_station[s].to_json() for s in line.station_ids}})
        return {"line": line_id, "shifts": shifts}

    @router.get("/lines/{line_id}/alerts", summary="Alerts sent for the line, oldest first")
    def alerts(line_id: str, start: str | None = Query(None, alias="from", description="ISO 8601 or ms"),
               end: str | None = Query(None, alias="to", description="ISO 8601 or ms")) -> Json:
        known(line_id)
        from_ms, to_ms = time_range(start, end, default_ms=24 * HOUR_MS, now_ms=int(time.time() * 1000) + 1)
        with store() as s:
            rows = stored_alerts(s, plant.plant, line_id, from_ms, to_ms)
        return {"line": line_id, "alerts": rows}

    return router


def create_app(plant: Plant, store_factory: Callable[[], Store], *, live: LiveConfig | None = None,
               mqtt_url: str | None = None, webhooks: tuple[str, ...] = (), alerts: bool = True,
               plan: Any = None, first_shift: str = "06:00", shift_hours: float = 8.0,
               api_token: str | None = None,
               routers: Sequence[RouterFactory | str] = ANALYSIS_ROUTERS) -> FastAPI:
    """The service app with exactly the given `routers`; with `live`, the live detector loop runs."""
    if plan is not None:
        check_zones(plant.timezone, plan.calendar)
    loop = None if live is None else LiveLoop(plant, store_factory, live, mqtt_url, webhooks, alerts, plan)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        with contextlib.suppress(ShopfloorError), store_factory() as store:
            store.create_database()  # so the API answers "nothing yet" rather than an error
        if loop is not None:
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    app = FastAPI(title="Shop-floor constraint monitor: analysis", lifespan=lifespan, docs_url=None,
                  redoc_url=None, description="The moving bottleneck of each line, its share per shift, "
                  f"constraint alerts. Time ranges: `from`/`to` as ms or ISO 8601, at most {MAX_RANGE_DAYS} "
                  "days; a range InfluxDB cannot hold, reversed or too long is a 422.")
    add_offline_docs(app)
    app.state.live_loop = loop

    @app.get("/healthz", summary="Liveness of the service and its live loop (503 when the loop is dead "
             "or stuck), ticks and errors per line")
    def health() -> JSONResponse:
        if loop is None:
            return JSONResponse({"ok": True, "reason": None, "ticks": None, "last_error": None, "lines": {}})
        state = loop.health()
        return JSONResponse(state, status_code=200 if state["ok"] else 503)

    app.include_router(analysis_router(plant, store_factory, first_shift=first_shift,
                                       shift_hours=shift_hours, plan=plan))
    add_admin_routes(app, plant, store_factory, live, mqtt_url, webhooks, alerts)
    for factory in routers:
        app.include_router(_resolve(factory)(plant, store_factory, plan))
    auth.install(app, api_token)  # writes and /admin need the token (SHOPFLOOR_API_TOKEN); reads do not
    return app


def add_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI 5, which reads FastAPI's OpenAPI 3.1) and /redoc from the files the
    `fastapi-offline` package ships: a plant network without internet still gets working API pages.
    (`swagger-ui-bundle` was tried first: its Swagger UI 4 cannot render OpenAPI 3.1.)"""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).with_name("static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi, title=f"{app.title}: API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi, title=f"{app.title}: API",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png", with_google_fonts=False)


def add_admin_routes(app: FastAPI, plant: Plant, store_factory: Callable[[], Store], live: LiveConfig | None,
                     mqtt_url: str | None, webhooks: tuple[str, ...], alerts: bool) -> None:
    """What an operator needs to check the service: its settings, and a test alert down the real path.

    Declared on the app itself (not an included router) so they are listed in `app.routes`, where the
    security tests look for every write and admin route."""

    @app.get("/admin/config", summary="The service's live settings and alert rules (needs the token)")
    def config() -> Json:
        return {"plant": plant.plant, "lines": [line.id for line in plant.lines], "alerts": alerts,
                "live": None if live is None else {**asdict(live), "rules": asdict(live.rules)},
                "webhooks": [redact_url(url) for url in webhooks]}

    @app.post("/api/lines/{line_id}/alerts/test", summary="Send a test alert (needs the token)")
    def test_alert(line_id: str) -> Json:
        try:
            plant.get_line(line_id)
        except ShopfloorError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        alert = make_alert(int(time.time() * 1000), "test", "info", "-",
                           f"Line {line_id}: test alert from the analysis service")
        try:
            with store_factory() as store:
                sent = send_alert(store, plant.plant, line_id, alert, mqtt_url=mqtt_url, webhooks=webhooks)
        except ShopfloorError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        return {"sent": sent, "alert": alert}
