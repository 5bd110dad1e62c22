"""The detector: the active period method against its reference, state inference, windows and shares."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.apm import Periods, _raw_all_at_once, _raw_walk, momentary_bottlenecks, split_sole_shifting
from analysis.bottleneck import analyze, turning_point, window_edges
from analysis.reference import reference_momentary
from analysis.states import inferred, reported
from analysis.telemetry import DOWN, UNKNOWN, WORKING, gather
from shopfloor.plant import Plant

T0 = 1_790_000_000_000


def random_periods(rng: np.random.Generator, stations: int, length_ms: int, mean_s: float) -> Periods:
    """Alternating active/inactive runs on a 1 s grid (so equal lengths, i.e. ties, are common)."""
    station, start, stop = [], [], []
    for s in range(stations):
        t, active = 0, bool(rng.random() < 0.5)
        while t < length_ms:
            end = min(t + 1000 * (1 + int(rng.exponential(mean_s))), length_ms)
            if active:
                station.append(s)
                start.append(t)
                stop.append(end)
            t, active = end, not active
    return Periods.of(station, start, stop)


@pytest.mark.parametrize("seed", range(40))
def test_momentary_bottlenecks_match_the_reference_implementation(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    length = int(rng.integers(60, 900)) * 1000
    periods = random_periods(rng, n, length, mean_s=float(rng.choice([2.0, 10.0, 40.0])))
    mine = momentary_bottlenecks(periods, n)
    if len(mine.raw) < 2:
        pytest.skip("the reference returns nothing for a single bottleneck period")
    sole, shifting = reference_momentary(periods, [f"s{i + 1}" for i in range(n)], 0, length)
    assert set(mine.sole.tuples()) == sole
    assert set(mine.shifting.tuples()) == shifting


@pytest.mark.parametrize("seed", range(10))
def test_both_ways_of_walking_give_the_reference_chain(seed):
    """The walk step by step (short chains) and all at once (long chains) agree, and with the reference."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 12))
    length = int(rng.integers(300, 1800)) * 1000
    periods = random_periods(rng, n, length, mean_s=float(rng.choice([1.0, 5.0, 20.0])))
    at_once = _raw_all_at_once(periods, n)
    assert _raw_walk(periods, n, budget=10**9).tuples() == at_once.tuples()
    assert _raw_walk(periods, n, budget=3) is None or len(at_once) <= 3
    mine = split_sole_shifting(at_once)
    sole, shifting = reference_momentary(periods, [f"s{i + 1}" for i in range(n)], 0, length)
    assert set(mine.sole.tuples()) == sole and set(mine.shifting.tuples()) == shifting


def test_overlapping_bottleneck_periods_are_shifting():
    # s0 active [0, 10) then s1 active [5, 20): s0 sole, both shifting over [5, 10), then s1 sole.
    result = momentary_bottlenecks(Periods.of([0, 1], [0, 5_000], [10_000, 20_000]), 2)
    assert result.sole.tuples() == [(0, 0, 5_000), (1, 10_000, 20_000)]
    assert sorted(result.shifting.tuples()) == [(0, 5_000, 10_000), (1, 5_000, 10_000)]


def plant(buffers=(3, 3, 3), cycles=(1.0, 2.0, 1.0)) -> Plant:
    stations = [{"id": f"s{i + 1}", "buffer": b, "ideal_cycle_s": c}
                for i, (b, c) in enumerate(zip(buffers, cycles, strict=True))]
    return Plant.model_validate({"plant": "p1", "line": [{"id": "l1", "station": stations}]})


def samples(station: str, seconds: range, count, queue, state=None):
    for t in seconds:
        sample = {"ts": T0 + t * 1000, "seq": t, "count": count(t), "queue": queue(t)}
        if state:
            sample["state"] = state(t)
        yield station, sample


def test_windows_are_epoch_aligned_and_shares_name_the_longest_active_station():
    data = gather(plant(), "l1", [
        *samples("s1", range(600), lambda t: t, lambda t: 0,
                 lambda t: "blocked" if t % 10 < 5 else "working"),
        *samples("s2", range(600), lambda t: t // 2, lambda t: 3, lambda t: "working"),
        *samples("s3", range(600), lambda t: t // 2, lambda t: 0,
                 lambda t: "starved" if t % 4 else "working"),
    ], "test")
    timeline = analyze(reported(data), data.stations, "l1", 300)
    edges = window_edges(T0, T0 + 600_000, 300)
    assert all(edge % 300_000 == 0 for edge in edges.tolist())
    assert [w.bottleneck for w in timeline.windows] == ["s2"] * len(timeline.windows)
    for window in timeline.windows:
        assert set(window.shares) == {"s1", "s2", "s3"}
        assert all(0.0 <= share <= 1.0 for share in window.shares.values())


def test_unit_in_process_is_not_starved_and_an_empty_queue_alone_is():
    # s2 takes every unit s1 delivers at once (queue 0) and works on it: WIP 1 while its queue is 0.
    # From t = 100 s1 stops delivering; s2 finishes its last unit at 101 and is then truly starved.
    data = gather(plant(), "l1", [
        *samples("s1", range(200), lambda t: min(t, 100) // 2, lambda t: 0),
        *samples("s2", range(200), lambda t: max(0, min(t, 102) // 2 - 1), lambda t: 0),
        *samples("s3", range(200), lambda t: max(0, min(t, 102) // 2 - 2), lambda t: 0),
    ], "test")
    spans = inferred(data)
    s2 = spans.code[1]
    assert (s2[10:95] == WORKING).all(), "an empty queue with a unit in process is working"
    assert (s2[110:190] != WORKING).all(), "an empty queue and nothing inside is starved"


def test_a_down_station_holding_its_unit_with_an_empty_buffer_is_active():
    # s2 breaks down at t = 50 with a unit inside; s1 is then blocked once s2's buffer (3) is full.
    data = gather(plant(), "l1", [
        *samples("s1", range(200), lambda t: t // 2 if t < 50 else 25 + min(3, (t - 50) // 2),
                 lambda t: 0),
        *samples("s2", range(200), lambda t: max(0, t // 2 - 1) if t < 50 else 24,
                 lambda t: 0 if t < 50 else min(3, (t - 50) // 2)),
        *samples("s3", range(200), lambda t: max(0, t // 2 - 2) if t < 52 else 24, lambda t: 0),
    ], "test")
    spans = inferred(data)
    assert (spans.code[1][56:195] == DOWN).all(), "down (holding a unit) is active"
    active = spans.active()
    s2 = active.take(np.flatnonzero(active.station == 1))
    assert s2.stop.max() - s2.start.min() >= 190_000


def test_a_sampling_gap_is_unknown_not_a_long_active_period():
    data = gather(plant(), "l1", [
        *samples("s1", [*range(0, 100), *range(160, 200)], lambda t: t, lambda t: 0, lambda t: "working"),
        *samples("s2", range(200), lambda t: t, lambda t: 0, lambda t: "working"),
        *samples("s3", range(200), lambda t: t, lambda t: 0, lambda t: "starved"),
    ], "test")
    spans = reported(data, max_gap_ms=5_000)
    active = spans.active().take(np.flatnonzero(spans.active().station == 0))
    assert active.tuples() == [(0, T0, T0 + 100_000), (0, T0 + 160_000, T0 + 200_000)]
    assert UNKNOWN not in spans.code[0].tolist()


def test_turning_point_rule_points_at_the_station_both_arrows_point_to():
    # Upstream of s3 stations are blocked, downstream starved: arrows meet at s3.
    blocked = np.array([0.4, 0.3, 0.0, 0.0, 0.0])
    starved = np.array([0.0, 0.05, 0.02, 0.3, 0.4])
    assert turning_point(blocked, starved) == 2


def test_turning_point_rule_without_any_blockage_or_starvation_names_nobody():
    assert turning_point(np.zeros(4), np.zeros(4)) is None


def test_a_sampling_gap_is_unknown_when_states_are_inferred_too():
    data = gather(plant(), "l1", [
        *samples("s1", range(200), lambda t: t // 2, lambda t: 0),
        *samples("s2", [*range(0, 100), *range(160, 200)], lambda t: max(0, t // 2 - 1), lambda t: 0),
        *samples("s3", range(200), lambda t: max(0, t // 2 - 2), lambda t: 0),
    ], "test")
    spans = inferred(data, max_gap_ms=5_000)
    gap = spans.code[1][(spans.ts[1] >= T0 + 106_000) & (spans.ts[1] < T0 + 160_000)]
    assert len(gap) == 54 and (gap == UNKNOWN).all()
    assert not (spans.code[1][:99] == UNKNOWN).any()
