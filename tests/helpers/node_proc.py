"""`covalidator run` processes for tests: a cluster folder, a fake chain BN, nodes as subprocesses.

`chain_bn` scripts a FakeBN as a small chain around `genesis_time`: genesis and spec, the cluster's
validators at indices 10, 11, ..., attester duties (one per validator, in the epoch's first slots),
empty proposer and sync duties, and attestation data per slot.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from click.testing import CliRunner

from covalidator.runtime import keys_io
from covalidator.runtime.cli import main
from covalidator.runtime.devnet.ports import free_ports
from tests.helpers.fake_bn import GENESIS, SPEC, FakeBN, json_response

FORK_VERSION = GENESIS["genesis_fork_version"]
GVR = GENESIS["genesis_validators_root"]
FIRST_INDEX = 10
COVALIDATOR = (sys.executable, "-c", "from covalidator.runtime.cli import main; main()")


def free_port() -> int:
    return free_ports(1)[0]


def make_cluster(folder: Path, nodes: int = 4, validators: int = 2) -> list[int]:
    """A cluster on the fake chain in `folder`/node0.. ; returns the peer ports written in the lock."""
    ports = free_ports(nodes)
    result = CliRunner().invoke(
        main,
        [
            "create-cluster",
            "--nodes",
            str(nodes),
            "--validators",
            str(validators),
            "--network",
            "devnet",
            "--fork-version",
            FORK_VERSION,
            "--genesis-validators-root",
            GVR,
            "--peer-addresses",
            ",".join(f"127.0.0.1:{p}" for p in ports),
            "--kdf",
            "pbkdf2",
            "--kdf-cost",
            "1",
            "--out",
            str(folder),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return ports


def group_pubkeys(folder: Path) -> list[str]:
    lock = keys_io.load_lock(folder / "node0" / keys_io.LOCK_FILE)
    return ["0x" + v.distributed_public_key.hex() for v in lock.distributed_validators]


def chain_bn(
    pubkeys: list[str], genesis_time: int, slot_s: int = 1, slots_per_epoch: int = 8, stride: int = 1
) -> FakeBN:
    """Validator n attests at slot epoch * slots_per_epoch + (n * stride) % slots_per_epoch, committee n."""
    bn = FakeBN().standard()
    bn.answer("GET", "/eth/v1/beacon/genesis", {"data": {**GENESIS, "genesis_time": str(genesis_time)}})
    bn.answer(
        "GET",
        "/eth/v1/config/spec",
        {"data": {**SPEC, "SECONDS_PER_SLOT": str(slot_s), "SLOTS_PER_EPOCH": str(slots_per_epoch)}},
    )
    index = {pk: FIRST_INDEX + i for i, pk in enumerate(pubkeys)}

    async def validators(request: web.Request) -> web.StreamResponse:
        ids = (await request.json())["ids"]
        records = [
            {
                "index": str(index[i]),
                "balance": "32000000000",
                "status": "active_ongoing",
                "validator": {"pubkey": i, "effective_balance": "32000000000"},
            }
            for i in ids
            if i in index
        ]
        return json_response({"data": records, "execution_optimistic": False, "finalized": False})

    def attester(epoch: int) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            wanted = {int(i) for i in await request.json()}
            duties = [
                {
                    "pubkey": pk,
                    "validator_index": str(i),
                    "committee_index": str(n),
                    "committee_length": "1",
                    "committees_at_slot": str(len(pubkeys)),
                    "validator_committee_index": "0",
                    "slot": str(epoch * slots_per_epoch + (n * stride) % slots_per_epoch),
                }
                for n, (pk, i) in enumerate(index.items())
                if i in wanted
            ]
            return json_response(
                {"dependent_root": "0x" + "aa" * 32, "execution_optimistic": False, "data": duties}
            )

        return handler

    async def attestation_data(request: web.Request) -> web.StreamResponse:
        slot = int(request.query["slot"])
        epoch = slot // slots_per_epoch
        data = {
            "slot": str(slot),
            "index": request.query.get("committee_index", "0"),
            "beacon_block_root": "0x" + f"{slot % 256:02x}" * 32,
            "source": {"epoch": str(max(0, epoch - 1)), "root": "0x" + "cc" * 32},
            "target": {"epoch": str(epoch), "root": "0x" + "dd" * 32},
        }
        return json_response({"data": data})

    async def events(request: web.Request) -> web.StreamResponse:
        """A head event at every slot start (the server-sent event stream)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        while True:
            now = time.time()
            slot = int(now - genesis_time) // slot_s
            root = "0x" + f"{slot % 256:02x}" * 32
            event = {
                "slot": str(slot),
                "block": root,
                "state": root,
                "epoch_transition": False,
                "previous_duty_dependent_root": "0x" + "aa" * 32,
                "current_duty_dependent_root": "0x" + "aa" * 32,
                "execution_optimistic": False,
            }
            await response.write(f"event: head\ndata: {json.dumps(event)}\n\n".encode())
            await asyncio.sleep(genesis_time + (slot + 1) * slot_s - now)

    bn.route("GET", "/eth/v1/events", events)
    bn.route("POST", "/eth/v1/beacon/states/head/validators", validators)
    bn.route("GET", "/eth/v1/validator/attestation_data", attestation_data)
    for epoch in range(0, 64):
        bn.route("POST", f"/eth/v1/validator/duties/attester/{epoch}", attester(epoch))
        bn.answer(
            "GET",
            f"/eth/v1/validator/duties/proposer/{epoch}",
            {"dependent_root": "0x" + "aa" * 32, "data": []},
        )
        bn.answer("POST", f"/eth/v1/validator/duties/sync/{epoch}", {"data": []})
    return bn


def next_duty_slot(
    genesis_time: int, offset: int, lead_s: float = 1.5, slot_s: int = 1, slots_per_epoch: int = 8
) -> int:
    """The first slot `epoch * slots_per_epoch + offset` (a chain_bn duty slot) starting `lead_s` from now
    or later: tests pick their duty after the processes are up, however slow the machine is."""
    slot = offset
    while genesis_time + slot * slot_s < time.time() + lead_s:
        slot += slots_per_epoch
    return slot


async def start_node(
    cluster: Path, index: int, bn_url: str, api_port: int, *extra: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`covalidator run` for node `index`, its log in <cluster>/node<index>.log."""
    node = cluster / f"node{index}"
    log = open(cluster / f"node{index}.log", "ab")  # noqa: SIM115 - the child holds it
    try:
        return await asyncio.create_subprocess_exec(
            *COVALIDATOR,
            "run",
            "--lock",
            str(node / keys_io.LOCK_FILE),
            "--node-dir",
            str(node),
            "--beacon-node",
            bn_url,
            "--validator-api",
            f"127.0.0.1:{api_port}",
            *extra,
            stdout=log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    finally:
        log.close()


async def stop_node(process: asyncio.subprocess.Process, timeout: float = 15.0) -> int:
    """SIGTERM, then the exit code (SIGKILL and an AssertionError if it does not stop in time)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the node did not stop within {timeout} s of SIGTERM") from None
