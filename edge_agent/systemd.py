"""`shopfloor agent install --systemd`: a unit file that starts the agent at boot and after a crash.

Why `python -m edge_agent` with this interpreter's full path: under pipx the agent lives in its own
virtual environment; that interpreter is the one that has the agent installed, whatever PATH holds
when systemd starts it. `edge_agent` rather than `shopfloor agent`: the same commands without
loading the analysis stack, about 20 MB less on the line PC (see __main__.py).
"""

from __future__ import annotations

import getpass
import shlex
import sys
from pathlib import Path

from edge_agent.config import load_config

UNIT = """\
# Written by `shopfloor agent install --systemd`; re-run it after moving the config.
[Unit]
Description=shopfloor edge agent {agent} (plant {plant}, line {line})
Documentation=file://{readme}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={workdir}
ExecStart={exec_start}
# The outbox keeps every unsent sample on disk, so a restart loses nothing: restart on any exit.
Restart=always
RestartSec=5
# SIGTERM lets the agent store its last readings and say offline before it exits.
KillSignal=SIGTERM
TimeoutStopSec=20
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""


def unit_text(config_path: Path, user: str | None = None) -> str:
    config = load_config(config_path)
    config_path = config_path.resolve()
    exec_start = shlex.join([sys.executable, "-m", "edge_agent", "run", "--config", str(config_path)])
    return UNIT.format(agent=config.agent, plant=config.plant, line=config.line,
                       user=user or getpass.getuser(), workdir=config_path.parent, exec_start=exec_start,
                       readme=Path(__file__).with_name("README.md"))


def unit_name(config_path: Path) -> str:
    return f"shopfloor-agent-{load_config(config_path).agent}.service"


def write_unit(config_path: Path, unit_dir: Path, user: str | None = None) -> Path:
    path = unit_dir / unit_name(config_path)
    path.write_text(unit_text(config_path, user))
    return path
