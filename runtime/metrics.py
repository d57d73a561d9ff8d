"""The node's Prometheus metrics: one registry, every series labelled with the cluster and this node.

Three sources feed it, none of them decides anything:
  the model      its `Metric` actions (duties scheduled, consensus duration and round, leader, partials per peer,
                 dropped peer messages by cause, slashing refusals, BN fetch failures, ...) and its
                 `DutyOutcome` actions (duties succeeded / failed by named reason), through the node
                 runner's MetricsSink interface (`observe`, `outcome`);
  the runtime    BN calls (latency and errors per BN and endpoint), VC requests (latency per
                 endpoint), store commits (latency);
  snapshots      read at scrape time from the parts' own stats (peers connected, RTT, clock offset,
                 transport-level drops, BN up/syncing, fallback in use, held VC requests).

Every metric is listed, with its type and meaning, in the README ("Metrics"); `METRIC_NAMES` is the
list the Grafana dashboard test checks its queries against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from covalidator.model.memo import Memo
from covalidator.model.node.events import DutyOutcome
from covalidator.model.node.events import Metric as ModelMetric

NODE_LABELS = ("cluster_name", "cluster_hash", "peer_index")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONSENSUS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ROUND_BUCKETS = (1, 2, 3, 4, 6, 10)


@dataclass(frozen=True)
class NodeIdentity:
    cluster_name: str
    cluster_hash: str  # the lock hash, 0x hex
    peer_index: int  # this node's share index 1..N

    def values(self) -> list[str]:
        return [self.cluster_name, self.cluster_hash, str(self.peer_index)]


# Cached (name, labels) recorders of a node's metrics: beyond this many pairs (labels that keep
# changing) the oldest are forgotten rather than the cache grown.
RECORDERS = 4096


class NodeMetrics:
    """The registry and its instruments; implements the node runner's `MetricsSink`."""

    def __init__(self, identity: NodeIdentity, registry: CollectorRegistry | None = None) -> None:
        self.identity = identity
        self.registry = registry if registry is not None else CollectorRegistry()
        self._node = identity.values()
        r = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, [*NODE_LABELS, *labels], registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, [*NODE_LABELS, *labels], buckets=buckets, registry=r)

        self.duties_expected = counter(
            "covalidator_duties_expected",
            "Validator duties this node learned it has (BN duties, sync membership, selection), counted then",
            "kind",
        )
        self.duties_succeeded = counter(
            "covalidator_duties_succeeded", "Validator duties that ended submitted to the BN", "kind"
        )
        self.duties_failed = counter(
            "covalidator_duties_failed", "Validator duties that failed, by named reason", "kind", "reason"
        )
        self.consensus_duration = histogram(
            "covalidator_consensus_duration_seconds",
            "From the duty's start to this node's QBFT decision",
            CONSENSUS_BUCKETS,
            "kind",
        )
        self.decided_round = histogram(
            "covalidator_consensus_decided_round",
            "The QBFT round a duty was decided in",
            ROUND_BUCKETS,
            "kind",
        )
        self.leader = Gauge(
            "covalidator_consensus_leader",
            "Share index of the leader of the last decided round, by duty kind",
            [*NODE_LABELS, "kind"],
            registry=r,
        )
        self.partials_received = counter(
            "covalidator_partial_signatures_received",
            "Partial-signature batches received, by peer",
            "peer",
            "kind",
        )
        self.signatures_combined = counter(
            "covalidator_signatures_combined", "Threshold signatures combined", "kind"
        )
        self.peer_dropped = counter(
            "covalidator_peer_messages_dropped",
            "Peer messages the model dropped or found invalid, by cause",
            "cause",
            "peer",
        )
        self.slashing_refusals = counter(
            "covalidator_slashing_refusals", "Decided data refused as slashable by this node's DB", "kind"
        )
        self.bn_fetch_failures = counter(
            "covalidator_bn_fetch_failures",
            "Duties or duty data the model could not get from the BN",
            "what",
            "kind",
        )
        self.vc_refused = counter(
            "covalidator_vc_refused",
            "VC requests and partial signatures refused by the model",
            "what",
            "cause",
        )
        self.model_events = counter(
            "covalidator_model_events", "Other counters the model emits, by name", "metric"
        )
        self.bn_latency = histogram(
            "covalidator_bn_request_duration_seconds", "BN call latency", LATENCY_BUCKETS, "bn", "endpoint"
        )
        self.bn_errors = counter(
            "covalidator_bn_request_errors", "BN calls that failed, by cause", "bn", "endpoint", "cause"
        )
        self.vc_latency = histogram(
            "covalidator_vc_request_duration_seconds",
            "Time to answer the VC (held requests included)",
            LATENCY_BUCKETS,
            "endpoint",
        )
        self.store_commit = histogram(
            "covalidator_store_commit_seconds", "Durable store commits (Persist)", LATENCY_BUCKETS
        )
        self.last_bn_url = ""
        # a node observes ~13,000 model metrics per epoch at 1,000 validators, over a few hundred
        # (name, labels) pairs: each pair's Prometheus child is looked up once (`_recorder`)
        self._recorders = Memo[tuple[str, tuple[tuple[str, str], ...]], Callable[[float], Any]](
            lambda key: self._recorder(key[0], dict(key[1])), RECORDERS
        )

    # -- MetricsSink ------------------------------------------------------------------------------------

    def outcome(self, outcome: DutyOutcome) -> None:
        kind = outcome.duty.kind.name.lower()
        if outcome.ok:
            self.duties_succeeded.labels(*self._node, kind).inc()
        else:
            self.duties_failed.labels(*self._node, kind, outcome.reason or "unknown").inc()

    def observe(self, metric: ModelMetric) -> None:
        self._recorders((metric.name, metric.labels))(metric.value)

    def _recorder(self, name: str, labels: dict[str, str]) -> Callable[[float], Any]:
        """What observing a model metric of this name and labels does to the Prometheus metrics."""
        node = self._node
        kind = labels.get("kind", "")
        if name == "duty_outcome":
            return lambda _: None  # counted from the DutyOutcome itself (`outcome`)
        if name == "duty_scheduled":
            return self.duties_expected.labels(*node, kind).inc
        if name == "consensus_duration_ms":
            duration = self.consensus_duration.labels(*node, kind)
            return lambda value: duration.observe(value / 1000)
        if name == "consensus_decided_round":
            return self.decided_round.labels(*node, kind).observe
        if name == "consensus_leader":
            return self.leader.labels(*node, kind).set
        if name == "partial_signatures_received":
            return self.partials_received.labels(*node, labels.get("peer", ""), kind).inc
        if name == "signatures_combined":
            return self.signatures_combined.labels(*node, kind).inc
        once: Any = None
        if name == "peer_message_dropped":
            once = self.peer_dropped.labels(*node, labels.get("cause", ""), labels.get("peer", ""))
        elif name == "slashing_refusals":
            once = self.slashing_refusals.labels(*node, kind)
        elif name == "bn_errors":
            once = self.bn_fetch_failures.labels(*node, labels.get("what", ""), kind)
        if once is not None:
            return lambda _: once.inc()
        if name.startswith("vc_"):
            refused = self.vc_refused.labels(*node, name, labels.get("cause", kind))
            count = float(labels.get("count", 1))
            return lambda _: refused.inc(count)
        return self.model_events.labels(*node, name).inc

    # -- runtime observations ---------------------------------------------------------------------------

    def bn_call(self, url: str, endpoint: str, seconds: float, error: str | None) -> None:
        self.bn_latency.labels(*self._node, url, endpoint).observe(seconds)
        if error is None:
            self.last_bn_url = url
        else:
            self.bn_errors.labels(*self._node, url, endpoint, error.split(":", 1)[0]).inc()

    def vc_request(self, endpoint: str, seconds: float) -> None:
        self.vc_latency.labels(*self._node, endpoint).observe(seconds)

    def store_committed(self, seconds: float) -> None:
        self.store_commit.labels(*self._node).observe(seconds)

    def add_snapshots(self, read: Callable[[], Snapshot]) -> None:
        self.registry.register(SnapshotCollector(self._node, read))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Snapshot:
    """What the parts report about themselves right now (read at every scrape)."""

    peers: dict[int, dict[str, Any]]  # share index -> PeerTransport stats of that peer
    transport_dropped: dict[str, int]  # cause -> count (authentication, framing, ...)
    beacon_nodes: dict[str, dict[str, Any]]  # url -> BeaconNodeClient stats of that BN
    fallback_in_use: bool
    held_vc_requests: int
    vc_seen_seconds_ago: float | None
    ready: bool


SNAPSHOT_METRICS = (
    "covalidator_peer_connected",
    "covalidator_peer_rtt_seconds",
    "covalidator_peer_clock_offset_seconds",
    "covalidator_peer_transport_dropped",
    "covalidator_bn_up",
    "covalidator_bn_syncing",
    "covalidator_bn_fallback_in_use",
    "covalidator_vc_held_requests",
    "covalidator_vc_last_seen_seconds",
    "covalidator_ready",
)


class SnapshotCollector(Collector):
    def __init__(self, node: list[str], read: Callable[[], Snapshot]) -> None:
        self.node = node
        self.read = read

    def collect(self) -> Iterator[Metric]:
        s = self.read()
        node, labels = self.node, list(NODE_LABELS)

        def gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        connected = gauge("covalidator_peer_connected", "1 when the peer's connection is up", "peer")
        rtt = gauge("covalidator_peer_rtt_seconds", "Last ping round-trip time to the peer", "peer")
        offset = gauge("covalidator_peer_clock_offset_seconds", "The peer's clock minus ours", "peer")
        for index, peer in sorted(s.peers.items()):
            connected.add_metric([*node, str(index)], 1.0 if peer.get("connected") else 0.0)
            if peer.get("rtt_ms") is not None:
                rtt.add_metric([*node, str(index)], float(peer["rtt_ms"]) / 1000)
            if peer.get("clock_offset_ms") is not None:
                offset.add_metric([*node, str(index)], float(peer["clock_offset_ms"]) / 1000)
        dropped = CounterMetricFamily(
            "covalidator_peer_transport_dropped",
            "Peer frames the transport dropped (authentication, framing, queue full), by cause",
            labels=[*labels, "cause"],
        )
        for cause, count in sorted(s.transport_dropped.items()):
            dropped.add_metric([*node, cause], float(count))
        up = gauge("covalidator_bn_up", "1 when the BN answered its last call", "bn", "role")
        syncing = gauge("covalidator_bn_syncing", "1 when the BN says it is syncing", "bn")
        for url, bn in sorted(s.beacon_nodes.items()):
            up.add_metric([*node, url, str(bn.get("role", ""))], 0.0 if bn.get("down") else 1.0)
            syncing.add_metric([*node, url], 1.0 if bn.get("syncing") else 0.0)
        fallback = gauge(
            "covalidator_bn_fallback_in_use", "1 when the last good BN answer came from a fallback"
        )
        fallback.add_metric(node, 1.0 if s.fallback_in_use else 0.0)
        held = gauge("covalidator_vc_held_requests", "VC requests waiting for the cluster's decision")
        held.add_metric(node, float(s.held_vc_requests))
        seen = gauge("covalidator_vc_last_seen_seconds", "Seconds since the VC last called this node")
        if s.vc_seen_seconds_ago is not None:
            seen.add_metric(node, s.vc_seen_seconds_ago)
        ready = gauge("covalidator_ready", "1 when /readyz answers 200")
        ready.add_metric(node, 1.0 if s.ready else 0.0)
        yield from (connected, rtt, offset, dropped, up, syncing, fallback, held, seen, ready)


def metric_names(metrics: NodeMetrics) -> set[str]:
    """Every series name the registry can export (counters with _total, histograms with _bucket ...)."""
    names = set(SNAPSHOT_METRICS) | {"covalidator_peer_transport_dropped_total"}
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


class Counters:
    """A plain in-memory MetricsSink (the status endpoint's `metrics` field): each model Metric summed
    by name and labels, duty outcomes by kind and result. Prometheus is `NodeMetrics`; this one needs
    no scrape. (Re-created here: a concurrent edit of this file was overwritten; see git log.)"""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self._keys = Memo[tuple[tuple[str, str], ...], str](  # labels -> their key in `sums`
            lambda labels: ",".join(f"{k}={v}" for k, v in labels), RECORDERS
        )

    def observe(self, metric: ModelMetric) -> None:
        key = self._keys(metric.labels)
        by_labels = self.sums.setdefault(metric.name, {})
        by_labels[key] = by_labels.get(key, 0.0) + metric.value

    def outcome(self, outcome: DutyOutcome) -> None:
        by_result = self.outcomes.setdefault(outcome.duty.kind.name.lower(), {})
        result = "success" if outcome.ok else (outcome.reason or "unknown")
        by_result[result] = by_result.get(result, 0) + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "metrics": {k: dict(v) for k, v in self.sums.items()},
            "outcomes": {k: dict(v) for k, v in self.outcomes.items()},
        }


class Fanout:
    """One MetricsSink that hands every observation to several."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def observe(self, metric: ModelMetric) -> None:
        for sink in self.sinks:
            sink.observe(metric)

    def outcome(self, outcome: DutyOutcome) -> None:
        for sink in self.sinks:
            sink.outcome(outcome)
