"""The `crn` detector's parts: the station fit, change points, and the gain by simulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.bottleneck import analyze
from analysis.calls import CALLS, call_of, in_tenths
from analysis.changepoints import change_points, station_change_points
from analysis.constraint import regime_ends, regime_starts
from analysis.crn_gain import station_gains
from analysis.fit import FitTable, fit_line
from analysis.states import spans
from analysis.yardstick import START_MS, line_telemetry
from simulators.scenario import Change, Scenario, StationSpec, load_scenario
from simulators.telemetry import simulate_telemetry


def _line(hours: float, changes: list[Change] | None = None, **middle) -> Scenario:
    laws = {"cycle_s": 30.0, "distribution": "gamma", "cv": 0.3, "buffer": 5}
    stations = [StationSpec(id="s1", **{**laws, "cycle_s": 24.0}),
                StationSpec(id="s2", **{**laws, **middle}),
                StationSpec(id="s3", **{**laws, "cycle_s": 22.0})]
    return Scenario(station=stations, hours=hours, change=changes or [])


def _data(scenario: Scenario, seed: int = 1):
    return line_telemetry(scenario, simulate_telemetry(scenario, seed=seed, start_ms=START_MS))


def test_fit_recovers_rate_failures_repairs_and_setups_on_a_long_run():
    scenario = _line(48.0, cycle_s=30.0, mtbf_min=6.0, mttr_min=0.5, setup_every=50, setup_min=2.0)
    data = _data(scenario)
    fit = fit_line(spans(data, use_states=True), data, data.begin_ms, data.end_ms + 1000)[1]
    assert fit.cycle_s == pytest.approx(30.0, rel=0.10)
    assert fit.units_per_working_hour == pytest.approx(120.0, rel=0.10)
    assert fit.mtbf_min == pytest.approx(6.0, rel=0.10)
    assert fit.mttr_min == pytest.approx(0.5, rel=0.10)
    assert fit.setup_every == pytest.approx(50, rel=0.10)
    assert fit.setup_min == pytest.approx(2.0, rel=0.10)
    assert fit.cv == pytest.approx(0.3, abs=0.1)
    never_fails = fit_line(spans(data, use_states=True), data, data.begin_ms, data.end_ms + 1000)[0]
    assert never_fails.failures == 0 and never_fails.mtbf_min is None and never_fails.setup_every == 0


def _near(cuts: list[int], hour: float, within_min: float = 10.0) -> bool:
    return any(abs(c - (START_MS + hour * 3_600_000)) <= within_min * 60_000 for c in cuts)


def test_a_planted_change_is_found_within_ten_minutes_and_a_steady_line_has_none():
    at = 3.0
    changed = _line(6.0, [Change(at_hour=at, station="s2", slow_by_pct=40)])
    for use_states in (True, False):
        data = _data(changed)
        cuts = change_points(spans(data, use_states=use_states), data)
        assert cuts, "the change is found"
        assert _near(cuts, at)
        assert _near(station_change_points(spans(data, use_states=use_states), data)[1].pace, at)
    steady = _data(_line(6.0))
    assert change_points(spans(steady, use_states=True), steady) == []


def test_a_planted_change_of_repair_times_cuts_that_station_s_failures_within_ten_minutes():
    # s2 fails every 3 minutes of work for 12 s; at hour 3 its repairs take 8 times as long.
    at = 3.0
    scenario = _line(6.0, [Change(at_hour=at, station="s2", mttr_factor=8)], mtbf_min=3.0, mttr_min=0.2)
    data = _data(scenario)
    for use_states in (True, False):
        cuts = station_change_points(spans(data, use_states=use_states), data)
        assert _near(cuts[1].failures, at), (use_states, cuts[1])
    # With states, the stations that never fail have no failure regime to cut, whatever the line does.
    cuts = station_change_points(spans(data, use_states=True), data)
    assert cuts[0].failures == [] and cuts[2].failures == []
    steady = _data(_line(6.0, mtbf_min=3.0, mttr_min=0.2))
    assert [c.failures for c in station_change_points(spans(steady, use_states=True), steady)] == [[]] * 3


def test_moving_constraint_is_followed_within_an_hour_of_each_move():
    # simulators/scenarios/moving_constraint.toml: s3 slow until hour 3; s7's repairs 12x longer from
    # hour 3 to hour 6; s5 25 % slower from hour 6. 30-minute windows, as `analyze bottleneck` runs.
    scenario = load_scenario(Path(__file__).parents[1] / "simulators/scenarios/moving_constraint.toml")
    data = _data(scenario, seed=1)
    for use_states in (True, False):
        state_spans = spans(data, use_states=use_states)
        picks = [w.bottleneck for w in analyze(state_spans, data.stations, data.line.id, 1800, "crn",
                                               telemetry=data).windows]
        assert picks[:6] == ["s3"] * 6, picks
        assert "s7" in picks[6:8] and "s5" in picks[12:14], picks
    # s7's failures get their own regime: a cut at each change of its repairs (with states).
    s7 = station_change_points(spans(data, use_states=True), data)[data.stations.index("s7")]
    assert _near(s7.failures, 3.0, 15) and _near(s7.failures, 6.0, 15), s7


def test_the_slow_station_gains_most_with_confidence():
    data = _data(_line(4.0, cycle_s=36.0))
    gains = station_gains(fit_line(spans(data, use_states=True), data, data.begin_ms, data.end_ms + 1000))
    assert gains.stations[gains.best] == "s2" and not gains.within_noise
    assert gains.confidence >= 0.9 and gains.margin >= 0.5
    assert gains.mean[gains.best] == pytest.approx(0.05, abs=0.015), "5 % faster constraint: ~5 % more"


def test_crn_windows_carry_runner_up_margin_confidence_and_method():
    scenario = _line(3.0, [Change(at_hour=1.5, station="s1", slow_by_pct=100)], cycle_s=36.0)
    data = _data(scenario)
    timeline = analyze(spans(data), data.stations, "l1", 1800, "crn", telemetry=data)
    picks = [w.bottleneck for w in timeline.windows]
    assert picks[:3] == ["s2"] * 3 and picks[-1] == "s1", picks
    window = timeline.windows[0].contract()
    assert set(window) >= {"start", "end", "bottleneck", "shares", "shifting", "runner_up", "margin",
                           "confidence", "method"}
    assert window["method"] == "crn" and 0 <= window["confidence"] <= 1
    assert window["call"] == call_of(window["confidence"]).kind
    assert window["right_at_least"] == call_of(window["confidence"]).right_at_least
    apm = analyze(spans(data), data.stations, "l1", 1800, "apm").windows[0].contract()
    assert apm["call"] is None and apm["right_at_least"] is None and apm["pair_right_at_least"] is None
    with pytest.raises(ValueError, match="telemetry"):
        analyze(spans(data), data.stations, "l1", 1800, "crn")


def test_text_output_says_no_clear_constraint_when_the_gains_are_within_noise(capsys):
    from analysis.bottleneck import Timeline, Window
    from analysis.cli import _print_table

    shares = {"s1": 0.4, "s2": 0.6}
    windows = [Window(START_MS, START_MS + 1800_000, "s2", shares, [], method="crn", within_noise=True),
               Window(START_MS + 1800_000, START_MS + 3600_000, "s2", shares, [], method="crn")]
    _print_table(Timeline("l1", "crn", windows, None, ["s1", "s2"]))
    first, second = capsys.readouterr().out.splitlines()
    assert "no clear constraint" in first and "no clear constraint" not in second


def test_calls_grade_the_confidence_and_the_text_says_how_often_such_a_call_was_right(capsys):
    """All 8 replications agreeing is a firm call, 6 or 7 a likely one, fewer a close call between the
    named station and its runner-up; the rates they carry fall from firm to close (analysis/calls.py)."""
    from analysis.bottleneck import Timeline, Window
    from analysis.cli import _print_table

    assert [call_of(c).kind for c in (1.0, 0.875, 0.75, 0.625, 0.0)] == [
        "firm", "likely", "likely", "close", "close"]
    assert call_of(None) is None
    firm, likely, close = CALLS
    assert firm.right_at_least > likely.right_at_least > close.right_at_least
    assert close.pair_right_at_least > close.right_at_least and in_tenths(0.74) == 7 and in_tenths(0.7) == 7
    shares = {"s1": 0.4, "s2": 0.6}
    windows = [Window(START_MS, START_MS + 1800_000, "s2", shares, [], runner_up="s1", method="crn",
                      confidence=1.0),
               Window(START_MS + 1800_000, START_MS + 3600_000, "s2", shares, [], runner_up="s1",
                      method="crn", confidence=0.5),
               Window(START_MS + 3600_000, START_MS + 5400_000, None, shares, [], method="crn")]
    _print_table(Timeline("l1", "crn", windows, None, ["s1", "s2"]))
    first, second, third = capsys.readouterr().out.splitlines()
    assert first.endswith(f"  firm call: right at least {in_tenths(firm.right_at_least)} in 10")
    pair = in_tenths(close.pair_right_at_least)
    assert second.endswith(f"  close call: s2 or s1, one of them at least {pair} in 10")
    assert "call" not in third


def test_the_live_loop_runs_crn_and_refuses_an_unknown_method():
    from pydantic import ValidationError

    from analysis.config import LiveSection

    assert LiveSection(method="combined").method == "combined"
    assert LiveSection(method="crn").method == "crn"
    with pytest.raises(ValidationError, match="not one the live loop runs"):
        LiveSection(method="cnr")


def test_a_window_s_fit_reaches_ahead_within_its_regime_but_not_past_a_change():
    hour = 3_600_000
    # Station 0 changes at 1 h and 5 h, station 1 at 3.75 h, station 2 never; the window is 3-3.5 h.
    cuts = [[hour, 5 * hour], [int(3.75 * hour)], []]
    starts = regime_starts(cuts, int(3.5 * hour), 0)
    ends = regime_ends(cuts, 3 * hour, int(3.5 * hour), 8 * hour, ahead_s=3600)
    assert starts == [hour, 0, 0]
    # station 0: one hour ahead (its next change is later); station 1: up to its change at 3.75 h;
    # station 2: one hour ahead, though the data go on to 8 h.
    assert ends == [int(4.5 * hour), int(3.75 * hour), int(4.5 * hour)]
    assert regime_ends(cuts, 3 * hour, int(3.5 * hour), 8 * hour, ahead_s=0) == [int(3.5 * hour)] * 3
    # A regime that begins inside the window (station 1 at 3.75 h, judged 3.5-4.25 h) is fitted only to
    # the window's end: the change point may be placed a bin or two early.
    assert regime_ends(cuts, int(3.5 * hour), int(4.25 * hour), 8 * hour, 3600)[1] == int(4.25 * hour)
    # Live, the data end now: nothing is read past them.
    assert regime_ends(cuts, 3 * hour, int(3.5 * hour), int(3.6 * hour), 3600) == [int(3.6 * hour)] * 3


def test_a_fit_may_end_at_one_moment_per_station():
    data = _data(_line(4.0))
    state_spans = spans(data, use_states=True)
    table = FitTable.of(state_spans, data, data.begin_ms, data.end_ms, 300_000)
    half = data.begin_ms + 2 * 3_600_000
    mixed = table.fit(data.begin_ms, [half, data.end_ms, half])
    whole, first_half = table.fit(data.begin_ms, data.end_ms), table.fit(data.begin_ms, half)
    assert [f.units for f in mixed] == [first_half[0].units, whole[1].units, first_half[2].units]
    assert first_half[1].units < whole[1].units
