"""`make soak` (outside CI): seeded whole-cluster simulations until a duty count is reached.

Cycles through N = 4, 7 and 10 co-validators, each with F = floor((N - 1) / 3) Byzantine nodes (their
behaviour mixed: slashable proposals, equivocation, invalid partials, silence), one node crashing
once, and every other run a network partition until GST; each run a new seed. Every run is
`covalidator simulate cluster --json`: real BLS, the judging chain checks every signature, the
invariants are checked after every event. Stops at `--duties` (default 100,000) or `--minutes`.

Prints one line per run and a summary: runs, duties, success after stabilisation (after GST and the
crash's recovery), slashable pairs, invalid signatures from honest nodes, double submissions, values
served before persisted, invariant violations, wall time. Exit 1 if any of those safety counts is
not 0. `--out FILE` writes the summary and every run as JSON.

    python scripts/soak.py [--duties 100000] [--minutes M] [--validators 32] [--epochs 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COVALIDATOR = [str(Path(sys.executable).parent / "covalidator")]  # the venv's console script
SAFETY = ("slashable_pairs", "invalid_submissions", "double_submissions", "served_before_persisted")


def one_run(n: int, seed: int, partition: bool, validators: int, epochs: int) -> dict[str, Any]:
    args = [
        *COVALIDATOR,
        "simulate",
        "cluster",
        "-n",
        str(n),
        "-v",
        str(validators),
        "-e",
        str(epochs),
        "-b",
        str((n - 1) // 3),
        "-c",
        "1",
        "--behaviour",
        "mixed",
        "-s",
        str(seed),
        "--json",
    ]
    if partition:
        args.append("--partition")
    done = subprocess.run(args, capture_output=True, text=True)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {"passed": False, "violation": f"no JSON (exit {done.returncode}): {done.stderr[-500:]}"}
    result.update(nodes=n, seed=seed, partition=partition)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duties", type=int, default=100_000)
    parser.add_argument(
        "--minutes", type=float, default=None, help="stop after this long, whatever the count"
    )
    parser.add_argument("--validators", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    shapes = itertools.cycle([(4, False), (7, True), (10, False), (4, True), (7, False), (10, True)])
    for seed, (n, partition) in zip(itertools.count(args.first_seed), shapes, strict=False):
        if sum(r.get("duties", 0) for r in runs) >= args.duties:
            break
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            break
        r = one_run(n, seed, partition, args.validators, args.epochs)
        runs.append(r)
        print(
            f"seed {seed:5} N={n:2} F={(n - 1) // 3} partition={'yes' if partition else 'no ':3} "
            f"duties {r.get('duties', 0):5} after stable {r.get('success_pct_after_stable', 0):6.2f}% "
            + " ".join(f"{k}={r.get(k, '?')}" for k in SAFETY)
            + ("" if r.get("passed") else f"  FAILED: {r.get('violation')}"),
            flush=True,
        )
    total = {k: sum(int(r.get(k, 0) or 0) for r in runs) for k in SAFETY}
    after = sum(int(r.get("duties_after_stable", 0)) for r in runs)
    after_ok = sum(int(r.get("succeeded_after_stable", 0)) for r in runs)
    summary = {
        "runs": len(runs),
        "duties": sum(int(r.get("duties", 0)) for r in runs),
        "succeeded": sum(int(r.get("succeeded", 0)) for r in runs),
        "duties_after_stable": after,
        "success_pct_after_stable": round(100 * after_ok / after, 3) if after else None,
        **total,
        "violations": [(r["seed"], r.get("violation")) for r in runs if r.get("violation")],
        "failed_runs": [r["seed"] for r in runs if not r.get("passed")],
        "by_n": {
            n: sum(int(r.get("duties", 0)) for r in runs if r["nodes"] == n)
            for n in sorted({r["nodes"] for r in runs})
        },
        "wall_s": round(time.monotonic() - started),
    }
    print(json.dumps(summary))
    if args.out is not None:
        args.out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")
    return 1 if any(total.values()) or summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
