"""Small helpers for runtime tests on real sockets: bounded asyncio runs, listening sockets, polling."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any


def run[T](coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test coroutine in a fresh event loop, failing (not hanging) after `timeout` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound on 127.0.0.1 (port 0: any free port), for servers that take `sock=`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


async def until(
    predicate: Callable[[], bool],
    timeout: float = 10.0,
    what: str = "condition",
    explain: Callable[[], object] | None = None,
) -> None:
    """Poll `predicate` every 10 ms; AssertionError naming `what` (and `explain()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = f": {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
        await asyncio.sleep(0.01)
