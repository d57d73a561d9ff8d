"""Summarise record_proxy.py recordings: which endpoints a VC called, how often, when in the slot,
with which headers and body shapes, and how long the BN took.

    .venv/bin/python e2e/lodestar/analyze.py RUN_DIR/proxy/vc*.jsonl [--markdown] [--samples DIR]

--samples DIR writes one small example exchange per endpoint (the first with a 2xx status, bodies
cut to a few KB) to DIR/<endpoint>.json, and the SSE events' shapes to DIR/sse_events.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

SLOTS_PER_EPOCH = 8


def template(path: str) -> str:
    parts = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        prev = segments[i - 1] if i else ""
        if re.fullmatch(r"\d+", seg):
            name = {"proposer": "{epoch}", "attester": "{epoch}", "sync": "{epoch}", "blocks": "{slot}"}.get(
                prev, "{n}"
            )
            parts.append(name)
        elif re.fullmatch(r"0x[0-9a-fA-F]+", seg):
            parts.append("{root}")
        else:
            parts.append(seg)
    return "/".join(parts)


def shape(value: Any, depth: int = 0) -> Any:
    """Keys-only sketch of a JSON value."""
    if depth > 5:
        return "..."
    if isinstance(value, dict):
        return {k: shape(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0], depth + 1)] if value else []
    if isinstance(value, str):
        return "0x.." if value.startswith("0x") else ("int" if value.isdigit() else "str")
    return type(value).__name__


def cut(value: Any, limit: int = 4000) -> Any:
    text = json.dumps(value)
    if len(text) <= limit:
        return value
    if isinstance(value, dict) and "data" in value and isinstance(value["data"], list):
        return {**value, "data": value["data"][:2], "_cut": f"{len(value['data'])} items, first 2 kept"}
    if isinstance(value, list):
        return [*value[:2], f"... {len(value)} items, first 2 kept"]
    return {"_cut": True, "head": text[:limit]}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--samples", type=Path)
    ap.add_argument(
        "--timeline",
        nargs=2,
        type=int,
        metavar=("FROM_SLOT", "TO_SLOT"),
        help="print one compact line per exchange and SSE event in these slots, all VCs, in time order",
    )
    args = ap.parse_args()

    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sse: list[dict[str, Any]] = []
    sse_events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in args.files:
        for line in f.read_text().splitlines():
            r = json.loads(line)
            r["_vc"] = f.stem
            if r["kind"] == "http":
                calls[f"{r['method']} {template(r['path'])}"].append(r)
            elif r["kind"] == "sse_open":
                sse.append(r)
            elif r["kind"] == "sse_event":
                sse_events[r["event"]].append(r)

    if args.timeline:
        lo, hi = args.timeline
        lines = []
        for rs in calls.values():
            for r in rs:
                if lo <= r.get("slot", -1) <= hi:
                    lines.append(
                        (
                            r["t_req"],
                            f"{r['slot']:>3} +{r['slot_offset']:5.2f}s {r['_vc']} {r['method']:4} {r['path']}"
                            f"{'?' + r['query'][:60] if r['query'] else ''} -> {r['status']} {r.get('duration_ms', '')}ms",
                        )
                    )
        for ev, rs in sse_events.items():
            for r in rs:
                if lo <= r.get("slot", -1) <= hi:
                    lines.append(
                        (
                            r["t"],
                            f"{r['slot']:>3} +{r['slot_offset']:5.2f}s {r['_vc']} SSE  {ev} slot={r['data'].get('slot')}",
                        )
                    )
        for _, line in sorted(lines):
            print(line)
        return

    rows = []
    for key, rs in sorted(calls.items(), key=lambda kv: min(r["t_req"] for r in kv[1])):
        offsets = [r["slot_offset"] for r in rs if r.get("slot", -1) >= 0]
        slots_in_epoch = sorted({r["slot"] % SLOTS_PER_EPOCH for r in rs if r.get("slot", -1) >= 0})
        durations = [r["duration_ms"] for r in rs if "duration_ms" in r]
        statuses = sorted({r["status"] for r in rs})
        req_versions = sorted({r["req_headers"].get("Eth-Consensus-Version", "") for r in rs} - {""})
        resp_versions = sorted(
            {str(r.get("resp_headers", {}).get("Eth-Consensus-Version", "")) for r in rs} - {""}
        )
        body_versions = sorted(
            {
                r["resp_body"].get("version")
                for r in rs
                if isinstance(r.get("resp_body"), dict) and r["resp_body"].get("version")
            }
        )
        per_vc = defaultdict(int)
        for r in rs:
            per_vc[r["_vc"]] += 1
        rows.append(
            {
                "endpoint": key,
                "calls": len(rs),
                "per_vc": dict(per_vc),
                "statuses": statuses,
                "first_slot": min((r.get("slot", -1) for r in rs), default=None),
                "slot_offset_s": (
                    {
                        "min": min(offsets),
                        "median": round(statistics.median(offsets), 3),
                        "p90": pct(offsets, 0.9),
                        "max": max(offsets),
                    }
                    if offsets
                    else None
                ),
                "slots_in_epoch": slots_in_epoch if len(slots_in_epoch) < SLOTS_PER_EPOCH else "every",
                "duration_ms": {"median": statistics.median(durations), "max": max(durations)}
                if durations
                else None,
                "req_eth_consensus_version": req_versions,
                "resp_eth_consensus_version": resp_versions,
                "resp_body_version": body_versions,
                "queries": sorted({re.sub(r"=[^&]*", "=..", r["query"]) for r in rs if r["query"]})[:3],
            }
        )
    report = {
        "endpoints": rows,
        "sse": {
            "streams": [
                {
                    "vc": r["_vc"],
                    "query": r["query"],
                    "slot": r.get("slot"),
                    "slot_offset": r.get("slot_offset"),
                    "headers_after_s": r["t_first_byte_wait"],
                    "status": r["status"],
                }
                for r in sse
            ],
            "events": {
                ev: {
                    "count": len(rs),
                    "per_vc": len(rs) // max(1, len(args.files)),
                    "slot_offset_median": statistics.median([r["slot_offset"] for r in rs]) if rs else None,
                }
                for ev, rs in sse_events.items()
            },
        },
    }
    if args.markdown:
        print(
            "| endpoint | calls (all VCs) | statuses | slot offset s (min/median/max) | slots of epoch | BN ms (median/max) | versions |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            o = row["slot_offset_s"]
            d = row["duration_ms"]
            versions = ", ".join(
                [f"req hdr {v}" for v in row["req_eth_consensus_version"]]
                + [f"resp hdr {v}" for v in row["resp_eth_consensus_version"]]
                + [f"body {v}" for v in row["resp_body_version"]]
            )
            print(
                f"| `{row['endpoint']}` | {row['calls']} | {','.join(map(str, row['statuses']))} | "
                f"{o['min']:.2f} / {o['median']:.2f} / {o['max']:.2f} | {row['slots_in_epoch']} | "
                f"{d['median']:.0f} / {d['max']:.0f} | {versions} |"
                if o and d
                else f"| `{row['endpoint']}` | {row['calls']} | {','.join(map(str, row['statuses']))} | before genesis | | "
                f"{d['median']:.0f} / {d['max']:.0f} | {versions} |"
                if d
                else f"| `{row['endpoint']}` | {row['calls']} | | | | | |"
            )
        print()
        print(json.dumps(report["sse"], indent=1))
    else:
        print(json.dumps(report, indent=1))

    if args.samples:
        args.samples.mkdir(parents=True, exist_ok=True)
        for key, rs in calls.items():
            ok = (
                [r for r in rs if 200 <= r["status"] < 300 and r.get("slot", -1) >= 8]
                or [r for r in rs if 200 <= r["status"] < 300]
                or rs
            )
            r = ok[0]
            name = re.sub(r"[^a-zA-Z0-9]+", "_", key).strip("_")
            sample = {
                "vc": r["_vc"],
                "slot": r.get("slot"),
                "slot_offset": r.get("slot_offset"),
                "method": r["method"],
                "path": r["path"],
                "query": r["query"],
                "req_headers": r["req_headers"],
                "req_body": cut(r["req_body"]),
                "status": r["status"],
                "resp_headers": r.get("resp_headers"),
                "duration_ms": r.get("duration_ms"),
                "resp_body": cut(r.get("resp_body")),
                "req_body_shape": shape(r["req_body"]),
                "resp_body_shape": shape(r.get("resp_body")),
            }
            (args.samples / f"{name}.json").write_text(json.dumps(sample, indent=1) + "\n")
        (args.samples / "sse_events.json").write_text(
            json.dumps(
                {
                    "streams": report["sse"]["streams"],
                    "examples": {
                        ev: [{k: v for k, v in r.items() if k != "_vc"} for r in rs[:2]]
                        for ev, rs in sse_events.items()
                    },
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
