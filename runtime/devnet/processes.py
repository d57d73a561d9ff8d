"""Child processes of a local run (the demo, benchmarks): spawn, wait until ready, stop every one.

Each child writes its stdout and stderr to files in the run's folder (`<name>.out`, `<name>.err`).
On Linux a child also gets SIGTERM if this process dies without stopping it (PR_SET_PDEATHSIG), so
even a SIGKILLed parent leaves nothing running. `Children.stop_all()` sends SIGTERM to every live
child (in reverse order of start: VCs, then nodes, then the BN), waits, and SIGKILLs what is left;
use the `Children` object as a context manager so that this also happens on Ctrl-C or an error.

Must not: interpret what the children do; readiness is a predicate the caller passes in.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
POLL_S = 0.2


class ChildFailed(RuntimeError):
    """A child exited while it was needed, or was not ready in time (the message says which and why)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def get_json(url: str, timeout: float = 2.0) -> Any:
    """The JSON body of a 200 answer, or None (no answer yet, an error status, not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.err.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Children:
    def __init__(self, folder: Path, stop_timeout_s: float = 15.0) -> None:
        self.folder = folder
        self.stop_timeout_s = stop_timeout_s
        self.children: list[Child] = []
        self._files: list[IO[bytes]] = []

    def spawn(self, name: str, argv: Sequence[str], cwd: Path | None = None) -> Child:
        out, err = self.folder / f"{name}.out", self.folder / f"{name}.err"
        stdout, stderr = out.open("wb"), err.open("wb")
        self._files += [stdout, stderr]
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, process, out, err)
        self.children.append(child)
        return child

    def check_alive(self, which: Sequence[Child] | None = None) -> None:
        for child in self.children if which is None else which:
            code = child.process.poll()
            if code is not None:
                tail = child.stderr_tail()
                raise ChildFailed(f"{child.name} exited with code {code}" + (f":\n{tail}" if tail else ""))

    def wait_until(
        self, what: str, ready: Callable[[], bool], timeout_s: float, needed: Sequence[Child] | None = None
    ) -> float:
        """Poll `ready` until it holds; the seconds it took. ChildFailed if a needed child exits first
        (all children by default) or the timeout passes."""
        began = time.monotonic()
        while not ready():
            self.check_alive(needed)
            if time.monotonic() - began > timeout_s:
                raise ChildFailed(f"{what}: not ready within {timeout_s:g} s")
            time.sleep(POLL_S)
        return time.monotonic() - began

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every live child (last started first), SIGKILL those still up after the timeout;
        the exit code of each (negative: killed by that signal)."""
        for child in reversed(self.children):
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in self.children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                child.process.wait()
        for file in self._files:
            file.close()
        self._files.clear()
        return {child.name: child.process.returncode for child in self.children}

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
