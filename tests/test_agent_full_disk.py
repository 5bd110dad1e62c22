"""The agent's outbox on a file system that fills up: a real 1 MB tmpfs mounted for the test.

Filling a real file system (not SQLite's max_page_count) is what a line PC meets: the WAL, the main
file and the checkpoint all hit ENOSPC wherever it falls. Mounting needs root (CAP_SYS_ADMIN); the
test says so and skips where it is not given, rather than pass without having filled anything.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from test_agent_support import RunningAgent, wait_for, write_config

from edge_agent.outbox import Outbox, OutboxError
from shopfloor.stack import free_port


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; deleting it gives the space back."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    # the last few bytes a 4 KB write could not take
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as out:
        while True:
            out.write(b"\0")
    return filler


def test_a_full_file_system_is_one_clear_outbox_error(small_disk):
    outbox = Outbox(small_disk / "o.sqlite")
    fill(small_disk)
    sample = {"ts": 1, "seq": 1, "count": 1, "queue": 1, "state": "working"}
    with pytest.raises(OutboxError) as caught:
        for _ in range(2000):
            outbox.append([("s1", sample)] * 100, {})
    message = str(caught.value)
    assert message.startswith(f"outbox {small_disk / 'o.sqlite'}: database or disk is full: free disk")
    assert "\n" not in message
    with pytest.raises(OSError) as really:  # the file system is full, not a SQLite limit
        (small_disk / "probe").write_bytes(b"\0" * 8192)
    assert really.value.errno == errno.ENOSPC
    outbox.close()


def test_the_agent_rides_out_a_full_disk_and_stores_everything_when_space_returns(small_disk, tmp_path):
    closed = f"mqtt://127.0.0.1:{free_port()}"  # nothing to send to: every sample stays in the outbox
    config = write_config(tmp_path / "agent.toml", plant="p1", mqtt_url=closed, stations=2,
                          interval_s=0.02, outbox=str(small_disk / "outbox.sqlite"))
    running = RunningAgent(config)
    agent = running.agent
    wait_for(lambda: agent.outbox.backlog > 20, 10, "samples on disk")
    filler = fill(small_disk)
    problem = wait_for(lambda: agent.problems.get("outbox"), 30, "the full outbox as a problem")
    assert "database or disk is full: free disk space" in problem and "\n" not in problem
    assert "new samples wait in memory" in problem
    stored_while_full = agent.outbox.backlog
    wait_for(lambda: len(agent.held) > 50, 10, "sampling going on while the disk is full")
    assert running.thread.is_alive()
    filler.unlink()  # space returns
    wait_for(lambda: "outbox" not in agent.problems and not agent.held, 15, "the held samples stored")
    wait_for(lambda: agent.outbox.backlog > stored_while_full + 50, 10, "sampling to disk again")
    stopped = running.stop()
    assert stopped.dropped == 0
    outbox = Outbox(small_disk / "outbox.sqlite")
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in outbox.after(0, 1_000_000):
        seqs[row.station].append(row.sample["seq"])
    outbox.close()
    # nothing stored before the disk filled was lost, nothing sampled meanwhile either, no gaps
    assert {station: values == list(range(len(values))) for station, values in seqs.items()} == \
        {"s0": True, "s1": True}
    assert sum(map(len, seqs.values())) == stopped.produced
