"""The analysis service's API token: every write and every admin endpoint needs it, reads do not.

Why a middleware rather than a dependency on each route: a route added later is covered without
anyone remembering to protect it. What counts as a write is decided by the HTTP method (anything but
GET, HEAD, OPTIONS) and an admin endpoint by its path (`/admin...`), so the huddle page and the boards
keep reading without a token. Without a configured token the service refuses every write (fail
closed): set SHOPFLOOR_API_TOKEN (`shopfloor security token` prints a new one). The token is sent
as `Authorization: Bearer TOKEN` (or `X-API-Token: TOKEN`) and compared in constant time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shopfloor.security import API_TOKEN_ENV, api_token, token_matches

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_PREFIX = "/admin"


def needs_token(method: str, path: str) -> bool:
    """True for a write (any method but GET, HEAD, OPTIONS) and for every admin path."""
    return method.upper() not in READ_METHODS or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def presented_token(request: Request) -> str | None:
    """The token the client sent: `Authorization: Bearer TOKEN`, else `X-API-Token`."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-token") or None


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI, token: str | None = None) -> None:
    """Require the API token (the given one, else SHOPFLOOR_API_TOKEN) for writes and admin paths of `app`."""
    expected = api_token(token)

    @app.middleware("http")
    async def _require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                             ) -> Response:
        if needs_token(request.method, request.url.path):
            if expected is None:
                return _unauthorized(f"this service has no API token, so it accepts no writes: start it "
                                     f"with {API_TOKEN_ENV} set (`shopfloor security token` makes one)")
            if not token_matches(presented_token(request), expected):
                return _unauthorized("a valid API token is required: send `Authorization: Bearer TOKEN`")
        return await call_next(request)
