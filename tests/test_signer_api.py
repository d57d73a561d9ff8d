"""The Remote Signing API (signer mode) of real `covalidator run` processes, over HTTP.

Four nodes on 127.0.0.1, each with `--signer-api 127.0.0.1:PORT`, against the in-process devnet BN.
The test acts as a keyless VC: it reads genesis, fork schedule, validator indices and attester duties
through node 0's validator API, builds each request's `fork_info` from the fork schedule as a VC does,
and asks the signer APIs for a RANDAO reveal of the current epoch, a selection proof (AGGREGATION_SLOT)
for a slot with an attester duty, and the attestation over the data the cluster decided (read back
from `GET /eth/v1/validator/attestation_data`). Each answer must be the GROUP signature: it verifies
against the validator's group pubkey over the signing root computed here with the consensus specs'
own functions (never the node's answer). Then the refusals, each with the model's status and a JSON
error body. Every exchange is checked against the Remote Signing API's OpenAPI document
(../shared/remote-signing-api, openapi-core): request body, the response status declared for the path,
response body.

Also: `--signer-api` on a non-loopback address without `--signer-api-allow-remote` is a one-line
configuration error (exit 2), and share-key loading errors (`load_share_secrets`) are `ConfigError`s
naming the file, not tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import InvalidRequestBody, RequestBodyValidationError
from openapi_core.validation.response.exceptions import InvalidData

from covalidator.model.crypto import bls
from covalidator.runtime import keys_io
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from covalidator.runtime.node_setup import ConfigError
from covalidator.runtime.share_keys import load_share_secrets
from tests.conftest import shared_path
from tests.helpers.aio import run
from tests.helpers.devnet_cluster import devnet_cluster, make_devnet_cluster
from tests.helpers.node_proc import COVALIDATOR, free_port, free_ports

NODES, VALIDATORS = 4, 4
SECONDS_PER_SLOT = 2
SIGN = "/api/v1/eth2/sign/"
PUBLIC_KEYS = "/api/v1/eth2/publicKeys"
UPCHECK = "/upcheck"
NOT_IN_SPEC = {("GET", UPCHECK)}  # Web3Signer's liveness path: the OpenAPI document has no such path
KEYS = keys_io.KEYS_DIR


# ---- the Remote Signing API's OpenAPI document ------------------------------------------------------


@cache
def remote_signing_api() -> OpenAPI:
    return OpenAPI.from_file_path(str(shared_path("remote-signing-api", "remote-signing-oapi.yaml")))


@dataclass
class Exchange:
    """One HTTP exchange with a signer API, exactly as sent and received."""

    name: str  # what the test meant by it
    node: int
    method: str
    path: str
    body: bytes | None  # the raw request body
    status: int = 0
    content_type: str = ""  # the response's Content-Type header, parameters included
    text: str = ""

    def json(self) -> Any:
        return json.loads(self.text)

    def mock_request(self) -> MockRequest:
        return MockRequest(
            "http://localhost",
            self.method.lower(),
            self.path,
            data=self.body,
            content_type="application/json",
        )

    def check_request(self) -> None:
        remote_signing_api().validate_request(self.mock_request())

    def check_response(self) -> None:
        response = MockResponse(
            self.text.encode(), status_code=self.status, content_type=self.content_type or None
        )
        remote_signing_api().validate_response(self.mock_request(), response)


# ---- what a VC computes itself: fork_info and the signing roots (the consensus specs, not the node) ---


def specs() -> Any:
    import eth_consensus_specs.altair.minimal as altair  # the devnet: minimal preset, altair at genesis

    return altair


def fork_info(schedule: list[dict[str, str]], gvr: str, epoch: int) -> dict[str, Any]:
    """As a VC builds it: the fork schedule's last fork at or before the message's epoch."""
    fork = [f for f in schedule if int(f["epoch"]) <= epoch][-1]
    return {"fork": dict(fork), "genesis_validators_root": gvr}


def version_at(info: dict[str, Any], epoch: int) -> bytes:
    fork = info["fork"]
    version = fork["previous_version"] if epoch < int(fork["epoch"]) else fork["current_version"]
    return bytes.fromhex(version[2:])


def root_of(info: dict[str, Any], domain_type: bytes, epoch: int, obj: Any) -> bytes:
    s = specs()
    gvr = bytes.fromhex(info["genesis_validators_root"][2:])
    domain = s.compute_domain(s.DomainType(domain_type), s.Version(version_at(info, epoch)), s.Root(gvr))
    return bytes(s.compute_signing_root(obj, domain))


def attestation_data(data: dict[str, Any]) -> Any:
    s = specs()

    def checkpoint(c: dict[str, str]) -> Any:
        return s.Checkpoint(epoch=int(c["epoch"]), root=s.Root(bytes.fromhex(c["root"][2:])))

    return s.AttestationData(
        slot=int(data["slot"]),
        index=int(data["index"]),
        beacon_block_root=s.Root(bytes.fromhex(data["beacon_block_root"][2:])),
        source=checkpoint(data["source"]),
        target=checkpoint(data["target"]),
    )


def verifies(group: str, root: bytes, signature: str) -> bool:
    return bls.verify(bytes.fromhex(group[2:]), root, bytes.fromhex(signature[2:]))


# ---- the run -----------------------------------------------------------------------------------------


@dataclass
class Run:
    groups: list[str]  # the lock's group pubkeys, 0x lower-case
    share_of_node0: str  # node 0's share pubkey of validator `groups[0]`
    exchanges: list[Exchange] = field(default_factory=list)
    roots: dict[str, bytes] = field(default_factory=dict)  # request name -> our signing root
    signed_by: dict[str, str] = field(default_factory=dict)  # request name -> the group pubkey
    notes: dict[str, Any] = field(default_factory=dict)

    def named(self, name: str) -> list[Exchange]:
        found = [e for e in self.exchanges if e.name == name]
        assert found, f"no exchange named {name!r}"
        return found

    def one(self, name: str) -> Exchange:
        (exchange,) = self.named(name)
        return exchange


class SignerClient:
    """Every call to the nodes' signer APIs, recorded."""

    def __init__(self, session: aiohttp.ClientSession, ports: list[int], exchanges: list[Exchange]) -> None:
        self.session, self.ports, self.exchanges = session, ports, exchanges

    async def call(
        self, name: str, node: int, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> Exchange:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        exchange = Exchange(name, node, method, path, data)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        url = f"http://127.0.0.1:{self.ports[node]}{path}"
        async with self.session.request(method, url, data=data, headers=headers) as response:
            exchange.status = response.status
            exchange.content_type = response.headers.get("Content-Type", "")
            exchange.text = await response.text()
        self.exchanges.append(exchange)
        return exchange

    async def sign(
        self, name: str, node: int, identifier: str, body: Any = None, raw: bytes | None = None
    ) -> Exchange:
        return await self.call(name, node, "POST", SIGN + identifier, body, raw)

    async def sign_on(self, name: str, nodes: list[int], identifier: str, body: Any) -> list[Exchange]:
        """The same request to several nodes at once (as their VCs would, each to its own node)."""
        return list(await asyncio.gather(*(self.sign(name, i, identifier, body) for i in nodes)))


async def vc_get(session: aiohttp.ClientSession, base: str, path: str, **query: str) -> Any:
    async with session.get(base + path, params=query) as response:
        assert response.status == 200, (path, response.status, await response.text())
        return (await response.json())["data"]


async def vc_post(session: aiohttp.ClientSession, base: str, path: str, body: Any) -> Any:
    async with session.post(base + path, json=body) as response:
        assert response.status == 200, (path, response.status, await response.text())
        return (await response.json())["data"]


async def randao_plan(
    session: aiohttp.ClientSession, vc: str, groups: list[str], now: int, slots_per_epoch: int
) -> tuple[int, str, str]:
    """(a slot ahead, not an epoch's first: the node fetches that epoch's proposer duties at its start;
    a validator proposing later in that slot's epoch; one proposing no more in it)."""
    for epoch in (now // slots_per_epoch, now // slots_per_epoch + 1):
        duties = await vc_get(session, vc, f"/eth/v1/validator/duties/proposer/{epoch}")
        ours = [(int(d["slot"]), d["pubkey"]) for d in duties if d["pubkey"] in groups]
        for slot in range(max(now + 1, epoch * slots_per_epoch + 1), (epoch + 1) * slots_per_epoch):
            later = sorted({g for s, g in ours if s > slot})
            idle = [g for g in groups if all(s < slot or g != p for s, p in ours)]
            if later and idle:
                return slot, later[0], idle[0]
    raise AssertionError(f"no slot with both a proposer later and an idle validator from slot {now}")


async def sleep_until(unix_s: float) -> None:
    await asyncio.sleep(max(0.0, unix_s - time.time()))


async def scenario(folder: Path) -> Run:
    lock = keys_io.load_lock(folder / "node0" / keys_io.LOCK_FILE)
    groups = ["0x" + v.distributed_public_key.hex() for v in lock.distributed_validators]
    result = Run(groups, "0x" + lock.distributed_validators[0].public_shares[0].hex())
    config = DevnetConfig(
        validators=VALIDATORS,
        epochs=3,
        seconds_per_slot=SECONDS_PER_SLOT,
        genesis_delay_s=4,
        committee_size=16,
    )
    signer_ports = free_ports(NODES)

    def signer_flag(i: int) -> tuple[str, ...]:
        return ("--signer-api", f"127.0.0.1:{signer_ports[i]}")

    async with (
        devnet_cluster(folder, DevnetBN(config), "--round-ms", "500", per_node=signer_flag) as cluster,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
    ):
        client = SignerClient(session, signer_ports, result.exchanges)
        everyone = list(range(NODES))
        for i in everyone:
            await client.call("upcheck", i, "GET", UPCHECK)
            await client.call("public_keys", i, "GET", PUBLIC_KEYS)

        # what a VC reads from its beacon node (here: node 0's validator API)
        vc = cluster.urls[0]
        genesis = await vc_get(session, vc, "/eth/v1/beacon/genesis")
        schedule = await vc_get(session, vc, "/eth/v1/config/fork_schedule")
        gvr, genesis_time = genesis["genesis_validators_root"], int(genesis["genesis_time"])
        slots_per_epoch = int((await vc_get(session, vc, "/eth/v1/config/spec"))["SLOTS_PER_EPOCH"])

        def slot_start(slot: int) -> float:
            return genesis_time + slot * SECONDS_PER_SLOT

        def current_slot() -> int:
            return int(time.time() - genesis_time) // SECONDS_PER_SLOT

        records = await vc_post(session, vc, "/eth/v1/beacon/states/head/validators", {"ids": groups})
        index_of = {r["validator"]["pubkey"]: r["index"] for r in records}
        assert set(index_of) == set(groups), records
        await sleep_until(slot_start(1) + 0.2)  # after genesis

        # RANDAO_REVEAL of the current epoch, asked at a slot's start (every node in the same slot), for
        # a validator without a proposer duty left in the epoch (each node signs its partial only when
        # asked: every node is asked) and for one with a proposal later in the epoch (its partials were
        # signed when the duty was fetched: one node is asked)
        slot, proposer, idle = await randao_plan(session, vc, groups, current_slot(), slots_per_epoch)
        result.notes["randao"] = {"slot": slot, "proposer": proposer, "idle": idle}
        await sleep_until(slot_start(slot) + 0.2)
        epoch = slot // slots_per_epoch
        assert current_slot() == slot, "the machine is too slow for this test's timing"
        randao_info = fork_info(schedule, gvr, epoch)
        body = {"type": "RANDAO_REVEAL", "fork_info": randao_info, "randao_reveal": {"epoch": str(epoch)}}
        await asyncio.gather(
            client.sign_on("randao", everyone, idle, body), client.sign("randao_proposer", 3, proposer, body)
        )
        for name, group in (("randao", idle), ("randao_proposer", proposer)):
            result.roots[name] = root_of(randao_info, specs().DOMAIN_RANDAO, epoch, specs().Epoch(epoch))
            result.signed_by[name] = group

        # an attester duty in a slot still ahead (this epoch or the next)
        now = current_slot()
        duties = []
        for e in (now // slots_per_epoch, now // slots_per_epoch + 1):
            duties += await vc_post(
                session, vc, f"/eth/v1/validator/duties/attester/{e}", [index_of[g] for g in groups]
            )
        duty = min((d for d in duties if int(d["slot"]) > now), key=lambda d: int(d["slot"]))
        slot, group = int(duty["slot"]), duty["pubkey"]
        assert group in groups, duty
        result.notes["duty"] = duty
        slot_epoch = slot // slots_per_epoch
        info = fork_info(schedule, gvr, slot_epoch)

        # AGGREGATION_SLOT for that slot: one request, on node 2 only
        body = {"type": "AGGREGATION_SLOT", "fork_info": info, "aggregation_slot": {"slot": str(slot)}}
        await client.sign("aggregation_slot", 2, group, body)
        result.roots["aggregation_slot"] = root_of(
            info, specs().DOMAIN_SELECTION_PROOF, slot_epoch, specs().Slot(slot)
        )
        result.signed_by["aggregation_slot"] = group

        # ATTESTATION over what the cluster decided: the VC's attestation_data, after the duty starts
        await sleep_until(slot_start(slot) + SECONDS_PER_SLOT / 3 + 0.1)
        data = await vc_get(
            session,
            vc,
            "/eth/v1/validator/attestation_data",
            slot=str(slot),
            committee_index=str(duty["committee_index"]),
        )
        result.notes["decided"] = data
        body = {"type": "ATTESTATION", "fork_info": info, "attestation": data}
        await client.sign("attestation", 0, group, body)  # one node asked: its peers signed on their own
        await client.sign_on("attestation_again", [1, 2, 3], group, body)
        result.roots["attestation"] = root_of(
            info, specs().DOMAIN_BEACON_ATTESTER, slot_epoch, attestation_data(data)
        )
        result.signed_by["attestation"] = result.signed_by["attestation_again"] = group
        result.roots["attestation_again"] = result.roots["attestation"]

        # refusals
        other = {**data, "beacon_block_root": "0x" + "ee" * 32}
        await client.sign("other_data", 0, group, {**body, "attestation": other})
        zero = "0x" + "00" * 32
        await client.sign("wrong_signing_root", 0, group, {**body, "signingRoot": zero})
        result.notes["wrong_root"] = zero
        await client.sign("unknown_key", 0, "0x" + "ab" * 48, body)
        await client.sign("share_key", 0, result.share_of_node0, body)
        await client.sign("malformed", 0, group, raw=b'{"type": "ATTESTATION", "fork_info": ')
        # nested past the bound (the trace encoder failed near 1,000 levels and stopped the node)
        await client.sign("too_deep", 0, group, raw=b'{"type": ' + b"[" * 1200 + b"]" * 1200 + b"}")
        deposit = {
            "type": "DEPOSIT",
            "deposit": {
                "pubkey": group,
                "withdrawal_credentials": "0x00" + "11" * 31,
                "amount": "32000000000",
                "genesis_fork_version": schedule[0]["previous_version"],
            },
        }
        await client.sign("deposit", 0, group, deposit)
    return result


@pytest.fixture(scope="module")
def signer_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("signer") / "c"
    make_devnet_cluster(folder, NODES, VALIDATORS)
    return run(scenario(folder), 120)


# ---- the cluster's answers ---------------------------------------------------------------------------


def signature_of(exchange: Exchange) -> str:
    assert exchange.status == 200, (exchange.name, exchange.node, exchange.status, exchange.text)
    signature = exchange.json()["signature"]
    assert isinstance(signature, str) and signature.startswith("0x") and len(signature) == 2 + 192, signature
    return signature


def test_upcheck_and_public_keys_are_the_lock_group_keys(signer_run: Run) -> None:
    for exchange in signer_run.named("upcheck"):
        assert (exchange.status, exchange.text) == (200, "OK"), exchange
    answers = signer_run.named("public_keys")
    assert len(answers) == NODES
    for exchange in answers:
        assert exchange.status == 200, exchange
        keys = exchange.json()
        assert sorted(keys) == sorted(signer_run.groups), keys
        assert all(k == k.lower() and k.startswith("0x") and len(k) == 98 for k in keys), keys
        assert signer_run.share_of_node0 not in keys


@pytest.mark.parametrize(
    "name", ["randao", "randao_proposer", "aggregation_slot", "attestation", "attestation_again"]
)
def test_signatures_are_the_group_signature_over_our_own_signing_root(signer_run: Run, name: str) -> None:
    root = signer_run.roots[name]
    group = signer_run.signed_by[name]
    signatures = {signature_of(e) for e in signer_run.named(name)}
    assert len(signatures) == 1, signatures  # BLS is deterministic: one group signature per root
    (signature,) = signatures
    assert verifies(group, root, signature), (name, group, root.hex(), signature)
    others = [g for g in signer_run.groups if g != group]
    assert not any(verifies(g, root, signature) for g in others)


def test_the_attestation_signed_is_the_decided_one_and_one_request_was_enough(signer_run: Run) -> None:
    """One request on node 0 got the group signature: in signer mode every node signs its own partial
    of a decided value as soon as it is persisted, without being asked."""
    (first,) = signer_run.named("attestation")
    assert first.node == 0 and first.status == 200, first
    decided = signer_run.notes["decided"]
    assert json.loads(first.body or b"")["attestation"] == decided
    assert int(decided["slot"]) == int(signer_run.notes["duty"]["slot"])


def error_of(exchange: Exchange, status: int) -> str:
    assert exchange.status == status, (exchange.name, exchange.status, exchange.text)
    assert exchange.content_type.split(";")[0].strip() == "application/json", exchange.content_type
    body = exchange.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"], body
    return str(body["message"])


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("unknown_key", 404, "is not a validator of this cluster"),
        ("share_key", 404, "is this node's SHARE key"),
        ("malformed", 400, "malformed JSON body"),
        ("too_deep", 400, "nested deeper than 64"),
        ("wrong_signing_root", 400, "is not the object's signing root"),
        ("deposit", 412, "does not sign deposits"),
        ("other_data", 412, "not the value the cluster decided"),
    ],
)
def test_refusals_have_the_models_status_and_a_json_error(
    signer_run: Run, name: str, status: int, reason: str
) -> None:
    message = error_of(signer_run.one(name), status)
    assert reason in message, message


def test_wrong_signing_root_names_both_roots(signer_run: Run) -> None:
    message = error_of(signer_run.one("wrong_signing_root"), 400)
    ours = "0x" + signer_run.roots["attestation"].hex()
    assert signer_run.notes["wrong_root"] in message and ours in message, message


def test_every_exchange_matches_the_remote_signing_openapi_document(signer_run: Run) -> None:
    problems = []
    checked = set()
    for exchange in signer_run.exchanges:
        if (exchange.method, exchange.path) in NOT_IN_SPEC:
            # not declared: say so (if the document ever declares it, this fails and it gets checked)
            with pytest.raises(PathNotFound):
                exchange.check_response()
            continue
        try:
            if exchange.name == "too_deep":
                exchange.check_response()  # well-formed JSON the document cannot type: the answer only
                continue
            if exchange.name == "malformed":  # the document must reject it too: it is malformed
                with pytest.raises(RequestBodyValidationError, match="Failed to deserialize"):
                    exchange.check_request()
            else:
                exchange.check_request()
            exchange.check_response()
        except Exception as error:  # every mismatch listed, not only the first
            problems.append(
                f"{exchange.name} node{exchange.node} {exchange.status}: {type(error).__name__}: {error}"
            )
        checked.add((exchange.name, exchange.status))
    assert not problems, "\n".join(problems)
    statuses = {status for _, status in checked}
    assert {200, 400, 404, 412} <= statuses, checked


def test_the_openapi_check_catches_what_it_must(signer_run: Run) -> None:
    """The validation above is not vacuous: a signature that is not a string, a status the path does not
    declare, and a request body without its object all fail it."""
    good = signer_run.named("attestation")[0]
    broken: list[tuple[Exchange, type[Exception]]] = [
        (
            Exchange("x", 0, "POST", good.path, good.body, 200, good.content_type, '{"signature": 1}'),
            InvalidData,
        ),
        (Exchange("x", 0, "POST", good.path, good.body, 503, good.content_type, good.text), ResponseNotFound),
        (Exchange("x", 0, "GET", PUBLIC_KEYS, None, 200, good.content_type, "[1]"), InvalidData),
    ]
    for exchange, error in broken:
        with pytest.raises(error):
            exchange.check_response()
    no_object = {k: v for k, v in json.loads(good.body or b"").items() if k != "attestation"}
    with pytest.raises(InvalidRequestBody):
        Exchange("x", 0, "POST", good.path, json.dumps(no_object).encode()).check_request()


# ---- configuration errors ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "c"
    make_devnet_cluster(folder, 4, 2)
    return folder


def run_node(node_dir: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [
        *COVALIDATOR, "run", "--lock", str(node_dir / keys_io.LOCK_FILE), "--node-dir", str(node_dir),
        "--beacon-node", f"http://127.0.0.1:{free_port()}", "--validator-api", f"127.0.0.1:{free_port()}",
        "--monitoring", "off", "--bn-wait", "0", *extra,
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def copy_node(cluster: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(cluster / "node0", target)
    return target


def test_signer_api_on_a_non_loopback_address_needs_the_allow_flag(
    small_cluster: Path, tmp_path: Path
) -> None:
    """0.0.0.0 without --signer-api-allow-remote: one line naming the flag, exit 2. With the flag, the
    same node gets past that check (its next error: no beacon node answers, also exit 2). A wrong
    keystore password in signer mode: one line naming the file, exit 2."""
    node = small_cluster / "node0"
    wrong = copy_node(small_cluster, tmp_path, "wrong")
    (wrong / KEYS / "keystore-1.txt").write_text("not the password\n")
    remote = f"0.0.0.0:{free_port()}"
    processes = {
        "refused": run_node(node, "--signer-api", remote),
        "allowed": run_node(
            node, "--signer-api", remote, "--signer-api-allow-remote", "--data-dir", str(tmp_path / "d1")
        ),
        "password": run_node(
            wrong, "--signer-api", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d2")
        ),
    }
    results = {}
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        results[name] = (process.returncode, out, err)
    for name, (code, out, err) in results.items():
        assert code == 2, (name, code, out, err)
        assert "Traceback" not in out + err, (name, err)
    code, out, err = results["refused"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "--signer-api-allow-remote" in lines[0] and "0.0.0.0" in lines[0], err
    code, out, err = results["allowed"]
    assert "--signer-api-allow-remote" not in err and "no beacon node answered" in err, err
    code, out, err = results["password"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "keystore-1.json" in lines[0] and "wrong password" in lines[0], err


def _wrong_password(node: Path, cluster: Path) -> None:
    (node / KEYS / "keystore-0.txt").write_text("not the password\n")


def _missing_keystore(node: Path, cluster: Path) -> None:
    (node / KEYS / "keystore-1.json").unlink()
    (node / KEYS / "keystore-1.txt").unlink()


def _no_keystore_folder(node: Path, cluster: Path) -> None:
    shutil.rmtree(node / KEYS)


def _missing_password_file(node: Path, cluster: Path) -> None:
    (node / KEYS / "keystore-1.txt").unlink()


def _other_nodes_share(node: Path, cluster: Path) -> None:
    for suffix in ("json", "txt"):
        shutil.copy(cluster / "node1" / KEYS / f"keystore-0.{suffix}", node / KEYS / f"keystore-0.{suffix}")


def _pubkey_claims_ours(node: Path, cluster: Path) -> None:
    """node 1's share, its keystore's `pubkey` rewritten to node 0's share of the same validator."""
    theirs = json.loads((cluster / "node1" / KEYS / "keystore-0.json").read_text())
    theirs["pubkey"] = json.loads((node / KEYS / "keystore-0.json").read_text())["pubkey"]
    (node / KEYS / "keystore-0.json").write_text(json.dumps(theirs))
    shutil.copy(cluster / "node1" / KEYS / "keystore-0.txt", node / KEYS / "keystore-0.txt")


@pytest.mark.parametrize(
    ("spoil", "file", "reason"),
    [
        (_wrong_password, "keystore-0.json", "wrong password"),
        (_missing_keystore, KEYS, "no share keystore for 1 validator(s) of the lock"),
        (_no_keystore_folder, KEYS, "not a folder"),
        (_missing_password_file, "keystore-1.json", "no password file"),
        (_other_nodes_share, "keystore-0.json", "is not this node's share of any validator in the lock"),
        (
            _pubkey_claims_ours,
            "keystore-0.json",
            "the decrypted secret is not the key of the keystore's pubkey",
        ),
    ],
    ids=[
        "wrong-password",
        "missing-keystore",
        "no-keystore-folder",
        "missing-password-file",
        "other-nodes-share",
        "pubkey-claims-ours",
    ],
)
def test_share_key_loading_errors_are_one_clear_config_error(
    small_cluster: Path, tmp_path: Path, spoil: Callable[[Path, Path], None], file: str, reason: str
) -> None:
    lock = keys_io.load_lock(small_cluster / "node0" / keys_io.LOCK_FILE)
    node = copy_node(small_cluster, tmp_path, "node0")
    assert len(load_share_secrets(lock, 0, node)) == 2  # intact: every validator's share loads
    spoil(node, small_cluster)
    with pytest.raises(ConfigError) as error:
        load_share_secrets(lock, 0, node)
    message = str(error.value)
    assert reason in message and file in message, message
    assert "\n" not in message and "Traceback" not in message, message


def test_loaded_shares_are_this_nodes_shares_of_each_group(small_cluster: Path) -> None:
    lock = keys_io.load_lock(small_cluster / "node1" / keys_io.LOCK_FILE)
    secrets = load_share_secrets(lock, 1, small_cluster / "node1")
    expected = {
        "0x" + v.distributed_public_key.hex(): v.public_shares[1] for v in lock.distributed_validators
    }
    assert {g: bls.sk_to_pk(s) for g, s in secrets.items()} == expected
