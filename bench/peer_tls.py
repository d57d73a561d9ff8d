"""Benchmark: what TLS adds to the peer mesh (issue 16: peer traffic encrypted, pinned to the lock keys).

Two real PeerTransports on 127.0.0.1, one sending to the other, with and without TLS 1.3
(runtime/peer_tls.py). For each message size: one-way latency from `send` to the receiver's
callback (p50 / p99, µs, one message in flight at a time) and throughput (MB/s with many in flight).
Sizes: a partial-signature batch of 1 validator (~0.5 KB), of 100 validators (~40 KB), and a
proposal-sized DECIDED (~1 MB). The ratio TLS / plain is printed per row.

    python bench/peer_tls.py [--messages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster.lock import ClusterLock, Operator, identity_public_key
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import PartialSignature, PartialSignatures, PeerPayload
from covalidator.runtime.peer_tls import client_context, server_context
from covalidator.runtime.peers import PeerTransport
from tests.helpers.aio import listening_socket, port_of

DUTY = DutyId(1, DutyKind.ATTESTER)


def payload(validators: int, tag: int) -> PeerPayload:
    items = tuple(
        PartialSignature("0x" + f"{i:096x}", "0x" + f"{tag:064x}", "0x" + "bb" * 96)
        for i in range(validators)
    )
    return PeerPayload(partials=PartialSignatures(DUTY, items))


async def measure(tls: bool, validators: int, messages: int) -> tuple[float, float, float]:
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    socks = [listening_socket() for _ in range(2)]
    ports = [port_of(s) for s in socks]
    for s in socks:
        s.close()
    operators = tuple(
        Operator(identity_public_key(k), f"127.0.0.1:{p}") for k, p in zip(keys, ports, strict=True)
    )
    lock = ClusterLock("bench", "devnet", b"\0" * 4, b"\0" * 32, 2, operators, (), os.urandom(32), ())
    arrived: dict[int, float] = {}
    event = asyncio.Event()

    def received(sender: int, message: PeerPayload, size: int) -> None:
        assert message.partials is not None
        arrived[int(message.partials.partials[0].signing_root, 16)] = time.perf_counter()
        event.set()

    nodes = []
    for i in range(2):
        options = {"server_ssl": server_context(keys[i]), "client_ssl": client_context()} if tls else {}
        nodes.append(
            PeerTransport(
                lock,
                i,
                keys[i],
                "127.0.0.1",
                ports[i],
                received,
                sock=listening_socket(ports[i]),
                max_age_ms=600_000,
                **options,  # type: ignore[arg-type]
            )
        )
    for node in nodes:
        await node.start()
    while 1 not in nodes[1].connected() or 2 not in nodes[0].connected():
        await asyncio.sleep(0.01)
    prepared = [payload(validators, tag) for tag in range(messages)]
    latencies = []
    for tag in range(messages):  # one in flight: latency
        event.clear()
        sent = time.perf_counter()
        nodes[0].send(2, prepared[tag])
        while tag not in arrived:
            await event.wait()
            event.clear()
        latencies.append((arrived[tag] - sent) * 1e6)
    arrived.clear()
    started = time.perf_counter()
    for tag in range(messages):  # all in flight: throughput
        nodes[0].send(2, prepared[tag])
    while len(arrived) < messages:
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    size = nodes[0].stats()["peers"][2]["bytes_sent"] / (2 * messages)
    for node in nodes:
        await node.stop()
    latencies.sort()
    return (
        statistics.median(latencies),
        latencies[int(0.99 * (len(latencies) - 1))],
        size * messages / seconds / 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    print(
        f"{'message':>26} {'plain p50/p99 us':>18} {'TLS p50/p99 us':>16} {'p50 ratio':>9} {'plain MB/s':>10} {'TLS MB/s':>9}"
    )
    for validators, label in (
        (1, "1 partial (~0.5 KB)"),
        (100, "100 partials (~40 KB)"),
        (2500, "2,500 partials (~1 MB)"),
    ):
        count = args.messages if validators < 1000 else max(20, args.messages // 10)
        plain = asyncio.run(measure(False, validators, count))
        tls = asyncio.run(measure(True, validators, count))
        print(
            f"{label:>26} {plain[0]:8.0f}/{plain[1]:<8.0f} {tls[0]:7.0f}/{tls[1]:<8.0f} "
            f"{tls[0] / plain[0]:8.2f}x {plain[2]:10.1f} {tls[2]:9.1f}"
        )


if __name__ == "__main__":
    main()
