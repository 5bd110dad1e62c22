"""`python -m edge_agent run | check | install`: the agent's commands without the rest of `shopfloor`.

Why a second entry: `shopfloor` mounts every folder's commands, and analysis brings numpy, which costs
a line PC about 20 MB of memory for nothing. The systemd unit (and the Windows service in README.md)
run this lean entry; the commands and their one-line errors are the same as `shopfloor agent ...`.
"""

from __future__ import annotations

import sys

import click
import typer
from typer.exceptions import TyperException

from edge_agent.cli import app
from shopfloor.errors import ShopfloorError


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="python -m edge_agent")
    except typer.Exit as done:
        code = done.exit_code
    except ShopfloorError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        sys.exit(2)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        typer.secho(f"error: {error.strerror or error}{where}", err=True, fg="red")
        sys.exit(2)
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)
    except (click.ClickException, TyperException) as error:  # usage errors carry their own exit code
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
