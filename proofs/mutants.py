"""Deliberately broken node guards: the planted bugs the proofs, the tests and the simulator catch.

Each is the real `GUARDS` with one guard (or two) replaced, as qbft's planted rules replace a rule
(model/qbft_mutants.py): a plausible mistake a change could make. Nothing running uses them; the
cluster simulator (`covalidator simulate cluster --plant-bug NAME`) and the tests hand one to the
node model through `NodeConfig.guards`, and the store's re-check is switched off with
`store_recheck=False` where the bug is the store's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from covalidator.model.node.guards import GUARDS, Guards
from covalidator.model.node.phases import DutyRecord, Phase
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock, Verdict
from covalidator.model.slashing.view import SlashingView


def serve_while_persisting(phase: Phase) -> bool:
    """Hand decided data to the VC as soon as it is decided, while the store is still writing it."""
    return phase in (Phase.PERSISTING, Phase.SIGNING)


def never_blocked(earlier: DutyRecord, later: DutyRecord, earlier_keys: Any, later_keys: Any) -> bool:
    """No ordering rule: join a duty's consensus while an earlier one is undecided."""
    return False


def ignore_refusals(refused: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Sign what the store refused to record."""
    return {}


def view_accepts_everything(
    view: SlashingView, pubkey: str, message: SignedAttestation | SignedBlock
) -> Verdict:
    """Vote for data without checking it against this node's slashing view."""
    return Verdict(True)


def below_threshold(count: Any, threshold: Any) -> Any:
    """Combine from M - 1 partials."""
    return count >= threshold - 1


def release_any_root(serves: Any, root: Any, decided_root: Any) -> Any:
    """Signer mode: sign whatever a signing request names, decided or not."""
    return True


def release_before_persist(serves: Any, root: Any, decided_root: Any) -> Any:
    """Signer mode: sign the decided value at once, while the store is still writing it."""
    return root == decided_root


class PlantedBug(NamedTuple):
    guards: Guards
    store_recheck: bool = True  # False: the store records whatever it is given (the bug is the store's)


PLANTED_BUGS: dict[str, PlantedBug] = {
    "none": PlantedBug(GUARDS),
    "serve-while-persisting": PlantedBug(GUARDS._replace(may_serve=serve_while_persisting)),
    "no-ordering-rule": PlantedBug(GUARDS._replace(is_blocked_by=never_blocked)),
    "ignore-store-refusals": PlantedBug(GUARDS._replace(refused_by_store=ignore_refusals)),
    "no-guards": PlantedBug(GUARDS._replace(is_blocked_by=never_blocked, refused_by_store=ignore_refusals)),
    "no-slashing-checks": PlantedBug(
        GUARDS._replace(check_slashing=view_accepts_everything, refused_by_store=ignore_refusals),
        store_recheck=False,
    ),
    "below-threshold": PlantedBug(GUARDS._replace(is_threshold_met=below_threshold)),
    "release-any-root": PlantedBug(GUARDS._replace(may_release=release_any_root)),
    "release-before-persist": PlantedBug(GUARDS._replace(may_release=release_before_persist)),
}
