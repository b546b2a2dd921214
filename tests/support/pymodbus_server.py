#!/usr/bin/python3
"""A Modbus server on pymodbus (Debian python3-pymodbus 3.0), the independent peer of the
Modbus integration tests. Run it with /usr/bin/python3.

    pymodbus_server.py --spec SPEC.json --control CONTROL.json --tcp PORT [--rtu-framer]
    pymodbus_server.py --spec SPEC.json --control CONTROL.json --serial /path/to/pty

SPEC.json sets the registers of each slave (addresses are 0-based protocol addresses):

    {"slaves": {"1": {"holding": {"0": [17142, 59769]}, "input": {}, "coil": {"3": [true]},
                      "discrete_input": {}, "unmapped": {"holding": [10, 11]}}}}

"unmapped" lists the addresses a slave does not have, per table, like the holes in a real
device's register map: any read that touches one is answered with exception 0x02 (illegal
data address), while reads around them succeed. "unanswered" lists holes of a device that
does not answer such a read at all (the client times out).

CONTROL.json is read again whenever it changes (write it to a temp file and rename it over):

    {"dead": [2], "exceptions": {"1": {"holding": [10]}}}

A dead slave does not answer at all (the client times out). A read covering an exception
address is answered with exception 0x02 (illegal data address). Prints "ready" on stdout once
it serves.
"""

import argparse
import asyncio
import json
import os
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.exceptions import NoSuchSlaveException
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

TABLE_SIZE = 65536


class Control:
    """Dead slaves and exception addresses, from a file that tests rewrite."""

    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.dead = set()
        self.exceptions = {}

    def refresh(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return  # half written: keep the last good state
        self.stamp = stamp
        self.dead = {int(u) for u in data.get("dead", [])}
        self.exceptions = {
            int(unit): {table: set(addrs) for table, addrs in tables.items()}
            for unit, tables in data.get("exceptions", {}).items()
        }


class Block(ModbusSequentialDataBlock):
    """A full table that refuses reads covering its unmapped addresses or the control file's
    exception addresses."""

    def __init__(self, unit, table, control, values, unmapped, unanswered):
        super().__init__(0, values)
        self.unit = unit
        self.table = table
        self.control = control
        self.unmapped = unmapped
        self.unanswered = unanswered

    def validate(self, address, count=1):
        if any(address <= a < address + count for a in self.unanswered):
            # The server drops a request whose slave "does not exist": no answer at all.
            raise NoSuchSlaveException(f"read of {count} at {address} touches a silent hole")
        self.control.refresh()
        refused = self.control.exceptions.get(self.unit, {}).get(self.table, set())
        if any(address <= a < address + count for a in refused | self.unmapped):
            return False
        return super().validate(address, count)


class Context(ModbusServerContext):
    """Slaves listed as dead in the control file do not exist, so they never answer."""

    def __init__(self, slaves, control):
        super().__init__(slaves=slaves, single=False)
        self.control = control

    def __getitem__(self, slave):
        self.control.refresh()
        if slave in self.control.dead:
            raise NoSuchSlaveException(f"slave {slave} is dead by control file")
        return super().__getitem__(slave)


def table(unit, name, spec, control, default):
    values = [default] * TABLE_SIZE
    for start, words in spec.get(name, {}).items():
        start = int(start)
        values[start : start + len(words)] = words
    unmapped = {int(a) for a in spec.get("unmapped", {}).get(name, [])}
    unanswered = {int(a) for a in spec.get("unanswered", {}).get(name, [])}
    return Block(unit, name, control, values, unmapped, unanswered)


def build(spec, control):
    slaves = {}
    for unit, tables in spec["slaves"].items():
        unit = int(unit)
        slaves[unit] = ModbusSlaveContext(
            di=table(unit, "discrete_input", tables, control, False),
            co=table(unit, "coil", tables, control, False),
            hr=table(unit, "holding", tables, control, 0),
            ir=table(unit, "input", tables, control, 0),
            zero_mode=True,
        )
    return Context(slaves, control)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--rtu-framer", action="store_true")
    parser.add_argument("--serial")
    args = parser.parse_args()
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    control = Control(args.control)
    control.refresh()
    context = build(spec, control)
    if args.tcp is not None:
        framer = ModbusRtuFramer if args.rtu_framer else ModbusSocketFramer
        server = ModbusTcpServer(
            context,
            framer,
            None,
            ("127.0.0.1", args.tcp),
            allow_reuse_address=True,
            ignore_missing_slaves=True,
        )
        task = asyncio.create_task(server.serve_forever())
        await server.serving
        print("ready", flush=True)
        await task
    else:
        server = ModbusSerialServer(
            context,
            ModbusRtuFramer,
            port=args.serial,
            baudrate=9600,
            ignore_missing_slaves=True,
        )
        await server.start()
        print("ready", flush=True)
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-imports"]:
        # tests/run: every module above imported (pymodbus with its serial extras).
        sys.exit(0)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
