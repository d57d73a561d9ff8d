"""Voluntary exits and builder registrations through 4 real `covalidator run` processes and the devnet BN.

Three of four operators exit validator 0: operator 0 as its VC does (a share-signed SignedVoluntaryExit
posted to its node), operator 1 with `covalidator exit sign` (then its node is SIGKILLed before the
exit could combine, and restarted), operator 2 after its node restarted. The BN (an independent judge:
it checks the GROUP signature under the EIP-7044 domain) must show validator 0 exiting, and every node,
the killed one included, must end with the exit submitted. The lock's builder registrations reach the BN
at start; three operators then change validator 0's fee recipient with `covalidator registration sign`,
and the BN holds the new one; two operators alone change nothing (validator 1).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from covalidator.model.cluster.config import hex0x
from covalidator.model.crypto import bls
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from covalidator.runtime.devnet.vc import load_secrets
from covalidator.runtime.keys_io import load_lock
from tests.helpers.aio import run
from tests.helpers.devnet_cluster import devnet_cluster, make_devnet_cluster
from tests.helpers.node_proc import COVALIDATOR

FEE = "0x" + "fe" * 20
NEW_FEE = "0x" + "c0" * 20
MONITORING = {"COVALIDATOR_MONITORING": "127.0.0.1:0"}


async def cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *COVALIDATOR, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text
    return text


async def until(what: str, check: Any, timeout_s: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


def test_three_operators_exit_one_killed_between_its_partial_and_the_combination(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    make_devnet_cluster(folder, 4, 2, "--fee-recipient", FEE)
    lock = load_lock(folder / "node0" / "cluster-lock.json")
    group = [hex0x(v.distributed_public_key) for v in lock.distributed_validators]
    bn = DevnetBN(
        DevnetConfig(validators=2, epochs=50, seconds_per_slot=1, genesis_time=int(time.time()) - 3)
    )

    async def scenario() -> dict[str, Any]:
        async with devnet_cluster(folder, bn, env=MONITORING) as running, aiohttp.ClientSession() as session:

            async def get(url: str) -> Any:
                async with session.get(url) as response:
                    return await response.json() if response.status == 200 else None

            async def monitoring(i: int) -> str:
                status = await get(running.urls[i] + "/covalidator/v1/status")
                return f"http://{status['data']['monitoring']}"

            async def pool(i: int) -> Any:
                answer = await get(await monitoring(i) + "/covalidator/v1/pool")
                return answer["data"] if answer else None

            # the lock's registrations reach the BN at start, group-signed
            report = await until("registrations", lambda: _held(bn, 2))
            assert {m["fee_recipient"] for m in report.values()} == {FEE}

            # operator 0, as its VC does: a SignedVoluntaryExit over its SHARE key, to its node
            message = {"epoch": "0", "validator_index": "0"}
            epoch = bn.chain.clock.epoch_at(int(time.time() * 1000))
            root = signing_root(bn.chain.schedule, Kind.VOLUNTARY_EXIT, message, epoch)
            secrets0 = load_secrets(str(folder / "node0"))
            secret = secrets0[hex0x(lock.distributed_validators[0].public_shares[0])]
            body = {"message": message, "signature": hex0x(bls.sign(secret, root))}

            async def post_exit() -> bool:
                async with session.post(
                    running.urls[0] + "/eth/v1/beacon/pool/voluntary_exits", json=body
                ) as r:
                    return r.status == 200  # 503 until the node knows the validators' indices

            await until("node 0 taking the exit", post_exit)
            # operator 1 with the CLI; its node is then killed before the exit can combine, and restarted
            out = await cli(
                "exit",
                "sign",
                "--node-dir",
                str(folder / "node1"),
                "--validator-api",
                running.urls[1],
                "--validator",
                "0",
                "--epoch",
                "0",
            )
            assert "operator 2 signed the exit of validator 0" in out, out
            await running.kill(1)
            await running.start(1)
            # operator 2 after a restart of its node
            await running.kill(2)
            await running.start(2)
            await running.connected()
            running.killed -= {1, 2}  # they stop cleanly at the end
            secrets2 = load_secrets(str(folder / "node2"))
            body = {
                "message": message,
                "signature": hex0x(
                    bls.sign(secrets2[hex0x(lock.distributed_validators[0].public_shares[2])], root)
                ),
            }
            posted = lambda: _post(session, running.urls[2] + "/eth/v1/beacon/pool/voluntary_exits", body)  # noqa: E731
            await until("node 2 taking the exit", posted)

            await until("the BN showing validator 0 exiting", lambda: _exiting(session, bn.url))
            # every node ends with the exit submitted or seen on chain: node 1 (killed) too
            for i in range(4):

                async def done(i: int = i) -> bool:
                    data = await pool(i)
                    exits = [e for e in (data or {}).get("entries", []) if e["kind"] == "voluntary_exit"]
                    return bool(exits) and all(e["phase"] in ("submitted", "on_chain") for e in exits)

                await until(f"node {i} submitting the exit", done, 60)
            status = await cli("exit", "status", "--monitoring", await monitoring(1))

            # the fee recipient changed by three operators; validator 1 signed by two only: unchanged
            stamp = str(int(time.time()))
            for validator, signers in ((group[0], 3), (group[1], 2)):
                for i in range(signers):
                    await cli(
                        "registration", "sign", "--node-dir", str(folder / f"node{i}"),
                        "--validator-api", running.urls[i], "--validator", validator,
                        "--fee-recipient", NEW_FEE, "--timestamp", stamp,
                    )  # fmt: skip
            changed = await until("the new registration at the BN", lambda: _fee_is(bn, 0, NEW_FEE))
            registrations = await cli("registration", "status", "--monitoring", await monitoring(3))
            return {
                "status": status,
                "registrations": registrations,
                "changed": changed,
                "report": bn.report.figures(bn.now_ms()) if hasattr(bn, "report") else {},
            }

    result = run(scenario(), 240)
    assert bn.exits_invalid == 0 and list(bn.exits) == [0], (bn.exits, bn.exits_invalid)
    assert bn.registrations_invalid == 0
    assert bn.registrations[1]["fee_recipient"] == FEE  # two operators are not M
    assert "(3/3)" in result["status"] or "(4/3)" in result["status"], result["status"]
    assert NEW_FEE in result["registrations"], result["registrations"]
    for i in (1, 2):  # the restarted nodes' traces replay action for action
        trace = folder / f"node{i}" / "data" / "trace"
        replayed = subprocess.run(
            [*COVALIDATOR, "replay", str(trace)], capture_output=True, text=True, timeout=120
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr


async def _held(bn: DevnetBN, count: int) -> dict[int, Any] | None:
    return dict(bn.registrations) if len(bn.registrations) >= count else None


async def _fee_is(bn: DevnetBN, index: int, fee: str) -> bool:
    held = bn.registrations.get(index)
    return held is not None and held["fee_recipient"] == fee


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> bool:
    async with session.post(url, json=body) as response:
        return response.status == 200


async def _exiting(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url + "/eth/v1/beacon/states/head/validators/0") as response:
        data = (await response.json())["data"]
    return bool(data["status"] == "active_exiting")
