"""The cluster definition (model/cluster/definition.py) and its commands: identity create,
create-definition, definition sign/show. Round trip through the CLI, and each refusal by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from covalidator.model.cluster import definition
from covalidator.runtime import keys_io
from covalidator.runtime.cli import main

WITHDRAW = "0x" + "aa" * 20
FEES = "0x" + "bb" * 20


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def make_operators(tmp_path: Path, n: int) -> list[str]:
    keys = []
    for i in range(n):
        result = run("identity", "create", "--out", str(tmp_path / f"op{i}"))
        assert result.exit_code == 0, result.output
        keys.append(result.output.strip())
    return keys


def make_definition(tmp_path: Path, n: int = 4, *extra: str) -> Path:
    keys = make_operators(tmp_path, n)
    operators = ",".join(f"{k}@127.0.0.1:{4000 + i}" for i, k in enumerate(keys))
    out = tmp_path / "cluster-definition.json"
    result = run(
        "create-definition", "--operators", operators, "--validators", "2", "--network", "hoodi",
        "--withdrawal-address", WITHDRAW, "--fee-recipient", FEES, "--out", str(out), *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_every_operator_signs_and_the_definition_binds_everything(tmp_path: Path) -> None:
    path = make_definition(tmp_path)
    document = json.loads(path.read_text())
    parsed = definition.parse_definition(document)
    assert (parsed.threshold, parsed.validators, parsed.nodes, parsed.network) == (3, 2, 4, "hoodi")
    assert parsed.unsigned_by() == [0, 1, 2, 3]
    with pytest.raises(definition.DefinitionError, match=r"not signed by operator\(s\) 0, 1, 2, 3"):
        definition.parse_definition(document, fully_signed=True)
    for i in (2, 0, 3, 1):
        result = run("definition", "sign", "--definition", str(path), "--node-dir", str(tmp_path / f"op{i}"))
        assert result.exit_code == 0, result.output
        assert f"as operator {i}" in result.output
    assert "every operator has signed" in result.output
    signed = definition.parse_definition(json.loads(path.read_text()), fully_signed=True)
    assert signed.definition_hash == parsed.definition_hash and signed.nonce == parsed.nonce
    shown = run("definition", "show", "--definition", str(path))
    assert shown.exit_code == 0 and shown.output.count(" signed") == 4
    # a second definition with the same inputs is another ceremony: a new nonce, a new hash
    other = json.loads(path.read_text())
    again = make_definition(tmp_path / "again")
    assert json.loads(again.read_text())["nonce"] != other["nonce"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", 4),
        ("validators", 3),
        ("withdrawal_address", "0x" + "cc" * 20),
        ("compounding", True),
        ("fee_recipient", "0x" + "cc" * 20),
        ("gas_limit", "1"),
        ("registration_timestamp", "1"),
        ("deposit_amount_gwei", "64000000000"),
        ("nonce", "0x" + "00" * 32),
        ("network", "mainnet"),
        ("fork_version", "0x00000000"),
        ("genesis_validators_root", "0x" + "00" * 32),
        ("name", "another"),
    ],
)
def test_changing_any_bound_field_breaks_the_hash(tmp_path: Path, field: str, value: Any) -> None:
    path = make_definition(tmp_path)
    document = json.loads(path.read_text())
    document[field] = value
    with pytest.raises(definition.DefinitionError, match="definition_hash does not match"):
        definition.parse_definition(document)


def test_operators_order_and_addresses_are_bound(tmp_path: Path) -> None:
    document = json.loads(make_definition(tmp_path).read_text())
    swapped = dict(
        document, operators=[document["operators"][1], document["operators"][0], *document["operators"][2:]]
    )
    with pytest.raises(definition.DefinitionError, match="definition_hash does not match"):
        definition.parse_definition(swapped)
    moved = json.loads(json.dumps(document))
    moved["operators"][2]["address"] = "10.0.0.1:4002"
    with pytest.raises(definition.DefinitionError, match="definition_hash does not match"):
        definition.parse_definition(moved)


def test_signature_refusals(tmp_path: Path) -> None:
    path = make_definition(tmp_path)
    stranger = tmp_path / "stranger"
    assert run("identity", "create", "--out", str(stranger)).exit_code == 0
    result = run("definition", "sign", "--definition", str(path), "--node-dir", str(stranger))
    assert result.exit_code == 2 and "not one of its operators' keys" in result.output
    assert (
        run("definition", "sign", "--definition", str(path), "--node-dir", str(tmp_path / "op1")).exit_code
        == 0
    )
    document = json.loads(path.read_text())
    # operator 1's signature moved to position 0: not operator 0's
    document["operator_signatures"][0] = document["operator_signatures"][1]
    with pytest.raises(definition.DefinitionError, match=r"operator_signatures\[0\] is not operator 0's"):
        definition.parse_definition(document)
    document = json.loads(path.read_text())
    document["extra"] = 1
    with pytest.raises(definition.DefinitionError, match="unknown field"):
        definition.parse_definition(document)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "2"], "threshold 2 is unsafe for N = 4"),
        (["--withdrawal-address", "0x12"], "is not a 20-byte 0x-hex address"),
    ],
)
def test_create_definition_refusals(tmp_path: Path, extra: list[str], message: str) -> None:
    keys = make_operators(tmp_path, 4)
    operators = ",".join(f"{k}@127.0.0.1:{4000 + i}" for i, k in enumerate(keys))
    out = tmp_path / "d.json"
    args = ["create-definition", "--operators", operators, "--validators", "1", "--fee-recipient", FEES]
    if "--withdrawal-address" not in extra:
        args += ["--withdrawal-address", WITHDRAW]
    result = run(*args, *extra, "--out", str(out))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


def test_duplicate_operator_and_too_few(tmp_path: Path) -> None:
    keys = make_operators(tmp_path, 3)
    base = [
        "create-definition",
        "--validators",
        "1",
        "--withdrawal-address",
        WITHDRAW,
        "--fee-recipient",
        FEES,
    ]
    same_key = ",".join(f"{keys[0]}@127.0.0.1:{4000 + i}" for i in range(3))
    result = run(*base, "--operators", same_key, "--out", str(tmp_path / "a.json"))
    assert result.exit_code == 2 and "have the same identity_public_key" in result.output
    two = ",".join(f"{k}@127.0.0.1:{4000 + i}" for i, k in enumerate(keys[:2]))
    result = run(*base, "--operators", two, "--out", str(tmp_path / "b.json"))
    assert result.exit_code == 2 and "at least 3 operators" in result.output
    result = run(*base, "--operators", "0x12@host:1", "--out", str(tmp_path / "c.json"))
    assert result.exit_code == 2 and "is not <identity public key" in result.output


def test_identity_create_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("identity", "create", "--out", str(tmp_path)).exit_code == 0
    before = (tmp_path / keys_io.IDENTITY_FILE).read_bytes()
    result = run("identity", "create", "--out", str(tmp_path))
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert (tmp_path / keys_io.IDENTITY_FILE).read_bytes() == before
