"""QBFT wire types: value hashing, signed encoding, and JSON round trips of every event and action."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft.events import (
    Broadcast,
    Decide,
    Expired,
    InputValue,
    Received,
    Send,
    StartTimer,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.instance import Decision, InstanceConfig
from covalidator.model.qbft.messages import (
    Envelope,
    Message,
    MsgType,
    Value,
    canonical_json,
    compute_value_hash,
    is_value_consistent,
    make_value,
    signing_bytes,
)

duties = st.builds(DutyId, st.integers(0, 2**40), st.sampled_from(DutyKind))
hashes = st.one_of(st.just(""), st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()))
messages = st.builds(
    Message,
    st.sampled_from(MsgType),
    duties,
    st.integers(1, 64),
    st.integers(1, 1000),
    hashes,
    st.integers(0, 999),
    hashes,
    st.text(alphabet="0123456789abcdef", max_size=16),
)
envelopes = st.builds(
    Envelope, messages, st.one_of(st.none(), st.binary(max_size=64)), st.tuples(messages, messages)
)
values = st.binary(max_size=200).map(make_value)


def test_value_hash_is_sha256_of_the_body() -> None:
    body = canonical_json({"b": [1, 2], "a": "x"})
    assert body == b'{"a":"x","b":[1,2]}'
    assert compute_value_hash(body) == "0x" + hashlib.sha256(body).hexdigest()
    value = make_value(body)
    assert value.hash == compute_value_hash(body) and value.body == body
    assert is_value_consistent(value.hash, body)
    assert not is_value_consistent(value.hash, body + b" ")


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"x": 1, "y": {"b": 2, "a": 1}}) == canonical_json({"y": {"a": 1, "b": 2}, "x": 1})


@given(messages)
def test_signing_bytes_cover_every_field_but_the_signature(m: Message) -> None:
    assert signing_bytes(dataclasses.replace(m, signature="ff")) == signing_bytes(m)
    for field, other in [
        ("round", m.round + 1),
        ("sender", m.sender + 1),
        ("value_hash", m.value_hash + "0"),
        ("prepared_round", m.prepared_round + 1),
        ("prepared_hash", m.prepared_hash + "0"),
        ("type", MsgType.COMMIT if m.type != MsgType.COMMIT else MsgType.PREPARE),
        ("instance", DutyId(m.instance.slot + 1, m.instance.kind)),
    ]:
        assert signing_bytes(dataclasses.replace(m, **{field: other})) != signing_bytes(m), field


@given(envelopes)
def test_envelope_json_round_trip(env: Envelope) -> None:
    text = env.to_json()
    json.loads(text)  # plain JSON: bytes travel as hex
    assert Envelope.from_json(text) == env


@given(duties, values, envelopes, st.integers(1, 50), st.integers(0, 10**9))
def test_events_and_actions_json_round_trip(
    duty: DutyId, value: Value, env: Envelope, round: int, at: int
) -> None:
    items = [
        InputValue(duty, value),
        Received(env),
        TimerFired(duty, TimerKind.ROUND, round, at),
        Broadcast(env),
        Send(3, env),
        StartTimer(duty, TimerKind.EXPIRY, 0, at),
        Decide(duty, round, value, (env.message,)),
        Expired(duty, True),
        Decision(round, value, (env.message,)),
        InstanceConfig(duty, 7, 2, at, at + 5000),
    ]
    for item in items:
        assert type(item).from_json(item.to_json()) == item, type(item).__name__
