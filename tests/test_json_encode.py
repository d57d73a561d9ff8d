"""`model.node.codec.to_json` gives exactly what dataclasses-json's `to_dict(encode_json=True)` gives,
on every event and action a simulated node steps through (traces and peer frames depend on it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum, IntEnum, StrEnum
from functools import cache
from typing import Any

from dataclasses_json import DataClassJsonMixin, config

from covalidator.model.node.codec import dumps, to_json, typed
from covalidator.model.node.events import ACTION_TYPES, EVENT_TYPES, PassToBN
from covalidator.sim.cluster import ClusterResult, ClusterScenario, run_cluster


@cache
def traced_run() -> ClusterResult:
    return run_cluster(ClusterScenario(validators=4, epochs=2, seed=9, crash=1), trace_node=2)


@cache
def traced_signer_run() -> ClusterResult:
    """Signer mode: the Remote Signing requests and this node's share signatures."""
    return run_cluster(ClusterScenario(validators=4, epochs=1, seed=9, signer=True), trace_node=2)


def test_pool_actions_and_events_encode_as_dataclasses_json_does() -> None:
    from covalidator.model.duty import DutyKind
    from covalidator.model.node.events import PersistPool, PoolPartial, Started

    message = {"epoch": "1", "validator_index": "2"}
    partial = PoolPartial(DutyKind.VOLUNTARY_EXIT, "0xab", message, "0x11", 3, "0x22")
    for item in (PersistPool((partial,)), Started(5, pool=(partial,))):
        assert json.dumps(to_json(item)) == json.dumps(item.to_dict(encode_json=True))


def test_every_event_and_action_of_a_run_encodes_as_dataclasses_json_does() -> None:
    seen: set[str] = set()
    for event, actions in [*traced_run().trace, *traced_signer_run().trace]:
        for item in (event, *actions):
            seen.add(type(item).__name__)
            oracle = item.to_dict(encode_json=True)
            assert json.dumps(to_json(item)) == json.dumps(oracle)
            # what traces and peer frames write: the C encoder with codec's hook, one line per item
            assert dumps(item) == json.dumps(oracle, separators=(",", ":"))
            assert dumps(typed(item)) == json.dumps(
                {"type": type(item).__name__, **oracle}, separators=(",", ":")
            )
    # a clean run has no BN failures, no Send (round changes only), no Log actions, and its VCs
    # are DV-aware (no request passed to the BN)
    assert (set(EVENT_TYPES) | set(ACTION_TYPES)) - seen <= {
        "BeaconDataFailed",
        "DutiesFailed",
        "Log",
        "Send",
        "PassToBN",
        "PersistPool",  # exits and registrations: not in a simulated run; encoded below
    }
    assert json.dumps(to_json(PassToBN(3))) == json.dumps(PassToBN(3).to_dict(encode_json=True))


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 2


class Plain(Enum):
    ONE = "one"


@dataclass(frozen=True)
class Inner(DataClassJsonMixin):
    raw: bytes = field(default=b"\x01", metadata=config(encoder=lambda b: b.hex()))


@dataclass(frozen=True)
class Outer(DataClassJsonMixin):
    colour: Colour = Colour.RED
    level: Level = Level.HIGH
    plain: Plain = Plain.ONE
    inner: tuple[Inner, ...] = (Inner(), Inner(b"\xff"))
    by_colour: dict[Colour, list[Plain]] = field(default_factory=lambda: {Colour.RED: [Plain.ONE]})
    by_level: dict[Level, bytes] = field(default_factory=lambda: {Level.HIGH: b"\x07"})
    blob: bytes = b"\x00\x02"  # no encoder: dataclasses-json writes a list of ints
    members: frozenset[int] = frozenset({3})
    anything: Any = field(default_factory=lambda: {"a": [1, None, 2.5, True]})
    missing: str | None = None


def test_the_corner_cases_encode_as_dataclasses_json_does() -> None:
    value = Outer()
    oracle = value.to_dict(encode_json=True)
    assert json.dumps(to_json(value)) == json.dumps(oracle)
    assert dumps(value) == json.dumps(oracle, separators=(",", ":"))
    # a key the C encoder refuses (an enum that is neither str nor int): the fallback converts it
    assert dumps({"k": {Plain.ONE: (1, Level.HIGH)}}) == '{"k":{"one":[1,2]}}'


def test_peer_payloads_decode_as_dataclasses_json_decodes() -> None:
    from covalidator.model.duty import DutyId, DutyKind
    from covalidator.model.node.events import (
        PartialSignature,
        PartialSignatures,
        PeerMessage,
        PeerPayload,
        PoolPartial,
    )
    from covalidator.runtime.peers import decode_payload

    payloads = [e.payload for e, _ in traced_run().trace if isinstance(e, PeerMessage)]
    assert any(p.qbft and p.qbft.justification for p in payloads)
    assert any(p.partials for p in payloads)
    root, sig = "0x" + "11" * 32, "0x" + "22" * 96
    payloads += [  # what a simulation may not send: a resend that waits, and exits / registrations
        PeerPayload(
            partials=PartialSignatures(
                DutyId(3, DutyKind.RANDAO),
                (PartialSignature("0xab", root, sig, {"epoch": "0"}),),
                waiting=True,
            )
        ),
        PeerPayload(
            pool=(
                PoolPartial(
                    DutyKind.VOLUNTARY_EXIT, "0xab", {"epoch": "1", "validator_index": "2"}, root, 3, sig
                ),
            )
        ),
    ]
    for payload in payloads:
        data = json.loads(json.dumps(to_json(payload)))
        fast, slow = decode_payload(data, 4), PeerPayload.from_dict(data)
        assert fast == slow and repr(fast) == repr(slow)
