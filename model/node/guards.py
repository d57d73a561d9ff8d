"""The guards on the path from decided data to a signature, as one replaceable set (as qbft's `Rules`).

Decides the checks the safety theorems assume of the node (proofs/dv_safety.py):
- `may_serve`: decided data reaches the VC, and partials over it count, only in the phase that
  follows PERSISTED (theorem persist_before_serve);
- `is_blocked_by` and `check_slashing`: guard G1 of dv_safety, consensus validity with the ordering
  rule: a node joins a slashable duty's consensus only when every earlier duty of the same kind of
  its validators is decided and persisted here, or ended, and it votes only for data its slashing
  view accepts (`is_attestation_acceptable` / `is_block_acceptable`);
- `refused_by_store`: the store's re-check (guard G2): a validator whose slashing records the store
  refused at Persist is never served nor signed;
- `is_threshold_met`: a signature is combined only from M partials over one root (lemma A);
- `may_release`: in signer mode this node signs its own partial of a consensus duty, and hands the
  group signature to the VC, only in a phase `may_serve` allows and only over the decided root
  (theorem signer_safety);
- `may_cosign`: in signer mode this node adds its partial over a message a PEER chose only for a kind
  no slashing condition covers (sync committee messages) and only once more peers than may be
  Byzantine signed it (one honest co-validator's beacon node saw that head).
The node calls them through `NodeConfig.guards`; nothing else decides these questions. Tests and
the cluster simulator plant bugs by replacing one (proofs/mutants.py), never by patching the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from covalidator.model.duty import SLASHABLE_KINDS
from covalidator.model.logic import And
from covalidator.model.node.phases import UNDECIDED, DutyRecord, Phase, may_serve
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock, Verdict
from covalidator.model.slashing.view import SlashingView


def is_blocked_by(earlier: DutyRecord, later: DutyRecord, earlier_keys: Any, later_keys: Any) -> bool:
    """`earlier` must finish here before `later` starts its consensus: the same slashable kind, an
    earlier slot, not yet decided and persisted (nor ended), and a validator in common."""
    return (
        later.id.kind in SLASHABLE_KINDS
        and earlier.id.kind is later.id.kind
        and earlier.id.slot < later.id.slot
        and earlier.phase in UNDECIDED
        and not set(earlier_keys).isdisjoint(later_keys)
    )


def check_slashing(view: SlashingView, pubkey: str, message: SignedAttestation | SignedBlock) -> Verdict:
    """The slashing half of the consensus validity predicate: this node's view's verdict."""
    if isinstance(message, SignedAttestation):
        return view.check_attestation(pubkey, message)
    return view.check_block(pubkey, message)


def refused_by_store(refused: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The validators (group pubkey -> the store's reason) whose records the store refused."""
    return dict(refused)


def is_threshold_met(count: Any, threshold: Any) -> Any:
    """M partials over one root: enough to combine (dual-executable: lemma A counts with it)."""
    return count >= threshold


def may_release(serves: Any, root: Any, decided_root: Any) -> Any:
    """A partial (or the group signature) over `root` of a consensus duty leaves this node only when
    its phase serves (`may_serve`: decided and persisted) and `root` is the decided root
    (dual-executable: theorem signer_safety proves it on this function)."""
    return And(serves, root == decided_root)


def may_cosign(slashable: bool, senders: int, faulty: int) -> bool:
    """This node signs a root its peers chose (a sync committee message's block root): never for a
    slashable kind, and only when more than `faulty` peers signed it."""
    return not slashable and senders > faulty


class Guards(NamedTuple):
    may_serve: Callable[[Phase], bool] = may_serve
    is_blocked_by: Callable[[DutyRecord, DutyRecord, Any, Any], bool] = is_blocked_by
    check_slashing: Callable[[SlashingView, str, SignedAttestation | SignedBlock], Verdict] = check_slashing
    refused_by_store: Callable[[tuple[tuple[str, str], ...]], dict[str, str]] = refused_by_store
    is_threshold_met: Callable[[Any, Any], Any] = is_threshold_met
    may_release: Callable[[Any, Any, Any], Any] = may_release
    may_cosign: Callable[[bool, int, int], bool] = may_cosign


GUARDS = Guards()
