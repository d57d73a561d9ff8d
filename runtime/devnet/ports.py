"""Ports for a local run's children (the demo, benchmarks, tests), which are chosen in one process
and bound later, seconds later, in another.

A port the kernel hands out for `bind(0)` comes from its ephemeral range, the same range it draws
the source port of every outgoing connection from: between choosing such a port and the child
binding it, any connection on the machine may take it ("address already in use", seen in CI with
two test lanes running clusters at once). So the ports here come from just below that range, where
the kernel never assigns one by itself (or above it), and every choice is written, under a file
lock, to a reservation file shared by all processes of this user: two runs at once never get the
same port, and no port is handed out again for `HOLD_S` seconds while others are free.

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
from typing import IO

HOLD_S = 3600.0  # a port handed out is not handed out again for this long (unless none other is free)
SPAN = 8192  # how many ports below the ephemeral range are used (and every port above it)
DEFAULT_EPHEMERAL = (32768, 60999)  # Linux's default, when /proc does not say
_handed_out: set[int] = set()  # this process's ports: never given out twice, whatever the file says


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """The first and last port of the kernel's ephemeral range."""
    try:
        low, high = (int(word) for word in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def port_range() -> list[int]:
    """The ports chosen from: SPAN ports just below the ephemeral range, and every port above it."""
    low, high = ephemeral_range()
    return [*range(max(1024, low - SPAN), low), *range(high + 1, 65536)]


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


def _choose(count: int, host: str, candidates: Sequence[int], held: dict[int, float]) -> list[int]:
    """Free ports nobody holds, in random order; when too few, those held longest ago."""
    ports: list[int] = []
    unheld = [p for p in candidates if p not in held and p not in _handed_out]
    oldest = sorted((p for p in candidates if p in held and p not in _handed_out), key=held.__getitem__)
    for port in [*random.sample(unheld, len(unheld)), *oldest]:
        if len(ports) == count:
            break
        if bindable(port, host):
            ports.append(port)
    return ports


def free_ports(count: int, host: str = "127.0.0.1", candidates: Sequence[int] | None = None) -> list[int]:
    """`count` distinct ports, free right now, outside the kernel's ephemeral range (or among
    `candidates`), and, while others are free, not handed out to any process of this user in the last
    `HOLD_S` seconds. Without a reservation file it can write, the ports are only free and this
    process's own."""
    candidates = port_range() if candidates is None else candidates
    path = reservations_file()
    file: IO[str] | None
    try:
        file = path.open("a+")
    except OSError:  # (another user's file of that name, a read-only temp dir)
        file = None
    with contextlib.ExitStack() as stack:
        held: dict[int, float] = {}
        now = time.time()
        if file is not None:
            stack.enter_context(file)
            fcntl.flock(file, fcntl.LOCK_EX)
            file.seek(0)
            held = _read(file.read(), now)
        ports = _choose(count, host, candidates, held)
        if len(ports) < count:
            raise RuntimeError(
                f"only {len(ports)} of {count} ports free among {len(candidates)} "
                f"({min(candidates, default=0)}-{max(candidates, default=0)})"
            )
        if file is not None:
            held.update((port, now) for port in ports)
            file.seek(0)
            file.truncate()
            file.write("".join(f"{port} {when:.0f}\n" for port, when in held.items()))
            file.flush()
    _handed_out.update(ports)
    return ports
