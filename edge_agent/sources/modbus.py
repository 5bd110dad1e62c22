"""Modbus TCP (pymodbus): a station's count, queue, scrap and state from PLC registers.

One TCP connection per station, opened on the first read and dropped on any failure (the agent's
poller reopens it with backoff). pymodbus's own retries are off: the poller decides when to retry,
so a dead PLC costs one timeout per attempt, not several.
"""

from __future__ import annotations

import logging

from edge_agent.config import ModbusReason, ModbusRegister, ModbusSource
from edge_agent.sources.base import Reading, SourceError, map_state, whole
from shopfloor.reasons import stop_reason

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every failed connect; we report once


class ModbusStation:
    def __init__(self, spec: ModbusSource, station: str):
        from pymodbus.client import ModbusTcpClient

        self.spec = spec
        self.where = f"modbus {spec.host}:{spec.port} unit {spec.unit}"
        self._client = ModbusTcpClient(spec.host, port=spec.port, timeout=spec.timeout_s, retries=0,
                                       reconnect_delay=0)
        if not self._client.connect():
            self._client.close()
            raise SourceError(f"{self.where}: no connection (is the PLC on and the port right?)")

    def _value(self, register: ModbusRegister | ModbusReason, name: str) -> int:
        from pymodbus.exceptions import ModbusException

        read = (self._client.read_holding_registers if register.table == "holding"
                else self._client.read_input_registers)
        try:
            response = read(register.address, count=register.registers, device_id=self.spec.unit)
        except (ModbusException, OSError) as error:  # a dropped connection can surface as either
            raise SourceError(f"{self.where}: reading {name} at {register.address}: {error}") from None
        if response.isError():
            raise SourceError(f"{self.where}: the PLC refused {name} at {register.table} register "
                              f"{register.address}: {response}")
        if register.registers == 1:
            return int(response.registers[0])
        high, low = response.registers if register.word_order == "big" else reversed(response.registers)
        return (int(high) << 16) | int(low)

    def read(self) -> list[Reading]:
        spec = self.spec
        state = problem = None
        if spec.state is not None:
            state, problem = map_state(self._value(spec.state, "state"), spec.state.states, self.where)
        reason = None
        if spec.reason is not None:
            reason, reason_problem = stop_reason(self._value(spec.reason, "reason"), spec.reason.reasons,
                                                 state, self.where)
            problem = problem or reason_problem
        return [Reading(
            count=whole(self._value(spec.count, "count"), "count"),
            queue=whole(self._value(spec.queue, "queue"), "queue"),
            scrap=None if spec.scrap is None else self._value(spec.scrap, "scrap"),
            state=state,
            clock_ms=None if spec.clock is None else self._value(spec.clock, "clock") * 1000,
            problem=problem,
            reason=reason,
        )]

    def close(self) -> None:
        self._client.close()
