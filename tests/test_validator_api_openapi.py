"""Every exchange between a VC and a running covalidator, checked against the Beacon-API OpenAPI spec
(../shared/beacon-APIs, openapi-core): request and response of each intercepted endpoint.

Four `covalidator run` processes on 127.0.0.1 against the in-process devnet BN (real BLS judge), four
in-process devnet VCs; VC 0 talks to node 0 through a recording proxy that also moves it onto the
spec's current routes (the v1 pool attestations, aggregate_attestation and aggregate_and_proofs the
devnet VC uses are no longer in the spec: their v2 forms are what is checked). During the run VC 0 also
submits a partial signature over other attestation data (refused: 400 with failures, counted in the
node's status). Afterwards: node/version, validators GET (query and path) with share pubkeys,
register_validator, and a request that can never be decided (held, then a 503 error body).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from covalidator.model.cluster.config import hex0x
from covalidator.model.eth import ssz_json, vc_flow
from covalidator.model.eth.signing import Kind
from covalidator.model.eth.specs import spec
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from covalidator.runtime.devnet.vc import DevnetVC
from tests.helpers.aio import run
from tests.helpers.beacon_api import BeaconAPISpec
from tests.helpers.devnet_cluster import devnet_cluster, make_devnet_cluster
from tests.helpers.recorder import Exchange, Recorder

NODES, VALIDATORS, SLOTS = 4, 4, 9
V1_TO_V2 = {
    "/eth/v1/beacon/pool/attestations": "/eth/v2/beacon/pool/attestations",
    "/eth/v1/validator/aggregate_and_proofs": "/eth/v2/validator/aggregate_and_proofs",
    "/eth/v1/validator/aggregate_attestation": "/eth/v2/validator/aggregate_attestation",
}
# every intercepted endpoint the run must have exercised with a 200 (or the error it is about)
EXPECTED = {
    ("POST", "/eth/v1/beacon/states/head/validators", 200),
    ("POST", "/eth/v1/validator/duties/attester/{epoch}", 200),
    ("GET", "/eth/v1/validator/duties/proposer/{epoch}", 200),
    ("POST", "/eth/v1/validator/duties/sync/{epoch}", 200),
    ("POST", "/eth/v1/validator/prepare_beacon_proposer", 200),
    ("GET", "/eth/v1/validator/attestation_data", 200),
    ("POST", "/eth/v2/beacon/pool/attestations", 200),
    ("POST", "/eth/v2/beacon/pool/attestations", 400),
    ("POST", "/eth/v1/validator/beacon_committee_selections", 200),
    ("GET", "/eth/v2/validator/aggregate_attestation", 200),
    ("POST", "/eth/v2/validator/aggregate_and_proofs", 200),
    ("POST", "/eth/v1/beacon/pool/sync_committees", 200),
    ("POST", "/eth/v1/validator/sync_committee_selections", 200),
    ("GET", "/eth/v1/validator/sync_committee_contribution", 200),
    ("POST", "/eth/v1/validator/contribution_and_proofs", 200),
    ("GET", "/eth/v3/validator/blocks/{slot}", 200),
    ("POST", "/eth/v2/beacon/blocks", 200),
    ("GET", "/eth/v1/node/version", 200),
    ("GET", "/eth/v1/beacon/states/head/validators", 200),
    ("GET", "/eth/v1/beacon/states/head/validators/{validator_id}", 200),
    ("POST", "/eth/v1/validator/register_validator", 200),
    ("GET", "/eth/v1/validator/attestation_data", 503),
    ("GET", "/eth/v2/validator/duties/proposer/{epoch}", 200),
    ("POST", "/eth/v1/beacon/pool/voluntary_exits", 200),
    ("GET", "/eth/v1/beacon/states/head/validator_balances", 200),
    ("POST", "/eth/v1/beacon/states/head/validator_balances", 200),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("openapi") / "c"
    make_devnet_cluster(folder, NODES, VALIDATORS)
    return folder


def template(path: str) -> str:
    parts = path.split("/")
    if "/validator/duties/" in path:
        parts[-1] = "{epoch}"
    elif path.startswith("/eth/v3/validator/blocks/"):
        parts[-1] = "{slot}"
    elif path.startswith("/eth/v1/beacon/states/head/validators/"):
        parts[-1] = "{validator_id}"
    return "/".join(parts)


class Translate:
    """The recorder's rewrite: VC 0's v1 calls as their v2 forms (headers and committee_index added)."""

    def __init__(self, recorder_exchanges: list[Exchange], vc: DevnetVC) -> None:
        self.exchanges, self.vc = recorder_exchanges, vc

    def committee_of(self, data_root: str) -> str:
        for ex in self.exchanges:
            if ex.path.endswith("/attestation_data") and ex.status == 200:
                data = ex.answer["data"]
                types = spec(self.vc.chain.fork_name(int(data["slot"])), self.vc.chain.schedule.preset)
                if hex0x(ssz_json.hash_tree_root(types.AttestationData, data)) == data_root:
                    return str(data["index"])
        return "0"

    def __call__(self, ex: Exchange) -> Exchange:
        if ex.path not in V1_TO_V2:
            return ex
        ex.path = V1_TO_V2[ex.path]
        if ex.method == "POST":
            first = ex.body[0] if isinstance(ex.body, list) and ex.body else {}
            slot = first.get("data", first.get("message", {}).get("aggregate", {}).get("data", {})).get(
                "slot", "0"
            )
            ex.headers["Eth-Consensus-Version"] = self.vc.chain.fork_name(int(slot))
        else:
            ex.query["committee_index"] = self.committee_of(ex.query["attestation_data_root"])
        return ex


async def other_data_refused(recorder: Recorder, vc: DevnetVC, session: aiohttp.ClientSession) -> Any:
    """Once VC 0 has attested: its partial over other data for the same duty; the node's answer."""
    while True:
        posted = [
            e for e in recorder.exchanges if e.path == "/eth/v2/beacon/pool/attestations" and e.status == 200
        ]
        if posted:
            break
        await asyncio.sleep(0.05)
    data = dict(posted[0].body[0]["data"])
    slot = int(data["slot"])
    duties = (await vc.duties_of(vc.chain.clock.epoch_of(slot))).attesters[slot]
    duty = next(d for d in duties if d.committee_index == int(data["index"]))
    other = vc_flow.attestations({**data, "beacon_block_root": "0x" + "ee" * 32}, [duty], vc.sign)
    headers = {"Eth-Consensus-Version": vc.chain.fork_name(slot)}
    async with session.post(
        recorder.url + "/eth/v2/beacon/pool/attestations", json=other, headers=headers
    ) as r:
        return r.status, await r.json()


async def after_run(recorder: Recorder, vc: DevnetVC, session: aiohttp.ClientSession) -> None:
    share = next(iter(vc.secrets))
    base = recorder.url
    for path in ("/eth/v1/node/version", f"/eth/v1/beacon/states/head/validators/{share}"):
        async with session.get(base + path) as r:
            await r.read()
    async with session.get(base + "/eth/v1/beacon/states/head/validators", params={"id": share}) as r:
        await r.read()
    index = next(iter(vc.pubkey_of))
    registration = {
        "fee_recipient": "0x" + "00" * 20,
        "gas_limit": "30000000",
        "timestamp": str(int(time.time())),
        "pubkey": vc.pubkey_of[index],
    }
    signed = [
        {"message": registration, "signature": vc.sign(index, Kind.VALIDATOR_REGISTRATION, registration)}
    ]
    async with session.post(base + "/eth/v1/validator/register_validator", json=signed) as r:
        await r.read()
    epoch = vc.chain.clock.epoch_at(vc.now_ms())
    async with session.get(base + f"/eth/v2/validator/duties/proposer/{epoch}") as r:
        duties = await r.json()
    assert r.status == 200 and duties["data"], duties
    # the VC knows its share pubkeys only: the cluster's validators are named by them (DV mapping)
    mine = [d for d in duties["data"] if int(d["validator_index"]) in vc.pubkey_of]
    assert mine and all(d["pubkey"] == vc.pubkey_of[int(d["validator_index"])] for d in mine), duties
    async with session.get(base + "/eth/v1/beacon/states/head/validator_balances", params={"id": share}) as r:
        balances = await r.json()
    assert [b["index"] for b in balances["data"]] == [
        str(i) for i, pubkey in vc.pubkey_of.items() if pubkey == share
    ], balances
    async with session.post(base + "/eth/v1/beacon/states/head/validator_balances", json=[share]) as r:
        await r.read()
    # this operator's exit of validator `index`: a partial over its share, kept by the node (200)
    exit_message = {"epoch": str(epoch), "validator_index": str(index)}
    exit_signed = {"message": exit_message, "signature": vc.sign(index, Kind.VOLUNTARY_EXIT, exit_message)}
    async with session.post(base + "/eth/v1/beacon/pool/voluntary_exits", json=exit_signed) as r:
        assert r.status == 200, await r.text()
    # no committee 60 at the next slot: held until the node's wait ends, then an error body
    slot = vc.chain.clock.slot_at(vc.now_ms()) + 1
    query = {"slot": str(slot), "committee_index": "60"}
    async with session.get(base + "/eth/v1/validator/attestation_data", params=query) as r:
        await r.read()


def test_every_intercepted_exchange_matches_the_beacon_api_spec(cluster: Path) -> None:
    api = BeaconAPISpec()
    config = DevnetConfig(
        validators=VALIDATORS, epochs=2, seconds_per_slot=2, genesis_delay_s=6, committee_size=16
    )

    async def scenario() -> tuple[list[Exchange], Any, dict[str, Any], dict[str, Any]]:
        async with devnet_cluster(cluster, DevnetBN(config), "--round-ms", "500", vcs=True) as running:
            urls, vcs = running.urls, running.vcs
            recorder = await Recorder(urls[0]).start()
            recorder.rewrite = Translate(recorder.exchanges, vcs[0])
            vcs[0].base_url = recorder.url
            try:
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(vc.setup() for vc in vcs))
                    clock = vcs[0].chain.clock
                    first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
                    refused = asyncio.create_task(other_data_refused(recorder, vcs[0], session))
                    await asyncio.gather(*(vc.run(until_slot=first + SLOTS - 1) for vc in vcs))
                    refusal = await asyncio.wait_for(refused, 5)
                    await after_run(recorder, vcs[0], session)
                    async with session.get(urls[0] + "/covalidator/v1/status") as r:
                        status = (await r.json())["data"]
                    async with session.get(running.bn.url + "/devnet/report") as r:
                        report = await r.json()
            finally:
                await recorder.stop()
        return recorder.exchanges, refusal, status, report

    exchanges, (status_code, refusal), status, report = run(scenario(), 150)
    assert status_code == 400 and refusal["failures"][0]["index"] == 0, refusal
    assert "other than what the cluster decided" in refusal["failures"][0]["message"], refusal
    refusals = status["metrics"]["metrics"].get("vc_partial_refused", {})
    assert sum(n for k, n in refusals.items() if "cause=signed_other_data" in k) >= 1, refusals
    assert (report["invalid_submissions"], report["slashable_pairs"]) == (0, 0), report
    seen = set()
    problems = []
    for ex in exchanges:
        if ex.path.startswith("/covalidator/"):
            continue
        try:
            if ex.method == "POST":
                api.check_request(ex.method, ex.path, ex.body, query=ex.query, headers=ex.headers)
            api.check_response(
                ex.method, ex.path, ex.status, ex.answer, query=ex.query, headers=ex.answer_headers
            )
        except Exception as error:  # every mismatch listed, not only the first
            problems.append(f"{ex.method} {ex.path} {ex.status}: {type(error).__name__}: {error}"[:600])
        seen.add((ex.method, template(ex.path), ex.status))
    assert not problems, "\n".join(problems)
    assert not EXPECTED - seen, sorted(EXPECTED - seen)
