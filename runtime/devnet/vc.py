"""A minimal DV-aware validator client over the Beacon API, for the devnet demo and the tests.

Holds one node's keys (its shares of each validator; for a 1-of-1 run, the validator keys), and
walks the Beacon-API validator flow against `base_url` (a covalidator's validator API, or the
devnet BN directly) in wall-clock time:

  epoch start  attester (POST), proposer (GET) and sync (POST) duties for this epoch and the next;
               prepare_beacon_proposer
  slot start   proposer: RANDAO reveal signed with its key (a partial, behind covalidator) in the
               produceBlockV3 request, the block signed and published (v2, Eth-Consensus-Version);
               beacon_committee_selections and sync_committee_selections with its proofs (a DV node
               answers with the combined proofs; 501 from a plain BN: its own proofs are used)
  1/3          attestation_data per committee, signed, posted; sync committee messages over the head
  2/3          aggregate_attestation + AggregateAndProof, sync_committee_contribution +
               ContributionAndProof where the proof selects the validator

What it signs comes from `model.vc_flow` (shared with the simulated VC, `model.sim_vc`), over
`model.signing.signing_root`. Forks altair .. deneb (the devnet is altair). Counts every request,
error and submission (`stats`). Must not: keep any slashing protection (covalidator and the judge
do that) or retry on its own schedule.

Signer mode (`signer_url`: a covalidator's Remote Signing API): the VC holds no key. Its validators
are the signer's `publicKeys` (group keys); every signature is a `POST /api/v1/eth2/sign/{pubkey}`
(body from `model.eth.remote_signing`) answered with the cluster's group signature; selection proofs
come from the signer (AGGREGATION_SLOT, SYNC_COMMITTEE_SELECTION_PROOF), not the selections endpoints.
Each request's latency is kept per type (`stats.sign_ms`): the time covalidator adds to a signature.

As a process: `python -m covalidator.runtime.devnet.vc --base-url URL (--keys DIR | --signer URL)
[--epochs E]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from covalidator.model.cluster.config import ChainConfig, hex0x
from covalidator.model.crypto import bls
from covalidator.model.eth import remote_signing, ssz_json, vc_flow
from covalidator.model.eth.beacon_data import is_aggregator, is_sync_committee_aggregator
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.eth.specs import spec
from covalidator.runtime.devnet import use_fixture_bls_backend

log = logging.getLogger("covalidator.devnet.vc")

ROUTE_MISSING = frozenset({404, 405, 501})
SIGNING_ROOT_MEMO = 256  # distinct messages whose signing roots the VC remembers


class VCError(Exception):
    """A request that got no usable answer (counted in `stats`)."""


@dataclass
class EpochDuties:
    attesters: dict[int, list[vc_flow.AttesterDuty]] = field(default_factory=dict)  # slot -> duties
    proposers: dict[int, int] = field(default_factory=dict)  # slot -> our validator index
    sync: dict[int, list[int]] = field(default_factory=dict)  # our validator index -> subcommittees


@dataclass
class VCStats:
    requests: dict[str, int] = field(default_factory=dict)  # endpoint name -> count
    errors: dict[str, int] = field(default_factory=dict)  # endpoint name -> failed calls
    submitted: dict[str, int] = field(default_factory=dict)  # kind -> objects accepted
    last_errors: list[str] = field(default_factory=list)
    sign_ms: dict[str, list[float]] = field(default_factory=dict)  # signer mode: request type -> latencies

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": sum(self.requests.values()),
            "errors": sum(self.errors.values()),
            "by_endpoint": {k: [v, self.errors.get(k, 0)] for k, v in sorted(self.requests.items())},
            "submitted": dict(sorted(self.submitted.items())),
            "last_errors": self.last_errors[-10:],
            "sign_ms": {k: sorted(v) for k, v in sorted(self.sign_ms.items())},
        }


async def _then[T](task: Awaitable[T], make: Callable[[T], Awaitable[object]]) -> None:
    """Run `make(result)` once `task` succeeds (its failure is the caller's `gather` result)."""
    await make(await task)


class DevnetVC:
    def __init__(
        self,
        base_url: str,
        secrets: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.time,
        fee_recipient: str = "0x" + "00" * 20,
        signer_url: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer_url = signer_url.rstrip("/") if signer_url else None  # signer mode: no key here
        self.secrets = {pk.lower(): sk for pk, sk in secrets.items()}  # pubkey -> secret (or share)
        self.clock = clock
        self.fee_recipient = fee_recipient
        self.stats = VCStats()
        self.config: ChainConfig | None = None
        self.pubkey_of: dict[int, str] = {}  # validator index -> our pubkey
        self.duties: dict[int, EpochDuties] = {}
        self.dv: bool | None = None  # does the node serve the selections endpoints? (None: not asked yet)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fetching: set[int] = set()  # epochs whose duties are being fetched
        self._prepared = False
        self._roots: dict[tuple[Kind, str], bytes] = {}

    # ---- HTTP -----------------------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        missing_ok: bool = False,
        base: str | None = None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        """(status, JSON body, headers) of a 2xx answer (or of a route-missing one if `missing_ok`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.stats.requests[name] = self.stats.requests.get(name, 0) + 1
        try:
            async with self._session.request(
                method,
                (base or self.base_url) + path,
                params=params,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status, answer_headers = response.status, response.headers
            parsed = json.loads(raw) if raw.strip() else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            problem = f"{name}: {type(error).__name__}: {error}"
        else:
            if status < 300 or (missing_ok and status in ROUTE_MISSING):
                return status, parsed, answer_headers
            message = parsed.get("message") if isinstance(parsed, dict) else parsed
            problem = f"{name}: {status} {str(message)[:300]}"
        self.stats.errors[name] = self.stats.errors.get(name, 0) + 1
        self.stats.last_errors = [*self.stats.last_errors[-49:], problem]
        raise VCError(problem)

    async def remote_sign(self, index: int, kind: Kind, message: Mapping[str, Any]) -> str:
        """Signer mode: the cluster's group signature over `message`, from the node's signer API."""
        assert self.signer_url is not None
        body = remote_signing.sign_request(self.chain.schedule, kind, message)
        name = "sign_" + body["type"].lower()
        began = time.perf_counter()
        _, answer, _ = await self.call(
            name,
            "POST",
            f"/api/v1/eth2/sign/{self.pubkey_of[index]}",
            body=body,
            timeout=self.chain.clock.slot_ms / 1000,
            base=self.signer_url,
        )
        self.stats.sign_ms.setdefault(body["type"], []).append(round((time.perf_counter() - began) * 1000, 1))
        if not isinstance(answer, dict) or not isinstance(answer.get("signature"), str):
            raise VCError(f"{name}: an answer without a signature")
        return str(answer["signature"])

    async def sign_any(self, index: int, kind: Kind, message: Mapping[str, Any]) -> str:
        """With our key (share), or from the signer API in signer mode."""
        if self.signer_url is None:
            return self.sign(index, kind, message)
        return await self.remote_sign(index, kind, message)

    async def signed(
        self, build: Callable[[vc_flow.Sign], list[dict[str, Any]]], field: str = "signature"
    ) -> list[dict[str, Any]]:
        """Objects that each carry one signature in `field` (`vc_flow`): signed with our key, or in
        signer mode built first and each signature asked of the signer API, all at once."""
        if self.signer_url is None:
            return build(self.sign)
        objects, asks = vc_flow.unsigned(build)
        signatures = await asyncio.gather(*(self.remote_sign(*ask) for ask in asks))
        return [{**obj, field: sig} for obj, sig in zip(objects, signatures, strict=True)]

    async def data(self, name: str, method: str, path: str, **options: Any) -> Any:
        _, body, _ = await self.call(name, method, path, **options)
        if not isinstance(body, dict) or "data" not in body:
            raise VCError(f"{name}: an answer without data")
        return body["data"]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ---- set-up ---------------------------------------------------------------------------------------

    async def setup(self, attempts: int = 30) -> None:
        """Genesis, spec and our validators' indices; retried while the node is not up yet."""
        for attempt in range(attempts):
            try:
                if self.signer_url is not None and not self.secrets:  # signer mode: its keys
                    _, keys, _ = await self.call(
                        "public_keys", "GET", "/api/v1/eth2/publicKeys", base=self.signer_url
                    )
                    self.secrets = {str(k).lower(): 0 for k in keys}
                genesis = await self.data("genesis", "GET", "/eth/v1/beacon/genesis")
                config = await self.data("spec", "GET", "/eth/v1/config/spec")
                root = bytes.fromhex(genesis["genesis_validators_root"][2:])
                self.config = ChainConfig.from_spec(config, int(genesis["genesis_time"]), root)
                records = await self.data(
                    "validators",
                    "POST",
                    "/eth/v1/beacon/states/head/validators",
                    body={"ids": sorted(self.secrets)},
                )
                self.pubkey_of = {
                    int(r["index"]): r["validator"]["pubkey"].lower()
                    for r in records
                    if r["validator"]["pubkey"].lower() in self.secrets
                }
                return
            except VCError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)

    @property
    def chain(self) -> ChainConfig:
        assert self.config is not None, "setup() first"
        return self.config

    def sign(self, index: int, kind: Kind, message: Mapping[str, Any]) -> str:
        """`vc_flow.Sign`: as validator `index`, with our key (share)."""
        secret = self.secrets[self.pubkey_of[index]]
        return str(hex0x(bls.sign(secret, self._signing_root(kind, message))))

    def _signing_root(self, kind: Kind, message: Mapping[str, Any]) -> bytes:
        """Remembered for the last few messages: a committee's attestations and a slot's selection
        proofs all sign one message (a root each cost ~0.2 ms, 125 per slot at 1,000 validators)."""
        key = (kind, json.dumps(message, sort_keys=True))
        root = self._roots.get(key)
        if root is None:
            root = self._roots[key] = signing_root(self.chain.schedule, kind, message)
            if len(self._roots) > SIGNING_ROOT_MEMO:
                del self._roots[next(iter(self._roots))]
        return root

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and isinstance(task.exception(), VCError):
            log.info("%s", task.exception())  # already counted
        elif not task.cancelled() and task.exception() is not None:
            log.error("devnet VC task failed", exc_info=task.exception())
            self.stats.last_errors.append(f"bug: {task.exception()!r}")

    # ---- duties ---------------------------------------------------------------------------------------

    async def fetch_duties(self, epoch: int) -> EpochDuties:
        self._fetching.add(epoch)
        try:
            return await self._fetch_duties(epoch)
        finally:
            self._fetching.discard(epoch)

    async def _fetch_duties(self, epoch: int) -> EpochDuties:
        indices = [str(i) for i in sorted(self.pubkey_of)]
        duties = EpochDuties()
        attesters = await self.data(
            "attester_duties", "POST", f"/eth/v1/validator/duties/attester/{epoch}", body=indices
        )
        for raw in attesters:
            d = vc_flow.AttesterDuty.from_json(raw)
            duties.attesters.setdefault(d.slot, []).append(d)
        proposers = await self.data("proposer_duties", "GET", f"/eth/v1/validator/duties/proposer/{epoch}")
        for raw in proposers:
            if int(raw["validator_index"]) in self.pubkey_of:
                duties.proposers[int(raw["slot"])] = int(raw["validator_index"])
        sync = await self.data("sync_duties", "POST", f"/eth/v1/validator/duties/sync/{epoch}", body=indices)
        per_subcommittee = self.chain.sync_committee_size // self.chain.sync_committee_subnet_count
        for raw in sync:
            subs = {int(p) // per_subcommittee for p in raw["validator_sync_committee_indices"]}
            duties.sync[int(raw["validator_index"])] = sorted(subs)
        self.duties[epoch] = duties
        for old in [e for e in self.duties if e < epoch - 1]:
            del self.duties[old]
        return duties

    async def duties_of(self, epoch: int) -> EpochDuties:
        return self.duties[epoch] if epoch in self.duties else await self.fetch_duties(epoch)

    async def prepare_proposers(self) -> None:
        body = [
            {"validator_index": str(i), "fee_recipient": self.fee_recipient} for i in sorted(self.pubkey_of)
        ]
        await self.call(
            "prepare_beacon_proposer", "POST", "/eth/v1/validator/prepare_beacon_proposer", body=body
        )

    # ---- the slot -------------------------------------------------------------------------------------

    async def _sleep_until(self, at_ms: int) -> None:
        delay = (at_ms - self.now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)

    async def run(self, until_slot: int | None = None) -> None:
        """Every slot from now until `until_slot` (inclusive; None: forever)."""
        clock = self.chain.clock
        slot = clock.slot_at(self.now_ms())
        while until_slot is None or slot <= until_slot:
            await self._sleep_until(clock.slot_start_ms(slot))
            epoch = clock.epoch_of(slot)
            try:
                duties = await self.duties_of(epoch)
            except (VCError, KeyError, TypeError, ValueError) as error:
                log.warning("no duties for epoch %s: %s", epoch, error)
                slot += 1
                continue
            if slot % clock.slots_per_epoch == 0 or not self._prepared:
                self._prepared = True
                self._spawn(self.prepare_proposers())
            if epoch + 1 not in self.duties and epoch + 1 not in self._fetching:
                self._spawn(self.fetch_duties(epoch + 1))
            self._spawn(self.slot_duties(slot, duties))
            slot += 1
        await self._sleep_until(clock.slot_start_ms(slot + 1))  # the last slot's 2/3 work and late answers

    async def slot_duties(self, slot: int, duties: EpochDuties) -> None:
        clock = self.chain.clock
        slot_ms = clock.slot_ms
        if slot in duties.proposers:
            self._spawn(self.propose(slot, duties.proposers[slot]))
        attesters = duties.attesters.get(slot, [])
        proofs = asyncio.create_task(self.selections(slot, attesters))
        sync_proofs = asyncio.create_task(self.sync_selections(slot, duties.sync))
        try:
            await self._sleep_until(clock.slot_start_ms(slot) + slot_ms // 3)
            attested = asyncio.create_task(self.attest(slot, attesters))
            root = await self.sync_messages(slot, duties.sync)
            roots = await attested
            await self._sleep_until(clock.slot_start_ms(slot) + 2 * slot_ms // 3)
            # each aggregation waits for its own proofs: a failed sync selection costs no aggregate
            await asyncio.gather(
                _then(proofs, lambda found: self.aggregate(slot, attesters, found, roots)),
                _then(sync_proofs, lambda found: self.contribute(slot, found, root)),
                return_exceptions=True,
            )
        finally:
            for task in (proofs, sync_proofs):
                task.cancel()

    async def propose(self, slot: int, index: int) -> None:
        epoch = self.chain.clock.epoch_of(slot)
        reveal = await self.sign_any(index, Kind.RANDAO_REVEAL, {"epoch": str(epoch)})
        _, body, headers = await self.call(
            "produce_block",
            "GET",
            f"/eth/v3/validator/blocks/{slot}",
            params={"randao_reveal": reveal},
            timeout=self.chain.clock.slot_ms / 1000,
        )
        block, version = body["data"], headers.get("Eth-Consensus-Version", body.get("version", ""))
        blinded = str(body.get("execution_payload_blinded", False)).lower() == "true"
        kind = Kind.BLINDED_BLOCK if blinded else Kind.BLOCK  # a builder's block: its payload as a header
        signed = {"message": block, "signature": await self.sign_any(index, kind, block)}
        await self.call(
            "publish_block",
            "POST",
            f"/eth/v2/beacon/{'blinded_blocks' if blinded else 'blocks'}",
            body=signed,
            headers={"Eth-Consensus-Version": version},
        )
        self._count("blocks", 1)

    async def _selections(self, name: str, objects: list[dict[str, str]]) -> dict[tuple[str, ...], str]:
        """Selection proofs by (validator index, slot[, subcommittee]): the node's combined ones on a DV
        node, else ours."""

        def key(item: Mapping[str, str]) -> tuple[str, ...]:
            return (
                item["validator_index"],
                item["slot"],
                *([item["subcommittee_index"]] if "subcommittee_index" in item else []),
            )

        own = {key(o): o["selection_proof"] for o in objects}
        if not objects or self.dv is False:
            return own
        status, body, _ = await self.call(
            name,
            "POST",
            f"/eth/v1/validator/{name}",
            body=objects,
            missing_ok=True,
            timeout=self.chain.clock.slot_ms * 2 / 3000,
        )
        if status in ROUTE_MISSING:
            self.dv = False
            return own
        self.dv = True
        return {key(o): o["selection_proof"] for o in body["data"]}

    async def selections(self, slot: int, duties: list[vc_flow.AttesterDuty]) -> dict[tuple[str, ...], str]:
        indices = [d.index for d in duties]
        if self.signer_url is not None:  # the group proofs straight from the signer
            objects = await self.signed(
                lambda sign: vc_flow.beacon_committee_selections(slot, indices, sign), "selection_proof"
            )
            return {(o["validator_index"], o["slot"]): o["selection_proof"] for o in objects}
        objects = vc_flow.beacon_committee_selections(slot, indices, self.sign)
        return await self._selections("beacon_committee_selections", objects)

    async def sync_selections(
        self, slot: int, members: Mapping[int, list[int]]
    ) -> dict[tuple[str, ...], str]:
        pairs = [(index, sub) for index, subs in sorted(members.items()) for sub in subs]
        if self.signer_url is not None:
            objects = await self.signed(
                lambda sign: vc_flow.sync_committee_selections(slot, pairs, sign), "selection_proof"
            )
            return {
                (o["validator_index"], o["slot"], o["subcommittee_index"]): o["selection_proof"]
                for o in objects
            }
        objects = vc_flow.sync_committee_selections(slot, pairs, self.sign)
        return await self._selections("sync_committee_selections", objects)

    async def attest(self, slot: int, duties: list[vc_flow.AttesterDuty]) -> dict[int, str]:
        """Attest in every committee; committee index -> the attestation data root signed."""
        fork = self.chain.fork_name(slot)
        roots: dict[int, str] = {}

        async def committee(index: int, members: list[vc_flow.AttesterDuty]) -> None:
            data = await self.data(
                "attestation_data",
                "GET",
                "/eth/v1/validator/attestation_data",
                params={"slot": str(slot), "committee_index": str(index)},
                timeout=self.chain.clock.slot_ms * 2 / 1000,
            )
            roots[index] = hex0x(
                ssz_json.hash_tree_root(spec(fork, self.chain.schedule.preset).AttestationData, data)
            )
            objects = await self.signed(lambda sign: vc_flow.attestations(data, members, sign))
            await self.call("submit_attestations", "POST", "/eth/v1/beacon/pool/attestations", body=objects)
            self._count("attestations", len(objects))

        await asyncio.gather(
            *(committee(i, m) for i, m in vc_flow.by_committee(duties).items()), return_exceptions=True
        )
        return roots

    async def sync_messages(self, slot: int, members: Mapping[int, list[int]]) -> str | None:
        if not members:
            return None
        try:
            root = (await self.data("head_root", "GET", "/eth/v1/beacon/blocks/head/root"))["root"]
            messages = await self.signed(
                lambda sign: vc_flow.sync_committee_messages(slot, root, sorted(members), sign)
            )
            await self.call(
                "submit_sync_messages", "POST", "/eth/v1/beacon/pool/sync_committees", body=messages
            )
        except VCError:
            return None
        self._count("sync_committee_messages", len(messages))
        return str(root)

    async def aggregate(
        self,
        slot: int,
        duties: list[vc_flow.AttesterDuty],
        proofs: dict[tuple[str, ...], str],
        roots: dict[int, str],
    ) -> None:
        async def committee(root: str, members: list[tuple[vc_flow.AttesterDuty, str]]) -> None:
            # one aggregate per committee, signed for each of its aggregators and posted together, as
            # Lighthouse's and Lodestar's validator clients do
            aggregate = await self.data(
                "aggregate_attestation",
                "GET",
                "/eth/v1/validator/aggregate_attestation",
                params={"attestation_data_root": root, "slot": str(slot)},
                timeout=self.chain.clock.slot_ms / 1000,
            )
            signed = await self.signed(
                lambda sign: [
                    vc_flow.signed_aggregate_and_proof(d.index, aggregate, proof, sign)
                    for d, proof in members
                ]
            )
            await self.call(
                "submit_aggregates", "POST", "/eth/v1/validator/aggregate_and_proofs", body=signed
            )
            self._count("aggregate_and_proofs", len(signed))

        by_committee: dict[int, list[tuple[vc_flow.AttesterDuty, str]]] = {}
        for d in duties:
            proof = proofs.get((str(d.index), str(slot)))
            if (
                proof is not None
                and d.committee_index in roots
                and is_aggregator(self.chain, d.committee_length, proof)
            ):
                by_committee.setdefault(d.committee_index, []).append((d, proof))
        await asyncio.gather(
            *(committee(roots[index], members) for index, members in by_committee.items()),
            return_exceptions=True,
        )

    async def contribute(self, slot: int, proofs: dict[tuple[str, ...], str], root: str | None) -> None:
        if root is None:
            return

        async def subcommittee(sub: str, members: list[tuple[str, str]]) -> None:
            # one contribution per subcommittee, signed for each of its aggregators, posted together
            contribution = await self.data(
                "sync_committee_contribution",
                "GET",
                "/eth/v1/validator/sync_committee_contribution",
                params={"slot": str(slot), "subcommittee_index": sub, "beacon_block_root": root},
                timeout=self.chain.clock.slot_ms / 1000,
            )
            signed = await self.signed(
                lambda sign: [
                    vc_flow.signed_contribution_and_proof(int(index), contribution, proof, sign)
                    for index, proof in members
                ]
            )
            await self.call(
                "submit_contributions", "POST", "/eth/v1/validator/contribution_and_proofs", body=signed
            )
            self._count("contribution_and_proofs", len(signed))

        by_sub: dict[str, list[tuple[str, str]]] = {}
        for (index, _, sub), proof in sorted(proofs.items()):
            if is_sync_committee_aggregator(self.chain, proof):
                by_sub.setdefault(sub, []).append((index, proof))
        await asyncio.gather(
            *(subcommittee(sub, members) for sub, members in by_sub.items()), return_exceptions=True
        )

    def _count(self, kind: str, n: int) -> None:
        self.stats.submitted[kind] = self.stats.submitted.get(kind, 0) + n


# ---- keys and the process ------------------------------------------------------------------------------


def load_secrets(directory: str) -> dict[str, int]:
    """pubkey -> secret of every EIP-2335 keystore in `directory` (or its validator_keys/)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from covalidator.runtime import keys_io

    folder = Path(directory)
    if (folder / keys_io.KEYS_DIR).is_dir():
        folder = folder / keys_io.KEYS_DIR
    entries = keys_io.read_keystores(folder)
    with ThreadPoolExecutor() as pool:
        raw = list(pool.map(keys_io.decrypt_keystore_file, entries))
    secrets = [bls.secret_from_bytes(s) for s in raw]
    return {hex0x(bls.sk_to_pk(s)): s for s in secrets}


def interop_secrets(validators: int) -> dict[str, int]:
    from covalidator.model.eth.interop import interop_secret_key

    secrets = [interop_secret_key(i) for i in range(validators)]
    return {hex0x(bls.sk_to_pk(s)): s for s in secrets}


async def run_vc(
    vc: DevnetVC, epochs: int | None, stats_file: str | None, ready_file: str | None = None
) -> None:
    import signal
    from pathlib import Path

    from covalidator.runtime.keys_io import write_file

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await vc.setup()
        clock = vc.chain.clock
        first = clock.slot_at(vc.now_ms())
        with contextlib.suppress(VCError, KeyError, TypeError, ValueError):  # else fetched at the slot
            await vc.duties_of(clock.epoch_of(first))  # known before the first slot
        if vc.pubkey_of:  # the first signing root now (it imports the fork's spec), not at slot 0
            vc._signing_root(Kind.AGGREGATION_SLOT, {"slot": str(first)})
        if ready_file:  # genesis, spec and our validators known: the run's driver may start the clock
            write_file(Path(ready_file), b"ready\n")
        until = None if epochs is None else epochs * vc.chain.clock.slots_per_epoch - 1
        running = asyncio.create_task(vc.run(until))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (running, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await vc.close()
        line = json.dumps(vc.stats.as_json())
        print(line, flush=True)
        if stats_file:
            write_file(Path(stats_file), (line + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m covalidator.runtime.devnet.vc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--base-url", required=True, help="the Beacon API to validate through")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--keys", help="a folder of EIP-2335 keystores (a node folder: its validator_keys/)")
    keys.add_argument("--signer", help="no keys: a Remote Signing API (covalidator --signer-api) signs")
    keys.add_argument("--interop-validators", type=int, help="sign with interop keys 0..V-1 (1-of-1)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="stop after epoch E-1 (default: run until SIGTERM)"
    )
    parser.add_argument("--stats-file", default=None, help="write the request/error counts here at exit")
    parser.add_argument(
        "--ready-file", default=None, help="write this file once set up (genesis, validators)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    use_fixture_bls_backend()
    if args.signer:
        vc = DevnetVC(args.base_url, {}, signer_url=args.signer)
    else:
        vc = DevnetVC(
            args.base_url, load_secrets(args.keys) if args.keys else interop_secrets(args.interop_validators)
        )
    asyncio.run(run_vc(vc, args.epochs, args.stats_file, args.ready_file))


if __name__ == "__main__":
    main()
