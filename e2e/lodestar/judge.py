"""The e2e judgement, from the beacon node's own answers: its API (finality, blocks, duties, pools,
validators, sync committee) and the answers it gave to the covalidators' submissions (recorded
between the covalidators and the BN). Never from covalidator's own counters.

Committees and proposers come from attester and proposer duties snapshot while each epoch is
current: this Lodestar version refuses past epochs there and its `/committees` endpoint is wrong.

Must not: start or stop anything (that is `devnet.py`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalls import MAX_EXCUSED_FRACTION, excused_slots

SLOTS_PER_EPOCH = 8
SUBMISSIONS = (  # BN endpoints a covalidator submits signed messages to
    "/beacon/pool/attestations",
    "/beacon/blocks",
    "/beacon/pool/sync_committees",
    "/validator/aggregate_and_proofs",
    "/validator/contribution_and_proofs",
)
AGGREGATIONS = ("/validator/aggregate_and_proofs", "/validator/contribution_and_proofs")


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as error:
        return 0, str(error)


@dataclass
class Duties:
    """What the BN said about each epoch while it was current."""

    committees: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (slot, index) -> members
    proposers: dict[int, int] = field(default_factory=dict)  # slot -> validator index
    epochs: set[int] = field(default_factory=set)

    def snapshot(self, bn: str, epoch: int, indices: list[int]) -> None:
        ids = [str(i) for i in indices]
        for e in (epoch, epoch + 1):
            status, answer = http("POST", f"{bn}/eth/v1/validator/duties/attester/{e}", ids)
            if status == 200:
                for d in answer["data"]:
                    key = (int(d["slot"]), int(d["committee_index"]))
                    members = self.committees.setdefault(key, [-1] * int(d["committee_length"]))
                    members[int(d["validator_committee_index"])] = int(d["validator_index"])
        status, answer = http("GET", f"{bn}/eth/v1/validator/duties/proposer/{epoch}")
        if status == 200:
            self.epochs.add(epoch)
            for d in answer["data"]:
                self.proposers[int(d["slot"])] = int(d["validator_index"])


def dv_indices(bn: str, group_pubkeys: list[str]) -> dict[int, int]:
    """Validator index -> effective balance (gwei) of every DV the BN knows."""
    query = "&".join(f"id={p}" for p in group_pubkeys)
    status, answer = http("GET", f"{bn}/eth/v1/beacon/states/head/validators?{query}")
    if status != 200:
        return {}
    return {int(v["index"]): int(v["validator"]["effective_balance"]) for v in answer["data"]}


def total_active_balance(bn: str) -> int:
    status, answer = http("GET", f"{bn}/eth/v1/beacon/states/head/validators", timeout=20)
    if status != 200:
        return 0
    return sum(
        int(v["validator"]["effective_balance"]) for v in answer["data"] if v["status"].startswith("active")
    )


def _bits(hex_bits: str) -> int:
    return int.from_bytes(bytes.fromhex(hex_bits.removeprefix("0x")), "little")


def blocks(bn: str, head_slot: int) -> dict[int, dict[str, Any]]:
    """slot -> the block's message (missed slots absent)."""
    found = {}
    for slot in range(1, head_slot + 1):
        status, answer = http("GET", f"{bn}/eth/v2/beacon/blocks/{slot}")
        if status == 200 and int(answer["data"]["message"]["slot"]) == slot:
            found[slot] = answer["data"]["message"]
    return found


def submissions(recordings: Iterable[Path]) -> dict[str, Any]:
    """The BN's answers to what the covalidators submitted: counts per endpoint and status, and the
    rejections that name a signature."""
    answers: Counter[str] = Counter()
    invalid_signatures = 0
    rejected: list[str] = []
    for path in recordings:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            record = json.loads(line)
            if record.get("kind") != "http" or record.get("method") != "POST":
                continue
            endpoint = next((s for s in SUBMISSIONS if record["path"].endswith(s)), None)
            if endpoint is None:
                continue
            status = int(record.get("status", 0))
            answers[f"{endpoint} {status}"] += 1
            text = json.dumps(record.get("resp_body"))
            # not refusals: a route this BN lacks (the client tries the next version) and a message the
            # BN already has (each co-validator submits the combined message; Lodestar answers 500)
            benign = status in (404, 405) or any(m in text.lower() for m in ("already_known", "duplicate"))
            if status >= 400 and not benign:
                rejected.append(f"{endpoint} {status} {text[:300]}")
                if "signature" in text.lower():
                    invalid_signatures += 1
    return {
        "answers": dict(sorted(answers.items())),
        "invalid_signatures": invalid_signatures,
        "rejected": rejected[:5],
        "rejected_count": len(rejected),
        "aggregations_submitted": sum(n for k, n in answers.items() if k.split()[0] in AGGREGATIONS),
    }


def judge(
    bn: str,
    head_slot: int,
    duties: Duties,
    dv: dict[int, int],
    recordings: Iterable[Path],
    stalls: Iterable[tuple[float, float]] = (),
    genesis: float = 0.0,
    seconds_per_slot: float = 6.0,
) -> dict[str, Any]:
    """The figures of the run; `passed` and `failures` per the issue's criteria. Slots whose work fell in
    a machine stall (`stalls.py`) are left out of the expectations, and listed."""
    stalls = list(stalls)
    late = excused_slots(stalls, genesis, seconds_per_slot, span_slots=2)  # attestations, sync messages
    unmade = excused_slots(stalls, genesis, seconds_per_slot, span_slots=1)  # blocks
    found = blocks(bn, head_slot)
    _, finality = http("GET", f"{bn}/eth/v1/beacon/states/head/finality_checkpoints")
    finalized = int(finality["data"]["finalized"]["epoch"]) if isinstance(finality, dict) else -1

    first_inclusion: dict[tuple[int, int], int] = {}  # (validator, attestation slot) -> first block slot
    for block_slot, message in sorted(found.items()):
        for a in message["body"]["attestations"]:
            slot = int(a["data"]["slot"])
            members = duties.committees.get((slot, int(a["data"]["index"])), [])
            bits = _bits(a["aggregation_bits"])
            for pos, v in enumerate(members):
                if bits >> pos & 1:
                    first_inclusion.setdefault((v, slot), block_slot)
    included = set(first_inclusion)
    # from epoch 1 on, up to two slots before the head (each has had a later block to be included in)
    expected = [
        (v, s)
        for (s, _), members in duties.committees.items()
        for v in members
        if v in dv and SLOTS_PER_EPOCH <= s <= head_slot - 2 and s not in late
    ]
    proposals = [
        s
        for s, v in duties.proposers.items()
        if v in dv and SLOTS_PER_EPOCH <= s <= head_slot and s not in unmade
    ]
    proposed = [s for s in proposals if s in found and int(found[s]["proposer_index"]) == duties.proposers[s]]

    status, sync = http("GET", f"{bn}/eth/v1/beacon/states/head/sync_committees")
    members = [int(v) for v in sync["data"]["validators"]] if status == 200 else []
    sync_expected = sync_included = 0
    for slot, message in found.items():
        aggregate = message["body"].get("sync_aggregate")
        if aggregate is None or slot < 2 or slot - 1 in late:  # block 1 carries slot 0's: the VCs send none
            continue
        bits = _bits(aggregate["sync_committee_bits"])
        for pos, v in enumerate(members):
            if v in dv:
                sync_expected += 1
                sync_included += bits >> pos & 1

    in_blocks = sum(
        len(m["body"]["attester_slashings"]) + len(m["body"]["proposer_slashings"]) for m in found.values()
    )
    pools = sum(
        len(answer["data"])
        for status, answer in (
            http("GET", f"{bn}/eth/v1/beacon/pool/attester_slashings"),
            http("GET", f"{bn}/eth/v1/beacon/pool/proposer_slashings"),
        )
        if status == 200
    )
    query = "&".join(f"id={i}" for i in dv)
    status, answer = http("GET", f"{bn}/eth/v1/beacon/states/head/validators?{query}")
    slashed = sum(1 for v in answer["data"] if v["validator"]["slashed"]) if status == 200 else 0
    sent = submissions(recordings)
    total = total_active_balance(bn)

    distances = [first_inclusion[x] - x[1] for x in expected if x in first_inclusion]
    figures: dict[str, Any] = {
        "finalized_epoch": finalized,
        "head_slot": head_slot,
        # [seconds after genesis, length]: the whole machine stood still (stalls.py); their slots excused
        "machine_stalls": [[round(a - genesis, 1), round(b - a, 1)] for a, b in stalls],
        "excused_slots": sorted(late | unmade),
        "missed_slots": [s for s in range(1, head_slot + 1) if s not in found],
        "dv_validators": len(dv),
        "dv_stake_fraction": round(sum(dv.values()) / total, 4) if total else 0.0,
        "dv_attestations_expected": len(expected),
        "dv_attestations_included": sum(1 for x in expected if x in included),
        "dv_attestations_missing": sorted([v, s] for v, s in expected if (v, s) not in included),
        "inclusion_distance_avg": round(sum(distances) / len(distances), 3) if distances else None,
        "dv_blocks_expected": len(proposals),
        "dv_blocks_proposed": len(proposed),
        "dv_sync_messages_expected": sync_expected,
        "dv_sync_messages_included": sync_included,
        "dv_aggregations_submitted": sent["aggregations_submitted"],
        # the BN accepted them (200): in its pool, for the next blocks (aggregates of the DV's aggregators)
        "dv_aggregates_included": sent["answers"].get("/validator/aggregate_and_proofs 200", 0),
        "dv_sync_contributions": sent["answers"].get("/validator/contribution_and_proofs 200", 0),
        "slashings": in_blocks + pools + slashed,
        "invalid_signatures": sent["invalid_signatures"],
        "submissions_rejected": sent["rejected_count"],
        "bn_answers_to_submissions": sent["answers"],
    }
    failures = criteria(figures)
    if sent["rejected"]:
        figures["rejected_submissions"] = sent["rejected"]  # the first few, for the reader
    return {**figures, "passed": not failures, "failures": failures}


def criteria(f: dict[str, Any]) -> list[str]:
    """The issue's pass criteria, each failed one named."""
    failures = []
    judged = max(0, f["head_slot"] - SLOTS_PER_EPOCH + 1)
    excused = [s for s in f.get("excused_slots", []) if SLOTS_PER_EPOCH <= s <= f["head_slot"]]
    if judged and len(excused) > MAX_EXCUSED_FRACTION * judged:
        failures.append(f"the machine stalled through {len(excused)} of {judged} judged slots: not judged")
    if f["finalized_epoch"] < 3:
        failures.append(f"finalized epoch {f['finalized_epoch']} < 3")
    if f["dv_stake_fraction"] <= 2 / 3:
        failures.append(f"DV stake {f['dv_stake_fraction']} <= 2/3")
    if (
        f["dv_attestations_expected"] == 0
        or f["dv_attestations_included"] < 0.98 * f["dv_attestations_expected"]
    ):
        failures.append(f"attestations {f['dv_attestations_included']}/{f['dv_attestations_expected']} < 98%")
    if f["dv_blocks_expected"] == 0 or f["dv_blocks_proposed"] < f["dv_blocks_expected"]:
        failures.append(f"blocks {f['dv_blocks_proposed']}/{f['dv_blocks_expected']}")
    sync_expected, sync_included = f["dv_sync_messages_expected"], f["dv_sync_messages_included"]
    if sync_expected == 0 or sync_included < 0.95 * sync_expected:
        failures.append(f"sync committee messages {sync_included}/{sync_expected} < 95%")
    if f["slashings"]:
        failures.append(f"{f['slashings']} slashings")
    if f["invalid_signatures"]:
        failures.append(f"{f['invalid_signatures']} submissions refused for their signature")
    return failures
