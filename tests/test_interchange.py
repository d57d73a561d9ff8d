"""Strict EIP-3076 v5 parsing, merging and minification."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covalidator.model.slashing.interchange import (
    Interchange,
    InterchangeError,
    ValidatorHistory,
    merge,
    minify_interchange,
    parse_interchange,
    to_json,
)
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock

GVR = "0x" + "00" * 32


def doc(data: object, version: object = "5", gvr: object = GVR) -> dict[str, object]:
    return {"metadata": {"interchange_format_version": version, "genesis_validators_root": gvr}, "data": data}


def entry(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"pubkey": "0x" + "ab" * 48, "signed_blocks": [], "signed_attestations": []}
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "document, path",
    [
        ([], "$: expected an object"),
        ({"data": []}, "missing required field 'metadata'"),
        (doc([], version=5), "unsupported version"),
        (doc([], gvr="0x00"), "$.metadata.genesis_validators_root: expected 32 bytes"),
        (doc([], gvr="00" * 32), "expected 0x-prefixed hex"),
        (doc({}), "$.data: expected an array"),
        (doc([entry(pubkey="0x" + "zz" * 48)]), "$.data[0].pubkey"),
        (
            doc([entry(signed_blocks=[{"slot": 5}])]),
            "$.data[0].signed_blocks[0].slot: expected a decimal string",
        ),
        (doc([entry(signed_blocks=[{"slot": " 5"}])]), "expected a decimal string"),
        (doc([entry(signed_blocks=[{"slot": "-5"}])]), "expected a decimal string"),
        (
            doc([entry(signed_blocks=[{"slot": "5", "signing_root": "0x12"}])]),
            "signing_root: expected 32 bytes",
        ),
        (doc([entry(signed_attestations=[{"source_epoch": "1"}])]), "missing required field 'target_epoch'"),
        (
            doc([entry(signed_attestations=[{"source_epoch": "1", "target_epoch": str(2**64)}])]),
            "does not fit",
        ),
        (
            doc([{"pubkey": "0x" + "ab" * 48, "signed_blocks": []}]),
            "missing required field 'signed_attestations'",
        ),
    ],
)
def test_strict_errors_name_the_path(document: object, path: str) -> None:
    with pytest.raises(InterchangeError) as info:
        parse_interchange(document)
    assert path in str(info.value)


def test_unknown_fields_are_tolerated() -> None:
    parsed = parse_interchange(doc([entry(extra=1, signed_blocks=[{"slot": "1", "note": "x"}])]))
    assert parsed.data[0].signed_blocks == (SignedBlock(1),)


records = st.builds(
    ValidatorHistory,
    st.sampled_from([b"\x01" * 48, b"\x02" * 48]),
    st.lists(
        st.builds(
            SignedBlock, st.integers(0, 2**64 - 1), st.one_of(st.none(), st.binary(min_size=32, max_size=32))
        )
    ).map(tuple),
    st.lists(st.builds(SignedAttestation, st.integers(0, 50), st.integers(0, 50), st.none())).map(tuple),
)


@given(st.lists(records, max_size=4))
def test_json_round_trip_and_merge(histories: list[ValidatorHistory]) -> None:
    inter = Interchange(b"\x00" * 32, tuple(histories))
    assert parse_interchange(to_json(inter)) == inter
    merged = merge([inter, inter])
    assert len({h.pubkey for h in merged.data}) == len(merged.data)
    for h in merged.data:
        originals = [x for x in histories if x.pubkey == h.pubkey]
        assert set(h.signed_blocks) == {b for x in originals for b in x.signed_blocks}
        assert set(h.signed_attestations) == {a for x in originals for a in x.signed_attestations}
    minified = minify_interchange(inter)
    for h in minified.data:
        assert len(h.signed_blocks) <= 1 and len(h.signed_attestations) <= 1


def test_merge_refuses_other_chain() -> None:
    a = Interchange(b"\x00" * 32, ())
    b = Interchange(b"\x01" * 32, ())
    with pytest.raises(InterchangeError, match="different chains"):
        merge([a, b])
