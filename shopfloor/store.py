"""All InfluxDB I/O: line protocol on `POST /write`, InfluxQL on `/query` (docs/DESIGN.md §3, §5).

This is the 1.x HTTP API that InfluxDB 1.x, 2.x (v1 compatibility) and 3.x all serve. Nothing else
in the project speaks HTTP to InfluxDB. Errors come in two kinds a caller can act on:
`StoreUnavailable` (retry later: refused, timed out, 5xx) and `StoreRejected` (the data or query is
wrong: retrying the same request cannot help).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from shopfloor import settings
from shopfloor.errors import ShopfloorError


class StoreError(ShopfloorError, RuntimeError):
    """Base of the store's errors; `str()` is one line for the operator."""


class StoreUnavailable(StoreError):
    """InfluxDB did not answer or answered 5xx: the same request may succeed later."""


class StoreRejected(StoreError):
    """InfluxDB refused the request (4xx): the request itself is wrong."""


@dataclass(slots=True)
class Series:
    """One series of a query result: rows as dicts keyed by column name."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.values]


@dataclass(slots=True)
class Result:
    """The result of one InfluxQL statement."""

    series: list[Series] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """All rows of all series, each with its series' tags merged in."""
        return [{**s.tags, **row} for s in self.series for row in s.rows()]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Store:
    """A client of one InfluxDB database over the 1.x HTTP API."""

    def __init__(self, url: str | None = None, database: str | None = None, *,
                 username: str | None = None, password: str | None = None, timeout_s: float = 10.0):
        if username is None:  # from the URL's userinfo or the environment; never kept in `self.url`
            username, password = settings.influx_credentials(url)
        self.url = settings.without_userinfo(settings.influx_url(url))
        self.database = settings.influx_db(database)
        auth = (username, password or "") if username else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, auth=auth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise StoreUnavailable(f"InfluxDB at {self.url} timed out; is it overloaded?") from None
        except httpx.TransportError as error:
            raise StoreUnavailable(
                f"InfluxDB at {self.url} is not reachable ({error.__class__.__name__}); start it "
                f"(`shopfloor stack up`) or set SHOPFLOOR_INFLUX_URL"
            ) from None
        if response.status_code >= 500:
            raise StoreUnavailable(f"InfluxDB at {self.url} answered {response.status_code}: "
                                   f"{_error_text(response)}")
        if response.status_code >= 400:
            raise StoreRejected(f"InfluxDB refused {path} ({response.status_code}): {_error_text(response)}")
        return response

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping").status_code == 204
        except StoreError:
            return False

    def create_database(self) -> None:
        """Create the database if it is missing (CREATE DATABASE is idempotent in InfluxQL)."""
        self.query(f"CREATE DATABASE {quote_ident(self.database)}", method="POST", database=None)

    def write(self, lines: Iterable[str] | bytes) -> None:
        """Write points in line protocol at millisecond precision; returns once InfluxDB answered 2xx."""
        body = lines if isinstance(lines, bytes) else "\n".join(lines).encode()
        if not body:
            return
        try:
            self._request("POST", "/write", params={"db": self.database, "precision": "ms"}, content=body)
        except StoreRejected as error:
            if "database not found" in str(error):
                self.create_database()
                self._request("POST", "/write", params={"db": self.database, "precision": "ms"},
                              content=body)
            else:
                raise

    def query_all(self, statements: str, *, method: str = "GET", database: str | None | bool = True
                  ) -> list[Result]:
        """Run one or more `;`-separated InfluxQL statements; times come back as ms since the epoch."""
        params = {"q": statements, "epoch": "ms"}
        if database is True:
            params["db"] = self.database
        elif database:
            params["db"] = database
        if method == "POST":
            response = self._request("POST", "/query", data=params)
        else:
            response = self._request("GET", "/query", params=params)
        document = orjson.loads(response.content)
        if "error" in document:
            raise StoreRejected(f"InfluxQL error: {document['error']}")
        results = []
        for result in document.get("results", []):
            if "error" in result:
                raise StoreRejected(f"InfluxQL error in {statements[:120]!r}: {result['error']}")
            results.append(Result([
                Series(s.get("name", ""), s.get("tags", {}), s["columns"], s["values"])
                for s in result.get("series", [])
            ]))
        return results

    def query(self, statement: str, *, method: str = "GET", database: str | None | bool = True) -> Result:
        """Run one InfluxQL statement."""
        results = self.query_all(statement, method=method, database=database)
        return results[0] if results else Result()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(orjson.loads(response.content).get("error", "")).strip() or response.reason_phrase
    except (orjson.JSONDecodeError, AttributeError):
        return response.text.strip()[:200] or response.reason_phrase
