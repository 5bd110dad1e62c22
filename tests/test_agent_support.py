"""Helpers for the edge agent tests: agent configs, an in-process agent, a plain paho subscriber.

No tests here; the agent tests import it. The subscriber is a plain paho client (shopfloor.mqtt), so
what it records is exactly what the broker delivered.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
from conftest import wait_until

from edge_agent.agent import Agent
from edge_agent.config import load_config
from shopfloor.contract import TOPIC_ROOT, decode_telemetry, parse_telemetry_topic
from shopfloor.mqtt import connect_properties, make_client
from shopfloor.settings import mqtt_endpoint


def write_config(path: Path, *, plant: str, mqtt_url: str, stations: dict[str, str] | int = 2,
                 agent: str = "a1", interval_s: float = 0.05, outbox: str = "outbox.sqlite",
                 extra: str = "", mqtt_extra: str = "", delete_on: str = "puback") -> Path:
    """An agent.toml; `stations` is a count of simulated stations or {id: inline source table}.

    `delete_on` is "puback" by default: most agent tests check the MQTT leg with a plain subscriber,
    which sends no receipts; the receipt tests (test_receipts.py) run a collector and pass "receipt"."""
    if isinstance(stations, int):
        stations = {f"s{i}": f'{{ kind = "simulated", cycle_s = 0.2, seed = {i} }}' for i in range(stations)}
    body = "\n".join(f'[[station]]\nid = "{sid}"\nsource = {source}\n' for sid, source in stations.items())
    path.write_text(f'agent = "{agent}"\nplant = "{plant}"\nline = "l1"\ninterval_s = {interval_s}\n'
                    f'outbox = "{outbox}"\nsource_retry_max_s = 0.5\ndelete_on = "{delete_on}"\n{extra}\n'
                    f'[mqtt]\nurl = "{mqtt_url}"\nreconnect_max_s = 0.5\n{mqtt_extra}\n\n{body}')
    return path


class RunningAgent:
    """An Agent in a thread of the test process."""

    def __init__(self, config_path: Path):
        self.agent = Agent(load_config(config_path))
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()

    def stop(self) -> Agent:
        self.agent.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the agent did not stop within 15 s"
        return self.agent


def run_agent_for(config_path: Path, seconds: float) -> Agent:
    running = RunningAgent(config_path)
    time.sleep(seconds)
    return running.stop()


class Subscriber:
    """Records every telemetry and status message of one plant, in arrival order."""

    def __init__(self, mqtt_url: str, plant: str, client_id: str = "watcher", persistent: bool = False):
        endpoint = mqtt_endpoint(mqtt_url)
        self.plant = plant
        self.telemetry: list[tuple[str, list[dict]]] = []  # (station, samples) per message
        self.status: list[tuple[dict, bool]] = []  # (payload, retained)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = make_client(client_id, endpoint)
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.on_connect = lambda client, *_: client.subscribe(f"{TOPIC_ROOT}/{plant}/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(endpoint.host, endpoint.port, clean_start=not persistent,
                            properties=connect_properties(300) if persistent else None)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            if message.topic.endswith("/telemetry"):
                station = parse_telemetry_topic(message.topic).station
                self.telemetry.append((station, list(decode_telemetry(message.payload))))
            elif message.topic.endswith("/status"):
                self.status.append((orjson.loads(message.payload), bool(message.retain)))

    def seqs(self) -> dict[str, list[int]]:
        """Every received seq per station in arrival order (a loss or duplicate shows)."""
        result: dict[str, list[int]] = defaultdict(list)
        with self._lock:
            for station, samples in self.telemetry:
                result[station].extend(sample["seq"] for sample in samples)
        return dict(result)

    def received(self) -> int:
        with self._lock:
            return sum(len(samples) for _, samples in self.telemetry)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, timeout_s: float, what: str, every_s: float = 0.05):
    """conftest's `wait_until`, polling faster: agent tests run at 0.05 s intervals."""
    return wait_until(condition, timeout_s, what, every_s)


def backlog_of(path: Path) -> int:
    """Samples waiting in an outbox file (opened and closed again: an outbox allows one process)."""
    from edge_agent.outbox import Outbox

    outbox = Outbox(path)
    try:
        return outbox.backlog
    finally:
        outbox.close()


def contiguous(seqs: dict[str, list[int]]) -> bool:
    return all(values == list(range(len(values))) for values in seqs.values())


class AgentProcess:
    """`shopfloor agent run` as a child process, so a test can SIGKILL it like a crash."""

    def __init__(self, config_path: Path, log_path: Path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            argv = [sys.executable, "-m", "shopfloor", "agent", "run", "-v", "--config", str(config_path)]
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def wait_connected(self, timeout_s: float = 20) -> None:
        wait_for(lambda: b"connected to" in self.log_path.read_bytes() or self.process.poll() is not None,
                 timeout_s, "the agent to connect")
        assert self.process.poll() is None, self.log()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ModbusPlc:
    """pymodbus's own TCP server on a loopback port, standing in for a PLC; stop() and start() again
    on the same port play a PLC that dies and comes back."""

    def __init__(self, port: int, registers: int = 32):
        import asyncio

        self.port = port
        self.registers = registers
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = None
        self._values: dict[int, int] = {}

    def _call(self, coroutine, timeout_s: float = 10):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def start(self) -> ModbusPlc:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        async def create():
            device = SimDevice(1, [SimData(0, count=self.registers, values=0, datatype=DataType.REGISTERS)])
            self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self._server.listen()

        self._call(create())
        for address, value in self._values.items():
            self._write(address, value)
        return self

    def _write(self, address: int, value: int) -> None:
        self._call(self._server.context.async_setValues(1, 6, address, [value]))

    def set(self, address: int, value: int, registers: int = 1) -> None:
        """Write a uint16, or a uint32 over two registers (high word first)."""
        words = [value] if registers == 1 else [value >> 16 & 0xFFFF, value & 0xFFFF]
        for offset, word in enumerate(words):
            self._values[address + offset] = word
            if self._server is not None:
                self._write(address + offset, word)

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.shutdown())
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class OpcUaPlc:
    """asyncua's own server on a loopback port with one station's variables."""

    def __init__(self, port: int):
        from asyncua import ua
        from asyncua.sync import Server

        self.ua = ua
        self.server = Server()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
        self.url = f"opc.tcp://127.0.0.1:{port}/"
        self.ns = self.server.register_namespace("urn:shopfloor:test")
        folder = self.server.nodes.objects.add_object(self.ns, "S1")
        self.nodes = {}
        for name, kind in (("Count", "UInt16"), ("Queue", "UInt16"), ("Scrap", "UInt32"), ("State", "Int32"),
                           ("Reason", "UInt16")):
            self.nodes[name] = folder.add_variable(self.node_id(name), name,
                                                   ua.Variant(0, getattr(ua.VariantType, kind)))
        self.server.start()

    def node_id(self, name: str) -> str:
        return f"ns={self.ns};s=S1.{name}"

    def set(self, name: str, value: int) -> None:
        node = self.nodes[name]
        node.write_value(self.ua.Variant(value, node.read_data_type_as_variant_type()))

    def close(self) -> None:
        self.server.stop()
