"""Constraint shares as stored by the live detector, on the real InfluxDB (issue 12).

- The boards' share queries (huddle board, executive "where the constraint sat") average the split
  the detector stores per window and station (analysis.shares), so they never sum above 100 %, a
  window where three stations shift at once included: a hypothesis property over random windows.
- The huddle page counts only the settled windows (those the detector will not rewrite again), so
  its share of the shift moves only by the windows that settle between two refreshes: the live
  detector ticking over a simulated line, the page read after every tick.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.bottleneck import Timeline, Window
from analysis.live import LiveConfig, LiveDetector, timeline_lines
from analysis.shares import period_shares, stored_windows
from dashboards import analysis_queries as aq
from dashboards.huddle_api import HuddleRange, HuddleReader
from dashboards.macros import QueryContext, expand
from shopfloor.contract import read_records, sample_line
from shopfloor.plant import load_plant

pytestmark = pytest.mark.servers

T0 = 1_790_000_000_000
WINDOW_MS = 60_000
STATIONS = ["s1", "s2", "s3", "s4"]


@st.composite
def windows(draw) -> list[Window]:
    """Windows whose shares and sole parts are as the active period method can give them: a station's
    sole time within its share, the sole parts of a window at most its time; up to all four stations
    shifting at once (share - sole > 0 for each), which pairwise halving would push above 100 %."""
    out = []
    for k in range(draw(st.integers(1, 12))):
        sole_owner = draw(st.sampled_from([None, *STATIONS]))
        sole_part = draw(st.floats(0, 1)) if sole_owner else 0.0
        shifting = draw(st.lists(st.sampled_from(STATIONS), unique=True, max_size=4))
        rest = draw(st.floats(0, 1)) * (1 - sole_part)
        sole = {s: sole_part if s == sole_owner else 0.0 for s in STATIONS}
        shares = {s: sole[s] + (rest if s in shifting else 0.0) for s in STATIONS}
        out.append(Window(T0 + k * WINDOW_MS, T0 + (k + 1) * WINDOW_MS, sole_owner or (shifting or [None])[0],
                          shares, shifting, sole=sole, method="combined"))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=windows())
def test_board_shares_never_sum_above_100_percent(store, plant_id, drawn) -> None:
    line = f"l{abs(hash(tuple(w.start for w in drawn) + tuple(w.shares['s1'] for w in drawn))) % 10**9}"
    store.query(f"DROP SERIES FROM \"bottleneck\" WHERE \"line\" = '{line}'")
    timeline = Timeline(line, "combined", drawn, None, STATIONS)
    store.write(timeline_lines(plant_id, timeline, 60, T0, T0))
    end = drawn[-1].end
    context = QueryContext(T0, end, {"plant": plant_id, "line": line, "timezone": "UTC",
                                     "bucket_offset": "0m"})
    board = {row["station"]: row["share"]
             for row in store.query(expand(aq.CONSTRAINT_SHARES, context)).rows()}
    assert sum(board.values()) <= 1 + 1e-9
    expected = period_shares([(w.shares, w.sole, 1.0) for w in drawn], STATIONS)
    assert board == pytest.approx({s: expected[s].share for s in STATIONS}, abs=1e-9)
    # the page's reading of the same stored windows gives the same numbers
    rows = store.query(expand(aq.CONSTRAINT_WINDOWS, context))
    page = period_shares(stored_windows([(s.tags["station"], s.rows()) for s in rows.series], STATIONS),
                         STATIONS)
    assert {s: page[s].share for s in STATIONS} == pytest.approx(board, abs=1e-9)


SCENARIO = Path(__file__).parents[1] / "simulators" / "scenarios" / "balanced_line.toml"


def balanced_line(folder: Path, seed: int) -> tuple[Path, Path]:
    """Two hours of the balanced line from 2026-09-21 06:00 (`shopfloor sim run`) and its plant file."""
    out, plant_file = folder / "line.jsonl", folder / "plant.toml"
    run = ["run", str(SCENARIO), "--hours", "2", "--seed", str(seed), "--start", "2026-09-21T06:00:00Z",
           "--out", str(out)]
    for command in (run, ["plant", str(SCENARIO), "--out", str(plant_file)]):
        subprocess.run([sys.executable, "-m", "shopfloor", "sim", *command], check=True, timeout=60,
                       capture_output=True)
    return out, plant_file


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[Path, Path]:
    """Two hours of the balanced line, whose constraint shares move all the time, and its plant file."""
    return balanced_line(tmp_path_factory.mktemp("sim"), seed=5)


def test_page_share_moves_only_by_the_windows_that_settle(store, simulated) -> None:
    """Between two reads the page's shares move at most by (windows newly settled) / (windows settled):
    the older windows keep their weight exactly. The whole range's share, what the page showed
    before, breaks that bound on this line (the detector rewrites its last 30 minutes)."""
    path, plant_file = simulated
    plant = load_plant(plant_file)
    line = plant.lines[0]
    records = list(read_records(path))
    store.write([sample_line(key, sample) for key, sample in records])
    first = min(sample["ts"] for _, sample in records)
    config = LiveConfig(method="combined", window_s=300.0, rewrite_s=1800.0, lookback_s=3600.0)
    detector = LiveDetector(store, plant, line.id, config)
    reader = HuddleReader(store, plant)
    span = HuddleRange(first, first + 2 * 3_600_000, "the simulated shift")
    before: dict | None = None
    whole_before: tuple[int, dict] | None = None
    seen_settled, whole_broke = set(), 0
    for now in range(first + 20 * 60_000, first + 2 * 3_600_000, 5 * 60_000):
        assert detector.tick(now) is not None
        constraint = reader.stored_constraint(line, span, now)
        assert constraint["settled"] == now - 1_800_000
        rounding = 0.00005 * len(line.station_ids)  # the JSON rounds each share to 4 places
        assert sum(constraint["shares"].values()) <= 1 + rounding
        if constraint["tail"] is not None:
            assert sum(constraint["tail"]["shares"].values()) <= 1 + rounding
        context = QueryContext(first, now, {"plant": plant.plant, "line": line.id, "timezone": plant.timezone,
                                            "bucket_offset": "0m"})
        rows = store.query(expand(aq.CONSTRAINT_WINDOWS, context))
        every = stored_windows([(s.tags["station"], s.rows()) for s in rows.series], line.station_ids)
        whole = {s: v.share for s, v in period_shares(every, line.station_ids).items()}
        if whole_before is not None:
            bound = (len(every) - whole_before[0]) / len(every)
            whole_broke += max(abs(whole[s] - whole_before[1][s]) for s in whole) > bound + 1e-3
        whole_before = (len(every), whole)
        counted = store.query(f'SELECT count("share") FROM "bottleneck" WHERE "station" = '
                              f'\'{line.station_ids[0]}\' AND time >= {first}ms '
                              f'AND time < {constraint["settled"]}ms').rows()
        settled_windows = counted[0]["count"] if counted else 0  # the windows the page's share counts
        if constraint["provisional"]:
            assert settled_windows == 0
            continue
        seen_settled.add(constraint["settled"])
        if before is not None:
            grown, total = settled_windows - before["n"], settled_windows
            for station, share in constraint["shares"].items():  # old windows keep their weight exactly
                assert abs(share - before["shares"][station]) <= grown / total + 1e-3, (station, now)
        before = {"n": settled_windows, "shares": constraint["shares"]}
    assert len(seen_settled) >= 10
    assert whole_broke >= 3, "the line must move its shares, or the test shows nothing"
