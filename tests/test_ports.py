"""Ports for a local run's children (runtime/devnet/ports.py): outside the kernel's ephemeral range,
free when chosen, and never the same for two processes at once (CI saw a child's bind fail with
"address already in use" when ports came from `bind(0)`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from covalidator.runtime.devnet import ports

TAKE = """
import json, sys
from covalidator.runtime.devnet.ports import free_ports
print(json.dumps([p for _ in range(20) for p in free_ports(10)]))
"""


@pytest.fixture
def own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "reservations"
    monkeypatch.setattr(ports, "reservations_file", lambda: path)
    return path


def test_ports_are_outside_the_kernels_ephemeral_range(own_file: Path) -> None:
    low, high = ports.ephemeral_range()
    chosen = ports.free_ports(50)
    assert len(set(chosen)) == 50
    assert all(low - ports.SPAN <= p < low or high < p < 65536 for p in chosen)
    assert sorted(int(line.split()[0]) for line in own_file.read_text().splitlines()) == sorted(chosen)


def test_two_processes_at_once_never_get_the_same_port(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-c", TAKE], stdout=subprocess.PIPE, env=env) for _ in range(2)]
    taken = [json.loads(run.communicate(timeout=60)[0]) for run in runs]
    assert [len(set(t)) for t in taken] == [200, 200]
    assert set(taken[0]).isdisjoint(taken[1])


def test_a_port_in_use_or_handed_out_is_not_chosen(own_file: Path) -> None:
    three = ports.free_ports(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", three[0]))
        ports._handed_out.difference_update(three)
        own_file.write_text("")
        assert sorted(ports.free_ports(2, candidates=three)) == sorted(three[1:])
        with pytest.raises(RuntimeError, match="only 0 of 1 ports free among 3"):
            ports.free_ports(1, candidates=three)


def test_a_reservation_lapses_after_the_hold_and_a_garbled_line_is_skipped() -> None:
    now = 1_000_000.0
    text = f"30001 {now - ports.HOLD_S - 1:.0f}\n30002 {now - 10:.0f}\ngarbage\n30003\n"
    assert ports._read(text, now) == {30002: now - 10}


def test_when_every_other_port_is_held_the_oldest_reservations_are_used_again(own_file: Path) -> None:
    three = ports.free_ports(3)
    ports._handed_out.difference_update(three)
    now = time.time()
    own_file.write_text(
        f"{three[0]} {now - 10:.0f}\n{three[1]} {now - 1000:.0f}\n{three[2]} {now - 100:.0f}\n"
    )
    assert ports.free_ports(2, candidates=three) == [three[1], three[2]]


def test_without_a_reservation_file_ports_are_still_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "reservations_file", lambda: tmp_path)  # a directory: cannot be opened
    chosen = ports.free_ports(3)
    assert len(set(chosen)) == 3 and all(ports.bindable(p, "127.0.0.1") for p in chosen)
