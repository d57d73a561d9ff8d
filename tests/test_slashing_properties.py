"""Hypothesis: the slashing rules agree with the consensus specs' own `is_slashable_attestation_data`,
and the store (neighbour queries on staircase histories) agrees with the model's full scan."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covalidator.model.slashing.rules import (
    SignedAttestation,
    SignedBlock,
    attestation_watermark,
    check_attestation,
    check_block,
    is_staircase,
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


def relevant_attestations(
    candidate: SignedAttestation, sorted_history: Sequence[SignedAttestation]
) -> list[SignedAttestation]:
    """What the store hands the check (same target, nearest target below and above), written here from
    the theorem's definition, not taken from the store's SQL."""
    same = [r for r in sorted_history if r.target_epoch == candidate.target_epoch]
    below = [r for r in sorted_history if r.target_epoch < candidate.target_epoch]
    above = [r for r in sorted_history if r.target_epoch > candidate.target_epoch]
    picked = same + ([max(below, key=lambda r: r.target_epoch)] if below else [])
    return picked + ([min(above, key=lambda r: r.target_epoch)] if above else [])


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


# ---- why a message is refused: the reason, the conflicting record, the words -----------------------------

REASON_ORDER = ("double_vote", "surrounding_vote", "surrounded_vote")


def expected_refusal(
    candidate: SignedAttestation, history: list[SignedAttestation]
) -> tuple[str, SignedAttestation | None, str] | None:
    """The reason in the documented priority, written out apart from the model: source after target;
    then, record by record in history order, a double vote, a surrounding, a surrounded vote; then the
    low watermarks (source first). None when safe."""
    s, t, root = candidate.source_epoch, candidate.target_epoch, candidate.signing_root
    if s > t:
        return ("source_exceeds_target", None, "")

    def same(r: SignedAttestation) -> bool:
        return (r.source_epoch, r.target_epoch) == (s, t) and root is not None and r.signing_root == root

    rules = {
        "double_vote": lambda r: r.target_epoch == t and not same(r),
        "surrounding_vote": lambda r: s < r.source_epoch and r.target_epoch < t,
        "surrounded_vote": lambda r: r.source_epoch < s and t < r.target_epoch,
    }
    for name in REASON_ORDER:
        for r in history:
            if rules[name](r):
                return (name, r, "")
    if history and not any(same(r) for r in history):
        min_source = min(r.source_epoch for r in history)
        min_target = min(r.target_epoch for r in history)
        if s < min_source:
            return ("source_below_low_watermark", None, f"min source epoch {min_source}")
        if t <= min_target:
            return ("target_not_above_low_watermark", None, f"min target epoch {min_target}")
    return None


def words(reason: str, record: SignedAttestation | None, detail: str) -> str:
    if record is not None:
        root = "none" if record.signing_root is None else "0x" + record.signing_root.hex()
        return (
            f"{reason} with recorded attestation source={record.source_epoch} "
            f"target={record.target_epoch} signing_root={root}"
        )
    return f"{reason} ({detail})" if detail else reason


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(EPOCH, EPOCH, st.sampled_from([None, b"\x01" * 32])), max_size=8),
    st.tuples(EPOCH, EPOCH, st.sampled_from([None, b"\x01" * 32, b"\x02" * 32])),
)
def test_the_refusal_names_its_rule_record_and_watermark(
    raw: list[tuple[int, int, bytes | None]], candidate_raw: tuple[int, int, bytes | None]
) -> None:
    history: list[SignedAttestation] = []
    for source, target, root in raw:  # a history the check built
        record = SignedAttestation(source, target, root)
        verdict = check_attestation(record, history, attestation_watermark(history))
        if verdict.safe and not verdict.repeat:
            history.append(record)
    candidate = SignedAttestation(*candidate_raw)
    verdict = check_attestation(candidate, history, attestation_watermark(history))
    expected = expected_refusal(candidate, history)
    if expected is None:
        assert verdict.safe and verdict.refusal is None, verdict.describe()
        repeat = any(r == candidate and candidate.signing_root is not None for r in history)
        assert verdict.repeat == repeat
        assert verdict.describe() == ("safe (repeat of a recorded message)" if repeat else "safe")
        return
    reason, record, detail = expected
    assert not verdict.safe and not verdict.repeat
    assert (verdict.refusal, verdict.conflict, verdict.detail) == (reason, record, detail)
    assert verdict.describe() == words(reason, record, detail)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.sampled_from([None, b"\x01" * 32])), max_size=6),
    st.tuples(st.integers(0, 12), st.sampled_from([None, b"\x01" * 32, b"\x02" * 32])),
)
def test_a_block_refusal_names_the_double_proposal_or_the_watermark(
    raw: list[tuple[int, bytes | None]], candidate_raw: tuple[int, bytes | None]
) -> None:
    history: list[SignedBlock] = []
    for slot, root in raw:
        block = SignedBlock(slot, root)
        low = min((b.slot for b in history), default=None)
        if check_block(block, history, low).safe and block not in history:
            history.append(block)
    candidate = SignedBlock(*candidate_raw)
    low = min((b.slot for b in history), default=None)
    verdict = check_block(candidate, history, low)
    same = [b for b in history if b == candidate and candidate.signing_root is not None]
    double = [b for b in history if b.slot == candidate.slot and b not in same]
    if double:
        assert (verdict.refusal, verdict.conflict) == ("double_proposal", double[0])
        root = "none" if double[0].signing_root is None else "0x" + double[0].signing_root.hex()
        assert (
            verdict.describe()
            == f"double_proposal with recorded block slot={double[0].slot} signing_root={root}"
        )
    elif not same and low is not None and candidate.slot <= low:
        assert (verdict.refusal, verdict.detail) == ("slot_not_above_low_watermark", f"min slot {low}")
        assert verdict.describe() == f"slot_not_above_low_watermark (min slot {low})"
    else:
        assert verdict.safe and verdict.repeat == bool(same)


@settings(max_examples=200, deadline=None)
@given(EPOCH, EPOCH, st.one_of(st.none(), st.tuples(EPOCH, EPOCH)))
def test_a_minimal_db_refusal_names_its_watermark(
    source: int, target: int, top: tuple[int, int] | None
) -> None:
    """After minification only (max source, max target) remain: refuse source > target, a source below
    the max source, a target not above the max target, in that order."""
    from covalidator.model.slashing.rules import MinimalRecord, check_attestation_minimal

    minimal = MinimalRecord() if top is None else MinimalRecord(top[0], top[1])
    verdict = check_attestation_minimal(SignedAttestation(source, target), minimal)
    if source > target:
        expected: tuple[str | None, str] = ("source_exceeds_target", "")
    elif top is not None and source < top[0]:
        expected = ("source_below_low_watermark", f"watermark source epoch {top[0]}")
    elif top is not None and target <= top[1]:
        expected = ("target_not_above_low_watermark", f"watermark target epoch {top[1]}")
    else:
        expected = (None, "")
    assert (verdict.refusal, verdict.detail) == expected
    assert verdict.safe == (expected[0] is None)


# ---- EIP-3076's low watermarks at their boundaries (the text of the EIP is the oracle) ---------------------


def test_a_target_equal_to_the_min_target_is_refused_even_with_no_record_there() -> None:
    """EIP-3076: refuse an attestation whose target is <= the minimum target (after pruning or a minified
    import only the watermark may remain: the record at min target is gone, the rule is not)."""
    from covalidator.model.slashing.rules import AttestationWatermark, Refusal, check_attestation

    watermark = AttestationWatermark(min_source=5, min_target=10)
    at_min = check_attestation(SignedAttestation(6, 10, b"\x01" * 32), [], watermark)
    assert not at_min.safe and at_min.refusal is Refusal.TARGET_NOT_ABOVE_MIN
    assert check_attestation(SignedAttestation(6, 11, b"\x01" * 32), [], watermark).safe


def test_a_watermark_refusal_names_the_bound_broken() -> None:
    from covalidator.model.slashing.rules import AttestationWatermark, Refusal, check_attestation

    watermark = AttestationWatermark(min_source=5, min_target=10)
    source = check_attestation(SignedAttestation(4, 12, None), [], watermark)
    assert source.refusal is Refusal.SOURCE_BELOW_MIN
    target = check_attestation(SignedAttestation(7, 9, None), [], watermark)  # source above its minimum
    assert target.refusal is Refusal.TARGET_NOT_ABOVE_MIN


def test_a_history_with_a_record_repeated_is_a_staircase_as_the_specs_find_no_slashable_pair() -> None:
    """An import may list the same attestation twice: equal records, distinct objects. The specs'
    `is_slashable_attestation_data` finds no pair in it, so `is_staircase` must say yes (else the import
    is minified for nothing). Killed mutant: comparing the records by identity instead of value."""
    datas = [attestation_data(1, 2, 0), attestation_data(1, 2, 0), attestation_data(2, 5, 1)]
    history = [SignedAttestation(1, 2, bytes(spec.hash_tree_root(d))) for d in datas[:2]]
    history.append(SignedAttestation(2, 5, bytes(spec.hash_tree_root(datas[2]))))
    assert history[0] is not history[1] and history[0] == history[1]
    for d1 in datas:
        for d2 in datas:
            assert not spec.is_slashable_attestation_data(d1, d2)
    assert is_staircase(history)
    assert is_staircase(list(reversed(history)))
