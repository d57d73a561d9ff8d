"""The node model with what a real BN and a non-DV-aware VC do (found by the Lodestar e2e):
duties refused before genesis are asked again at genesis and on head events, and aggregation
requests of a VC that never asked for combined selection proofs are passed to the BN at once
instead of being held until the VC's next slot is lost."""

from __future__ import annotations

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig, NodeConfig, ValidatorKeys
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import ForkSchedule
from covalidator.model.node.events import (
    DutiesFailed,
    DutiesFetched,
    DutiesKind,
    FetchDuties,
    HeadChanged,
    PassToBN,
    ReplyToVC,
    Started,
    StartTimer,
    Tick,
    TimerFired,
    TimerKey,
    ValidatorInfo,
    ValidatorsResolved,
    VCRequest,
    VCRequestKind,
)
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from tests.helpers.fake_bn import SPEC

GENESIS_MS = 60_000
SLOT_MS = 6_000
GROUP = ["0x" + f"{i:02x}" * 48 for i in (0xA1, 0xA2)]
SHARES = [tuple("0x" + f"{i + 16 * s:02x}" * 48 for s in range(1, 5)) for i in (0x01, 0x02)]


def started_before_genesis() -> tuple[NodeState, list[object]]:
    chain = ChainConfig(SlotClock(GENESIS_MS, SLOT_MS, 8), ForkSchedule.from_spec_config(SPEC, b"\x4b" * 32))
    validators = tuple(ValidatorKeys(g, s) for g, s in zip(GROUP, SHARES, strict=True))
    state = NodeState(NodeConfig(share_index=1, threshold=3, validators=validators, chain=chain))
    state, actions = step(state, Started(GENESIS_MS - 40_000))
    seen = list(actions)
    state, actions = step(state, ValidatorsResolved((ValidatorInfo(GROUP[0], 0), ValidatorInfo(GROUP[1], 1))))
    return state, [*seen, *actions]


def fetched(actions: object) -> set[tuple[DutiesKind, int]]:
    return {(a.kind, a.epoch) for a in actions if isinstance(a, FetchDuties)}  # type: ignore[attr-defined]


def test_duties_refused_before_genesis_are_asked_again_at_genesis() -> None:
    state, actions = started_before_genesis()
    timers = [a for a in actions if isinstance(a, StartTimer) and a.key.purpose == "epoch"]
    assert [t.at_ms for t in timers] == [GENESIS_MS]
    assert (DutiesKind.ATTESTER, 0) in fetched(actions)
    for kind in (DutiesKind.ATTESTER, DutiesKind.PROPOSER):
        for epoch in (0, 1):  # Lodestar 1.5.1: "Cannot get duties for epoch more than one ahead"
            state, _ = step(state, DutiesFailed(kind, epoch, "400: more than one ahead"))
    state, actions = step(state, TimerFired(TimerKey("epoch"), GENESIS_MS))
    assert {(DutiesKind.ATTESTER, 0), (DutiesKind.PROPOSER, 0), (DutiesKind.ATTESTER, 1)} <= fetched(actions)
    next_epoch = [a.at_ms for a in actions if isinstance(a, StartTimer) and a.key.purpose == "epoch"]
    assert next_epoch == [GENESIS_MS + 8 * SLOT_MS]

    # a head event asks again for what was never fetched, as for a changed dependent root
    state, _ = step(state, DutiesFailed(DutiesKind.ATTESTER, 0, "timeout"))
    state, actions = step(state, HeadChanged(1, "0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 32))
    assert (DutiesKind.ATTESTER, 0) in fetched(actions)


def test_aggregation_requests_without_combined_selections_go_to_the_bn_at_once() -> None:
    state, _ = started_before_genesis()
    state, _ = step(state, TimerFired(TimerKey("epoch"), GENESIS_MS))
    now = GENESIS_MS + 2 * SLOT_MS + 4_000  # 2/3 into slot 2, when a VC aggregates
    state, _ = step(state, Tick(now))
    for request_id, kind, params in (
        (7, VCRequestKind.AGGREGATE_ATTESTATION, {"slot": "2", "attestation_data_root": "0x" + "aa" * 32}),
        (
            8,
            VCRequestKind.SYNC_CONTRIBUTION,
            {"slot": "2", "subcommittee_index": "0", "beacon_block_root": "0x"},
        ),
    ):
        state, actions = step(state, VCRequest(request_id, kind, params))
        assert [a for a in actions if isinstance(a, ReplyToVC)] == []
        assert [a for a in actions if isinstance(a, PassToBN)] == [PassToBN(request_id)]  # the BN answers it
        assert request_id not in state.requests  # nothing held
    assert DutyId(2, DutyKind.AGGREGATOR) not in state.duties


def test_proposer_duties_answered_with_another_epochs_slots_are_asked_again() -> None:
    """Lodestar 1.5.1 answers next-epoch proposer duties with the current epoch's slots: the node must
    not take that as epoch 1's duties (no proposal of epoch 1 would ever be served), and asks again."""
    state, _ = started_before_genesis()
    state, _ = step(state, TimerFired(TimerKey("epoch"), GENESIS_MS))
    wrong = tuple({"slot": str(s), "validator_index": "0", "pubkey": GROUP[0]} for s in range(8))
    state, _ = step(state, DutiesFetched(DutiesKind.PROPOSER, 1, wrong, "0x" + "44" * 32))
    assert (DutiesKind.PROPOSER, 1) not in state.fetched
    assert not any(d.kind is DutyKind.PROPOSER and d.slot < 8 for d in state.duties)
    state, actions = step(state, TimerFired(TimerKey("epoch"), GENESIS_MS + 8 * SLOT_MS))
    assert (DutiesKind.PROPOSER, 1) in fetched(actions)
    right = ({"slot": "9", "validator_index": "1", "pubkey": GROUP[1]},)
    state, _ = step(state, DutiesFetched(DutiesKind.PROPOSER, 1, right, "0x" + "44" * 32))
    assert DutyId(9, DutyKind.PROPOSER) in state.duties
