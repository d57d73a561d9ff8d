"""Metrics from the model's actions, the duty tracker's lines, readiness reasons, log formats, Grafana JSON."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import DutiesFetched, DutiesKind, DutyOutcome, Metric, TimerFired, TimerKey
from covalidator.model.node.step import step
from covalidator.runtime.cli.status import health_line, node_health, poll, reasons_text
from covalidator.runtime.devnet.view import live_view
from covalidator.runtime.duty_tracker import DutyTracker
from covalidator.runtime.logs import REDACTED, FieldsFormatter, JSONFormatter
from covalidator.runtime.metrics import NodeIdentity, NodeMetrics, Snapshot, metric_names
from covalidator.runtime.monitoring import HealthInputs, not_ready_reasons
from tests.test_node_real_vc import GENESIS_MS, GROUP, started_before_genesis

ROOT = Path(__file__).resolve().parent.parent
NODE = {"cluster_name": "test", "cluster_hash": "0xab", "peer_index": "2"}


def samples(metrics: NodeMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset({**NODE, **labels}.items())))


def snapshot(**overrides: object) -> Snapshot:
    base: dict[str, object] = {
        "peers": {1: {"connected": True, "rtt_ms": 4.0, "clock_offset_ms": -12.0}, 3: {"connected": False}},
        "transport_dropped": {"bad_signature": 2},
        "beacon_nodes": {"http://bn": {"role": "primary", "down": False, "syncing": True}},
        "fallback_in_use": False,
        "held_vc_requests": 3,
        "vc_seen_seconds_ago": 1.5,
        "ready": False,
    }
    return Snapshot(**{**base, **overrides})  # type: ignore[arg-type]


def test_model_actions_become_labelled_series() -> None:
    m = NodeMetrics(NodeIdentity("test", "0xab", 2))
    duty = DutyId(33, DutyKind.ATTESTER)
    for _ in range(3):  # three attester duties learned; one of them never ends (still in flight)
        m.observe(Metric("duty_scheduled", (("kind", "attester"),)))
    m.outcome(DutyOutcome(duty, "0x01", True))
    m.outcome(DutyOutcome(duty, "0x02", False, "insufficient_peer_signatures", (3, 4)))
    m.observe(Metric("duty_outcome", (("kind", "attester"), ("result", "success"))))  # not counted twice
    m.observe(Metric("consensus_duration_ms", (("kind", "attester"),), 420.0))
    m.observe(Metric("consensus_decided_round", (("kind", "attester"),), 2.0))
    m.observe(Metric("consensus_leader", (("kind", "attester"),), 3.0))
    m.observe(Metric("partial_signatures_received", (("peer", "4"), ("kind", "attester"))))
    m.observe(
        Metric("partial_signatures_received", (("peer", "4"), ("kind", "attester")), 125.0)
    )  # a message's
    m.observe(Metric("signatures_combined", (("kind", "attester"),), 124.0))  # a step's combinations
    m.observe(Metric("peer_message_dropped", (("cause", "invalid_partial_signature"), ("peer", "4"))))
    m.observe(Metric("slashing_refusals", (("kind", "proposer"),)))
    m.observe(Metric("vc_partial_refused", (("cause", "attestations"), ("count", "3"))))
    m.observe(Metric("some_new_counter", (("kind", "x"),)))
    m.bn_call("http://bn", "attestation_data", 0.02, None)
    m.bn_call("http://bn", "attestation_data", 2.0, "timeout: no answer")
    m.vc_request("/eth/v1/validator/attestation_data", 0.3)
    m.store_committed(0.004)
    assert value(m, "covalidator_duties_expected_total", kind="attester") == 3  # not counted at the outcomes
    assert value(m, "covalidator_duties_succeeded_total", kind="attester") == 1
    assert (
        value(m, "covalidator_duties_failed_total", kind="attester", reason="insufficient_peer_signatures")
        == 1
    )
    assert value(m, "covalidator_consensus_duration_seconds_sum", kind="attester") == 0.42
    assert value(m, "covalidator_consensus_decided_round_bucket", kind="attester", le="2.0") == 1
    assert value(m, "covalidator_consensus_decided_round_bucket", kind="attester", le="1.0") == 0
    assert value(m, "covalidator_consensus_leader", kind="attester") == 3
    assert value(m, "covalidator_partial_signatures_received_total", peer="4", kind="attester") == 126
    assert value(m, "covalidator_signatures_combined_total", kind="attester") == 124
    assert (
        value(m, "covalidator_peer_messages_dropped_total", cause="invalid_partial_signature", peer="4") == 1
    )
    assert value(m, "covalidator_slashing_refusals_total", kind="proposer") == 1
    assert value(m, "covalidator_vc_refused_total", what="vc_partial_refused", cause="attestations") == 3
    assert value(m, "covalidator_model_events_total", metric="some_new_counter") == 1
    assert (
        value(m, "covalidator_bn_request_duration_seconds_count", bn="http://bn", endpoint="attestation_data")
        == 2
    )
    assert (
        value(
            m,
            "covalidator_bn_request_errors_total",
            bn="http://bn",
            endpoint="attestation_data",
            cause="timeout",
        )
        == 1
    )
    assert (
        value(
            m, "covalidator_vc_request_duration_seconds_count", endpoint="/eth/v1/validator/attestation_data"
        )
        == 1
    )
    assert value(m, "covalidator_store_commit_seconds_count") == 1


def scheduled(actions: object) -> list[str]:
    return [dict(a.labels)["kind"] for a in actions if isinstance(a, Metric) and a.name == "duty_scheduled"]  # type: ignore[attr-defined]


def test_the_model_counts_a_duty_expected_once_when_it_learns_of_it() -> None:
    state, _ = started_before_genesis()
    state, _ = step(state, TimerFired(TimerKey("epoch"), GENESIS_MS))
    root, reorg = "0x" + "44" * 32, "0x" + "55" * 32

    def attesters(*slots: int) -> tuple[dict[str, str], ...]:
        pairs = enumerate(zip(GROUP, slots, strict=True))
        return tuple(
            {
                "pubkey": g,
                "slot": str(s),
                "validator_index": str(i),
                "committee_index": "0",
                "committee_length": "4",
                "committees_at_slot": "1",
                "validator_committee_index": str(i),
            }
            for i, (g, s) in pairs
        )

    state, actions = step(state, DutiesFetched(DutiesKind.ATTESTER, 0, attesters(3, 5), root))
    assert scheduled(actions) == ["attester", "attester"]
    state, actions = step(state, DutiesFetched(DutiesKind.ATTESTER, 0, attesters(3, 5), root))
    assert scheduled(actions) == []  # fetched again (every epoch, forced): the same duties
    state, actions = step(state, DutiesFetched(DutiesKind.ATTESTER, 0, attesters(3, 6), reorg))
    assert scheduled(actions) == ["attester"]  # a reorg moved one: only the moved one is new
    proposal = ({"pubkey": GROUP[0], "slot": "4", "validator_index": "0"},)
    state, actions = step(state, DutiesFetched(DutiesKind.PROPOSER, 0, proposal, root))
    assert sorted(scheduled(actions)) == ["proposer", "randao"]


def test_a_nodes_health_line_from_its_status_as_the_demo_shows_it() -> None:
    status = {
        "cluster": {"nodes": 4},
        "ready": {"ready": False, "reasons": [{"reason": "too_few_peers", "detail": "2 of 4 connected"}]},
        "peers": {"peers": {"1": {"connected": True}, "3": {"connected": False}, "4": {}}},
        "beacon_nodes": {"http://bn": {"role": "primary", "down": True}},
        "duties": {"totals": {"attester": {"success": 5, "no_consensus": 2}, "proposer": {"success": 1}}},
    }
    figures = node_health(status)
    assert figures == {
        "ready": False,
        "not_ready": ["too_few_peers"],
        "peers_connected": 1,
        "peers": 3,
        "bn": "down",
        "failure_reasons": {"attester": {"no_consensus": 2}},
    }
    assert health_line("node2", figures).plain == "node2 NOT READY (too_few_peers)  peers 1/3  BN down"
    assert reasons_text(figures) == "attester no_consensus 2"
    by_epoch = {"0": {"attester": {"success": 5}}, "1": {"attester": {"no_consensus": 2}}}
    status["duties"] = {**status["duties"], "by_epoch": by_epoch}  # type: ignore[dict-item]
    assert node_health(status, epochs=1)["failure_reasons"] == {}  # the demo's epoch: none failed
    assert node_health(status, epochs=2)["failure_reasons"] == {"attester": {"no_consensus": 2}}
    well = {
        **status,
        "ready": {"ready": True, "reasons": []},
        "duties": {"totals": {"attester": {"success": 7}}},
    }
    well["beacon_nodes"] = {"http://bn": {"down": False, "syncing": True}, "http://fallback": {}}
    assert health_line("node0", node_health(well)).plain == "node0 READY  peers 1/3  BN ok"
    assert reasons_text(node_health(well)) == "none"
    assert "error" in poll("http://127.0.0.1:1", timeout=1.0)  # nothing listens there

    console = Console(record=True, width=120)
    console.print(live_view(None, "demo", [figures, {"error": "connection refused"}]))
    text = console.export_text()
    assert "node0 NOT READY (too_few_peers)  peers 1/3  BN down" in text
    assert "node1 unreachable: connection refused" in text


def test_snapshots_are_read_at_scrape_time() -> None:
    m = NodeMetrics(NodeIdentity("test", "0xab", 2))
    current = [snapshot()]
    m.add_snapshots(lambda: current[0])
    assert value(m, "covalidator_peer_connected", peer="1") == 1
    assert value(m, "covalidator_peer_connected", peer="3") == 0
    assert value(m, "covalidator_peer_rtt_seconds", peer="1") == 0.004
    assert value(m, "covalidator_peer_clock_offset_seconds", peer="1") == -0.012
    assert value(m, "covalidator_peer_transport_dropped_total", cause="bad_signature") == 2
    assert value(m, "covalidator_bn_up", bn="http://bn", role="primary") == 1
    assert value(m, "covalidator_bn_syncing", bn="http://bn") == 1
    assert value(m, "covalidator_vc_held_requests") == 3
    assert value(m, "covalidator_ready") == 0
    current[0] = snapshot(held_vc_requests=0, ready=True, fallback_in_use=True)
    assert value(m, "covalidator_vc_held_requests") == 0
    assert value(m, "covalidator_ready") == 1
    assert value(m, "covalidator_bn_fallback_in_use") == 1


def test_duty_tracker_summarizes_each_epoch_once(caplog: object) -> None:
    tracker = DutyTracker(slots_per_epoch=8)
    tracker.outcome(DutyOutcome(DutyId(8, DutyKind.ATTESTER), "0x01", True))
    tracker.outcome(DutyOutcome(DutyId(9, DutyKind.ATTESTER), "0x02", False, "no_consensus", (2,)))
    tracker.outcome(DutyOutcome(DutyId(17, DutyKind.ATTESTER), "0x01", True))
    assert tracker.flush(0) == []
    lines = tracker.flush(1)
    assert lines == [
        {"epoch": 1, "kind": "attester", "expected": 2, "succeeded": 1, "failed": 1, "failed_no_consensus": 1}
    ]
    assert tracker.flush(1) == []  # once
    assert [line["epoch"] for line in tracker.flush(5)] == [2]
    kept = json.loads(json.dumps(tracker.as_json()))[
        "by_epoch"
    ]  # summarized epochs stay (the demo reads them)
    assert kept == {"1": {"attester": {"success": 1, "no_consensus": 1}}, "2": {"attester": {"success": 1}}}
    failure = tracker.as_json()["recent_failures"][0]
    assert failure == {
        "slot": 9,
        "kind": "attester",
        "validator": "0x02",
        "result": "no_consensus",
        "missing_peers": [2],
    }


def health(**overrides: object) -> HealthInputs:
    base: dict[str, object] = {
        "bn_syncing": {"http://bn": False},
        "n": 4,
        "peers_connected": 3,
        "clock_offsets_ms": {1: 5.0},
        "vc_silent_ms": 1000,
        "epoch_ms": 16_000,
    }
    return HealthInputs(**{**base, **overrides})  # type: ignore[arg-type]


def test_readiness_reasons() -> None:
    def names(**overrides: object) -> list[str]:
        return [r["reason"] for r in not_ready_reasons(health(**overrides))]

    assert names() == []
    assert names(bn_syncing={}) == []  # before the first probe: no verdict on the BN
    assert names(bn_syncing={"http://bn": None}) == ["bn_down"]
    assert names(bn_syncing={"http://bn": True}) == ["bn_syncing"]
    assert names(bn_syncing={"http://a": True, "http://b": False}) == []
    assert names(peers_connected=2) == []  # 3 of 4 is a quorum
    assert names(peers_connected=1) == ["too_few_peers"]
    # the median of the peers' offsets: one peer off (or lying in its pongs) does not make THIS node
    # not ready; most peers agreeing that this node is off does
    assert names(clock_offsets_ms={1: 5.0, 2: -1500.0, 3: 0.0}) == []
    assert names(clock_offsets_ms={1: 5.0, 2: -90_000.0}) == []  # of two peers, neither alone decides
    assert names(clock_offsets_ms={1: 1300.0, 2: 90_000.0}) == ["clock_offset"]  # both say it is off
    assert names(clock_offsets_ms={1: 1500.0, 2: 1600.0, 3: 2.0}) == ["clock_offset"]
    assert names(clock_offsets_ms={1: -1200.0}) == ["clock_offset"]
    assert names(vc_silent_ms=17_000) == ["vc_not_seen"]
    assert names(bn_syncing={"http://bn": None}, peers_connected=0) == ["bn_down", "too_few_peers"]


def test_log_formats_and_secret_fields_redacted() -> None:
    record = logging.LogRecord("covalidator.node", logging.WARNING, __file__, 1, "duty failed", None, None)
    record.fields = {"duty": "33/attester", "reason": "no_consensus", "password": "hunter2", "note": "a b"}
    line = FieldsFormatter("node1").format(record)
    assert "duty=33/attester reason=no_consensus" in line and 'note="a b"' in line
    assert "hunter2" not in line and f"password={REDACTED}" in line
    entry = json.loads(JSONFormatter("node1").format(record))
    assert entry["msg"] == "duty failed" and entry["level"] == "warning" and entry["node"] == "node1"
    assert entry["reason"] == "no_consensus" and entry["password"] == REDACTED


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "grafana" / "covalidator.json").read_text())
    m = NodeMetrics(NodeIdentity("test", "0xab", 2))
    m.add_snapshots(snapshot)
    exported = metric_names(m)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ("success rate", "failure reasons", "consensus duration", "peer"):
        assert needed in titles
    assert len(exprs) >= 4
    for expr in exprs:
        used = set(re.findall(r"\bcovalidator_[a-z_]+", expr))
        assert used, expr
        assert used <= exported, (expr, used - exported)


def test_readme_documents_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    m = NodeMetrics(NodeIdentity("test", "0xab", 2))
    m.add_snapshots(snapshot)
    families = {f.name for f in m.registry.collect()}
    missing = sorted(name for name in families if f"`{name}" not in readme)
    assert not missing, missing


def test_status_shows_exit_and_registration_counts_summed_over_labels() -> None:
    from covalidator.runtime.cli.status import POOL_COUNTS, pool_counts

    status = {
        "metrics": {
            "metrics": {
                "exits_submitted": {"result=ok": 2.0, "result=error": 1.0},
                "registrations_changed": {"": 1.0},
            }
        }
    }
    counts = pool_counts(status)
    assert counts[POOL_COUNTS["exits_submitted"]] == 3
    assert counts[POOL_COUNTS["registrations_changed"]] == 1
    assert counts[POOL_COUNTS["exits_on_chain"]] == 0
