"""The peer transport: authenticated, long-lived WebSocket connections between the co-validators.

Decides how bytes travel between co-validators (or the operators of a DKG ceremony: any `Mesh`, with
its own payload `decode`) and which received messages are genuine: it drops and
counts (by cause, `DropCause`) everything that is not a fresh, well-formed message of this cluster
signed by the operator it claims to come from, before the model sees anything. It decides nothing
about the protocol: payloads are the model's `PeerPayload`s, delivered in order per sender.

Topology: every node listens on its `host:port` (path `PEER_PATH`) and dials every other operator at
the address in the cluster lock. A connection is authenticated BEFORE the WebSocket upgrade: the
dialler sends `X-Covalidator-Peer: <from>.<to>.<ts ms>.<signature>`, its identity key's Ed25519
signature over b"covalidator/peer-handshake/v1\n" + lock hash + "<from>.<to>.<ts>". The listener
upgrades only a handshake from an operator of the lock, addressed to itself, at most 30 s old and newer
than that operator's last one (a recorded handshake cannot be replayed); anything else gets 401 and is
counted (`unauthenticated`), so strangers can hold no connection. One connection per operator: a newer
one replaces the older (the peer redialled); every frame on it must come from that operator
(`wrong_sender`). No permessage-deflate. A peer counts as connected when both directions are up. A node sends only on the connections it dialled and receives on the
ones it accepted (pongs come back on the dialled one), so each pair holds two connections and there is
no dial race. Each peer has its own task and bounded queue (oldest dropped first), so a peer that is
down or slow never blocks the others; a lost connection is redialled with exponential backoff and
jitter. Messages queued longer than `max_age_ms` are not sent (the receiver would drop them as stale).
TLS (runtime/peer_tls.py; `covalidator run` turns it on unless --p2p-no-tls): `server_ssl` on the
listening side, `client_ssl` on the dialling side (`wss://`), where the server's certificate must be
over the identity key the lock lists for the operator dialled (`pin_keys`), or no frame is sent.

A frame (one binary WebSocket message):

    b"cvp1" | sig_len (1 byte: 64, or 0 = unsigned) | Ed25519 signature | body (UTF-8 JSON)
    body = {"cluster": lock hash, "from": share index, "to": share index or 0 (broadcast),
            "inc": incarnation id, "start": incarnation start (ms), "seq": n, "ts": sent at (ms),
            "kind": "msg" | "ping" | "pong", "data": PeerPayload JSON | ping/pong fields}

A partial signature in "data" may be in the ZCash uncompressed encoding (192 bytes, "0x" + 384 hex
digits) instead of the compressed one: a node sends its own partials that way (it decoded them when
its VC posted them), and the receiver checks the point is on the curve and hands the model the
compressed encoding, with the decoded point remembered (bls.signature_from_uncompressed), so
combining a peer's partial costs no square root. A partial that is not on the curve fails the frame.

The signature covers b"covalidator/peer/v1\\n" + body with the sender's identity key (the Ed25519 key
the lock lists for that operator). `seq` grows by one per frame within an incarnation (a process
run: a random id and its start time); a receiver accepts from a sender only frames with a seq above
the last one of the same incarnation, or from an incarnation that started later (a restart). Older
incarnations and repeated seqs are replays. Frames whose `ts` is further than `max_age_ms` from the
receiver's clock are stale (this bounds replays to a receiver that restarted and forgot the seqs).
Pongs are exempt from the seq rule (they travel on the other connection) and bound to an outstanding
ping's random id instead.

QBFT signatures: the model treats `Message.signature` as opaque, but justifications carry other
senders' messages, so each QBFT `Message` is signed by its own sender: the transport signs every
message of an outgoing envelope whose sender is this node, over
b"covalidator/qbft-signature/v1\\n" + lock hash + `qbft_messages.signing_bytes(message)` (the lock hash
binds it to this cluster), and verifies every message of a received envelope (main message and each
justification) against the identity key of its `sender`; one failure drops the whole envelope.

Measured per peer: connectivity, round-trip time and clock offset (NTP-style from signed pings that
carry timestamps: offset = peer clock - ours, taken from the lowest-RTT recent sample). `stats()`
returns them with the drop counters for the metrics and health endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from enum import Enum, StrEnum
from types import UnionType
from typing import Any, Final, Protocol, Union, get_args, get_origin, get_type_hints

import aiohttp
from aiohttp import WSMsgType, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from covalidator.model.cluster.lock import Operator, identity_public_key
from covalidator.model.crypto import bls
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.codec import dumps
from covalidator.model.node.events import PartialSignature, PartialSignatures, PeerPayload, PoolPartial
from covalidator.model.qbft.messages import NO_HASH, NOT_PREPARED, Envelope, Message, MsgType, signing_bytes
from covalidator.runtime.json_depth import loads_bounded
from covalidator.runtime.peer_tls import pinned_key_matches

log = logging.getLogger("covalidator.peers")

PEER_PATH: Final = "/covalidator/peer/v1"
MAGIC: Final = b"cvp1"
SIGNATURE_BYTES: Final = 64
FRAME_DOMAIN: Final = b"covalidator/peer/v1\n"
QBFT_DOMAIN: Final = b"covalidator/qbft-signature/v1\n"
HANDSHAKE_DOMAIN: Final = b"covalidator/peer-handshake/v1\n"
HANDSHAKE_HEADER: Final = "X-Covalidator-Peer"  # "<from>.<to>.<ts ms>.<Ed25519 signature hex>"
HANDSHAKE_MAX_AGE_MS: Final = 30_000
# aiohttp hands out the frames it has already read without suspending, and parses more as they are
# taken: a peer's burst would hold the event loop, and the VC it serves, for a whole socket read of
# frame checks (measured: 109 us for a 757-byte partials frame, so ~38 ms for a 256 KiB read of them;
# a QBFT frame has a signature per message on top). The loop gets a turn every so many frames.
FRAMES_PER_TURN: Final = 16
_UINT64: Final = 2**64


class DropCause(StrEnum):
    """Why a received frame never reached the model (the metrics label)."""

    OVERSIZED = "oversized"  # larger than max_message_bytes (the connection is closed, as WebSocket must)
    MALFORMED = "malformed"  # not a frame, not JSON, missing/ill-typed fields, not a PeerPayload
    UNSIGNED = "unsigned"  # a frame without a signature
    WRONG_CLUSTER = "wrong_cluster"  # another lock hash
    UNKNOWN_PEER = "unknown_peer"  # "from" is not another operator of this cluster
    WRONG_RECIPIENT = "wrong_recipient"  # addressed to another node
    BAD_SIGNATURE = "bad_signature"  # the signature is not the claimed sender's
    STALE = "stale"  # sent too long ago (or in the future) by the receiver's clock
    REPLAYED = (
        "replayed"  # seq not above the last of its incarnation, an older incarnation, or a pong for no ping
    )
    BAD_QBFT_SIGNATURE = (
        "bad_qbft_signature"  # a QBFT message inside the envelope is not signed by its sender
    )
    UNAUTHENTICATED = "unauthenticated"  # a connection without a valid handshake: refused before upgrade
    WRONG_SENDER = "wrong_sender"  # a frame from another operator than the connection authenticated
    TLS_KEY_MISMATCH = "tls_key_mismatch"  # a dialled peer whose TLS certificate is not its lock key


class _Malformed(Exception):
    pass


class Mesh(Protocol):
    """Who the transport connects, and what binds every handshake, frame and signature to one cluster:
    a `ClusterLock` (its lock hash), or a DKG ceremony (a hash of its definition)."""

    @property
    def lock_hash(self) -> bytes: ...

    @property
    def operators(self) -> tuple[Operator, ...]: ...

    @property
    def nodes(self) -> int: ...


# ---- payload shape check: dataclasses-json coerces rather than checks (a list becomes the string "[7]"),
# so the raw JSON is checked against the dataclasses' type hints first; the model never sees wrong types.

Check = Callable[[Any], bool]
_CHECKS: dict[Any, Check] = {}


def _json_conforms(value: Any, hint: Any) -> bool:
    """Is `value` (parsed JSON) the dataclasses-json encoding of a value of type `hint`?"""
    return _check(hint)(value)


def _check(hint: Any) -> Check:
    """The conformance check of `hint`, built once per hint (its type hints, fields and arguments read
    then, not per value of every peer frame)."""
    check = _CHECKS.get(hint)
    if check is None:
        built: list[Check] = []
        _CHECKS[hint] = lambda value: built[0](value)  # a type that holds itself checks through this
        built.append(_build_check(hint))
        check = _CHECKS[hint] = built[0]
    return check


def _build_check(hint: Any) -> Check:
    if hint is Any:
        return lambda value: True
    origin = get_origin(hint)
    if origin in (Union, UnionType):
        options = tuple(_check(arg) for arg in get_args(hint))
        return lambda value: any(option(value) for option in options)
    if hint is type(None):
        return lambda value: value is None
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            each = _check(args[0])
            return lambda value: isinstance(value, list) and all(each(item) for item in value)
        checks = tuple(_check(arg) for arg in args)
        return lambda value: (
            isinstance(value, list)
            and len(value) == len(checks)
            and all(check(item) for check, item in zip(checks, value, strict=True))
        )
    if not isinstance(hint, type):
        return lambda value: False
    if issubclass(hint, Enum):
        members = tuple((type(m.value), m.value) for m in hint)
        return lambda value: any(type(value) is kind and value == member for kind, member in members)
    if hint is int:
        return lambda value: type(value) is int and 0 <= value < _UINT64
    if hint is bytes:  # hex, as the qbft_messages encoders write it (non-hex fails in from_dict)
        return lambda value: isinstance(value, str) and len(value) % 2 == 0
    if hint is str:
        return lambda value: isinstance(value, str)
    if hint is bool:
        return lambda value: isinstance(value, bool)
    if is_dataclass(hint):
        hints = get_type_hints(hint)
        required = frozenset(
            f.name for f in fields(hint) if f.default is MISSING and f.default_factory is MISSING
        )
        named = tuple((f.name, _check(hints[f.name])) for f in fields(hint))
        return lambda value: (
            isinstance(value, dict)
            and required <= value.keys()
            and all(check(value[name]) for name, check in named if name in value)
        )
    return lambda value: False


def _duty(data: Any) -> DutyId:
    return DutyId(data["slot"], DutyKind(data["kind"]))


def _message(data: Any) -> Message:
    return Message(
        type=MsgType(data["type"]),
        instance=_duty(data["instance"]),
        sender=data["sender"],
        round=data["round"],
        value_hash=data.get("value_hash", NO_HASH),
        prepared_round=data.get("prepared_round", NOT_PREPARED),
        prepared_hash=data.get("prepared_hash", NO_HASH),
        signature=data.get("signature", ""),
    )


UNCOMPRESSED_HEX: Final = 2 + 2 * 192  # "0x" + a G2 point's uncompressed encoding


def _compressed(signature: Any) -> Any:
    """A partial's signature as the model takes it (compressed): a frame may carry the uncompressed
    encoding (`_uncompressed`), checked here to be on the curve and remembered decoded (bls); anything
    else is the model's to judge."""
    if isinstance(signature, str) and len(signature) == UNCOMPRESSED_HEX and signature.startswith("0x"):
        return "0x" + bls.signature_from_uncompressed(bytes.fromhex(signature[2:])).hex()
    return signature


def _uncompressed(payload: PeerPayload) -> PeerPayload:
    """Partials as sent: each signature this process has decoded (its own VC's, checked when the VC
    posted it) in the uncompressed encoding, which a peer reads with no square root (~10 us against
    ~60 us of the step thread per partial it combines); 96 more bytes a partial."""
    batch = payload.partials
    if batch is None:
        return payload
    items = []
    for item in batch.partials:
        try:
            point = bls.signature_uncompressed(bytes.fromhex(item.signature[2:]))
        except (ValueError, TypeError):
            point = None
        items.append(item if point is None else replace(item, signature="0x" + point.hex()))
    return replace(payload, partials=replace(batch, partials=tuple(items)))


def payload_from_json(data: Any) -> PeerPayload:
    """`PeerPayload.from_dict(data)` for JSON that `_json_conforms` to it, built field by field:
    dataclasses-json's generic decoding took ~1 s of CPU per node per epoch at 1,000 validators
    (tests/test_runtime_peers.py checks both agree)."""
    qbft, partials, pool = data.get("qbft"), data.get("partials"), data.get("pool")
    return PeerPayload(
        qbft=None
        if qbft is None
        else Envelope(
            message=_message(qbft["message"]),
            body=None if qbft.get("body") is None else bytes.fromhex(qbft["body"]),
            justification=tuple(_message(m) for m in qbft.get("justification", ())),
        ),
        partials=None
        if partials is None
        else PartialSignatures(
            duty=_duty(partials["duty"]),
            partials=tuple(
                PartialSignature(
                    p["pubkey"], p["signing_root"], _compressed(p["signature"]), p.get("message")
                )
                for p in partials["partials"]
            ),
            waiting=bool(partials.get("waiting", False)),
        ),
        pool=None
        if pool is None
        else tuple(
            PoolPartial(
                DutyKind(p["kind"]), p["pubkey"], p["message"], p["signing_root"], p["share"], p["signature"]
            )
            for p in pool
        ),
    )


def decode_payload(data: Any, nodes: int) -> PeerPayload:
    """A `PeerPayload` from its JSON, type-checked; _Malformed otherwise."""
    if not _json_conforms(data, PeerPayload):
        raise _Malformed("not a PeerPayload (a field is missing or has the wrong type)")
    if sum(data.get(k) is not None for k in ("qbft", "partials", "pool")) != 1:
        raise _Malformed("a PeerPayload holds exactly one of qbft, partials, pool")
    try:
        payload = payload_from_json(data)
    except Exception as error:  # non-hex bytes, and anything the shape check cannot see
        raise _Malformed(f"not a PeerPayload: {type(error).__name__}") from None
    if payload.qbft is not None and len(payload.qbft.justification) > 2 * nodes:
        raise _Malformed("more justification messages than two quorums can hold")
    return payload


# ---- per-peer state ------------------------------------------------------------------------------------


@dataclass
class _Incarnation:
    start: int
    inc: str
    seq: int


@dataclass
class _Peer:
    share_index: int
    public_key: Ed25519PublicKey
    url: str
    queue_limit: int
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)  # (monotonic enqueue time, frame)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ws: aiohttp.ClientWebSocketResponse | None = None
    task: asyncio.Task[None] | None = None
    incarnation: _Incarnation | None = None
    pings: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (monotonic, wall ms)
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=8))  # (rtt, offset)
    rtt_ms: float | None = None
    rtt_smoothed_ms: float | None = None
    offset_ms: float | None = None
    inbound: int = 0
    handshake_ts: int = -1  # the newest handshake this operator connected with (replays are older)
    connected_since: float | None = None
    last_received_ms: int | None = None
    sent: int = 0
    received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    dropped_queue_full: int = 0
    expired: int = 0
    connects: int = 0
    connect_failures: int = 0
    last_error: str = ""

    def stats(self) -> dict[str, Any]:
        return {
            "share_index": self.share_index,
            "url": self.url,
            "connected": self.ws is not None and not self.ws.closed,
            "inbound_connections": self.inbound,
            "last_received_ms": self.last_received_ms,
            "rtt_ms": self.rtt_ms,
            "rtt_smoothed_ms": self.rtt_smoothed_ms,
            "clock_offset_ms": self.offset_ms,
            "sent": self.sent,
            "received": self.received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "queued": len(self.queue),
            "dropped_queue_full": self.dropped_queue_full,
            "expired": self.expired,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "last_error": self.last_error,
        }


@dataclass
class _Inbound:
    remote: str
    sender: int | None = None
    pongs_only: bool = False  # a connection this node dialled: the peer only answers pings on it


def _wall_ms() -> float:
    return time.time() * 1000.0


class PeerTransport:
    """The node's side of the peer mesh. `node_index` is this node's 0-based position in the lock
    (its share index is node_index + 1); `send(to, ...)` and `on_message(sender, ...)` use share
    indices 1..N, as the model's `Send.to` and `PeerMessage.sender` do."""

    def __init__(
        self,
        lock: Mesh,
        node_index: int,
        identity_key: Ed25519PrivateKey,
        host: str,
        port: int,
        on_message: Callable[[int, Any, int], None],  # (sender, decoded payload, frame bytes)
        *,
        decode: Callable[[Any, int], Any] = decode_payload,  # JSON -> payload, or raise ValueError
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        addresses: Mapping[int, str] | None = None,
        max_message_bytes: int = 16 * 2**20,
        queue_limit: int = 1024,
        max_age_ms: int = 60_000,
        ping_interval_s: float = 5.0,
        heartbeat_s: float = 10.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        max_inbound: int | None = None,
        pin_keys: bool = True,
        wall_ms: Callable[[], float] = _wall_ms,  # the node's wall clock (a skewed one in tests)
    ) -> None:
        self._wall_ms = wall_ms
        self._decode = decode
        if not 0 <= node_index < lock.nodes:
            raise ValueError(f"node index {node_index} is not in the lock's 0..{lock.nodes - 1}")
        if identity_public_key(identity_key) != lock.operators[node_index].identity_public_key:
            raise ValueError(f"the identity key is not operator {node_index}'s key in the cluster lock")
        self.lock_hash = "0x" + lock.lock_hash.hex()
        self._lock_hash_bytes = lock.lock_hash
        self.nodes = lock.nodes
        self.share_index = node_index + 1
        self._key = identity_key
        self.host, self.port = host, port
        self._sock = sock
        self.on_message = on_message
        self._server_ssl, self._client_ssl = server_ssl, client_ssl
        self.pin_keys = pin_keys  # with client_ssl: the server's certificate must be over its lock key
        self.max_message_bytes = max_message_bytes
        self.max_age_ms = max_age_ms
        self.ping_interval_s = ping_interval_s
        self.heartbeat_s = heartbeat_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.max_inbound = max_inbound if max_inbound is not None else lock.nodes  # one per operator
        scheme = "wss" if client_ssl is not None else "ws"
        self._keys: dict[int, Ed25519PublicKey] = {
            i + 1: Ed25519PublicKey.from_public_bytes(op.identity_public_key)
            for i, op in enumerate(lock.operators)
        }
        overrides = dict(addresses or {})
        self._peers: dict[int, _Peer] = {
            i + 1: _Peer(
                i + 1,
                self._keys[i + 1],
                f"{scheme}://{overrides.get(i + 1, op.address)}{PEER_PATH}",
                queue_limit,
            )
            for i, op in enumerate(lock.operators)
            if i != node_index
        }
        self.incarnation = secrets.token_hex(8)
        self.started_ms = int(self._wall_ms())
        self._seq = 0
        self._rng = random.Random(os.urandom(8))
        self.dropped: dict[str, int] = {cause.value: 0 for cause in DropCause}
        self.delivered = 0
        self.callback_errors = 0
        self.send_refused: dict[str, int] = {"oversized": 0, "unknown_peer": 0, "unsigned_justification": 0}
        self._verified: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._inbound: dict[web.WebSocketResponse, _Inbound] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then dial every peer (returns at once; connections come up in the background)."""
        app = web.Application()
        app.router.add_get(PEER_PATH, self._accept)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        if self._sock is not None:
            site: web.BaseSite = web.SockSite(self._runner, self._sock, ssl_context=self._server_ssl)
        else:
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._server_ssl)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._session = aiohttp.ClientSession()
        for peer in self._peers.values():
            peer.task = asyncio.create_task(self._dial(peer), name=f"peer-{peer.share_index}")

    async def stop(self) -> None:
        """Close every connection and stop listening (queued frames are dropped)."""
        self._stopping = True
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in list(self._inbound):
            with contextlib.suppress(Exception):
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"stopping")
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ---- sending ------------------------------------------------------------------------------------

    def broadcast(self, payload: PeerPayload | dict[str, Any]) -> int:
        """Queue `payload` for every other co-validator (signed once); returns how many queues took it."""
        frame = self._payload_frame(0, payload)
        if frame is None:
            return 0
        return sum(self._enqueue(peer, frame) for peer in self._peers.values())

    def send(self, to: int, payload: PeerPayload | dict[str, Any]) -> bool:
        """Queue `payload` for co-validator `to` (a share index); False if it cannot be sent."""
        peer = self._peers.get(to)
        if peer is None:
            self.send_refused["unknown_peer"] += 1
            log.warning("send to share index %s: not another operator of this cluster", to)
            return False
        frame = self._payload_frame(to, payload)
        return frame is not None and self._enqueue(peer, frame)

    def _payload_frame(self, to: int, payload: PeerPayload | dict[str, Any]) -> bytes | None:
        """A signed frame of a model `PeerPayload` or, on a mesh with its own `decode` (the DKG), of a
        JSON object."""
        if isinstance(payload, PeerPayload) and payload.qbft is not None:
            payload = replace(payload, qbft=self._sign_envelope(payload.qbft))
        elif isinstance(payload, PeerPayload):
            payload = _uncompressed(payload)
        frame = self._frame("msg", to, payload)  # codec.dumps writes a PeerPayload as to_json does
        if len(frame) > self.max_message_bytes:
            self.send_refused["oversized"] += 1
            log.error("peer message of %d bytes exceeds max_message_bytes: not sent", len(frame))
            return None
        return frame

    def _enqueue(self, peer: _Peer, frame: bytes) -> bool:
        if len(peer.queue) >= peer.queue_limit:
            peer.queue.popleft()
            peer.dropped_queue_full += 1
        peer.queue.append((time.monotonic(), frame))
        peer.wake.set()
        return True

    def _frame(self, kind: str, to: int, data: Any) -> bytes:
        self._seq += 1
        body = dumps(
            {
                "cluster": self.lock_hash,
                "from": self.share_index,
                "to": to,
                "inc": self.incarnation,
                "start": self.started_ms,
                "seq": self._seq,
                "ts": int(self._wall_ms()),
                "kind": kind,
                "data": data,
            }
        ).encode()
        return MAGIC + bytes([SIGNATURE_BYTES]) + self._key.sign(FRAME_DOMAIN + body) + body

    def _qbft_bytes(self, message: Message) -> bytes:
        return bytes(QBFT_DOMAIN + self._lock_hash_bytes + signing_bytes(message))

    def sign_message(self, message: Message) -> Message:
        """`message` with this node's identity signature (Ed25519 is deterministic: re-signing is stable)."""
        return replace(message, signature="0x" + self._key.sign(self._qbft_bytes(message)).hex())

    def _sign_envelope(self, envelope: Envelope) -> Envelope:
        def own(message: Message) -> Message:
            if message.sender == self.share_index:
                return self.sign_message(message)
            if not message.signature:
                self.send_refused["unsigned_justification"] += 1
                log.warning("outgoing justification holds an unsigned message of %s", message.sender)
            return message

        return replace(
            envelope, message=own(envelope.message), justification=tuple(map(own, envelope.justification))
        )

    def _verify_message(self, message: Message) -> bool:
        key = self._keys.get(message.sender)
        if (
            key is None
            or not message.signature.startswith("0x")
            or len(message.signature) != 2 + 2 * SIGNATURE_BYTES
        ):
            return False
        data = self._qbft_bytes(message)
        cache_key = (message.sender, message.signature)
        if self._verified.get(cache_key) == data:
            self._verified.move_to_end(cache_key)
            return True
        try:
            key.verify(bytes.fromhex(message.signature[2:]), data)
        except (InvalidSignature, ValueError):
            return False
        self._verified[cache_key] = data
        if len(self._verified) > 8192:
            self._verified.popitem(last=False)
        return True

    # ---- dialling -----------------------------------------------------------------------------------

    async def _dial(self, peer: _Peer) -> None:
        backoff = self.backoff_initial_s
        assert self._session is not None
        while not self._stopping:
            try:
                ws = await self._session.ws_connect(
                    peer.url,
                    ssl=self._client_ssl if self._client_ssl is not None else False,
                    heartbeat=self.heartbeat_s,
                    max_msg_size=self.max_message_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    headers={HANDSHAKE_HEADER: self.handshake(peer.share_index)},
                    compress=0,  # no permessage-deflate: a few KB must never inflate to megabytes
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                peer.connect_failures += 1
                peer.last_error = f"{type(error).__name__}: {error}"
                delay = backoff * self._rng.uniform(0.8, 1.2)
                backoff = min(backoff * 2, self.backoff_max_s)
                await asyncio.sleep(delay)
                continue
            if (
                self._client_ssl is not None
                and self.pin_keys
                and not pinned_key_matches(ws.get_extra_info("ssl_object"), peer.public_key)
            ):
                # someone else answered at the peer's address: not one frame goes to it
                self._drop(DropCause.TLS_KEY_MISMATCH, f"operator {peer.share_index} at {peer.url}")
                peer.last_error = "the TLS certificate is not over the identity key the lock lists"
                await ws.close()
                await asyncio.sleep(backoff * self._rng.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = self.backoff_initial_s
            peer.ws, peer.connects, peer.connected_since = ws, peer.connects + 1, time.monotonic()
            log.info("connected to peer %d at %s", peer.share_index, peer.url)
            reader = asyncio.create_task(self._read_dialled(peer, ws))
            pinger = asyncio.create_task(self._ping(peer, ws))
            try:
                await self._pump(peer, ws, reader)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                peer.last_error = f"{type(error).__name__}: {error}"
            finally:
                for task in (reader, pinger):
                    task.cancel()
                await asyncio.gather(reader, pinger, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await asyncio.shield(ws.close())
                peer.ws, peer.connected_since = None, None
                log.info("connection to peer %d closed", peer.share_index)
            if not self._stopping:
                await asyncio.sleep(backoff * self._rng.uniform(0.8, 1.2))

    async def _pump(
        self, peer: _Peer, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task[None]
    ) -> None:
        """Send queued frames in order until the connection closes (a frame in flight when it breaks
        is lost: the model's protocol tolerates loss)."""
        while not ws.closed and not reader.done():
            while peer.queue and not ws.closed:
                queued_at, frame = peer.queue.popleft()
                if (time.monotonic() - queued_at) * 1000 > self.max_age_ms:
                    peer.expired += 1
                    continue
                await ws.send_bytes(frame)
                peer.sent += 1
                peer.bytes_sent += len(frame)
            peer.wake.clear()
            if not peer.queue and not reader.done():
                await peer.wake.wait()

    async def _read_dialled(self, peer: _Peer, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            # frames on it must be that peer's pongs: nothing else (no relayed frame of another
            # operator, no message that would advance the peer's sequence out of band)
            dialled = _Inbound(peer.url, peer.share_index, pongs_only=True)
            await self._serve_frames(ws, dialled)
        finally:
            peer.wake.set()  # lets _pump notice the closed connection

    async def _ping(self, peer: _Peer, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Queue a signed ping every ping_interval_s. Pings go through the queue like every frame that
        carries a seq: the receiver sees seqs in the order they were drawn."""
        while not ws.closed:
            ping_id = secrets.token_hex(8)
            wall = self._wall_ms()
            peer.pings[ping_id] = (time.monotonic(), wall)
            while len(peer.pings) > 16:
                peer.pings.pop(next(iter(peer.pings)))
            self._enqueue(peer, self._frame("ping", peer.share_index, {"id": ping_id, "t1": wall}))
            await asyncio.sleep(self.ping_interval_s)

    # ---- receiving ----------------------------------------------------------------------------------

    def handshake(self, to: int, ts_ms: int | None = None) -> str:
        """This node's signed handshake for a connection to `to`: bound to the lock, the pair, the time."""
        ts = int(self._wall_ms()) if ts_ms is None else ts_ms
        text = f"{self.share_index}.{to}.{ts}"
        signature = self._key.sign(HANDSHAKE_DOMAIN + self._lock_hash_bytes + text.encode())
        return f"{text}.{signature.hex()}"

    def _authenticate(self, token: str | None) -> int | str:
        """The operator a handshake proves, or why it does not: signed with the identity key the lock
        lists for `from`, addressed to this node, fresh, and newer than that operator's last handshake
        (a recorded one cannot be replayed)."""
        parts = (token or "").split(".")
        if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
            return "no handshake"
        sender, to, ts = (int(p) for p in parts[:3])
        peer = self._peers.get(sender)
        if peer is None or to != self.share_index:
            return f"handshake from {sender} to {to}"
        if abs(self._wall_ms() - ts) > HANDSHAKE_MAX_AGE_MS or ts <= peer.handshake_ts:
            return f"stale or replayed handshake of operator {sender}"
        try:
            signature = bytes.fromhex(parts[3])
            peer.public_key.verify(
                signature, HANDSHAKE_DOMAIN + self._lock_hash_bytes + ".".join(parts[:3]).encode()
            )
        except (ValueError, InvalidSignature):
            return f"bad handshake signature for operator {sender}"
        peer.handshake_ts = ts
        return sender

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        """An operator's connection: authenticated by its handshake BEFORE the upgrade (nothing else
        gets a connection, so idle strangers can never fill the slots), one per operator (a newer
        one replaces the older: the peer redialled)."""
        if self._stopping:
            raise web.HTTPServiceUnavailable(text="stopping")
        sender = self._authenticate(request.headers.get(HANDSHAKE_HEADER))
        if isinstance(sender, str):
            self._drop(DropCause.UNAUTHENTICATED, sender)
            raise web.HTTPUnauthorized(text=f"covalidator peer handshake refused: {sender}")
        if len(self._inbound) >= self.max_inbound:
            raise web.HTTPServiceUnavailable(text="too many peer connections")
        ws = web.WebSocketResponse(
            heartbeat=self.heartbeat_s, max_msg_size=self.max_message_bytes, compress=False
        )
        await ws.prepare(request)
        for old, other in list(self._inbound.items()):
            if other.sender == sender:
                await old.close(message=b"replaced by a newer connection")
        conn = _Inbound(str(request.remote), sender)
        self._peers[sender].inbound += 1
        self._inbound[ws] = conn
        try:
            await self._serve_frames(ws, conn)
        finally:
            del self._inbound[ws]
            if conn.sender is not None and conn.sender in self._peers:
                self._peers[conn.sender].inbound -= 1
        return ws

    async def _serve_frames(
        self, ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse, conn: _Inbound
    ) -> None:
        """Every frame of a connection in order, checked and acted on (a ping answered on it), with a
        turn for the loop's other tasks every FRAMES_PER_TURN frames."""
        handled = 0
        async for msg in ws:
            reply = self._on_ws_message(msg, conn)
            if reply is not None:
                await ws.send_bytes(reply)
            handled += 1
            if handled % FRAMES_PER_TURN == 0:
                await asyncio.sleep(0)

    def _drop(self, cause: DropCause, detail: str = "") -> None:
        self.dropped[cause.value] += 1
        log.debug("dropped a peer frame: %s %s", cause.value, detail)

    def _on_ws_message(self, msg: aiohttp.WSMessage, conn: _Inbound | None) -> bytes | None:
        if msg.type == WSMsgType.BINARY:
            return self.receive_frame(msg.data, conn)
        if msg.type == WSMsgType.TEXT:
            self._drop(DropCause.MALFORMED, "text frame")
        elif msg.type == WSMsgType.ERROR:
            error = msg.data
            if getattr(error, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                self._drop(DropCause.OVERSIZED, str(error))
            else:
                self._drop(DropCause.MALFORMED, str(error))
        return None

    def receive_frame(self, frame: bytes, conn: _Inbound | None = None) -> bytes | None:
        """Check one frame and act on it: deliver a payload, answer a ping (the returned frame), or
        record a pong. Every failed check is dropped and counted; nothing here raises."""
        if len(frame) > self.max_message_bytes:
            self._drop(DropCause.OVERSIZED)
            return None
        if len(frame) < 5 or frame[:4] != MAGIC:
            self._drop(DropCause.MALFORMED, "not a frame")
            return None
        sig_len = frame[4]
        if sig_len == 0:
            self._drop(DropCause.UNSIGNED)
            return None
        if sig_len != SIGNATURE_BYTES or len(frame) < 5 + SIGNATURE_BYTES:
            self._drop(DropCause.MALFORMED, "signature length")
            return None
        signature, body = frame[5 : 5 + SIGNATURE_BYTES], frame[5 + SIGNATURE_BYTES :]
        try:
            header = loads_bounded(body)  # ValueError (malformed) past MAX_JSON_DEPTH
            if not isinstance(header, dict):
                raise _Malformed("body is not an object")
            cluster, sender, to = header.get("cluster"), header.get("from"), header.get("to")
            inc, start, seq, ts, kind = (header.get(k) for k in ("inc", "start", "seq", "ts", "kind"))
            if not (
                isinstance(cluster, str)
                and isinstance(inc, str)
                and kind in ("msg", "ping", "pong")
                and all(type(v) is int and 0 <= v < _UINT64 for v in (sender, to, start, seq, ts))
            ):
                raise _Malformed("header fields")
            assert isinstance(sender, int) and isinstance(to, int) and isinstance(start, int)
            assert isinstance(seq, int) and isinstance(ts, int)
        except (ValueError, RecursionError, _Malformed) as error:
            self._drop(DropCause.MALFORMED, str(error)[:80])
            return None
        if cluster != self.lock_hash:
            self._drop(DropCause.WRONG_CLUSTER, cluster[:20])
            return None
        peer = self._peers.get(sender)
        if peer is None:
            self._drop(DropCause.UNKNOWN_PEER, str(sender))
            return None
        if to not in (0, self.share_index):
            self._drop(DropCause.WRONG_RECIPIENT, str(to))
            return None
        if conn is not None and conn.sender is not None and sender != conn.sender:
            self._drop(DropCause.WRONG_SENDER, f"{sender} on operator {conn.sender}'s connection")
            return None
        if conn is not None and conn.pongs_only and kind != "pong":
            self._drop(DropCause.WRONG_SENDER, f"a {kind} frame on the connection this node dialled")
            return None
        try:
            peer.public_key.verify(signature, FRAME_DOMAIN + body)
        except InvalidSignature:
            self._drop(DropCause.BAD_SIGNATURE, f"claimed sender {sender}")
            return None
        now = self._wall_ms()
        if abs(now - ts) > self.max_age_ms:
            self._drop(DropCause.STALE, f"{now - ts:.0f} ms old")
            return None
        if kind != "pong" and not self._is_fresh_seq(peer, start, inc, seq):
            self._drop(DropCause.REPLAYED, f"sender {sender} seq {seq}")
            return None
        peer.last_received_ms = int(now)
        peer.received += 1
        peer.bytes_received += len(frame)
        data = header.get("data")
        if kind == "ping":
            return self._pong(peer, data, now)
        if kind == "pong":
            self._on_pong(peer, data, now)
            return None
        self._deliver(peer, data, len(frame))
        return None

    def _is_fresh_seq(self, peer: _Peer, start: int, inc: str, seq: int) -> bool:
        current = peer.incarnation
        if current is None or (current.start, current.inc) == (start, inc):
            if current is not None and seq <= current.seq:
                return False
            peer.incarnation = _Incarnation(start, inc, seq)
            return True
        if start > current.start:  # the sender restarted
            peer.incarnation = _Incarnation(start, inc, seq)
            return True
        return False

    def _deliver(self, peer: _Peer, data: Any, size: int) -> None:
        try:
            payload = self._decode(data, self.nodes)
        except (_Malformed, ValueError) as error:
            self._drop(DropCause.MALFORMED, str(error))
            return
        if isinstance(payload, PeerPayload) and payload.qbft is not None:
            envelope = payload.qbft
            if not all(self._verify_message(m) for m in (envelope.message, *envelope.justification)):
                self._drop(DropCause.BAD_QBFT_SIGNATURE, f"from {peer.share_index}")
                return
        self.delivered += 1
        try:
            self.on_message(peer.share_index, payload, size)
        except Exception:
            self.callback_errors += 1
            log.exception("on_message failed for a message of peer %d", peer.share_index)

    def _pong(self, peer: _Peer, data: Any, received: float) -> bytes | None:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or len(data["id"]) > 32:
            self._drop(DropCause.MALFORMED, "ping")
            return None
        t1 = data.get("t1")
        if not isinstance(t1, int | float) or isinstance(t1, bool):
            self._drop(DropCause.MALFORMED, "ping")
            return None
        return self._frame(
            "pong", peer.share_index, {"id": data["id"], "t1": t1, "t2": received, "t3": self._wall_ms()}
        )

    def _on_pong(self, peer: _Peer, data: Any, t4: float) -> None:
        if not isinstance(data, dict):
            self._drop(DropCause.MALFORMED, "pong")
            return
        ping_id = data.get("id")
        sent = peer.pings.pop(ping_id, None) if isinstance(ping_id, str) else None
        if sent is None:
            self._drop(DropCause.REPLAYED, "pong for no outstanding ping")
            return
        t2, t3 = data.get("t2"), data.get("t3")
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (t2, t3)):
            self._drop(DropCause.MALFORMED, "pong")
            return
        assert isinstance(t2, int | float) and isinstance(t3, int | float)
        mono, t1 = sent
        rtt = max(0.0, (time.monotonic() - mono) * 1000 - max(0.0, t3 - t2))
        offset = ((t2 - t1) + (t3 - t4)) / 2
        peer.rtt_ms = rtt
        peer.rtt_smoothed_ms = rtt if peer.rtt_smoothed_ms is None else 0.8 * peer.rtt_smoothed_ms + 0.2 * rtt
        peer.samples.append((rtt, offset))
        peer.offset_ms = min(peer.samples)[1]

    # ---- observation --------------------------------------------------------------------------------

    def connected(self) -> set[int]:
        """Share indices of the peers connected both ways: our dialled connection is up (we can send)
        and theirs, authenticated, is open (we can receive)."""
        return {i for i, p in self._peers.items() if p.ws is not None and not p.ws.closed and p.inbound > 0}

    def stats(self) -> dict[str, Any]:
        """Per-peer connectivity, RTT, clock offset and traffic, and the drop counters by cause."""
        return {
            "share_index": self.share_index,
            "incarnation": self.incarnation,
            "peers": {i: p.stats() for i, p in self._peers.items()},
            "dropped": dict(self.dropped),
            "delivered": self.delivered,
            "callback_errors": self.callback_errors,
            "send_refused": dict(self.send_refused),
            "inbound_connections": len(self._inbound),
        }
