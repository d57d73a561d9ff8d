"""Ports for a local run's children (the demo, benchmarks, tests), which are chosen in one process
and bound later, seconds later, in another.

A port the kernel hands out for `bind(0)` comes from its ephemeral range, the same range it draws
the source port of every outgoing connection from: between choosing such a port and the child
binding it, any connection on the machine may take it ("address already in use", seen in CI with
two test lanes running clusters at once). So the ports here come from just below that range, where
the kernel never assigns one by itself, and every choice is written, under a file lock, to a
reservation file shared by all processes of this user: two runs at once never get the same port,
and no port is handed out again for `HOLD_S` seconds.

Must not: bind anything for longer than the check that the port is free right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HOLD_S = 3 * 3600.0  # a port handed out is not handed out again for this long (longer than any run)
SPAN = 8192  # how many ports below the ephemeral range are used
DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default, when /proc does not say
_handed_out: set[int] = set()  # this process's ports: never given out twice, whatever the file says


def ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def port_range() -> range:
    high = ephemeral_low()
    return range(max(1024, high - SPAN), high)


def reservations_file() -> Path:
    return Path(tempfile.gettempdir()) / f"covalidator-ports-{os.getuid()}"


def _read(text: str, now: float) -> dict[int, float]:
    """The file's live reservations (port -> when), skipping lines that do not parse."""
    held: dict[int, float] = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            port, when = line.split()
            if now - float(when) < HOLD_S:
                held[int(port)] = float(when)
    return held


def bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(count: int, host: str = "127.0.0.1", candidates: Sequence[int] | None = None) -> list[int]:
    """`count` distinct ports, free right now, outside the kernel's ephemeral range (or among
    `candidates`), and not handed out to any process of this user in the last `HOLD_S` seconds."""
    candidates = port_range() if candidates is None else candidates
    path = reservations_file()
    with path.open("a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        now = time.time()
        held = _read(file.read(), now)
        taken = held.keys() | _handed_out
        ports: list[int] = []
        for port in random.sample(candidates, len(candidates)):
            if len(ports) == count:
                break
            if port not in taken and bindable(port, host):
                ports.append(port)
        if len(ports) < count:
            raise RuntimeError(
                f"only {len(ports)} of {count} ports free among {len(candidates)} "
                f"({min(candidates, default=0)}-{max(candidates, default=0)}; reserved in {path})"
            )
        held.update((port, now) for port in ports)
        file.seek(0)
        file.truncate()
        file.write("".join(f"{port} {when:.0f}\n" for port, when in held.items()))
        file.flush()
    _handed_out.update(ports)
    return ports
