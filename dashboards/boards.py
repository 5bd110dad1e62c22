"""Every board of the project, by file name: the one list that `build`, `push` and the tests walk."""

from __future__ import annotations

from dashboards import executive, line_huddle
from dashboards.config import BoardConfig
from dashboards.grafana import Json


def all_boards(config: BoardConfig) -> dict[str, Json]:
    """File name -> dashboard JSON, generated fresh from the plant (and plan) in `config`."""
    return {line_huddle.FILE_NAME: line_huddle.board(config), executive.FILE_NAME: executive.board(config)}
