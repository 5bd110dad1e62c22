"""Upload the data source and the boards to a running Grafana through its HTTP API (grafana-client).

For a Grafana that is not provisioned from files (a shared company instance): the same data source
and the same board JSON that `build` writes, into one folder, overwriting older versions. Every
call is idempotent, so a push can be repeated after each rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from dashboards.boards import all_boards
from dashboards.config import BoardConfig
from dashboards.grafana import DATASOURCE_UID, Json
from dashboards.provisioning import FOLDER, board_json, datasource
from shopfloor.errors import ShopfloorError

FOLDER_UID = "shopfloor"


class PushError(ShopfloorError):
    """Grafana refused or could not be reached; `str()` says which call and why."""


@dataclass(frozen=True, slots=True)
class PushResult:
    folder_uid: str
    datasource_uid: str
    boards: list[str]


def _grafana(url: str, token: str | None):
    from grafana_client import GrafanaApi

    return GrafanaApi.from_url(url, credential=token or None, timeout=10.0)


def _call(what: str, url: str, action, *, missing_ok: bool = False):
    """Run one API call; a 404 of a read (`missing_ok`) is None, every other failure a PushError."""
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException  # grafana-client's HTTP library

    try:
        return action()
    except GrafanaClientError as error:
        if error.status_code == 404 and missing_ok:
            return None
        denied = error.status_code in (401, 403)
        hint = " (check --token: it needs the Editor or Admin role)" if denied else ""
        raise PushError(f"Grafana at {url} refused to {what}: {error.message}{hint}") from None
    except GrafanaException as error:
        raise PushError(f"Grafana at {url} could not {what}: {error.message}; is it running?") from None
    except RequestException as error:
        raise PushError(f"Grafana at {url} could not {what} ({type(error).__name__}); "
                        f"is it running, is --url right?") from None


def dashboard_payload(board: Json) -> Json:
    """The body of POST /api/dashboards/db: the board exactly as `build` writes it, into our folder."""
    return {"dashboard": orjson.loads(board_json(board)), "folderUid": FOLDER_UID, "overwrite": True,
            "message": "shopfloor dashboards push"}


def push(url: str, token: str | None, config: BoardConfig) -> PushResult:
    grafana = _grafana(url, token)
    if _call("read the folder", url, lambda: grafana.folder.get_folder(FOLDER_UID), missing_ok=True) is None:
        _call("create the folder", url, lambda: grafana.folder.create_folder(FOLDER, uid=FOLDER_UID))
    source = datasource(config)
    if _call("read the data source", url, lambda: grafana.datasource.get_datasource_by_uid(DATASOURCE_UID),
             missing_ok=True):
        _call("update the data source", url,
              lambda: grafana.datasource.update_datasource_by_uid(DATASOURCE_UID, source))
    else:
        _call("create the data source", url, lambda: grafana.datasource.create_datasource(source))
    uploaded = []
    for board in all_boards(config).values():
        _call(f"save the board {board['uid']}", url,
              lambda board=board: grafana.dashboard.update_dashboard(dashboard_payload(board)))
        uploaded.append(board["uid"])
    return PushResult(FOLDER_UID, DATASOURCE_UID, uploaded)
