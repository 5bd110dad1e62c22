"""`python -m edge_agent run | check | install`: the agent's commands without the rest of `shopfloor`.

Why a second entry: the systemd unit (and the Windows service in README.md) run the agent with the
fewest imports a line PC can have; the commands and their one-line errors are those of
`shopfloor agent ...`, through the same `run_cli`.
"""

from edge_agent.cli import app
from shopfloor.cli import run_cli


def main() -> None:
    run_cli(app, "python -m edge_agent")


if __name__ == "__main__":
    main()
