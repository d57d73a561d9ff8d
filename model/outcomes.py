"""Named reasons a duty can end with, per validator (the duty tracker and metrics use these names).

Every duty of every validator ends in exactly one DutyOutcome: success, or one of these.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    NO_CONSENSUS = "no_consensus"  # the QBFT instance did not decide by the deadline
    SLASHING_REFUSED = "slashing_refused"  # the decided data was slashable against this node's DB
    NO_LOCAL_VC_SIGNATURE = "no_local_vc_signature"  # this node's VC never signed
    INSUFFICIENT_PEER_SIGNATURES = "insufficient_peer_signatures"  # fewer than M partials arrived
    INVALID_PEER_SIGNATURE = "invalid_peer_signature"  # partials arrived, but too many were invalid
    FETCH_BN_ERROR = "fetch_bn_error"  # this node's BN could not give duties or data
    BROADCAST_BN_ERROR = "broadcast_bn_error"  # the BN refused the combined submission
    DEADLINE_EXCEEDED = "deadline_exceeded"  # still under way at the deadline (no sharper reason)
    OUT_OF_ORDER = "out_of_order"  # an earlier duty of the validator was still open at the deadline
    NO_RANDAO = "no_randao"  # a proposal whose RANDAO reveal never reached the threshold
    SELECTION_PROOF_NOT_COMBINED = "selection_proof_not_combined"  # the VC is not DV-aware (see README)
    VC_SIGNED_OTHER_DATA = "vc_signed_other_data"  # the VC signed data that was not decided
