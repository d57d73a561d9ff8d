"""`covalidator dkg`'s runtime: one operator's side of the ceremony over the peer transport.

Moves messages and waits; every check and every value is decided in model/dkg/ceremony.py. Draws the
randomness (each validator's polynomial of degree M-1 and proof nonce, from `secrets`), connects to
every operator of the definition (runtime/peers.py, always over TLS pinned to the definition's
identity keys: the shares travel on it), runs the rounds, and returns what to write. Each round waits
at most `round_s` for every other operator's message (the first from each counts), sending what it
sent so far again to the operators still missing (a frame in flight when a connection breaks is
lost); a missing one ends the ceremony naming who. The heavy checks run in a worker thread, so the
connections' heartbeats go on. A failure here is sent to every operator as an `abort` with its reason
before this node stops, so the others stop at once with the same named cause; an `abort` received
ends this node's ceremony the same way, and is passed on (one operator told alone must not leave the
others blaming it). SIGINT/SIGTERM (task cancellation) aborts too. After the lock round every
operator says `done`; a node that does not hear it from every operator still writes its folder (the
others may already depend on its shares) but reports the result as unconfirmed.

`write_outputs` then writes, atomically per file and the lock last, exactly what `create-cluster`
writes for a node: cluster-lock.json, validator_keys/ (EIP-2335 share keystores and their
password files) and deposit-data.json, next to the identity key already in the folder.

Test-only: `Tamper` (from COVALIDATOR_TEST_DKG_FAULT in the CLI) makes this node misbehave on
purpose, as a test peer: `bad-share:K` corrupts the share sent to operator K, `equivocate:K` sends
operator K other (validly signed) commitments than everyone else, `pause:ROUND:SECONDS` waits before
sending ROUND, `abort-to:K` sends an abort to operator K alone and goes silent, `drop:ROUND:K` loses
the first transmission of ROUND to operator K, `exit-after:lock` ends the process once its lock
signature is out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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

# A commit message is ~ V (101 M + 220) bytes: 10,000 validators at M = 16 is ~18 MB.
MAX_MESSAGE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Tamper:
    """Test-only misbehaviour (see the module docstring)."""

    bad_share_to: int | None = None  # a 0-based operator index
    equivocate_to: int | None = None
    pause: tuple[str, float] | None = None
    abort_to: int | None = None  # at the commit round: an abort to this operator alone, then silence
    drop: tuple[str, int] | None = None  # the first transmission of ROUND to operator K is lost
    exit_after: str | None = None  # "lock": the process ends (exit code 9) once its lock signature is out

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
        if kind == "abort-to":
            return cls(abort_to=int(rest))
        if kind == "drop":
            name, _, k = rest.partition(":")
            return cls(drop=(name, int(k)))
        if kind == "exit-after":
            return cls(exit_after=rest)
        raise ValueError(
            f"unknown DKG fault {text!r} (bad-share:K, equivocate:K, pause:ROUND:SECONDS, abort-to:K, "
            "drop:ROUND:K, exit-after:lock)"
        )


@dataclass
class Result:
    lock: dict[str, Any]
    secret_shares: tuple[int, ...]
    deposits: list[dict[str, Any]]
    unconfirmed: str | None = None  # why not every operator confirmed it holds the result too


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

    def abort_failure(self) -> CeremonyFailure | None:
        if self.aborted is None:
            return None
        sender, reason = self.aborted
        return CeremonyFailure(f"{operator_name(self.definition, sender)} aborted the ceremony: {reason}")


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
        resend_s: float = 5.0,
        tamper: Tamper | None = None,
    ) -> None:
        self.definition = definition
        self.node_index = definition.node_index_of(cluster_lock.identity_public_key(identity_key))
        self.me = self.node_index + 1
        self.key = identity_key
        self.connect_s, self.round_s, self.resend_s = connect_s, round_s, resend_s
        self.tamper = tamper or Tamper()
        self.others = {i for i in range(1, definition.nodes + 1) if i != self.me}
        self.inbox = _Inbox(definition)
        self.sent: list[tuple[int | None, dict[str, Any]]] = []  # (to or None: all, message), in order
        self.unconfirmed: str | None = None
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
            max_message_bytes=MAX_MESSAGE_BYTES,
            max_age_ms=max(60_000, int(round_s * 1000)),
        )

    async def run(self) -> Result:
        await self.transport.start()
        try:
            try:
                return await self._rounds()
            except CeremonyFailure as failure:
                # found here or received: every operator hears it from every operator that stops
                # (an abort sent to one operator alone must not leave the others blaming it)
                await self._abort(f"{operator_name(self.definition, self.me)} stopped: {failure}")
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

    def _send(self, to: int | None, message: dict[str, Any]) -> None:
        """Send (to one operator, or all) and keep it to send again while a round waits: a frame in
        flight when a connection breaks is lost, and receivers keep only the first per sender."""
        self.sent.append((to, message))
        self._transmit(to, message)

    def _recipients(self, to: int | None) -> list[int]:
        return sorted(self.others) if to is None else [to]

    def _transmit(self, to: int | None, message: dict[str, Any]) -> None:
        for k in self._recipients(to):
            if self.tamper.drop == (message["round"], k - 1):
                continue  # test only: this first transmission is lost
            if not self.transport.send(k, message):
                raise CeremonyFailure(
                    f"a {message['round']} message could not be sent to {operator_name(self.definition, k)} "
                    f"(larger than {MAX_MESSAGE_BYTES // 2**20} MiB: too many validators for this threshold)"
                )

    async def _gather(self, name: str, timeout_s: float | None = None) -> dict[int, DkgMessage]:
        """Every other operator's message of round `name`; everything sent so far is sent again every
        `resend_s` (then doubling) to the operators still missing (receivers ignore duplicates)."""
        timeout_s = self.round_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        interval = self.resend_s  # doubling: a slow operator is not flooded with copies
        next_resend = time.monotonic() + interval
        while True:
            if (failure := self.inbox.abort_failure()) is not None:
                raise failure
            have = self.inbox.rounds.get(name, {})
            if self.others <= set(have):
                return {s: have[s] for s in self.others}
            now = time.monotonic()
            if now >= deadline:
                missing = ", ".join(
                    operator_name(self.definition, s) for s in sorted(self.others - set(have))
                )
                raise CeremonyFailure(f"no {name} message within {timeout_s:.0f} s from {missing}")
            if now >= next_resend:
                for to, message in self.sent:
                    for k in self._recipients(to):
                        if k not in have:
                            self.transport.send(k, message)
                interval *= 2
                next_resend = now + interval
            self.inbox.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inbox.changed.wait(), timeout=min(deadline, next_resend) - now)

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
        nonce = secrets.token_bytes(32)
        self._send(None, to_json(Hello(d.definition_hash, nonce)))
        nonces = {me: nonce}
        for sender, hello in (await self._gather("hello")).items():
            assert isinstance(hello, Hello)
            if hello.definition_hash != d.definition_hash:
                raise CeremonyFailure(
                    f"{operator_name(d, sender)} runs another cluster definition "
                    f"(definition_hash 0x{hello.definition_hash.hex()}, not 0x{d.definition_hash.hex()})"
                )
            nonces[sender] = hello.session
        session = ceremony.session_id(d.definition_hash, nonces)

        def draw() -> list[list[int]]:
            return [
                [secrets.randbelow(CURVE_ORDER - 1) + 1 for _ in range(d.threshold)]
                for _ in range(d.validators)
            ]

        def draw_nonces() -> list[int]:
            return [secrets.randbelow(CURVE_ORDER - 1) + 1 for _ in range(d.validators)]

        if self.tamper.abort_to is not None:  # test only: one operator told, the others left waiting
            self.transport.send(
                self.tamper.abort_to + 1, to_json(Abort("test: aborting towards one operator"))
            )
            asyncio.get_running_loop().call_later(3.0, os._exit, 9)
            await asyncio.sleep(3600)
        polynomials = draw()
        commit = await asyncio.to_thread(
            ceremony.make_commit, d, session, me, polynomials, draw_nonces(), self.key
        )
        await self._send_round("commit")
        if self.tamper.equivocate_to is not None:  # test only: other commitments, validly signed, to one
            other = await asyncio.to_thread(
                ceremony.make_commit, d, session, me, draw(), draw_nonces(), self.key
            )
            for k in self.others:
                self._send(k, to_json(other if k - 1 == self.tamper.equivocate_to else commit))
        else:
            self._send(None, to_json(commit))
        commits: dict[int, Commit] = {me: commit}
        for sender, message in (await self._gather("commit")).items():
            assert isinstance(message, Commit)
            if (
                fault := await asyncio.to_thread(ceremony.commit_fault, d, session, sender, message)
            ) is not None:
                raise CeremonyFailure(fault)
            commits[sender] = message

        mine = ceremony.echo_of(d, session, commits)
        await self._send_round("echo")
        self._send(None, to_json(mine))
        for sender, echo in (await self._gather("echo")).items():
            assert isinstance(echo, Echo)
            if (fault := ceremony.echo_fault(d, sender, echo, mine)) is not None:
                raise CeremonyFailure(fault)

        await self._send_round("shares")
        for k in sorted(self.others):
            shares = ceremony.shares_for(polynomials, k)
            if self.tamper.bad_share_to == k - 1:
                shares = Shares(((shares.shares[0] + 1) % CURVE_ORDER, *shares.shares[1:]))
            self._send(k, to_json(shares))
        received: dict[int, Shares] = {me: ceremony.shares_for(polynomials, me)}
        for sender, message in (await self._gather("shares")).items():
            assert isinstance(message, Shares)
            fault = await asyncio.to_thread(ceremony.shares_fault, d, me, sender, message, commits[sender])
            if fault is not None:
                raise CeremonyFailure(fault)
            received[sender] = message
        keys = await asyncio.to_thread(ceremony.key_set, d, me, received, commits)
        del polynomials, received

        roots = await asyncio.to_thread(ceremony.signing_roots, d, keys)
        own = await asyncio.to_thread(ceremony.partials_of, keys, roots)
        await self._send_round("partials")
        self._send(None, to_json(own))
        partials: dict[int, Partials] = {me: own}
        for sender, message in (await self._gather("partials")).items():
            assert isinstance(message, Partials)
            fault = await asyncio.to_thread(ceremony.partials_fault, d, sender, message, keys, roots)
            if fault is not None:
                raise CeremonyFailure(fault)
            partials[sender] = message
        deposit_signatures, registration_signatures = await asyncio.to_thread(
            ceremony.combine_group_signatures, d, keys, roots, partials
        )

        content = ceremony.lock_content(d, keys, registration_signatures)
        lock_hash = cluster_lock.compute_lock_hash(content)
        await self._send_round("lock")
        own_signature = cluster_lock.sign_lock_hash(self.key, lock_hash)
        self._send(None, to_json(LockSignature(own_signature)))
        if self.tamper.exit_after == "lock":  # test only: gone once its lock signature is out
            await self._flush(5.0)
            await asyncio.sleep(0.3)
            os._exit(9)
        signatures = {me: own_signature}
        for sender, message in (await self._gather("lock")).items():
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

        # This node now holds the whole result; each operator says when it does too. One that never
        # says so (or stops now) may lack its folder: written anyway, but reported as unconfirmed.
        self._send(None, to_json(Done()))
        try:
            await self._gather("done", min(self.round_s, 30.0))
        except CeremonyFailure as error:
            self.unconfirmed = str(error)
            log.warning("finished, but not every operator confirmed: %s", error)
        return Result(lock, keys.secret_shares, deposits, self.unconfirmed)


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
