"""The live feed's ticks (no broker): one continuous simulation per block, sampled window by window."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import simulators.replay as replay
from simulators.scenario import load_scenario
from simulators.telemetry import STATE_NAMES, simulate_telemetry

SCENARIO = Path(__file__).resolve().parents[1] / "simulators" / "scenarios" / "moving_constraint.toml"


def columns(ticks) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    count = np.array([[s["count"] for _, s in group] for _, group in ticks]).T
    queue = np.array([[s["queue"] for _, s in group] for _, group in ticks]).T
    seq = np.array([[s["seq"] for _, s in group] for _, group in ticks]).T
    return count, queue, seq, [ts for ts, _ in ticks]


def test_the_first_shift_of_a_live_feed_is_what_sim_run_writes():
    scenario = load_scenario(SCENARIO)
    count, queue, seq, stamps = columns(list(replay.live_ticks(scenario, 5, 8, 1_000)))
    expected = simulate_telemetry(scenario, seed=5, start_ms=1_000)
    assert np.array_equal(count, expected.count) and np.array_equal(queue, expected.queue)
    assert stamps == expected.ts_ms.tolist() and (seq == np.arange(8 * 3600)).all()


def test_changes_repeat_every_shift():
    scenario = load_scenario(SCENARIO)
    periods = scenario.repeated_periods(20)
    assert [(p.start_h, p.end_h) for p in periods] == [(0, 3), (3, 6), (6, 8), (8, 11), (11, 14), (14, 16),
                                                       (16, 19), (19, 20)]
    assert periods[3].slow == periods[0].slow and periods[4].mttr == periods[1].mttr


def test_counters_and_clock_carry_on_across_blocks_and_windows(monkeypatch):
    monkeypatch.setattr(replay, "LIVE_BLOCK_S", 5000)  # a new simulation every 5,000 s
    monkeypatch.setattr(replay, "LIVE_WINDOW_S", 700)  # sampled 700 s at a time
    scenario = load_scenario(SCENARIO)
    ticks = list(replay.live_ticks(scenario, 0, 4, 0))
    count, queue, seq, stamps = columns(ticks)
    assert stamps == list(range(0, 4 * 3600 * 1000, 1000))
    assert (seq == np.arange(4 * 3600)).all()
    assert (np.diff(count, axis=1) >= 0).all(), "counters never fall, not even at a block's seam"
    assert (count[:, -1] > count[:, 5000]).all() and (count[:, 5000] > 0).all()
    buffers = np.array([s.buffer for s in scenario.stations])
    assert (queue <= buffers[:, None]).all()
    assert {s["state"] for _, group in ticks for _, s in group} <= set(STATE_NAMES)
