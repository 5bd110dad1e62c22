"""`python -m shopfloor` is the `shopfloor` command (tests start subprocesses this way)."""

from shopfloor.cli import main

main()
