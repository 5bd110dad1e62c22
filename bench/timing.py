"""How every speed benchmark times: the best of a few runs, the one least disturbed by other load."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(runs: int, work: Callable[[], T]) -> tuple[float, T]:
    """Run `work` `runs` times; return the shortest wall time in seconds and the last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - began)
    return best, result  # type: ignore[return-value]
