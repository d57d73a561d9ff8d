"""The node's in-memory view of its slashing DB, used by the consensus validity predicate.

Decides whether a proposed value is slashable *before* this node votes for it. It holds, per cluster
validator, only recent records (pruned at each epoch, always keeping the latest) and checks with the
low watermarks OF WHAT IT KEEPS: that is a pruned DB, which refuses everything the full DB would
(proofs/slashing.py, pruning_soundness). The durable store checks again at Persist (theorem
attestation_inductive_safety), so a view that lags the store can cost a duty, never a slashing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from covalidator.model.slashing.rules import (
    SignedAttestation,
    SignedBlock,
    Verdict,
    attestation_watermark,
    check_attestation,
    check_block,
)

KEEP_EPOCHS = 4  # records of the last epochs kept in memory (the latest one always)


@dataclass
class SlashingView:
    attestations: dict[str, list[SignedAttestation]] = field(default_factory=dict)
    blocks: dict[str, list[SignedBlock]] = field(default_factory=dict)

    def check_attestation(self, pubkey: str, att: SignedAttestation) -> Verdict:
        kept = self.attestations.get(pubkey, [])
        return check_attestation(att, kept, attestation_watermark(kept))

    def check_block(self, pubkey: str, block: SignedBlock) -> Verdict:
        kept = self.blocks.get(pubkey, [])
        return check_block(block, kept, min((b.slot for b in kept), default=None))

    def record_attestation(self, pubkey: str, att: SignedAttestation) -> None:
        kept = self.attestations.setdefault(pubkey, [])
        if att not in kept:
            kept.append(att)

    def record_block(self, pubkey: str, block: SignedBlock) -> None:
        kept = self.blocks.setdefault(pubkey, [])
        if block not in kept:
            kept.append(block)

    def prune(self, before_epoch: int, before_slot: int) -> None:
        """Forget records older than the cut-offs, keeping each validator's latest."""
        for pubkey, atts in self.attestations.items():
            latest = max(a.target_epoch for a in atts)
            self.attestations[pubkey] = [a for a in atts if a.target_epoch >= min(before_epoch, latest)]
        for pubkey, blocks in self.blocks.items():
            latest = max(b.slot for b in blocks)
            self.blocks[pubkey] = [b for b in blocks if b.slot >= min(before_slot, latest)]
