"""Grafana's side of a panel query, done in Python: date math, `$__interval`, macros and variables.

Grafana is not installable here, yet every board query must be proven against the real InfluxDB.
This module expands a query the way Grafana's InfluxDB (InfluxQL) data source does before it sends
it, so the tests run exactly what Grafana would run, and the built-in huddle page runs the very same
query text (one source of truth for what a panel shows).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shopfloor.errors import ConfigError

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE_MATH = re.compile(r"([+-])(\d+)([smhdwMy])|/(f?)([smhdwMyQ])")
# Grafana's "nice" bucket sizes (kbn.roundInterval picks one of these for $__interval).
_NICE_INTERVALS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800,
                     21600, 43200, 86400, 604800, 2592000, 31536000)


class DateMathError(ConfigError):
    """A Grafana relative time (like `now/d+6h`) this module cannot read."""


def _floor(moment: datetime, unit: str) -> datetime:
    if unit == "s":
        return moment.replace(microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":  # Grafana's weeks start on Monday by default (ISO)
        return day - timedelta(days=day.weekday())
    if unit == "M":
        return day.replace(day=1)
    if unit == "Q":
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    return day.replace(day=1, month=1)


def _add(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in _UNIT_SECONDS:
        # wall-clock arithmetic in the zone, as moment.js does for d and w; exact for s, m, h
        if unit in ("d", "w"):
            naive = moment.replace(tzinfo=None) + timedelta(seconds=amount * _UNIT_SECONDS[unit])
            return naive.replace(tzinfo=moment.tzinfo)
        return (moment.astimezone(ZoneInfo("UTC")) + timedelta(seconds=amount * _UNIT_SECONDS[unit])
                ).astimezone(moment.tzinfo)
    months = moment.month - 1 + amount * (12 if unit == "y" else 1)
    return moment.replace(year=moment.year + months // 12, month=months % 12 + 1)


def resolve_time(expression: str, now: datetime, *, round_up: bool = False) -> datetime:
    """Evaluate Grafana date math (`now`, `now-8h`, `now/d+6h`, `now/M`, `now/fQ`) in `now`'s zone.

    As in Grafana, a rounding on the `to` side (`round_up`) goes to the end of the unit.
    """
    if not expression.startswith("now"):
        raise DateMathError(f"time {expression!r} is not Grafana date math starting with 'now'")
    moment = now
    rest = expression[3:]
    while rest:
        match = _DATE_MATH.match(rest)
        if not match:
            raise DateMathError(f"cannot read {rest!r} in the time {expression!r}: "
                                "use now-8h, now/d+6h or now/M")
        sign, amount, unit, _fiscal, round_unit = match.groups()
        if round_unit:
            moment = _floor(moment, round_unit)
            if round_up:
                step = {"Q": (3, "M")}.get(round_unit, (1, round_unit))
                moment = _add(moment, step[0], step[1]) - timedelta(milliseconds=1)
        else:
            moment = _add(moment, int(amount) * (1 if sign == "+" else -1), unit)
        rest = rest[match.end():]
    return moment


def grafana_interval(range_ms: int, max_data_points: int = 1000, min_interval_s: int = 10) -> str:
    """`$__interval` for a time range: the nice bucket size that gives at most max_data_points points."""
    wanted = max(range_ms / 1000 / max_data_points, min_interval_s)
    seconds = next((nice for nice in _NICE_INTERVALS_S if nice >= wanted), _NICE_INTERVALS_S[-1])
    return duration(seconds)


def duration(seconds: int) -> str:
    """An InfluxQL duration literal for whole seconds (`90` -> `90s`, `3600` -> `1h`)."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration_ms(literal: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|[smhdw])", literal)
    if not match:
        raise DateMathError(f"{literal!r} is not a duration like 10s, 5m or 1h")
    amount, unit = int(match.group(1)), match.group(2)
    return amount if unit == "ms" else amount * _UNIT_SECONDS[unit] * 1000


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What Grafana knows when it sends a panel's query: the range, the interval, the variables."""

    start_ms: int
    end_ms: int
    variables: Mapping[str, str | list[str]] = field(default_factory=dict)
    interval: str | None = None

    @classmethod
    def from_range(cls, time_from: str, time_to: str, now: datetime, variables: Mapping[str, str | list[str]],
                   *, max_data_points: int = 1000) -> QueryContext:
        start = resolve_time(time_from, now)
        end = resolve_time(time_to, now, round_up=True)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        return cls(start_ms, end_ms, variables, grafana_interval(end_ms - start_ms, max_data_points))

    @property
    def interval_text(self) -> str:
        return self.interval or grafana_interval(self.end_ms - self.start_ms)


def _variable_text(value: str | list[str]) -> str:
    """A variable's text inside a regex (`=~ /^$line$/`): several values become `(a|b)`, as in Grafana."""
    if isinstance(value, str):
        return re.escape(value) if not re.fullmatch(r"[A-Za-z0-9_-]*", value) else value
    escaped = [_variable_text(item) for item in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def expand(query: str, context: QueryContext) -> str:
    """The query as Grafana's InfluxQL data source sends it; an unknown variable is an error."""
    interval = context.interval_text
    builtins = {
        "timeFilter": f"time >= {context.start_ms}ms and time <= {context.end_ms}ms",
        "__interval": interval,
        "__interval_ms": str(duration_ms(interval)),
        "__from": str(context.start_ms),
        "__to": str(context.end_ms),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name in context.variables:
            return _variable_text(context.variables[name])
        raise ConfigError(f"query uses ${name}, which is neither a Grafana macro nor a given variable")

    return _VARIABLE.sub(substitute, query)


_MATH_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Add, ast.Sub, ast.Mult,
               ast.Div, ast.USub, ast.UAdd, ast.Load)


def evaluate_math(expression: str, values: Mapping[str, float]) -> float | None:
    """A Grafana math expression (`$A / $B * $C`) over one label set's values, as Grafana computes it.

    Division by zero gives None (Grafana shows no value), as does a missing operand.
    """
    tree = ast.parse(re.sub(r"\$(\w+)", r"\1", expression), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _MATH_NODES):
            raise ConfigError(f"math expression {expression!r} uses {type(node).__name__}: only + - * / ( )")

    def value(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            found = values.get(node.id)
            return None if found is None else float(found)
        if isinstance(node, ast.UnaryOp):
            operand = value(node.operand)
            return None if operand is None else (-operand if isinstance(node.op, ast.USub) else operand)
        left, right = value(node.left), value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return None if right == 0 else left / right

    return value(tree)
