"""Schema-driven fuzzing of the VC-facing API (issue 16): schemathesis generates requests for every
endpoint covalidator intercepts, from ../shared/beacon-APIs, and sends them to a live node of a
4-node devnet while its VCs do their duties.

Pass: no 5xx other than the documented 503 (no decided data before a duty's deadline); every answer
valid against the spec's response schema for its status where the spec has one (checked with
openapi-core, tests/helpers/beacon_api.py); the duties keep succeeding during the run; the fuzzed
node's RSS stays bounded. The bounded run here is in CI; `FUZZ_EXAMPLES` sets the examples per
endpoint for a longer run (`make fuzz`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, InvalidArgument, Unsatisfiable
from schemathesis import GenerationMode

from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from tests.conftest import shared_path
from tests.helpers.aio import run
from tests.helpers.devnet_cluster import attesters_on_chain, devnet_cluster, make_devnet_cluster, rss_kib

NODES, VALIDATORS = 4, 8
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# the intercepted endpoints (runtime/validator_api.py) the spec describes
INTERCEPTED = {
    ("GET", "/eth/v1/validator/attestation_data"),
    ("GET", "/eth/v3/validator/blocks/{slot}"),
    ("GET", "/eth/v2/validator/aggregate_attestation"),
    ("GET", "/eth/v1/validator/sync_committee_contribution"),
    ("POST", "/eth/v2/beacon/pool/attestations"),
    ("POST", "/eth/v2/beacon/blocks"),
    ("POST", "/eth/v2/beacon/blinded_blocks"),
    ("POST", "/eth/v2/validator/aggregate_and_proofs"),
    ("POST", "/eth/v1/beacon/pool/sync_committees"),
    ("POST", "/eth/v1/validator/contribution_and_proofs"),
    ("POST", "/eth/v1/validator/beacon_committee_selections"),
    ("POST", "/eth/v1/validator/sync_committee_selections"),
    ("POST", "/eth/v1/beacon/pool/voluntary_exits"),
    ("POST", "/eth/v1/validator/register_validator"),
    ("POST", "/eth/v1/validator/prepare_beacon_proposer"),
    ("GET", "/eth/v1/validator/duties/proposer/{epoch}"),
    ("POST", "/eth/v1/validator/duties/attester/{epoch}"),
    ("POST", "/eth/v1/validator/duties/sync/{epoch}"),
    ("GET", "/eth/v1/node/version"),
}


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_path(str(shared_path("beacon-APIs", "beacon-node-oapi.yaml")))
    chosen = []
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in INTERCEPTED:
            chosen.append(op)
    return chosen


def send(
    session: requests.Session,
    case: Any,
    base_url: str,
    where: str,
    tag: str,
    statuses: Counter[str],
    problems: list[str],
) -> tuple[requests.Response, dict[str, Any]] | None:
    """Send one generated request and count its status under `tag`; None (a problem recorded) when
    nothing answers or the answer is a 5xx other than the documented 503."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs.pop("base_url", None)
    try:
        response = session.request(**kwargs, timeout=30)
    except requests.RequestException as error:
        problems.append(f"{where}: no answer ({error})")
        return None
    statuses[f"{tag} {response.status_code}"] += 1
    if response.status_code >= 500 and response.status_code != 503:
        problems.append(f"{where}: {response.status_code} {response.text[:200]}")
        return None
    return response, kwargs


def exchange(
    op: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    statuses: Counter[str],
    problems: list[str],
) -> Any:
    """The Hypothesis test of one operation: send each generated request (valid per the schema, or
    with `mode` NEGATIVE deliberately not), check the answer."""
    from tests.helpers.beacon_api import BeaconAPISpec

    spec = BeaconAPISpec()
    method = op.method.upper()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        where = f"{method} {case.formatted_path}"
        sent = send(session, case, base_url, where, f"{mode.value} {method}", statuses, problems)
        if sent is None:
            return
        response, _ = sent
        if not response.content or not response.headers.get("Content-Type", "").startswith(
            "application/json"
        ):
            return
        try:
            body = response.json()
        except ValueError:
            problems.append(f"{where}: a body that is not JSON")
            return
        if response.status_code >= 400 and not (
            isinstance(body, dict) and isinstance(body.get("message"), str)
        ):
            problems.append(f"{where}: an error without a message: {body!r:.200}")
            return
        if mode is GenerationMode.NEGATIVE and response.status_code == 200:
            return  # a lenient answer to a malformed request is no finding; its shape is not checked
        try:  # the answer against the operation's response schema for its status
            spec.check_response(
                method, case.formatted_path, response.status_code, body, query=case.query or None
            )
        except Exception as error:
            problems.append(f"{where}: {response.status_code} answer not valid: {str(error)[:300]}")

    return one


def fuzz(base_url: str, statuses: Counter[str], problems: list[str], skipped: list[str]) -> None:
    """Every intercepted operation, EXAMPLES generated requests each (synchronous: run in a thread)."""
    session = requests.Session()
    for op in operations():
        for mode in GenerationMode:
            try:
                exchange(op, mode, base_url, session, statuses, problems)()
            except (InvalidArgument, Unsatisfiable, FailedHealthCheck) as error:
                # a schema Hypothesis cannot generate (a deneb blob is 262,144 hex digits): named
                skipped.append(f"{mode.value} {op.method.upper()} {op.path}: {type(error).__name__}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_generated_requests_to_a_live_node_never_break_it(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_devnet_cluster(cluster, NODES, VALIDATORS)
    config = DevnetConfig(
        validators=VALIDATORS, epochs=6, seconds_per_slot=3, genesis_delay_s=6, committee_size=16
    )
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    skipped: list[str] = []

    async def scenario() -> tuple[Any, list[int], float, int, int]:
        async with devnet_cluster(cluster, DevnetBN(config), "--round-ms", "500", vcs=True) as running:
            vcs = running.vcs
            await asyncio.gather(*(vc.setup() for vc in vcs))
            clock = vcs[0].chain.clock
            first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
            last = first + 32  # ~96 s: the duties run all through the fuzzing
            pid = running.processes[0].pid
            rss = [rss_kib(pid)]
            started = time.monotonic()
            duties = asyncio.gather(*(vc.run(until_slot=last) for vc in vcs))
            await asyncio.to_thread(fuzz, running.urls[0], statuses, problems, skipped)
            seconds = time.monotonic() - started
            rss.append(rss_kib(pid))
            await duties
            rss.append(rss_kib(pid))
            assert running.processes[0].returncode is None, "the fuzzed node died"
            import aiohttp

            async with (
                aiohttp.ClientSession() as session,
                session.get(running.bn.url + "/devnet/report", params={"slots": "1"}) as r,
            ):
                report = await r.json()
        return report, rss, seconds, first, last

    report, rss, seconds, first, last = run(scenario(), 600)
    tried = sum(statuses.values())
    print(
        f"fuzz: {tried} requests in {seconds:.0f} s, by status {dict(sorted(statuses.items()))}; RSS KiB {rss}"
    )
    print(f"not generated: {skipped}")
    # only the blob-carrying block body cannot be generated at all; a negative request needs something
    # to break (node/version has no parameter)
    assert [x for x in skipped if x.startswith("positive") and "/beacon/blocks" not in x] == [], skipped
    kinds = sorted(
        {
            problem.split(": ")[0].split(" /")[0]
            + " "
            + problem.split(" ")[1].split("?")[0]
            + " "
            + problem.split(": ", 1)[1][:120]
            for problem in problems
        }
    )
    for kind in kinds:
        print("PROBLEM", kind)
    assert not problems, kinds[:30]
    assert tried >= EXAMPLES * 30  # the endpoints were exercised, not skipped
    assert (report["slashable_pairs"], report["invalid_submissions"]) == (0, 0), report
    due, done = attesters_on_chain(report, first, last)
    print(f"attester duties on chain during the fuzzing: {done}/{due}")
    assert due >= 8 and done >= 0.9 * due, (done, due, report["missed"])
    assert rss[-1] < 2 * rss[0] + 100_000, rss  # bounded: no growth with the requests tried


# the object each Remote Signing API request type carries -> its `type` (sign.yaml's discriminator)
SIGNING_TYPES = {
    "aggregation_slot": "AGGREGATION_SLOT",
    "aggregate_and_proof": "AGGREGATE_AND_PROOF",
    "attestation": "ATTESTATION",
    "beacon_block": "BLOCK_V2",
    "block": "BLOCK",
    "deposit": "DEPOSIT",
    "randao_reveal": "RANDAO_REVEAL",
    "voluntary_exit": "VOLUNTARY_EXIT",
    "sync_committee_message": "SYNC_COMMITTEE_MESSAGE",
    "sync_aggregator_selection_data": "SYNC_COMMITTEE_SELECTION_PROOF",
    "contribution_and_proof": "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
    "validator_registration": "VALIDATOR_REGISTRATION",
}


# what the cluster signs only for a value it decided (node/signer.py): never for made-up data. The others
# (RANDAO for an epoch with a proposer duty, selection proofs, a sync message's root) are the same message
# on every node, co-signed without consensus: a made-up request can meet a real one, as in a CI run where
# a generated RANDAO_REVEAL for the current epoch got the group reveal the nodes made for their proposer
DECIDED_ONLY = frozenset(
    {"ATTESTATION", "BLOCK", "BLOCK_V2", "AGGREGATE_AND_PROOF", "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
     "VOLUNTARY_EXIT", "VALIDATOR_REGISTRATION", "DEPOSIT"}
)  # fmt: skip


def signer_exchange(
    op: Any,
    mode: GenerationMode,
    base_url: str,
    identifier: str,
    statuses: Counter[str],
    problems: list[str],
    fork_info: dict[str, Any] | None = None,
) -> Any:
    """The Hypothesis test of one Remote Signing API operation (the path's identifier: a real group key,
    so requests get past the lookup to the model). With `fork_info` (this chain's), a valid generated
    body carries it and no `signingRoot` (optional in the spec), so the request gets past the chain and
    root checks to the signing rules; what it asks was never decided, so nothing may be signed."""
    from openapi_core.testing import MockRequest, MockResponse

    from tests.test_signer_api import remote_signing_api

    session = requests.Session()
    method = op.method.upper()
    fixed = {"identifier": identifier} if "{identifier}" in op.path else None

    @settings(
        max_examples=5 * EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=op.as_strategy(generation_mode=mode, path_parameters=fixed))
    def one(case: Any) -> None:
        where = f"{method} {case.formatted_path[:40]}"
        body_type = case.body.get("type") if isinstance(case.body, dict) else None
        ours = fork_info is not None and mode is GenerationMode.POSITIVE and isinstance(case.body, dict)
        if ours:
            case.body["fork_info"] = fork_info
            case.body.pop("signingRoot", None)
            kinds = [kind for key, kind in SIGNING_TYPES.items() if key in case.body]
            if kinds:  # the discriminator as the spec maps it (the generator writes schema names there)
                case.body["type"] = body_type = kinds[0]
        label = f"{mode.value} {method}" + (f" {body_type} (this chain)" if ours else "")
        sent = send(session, case, base_url, where, label, statuses, problems)
        if sent is None:
            return
        response, kwargs = sent
        if (
            response.status_code == 200
            and ours
            and "/sign/" in case.formatted_path
            and body_type in DECIDED_ONLY
        ):
            # this chain's fork and no root of the VC's own: still nothing the cluster decided
            problems.append(f"{where}: a {body_type} signed for generated data: {case.body!r:.300}")
        elif response.status_code == 200 and body_type in ("ATTESTATION", "BLOCK_V2"):
            # nothing the fuzzer makes up was decided by the cluster: never signed
            problems.append(f"{where}: a {body_type} signed for generated data: {case.body!r:.300}")
        elif mode is GenerationMode.POSITIVE or response.status_code != 200:
            raw = kwargs.get("data") or (json.dumps(kwargs["json"]).encode() if "json" in kwargs else None)
            request = MockRequest("http://localhost", method.lower(), case.formatted_path, data=raw)
            answer = MockResponse(
                response.content,
                status_code=response.status_code,
                content_type=response.headers.get("Content-Type"),
            )
            try:
                remote_signing_api().validate_response(request, answer)
            except Exception as error:
                problems.append(f"{where}: {response.status_code} answer not valid: {str(error)[:300]}")

    return one


@st.composite
def signing_body(draw: Any, now_slot: int, fork_info: dict[str, Any]) -> dict[str, Any]:
    """A well-formed signing request of this chain (its fork_info, SSZ objects that parse, no
    `signingRoot`) over made-up data: slots around the current one or anywhere, random roots, this
    cluster's validator indices or others. It reaches the node's signing rules, which must refuse it."""
    from covalidator.model.eth import ssz_json
    from covalidator.model.eth.specs import spec

    s = spec("altair", "minimal")
    near = draw(st.booleans())  # a slot around the current one (offset drawn: the clock moves), or any
    slot = max(0, now_slot + draw(st.integers(-3, 3))) if near else draw(st.integers(0, 2**64 - 1))
    epoch, index = slot // 8, draw(st.integers(0, 15))
    root = lambda: "0x" + draw(st.binary(min_size=32, max_size=32)).hex()  # noqa: E731
    proof = "0x" + draw(st.binary(min_size=96, max_size=96)).hex()
    data = {
        "slot": str(slot),
        "index": "0",
        "beacon_block_root": root(),
        "source": {"epoch": str(max(0, epoch - 1)), "root": root()},
        "target": {"epoch": str(epoch), "root": root()},
    }
    aggregate = {"aggregation_bits": "0x03", "data": data, "signature": proof}
    contribution = {
        "slot": str(slot),
        "beacon_block_root": root(),
        "subcommittee_index": str(draw(st.integers(0, 3))),
        "aggregation_bits": "0x00",  # the minimal preset: 8 per subcommittee
        "signature": proof,
    }
    block = ssz_json.to_json(s.BeaconBlock(slot=min(slot, 2**63), proposer_index=index))
    assert isinstance(block, dict)
    block["parent_root"] = root()
    bodies = {
        "AGGREGATION_SLOT": {"aggregation_slot": {"slot": str(slot)}},
        "ATTESTATION": {"attestation": data},
        "BLOCK_V2": {"beacon_block": {"version": "ALTAIR", "block": block}},
        "RANDAO_REVEAL": {"randao_reveal": {"epoch": str(epoch)}},
        "VOLUNTARY_EXIT": {"voluntary_exit": {"epoch": str(epoch), "validator_index": str(index)}},
        "SYNC_COMMITTEE_MESSAGE": {
            "sync_committee_message": {"beacon_block_root": root(), "slot": str(slot)}
        },
        "SYNC_COMMITTEE_SELECTION_PROOF": {
            "sync_aggregator_selection_data": {
                "slot": str(slot),
                "subcommittee_index": contribution["subcommittee_index"],
            }
        },
        "AGGREGATE_AND_PROOF": {
            "aggregate_and_proof": {
                "aggregator_index": str(index),
                "aggregate": aggregate,
                "selection_proof": proof,
            }
        },
        "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": {
            "contribution_and_proof": {
                "aggregator_index": str(index),
                "contribution": contribution,
                "selection_proof": proof,
            }
        },
    }
    kind = draw(st.sampled_from(sorted(bodies)))
    return {"type": kind, "fork_info": fork_info, **bodies[kind]}


def structured_signing(
    base_url: str,
    identifier: str,
    fork_info: dict[str, Any],
    now_slot: Callable[[], int],
    statuses: Counter[str],
    problems: list[str],
) -> None:
    """`signing_body` requests: never signed, every answer valid against the spec."""
    from openapi_core.testing import MockRequest, MockResponse

    from tests.test_signer_api import remote_signing_api

    session = requests.Session()
    path = f"/api/v1/eth2/sign/{identifier}"

    # 3 x EXAMPLES, at most 120: a request the rules pass waits for peers' partials until its duty's
    # deadline (~2.5 s), so `make fuzz`'s 300 examples would hold the run for ~40 minutes
    @settings(
        max_examples=3 * min(EXAMPLES, 40),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one(data: Any) -> None:
        body = data.draw(signing_body(now_slot(), fork_info))
        response = session.post(base_url + path, json=body, timeout=30)
        statuses[f"structured {body['type']} {response.status_code}"] += 1
        if response.status_code == 200 and body["type"] in DECIDED_ONLY:
            problems.append(f"a {body['type']} signed for made-up data: {body!r:.300}")
        raw = json.dumps(body).encode()
        answer = MockResponse(
            response.content,
            status_code=response.status_code,
            content_type=response.headers.get("Content-Type"),
        )
        try:
            remote_signing_api().validate_response(
                MockRequest("http://localhost", "post", path, data=raw), answer
            )
        except Exception as error:
            problems.append(
                f"structured {body['type']}: {response.status_code} answer not valid: {str(error)[:300]}"
            )

    one()


def test_generated_signing_requests_to_a_live_signer_node_never_break_it(tmp_path: Path) -> None:
    """The signer API (signer mode) fuzzed the same way, from ../shared/remote-signing-api, on a node of
    a 4-node signer-mode devnet: no 5xx but 503, answers valid against the spec, nothing signed for
    generated attestation or block data, and the node answers and stays within its memory after."""
    from covalidator.runtime import keys_io
    from tests.helpers.node_proc import free_ports

    cluster = tmp_path / "c"
    make_devnet_cluster(cluster, NODES, VALIDATORS)
    lock = keys_io.load_lock(cluster / "node0" / keys_io.LOCK_FILE)
    group = "0x" + lock.distributed_validators[0].distributed_public_key.hex()
    config = DevnetConfig(
        validators=VALIDATORS, epochs=3, seconds_per_slot=3, genesis_delay_s=4, committee_size=16
    )
    ports = free_ports(NODES)
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    spec = schemathesis.openapi.from_path(str(shared_path("remote-signing-api", "remote-signing-oapi.yaml")))

    def fuzz(base_url: str, fork_info: dict[str, Any], now_slot: Callable[[], int]) -> None:
        structured_signing(base_url, group, fork_info, now_slot, statuses, problems)
        for result in spec.get_all_operations():
            for mode in GenerationMode:
                with contextlib.suppress(Unsatisfiable):  # publicKeys has nothing to break
                    signer_exchange(result.ok(), mode, base_url, group, statuses, problems)()
                    if mode is GenerationMode.POSITIVE and "{identifier}" in result.ok().path:
                        signer_exchange(result.ok(), mode, base_url, group, statuses, problems, fork_info)()

    async def scenario() -> list[int]:
        per_node = lambda i: ("--signer-api", f"127.0.0.1:{ports[i]}")  # noqa: E731
        async with devnet_cluster(
            cluster, DevnetBN(config), "--round-ms", "500", per_node=per_node
        ) as running:
            pid = running.processes[0].pid
            rss = [rss_kib(pid)]
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.get(running.bn.url + "/eth/v1/beacon/genesis") as r:
                    genesis = (await r.json())["data"]
                async with session.get(running.bn.url + "/eth/v1/beacon/states/head/fork") as r:
                    fork = (await r.json())["data"]
            fork_info = {"fork": fork, "genesis_validators_root": genesis["genesis_validators_root"]}
            genesis_time = int(genesis["genesis_time"])
            now_slot = lambda: max(0, int((time.time() - genesis_time) // config.seconds_per_slot))  # noqa: E731
            await asyncio.to_thread(fuzz, f"http://127.0.0.1:{ports[0]}", fork_info, now_slot)
            rss.append(rss_kib(pid))
            assert running.processes[0].returncode is None, "the fuzzed node died"
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{ports[0]}/upcheck") as r,
            ):
                assert r.status == 200
        return rss

    rss = run(scenario(), 600 + 6 * EXAMPLES)
    tried = sum(statuses.values())
    print(f"signer fuzz: {tried} requests, by status {dict(sorted(statuses.items()))}; RSS KiB {rss}")
    assert not problems, problems[:20]
    assert tried >= EXAMPLES * 15  # two modes of the sign endpoint and this chain's, 5 x EXAMPLES each
    structured = {k: n for k, n in statuses.items() if k.startswith("structured")}
    # well-formed requests of this chain get past the parsing and chain checks to the signing rules
    assert sum(n for k, n in structured.items() if k.endswith(" 412")) >= min(EXAMPLES, 40), structured
    assert rss[-1] < 2 * rss[0] + 100_000, rss
