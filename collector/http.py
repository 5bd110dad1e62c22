"""The collector's `/healthz` and `/metrics` (Prometheus text format), on a port of its own.

Why a separate small server: a collector is a headless process; an orchestrator needs a liveness
answer that means "storing and acking" (not merely "the process exists"), and Prometheus scrapes the
counters the collector already keeps. Standard library only: two GET routes do not justify a framework.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import orjson

from shopfloor.errors import ConfigError

if TYPE_CHECKING:
    from collector.collector import Collector

log = logging.getLogger("shopfloor.collector")

# CollectorStats field, Prometheus type, help text
_METRICS: list[tuple[str, str, str]] = [
    ("received", "counter", "MQTT telemetry messages received"),
    ("messages_written", "counter", "messages whose samples InfluxDB accepted"),
    ("samples_written", "counter", "samples InfluxDB accepted"),
    ("rejected", "counter", "messages rejected to shopfloor/v1/_rejected"),
    ("write_retries", "counter", "batch writes retried because InfluxDB was unavailable"),
    ("write_errors", "counter", "unforeseen errors while writing or acking, each retried"),
    ("batches", "counter", "batches written"),
    ("receipts", "counter", "receipts published to the agents (one per station per batch)"),
    ("last_batch_ms", "gauge", "duration of the last batch write in milliseconds"),
    ("max_batch_ms", "gauge", "longest batch write since start in milliseconds"),
]


def metrics_text(collector: Collector) -> str:
    """The counters in the Prometheus text exposition format (version 0.0.4)."""
    stats = collector.stats
    lines: list[str] = []
    for name, kind, text in _METRICS:
        full = f"shopfloor_collector_{name}{'_total' if kind == 'counter' else ''}"
        lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}", f"{full} {getattr(stats, name)}"]
    lines += ["# HELP shopfloor_collector_mapping_warnings_total distinct warnings about samples stored "
              "anyway (a reason code the plant's table lacks, stored as unknown-CODE; a reason that is no "
              "identifier)",
              "# TYPE shopfloor_collector_mapping_warnings_total counter",
              f"shopfloor_collector_mapping_warnings_total {collector.mapping_warnings}"]
    lines += ["# HELP shopfloor_collector_unacked messages received and not yet acknowledged",
              "# TYPE shopfloor_collector_unacked gauge", f"shopfloor_collector_unacked {collector.unacked}",
              "# HELP shopfloor_collector_healthy 1 when storing and acking, else 0",
              "# TYPE shopfloor_collector_healthy gauge",
              f"shopfloor_collector_healthy {0 if collector.health() else 1}"]
    return "\n".join(lines) + "\n"


class HealthServer:
    """Serves `/healthz` (200 or 503 with the problems as JSON) and `/metrics` in a daemon thread."""

    def __init__(self, collector: Collector, host: str, port: int):
        handler = _handler(collector)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise ConfigError(f"collector http {host}:{port}: {error.strerror or error}: "
                              f"choose a free port (http_port)") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="collector-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            if self.path == "/healthz":
                problems = collector.health()
                body = orjson.dumps({"ok": not problems, "problems": problems})
                self._answer(503 if problems else 200, "application/json", body)
            elif self.path == "/metrics":
                self._answer(200, "text/plain; version=0.0.4; charset=utf-8",
                             metrics_text(collector).encode())
            else:
                self._answer(404, "text/plain", b"/healthz or /metrics\n")

        def _answer(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
            log.debug("http: " + format, *args)

    return Handler
