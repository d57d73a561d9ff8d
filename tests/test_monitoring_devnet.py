"""A demo cluster (devnet BN, 4 `covalidator run` nodes logging JSON, 4 devnet VCs) for one epoch, watched
through the nodes' monitoring endpoints: each node's success counters equal the duties the BN saw done,
`covalidator status --once` shows the node ready with its duties, the duty tracker's summary lines are
in the logs, and no log of the run holds key material: the share secrets, the identity keys or the
keystore passwords."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from covalidator.runtime import keys_io
from covalidator.runtime.devnet.local_cluster import ClusterSpec, LocalCluster
from covalidator.runtime.devnet.processes import Children, get_json

NODES = 4


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def secrets_of(cluster: Path) -> dict[str, str]:
    """Every secret a node folder holds, in the forms a log could show it."""
    found: dict[str, str] = {}
    for i in range(NODES):
        node = cluster / f"node{i}"
        pem = (node / keys_io.IDENTITY_FILE).read_text()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        found[f"node{i} identity key (PEM body)"] = body
        raw = keys_io.load_identity_key(node / keys_io.IDENTITY_FILE).private_bytes_raw().hex()
        found[f"node{i} identity key (hex)"] = raw
        for entry in keys_io.read_keystores(node / keys_io.KEYS_DIR):
            found[f"{entry.path.name} of node{i}: password"] = entry.password
            secret = keys_io.decrypt_keystore_file(entry).hex()
            found[f"{entry.path.name} of node{i}: share secret"] = secret
            found[f"{entry.path.name} of node{i}: share secret (int)"] = str(int(secret, 16))
    return found


@pytest.mark.slow
def test_a_demo_cluster_through_its_monitoring_endpoints_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVALIDATOR_LOG_FORMAT", "json")
    monkeypatch.setenv("COVALIDATOR_MONITORING", "127.0.0.1:0")  # the port is in each node's first log line
    spec = ClusterSpec(
        nodes=NODES, validators=4, epochs=1, seconds_per_slot=2, genesis_delay_s=5.0 + 1.5 * NODES
    )
    with Children(tmp_path) as children:
        cluster = LocalCluster(spec, tmp_path, children)
        cluster.start()
        monitors = []
        for i in range(NODES):
            up = next(e for e in json_lines(tmp_path / f"node{i}.err") if e["msg"] == "covalidator node up")
            monitors.append("http://" + up["monitoring"])
        deadline = cluster.end_time() + 60
        while not (time.time() > cluster.end_time() + 2 * spec.seconds_per_slot and cluster.vcs_done()):
            cluster.check()
            assert time.time() < deadline, "the VCs did not finish"
            time.sleep(0.5)
        report = get_json(f"{cluster.bn_url}/devnet/report")
        assert isinstance(report, dict) and report["duties"]["succeeded"] > 0, report
        by_kind = report["duties"]["by_kind"]
        for i, url in enumerate(monitors):
            samples = scrape(url)
            for kind, figures in by_kind.items():
                succeeded = total(
                    samples, "covalidator_duties_succeeded_total", kind=kind, peer_index=str(i + 1)
                )
                assert succeeded == figures["succeeded"], (i, kind, succeeded, figures, by_kind)
            assert total(samples, "covalidator_consensus_duration_seconds_count", kind="attester") > 0
            assert total(samples, "covalidator_partial_signatures_received_total") > 0
        status = subprocess.run(
            [sys.executable, "-m", "covalidator", "status", "--monitoring", monitors[0], "--once"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 0 and "READY" in status.stdout and "attester" in status.stdout, status
        codes = children.stop_all()
    assert all(codes[f"node{i}"] == 0 for i in range(NODES)), codes
    summaries = [e for e in json_lines(tmp_path / "node0.err") if e["msg"] == "duties"]
    attester = [e for e in summaries if e["kind"] == "attester"]
    assert attester and sum(e["succeeded"] for e in attester) == by_kind["attester"]["succeeded"], summaries
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.err")}
    logs.update({p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.out")})
    assert any(re.search(r'"msg": "duties"', text) for text in logs.values())
    secrets = secrets_of(tmp_path / "cluster")
    assert len(secrets) >= NODES * 2 + 4 * 3
    leaks = [
        f"{what} in {name}"
        for what, secret in secrets.items()
        for name, text in logs.items()
        if secret.lower() in text.lower() or secret.lower().removeprefix("0x") in text.lower()
    ]
    assert not leaks, leaks
