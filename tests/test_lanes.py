"""The split `make test` relies on (tests/conftest.py UNTIMED, scripts/two-lanes): a module run at the
lowest CPU priority must not depend on the wall clock, so it may wait for the CPU without failing."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import UNTIMED

TESTS = Path(__file__).resolve().parent

# what reads or waits on the clock, runs an event loop or a thread, or starts live nodes (a helper that
# serves only through an event loop, such as fake_bn, needs asyncio or aiohttp to run: caught by those)
CLOCKED = {
    "time", "asyncio", "threading", "aiohttp", "socket", "selectors", "signal",
    "tests.helpers.aio", "tests.helpers.devnet_cluster", "tests.helpers.node_proc",
}  # fmt: skip


def imported(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def clocked(names: set[str]) -> set[str]:
    return {n for n in names if any(n == c or n.startswith(c + ".") for c in CLOCKED)}


def test_no_untimed_module_imports_a_clock_a_loop_or_live_nodes() -> None:
    found = {name: sorted(clocked(imported((TESTS / f"{name}.py").read_text()))) for name in sorted(UNTIMED)}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_the_check_sees_each_way_of_importing_a_clock() -> None:
    assert clocked(imported("import time")) == {"time"}
    assert clocked(imported("from time import sleep")) == {"time", "time.sleep"}
    assert clocked(imported("import asyncio.subprocess")) == {"asyncio.subprocess"}
    assert clocked(imported("from tests.helpers import devnet_cluster")) == {"tests.helpers.devnet_cluster"}
    assert clocked(imported("from tests.helpers.node_proc import start_node")) == {
        "tests.helpers.node_proc",
        "tests.helpers.node_proc.start_node",
    }
    assert clocked(imported("import json\nfrom tests.helpers.oracle import x")) == set()
