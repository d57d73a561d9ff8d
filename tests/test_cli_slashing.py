"""The `covalidator slashing` contract: exit codes 0 / 3 / 2 / 1, one-line errors, DB unchanged on bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

PK = "0x" + "ab" * 48
GVR = "0x" + "00" * 32


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covalidator", *args], capture_output=True, text=True, timeout=60
    )


def digest(path: Path) -> str:
    return "".join(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.glob(path.name + "*"))
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "slashing.sqlite"
    assert (
        cli(
            "slashing",
            "check",
            "--db",
            str(path),
            "--pubkey",
            PK,
            "--attestation",
            "2",
            "3",
            "--record",
            "--genesis-validators-root",
            GVR,
        ).returncode
        == 0
    )
    assert (
        cli("slashing", "check", "--db", str(path), "--pubkey", PK, "--block", "10", "--record").returncode
        == 0
    )
    return path


def test_safe_refused_and_recorded(db: Path) -> None:
    ok = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--attestation", "3", "4")
    assert (ok.returncode, ok.stdout.strip()) == (0, "safe")
    refused = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--attestation", "1", "5")
    assert refused.returncode == 3
    assert "surrounding_vote" in refused.stderr and "source=2 target=3" in refused.stderr
    double = cli(
        "slashing",
        "check",
        "--db",
        str(db),
        "--pubkey",
        PK,
        "--block",
        "10",
        "--signing-root",
        "0x" + "11" * 32,
    )
    assert double.returncode == 3 and "double_proposal" in double.stderr and "slot=10" in double.stderr
    low = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--block", "9")
    assert low.returncode == 3 and "slot_not_above_low_watermark" in low.stderr
    rec = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--attestation", "3", "4", "--record")
    assert (rec.returncode, rec.stdout.strip()) == (0, "safe and recorded")
    again = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--attestation", "3", "4", "--record")
    assert again.returncode == 3  # no signing root: a repeat cannot be proven identical


@pytest.mark.parametrize(
    "args, message",
    [
        (["--attestation", "1", "x"], "TARGET: expected a decimal string"),
        (["--attestation", "1", str(2**64)], "does not fit in a uint64"),
        (["--block", "5", "--signing-root", "0x12"], "--signing-root: expected 32 bytes"),
        (["--block", "5", "--genesis-validators-root", "0x" + "11" * 32], "does not match"),
        (["--block", "5", "--attestation", "1", "2"], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_bad_input_exits_2_and_leaves_db_unchanged(db: Path, args: list[str], message: str) -> None:
    before = digest(db)
    result = cli("slashing", "check", "--db", str(db), "--pubkey", PK, "--record", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert digest(db) == before


def test_bad_pubkey(db: Path) -> None:
    result = cli("slashing", "check", "--db", str(db), "--pubkey", "0xzz", "--block", "5")
    assert result.returncode == 2 and "--pubkey" in result.stderr


def test_new_db_needs_genesis_root(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    result = cli("slashing", "check", "--db", str(path), "--pubkey", PK, "--block", "1")
    assert result.returncode == 2 and "genesis validators root" in result.stderr
    assert not path.exists()


def test_import_export_round_trip(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    assert cli("slashing", "export", "--db", str(db), "--out", str(out)).returncode == 0
    exported = json.loads(out.read_text())
    assert exported["metadata"] == {"interchange_format_version": "5", "genesis_validators_root": GVR}
    assert exported["data"][0]["signed_attestations"] == [{"source_epoch": "2", "target_epoch": "3"}]
    stdout = cli("slashing", "export", "--db", str(db))
    assert json.loads(stdout.stdout) == exported
    fresh = tmp_path / "fresh.sqlite"
    imported = cli("slashing", "import", str(out), "--db", str(fresh))
    assert imported.returncode == 0 and "imported 1 validators, 1 blocks, 1 attestations" in imported.stdout
    assert json.loads(cli("slashing", "export", "--db", str(fresh)).stdout) == exported
    minified = json.loads(cli("slashing", "export", "--db", str(fresh), "--minify").stdout)
    assert minified["data"][0]["signed_blocks"] == [{"slot": "10"}]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (
            '{"metadata": {"interchange_format_version": "4", "genesis_validators_root": "0x'
            + "00" * 32
            + '"}, "data": []}',
            "unsupported version",
        ),
        (
            '{"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x'
            + "11" * 32
            + '"}, "data": []}',
            "does not match",
        ),
        (
            '{"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x'
            + "00" * 32
            + '"}, "data": [{"pubkey": "0x'
            + "ab" * 48
            + '", "signed_blocks": [{"slot": "18446744073709551616"}],'
            ' "signed_attestations": []}]}',
            "does not fit in a uint64",
        ),
        (
            '{"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x'
            + "00" * 32
            + '"}, "data": [{"pubkey": "0xab", "signed_blocks": [], "signed_attestations": []}]}',
            "$.data[0].pubkey",
        ),
    ],
)
def test_bad_import_exits_2_and_leaves_db_unchanged(
    db: Path, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    before = digest(db)
    result = cli("slashing", "import", str(bad), "--db", str(db))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert digest(db) == before


def test_missing_files(tmp_path: Path) -> None:
    assert (
        cli("slashing", "import", str(tmp_path / "nope.json"), "--db", str(tmp_path / "x.sqlite")).returncode
        == 2
    )
    assert cli("slashing", "export", "--db", str(tmp_path / "nope.sqlite")).returncode == 2


def test_help_is_fast_and_lists_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0 and "slashing" in result.stdout and "prove" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, covalidator.runtime.cli as c; c.main(['--help'], standalone_mode=False);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('z3', 'aiohttp', 'eth_consensus_specs')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip().endswith("[]"), "--help must not import z3, aiohttp or the consensus specs"
