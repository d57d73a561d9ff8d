"""What a DKG ceremony decides, round by round: each check on a peer's message, and what follows from
the messages that passed. The runtime (runtime/dkg.py) only moves messages and waits.

Rounds (messages.py has their JSON), for participant l of N (share index l = node index + 1):

1. hello: every operator runs the same definition (its hash); a different one is named. Each hello
   also carries a fresh random nonce: the session id hashes the definition hash and every nonce, so
   each run of one definition is a new session whose signed messages cannot be replayed into another
   (an earlier run's commitments echoed into this one would frame their honest signer).
2. commit: per validator j, FROST commitments and a proof of knowledge (frost.py, context = session
   id + j), signed as a whole by the sender's identity key over `commit_digest`. Each is checked:
   the signature, then every validator's commitment (`commit_fault`).
3. echo (reliable broadcast): each operator sends everyone the (digest, signature) of every Commit it
   received. A validly signed digest that differs from the one this node holds proves its signer sent
   different commitments to different operators (equivocation: named, with the echoer who saw the
   other set). An echoed signature that does not verify names the echoer. So after this round every
   honest node holds the identical commitment set, or every honest node that saw two sets stops.
4. shares: f_l(k) to each k, point to point (over TLS); each received share is checked against its
   sender's commitments before anything else (`shares_fault`).
5. partials: with its new secret share, each operator signs every validator's deposit message and
   builder registration; each partial is checked against the sender's public share, M are combined,
   and the group signature is checked under the group key (`combine_group_signatures`).
6. lock: the lock content follows from the definition and the commitments alone (`lock_content`), so
   every node computes the same lock hash; each signs it; all N signatures are checked.
7. done: every node has all lock signatures (it may stop its transport).

Any fault stops the ceremony with a `CeremonyFailure` naming the operator at fault; nothing is written.

Must not: draw randomness (the caller passes polynomials and nonces), do I/O, or add up the constant
terms of the secrets (the group secret never exists).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster import lock as cluster_lock
from covalidator.model.cluster.definition import ClusterDefinition
from covalidator.model.cluster.document import sign_digest, verify_digest
from covalidator.model.crypto import bls, frost
from covalidator.model.dkg.messages import Commit, Echo, Partials, Shares, to_json
from covalidator.model.eth import deposit
from covalidator.model.eth.signing import registration_signing_root

COMMIT_DOMAIN: Final = b"covalidator/dkg-commit/v1\n"
MESH_DOMAIN: Final = b"covalidator/dkg-mesh/v1\n"
SESSION_DOMAIN: Final = b"covalidator/dkg-session/v1\n"


class CeremonyFailure(Exception):
    """The ceremony cannot end in a usable cluster; the message names why and, where it can, who."""


def operator_name(definition: ClusterDefinition, share_index: int) -> str:
    op = definition.operators[share_index - 1]
    return f"operator {share_index - 1} (0x{op.identity_public_key.hex()[:16]}.. @ {op.address})"


@dataclass(frozen=True)
class MeshMembers:
    """What the peer transport connects for a ceremony: the definition's operators, bound to a hash of
    them (not of the whole definition, so that an operator holding another definition still connects
    and is named in the hello round rather than silently refused)."""

    lock_hash: bytes
    operators: tuple[cluster_lock.Operator, ...]

    @property
    def nodes(self) -> int:
        return len(self.operators)


def mesh_of(definition: ClusterDefinition) -> MeshMembers:
    members = json.dumps(
        [["0x" + o.identity_public_key.hex(), o.address] for o in definition.operators], separators=(",", ":")
    )
    return MeshMembers(hashlib.sha256(MESH_DOMAIN + members.encode()).digest(), definition.operators)


# ---- round 1: the session ------------------------------------------------------------------------------


def session_id(definition_hash: bytes, nonces: Mapping[int, bytes]) -> bytes:
    """What binds this run: the definition hash and every operator's hello nonce, in operator order."""
    return hashlib.sha256(
        SESSION_DOMAIN + definition_hash + b"".join(nonces[i] for i in sorted(nonces))
    ).digest()


# ---- round 2 and 3: commitments, reliable broadcast ----------------------------------------------


def commit_digest(session: bytes, commitments: Sequence[frost.Commitment]) -> bytes:
    body = json.dumps(to_json(Commit(tuple(commitments), bytes(64)))["commitments"], separators=(",", ":"))
    return hashlib.sha256(COMMIT_DOMAIN + session + body.encode()).digest()


def make_commit(
    definition: ClusterDefinition,
    session: bytes,
    share_index: int,
    polynomials: Sequence[Sequence[int]],
    nonces: Sequence[int],
    identity_key: Ed25519PrivateKey,
) -> Commit:
    """This node's round-2 message: one FROST commitment per validator, signed as a whole."""
    assert len(polynomials) == len(nonces) == definition.validators
    commitments = tuple(
        frost.commit(share_index, poly, nonce, frost.key_context(session, j))
        for j, (poly, nonce) in enumerate(zip(polynomials, nonces, strict=True))
    )
    digest = commit_digest(session, commitments)
    return Commit(commitments, sign_digest(identity_key, COMMIT_DOMAIN, digest))


def commit_fault(definition: ClusterDefinition, session: bytes, sender: int, commit: Commit) -> str | None:
    """Why operator `sender`'s Commit is not acceptable, or None."""
    digest = commit_digest(session, commit.commitments)
    key = definition.operators[sender - 1].identity_public_key
    if not verify_digest(key, COMMIT_DOMAIN, digest, commit.signature):
        return f"{operator_name(definition, sender)}: its commitments are not signed by its identity key"
    for j, commitment in enumerate(commit.commitments):
        context = frost.key_context(session, j)
        fault = frost.commitment_fault(sender, commitment, definition.threshold, context)
        if fault is not None:
            return f"{operator_name(definition, sender)}: validator {j}: {fault}"
    return None


def echo_of(definition: ClusterDefinition, session: bytes, commits: Mapping[int, Commit]) -> Echo:
    """What this node saw from every operator (itself included), to send to everyone."""
    return Echo(
        tuple(
            (commit_digest(session, commits[i].commitments), commits[i].signature)
            for i in range(1, definition.nodes + 1)
        )
    )


def echo_fault(definition: ClusterDefinition, echoer: int, echo: Echo, mine: Echo) -> str | None:
    """Why operator `echoer`'s echo shows the broadcast was not reliable, or None."""
    for index, ((digest, signature), (own_digest, _)) in enumerate(zip(echo.seen, mine.seen, strict=True), 1):
        if digest == own_digest:
            continue
        key = definition.operators[index - 1].identity_public_key
        if verify_digest(key, COMMIT_DOMAIN, digest, signature):
            return (
                f"{operator_name(definition, index)} sent different commitments to different operators "
                f"(broadcast equivocation: {operator_name(definition, echoer)} received another set, "
                "signed by it)"
            )
        return (
            f"{operator_name(definition, echoer)} echoed commitments of operator {index - 1} that "
            "operator never signed"
        )
    return None


# ---- round 4: shares --------------------------------------------------------------------------------


def shares_for(polynomials: Sequence[Sequence[int]], recipient: int) -> Shares:
    return Shares(tuple(frost.share_for(poly, recipient) for poly in polynomials))


def shares_fault(
    definition: ClusterDefinition, recipient: int, sender: int, shares: Shares, commit: Commit
) -> str | None:
    for j, (share, commitment) in enumerate(zip(shares.shares, commit.commitments, strict=True)):
        if not frost.share_is_valid(recipient, share, commitment):
            return (
                f"{operator_name(definition, sender)} sent a share for validator {j} that fails "
                "verification against its commitments"
            )
    return None


@dataclass(frozen=True)
class KeySet:
    """What the ceremony made, as this node sees it."""

    secret_shares: tuple[int, ...]  # this node's share of each validator's key
    group_keys: tuple[bytes, ...]
    public_shares: tuple[tuple[bytes, ...], ...]  # [j][k-1]: operator k's public share of validator j


def key_set(
    definition: ClusterDefinition, me: int, shares: Mapping[int, Shares], commits: Mapping[int, Commit]
) -> KeySet:
    """From every operator's verified shares to this node and everyone's commitments."""
    secret_shares, group_keys, public_shares = [], [], []
    for j in range(definition.validators):
        per_sender = {i: commits[i].commitments[j] for i in sorted(commits)}
        secret_shares.append(frost.secret_share({i: shares[i].shares[j] for i in shares}))
        summed = frost.summed_commitments(per_sender)
        group_keys.append(summed[0])
        public_shares.append(tuple(frost.public_share(k, summed) for k in range(1, definition.nodes + 1)))
    result = KeySet(tuple(secret_shares), tuple(group_keys), tuple(public_shares))
    mine = tuple(bls.sk_to_pk(s) for s in result.secret_shares)
    assert mine == tuple(p[me - 1] for p in result.public_shares), "own share off its public share"
    return result


# ---- round 5: deposits and registrations, threshold-signed -----------------------------------------


def credentials(definition: ClusterDefinition) -> bytes:
    return deposit.withdrawal_credentials(definition.withdrawal_address, compounding=definition.compounding)


def registration_message(definition: ClusterDefinition, group_key: bytes) -> dict[str, str]:
    return cluster_lock.registration_message(
        group_key, definition.fee_recipient, definition.gas_limit, definition.registration_timestamp
    )


def signing_roots(definition: ClusterDefinition, keys: KeySet) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(each validator's deposit signing root, each validator's builder registration signing root)."""
    wc = credentials(definition)
    deposits = tuple(
        deposit.deposit_signing_root(g, wc, definition.deposit_amount_gwei, definition.fork_version)
        for g in keys.group_keys
    )
    registrations = tuple(
        registration_signing_root(definition.fork_version, registration_message(definition, g))
        for g in keys.group_keys
    )
    return deposits, registrations


def partials_of(keys: KeySet, roots: tuple[tuple[bytes, ...], tuple[bytes, ...]]) -> Partials:
    deposits, registrations = roots
    return Partials(
        tuple(bls.sign(s, r) for s, r in zip(keys.secret_shares, deposits, strict=True)),
        tuple(bls.sign(s, r) for s, r in zip(keys.secret_shares, registrations, strict=True)),
    )


def partials_fault(
    definition: ClusterDefinition,
    sender: int,
    partials: Partials,
    keys: KeySet,
    roots: tuple[tuple[bytes, ...], tuple[bytes, ...]],
) -> str | None:
    items = [
        bls.SignedItem(keys.public_shares[j][sender - 1], root, signature)
        for which, signatures in ((0, partials.deposit), (1, partials.registration))
        for j, (root, signature) in enumerate(zip(roots[which], signatures, strict=True))
    ]
    invalid = bls.find_invalid(items)
    if invalid:
        position = invalid[0]
        what = "deposit" if position < definition.validators else "builder registration"
        return (
            f"{operator_name(definition, sender)}: its partial signature of validator "
            f"{position % definition.validators}'s {what} does not verify against its public share"
        )
    return None


def combine_group_signatures(
    definition: ClusterDefinition,
    keys: KeySet,
    roots: tuple[tuple[bytes, ...], tuple[bytes, ...]],
    partials: Mapping[int, Partials],
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(deposit signatures, registration signatures) of the group keys, each combined from M verified
    partials and checked under its group key; CeremonyFailure if one does not verify (it cannot, when
    every partial verified against public shares that interpolate to the group key)."""
    out: list[list[bytes]] = [[], []]
    for which in (0, 1):
        for j in range(definition.validators):
            signature = bls.combine(
                {i: (p.deposit if which == 0 else p.registration)[j] for i, p in partials.items()},
                definition.threshold,
            )
            if not bls.verify(keys.group_keys[j], roots[which][j], signature):
                raise CeremonyFailure(
                    f"validator {j}: the combined signature does not verify under its group key"
                )
            out[which].append(signature)
    return tuple(out[0]), tuple(out[1])


# ---- round 6: the lock, and the deposit file ----------------------------------------------------------


def lock_content(
    definition: ClusterDefinition, keys: KeySet, registrations: Sequence[bytes]
) -> dict[str, Any]:
    validators = [
        cluster_lock.DistributedValidator(
            keys.group_keys[j],
            keys.public_shares[j],
            definition.fee_recipient,
            definition.gas_limit,
            {
                "message": registration_message(definition, keys.group_keys[j]),
                "signature": "0x" + registrations[j].hex(),
            },
        )
        for j in range(definition.validators)
    ]
    return cluster_lock.content_json(
        name=definition.name,
        network=definition.network,
        fork_version=definition.fork_version,
        genesis_validators_root=definition.genesis_validators_root,
        threshold=definition.threshold,
        operators=definition.operators,
        distributed_validators=validators,
    )


def deposit_entries(
    definition: ClusterDefinition, keys: KeySet, signatures: Sequence[bytes]
) -> list[dict[str, Any]]:
    wc = credentials(definition)
    return [
        deposit.deposit_entry(
            pubkey=g,
            credentials=wc,
            amount=definition.deposit_amount_gwei,
            signature=s,
            genesis_fork_version=definition.fork_version,
            network_name=definition.network,
        )
        for g, s in zip(keys.group_keys, signatures, strict=True)
    ]
