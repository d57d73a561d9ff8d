"""model/dkg/ceremony.py and messages.py in one process: a whole 4-operator ceremony through the pure
functions, every check fed the fault it exists for (each must name the operator at fault), and the
messages' JSON round trip and shape limits."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from py_ecc.bls import G2ProofOfPossession as pyecc_bls

from covalidator.model.cluster import definition as cluster_definition
from covalidator.model.cluster import lock as cluster_lock
from covalidator.model.crypto import frost, shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER
from covalidator.model.dkg import ceremony, messages
from covalidator.model.eth.networks import network

N, M, V = 4, 3, 2


@pytest.fixture(scope="module")
def setup() -> tuple[cluster_definition.ClusterDefinition, list[Ed25519PrivateKey]]:
    keys = [Ed25519PrivateKey.generate() for _ in range(N)]
    net = network("hoodi")
    document = cluster_definition.build_definition(
        name="t", network="hoodi", fork_version=net.genesis_fork_version,
        genesis_validators_root=net.genesis_validators_root, threshold=M, validators=V,
        operators=[cluster_lock.Operator(cluster_lock.identity_public_key(k), f"h:{i}") for i, k in enumerate(keys)],
        withdrawal_address="0x" + "aa" * 20, compounding=False, deposit_amount_gwei=32 * 10**9,
        fee_recipient="0x" + "bb" * 20, gas_limit=30_000_000, registration_timestamp=1_700_000_000,
        nonce=bytes(range(32)),
    )  # fmt: skip
    for k in keys:
        document = cluster_definition.sign_definition(document, k)
    return cluster_definition.parse_definition(document, fully_signed=True), keys


def _polys(rng: random.Random) -> list[list[int]]:
    return [[rng.randrange(1, CURVE_ORDER) for _ in range(M)] for _ in range(V)]


def test_a_whole_ceremony_and_each_check(
    setup: tuple[cluster_definition.ClusterDefinition, list[Ed25519PrivateKey]],
) -> None:
    d, keys = setup
    rng = random.Random(7)
    polys = {i: _polys(rng) for i in range(1, N + 1)}
    nonces = {i: [rng.randrange(1, CURVE_ORDER) for _ in range(V)] for i in range(1, N + 1)}
    session = ceremony.session_id(d.definition_hash, {i: bytes([i]) * 32 for i in range(1, N + 1)})
    commits = {
        i: ceremony.make_commit(d, session, i, polys[i], nonces[i], keys[i - 1]) for i in range(1, N + 1)
    }
    for i, c in commits.items():
        assert ceremony.commit_fault(d, session, i, c) is None
    # another session (a rerun of the same definition): nothing of this one is accepted there
    rerun = ceremony.session_id(d.definition_hash, {i: bytes([i + 9]) * 32 for i in range(1, N + 1)})
    assert "not signed by its identity key" in str(ceremony.commit_fault(d, rerun, 1, commits[1]))

    # commit: another operator's signature, a bad proof of knowledge, a commitment of another context
    assert "not signed by its identity key" in str(ceremony.commit_fault(d, session, 2, commits[1]))
    c1 = commits[1].commitments[1]
    bad_pok = replace(
        commits[1],
        commitments=(commits[1].commitments[0], replace(c1, proof_mu=(c1.proof_mu + 1) % CURVE_ORDER)),
    )
    resigned = ceremony.make_commit(d, session, 1, polys[1], nonces[1], keys[0])
    assert ceremony.commit_fault(d, session, 1, resigned) is None
    forged = messages.Commit(bad_pok.commitments, _sign(session, keys[0], bad_pok.commitments))
    assert "operator 0 (0x" in str(ceremony.commit_fault(d, session, 1, forged))
    assert "validator 1: the proof of knowledge" in str(ceremony.commit_fault(d, session, 1, forged))
    swapped_c = commits[1].commitments[::-1]
    swapped = messages.Commit(swapped_c, _sign(session, keys[0], swapped_c))
    assert "validator 0: the proof of knowledge" in str(ceremony.commit_fault(d, session, 1, swapped))

    # echo: identical views pass; a validly signed other set names its signer; a forged one the echoer
    view = ceremony.echo_of(d, session, commits)
    assert all(ceremony.echo_fault(d, k, view, view) is None for k in range(1, N + 1))
    other = ceremony.make_commit(d, session, 2, _polys(rng), nonces[2], keys[1])
    seen_other = ceremony.echo_of(d, session, {**commits, 2: other})
    fault = str(ceremony.echo_fault(d, 4, seen_other, view))
    assert "operator 1 (0x" in fault and "broadcast equivocation" in fault and "operator 3 (0x" in fault
    forged_echo = messages.Echo((view.seen[0], (bytes(32), view.seen[1][1]), *view.seen[2:]))
    assert "operator 3 (0x" in str(ceremony.echo_fault(d, 4, forged_echo, view))
    assert "never signed" in str(ceremony.echo_fault(d, 4, forged_echo, view))

    # shares: each verified against its sender's commitments
    received = {me: {i: ceremony.shares_for(polys[i], me) for i in polys} for me in range(1, N + 1)}
    for me in range(1, N + 1):
        for i, shares in received[me].items():
            assert ceremony.shares_fault(d, me, i, shares, commits[i]) is None
    bad = messages.Shares((received[1][3].shares[0], (received[1][3].shares[1] + 1) % CURVE_ORDER))
    fault = str(ceremony.shares_fault(d, 1, 3, bad, commits[3]))
    assert "operator 2 (0x" in fault and "validator 1" in fault and "fails verification" in fault
    assert ceremony.shares_fault(d, 1, 3, received[2][3], commits[3]) is not None  # someone else's share

    key_sets = {me: ceremony.key_set(d, me, received[me], commits) for me in range(1, N + 1)}
    assert len({(k.group_keys, k.public_shares) for k in key_sets.values()}) == 1  # one view
    for j in range(V):  # oracle: the group secret summed here; M shares interpolate to it
        group_secret = sum(polys[i][j][0] for i in polys) % CURVE_ORDER
        assert pyecc_bls.SkToPk(group_secret) == key_sets[1].group_keys[j]
        chosen = {me: key_sets[me].secret_shares[j] for me in (1, 3, 4)}
        assert shamir.interpolate(chosen) == group_secret

    roots = ceremony.signing_roots(d, key_sets[1])
    partials = {me: ceremony.partials_of(key_sets[me], roots) for me in range(1, N + 1)}
    for me, p in partials.items():
        assert ceremony.partials_fault(d, me, p, key_sets[1], roots) is None
    wrong = replace(partials[2], registration=(partials[2].registration[0], partials[3].registration[1]))
    fault = str(ceremony.partials_fault(d, 2, wrong, key_sets[1], roots))
    assert "operator 1 (0x" in fault and "validator 1's builder registration" in fault
    deposits, registrations = ceremony.combine_group_signatures(
        d, key_sets[1], roots, {i: partials[i] for i in (2, 3, 4)}
    )
    for j in range(V):
        assert pyecc_bls.Verify(key_sets[1].group_keys[j], roots[0][j], deposits[j])
        assert pyecc_bls.Verify(key_sets[1].group_keys[j], roots[1][j], registrations[j])

    content = ceremony.lock_content(d, key_sets[1], registrations)
    lock_hash = cluster_lock.compute_lock_hash(content)
    lock = cluster_lock.signed_lock(content, [cluster_lock.sign_lock_hash(k, lock_hash) for k in keys])
    parsed = cluster_lock.parse_lock(lock)
    assert [v.distributed_public_key for v in parsed.distributed_validators] == list(key_sets[1].group_keys)
    assert len(ceremony.deposit_entries(d, key_sets[1], deposits)) == V


def _sign(session: bytes, key: Ed25519PrivateKey, commitments: tuple[frost.Commitment, ...]) -> bytes:
    from covalidator.model.cluster.document import sign_digest

    return sign_digest(key, ceremony.COMMIT_DOMAIN, ceremony.commit_digest(session, commitments))


def test_messages_round_trip_and_refuse_other_shapes() -> None:
    decode = messages.decoder(4, 2, 3)
    c = frost.commit(1, [5, 6, 7], 9, b"ctx")
    samples: list[messages.DkgMessage] = [
        messages.Hello(bytes(32), bytes(range(32))),
        messages.Commit((c, c), bytes(64)),
        messages.Echo(((bytes(32), bytes(64)),) * 4),
        messages.Shares((1, CURVE_ORDER - 1)),
        messages.Partials((bytes(96), bytes(96)), (bytes(96), bytes(96))),
        messages.LockSignature(bytes(64)),
        messages.Done(),
        messages.Abort("why"),
    ]
    for message in samples:
        assert decode(messages.to_json(message), 4) == message
    too_many = messages.to_json(messages.Commit((c, c, c), bytes(64)))
    bad = [
        None, [], {"round": "nope"}, {"round": "hello"}, {"round": "hello", "definition_hash": "0x00"},
        {"round": "done", "extra": 1}, too_many, messages.to_json(messages.Echo(((bytes(32), bytes(64)),) * 5)),
        {"round": "shares", "shares": ["0x" + "00" * 31] * 2}, {"round": "abort", "reason": 7},
        {**messages.to_json(messages.Hello(bytes(32), bytes(32))), "definition_hash": "0x" + "AB" * 32},
        {"round": "hello", "definition_hash": "0x" + "00" * 32},
    ]  # fmt: skip
    for data in bad:
        with pytest.raises(ValueError):
            decode(data, 4)
    assert decode({"round": "abort", "reason": "a\x1b[2Jb" + "x" * 600}, 4) == messages.Abort(
        "a[2Jb" + "x" * 494
    )


def test_no_code_path_forms_a_group_secret() -> None:
    """What the README tells a reader to check, checked: secret shares are interpolated only by
    `combine` (runtime/cli/cluster.py), and added up only in `frost.secret_share`, called only by
    `ceremony.key_set` with the shares ONE node received (its own share, never the group secret)."""
    import ast
    from pathlib import Path

    root = Path(__file__).parent.parent
    calls: dict[str, list[str]] = {"interpolate": [], "secret_share": []}
    for folder in ("model", "runtime", "sim"):
        for path in (root / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Call):
                        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                        if name in calls:
                            calls[name].append(f"{path.relative_to(root)}:{function.name}")
    interpolations = set(calls["interpolate"]) - {"model/crypto/shamir.py:interpolate"}
    assert interpolations == {"runtime/cli/cluster.py:combine"}, calls
    assert set(calls["secret_share"]) == {"model/dkg/ceremony.py:key_set"}, calls
