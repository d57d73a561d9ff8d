"""Hypothesis: the slashing rules agree with the consensus specs' own `is_slashable_attestation_data`,
and the store (neighbour queries on staircase histories) agrees with the model's full scan."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covalidator.model.slashing import (
    SignedAttestation,
    SignedBlock,
    attestation_watermark,
    check_attestation,
    check_block,
    is_staircase,
    relevant_attestations,
)
from covalidator.runtime.store import Store

spec = __import__("eth_consensus_specs.phase0.minimal", fromlist=["spec"])

EPOCH = st.integers(min_value=0, max_value=12)
ROOT_SEED = st.integers(min_value=0, max_value=2)
PUBKEYS = [bytes([k]) * 48 for k in range(2)]


def attestation_data(source: int, target: int, seed: int) -> object:
    return spec.AttestationData(
        slot=target * spec.SLOTS_PER_EPOCH,
        index=0,
        beacon_block_root=bytes([seed]) * 32,
        source=spec.Checkpoint(epoch=source, root=b"\x00" * 32),
        target=spec.Checkpoint(epoch=target, root=b"\x00" * 32),
    )


candidates = st.lists(
    st.tuples(st.sampled_from(PUBKEYS), EPOCH, EPOCH, ROOT_SEED, st.booleans()), max_size=25
)


@settings(max_examples=150, deadline=None)
@given(candidates)
def test_attestation_check_matches_consensus_specs(sequence: list[tuple[bytes, int, int, int, bool]]) -> None:
    """Accept iff source <= target, no spec-slashable pair with any signed data, and the EIP-3076 low
    watermarks (waived for an exact re-sign). A candidate without signing root (`known` false) is
    compared as data that can never be proven equal."""
    signed: dict[bytes, list[tuple[object, SignedAttestation]]] = {pk: [] for pk in PUBKEYS}
    for pk, source, target, seed, known in sequence:
        data = attestation_data(source, target, seed)
        root = bytes(spec.hash_tree_root(data)) if known else None
        candidate = SignedAttestation(source, target, root)
        history = signed[pk]
        records = [r for _, r in history]
        verdict = check_attestation(candidate, records, attestation_watermark(records))

        def slashable(d1: object, r1: SignedAttestation, d2: object, r2: SignedAttestation) -> bool:
            if r1.signing_root is None or r2.signing_root is None:  # unknown: assume different data
                return bool(d1.target.epoch == d2.target.epoch) or bool(  # type: ignore[attr-defined]
                    spec.is_slashable_attestation_data(d1, d2) or spec.is_slashable_attestation_data(d2, d1)
                )
            return bool(
                spec.is_slashable_attestation_data(d1, d2) or spec.is_slashable_attestation_data(d2, d1)
            )

        repeat = any(d == data and r.signing_root is not None and root is not None for d, r in history)
        no_pair = all(not slashable(data, candidate, d, r) for d, r in history)
        watermark = attestation_watermark(records)
        above = watermark is None or (source >= watermark.min_source and target > watermark.min_target)
        expected = source <= target and no_pair and (repeat or above)
        assert verdict.safe == expected, (candidate, records, verdict.describe())
        if verdict.safe and not verdict.repeat:
            history.append((data, candidate))
        assert is_staircase(r for _, r in history)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(EPOCH, EPOCH, st.sampled_from([None, b"\x01" * 32, b"\x02" * 32])), max_size=30))
def test_neighbour_records_decide_like_full_history(sequence: list[tuple[int, int, bytes | None]]) -> None:
    """Empirical twin of proofs.slashing.neighbour_check_sufficiency on accepted (staircase) histories."""
    history: list[SignedAttestation] = []
    for source, target, root in sequence:
        candidate = SignedAttestation(source, target, root)
        watermark = attestation_watermark(history)
        full = check_attestation(candidate, history, watermark)
        ordered = sorted(history, key=lambda r: r.target_epoch)
        near = check_attestation(candidate, relevant_attestations(candidate, ordered), watermark)
        assert full.safe == near.safe
        if full.safe and not full.repeat:
            history.append(candidate)


messages = st.lists(
    st.tuples(
        st.sampled_from(PUBKEYS),
        st.one_of(
            st.builds(SignedAttestation, EPOCH, EPOCH, st.sampled_from([None, b"\x01" * 32, b"\x02" * 32])),
            st.builds(SignedBlock, st.integers(0, 30), st.sampled_from([None, b"\x01" * 32, b"\x02" * 32])),
        ),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_store_agrees_with_model_full_scan(sequence: list[tuple[bytes, object, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db.sqlite", b"\x00" * 32)
        atts: dict[bytes, list[SignedAttestation]] = {pk: [] for pk in PUBKEYS}
        blocks: dict[bytes, list[SignedBlock]] = {pk: [] for pk in PUBKEYS}
        for pk, message, record in sequence:
            got = store.check_batch([(pk, message)], record=record)[0]  # type: ignore[list-item]
            if isinstance(message, SignedAttestation):
                want = check_attestation(message, atts[pk], attestation_watermark(atts[pk]))
                if want.safe and not want.repeat and record:
                    atts[pk].append(message)
            else:
                assert isinstance(message, SignedBlock)
                min_slot = min((b.slot for b in blocks[pk]), default=None)
                want = check_block(message, blocks[pk], min_slot)
                if want.safe and not want.repeat and record:
                    blocks[pk].append(message)
            assert (got.safe, got.repeat, got.refusal) == (want.safe, want.repeat, want.refusal)
        for pk in PUBKEYS:
            history = store.history(pk)
            assert sorted(history.signed_attestations, key=repr) == sorted(atts[pk], key=repr)
            assert sorted(history.signed_blocks, key=repr) == sorted(blocks[pk], key=repr)
        store.close()
