"""The peer transport on real sockets (127.0.0.1): mesh delivery, QBFT signatures, every drop cause
counted, restarts (new incarnations), a down peer never blocking the others, bounded queues, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster.lock import ClusterLock, Operator, identity_public_key
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import PartialSignature, PartialSignatures, PeerPayload
from covalidator.model.qbft.messages import Envelope, Message, MsgType, make_value
from covalidator.runtime.devnet.ports import free_ports
from covalidator.runtime.peers import (
    FRAME_DOMAIN,
    HANDSHAKE_DOMAIN,
    HANDSHAKE_HEADER,
    MAGIC,
    PEER_PATH,
    PeerTransport,
)
from tests.helpers.aio import listening_socket, run, until

DUTY = DutyId(100, DutyKind.ATTESTER)


@dataclass
class Cluster:
    lock: ClusterLock
    keys: list[Ed25519PrivateKey]
    ports: list[int]
    inbox: list[list[tuple[int, PeerPayload]]] = field(default_factory=list)

    def transport(self, i: int, **options: Any) -> PeerTransport:
        options.setdefault("ping_interval_s", 0.05)
        options.setdefault("backoff_max_s", 0.2)
        return PeerTransport(
            self.lock,
            i,
            self.keys[i],
            "127.0.0.1",
            self.ports[i],
            lambda sender, payload, _size: self.inbox[i].append((sender, payload)),
            sock=listening_socket(self.ports[i]),
            **options,
        )


def make_cluster(n: int = 4) -> Cluster:
    keys = [Ed25519PrivateKey.generate() for _ in range(n)]
    ports = free_ports(n)  # the transports bind their own sockets on these (runtime/devnet/ports.py)
    operators = tuple(
        Operator(identity_public_key(k), f"127.0.0.1:{p}") for k, p in zip(keys, ports, strict=True)
    )
    lock = ClusterLock("test", "devnet", b"\0" * 4, b"\0" * 32, 3, operators, (), os.urandom(32), ())
    return Cluster(lock, keys, ports, [[] for _ in range(n)])


_last_ts = [0]


def handshake(cluster: Cluster, sender: int, to: int, key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    """The upgrade header operator `sender` (share index) dials `to` with: the protocol written out
    here (domain, lock hash, "from.to.ts", Ed25519), not taken from the transport under test."""
    ts = _last_ts[0] = max(int(time.time() * 1000), _last_ts[0] + 1)
    text = f"{sender}.{to}.{ts}"
    signer = key or cluster.keys[sender - 1]
    signature = signer.sign(HANDSHAKE_DOMAIN + cluster.lock.lock_hash + text.encode())
    return {HANDSHAKE_HEADER: f"{text}.{signature.hex()}"}


def partials(tag: int) -> PeerPayload:
    partial = PartialSignature("0x" + "aa" * 48, "0x" + f"{tag:064x}", "0x" + "bb" * 96)
    return PeerPayload(partials=PartialSignatures(DUTY, (partial,)))


def tags(inbox: list[tuple[int, PeerPayload]]) -> list[tuple[int, int]]:
    return [(s, int(p.partials.partials[0].signing_root, 16)) for s, p in inbox if p.partials is not None]


async def start_all(transports: list[PeerTransport]) -> None:
    for t in transports:
        await t.start()
    for t in transports:
        others = {p.share_index for p in transports} - {t.share_index}
        await until(
            lambda t=t, others=others: others <= t.connected(), what=f"node {t.share_index} connected"
        )


async def stop_all(transports: list[PeerTransport]) -> None:
    for t in transports:
        await t.stop()


def test_identity_key_must_be_the_locks() -> None:
    cluster = make_cluster(3)
    try:
        PeerTransport(cluster.lock, 0, cluster.keys[1], "127.0.0.1", 1, lambda s, p, n: None)
    except ValueError as error:
        assert "not operator 0's key" in str(error)
    else:
        raise AssertionError("a foreign identity key was accepted")


def test_mesh_broadcast_send_rtt_and_clock_offset() -> None:
    async def scenario() -> None:
        cluster = make_cluster(4)
        nodes = [cluster.transport(i) for i in range(4)]
        await start_all(nodes)
        try:
            for t in nodes:
                assert t.broadcast(partials(t.share_index)) == 3
            assert nodes[0].send(3, partials(99))
            assert not nodes[0].send(1, partials(0)) and not nodes[0].send(9, partials(0))
            await until(lambda: all(len(box) >= 3 for box in cluster.inbox), what="broadcasts")
            await until(lambda: len(cluster.inbox[2]) == 4, what="send")
            for i, box in enumerate(cluster.inbox):
                expected = {(s, s) for s in range(1, 5) if s != i + 1} | ({(1, 99)} if i == 2 else set())
                assert set(tags(box)) == expected
            await until(
                lambda: all(p["rtt_ms"] is not None for t in nodes for p in t.stats()["peers"].values()),
                what="rtt",
            )
            for t in nodes:
                stats = t.stats()
                assert sum(stats["dropped"].values()) == 0, stats["dropped"]
                assert stats["send_refused"]["unknown_peer"] == 2 or t is not nodes[0]
                for peer in stats["peers"].values():
                    assert peer["connected"] and peer["inbound_connections"] == 1
                    assert 0 <= peer["rtt_ms"] < 500 and abs(peer["clock_offset_ms"]) < 50
        finally:
            await stop_all(nodes)

    run(scenario())


def test_qbft_envelopes_are_signed_per_message_and_verified() -> None:
    async def scenario() -> None:
        cluster = make_cluster(4)
        nodes = [cluster.transport(i) for i in range(4)]
        await start_all(nodes)
        try:
            value = make_value(b'{"0xaa":{"slot":"100"}}')
            # round-change justification: messages of senders 2 and 3 (signed by them), and node 1's own
            # (unsigned: the model never signs; the transport signs node 1's messages)
            changes = [Message(MsgType.ROUND_CHANGE, DUTY, s, 2) for s in (1, 2, 3)]
            justification = (changes[0], nodes[1].sign_message(changes[1]), nodes[2].sign_message(changes[2]))
            proposal = Envelope(
                Message(MsgType.PRE_PREPARE, DUTY, 1, 2, value.hash), value.body, justification
            )
            nodes[0].broadcast(PeerPayload(qbft=proposal))
            await until(lambda: all(len(cluster.inbox[i]) == 1 for i in (1, 2, 3)), what="proposal")
            received = cluster.inbox[3][0][1].qbft
            assert received is not None and received.body == value.body
            assert received.message.signature and received.justification[0].signature
            assert received.justification[1:] == justification[1:]
            # a justification message of sender 3 signed with node 2's key: the whole envelope is dropped
            forged = nodes[1].sign_message(changes[2])
            bad = Envelope(Message(MsgType.PRE_PREPARE, DUTY, 2, 2, value.hash), value.body, (forged,))
            nodes[1].broadcast(PeerPayload(qbft=bad))
            # a justification message that nobody signed
            unsigned = Envelope(
                Message(MsgType.PRE_PREPARE, DUTY, 2, 2, value.hash), value.body, (changes[2],)
            )
            nodes[1].broadcast(PeerPayload(qbft=unsigned))
            assert nodes[1].stats()["send_refused"]["unsigned_justification"] == 1
            await until(lambda: nodes[0].stats()["dropped"]["bad_qbft_signature"] == 2, what="drops")
            assert len(cluster.inbox[0]) == 0 and len(cluster.inbox[3]) == 1
        finally:
            await stop_all(nodes)

    run(scenario())


def forge(
    key: Ed25519PrivateKey,
    *,
    lock_hash: str,
    sender: int,
    to: int = 0,
    inc: str = "feed",
    start: int = 1_000,
    seq: int = 1,
    ts: int | None = None,
    kind: str = "msg",
    data: Any = None,
    signed: bool = True,
) -> bytes:
    body = {
        "cluster": lock_hash,
        "from": sender,
        "to": to,
        "inc": inc,
        "start": start,
        "seq": seq,
        "ts": int(time.time() * 1000) if ts is None else ts,
        "kind": kind,
        "data": partials(seq).to_dict(encode_json=True) if data is None else data,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    if not signed:
        return MAGIC + b"\x00" + raw
    return MAGIC + b"\x40" + key.sign(FRAME_DOMAIN + raw) + raw


def test_every_bad_frame_is_dropped_and_counted_by_cause() -> None:
    async def scenario() -> None:
        cluster = make_cluster(4)
        node = cluster.transport(0, max_message_bytes=64 * 1024)
        await node.start()
        lock_hash, key2, key3 = node.lock_hash, cluster.keys[1], cluster.keys[2]
        good = dict(lock_hash=lock_hash, sender=2)
        value = make_value(b"{}")
        bad_qbft = PeerPayload(
            qbft=Envelope(
                Message(MsgType.PREPARE, DUTY, 2, 1, value.hash, signature="0x" + "00" * 64),
            )
        ).to_dict(encode_json=True)
        wrong_types = partials(1).to_dict(encode_json=True)
        wrong_types["partials"]["partials"][0]["signature"] = [7]
        cases: list[tuple[bytes | str, str]] = [
            (b"garbage", "malformed"),
            ("a text frame", "malformed"),
            (MAGIC + b"\x40" + b"\x01" * 64 + b"{not json", "malformed"),
            (MAGIC + b"\x40" + b"\x01" * 64 + b'{"cluster": 1}', "malformed"),
            (forge(key2, signed=False, **good), "unsigned"),
            (forge(key2, lock_hash="0x" + "00" * 32, sender=2), "wrong_cluster"),
            (forge(key2, lock_hash=lock_hash, sender=9), "unknown_peer"),
            (forge(cluster.keys[0], lock_hash=lock_hash, sender=1), "unknown_peer"),
            (forge(key2, to=3, **good), "wrong_recipient"),
            (forge(key3, **good), "bad_signature"),
            (forge(key2, ts=int(time.time() * 1000) - 120_000, **good), "stale"),
            (forge(key2, seq=5, **good), "delivered"),
            (forge(key2, seq=5, **good), "replayed"),
            (forge(key2, seq=4, **good), "replayed"),
            (forge(key2, seq=9, start=999, **good), "replayed"),  # an older incarnation
            (forge(key2, seq=1, start=2_000, inc="beef", **good), "delivered"),  # the sender restarted
            (
                forge(key2, seq=2, start=2_000, inc="beef", data={"qbft": None, "partials": None}, **good),
                "malformed",
            ),
            (forge(key2, seq=3, start=2_000, inc="beef", data=wrong_types, **good), "malformed"),
            (forge(key2, seq=4, start=2_000, inc="beef", data=[1, 2], **good), "malformed"),
            (forge(key2, seq=5, start=2_000, inc="beef", data=bad_qbft, **good), "bad_qbft_signature"),
            (forge(key2, seq=6, start=2_000, inc="beef", kind="pong", data={"id": "x"}, **good), "replayed"),
            (forge(key2, seq=7, start=2_000, inc="beef", **good), "delivered"),
        ]
        try:
            async with aiohttp.ClientSession() as session:
                url = f"ws://127.0.0.1:{node.port}{PEER_PATH}"
                async with session.ws_connect(url, headers=handshake(cluster, 2, 1)) as ws:
                    for number, (frame, cause) in enumerate(cases):
                        before = dict(node.dropped), node.delivered
                        if isinstance(frame, str):
                            await ws.send_str(frame)
                        else:
                            await ws.send_bytes(frame)
                        if cause == "delivered":
                            await until(
                                lambda before=before: node.delivered == before[1] + 1, what=f"case {number}"
                            )
                        else:
                            await until(
                                lambda before=before, cause=cause: (
                                    node.dropped[cause] == before[0][cause] + 1
                                ),
                                what=f"case {number}: {cause}",
                            )
                        assert sum(node.dropped.values()) == sum(before[0].values()) + (cause != "delivered")
                    # a ping is answered on the same connection with a pong signed by node 1
                    await ws.send_bytes(
                        forge(
                            key2,
                            seq=8,
                            start=2_000,
                            inc="beef",
                            kind="ping",
                            data={"id": "p1", "t1": 1},
                            **good,
                        )
                    )
                    reply = await ws.receive_bytes(timeout=5)
                    assert reply[:5] == MAGIC + b"\x40"
                    cluster.keys[0].public_key().verify(reply[5:69], FRAME_DOMAIN + reply[69:])
                    pong = json.loads(reply[69:])
                    assert pong["kind"] == "pong" and pong["data"]["id"] == "p1" and pong["to"] == 2
                    # an oversized frame: counted, and the connection is closed (WebSocket cannot skip it)
                    await ws.send_bytes(
                        forge(key2, seq=9, start=2_000, inc="beef", data={"x": "y" * 100_000}, **good)
                    )
                    await until(lambda: node.dropped["oversized"] == 1, what="oversized")
                    closing = await ws.receive(timeout=5)
                    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                # a new connection works again
                async with session.ws_connect(url, headers=handshake(cluster, 2, 1)) as ws:
                    await ws.send_bytes(forge(key2, seq=10, start=2_000, inc="beef", **good))
                    await until(lambda: node.delivered == 4, what="delivery after reconnect")
            assert [tag for _, tag in tags(cluster.inbox[0])] == [5, 1, 7, 10]
            # authenticated frames: 4 delivered, 3 malformed payloads, 1 bad QBFT signature, the ping, the pong
            assert node.stats()["peers"][2]["received"] == 10
        finally:
            await node.stop()

    run(scenario())


def test_a_down_peer_never_blocks_the_others_and_a_restart_is_not_a_replay() -> None:
    async def scenario() -> None:
        cluster = make_cluster(4)
        nodes = [cluster.transport(i, queue_limit=5) for i in range(3)]  # node 4 is down
        await start_all(nodes)
        try:
            started = time.monotonic()
            for k in range(20):
                nodes[0].broadcast(partials(k))
                await until(  # live peers' queues drain; the down peer's fills
                    lambda: all(nodes[0].stats()["peers"][i]["queued"] == 0 for i in (2, 3)), what="drained"
                )
            await until(
                lambda: len(cluster.inbox[1]) == 20 and len(cluster.inbox[2]) == 20,
                what="delivery",
                explain=lambda: ([tags(box) for box in cluster.inbox], [t.stats() for t in nodes]),
            )
            assert time.monotonic() - started < 5.0
            down = nodes[0].stats()["peers"][4]
            assert not down["connected"] and down["queued"] == 5 and down["dropped_queue_full"] == 15
            assert down["connect_failures"] >= 1 and down["last_error"]
            # node 4 comes up: the 5 newest queued frames arrive, in order
            late = cluster.transport(3)
            await late.start()
            nodes.append(late)
            await until(lambda: len(cluster.inbox[3]) == 5, what="queued frames after the peer came up")
            assert tags(cluster.inbox[3]) == [(1, k) for k in range(15, 20)]
            # node 2 restarts: a new incarnation, seq from 1 again; nobody takes it for a replay
            await nodes[1].stop()
            time.sleep(0.002)  # a later start time
            nodes[1] = cluster.transport(1)
            await nodes[1].start()
            await until(lambda: {1, 3, 4} <= nodes[1].connected(), what="restarted node reconnected")
            await until(lambda: 2 in nodes[0].connected(), what="node 1 redialled node 2")
            nodes[1].broadcast(partials(77))
            nodes[0].send(2, partials(78))
            await until(
                lambda: all((2, 77) in tags(cluster.inbox[i]) for i in (0, 2, 3)),
                what="after restart",
                explain=lambda: ([tags(box) for box in cluster.inbox], [t.stats() for t in nodes]),
            )
            await until(
                lambda: (1, 78) in tags(cluster.inbox[1]),
                what="to the restarted node",
                explain=lambda: [t.stats() for t in nodes],
            )
            for t in nodes:
                assert t.stats()["dropped"]["replayed"] == 0
        finally:
            await stop_all(nodes)

    run(scenario())


def test_frames_older_than_max_age_are_not_sent() -> None:
    async def scenario() -> None:
        cluster = make_cluster(3)
        first = cluster.transport(0, max_age_ms=200)
        await first.start()
        first.send(2, partials(1))
        await until(lambda: first.stats()["peers"][2]["connect_failures"] >= 1, what="a failed dial")
        time.sleep(0.3)
        second = cluster.transport(1)
        await second.start()
        try:
            await until(lambda: first.stats()["peers"][2]["expired"] == 1, what="expiry")
            assert cluster.inbox[1] == []
        finally:
            await stop_all([first, second])

    run(scenario())


def test_tls_pinned_to_the_lock_identity_keys() -> None:
    """Peer traffic is encrypted (issue 16, Medium): TLS 1.3 with each node's certificate over its lock
    identity key; a dialler accepts only the key the lock lists for the operator it dialled."""
    from covalidator.runtime.peer_tls import client_context, server_context

    async def scenario() -> None:
        cluster = make_cluster(3)
        nodes = [
            cluster.transport(i, server_ssl=server_context(cluster.keys[i]), client_ssl=client_context())
            for i in range(3)
        ]
        await start_all(nodes)
        try:
            nodes[2].broadcast(partials(5))
            await until(
                lambda: len(cluster.inbox[0]) == 1 and len(cluster.inbox[1]) == 1,
                what="over TLS",
                explain=lambda: [t.stats() for t in nodes],
            )
            assert nodes[0].stats()["peers"][3]["url"].startswith("wss://")
            # a plain-text dial to a TLS listener fails
            async with aiohttp.ClientSession() as session:
                try:
                    await session.ws_connect(
                        f"ws://127.0.0.1:{cluster.ports[0]}{PEER_PATH}",
                        timeout=aiohttp.ClientWSTimeout(ws_close=2),
                    )
                except (TimeoutError, aiohttp.ClientError):
                    pass
                else:
                    raise AssertionError("a plain-text WebSocket was accepted by a TLS listener")
        finally:
            await stop_all(nodes)

    run(scenario())


def test_an_impostor_at_a_peers_address_gets_no_frame() -> None:
    """Someone else listening at operator 2's address (with TLS and a key of its own, or with operator
    2's handshake answered as if it were it): node 1 drops the connection right after the TLS
    handshake, counted as tls_key_mismatch, and sends it nothing; the real peer, back at its address,
    is then reached as usual."""
    from covalidator.runtime.peer_tls import client_context, server_context

    async def scenario() -> None:
        cluster = make_cluster(2)
        dialler = cluster.transport(
            0, server_ssl=server_context(cluster.keys[0]), client_ssl=client_context()
        )
        impostor_key = Ed25519PrivateKey.generate()
        received: list[bytes] = []

        async def accept(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                received.append(msg.data)
            return ws

        app = web.Application()
        app.router.add_get(PEER_PATH, accept)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.SockSite(
            runner, listening_socket(cluster.ports[1]), ssl_context=server_context(impostor_key)
        )
        await site.start()
        await dialler.start()
        try:
            dialler.send(2, partials(7))
            await until(lambda: dialler.dropped["tls_key_mismatch"] >= 2, what="the impostor refused twice")
            assert received == [] and dialler.stats()["peers"][2]["connected"] is False
            await runner.cleanup()  # the impostor goes; the real operator 2 comes back
            real = cluster.transport(
                1, server_ssl=server_context(cluster.keys[1]), client_ssl=client_context()
            )
            await real.start()
            try:
                await until(lambda: len(cluster.inbox[1]) == 1, what="the real peer reached")
            finally:
                await real.stop()
        finally:
            await dialler.stop()
            await runner.cleanup()

    run(scenario())


def test_strangers_get_no_connection_and_cannot_keep_a_peer_out() -> None:
    """The attack of the security review: idle connections held at a node's peer port while a peer
    restarts. Without a valid handshake there is no upgrade (401, counted): nothing is held, and the
    restarted peer connects both ways. A handshake signed by another operator's key, addressed to
    another node, or replayed is refused too; a frame claiming another sender on an authenticated
    connection is dropped."""

    async def scenario() -> None:
        cluster = make_cluster(4)
        nodes = [cluster.transport(i) for i in range(4)]
        await start_all(nodes)
        url = f"ws://127.0.0.1:{cluster.ports[0]}{PEER_PATH}"
        try:
            async with aiohttp.ClientSession() as session:
                refused = 0
                for headers in [{}] * 16 + [
                    handshake(cluster, 2, 1, key=cluster.keys[2]),  # signed by operator 3's key
                    handshake(cluster, 2, 3),  # addressed to node 3
                    {HANDSHAKE_HEADER: "2.1.0.00"},
                ]:
                    try:
                        await session.ws_connect(url, headers=headers)
                    except aiohttp.WSServerHandshakeError as error:
                        refused += error.status == 401
                assert refused == 19 and nodes[0].dropped["unauthenticated"] == 19
                assert nodes[0].stats()["inbound_connections"] == 3  # the three operators only
                token = handshake(cluster, 4, 1)
                async with session.ws_connect(url, headers=token) as ws:
                    await ws.send_bytes(forge(cluster.keys[1], lock_hash=nodes[0].lock_hash, sender=2))
                    await until(lambda: nodes[0].dropped["wrong_sender"] == 1, what="wrong sender")
                    try:
                        await session.ws_connect(url, headers=token)  # the same handshake again
                    except aiohttp.WSServerHandshakeError as error:
                        assert error.status == 401
                    else:
                        raise AssertionError("a replayed handshake was accepted")
                # operator 2 restarts while strangers keep trying: it is connected both ways again
                await nodes[1].stop()
                nodes[1] = cluster.transport(1)
                await nodes[1].start()
                for _ in range(16):
                    with contextlib.suppress(aiohttp.WSServerHandshakeError):
                        await session.ws_connect(url)
                await until(
                    lambda: {2, 3, 4} <= nodes[0].connected() and {1, 3, 4} <= nodes[1].connected(),
                    what="the restarted peer connected both ways",
                )
                nodes[1].broadcast(partials(42))
                await until(lambda: (2, 42) in tags(cluster.inbox[0]), what="delivery after the restart")
        finally:
            await stop_all(nodes)

    run(scenario(), 60)


def test_frames_relayed_on_a_dialled_connection_are_dropped_and_cannot_reorder_a_sender() -> None:
    """Issue 16 (Low): a relayed broadcast (a higher seq) made the sender's earlier unicast frames drop
    as replays. Frames are bound to the connection they arrive on: on an accepted one only its
    authenticated operator's (`wrong_sender`), on one this node dialled only that peer's pongs. So
    operator 2, answering on node 1's dialled connection, can relay neither operator 3's broadcast nor a
    message of its own, and node 1 then takes operator 3's earlier unicast as usual."""
    from covalidator.runtime.peers import _Inbound

    cluster = make_cluster(3)
    nodes = [cluster.transport(i) for i in range(3)]
    unicast = nodes[2]._payload_frame(1, partials(1))  # operator 3 -> node 1, seq n
    broadcast = nodes[2]._payload_frame(0, partials(2))  # operator 3 -> everyone, seq n + 1
    own = nodes[1]._payload_frame(0, partials(3))  # operator 2's own message
    assert unicast is not None and broadcast is not None and own is not None
    dialled_to_2 = _Inbound("ws://peer-2", 2, pongs_only=True)
    for frame in (broadcast, own):
        assert nodes[0].receive_frame(frame, dialled_to_2) is None
    assert nodes[0].dropped["wrong_sender"] == 2 and cluster.inbox[0] == []
    accepted_from_3 = _Inbound("127.0.0.1", 3)
    assert nodes[0].receive_frame(broadcast, _Inbound("127.0.0.1", 2)) is None  # on 2's own connection
    assert nodes[0].dropped["wrong_sender"] == 3
    nodes[0].receive_frame(unicast, accepted_from_3)  # the earlier seq: not a replay
    nodes[0].receive_frame(broadcast, accepted_from_3)
    assert tags(cluster.inbox[0]) == [(3, 1), (3, 2)] and nodes[0].dropped["replayed"] == 0


def test_a_frame_nested_past_the_json_bound_is_dropped_as_malformed() -> None:
    """A signed frame whose data nests 1,200 levels (json parses it; the trace encoder did not, and
    stopped the node) is dropped as malformed before anything reads it; 60 levels still parse."""
    import json as json_module

    from covalidator.runtime.json_depth import MAX_JSON_DEPTH, too_deep

    cluster = make_cluster(3)
    nodes = [cluster.transport(i) for i in range(3)]
    from covalidator.model.node.codec import to_json

    def with_message(message: object) -> bytes:
        data = to_json(partials(1))
        data["partials"]["partials"][0]["message"] = message  # typed Any: any JSON passes the shape check
        return nodes[1]._frame("msg", 1, data)

    assert nodes[0].receive_frame(with_message(json_module.loads("[" * 1200 + "]" * 1200))) is None
    assert nodes[0].dropped["malformed"] == 1 and cluster.inbox[0] == []
    nodes[0].receive_frame(with_message(json_module.loads("[" * 50 + "]" * 50)))  # + 5 levels of frame
    assert len(cluster.inbox[0]) == 1  # within the bound: delivered
    assert too_deep(json_module.loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)))
    assert not too_deep(json_module.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH))
    assert not too_deep({"a": [{"b": 1}] * 5000})  # wide is fine
    # every depth around the bound, of lists, objects and both, beside shallow siblings
    for repeats in range(MAX_JSON_DEPTH // 2 - 2, MAX_JSON_DEPTH + 4):
        for opening, closing, per_repeat in (("[", "]", 1), ('{"k":', "}", 1), ('[{"k":', "}]", 2)):
            value = json_module.loads(opening * repeats + "0" + closing * repeats)
            nested = per_repeat * repeats
            assert too_deep(value) == (nested > MAX_JSON_DEPTH), (opening, nested)
            assert too_deep({"wide": [1, {}, []], "deep": value}) == (nested + 1 > MAX_JSON_DEPTH)
    assert not too_deep(7) and not too_deep("x") and not too_deep(None)


def test_a_burst_of_frames_already_read_gives_the_loop_a_turn_every_few_frames() -> None:
    """aiohttp hands out the frames it has already read without suspending (and parses more as they are
    taken): a peer's burst would hold the event loop, and the VC it serves, for a whole socket read of
    frame checks. The loop's other tasks get a turn every FRAMES_PER_TURN frames."""
    import aiohttp
    from aiohttp import WSMsgType

    from covalidator.runtime.peers import FRAMES_PER_TURN, _Inbound

    class Burst:
        """A WebSocket with `n` frames already read."""

        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Burst:
            return self

        async def __anext__(self) -> aiohttp.WSMessage:
            if not self.n:
                raise StopAsyncIteration
            self.n -= 1
            return aiohttp.WSMessage(WSMsgType.BINARY, b"not a frame", None)

        async def send_bytes(self, data: bytes) -> None:
            raise AssertionError("no frame of the burst asks for an answer")

    async def scenario() -> tuple[int, int]:
        node = make_cluster(4).transport(0)
        turns = [0]

        async def other_task() -> None:  # the VC's request, say
            while True:
                turns[0] += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        before = turns[0]
        await node._serve_frames(Burst(320), _Inbound("peer 2", 2))  # type: ignore[arg-type]
        task.cancel()
        return turns[0] - before, node.dropped["malformed"]

    turns, dropped = run(scenario())
    assert dropped == 320
    assert turns >= 320 // FRAMES_PER_TURN - 1
