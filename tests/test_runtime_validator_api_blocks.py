"""The VC-facing block endpoints' answer shapes (v1, v2, v3) for one decided proposal: Lodestar 1.5.1's
VC reads a `block_value` from v1/v2 answers and fails its proposal without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from covalidator.model.node.events import ReplyToVC, VCRequest, VCRequestKind
from covalidator.runtime.validator_api import ValidatorAPI
from tests.helpers.aio import listening_socket, port_of, run
from tests.test_runtime_proxy import config

BLOCK = {"slot": "5", "proposer_index": "1", "body": {"graffiti": "0x00"}}
DECIDED = {
    "version": "altair",
    "execution_payload_blinded": False,
    "execution_payload_value": "7",
    "consensus_block_value": "3",
    "data": BLOCK,
}


class DecidedRunner:
    """Answers every request with the decided proposal; keeps what it was asked."""

    def __init__(self, decided: dict[str, Any] = DECIDED) -> None:
        self.asked: list[VCRequest] = []
        self.decided = decided

    def clock(self) -> int:
        return 0

    async def ask(self, make: Callable[[int], VCRequest], wait_s: float) -> ReplyToVC:
        request = make(1)
        self.asked.append(request)
        return ReplyToVC(1, 200, self.decided, "altair")


async def not_forwarded(*args: Any, **kwargs: Any) -> web.StreamResponse:
    raise AssertionError("block requests are answered by the model, never forwarded")


def test_block_answers_carry_version_and_lodestar_block_value() -> None:
    async def main() -> None:
        runner = DecidedRunner()
        api = ValidatorAPI(runner, config(), not_forwarded)
        app_runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
        await app_runner.setup()
        sock = listening_socket()
        await web.SockSite(app_runner, sock).start()
        base = f"http://127.0.0.1:{port_of(sock)}"
        query = "?randao_reveal=0xaa&graffiti=Lodestar-v1.5.1"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/eth/v2/validator/blocks/5{query}") as response:
                    assert response.status == 200
                    assert response.headers["Eth-Consensus-Version"] == "altair"
                    assert await response.json() == {"version": "altair", "data": BLOCK, "block_value": "7"}
                async with session.get(f"{base}/eth/v1/validator/blocks/5{query}") as response:
                    assert await response.json() == {"data": BLOCK, "block_value": "7"}
                async with session.get(f"{base}/eth/v3/validator/blocks/5{query}") as response:
                    assert response.headers["Eth-Execution-Payload-Value"] == "7"
                    assert response.headers["Eth-Consensus-Block-Value"] == "3"
                    assert (await response.json())["data"] == BLOCK
        finally:
            await app_runner.cleanup()
        assert [r.kind for r in runner.asked] == [VCRequestKind.BLOCK] * 3
        assert runner.asked[0].params["graffiti"] == "Lodestar-v1.5.1"
        assert runner.asked[0].params["randao_reveal"] == "0xaa"

    run(main())


def test_block_values_that_are_not_decimals_become_zero_and_the_answer_stands() -> None:
    """Found by a review of the fuzzed inputs: the values ride with the decided proposal, a leader's
    words; an object there made aiohttp fail to write the v3 headers and the VC's request broke."""

    async def main() -> None:
        decided = {**DECIDED, "execution_payload_value": {"x": 1}, "consensus_block_value": "1" * 100}
        api = ValidatorAPI(DecidedRunner(decided), config(), not_forwarded)
        app_runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
        await app_runner.setup()
        sock = listening_socket()
        await web.SockSite(app_runner, sock).start()
        base = f"http://127.0.0.1:{port_of(sock)}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/eth/v3/validator/blocks/5?randao_reveal=0xaa") as response:
                    assert response.status == 200
                    assert response.headers["Eth-Execution-Payload-Value"] == "0"
                    assert response.headers["Eth-Consensus-Block-Value"] == "0"
                    assert (await response.json())["data"] == BLOCK
                async with session.get(f"{base}/eth/v2/validator/blocks/5?randao_reveal=0xaa") as response:
                    assert (await response.json())["block_value"] == "0"
        finally:
            await app_runner.cleanup()

    run(main())
