"""The devnet VC against the devnet BN on 127.0.0.1, 1-of-1 (the share IS the key: create-cluster
needs N >= 3): every duty kind for two epochs of 1 s slots, judged by the BN with real BLS; and both
as processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from covalidator.model.crypto import bls, keystore
from covalidator.model.eth.interop import interop_secret_key
from covalidator.runtime import keys_io
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from covalidator.runtime.devnet.vc import DevnetVC, load_secrets
from tests.helpers.aio import run, until

V = 4


def write_interop_keystores(folder: Path, count: int) -> None:
    for j in range(count):
        secret = bls.secret_to_bytes(interop_secret_key(j))
        document = keys_io.encrypt_keystore(secret, f"password-{j}", keystore.Pbkdf2(c=2))
        keys_io.write_keystore(folder / keys_io.KEYS_DIR, j, document, f"password-{j}")


async def get_report(base_url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(base_url + "/devnet/report") as response:
        assert response.status == 200
        return await response.json()


def assert_every_duty_succeeded(report: Any) -> None:
    duties = report["duties"]
    assert report["finished"], report
    assert duties["succeeded"] == duties["expected"] > 0, report["missed"]
    assert (report["invalid_submissions"], report["slashable_pairs"]) == (0, 0), report["invalid"]


def test_vc_with_one_of_one_keystores_performs_every_duty_for_two_epochs(tmp_path: Path) -> None:
    write_interop_keystores(tmp_path, V)
    secrets = load_secrets(str(tmp_path))  # a node folder: its validator_keys/
    assert sorted(secrets.values()) == sorted(interop_secret_key(j) for j in range(V))
    # committee_size 16: every attester is also an aggregator (16 // TARGET_AGGREGATORS_PER_COMMITTEE)
    config = DevnetConfig(validators=V, epochs=2, seconds_per_slot=1, genesis_delay_s=0.5, committee_size=16)

    async def main() -> None:
        bn = await DevnetBN(config).start()
        vc = DevnetVC(bn.url, secrets)
        try:
            await vc.setup()
            assert sorted(vc.pubkey_of) == list(range(V))
            await vc.run(until_slot=2 * 8 - 1)
            report = await get_report(bn.url)
        finally:
            await vc.close()
            await bn.stop()
        assert_every_duty_succeeded(report)
        by_kind = report["duties"]["by_kind"]
        assert by_kind["attester"]["succeeded"] == by_kind["aggregator"]["succeeded"] == 2 * V
        assert by_kind["proposer"]["succeeded"] >= 1 and by_kind["sync_contribution"]["succeeded"] >= 1
        assert report["latency_ms"]["all"]["p99"] < 1000
        stats = vc.stats.as_json()
        assert stats["errors"] == 0, stats["last_errors"]
        assert stats["submitted"]["blocks"] == by_kind["proposer"]["expected"]
        # one aggregate fetched and one body posted per committee, its aggregators' together (as
        # Lighthouse and Lodestar do): one slot here has two aggregators in one committee
        requests = stats["by_endpoint"]
        assert requests["submit_aggregates"][0] == requests["aggregate_attestation"][0]
        assert requests["submit_aggregates"][0] < stats["submitted"]["aggregate_and_proofs"]
        assert vc.dv is False  # the plain BN answered 501 to the selections: its own proofs were used

    run(main(), 60)


def test_bn_and_vc_run_as_processes(tmp_path: Path) -> None:
    info_file = tmp_path / "bn.json"

    async def main() -> None:
        bn = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "covalidator.runtime.devnet.bn",
            "--validators",
            "2",
            "--epochs",
            "1",
            "--seconds-per-slot",
            "1",
            "--genesis-delay",
            "1",
            "--info-file",
            str(info_file),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await until(info_file.exists, timeout=20, what="the BN's info file")
            info = json.loads(info_file.read_text())
            assert bn.stdout is not None
            assert json.loads(await bn.stdout.readline()) == info
            vc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "covalidator.runtime.devnet.vc",
                "--base-url",
                info["url"],
                "--interop-validators",
                "2",
                "--epochs",
                "1",
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(vc.communicate(), 40)
            assert vc.returncode == 0
            stats = json.loads(out.decode().strip().splitlines()[-1])
            assert stats["errors"] == 0 and stats["requests"] > 10, stats
            assert_every_duty_succeeded(await get_report(info["url"]))
        finally:
            if bn.returncode is None:
                bn.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bn.wait(), 10) == 0

    run(main(), 80)
