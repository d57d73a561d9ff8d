"""Faults against running `covalidator run` processes on 127.0.0.1 (bounded in time):

- the primary BN goes down mid-run: every node fetches duties and attestation data from its fallback
  BN and the cluster still decides one value (not only the reverse proxy fails over);
- one covalidator is SIGKILLed mid-epoch of a devnet run with four VCs: the devnet BN's judge (real
  BLS against the group pubkeys) sees no slashable pair and no invalid signature, and every attester
  duty after the kill still reaches the chain, signed by 3 of 4;
- steps fail at random on every node (COVALIDATOR_INJECT_STEP_FAULTS: after the step changed the
  state, its actions lost): each node rebuilds its model from its store and goes on; no slashable pair,
  no invalid signature, and the duties keep reaching the chain;
- two nodes' clocks are off by +2 s and -2 s (COVALIDATOR_TEST_CLOCK_SKEW_MS; their VCs on the same
  skewed clocks): no slashable pair, no invalid signature, the duties reach the chain, each node
  reports every peer's offset, and only the skewed nodes say `clock_offset` in /readyz.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from tests.helpers.aio import run
from tests.helpers.devnet_cluster import (
    NO_MONITORING,
    attesters_on_chain,
    devnet_cluster,
    make_devnet_cluster,
)
from tests.helpers.node_proc import chain_bn, group_pubkeys, make_cluster, next_duty_slot

NODES, VALIDATORS = 4, 8


def test_the_primary_bn_going_down_mid_run_makes_every_node_use_its_fallback(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_cluster(cluster, nodes=NODES, validators=2)
    genesis = int(time.time()) - 3

    async def scenario() -> tuple[list[dict[str, Any]], int, list[str]]:
        pubkeys = group_pubkeys(cluster)
        primary = chain_bn(pubkeys, genesis_time=genesis, stride=4)
        fallback = await chain_bn(pubkeys, genesis_time=genesis, stride=4).start()
        extra = ("--round-ms", "300", "--fallback-beacon-node", fallback.url)
        try:
            async with (
                devnet_cluster(cluster, primary, *extra) as running,
                aiohttp.ClientSession() as session,
            ):
                await primary.stop()  # down: connections refused from now on
                before = len(fallback.hits)
                slot = next_duty_slot(
                    genesis, 0, lead_s=2.0
                )  # the next epoch: its duties too from the fallback
                await asyncio.sleep(max(0.0, genesis + slot + 0.4 - time.time()))

                async def ask(url: str) -> dict[str, Any]:
                    until = time.monotonic() + 8
                    while True:
                        query = {"slot": str(slot), "committee_index": "0"}
                        async with session.get(url + "/eth/v1/validator/attestation_data", params=query) as r:
                            body = await r.json()
                            if r.status == 200:
                                return dict(body["data"])
                        assert time.monotonic() < until, f"{url}: no decided data ({r.status} {body})"
                        await asyncio.sleep(0.1)

                served = list(await asyncio.gather(*(ask(u) for u in running.urls)))
        finally:
            await fallback.stop()
        after = [f"{m} {p}?{q}" for m, p, q, _, _ in fallback.hits[before:]]
        return served, slot, after

    served, slot, after = run(scenario(), 90)
    assert all(data == served[0] for data in served) and served[0]["slot"] == str(slot), served
    data_fetches = [h for h in after if "/attestation_data?" in h and f"slot={slot}&" in h + "&"]
    assert len(data_fetches) >= NODES - 1, after  # each node (bar a leader-only fetch) asked the fallback
    assert any("/duties/attester/" in h for h in after), after  # duties after the primary went down


@pytest.fixture(scope="module")
def devnet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "c"
    make_devnet_cluster(folder, NODES, VALIDATORS)
    return folder


def test_sigkill_of_one_node_mid_epoch_no_slashable_signature_and_duties_continue_with_three(
    devnet_folder: Path,
) -> None:
    cluster = devnet_folder
    config = DevnetConfig(
        validators=VALIDATORS, epochs=3, seconds_per_slot=3, genesis_delay_s=6, committee_size=16
    )

    async def scenario() -> tuple[Any, int, int]:
        async with devnet_cluster(cluster, DevnetBN(config), "--round-ms", "500", vcs=True) as running:
            vcs = running.vcs
            await asyncio.gather(*(vc.setup() for vc in vcs))
            clock = vcs[0].chain.clock
            first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
            last = first + 11
            kill_slot = first + 3 if (first + 3) % clock.slots_per_epoch else first + 4  # mid-epoch

            async def kill() -> None:
                await asyncio.sleep(
                    max(0.0, (clock.slot_start_ms(kill_slot) + clock.slot_ms // 2) / 1000 - time.time())
                )
                await running.kill(3)  # nothing flushed, connections cut

            await asyncio.gather(kill(), *(vc.run(until_slot=last) for vc in vcs))
            async with (
                aiohttp.ClientSession() as session,
                session.get(running.bn.url + "/devnet/report", params={"slots": "1"}) as r,
            ):
                report = await r.json()
        return report, kill_slot, last

    report, kill_slot, last = run(scenario(), 180)
    assert (report["slashable_pairs"], report["invalid_submissions"]) == (0, 0), report
    # every duty of the slots after the kill (the last slot's late work may be cut by the VCs' end)
    after = {slot: cells for slot, cells in report["slots"].items() if kill_slot < int(slot) < last}
    attesters = sum(cells["attester"][0] for cells in after.values() if "attester" in cells)
    assert attesters >= 4, after  # duties after the kill were checked, not none
    missed = {(slot, kind): n for slot, cells in after.items() for kind, n in cells.items() if n[0] != n[1]}
    assert not missed, (missed, report["missed"])


def test_steps_failing_at_random_on_every_node_are_recovered_from_the_store(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_devnet_cluster(cluster, NODES, VALIDATORS)  # its own stores: not the SIGKILL test's
    config = DevnetConfig(
        validators=VALIDATORS, epochs=3, seconds_per_slot=3, genesis_delay_s=6, committee_size=16
    )
    env = {**NO_MONITORING, "COVALIDATOR_INJECT_STEP_FAULTS": "0.0015:7"}

    async def scenario() -> tuple[Any, list[dict[str, Any]], int, int]:
        async with devnet_cluster(
            cluster, DevnetBN(config), "--round-ms", "500", vcs=True, env=env
        ) as running:
            vcs = running.vcs
            await asyncio.gather(*(vc.setup() for vc in vcs))
            clock = vcs[0].chain.clock
            first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
            last = first + 11
            await asyncio.gather(*(vc.run(until_slot=last) for vc in vcs))
            async with aiohttp.ClientSession() as session:
                report = await running.report()
                statuses = []
                for url in running.urls:
                    async with session.get(url + "/covalidator/v1/status") as r:
                        statuses.append((await r.json())["data"])
        return report, statuses, first, last

    report, statuses, first, last = run(scenario(), 180)
    restarts = [s["restarts_from_store"] for s in statuses]
    assert sum(restarts) >= 2, restarts  # faults were injected and recovered from, not none
    assert [s["step_errors"] for s in statuses] == restarts
    assert (report["slashable_pairs"], report["invalid_submissions"]) == (0, 0), report
    due, done = attesters_on_chain(report, first, last)
    print(f"step faults recovered: {restarts} per node; attester duties on chain {done}/{due}")
    assert due >= 8 and done >= 0.9 * due, (done, due, report["missed"])


SKEWS_MS = {1: 2_000, 2: -2_000}  # node index -> its clock's offset


def test_two_nodes_clocks_off_by_two_seconds_either_way(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_devnet_cluster(cluster, NODES, VALIDATORS)
    config = DevnetConfig(
        validators=VALIDATORS, epochs=3, seconds_per_slot=6, genesis_delay_s=8, committee_size=16
    )
    env = {"COVALIDATOR_MONITORING": "127.0.0.1:0"}  # each its own port, for /readyz

    def skewed(i: int) -> dict[str, str]:
        return {"COVALIDATOR_TEST_CLOCK_SKEW_MS": str(SKEWS_MS[i])} if i in SKEWS_MS else {}

    async def scenario() -> tuple[Any, list[dict[str, Any]], list[Any], int, int]:
        async with devnet_cluster(
            cluster, DevnetBN(config), "--round-ms", "500", vcs=True, env=env, node_env=skewed
        ) as running:
            vcs = running.vcs
            for i, skew in SKEWS_MS.items():
                vcs[i].clock = lambda skew=skew: time.time() + skew / 1000  # type: ignore[misc]
            await asyncio.gather(*(vc.setup() for vc in vcs))
            clock = vcs[0].chain.clock
            first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
            last = first + 8
            await asyncio.gather(*(vc.run(until_slot=last) for vc in vcs))
            async with aiohttp.ClientSession() as session:
                report = await running.report()
                statuses, ready = [], []
                for url in running.urls:
                    async with session.get(url + "/covalidator/v1/status") as r:
                        statuses.append((await r.json())["data"])
                    async with session.get(f"http://{statuses[-1]['monitoring']}/readyz") as r:
                        ready.append(await r.json())
        return report, statuses, ready, first, last

    report, statuses, ready, first, last = run(scenario(), 240)
    assert (report["slashable_pairs"], report["invalid_submissions"]) == (0, 0), report
    due, done = attesters_on_chain(report, first, last)
    offsets = {
        i: {
            p["share_index"] - 1: round(p["clock_offset_ms"])
            for p in s["peers"]["peers"].values()
            if p.get("clock_offset_ms") is not None
        }
        for i, s in enumerate(statuses)
    }
    reasons = [sorted(r["reason"] for r in answer.get("reasons", [])) for answer in ready]
    print(
        f"clock skew {SKEWS_MS}: attester duties on chain {done}/{due}; offsets {offsets}; readyz {reasons}"
    )
    assert due >= 6 and done >= 0.9 * due, (done, due, report["missed"])
    for i, seen in offsets.items():  # each node sees each peer's offset (the peer's clock minus its own)
        assert len(seen) == NODES - 1, seen
        for peer, offset in seen.items():
            expected = SKEWS_MS.get(peer, 0) - SKEWS_MS.get(i, 0)
            assert abs(offset - expected) < 300, (i, peer, offset, expected)
    for i, node_reasons in enumerate(reasons):
        assert ("clock_offset" in node_reasons) == (i in SKEWS_MS), (i, node_reasons, ready[i])
