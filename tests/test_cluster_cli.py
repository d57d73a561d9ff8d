"""`covalidator create-cluster` / `combine` / `version` end to end (in-process CLI, temporary folders):
the node folders' layout and contents, shares that match the lock, combine round trips from any M
folders, interop and existing keys, and refusals that write nothing."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from covalidator.model.cluster import lock as cluster_lock
from covalidator.model.crypto import bls, keystore
from covalidator.model.eth.interop import interop_secret_key
from covalidator.runtime import keys_io
from covalidator.runtime.cli import main

from .conftest import shared_path

CHEAP = ["--kdf", "pbkdf2", "--kdf-cost", "16"]
INTEROP_PUBKEYS = [
    "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c",
    "b89bebc699769726a318c8e9971bd3171297c61aea4a6578a7a4f94b547dcba5bac16a89108b6b6a1fe3695d1a874a0b",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def create(out: Path, *extra: str, nodes: int = 4) -> Result:
    result = run("create-cluster", "--nodes", str(nodes), "--out", str(out), *CHEAP, *extra)
    assert result.exit_code == 0, result.output
    return result


def read_secrets(folder: Path) -> dict[int, int]:
    """{j: secret} of keystore-{j}.json in a folder, each decrypted with its own .txt."""
    out = {}
    for path in folder.glob("keystore-*.json"):
        j = int(path.stem.split("-")[1])
        password = path.with_suffix(".txt").read_text()
        out[j] = bls.secret_from_bytes(keystore.decrypt(json.loads(path.read_text()), password))
    return out


def test_create_cluster_writes_every_node_folder_and_combine_recovers_the_keys(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    create(out, "--validators", "3", "--network", "hoodi")
    nodes = sorted(p.name for p in out.iterdir())
    assert nodes == ["node0", "node1", "node2", "node3"]
    locks = {(out / n / "cluster-lock.json").read_bytes() for n in nodes}
    assert len(locks) == 1  # identical on every node
    lock = keys_io.load_lock(out / "node0" / "cluster-lock.json")
    assert (lock.threshold, lock.nodes, lock.network) == (3, 4, "hoodi")
    assert lock.genesis_validators_root.hex().startswith("212f13fc")  # hoodi's, from the preset
    for i, node in enumerate(nodes):
        identity = out / node / "identity-key.pem"
        assert stat.S_IMODE(identity.stat().st_mode) == 0o600
        assert cluster_lock.identity_public_key(keys_io.load_identity_key(identity)) == (
            lock.operators[i].identity_public_key
        )
        shares = read_secrets(out / node / "validator_keys")
        assert sorted(shares) == [0, 1, 2]
        for j, share in shares.items():  # node i holds share index i + 1
            assert bls.sk_to_pk(share) == lock.distributed_validators[j].public_shares[i]
    recovered = tmp_path / "recovered"
    result = run("combine", "--cluster-dir", str(out), "--output-dir", str(recovered), *CHEAP)
    assert result.exit_code == 0, result.output
    full = read_secrets(recovered)
    assert [bls.sk_to_pk(full[j]) for j in range(3)] == [
        v.distributed_public_key for v in lock.distributed_validators
    ]
    # The recovered keys sign what the cluster's threshold signatures would.
    assert bls.sign(full[0], b"m") == bls.combine(
        {i + 1: bls.sign(read_secrets(out / f"node{i}" / "validator_keys")[0], b"m") for i in (0, 2, 3)}, 3
    )


def test_combine_needs_threshold_folders_and_any_threshold_will_do(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    create(out, "--validators", "1", "--interop-keys", "--network", "devnet")
    some = tmp_path / "three"
    for node in ("node0", "node2", "node3"):
        shutil.copytree(out / node, some / node)
    result = run("combine", "--cluster-dir", str(some), "--output-dir", str(tmp_path / "k3"), *CHEAP)
    assert result.exit_code == 0, result.output
    assert read_secrets(tmp_path / "k3") == {0: interop_secret_key(0)}
    shutil.rmtree(some / "node2")
    result = run("combine", "--cluster-dir", str(some), "--output-dir", str(tmp_path / "k2"), *CHEAP)
    assert result.exit_code == 2
    assert "validator 0: 2 shares found, the threshold is 3" in result.output
    assert not (tmp_path / "k2").exists()


def test_interop_keys_are_the_dev_chains_validators(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    result = create(out, "--validators", "2", "--interop-keys", "--network", "devnet", nodes=3)
    lock = keys_io.load_lock(out / "node1" / "cluster-lock.json")
    assert [v.distributed_public_key.hex() for v in lock.distributed_validators] == INTEROP_PUBKEYS
    assert (lock.threshold, lock.fork_version.hex()) == (2, "00000001")  # ceil(2*3/3); minimal preset genesis
    assert INTEROP_PUBKEYS[1] in result.output


def test_split_existing_keys(tmp_path: Path) -> None:
    source = tmp_path / "keys"
    source.mkdir()
    vector = shared_path("vectors", "eip2335", "pbkdf2.json")
    shutil.copy(vector, source / "keystore-m_12381_3600_0_0_0.json")
    (source / "password.txt").write_text("𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑\n")  # one password for the folder
    own = keystore.encrypt(
        bls.secret_to_bytes(777), "own", salt=bytes(32), iv=bytes(16), uuid="u", kdf=keystore.Pbkdf2(c=16)
    )
    (source / "keystore-m_12381_3600_1_0_0.json").write_text(json.dumps(own))
    (source / "keystore-m_12381_3600_1_0_0.txt").write_text("own")
    (source / "deposit_data-1.json").write_text("[]")  # not a keystore: ignored
    out = tmp_path / "cluster"
    create(out, "--split-existing-keys", str(source), "--threshold", "4", "--network", "sepolia")
    lock = keys_io.load_lock(out / "node3" / "cluster-lock.json")
    assert lock.threshold == 4
    assert [v.distributed_public_key.hex() for v in lock.distributed_validators] == [
        json.loads(vector.read_text())["pubkey"],
        bls.sk_to_pk(777).hex(),
    ]
    run("combine", "--cluster-dir", str(out), "--output-dir", str(tmp_path / "back"), *CHEAP)
    assert read_secrets(tmp_path / "back")[1] == 777


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "2", "--validators", "1"], "a cluster needs at least 3 nodes"),
        (["--nodes", "4", "--validators", "1", "--threshold", "2"], "threshold 2 is unsafe for N = 4"),
        # accepted by the old (N/2, N] rule; the DV-safety theorem refutes both
        (["--nodes", "7", "--validators", "1", "--threshold", "4"], "use 5..7 (theorem dv_safety)"),
        (["--nodes", "5", "--validators", "1", "--threshold", "3"], "use 4..5 (theorem dv_safety)"),
        (["--nodes", "4", "--validators", "1", "--threshold", "5"], "refusing --threshold 5"),
        (["--nodes", "4"], "--validators V (>= 1) is required"),
        (
            ["--nodes", "4", "--validators", "1", "--peer-addresses", "a:1,b:2"],
            "lists 2 addresses for 4 nodes",
        ),
        (["--nodes", "4", "--validators", "1", "--genesis-validators-root", "0x1234"], "must be 32 bytes"),
        (["--nodes", "4", "--validators", "1", "--kdf", "scrypt", "--kdf-cost", "1000"], "power of two"),
        (["--nodes", "4", "--validators", "2", "--fee-recipient", "0x12"], "is not a 20-byte 0x-hex address"),
        (
            ["--nodes", "4", "--validators", "3", "--fee-recipient", f"0x{'ab' * 20},0x{'cd' * 20}"],
            "lists 2 addresses for 3 validators",
        ),
        (["--nodes", "4", "--validators", "1", "--withdrawal-address", "0x12"], "not a 20-byte 0x-hex"),
        (["--nodes", "4", "--validators", "1", "--compounding"], "--compounding needs --withdrawal-address"),
    ],
)
def test_create_cluster_refusals_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "cluster"
    result = run("create-cluster", *args, "--out", str(out))
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_create_cluster_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    (out / "node0").mkdir(parents=True)
    result = run("create-cluster", "--nodes", "3", "--validators", "1", "--out", str(out), *CHEAP)
    assert result.exit_code == 2 and "refusing to overwrite" in result.output


def test_overrides_and_scrypt(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    root = "0x" + "ab" * 32
    create(
        out,
        "--validators",
        "1",
        "--network",
        "devnet",
        "--genesis-validators-root",
        root,
        "--fork-version",
        "0x10000001",
        "--kdf",
        "scrypt",
        "--kdf-cost",
        "1024",
        "--peer-addresses",
        "a.example:9000,b.example:9000,c.example:9000,d.example:9000",
    )
    lock = keys_io.load_lock(out / "node0" / "cluster-lock.json")
    assert (lock.genesis_validators_root.hex(), lock.fork_version.hex()) == ("ab" * 32, "10000001")
    assert [o.address for o in lock.operators][1] == "b.example:9000"
    document = json.loads((out / "node2" / "validator_keys" / "keystore-0.json").read_text())
    assert (
        document["crypto"]["kdf"]["function"] == "scrypt" and document["crypto"]["kdf"]["params"]["n"] == 1024
    )


def test_combine_refuses_a_tampered_lock(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    create(out, "--validators", "1", nodes=3)
    path = out / "node1" / "cluster-lock.json"
    document = json.loads(path.read_text())
    document["threshold"] = 3
    path.write_text(json.dumps(document))
    result = run("combine", "--cluster-dir", str(out), "--output-dir", str(tmp_path / "k"), *CHEAP)
    assert result.exit_code == 2
    assert "node1/cluster-lock.json: cluster lock: lock_hash does not match the content" in result.output


def test_version_reports_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bls, "_current", None)
    monkeypatch.setenv("COVALIDATOR_BLS_BACKEND", "blst")
    result = run("version")
    assert result.exit_code == 0
    assert "covalidator 0.1.0" in result.output and "bls backend: blst (pyblst " in result.output
    monkeypatch.setattr(bls, "_current", None)
    monkeypatch.delenv("COVALIDATOR_BLS_BACKEND")
    assert "bls backend: arkworks (py-arkworks-bls12381 " in run("version").output


def test_fee_recipients_pin_group_signed_registrations_in_the_lock(tmp_path: Path) -> None:
    """One address per validator; each registration verifies under the group key (oracle: the builder
    domain's signing root from the consensus specs' container, and `bls.verify`)."""
    from covalidator.model.eth.signing import Fork, ForkSchedule, Kind, signing_root

    out = tmp_path / "cluster"
    fees = [f"0x{'ab' * 20}", f"0x{'cd' * 20}"]
    create(
        out,
        "--interop-keys",
        "--validators",
        "2",
        "--network",
        "hoodi",
        "--fee-recipient",
        ",".join(fees),
        "--gas-limit",
        "30000000",
    )
    lock = keys_io.load_lock(out / "node1" / "cluster-lock.json")
    schedule = ForkSchedule((Fork("phase0", 0, lock.fork_version),), bytes(32))
    for v, fee in zip(lock.distributed_validators, fees, strict=True):
        registration = v.builder_registration
        assert registration is not None and v.fee_recipient == fee and v.gas_limit == 30_000_000
        message = registration["message"]
        assert message["fee_recipient"] == fee and message["pubkey"] == "0x" + v.distributed_public_key.hex()
        root = signing_root(schedule, Kind.VALIDATOR_REGISTRATION, message)
        assert bls.verify(v.distributed_public_key, root, bytes.fromhex(registration["signature"][2:]))


@pytest.mark.parametrize("compounding", [False, True])
def test_withdrawal_address_writes_launchpad_deposit_data(tmp_path: Path, compounding: bool) -> None:
    """Every node folder holds the same deposit-data.json; each entry is the validator's deposit under
    the deposit domain (oracle: tests/test_deposit.py's hand-merkleized roots and py_ecc's verify)."""
    from py_ecc.bls import G2ProofOfPossession as pyecc_bls

    from .test_deposit import oracle_data_root, oracle_message_root, oracle_signing_root

    out = tmp_path / "cluster"
    address = "0x" + "5a" * 20
    create(
        out,
        "--validators",
        "2",
        "--network",
        "hoodi",
        "--withdrawal-address",
        address,
        *(["--compounding"] if compounding else []),
    )
    files = {(out / f"node{i}" / "deposit-data.json").read_bytes() for i in range(4)}
    assert len(files) == 1
    entries = json.loads(files.pop())
    lock = keys_io.load_lock(out / "node0" / "cluster-lock.json")
    assert [e["pubkey"] for e in entries] == [
        v.distributed_public_key.hex() for v in lock.distributed_validators
    ]
    for entry in entries:
        pubkey = bytes.fromhex(entry["pubkey"])
        credentials = bytes.fromhex(entry["withdrawal_credentials"])
        assert credentials == (b"\x02" if compounding else b"\x01") + bytes(11) + bytes.fromhex(address[2:])
        assert entry["amount"] == 32 * 10**9 and entry["network_name"] == "hoodi"
        assert entry["fork_version"] == "10000910"  # hoodi's genesis fork version
        message_root = oracle_message_root(pubkey, credentials, entry["amount"])
        assert entry["deposit_message_root"] == message_root.hex()
        signature = bytes.fromhex(entry["signature"])
        assert (
            entry["deposit_data_root"]
            == oracle_data_root(pubkey, credentials, entry["amount"], signature).hex()
        )
        assert pyecc_bls.Verify(pubkey, oracle_signing_root(message_root, lock.fork_version), signature)
