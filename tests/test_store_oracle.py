"""The store's record selection and import path, against an independent oracle.

The oracle is the consensus specs' own `is_slashable_attestation_data` (phase0), applied to the
candidate and EVERY record the validator ever had: the complete history, never the store's or the
model's selection. What the store accepts must form no slashable pair with any of them; for histories
the store keeps whole, its verdict must be exactly the oracle's (the EIP-3076 low watermarks, written
out here from the EIP, waived for an exact re-sign).

Histories reach far past the store's NEIGHBOUR_STEPS point queries (gaps of thousands of epochs and
uint64 extremes), hold several records per target (imports), are slashable as imported (the store
must minify them), are minified already, or are the node's pruned in-memory view (`SlashingView`).
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covalidator.model.slashing.interchange import Interchange, ValidatorHistory
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock
from covalidator.model.slashing.view import SlashingView
from covalidator.runtime.store import NEIGHBOUR_STEPS, Store

spec: Any = __import__("eth_consensus_specs.phase0.minimal", fromlist=["spec"])

UINT64_MAX = 2**64 - 1
PUBKEY = b"\x07" * 48
GVR = b"\x00" * 32
_unknown = itertools.count(1)


@dataclass(frozen=True)
class Signed:
    """A record as the oracle sees it (the spec's AttestationData) and as the store sees it."""

    data: Any
    record: SignedAttestation


def signed(source: int, target: int, seed: int | None) -> Signed:
    """seed None: the signing root is unknown, so the data can never be proven equal to any other
    (a fresh block root per record)."""
    block_root = bytes([seed]) * 32 if seed is not None else next(_unknown).to_bytes(32, "big")
    data = spec.AttestationData(
        slot=0,
        index=0,
        beacon_block_root=block_root,
        source=spec.Checkpoint(epoch=source, root=b"\x00" * 32),
        target=spec.Checkpoint(epoch=target, root=b"\x00" * 32),
    )
    root = bytes(spec.hash_tree_root(data)) if seed is not None else None
    return Signed(data, SignedAttestation(source, target, root))


def slashable(a: Signed, b: Signed) -> bool:
    if a.record.signing_root is None or b.record.signing_root is None:
        different_data = True
    else:
        different_data = a.data != b.data
    return bool(
        (different_data and a.data.target.epoch == b.data.target.epoch)
        or spec.is_slashable_attestation_data(a.data, b.data)
        or spec.is_slashable_attestation_data(b.data, a.data)
    )


def oracle_accepts(candidate: Signed, history: list[Signed]) -> bool:
    """Complete-DB verdict from the specs and the EIP-3076 text: source <= target, no slashable pair
    with any record, and (an exact re-sign, or source >= min source and target > min target)."""
    s, t = candidate.record.source_epoch, candidate.record.target_epoch
    if s > t or any(slashable(candidate, h) for h in history):
        return False
    repeat = any(
        h.data == candidate.data and h.record.signing_root is not None and candidate.record.signing_root
        for h in history
    )
    if repeat or not history:
        return True
    return s >= min(h.record.source_epoch for h in history) and t > min(
        h.record.target_epoch for h in history
    )


# ---- strategies ----------------------------------------------------------------------------------------

GAPS = st.one_of(
    st.integers(0, 3),
    st.integers(NEIGHBOUR_STEPS - 2, NEIGHBOUR_STEPS + 2),  # around the switch to the range query
    st.integers(NEIGHBOUR_STEPS + 3, 10_000),
    st.integers(10_000, 2**40),
)
SEEDS = st.one_of(st.none(), st.integers(1, 3))


@st.composite
def staircases(draw: st.DrawFn) -> list[Signed]:
    """A history without slashable pairs: targets increase by drawn gaps, sources never decrease and
    never pass their target; optionally pushed up against uint64's end."""
    count = draw(st.integers(1, 8))
    target = draw(st.one_of(st.integers(0, 100), st.just(UINT64_MAX - 2**41)))
    source = draw(st.integers(0, target))
    history = []
    for _ in range(count):
        history.append(signed(source, target, draw(SEEDS)))
        step = draw(GAPS) + 1
        if target + step > UINT64_MAX:
            break
        target += step
        source = draw(st.integers(source, target))
    return history


@st.composite
def candidates(draw: st.DrawFn, history: list[Signed]) -> Signed:
    """Near a record (a few epochs either side of its source or target), a probe that pairs one
    record's source with another's target (what surrounds or is surrounded by records beyond the
    nearest ones), between two records, or anywhere, including uint64's ends."""
    epochs = sorted({e for h in history for e in (h.record.source_epoch, h.record.target_epoch)})

    def near() -> int:
        base = draw(st.sampled_from(epochs))
        return min(UINT64_MAX, max(0, base + draw(st.integers(-3, 3))))

    def between() -> int:
        low, high = sorted((draw(st.sampled_from(epochs)), draw(st.sampled_from(epochs))))
        return draw(st.integers(low, high))

    epoch = st.one_of(
        st.builds(near), st.builds(between), st.integers(0, UINT64_MAX), st.sampled_from([0, UINT64_MAX])
    )
    a, b = sorted((draw(epoch), draw(epoch)))
    if history and draw(st.booleans()):
        one, other = draw(st.sampled_from(history)), draw(st.sampled_from(history))
        a = min(UINT64_MAX, max(0, one.record.source_epoch + draw(st.integers(-2, 2))))
        b = min(UINT64_MAX, max(0, other.record.target_epoch + draw(st.integers(-2, 2))))
    if draw(st.booleans()) and history:  # re-sign a recorded message, or the same target with other data
        h = draw(st.sampled_from(history))
        a, b = h.record.source_epoch, h.record.target_epoch
        if draw(st.booleans()) and h.record.signing_root is not None:
            return h
    return signed(a, b, draw(SEEDS))


def new_store(folder: str) -> Store:
    return Store(Path(folder) / "db.sqlite", GVR)


def import_history(store: Store, records: list[Signed]) -> None:
    history = ValidatorHistory(PUBKEY, (), tuple(h.record for h in records))
    store.import_interchange(Interchange(GVR, (history,)))


def fill(store: Store, history: list[Signed], imported: bool) -> None:
    """`history` into the store: imported whole, or recorded one by one on the signing path."""
    if imported:
        import_history(store, history)
    else:
        for h in history:
            assert store.check_attestation(PUBKEY, h.record, record=True).safe


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the tests ---------------------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_store_verdicts_on_wide_staircases_are_the_oracles(data: st.DataObject) -> None:
    """Recorded one by one (the signing path) or imported whole: every later verdict equals the
    oracle's over the complete history, and accepted candidates extend it."""
    history = data.draw(staircases())
    imported = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as folder:
        store = new_store(folder)
        fill(store, history, imported)
        for _ in range(data.draw(st.integers(1, 6))):
            candidate = data.draw(candidates(history))
            record = data.draw(st.booleans())
            verdict = store.check_attestation(PUBKEY, candidate.record, record=record)
            expected = oracle_accepts(candidate, history)
            assert verdict.safe == expected, (
                candidate.record,
                [h.record for h in history],
                verdict.describe(),
            )
            if verdict.safe and record and not verdict.repeat:
                history.append(candidate)
        store.close()


@st.composite
def interchanges(draw: st.DrawFn) -> list[Signed]:
    """What a VC may export: a staircase, plus records sharing one of its targets with other sources
    and roots (a double vote the VC signed), plus arbitrary records (surrounds), in any order."""
    history = draw(staircases())
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(history)).record.target_epoch
        history.append(signed(draw(st.integers(0, target)), target, draw(SEEDS)))
    for _ in range(draw(st.integers(0, 2))):
        a, b = sorted((draw(st.integers(0, 60)), draw(st.integers(0, 60))))
        history.append(signed(a, b, draw(SEEDS)))
    return draw(st.permutations(history))


@SETTINGS
@given(st.data())
def test_imported_histories_even_slashable_ones_never_let_a_slashable_vote_through(
    data: st.DataObject,
) -> None:
    """Any interchange, slashable or with several records per target: whatever the store accepts
    afterwards forms no slashable pair with ANY imported record (the store keeps staircases whole
    and minifies the rest; the oracle never sees which)."""
    imported = data.draw(interchanges())
    with tempfile.TemporaryDirectory() as folder:
        store = new_store(folder)
        import_history(store, imported)
        accepted: list[Signed] = []
        for _ in range(data.draw(st.integers(1, 8))):
            candidate = data.draw(candidates(imported + accepted))
            verdict = store.check_attestation(PUBKEY, candidate.record, record=True)
            if verdict.safe:
                assert not any(slashable(candidate, h) for h in imported + accepted), (
                    candidate.record,
                    [h.record for h in imported + accepted],
                )
                if not verdict.repeat:
                    accepted.append(candidate)
        store.close()


@SETTINGS
@given(st.data())
def test_a_minified_import_refuses_everything_the_full_history_would(data: st.DataObject) -> None:
    """An interchange already minified by the VC (one record per validator: the max source and max
    target, no root), of a history the oracle knows whole."""
    history = data.draw(staircases())
    top = SignedAttestation(
        max(h.record.source_epoch for h in history), max(h.record.target_epoch for h in history)
    )
    with tempfile.TemporaryDirectory() as folder:
        store = new_store(folder)
        store.import_interchange(Interchange(GVR, (ValidatorHistory(PUBKEY, (), (top,)),)))
        for _ in range(data.draw(st.integers(1, 6))):
            candidate = data.draw(candidates(history))
            if store.check_attestation(PUBKEY, candidate.record, record=True).safe:
                assert not any(slashable(candidate, h) for h in history)
                history.append(candidate)
        store.close()


@SETTINGS
@given(st.data())
def test_the_nodes_pruned_view_never_accepts_what_the_full_history_refuses(data: st.DataObject) -> None:
    """`SlashingView` keeps a few recent epochs (always the latest record) and checks with its own
    low watermarks: what it accepts forms no slashable pair with the complete history."""
    history = data.draw(staircases())
    view = SlashingView()
    for h in history:
        view.record_attestation("v", h.record)
    cut = data.draw(st.sampled_from([*sorted({h.record.target_epoch for h in history}), UINT64_MAX]))
    view.prune(cut, 0)
    for _ in range(data.draw(st.integers(1, 6))):
        candidate = data.draw(candidates(history))
        verdict = view.check_attestation("v", candidate.record)
        if verdict.safe:
            assert not any(slashable(candidate, h) for h in history), (candidate.record, cut)
            if not verdict.repeat:
                view.record_attestation("v", candidate.record)
                history.append(candidate)


def test_the_cases_found_by_planting_bugs_stay_refused() -> None:
    """Hand-made from two planted bugs the properties above catch: a nearest-below record more than
    NEIGHBOUR_STEPS epochs away (a range query in the wrong order finds the farthest one), and an
    import whose two records at one target hide a surround from a staircase test that looks at one."""
    far = [signed(0, 1, 1), signed(100, 101, 2), signed(300, 400, 3)]
    double_at_10 = [signed(1, 10, 1), signed(5, 10, None), signed(3, 20, 2)]
    for history, candidate in ((far, signed(50, 200, 1)), (double_at_10, signed(4, 21, 1))):
        assert not oracle_accepts(candidate, history)
        with tempfile.TemporaryDirectory() as folder:
            store = new_store(folder)
            import_history(store, history)
            assert not store.check_attestation(PUBKEY, candidate.record, record=True).safe
            store.close()


def test_the_nearest_record_exactly_at_the_switch_to_the_range_query_is_found() -> None:
    """The point queries cover NEIGHBOUR_STEPS targets, the range query the rest: a surrounding or
    surrounded record at every distance around that switch, above and below the candidate, must be
    found (a mutant that stopped early at a distance of NEIGHBOUR_STEPS + 1 survived the drawn gaps)."""
    assert_nearest_found(0, range(NEIGHBOUR_STEPS - 3, NEIGHBOUR_STEPS + 4))
    # and searches of twice that length and around it (the downward one spans distance + 9): an early
    # stop that compared the 64 targets tried with half the distance fired at 128 and 129, 64 unsearched
    assert_nearest_found(0, range(2 * NEIGHBOUR_STEPS - 10, 2 * NEIGHBOUR_STEPS + 2))


# The store keeps epochs as signed 64-bit integers (epoch - 2^63): its arithmetic on them changes sign
# at epoch 2^63. These offsets put the searches' starting targets at stored values from -64 to 64, where
# bitwise and arithmetic slips on the stored values can equal the step count.
MIDDLE = 2**63


def test_the_nearest_record_is_found_where_the_stored_epochs_change_sign() -> None:
    """Mutants that divide by, take the remainder of, multiply, AND or XOR the stored start survived
    every drawn history: a start stored as 0 raised, and small stored values made the early stop fire
    with targets left unsearched (63 & 127 = 63; -64 ^ 1 = -63). Candidates whose searches start at the sign change, at the same distances
    around the switch (and twice it), must still be refused."""
    distances = [*range(NEIGHBOUR_STEPS - 3, NEIGHBOUR_STEPS + 4), 2 * NEIGHBOUR_STEPS - 1]
    for stored_start in (
        -NEIGHBOUR_STEPS,
        -NEIGHBOUR_STEPS + 1,
        -1,
        0,
        1,
        NEIGHBOUR_STEPS - 1,
        NEIGHBOUR_STEPS,
    ):
        for distance in distances:
            # the upward search starts at base + 35, the downward one at base + 10 + distance
            assert_nearest_found(MIDDLE + stored_start - 35, [distance], only="above")
            assert_nearest_found(MIDDLE + stored_start - 10 - distance, [distance], only="below")


def assert_nearest_found(base: int, distances: Any, only: str = "") -> None:
    for distance in distances:
        # above: (0, 35 + distance) surrounds the candidate (10, 34), whose upward search starts at 35
        above = (
            [signed(base, base + 5, 1), signed(base, base + 35 + distance, 2)],
            signed(base + 10, base + 34, 3),
        )
        # below: the candidate (2, 11 + distance) surrounds (5, 10), found searching down from 10 + distance
        below = (
            [signed(base, base + 1, 1), signed(base + 5, base + 10, 2), signed(base + 6, base + 10_000, 3)],
            signed(base + 2, base + 11 + distance, 4),
        )
        for name, (history, candidate) in (("above", above), ("below", below)):
            if only and name != only:
                continue
            assert_store_refuses(history, candidate, (base, distance))


def test_a_double_vote_at_the_highest_target_and_a_record_just_above_the_candidate() -> None:
    """Two shapes the drawn histories missed, each refused by the oracle:
    - a double vote at exactly the highest recorded target, in epochs stored as small integers (near
      2^63, where CPython shares int objects: a mutant comparing the target to the maximum by
      identity skipped the records at that target);
    - a candidate that surrounds the record below it while another record sits at its target + 1 (a
      mutant starting the downward search at t | 1 found that one and stopped)."""
    cases = []
    for base in (0, MIDDLE - 1, MIDDLE):
        history = [signed(base, base + 1, 1), signed(base + 5, base + 10, 2)]
        cases.append((history, signed(base + 5, base + 10, 3)))  # other data at target base + 10
        history = [signed(base, base + 1, 1), signed(base + 5, base + 10, 2), signed(base + 6, base + 21, 3)]
        cases.append((history, signed(base + 2, base + 20, 1)))  # surrounds (5, 10); (6, 21) at t + 1
    for history, candidate in cases:
        assert_store_refuses(history, candidate, ())


def assert_store_refuses(history: list[Signed], candidate: Signed, context: tuple[int, ...]) -> None:
    """The oracle refuses `candidate` after the staircase `history`, and so does the store, whether
    the history was imported whole or recorded one by one on the signing path."""
    assert not oracle_accepts(candidate, history), (context, candidate.record)
    for imported in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            store = new_store(folder)
            fill(store, history, imported)
            verdict = store.check_attestation(PUBKEY, candidate.record, record=False)
            assert not verdict.safe, (context, candidate.record, imported)
            store.close()


def test_re_signing_any_recorded_message_is_a_repeat_the_lowest_target_included() -> None:
    """EIP-3076 waives its watermarks for an exact re-sign, and the oracle accepts one: every recorded
    message, at the lowest target as at the others, must come back as a safe repeat. Near epoch 2^63
    the store's stored epochs are small integers, which CPython shares: a mutant that compared the
    candidate's target with the lowest by identity skipped the records there and refused the re-sign
    of the lowest one as below the watermark."""
    for base in (0, MIDDLE - 3, MIDDLE, MIDDLE + 3):
        history = [signed(base, base + 1, 1), signed(base + 5, base + 10, 2), signed(base + 6, base + 80, 3)]
        for imported in (True, False):
            with tempfile.TemporaryDirectory() as folder:
                store = new_store(folder)
                fill(store, history, imported)
                for h in history:
                    assert oracle_accepts(h, history)
                    verdict = store.check_attestation(PUBKEY, h.record, record=True)
                    assert verdict.safe and verdict.repeat, (base, imported, h.record, verdict.describe())
                store.close()


def test_a_validator_without_attestations_in_an_import_stops_no_other_validators_history() -> None:
    """An interchange's validators are imported one after the other; one with blocks but no
    attestations has nothing to merge. The validators after it must still get their histories: a
    surrounding vote against one of them is refused, as the oracle refuses it."""
    history = [signed(5, 10, 1), signed(6, 20, 2)]
    candidate = signed(4, 21, 3)  # surrounds (5, 10) and (6, 20)
    assert not oracle_accepts(candidate, history)
    blocks_only = ValidatorHistory(b"\x01" * 48, (SignedBlock(3, b"\x11" * 32),), ())
    attesting = ValidatorHistory(PUBKEY, (), tuple(h.record for h in history))
    for order in ((blocks_only, attesting), (attesting, blocks_only)):
        with tempfile.TemporaryDirectory() as folder:
            store = new_store(folder)
            store.import_interchange(Interchange(GVR, order))
            assert not store.check_attestation(PUBKEY, candidate.record, record=False).safe
            assert not store.check_block(b"\x01" * 48, SignedBlock(3, b"\x22" * 32), record=False).safe
            store.close()
