"""`covalidator dkg`'s runtime: one operator's side of the ceremony over the peer transport.

Moves messages and waits; every check and every value is decided in model/dkg/ceremony.py. Draws the
randomness (each validator's polynomial of degree M-1 and proof nonce, from `secrets`), connects to
every operator of the definition (runtime/peers.py, always over TLS pinned to the definition's
identity keys: the shares travel on it), runs the rounds, and returns what to write. Each round waits
at most `round_s` for every other operator's message (the first from each counts); a missing one
ends the ceremony naming who. A failure here is sent to every operator as an `abort` with its reason
before this node stops, so the others stop at once with the same named cause; an `abort` received
ends this node's ceremony the same way. SIGINT/SIGTERM (task cancellation) aborts too.

`write_outputs` then writes, atomically per file and the lock last, exactly what `create-cluster`
writes for a node: cluster-lock.json, validator_keys/ (EIP-2335 share keystores and their
password files) and deposit-data.json, next to the identity key already in the folder.

Test-only: `Tamper` (from COVALIDATOR_TEST_DKG_FAULT in the CLI) makes this node misbehave on
purpose, as a test peer: `bad-share:K` corrupts the share sent to operator K, `equivocate:K` sends
operator K other (validly signed) commitments than everyone else, `pause:ROUND:SECONDS` waits before
sending ROUND.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster import lock as cluster_lock
from covalidator.model.cluster.definition import ClusterDefinition
from covalidator.model.crypto import bls
from covalidator.model.crypto.backends.base import CURVE_ORDER
from covalidator.model.dkg import ceremony
from covalidator.model.dkg.ceremony import CeremonyFailure, operator_name
from covalidator.model.dkg.messages import (
    ROUND_OF,
    Abort,
    Commit,
    DkgMessage,
    Done,
    Echo,
    Hello,
    LockSignature,
    Partials,
    Shares,
    decoder,
    to_json,
)
from covalidator.runtime import keys_io
from covalidator.runtime.peer_tls import client_context, server_context
from covalidator.runtime.peers import PeerTransport

log = logging.getLogger("covalidator.dkg")


@dataclass(frozen=True)
class Tamper:
    """Test-only misbehaviour (see the module docstring)."""

    bad_share_to: int | None = None  # a 0-based operator index
    equivocate_to: int | None = None
    pause: tuple[str, float] | None = None

    @classmethod
    def parse(cls, text: str) -> Tamper:
        kind, _, rest = text.partition(":")
        if kind == "bad-share":
            return cls(bad_share_to=int(rest))
        if kind == "equivocate":
            return cls(equivocate_to=int(rest))
        if kind == "pause":
            name, _, seconds = rest.partition(":")
            return cls(pause=(name, float(seconds)))
        raise ValueError(f"unknown DKG fault {text!r} (bad-share:K, equivocate:K, pause:ROUND:SECONDS)")


@dataclass
class Result:
    lock: dict[str, Any]
    secret_shares: tuple[int, ...]
    deposits: list[dict[str, Any]]


@dataclass
class _Inbox:
    """Every operator's messages by round (the first per sender counts); an abort ends every wait."""

    definition: ClusterDefinition
    rounds: dict[str, dict[int, DkgMessage]] = field(default_factory=dict)
    aborted: tuple[int, str] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, sender: int, message: DkgMessage, _size: int) -> None:
        if isinstance(message, Abort):
            if self.aborted is None:
                self.aborted = (sender, message.reason)
        else:
            self.rounds.setdefault(ROUND_OF[type(message)], {}).setdefault(sender, message)
        self.changed.set()

    async def gather(self, name: str, senders: set[int], timeout_s: float) -> dict[int, DkgMessage]:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.aborted is not None:
                sender, reason = self.aborted
                raise CeremonyFailure(
                    f"{operator_name(self.definition, sender)} aborted the ceremony: {reason}"
                )
            have = self.rounds.get(name, {})
            if senders <= set(have):
                return {s: have[s] for s in senders}
            left = deadline - time.monotonic()
            if left <= 0:
                missing = ", ".join(operator_name(self.definition, s) for s in sorted(senders - set(have)))
                raise CeremonyFailure(f"no {name} message within {timeout_s:.0f} s from {missing}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=left)


class Ceremony:
    """One operator's run of the ceremony (`run()`), over its own peer transport."""

    def __init__(
        self,
        definition: ClusterDefinition,
        identity_key: Ed25519PrivateKey,
        listen: tuple[str, int],
        *,
        connect_s: float = 120.0,
        round_s: float = 60.0,
        tamper: Tamper | None = None,
        addresses: dict[int, str] | None = None,
    ) -> None:
        self.definition = definition
        self.node_index = definition.node_index_of(cluster_lock.identity_public_key(identity_key))
        self.me = self.node_index + 1
        self.key = identity_key
        self.connect_s, self.round_s = connect_s, round_s
        self.tamper = tamper or Tamper()
        self.others = {i for i in range(1, definition.nodes + 1) if i != self.me}
        self.inbox = _Inbox(definition)
        self.transport = PeerTransport(
            ceremony.mesh_of(definition),
            self.node_index,
            identity_key,
            listen[0],
            listen[1],
            self.inbox.put,
            decode=decoder(definition.nodes, definition.validators, definition.threshold),
            server_ssl=server_context(identity_key),
            client_ssl=client_context(),
            addresses=addresses,
            max_age_ms=max(60_000, int(round_s * 1000)),
        )

    async def run(self) -> Result:
        await self.transport.start()
        try:
            try:
                return await self._rounds()
            except CeremonyFailure as failure:
                if self.inbox.aborted is None:  # this node found it: tell everyone why
                    await self._abort(str(failure))
                raise
            except asyncio.CancelledError:
                await self._abort(f"{operator_name(self.definition, self.me)} was interrupted")
                raise
        finally:
            await self.transport.stop()

    async def _abort(self, reason: str) -> None:
        self.transport.broadcast(to_json(Abort(reason)))
        await self._flush(2.0)

    async def _flush(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and any(
            p["queued"] for p in self.transport.stats()["peers"].values()
        ):
            await asyncio.sleep(0.05)

    async def _send_round(self, name: str) -> None:
        if self.tamper.pause is not None and self.tamper.pause[0] == name:
            await asyncio.sleep(self.tamper.pause[1])

    async def _connect(self) -> None:
        """Until every other operator is connected both ways. A timeout names the operators never seen
        connected (those that were may have just given up themselves), else those not connected now."""
        deadline = time.monotonic() + self.connect_s
        seen: set[int] = set()
        while (connected := self.transport.connected()) != self.others:
            seen |= connected
            if time.monotonic() > deadline:
                missing = (self.others - seen) or (self.others - connected)
                names = ", ".join(operator_name(self.definition, s) for s in sorted(missing))
                raise CeremonyFailure(f"not connected within {self.connect_s:.0f} s to {names}")
            await asyncio.sleep(0.1)
        log.info("connected to all %d operators", len(self.others))

    async def _rounds(self) -> Result:
        d, me = self.definition, self.me
        await self._connect()

        await self._send_round("hello")
        self.transport.broadcast(to_json(Hello(d.definition_hash)))
        for sender, hello in (await self.inbox.gather("hello", self.others, self.round_s)).items():
            assert isinstance(hello, Hello)
            if hello.definition_hash != d.definition_hash:
                raise CeremonyFailure(
                    f"{operator_name(d, sender)} runs another cluster definition "
                    f"(definition_hash 0x{hello.definition_hash.hex()}, not 0x{d.definition_hash.hex()})"
                )

        polynomials = [
            [secrets.randbelow(CURVE_ORDER - 1) + 1 for _ in range(d.threshold)] for _ in range(d.validators)
        ]
        nonces = [secrets.randbelow(CURVE_ORDER - 1) + 1 for _ in range(d.validators)]
        commit = ceremony.make_commit(d, me, polynomials, nonces, self.key)
        await self._send_round("commit")
        for k in self.others:
            sent = commit
            if self.tamper.equivocate_to == k - 1:
                other = [
                    [secrets.randbelow(CURVE_ORDER - 1) + 1 for _ in range(d.threshold)]
                    for _ in range(d.validators)
                ]
                sent = ceremony.make_commit(d, me, other, nonces, self.key)
            self.transport.send(k, to_json(sent))
        commits: dict[int, Commit] = {me: commit}
        for sender, message in (await self.inbox.gather("commit", self.others, self.round_s)).items():
            assert isinstance(message, Commit)
            if (fault := ceremony.commit_fault(d, sender, message)) is not None:
                raise CeremonyFailure(fault)
            commits[sender] = message

        mine = ceremony.echo_of(d, commits)
        await self._send_round("echo")
        self.transport.broadcast(to_json(mine))
        for sender, echo in (await self.inbox.gather("echo", self.others, self.round_s)).items():
            assert isinstance(echo, Echo)
            if (fault := ceremony.echo_fault(d, sender, echo, mine)) is not None:
                raise CeremonyFailure(fault)

        await self._send_round("shares")
        for k in self.others:
            shares = ceremony.shares_for(polynomials, k)
            if self.tamper.bad_share_to == k - 1:
                shares = Shares(((shares.shares[0] + 1) % CURVE_ORDER, *shares.shares[1:]))
            self.transport.send(k, to_json(shares))
        received: dict[int, Shares] = {me: ceremony.shares_for(polynomials, me)}
        for sender, message in (await self.inbox.gather("shares", self.others, self.round_s)).items():
            assert isinstance(message, Shares)
            if (fault := ceremony.shares_fault(d, me, sender, message, commits[sender])) is not None:
                raise CeremonyFailure(fault)
            received[sender] = message
        keys = ceremony.key_set(d, me, received, commits)
        del polynomials, received

        roots = ceremony.signing_roots(d, keys)
        own = ceremony.partials_of(keys, roots)
        await self._send_round("partials")
        self.transport.broadcast(to_json(own))
        partials: dict[int, Partials] = {me: own}
        for sender, message in (await self.inbox.gather("partials", self.others, self.round_s)).items():
            assert isinstance(message, Partials)
            if (fault := ceremony.partials_fault(d, sender, message, keys, roots)) is not None:
                raise CeremonyFailure(fault)
            partials[sender] = message
        deposit_signatures, registration_signatures = ceremony.combine_group_signatures(
            d, keys, roots, partials
        )

        content = ceremony.lock_content(d, keys, registration_signatures)
        lock_hash = cluster_lock.compute_lock_hash(content)
        await self._send_round("lock")
        self.transport.broadcast(to_json(LockSignature(cluster_lock.sign_lock_hash(self.key, lock_hash))))
        signatures = {me: cluster_lock.sign_lock_hash(self.key, lock_hash)}
        for sender, message in (await self.inbox.gather("lock", self.others, self.round_s)).items():
            assert isinstance(message, LockSignature)
            key = d.operators[sender - 1].identity_public_key
            if not cluster_lock.verify_lock_signature(key, lock_hash, message.signature):
                raise CeremonyFailure(
                    f"{operator_name(d, sender)}: its lock signature is not over this lock's hash "
                    "(it computed another lock)"
                )
            signatures[sender] = message.signature
        try:
            lock = cluster_lock.signed_lock(content, [signatures[i] for i in range(1, d.nodes + 1)])
        except cluster_lock.LockError as error:
            raise CeremonyFailure(f"the lock the ceremony made does not load: {error}") from None
        deposits = ceremony.deposit_entries(d, keys, deposit_signatures)

        # Every operator now holds every lock signature or will from these frames: wait (bounded)
        # for theirs to know ours were delivered before the transport stops.
        self.transport.broadcast(to_json(Done()))
        try:
            await self.inbox.gather("done", self.others, min(self.round_s, 15.0))
        except CeremonyFailure as error:
            log.warning("finished, but not every operator confirmed: %s", error)
        return Result(lock, keys.secret_shares, deposits)


def write_outputs(node_dir: Path, result: Result, kdf: Any) -> None:
    """The lock, the share keystores and deposit-data.json into `node_dir`, staged in a hidden folder
    there and moved into place with the lock last: a folder without cluster-lock.json is unfinished."""
    password = keys_io.new_password()
    documents = keys_io.encrypt_many([(bls.secret_to_bytes(s), password) for s in result.secret_shares], kdf)
    staging = node_dir / f".dkg-{secrets.token_hex(4)}.partial"
    try:
        for j, document in enumerate(documents):
            keys_io.write_keystore(staging / keys_io.KEYS_DIR, j, document, password)
        keys_io.write_json(staging / keys_io.DEPOSIT_FILE, result.deposits)
        keys_io.write_json(staging / keys_io.LOCK_FILE, result.lock)
        for name in (keys_io.KEYS_DIR, keys_io.DEPOSIT_FILE, keys_io.LOCK_FILE):
            (staging / name).rename(node_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
