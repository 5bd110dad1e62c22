"""OPC UA (asyncua): a station's count, queue, scrap and state from server nodes.

asyncua's sync client runs its own event loop thread; the poller calls `read`, which reads every
mapped node in one Read request, plus the server's CurrentTime so the agent can notice a clock that
is off. asyncua is imported only when a station uses it (it costs about 25 MB of memory).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from edge_agent.config import OpcUaSource
from edge_agent.sources.base import Reading, SourceError, map_state, whole
from shopfloor.reasons import stop_reason

logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # it logs every failed connect; we report once

SERVER_CURRENT_TIME = "i=2258"


class OpcUaStation:
    def __init__(self, spec: OpcUaSource, station: str):
        from asyncua.sync import Client

        self.spec = spec
        self.where = f"opcua {spec.url}"
        self._client = Client(spec.url, timeout=spec.timeout_s, sync_wrapper_timeout=spec.timeout_s * 3)
        if spec.username:
            self._client.set_user(spec.username)
            self._client.set_password(spec.password or "")
        try:
            self._client.connect()
        except Exception as error:
            self.close()
            raise SourceError(f"{self.where}: no connection ({_reason(error)})") from None
        fields = [("count", spec.count), ("queue", spec.queue), ("scrap", spec.scrap), ("state", spec.state),
                  ("reason", spec.reason)]
        self._names = [name for name, node in fields if node is not None]
        ids = [node.node for _, node in fields if node is not None]
        if spec.server_clock:
            self._names.append("clock")
            ids.append(SERVER_CURRENT_TIME)
        try:
            self._nodes = [self._client.get_node(node_id) for node_id in ids]
        except Exception as error:
            self.close()
            raise SourceError(f"{self.where}: bad node id ({_reason(error)})") from None

    def read(self) -> list[Reading]:
        try:
            values = dict(zip(self._names, self._client.read_values(self._nodes), strict=True))
        except Exception as error:
            raise SourceError(f"{self.where}: read failed ({_reason(error)})") from None
        state = problem = None
        if self.spec.state is not None:
            state, problem = map_state(values["state"], self.spec.state.states, self.where)
        reason = None
        if self.spec.reason is not None:
            reason, reason_problem = stop_reason(values["reason"], self.spec.reason.reasons, state,
                                                 self.where)
            problem = problem or reason_problem
        clock = values.get("clock")
        if isinstance(clock, datetime):
            clock_ms = int((clock if clock.tzinfo else clock.replace(tzinfo=UTC)).timestamp() * 1000)
        else:
            clock_ms = None
        return [Reading(
            count=whole(values["count"], f"{self.where} count"),
            queue=whole(values["queue"], f"{self.where} queue"),
            scrap=whole(values["scrap"], f"{self.where} scrap") if "scrap" in values else None,
            state=state,
            clock_ms=clock_ms,
            problem=problem,
            reason=reason,
        )]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()


def _reason(error: BaseException) -> str:
    return str(error) or error.__class__.__name__
