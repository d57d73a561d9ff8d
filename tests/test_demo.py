"""`covalidator demo` as the README runs it, smaller: 4 nodes, 8 validators (every duty kind), 1 epoch.

Judged by its own JSON (every duty succeeded, nothing slashable or invalid, every process exited 0 on
SIGTERM), by the process table (nothing it started is left running, also when interrupted), and by
`covalidator replay` over one node's trace from the run. The summary's failure naming is checked on
a made-up report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from covalidator.runtime.devnet.summary import MISSED_AT_BN, NodeFigures, failed_by_reason, verdict

RUN_TIMEOUT_S = 240
KINDS = {"proposer", "attester", "aggregator", "sync_message", "sync_contribution"}


def covalidator(*args: str) -> list[str]:
    return [sys.executable, "-m", "covalidator", *args]


def processes_mentioning(text: str, besides: int | None = None) -> list[str]:
    """Command lines of live processes that mention `text` (every child of a demo names its folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), besides):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def run_bounded(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{' '.join(argv[2:5])} did not finish within {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for processes left behind")
def test_demo_every_duty_succeeds_nothing_left_running_and_a_node_trace_replays(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    argv = covalidator(
        "demo", "--nodes", "4", "--validators", "8", "--epochs", "1", "--json", "--keep", str(folder)
    )
    done = run_bounded(argv, RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    for key in (
        "duties", "succeeded", "failed_by_reason", "slashable_pairs", "invalid_signatures",
        "consensus_ms_p50", "consensus_ms_p99", "e2e_ms_p50", "e2e_ms_p99",
    ):  # fmt: skip
        assert key in summary, key
    assert summary["duties"] >= 70 and summary["succeeded"] == summary["duties"], summary
    assert summary["failed_by_reason"] == {} and summary["why"] is None
    assert set(summary["by_kind"]) == KINDS
    assert summary["slashable_pairs"] == 0 and summary["invalid_signatures"] == 0
    assert summary["submissions"] > 0
    assert (
        summary["consensus_instances"] > 0 and 0 <= summary["consensus_ms_p50"] <= summary["consensus_ms_p99"]
    )
    assert 0 < summary["e2e_ms_p50"] <= summary["e2e_ms_p99"] < 4000  # within the duties' deadlines
    assert all(n > 0 for n in summary["node_outcomes"]) and len(summary["node_outcomes"]) == 4
    assert summary["exit_codes"] == {name: 0 for name in summary["exit_codes"]}  # stopped by SIGTERM, cleanly
    assert len(summary["exit_codes"]) == 9  # the BN, 4 nodes, 4 VCs
    # each node as its monitoring address saw itself after the last deadline (`covalidator status`'s data)
    assert [n["node"] for n in summary["nodes"]] == [0, 1, 2, 3], summary["nodes"]
    for node in summary["nodes"]:
        assert node["monitoring"].startswith("http://127.0.0.1:"), node
        assert node["failure_reasons"] == {} and node["peers_connected"] == node["peers"] == 3, node
        assert node["bn"] == "ok" and node["ready"] is True, node
    assert len({n["monitoring"] for n in summary["nodes"]}) == 4
    assert "OK: all" in done.stderr
    assert processes_mentioning(str(folder)) == []

    replayed = run_bounded(covalidator("replay", str(folder / "data0" / "trace")), 120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every action reproduced" in replayed.stdout


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for processes left behind")
def test_an_interrupted_demo_stops_every_process_it_started(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    argv = covalidator(
        "demo", "--nodes", "4", "--validators", "4", "--epochs", "2", "--json", "--keep", str(folder)
    )
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (folder / "vc3.ready").exists():  # every process is up
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the demo did not get ready"
            time.sleep(0.2)
        assert len(processes_mentioning(str(folder), besides=process.pid)) == 9  # BN, 4 nodes, 4 VCs
        process.send_signal(signal.SIGTERM)  # only the demo: its children must be stopped by it
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, err[-3000:]
    assert "interrupted; every process stopped" in err
    assert processes_mentioning(str(folder)) == []


def test_failures_are_named_by_the_nodes_reasons_and_the_rest_missed_at_bn() -> None:
    report = {"slots": {"3": {"attester": [3, 0], "proposer": [1, 1]}, "4": {"sync_message": [2, 1]}}}
    nodes = [
        NodeFigures(
            failures={(3, "attester", "0xaa"): "no_consensus", (3, "attester", "0xbb"): "no_consensus"}
        ),
        NodeFigures(
            failures={(3, "attester", "0xaa"): "no_consensus", (3, "attester", "0xbb"): "deadline_exceeded"}
        ),
        NodeFigures(
            failures={(3, "attester", "0xbb"): "deadline_exceeded", (4, "proposer", "0xcc"): "bn_error"}
        ),
    ]
    assert failed_by_reason(report, nodes) == {"no_consensus": 1, "deadline_exceeded": 1, MISSED_AT_BN: 2}
    summary = {
        "duties": 6, "failed": 4, "slashable_pairs": 1, "invalid_signatures": 0,
        "failed_by_reason": failed_by_reason(report, nodes),
    }  # fmt: skip
    why = verdict(summary)
    assert why is not None and "4 of 6 duties failed" in why and "1 slashable pair" in why
    assert verdict({**summary, "failed": 0, "slashable_pairs": 0, "failed_by_reason": {}}) is None


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for processes left behind")
def test_on_a_bellatrix_devnet_the_clusters_proposals_come_through_the_builder_paying_the_lock(
    tmp_path: Path,
) -> None:
    """The lock pins a fee recipient and a group-signed registration; the nodes submit it, the BN's
    builder hands the cluster's proposers blinded blocks paying it, the VCs sign them (as blinded
    blocks), the cluster decides, combines and submits them through the blinded endpoint."""
    from covalidator.runtime.devnet.local_cluster import DEMO_FEE_RECIPIENT

    folder = tmp_path / "demo"
    argv = covalidator(
        "demo", "--nodes", "4", "--validators", "8", "--epochs", "1", "--fork", "bellatrix",
        "--json", "--keep", str(folder),
    )  # fmt: skip
    done = run_bounded(argv, RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["succeeded"] == summary["duties"] and summary["invalid_signatures"] == 0, summary
    assert summary["registrations_at_bn"] == 8
    paid = summary["blocks_by_fee_recipient"]
    proposals = summary["by_kind"]["proposer"]["succeeded"]
    assert proposals > 0 and paid == {DEMO_FEE_RECIPIENT: {"builder": proposals, "local": 0}}, summary
