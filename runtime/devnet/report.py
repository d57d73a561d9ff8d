"""The devnet judge's figures: what the cluster had to do, what reached the chain, how late.

Reads a `SimChain` (its expected duties and its judge) at a wall-clock instant and says, per duty
kind and per slot: expected, due (deadline passed), succeeded; invalid submissions; slashable pairs;
submit latency (first valid arrival minus the duty's start, `SlotClock.duty_start_ms`). Decides
nothing about the chain; holds only the expected-duty list, computed once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from covalidator.model.duty import DutyId
from covalidator.sim.chain import SimChain

LISTED = 20  # how many missed duties / invalid submissions / pairs the report names


def quantiles(values: Sequence[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": ordered[-1] if ordered else None}


class Report:
    def __init__(self, chain: SimChain) -> None:
        self.chain = chain
        self._expected: list[tuple[DutyId, str]] | None = None

    @property
    def expected(self) -> list[tuple[DutyId, str]]:
        if self._expected is None:
            self._expected = self.chain.expected_duties()
        return self._expected

    @property
    def prepared(self) -> bool:
        return self._expected is not None

    def prepare(self) -> None:
        """Work out the expected duties now (a selection proof signed per attester: seconds at 5,000
        validators), before the BN serves anything: made on the first report, at genesis, it held the
        BN's event loop while the nodes' genesis requests waited."""
        _ = self.expected

    def latency_ms(self, key: tuple[DutyId, str]) -> int | None:
        arrived = self.chain.judge.done_at.get(key)
        return None if arrived is None else arrived - self.chain.clock.duty_start_ms(key[0])

    def figures(self, now_ms: int, *, slots: bool = False, latencies: bool = False) -> dict[str, Any]:
        chain, judge, clock = self.chain, self.chain.judge, self.chain.clock
        due = [k for k in self.expected if clock.duty_deadline_ms(k[0]) <= now_ms]
        succeeded = [k for k in self.expected if k in judge.done]
        by_kind: dict[str, dict[str, int]] = {}
        for name, keys in (("expected", self.expected), ("due", due), ("succeeded", succeeded)):
            for kind, count in Counter(k[0].kind.name.lower() for k in keys).items():
                by_kind.setdefault(kind, {"expected": 0, "due": 0, "succeeded": 0})[name] = count
        lateness = {k: ms for k in succeeded if (ms := self.latency_ms(k)) is not None}
        latency = {"all": quantiles(list(lateness.values()))}
        for kind in sorted(by_kind):
            latency[kind] = quantiles([ms for k, ms in lateness.items() if k[0].kind.name.lower() == kind])
        missed = [k for k in due if k not in judge.done]
        out: dict[str, Any] = {
            "genesis_time": str(clock.genesis_time_ms // 1000),
            "seconds_per_slot": str(clock.slot_ms // 1000),
            "epochs": chain.epochs,
            "validators": chain.params.validators,
            "current_slot": clock.slot_at(now_ms) if now_ms >= clock.genesis_time_ms else None,
            "finished": bool(self.expected) and len(due) == len(self.expected),
            "duties": {
                "expected": len(self.expected),
                "due": len(due),
                "succeeded": len(succeeded),
                "missed": len(missed),
                "by_kind": by_kind,
            },
            "missed": [f"{duty} {key[:18]}" for duty, key in missed[:LISTED]],
            "submissions": judge.submissions,
            "invalid_submissions": len(judge.invalid),
            "invalid": [f"at {v.at_ms} ms: {v.what}" for v in judge.invalid[:LISTED]],
            "slashable_pairs": len(judge.slashable_pairs),
            "slashable": judge.slashable_pairs[:LISTED],
            "latency_ms": latency,
        }
        if slots:
            table: dict[str, dict[str, list[int]]] = {}
            for duty, key in self.expected:
                cell = table.setdefault(str(duty.slot), {}).setdefault(duty.kind.name.lower(), [0, 0])
                cell[0] += 1
                cell[1] += (duty, key) in judge.done
            out["slots"] = table
        if latencies:
            out["latencies"] = [[d.slot, d.kind.name.lower(), ms] for (d, _), ms in sorted(lateness.items())]
        return out
