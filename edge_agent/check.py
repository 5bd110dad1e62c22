"""`shopfloor agent check`: is this config ready for a line PC? One line per finding, before going live.

It checks what `run` would meet, in order: the file, the outbox path, the broker (with the agent's
credentials and TLS settings, under a separate client id so a running agent is not disconnected),
then one read of every station's source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from edge_agent.config import AgentConfig, config_problems
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.poller import now_ms
from edge_agent.sources import open_source
from shopfloor.errors import ShopfloorError
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint

Finding = tuple[bool, str]


def check_agent(path: Path, timeout_s: float = 5.0) -> Iterator[Finding]:
    config, problems = config_problems(path)
    if config is None:
        for problem in problems:
            yield False, problem
        return
    yield True, f"{path}: agent {config.agent}, plant {config.plant}, line {config.line}, " \
                f"{len(config.stations)} stations"
    yield _check_outbox(config)
    yield _check_broker(config, timeout_s)
    yield from _check_sources(config)


def _check_outbox(config: AgentConfig) -> Finding:
    try:
        outbox = Outbox(config.outbox)
    except OutboxError as error:
        if "locked" in str(error):
            return True, f"outbox {config.outbox}: in use by a running agent (it holds the file's lock)"
        return False, str(error)
    backlog = outbox.backlog
    unreceipted, age_s = outbox.unreceipted(now_ms())
    outbox.close()
    if config.delete_on != "receipt":
        return True, f"outbox {config.outbox}: writable, {backlog} samples waiting"
    return True, (f"outbox {config.outbox}: writable, {backlog} samples waiting, {unreceipted} of them sent "
                  f"without a receipt yet" + (f" (oldest sent {age_s:.0f} s ago)" if unreceipted else ""))


def _check_broker(config: AgentConfig, timeout_s: float) -> Finding:
    endpoint = mqtt_endpoint(config.mqtt_url)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome.append("" if not reason_code.is_failure else str(reason_code))
        answered.set()

    try:
        tls = config.mqtt
        client = make_client(f"{config.client_id}-check", endpoint,
                             ca_file=None if tls.ca_file is None else str(tls.ca_file),
                             cert_file=None if tls.cert_file is None else str(tls.cert_file),
                             key_file=None if tls.key_file is None else str(tls.key_file))
        client.on_connect = on_connect
        client.connect(endpoint.host, endpoint.port, keepalive=10)
    except (OSError, ValueError) as error:
        return False, f"broker {endpoint.display}: {error}: is it running, and are host, port and TLS right?"
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return False, f"broker {endpoint.display}: no answer within {timeout_s:.0f} s"
        if outcome[0]:
            return False, (f"broker {endpoint.display} refused the agent: {outcome[0]}: "
                           f"check user and password")
        return True, f"broker {endpoint.display}: connected"
    finally:
        client.disconnect()
        client.loop_stop()


def _check_sources(config: AgentConfig) -> Iterator[Finding]:
    for station in config.stations:
        kind = station.source.kind
        try:
            source = open_source(station)
            try:
                readings = source.read()
            finally:
                source.close()
        except ShopfloorError as error:
            yield False, f"station {station.id} ({kind}): {error}"
            continue
        except Exception as error:  # a field library's own error is still one line here
            yield False, f"station {station.id} ({kind}): {error.__class__.__name__}: {error}"
            continue
        if not readings:
            yield True, f"station {station.id} ({kind}): reachable, no new readings yet"
            continue
        last = readings[-1]
        yield True, (f"station {station.id} ({kind}): count={last.count} queue={last.queue} "
                     f"scrap={last.scrap} state={last.state}")
        if last.clock_ms is not None:
            skew_s = (last.clock_ms - now_ms()) / 1000
            if abs(skew_s) > config.clock_skew_s:
                yield False, (f"station {station.id}: the source's clock differs from this PC's by "
                              f"{skew_s:+.1f} s: set both from the same NTP server")
