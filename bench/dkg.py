"""Benchmark: a whole DKG ceremony (`covalidator dkg`) as N real processes on 127.0.0.1.

For each (N, V): identity keys and a definition every operator signs (in this process), then N
`covalidator dkg` processes at once (pbkdf2 at cost 1 for the keystores: key derivation is not the
ceremony's cost). Prints the wall time from spawn until every process has exited, the ceremony's own
time (from the last "connected to all" line to the last "dkg done"), and the CPU seconds of all N
processes together (from /proc after exit: user + system of the children).

    python bench/dkg.py [--runs 4:1,4:100,7:100,10:100]   (N:V pairs)
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from covalidator.runtime import keys_io
from covalidator.runtime.devnet.local_cluster import signed_local_definition
from covalidator.runtime.devnet.ports import free_ports

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def stamp(log: str, text: str) -> float | None:
    times = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in log.splitlines()
        if text in line and (m := STAMP.match(line))
    ]
    return max(times) if times else None


def one(n: int, v: int, folder: Path) -> dict[str, float]:
    path = folder / "definition.json"
    signed_local_definition(
        path,
        [folder / f"node{i}" for i in range(n)],
        free_ports(n),
        validators=v,
        network="hoodi",
        name="bench",
        fee_recipient="0x" + "bb" * 20,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.time()
    logs = [folder / f"dkg{i}.log" for i in range(n)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "covalidator",
                "dkg",
                "--definition",
                str(path),
                "--node-dir",
                str(folder / f"node{i}"),
                "--kdf",
                "pbkdf2",
                "--kdf-cost",
                "1",
            ],
            stdout=logs[i].open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(n)
    ]
    codes = [p.wait() for p in processes]
    wall = time.time() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise SystemExit(f"N={n} V={v}: exit codes {codes}; logs in {folder}")
    texts = [log.read_text() for log in logs]
    connected = max(stamp(t, "connected to all") or began for t in texts)
    done_at = [os.stat(folder / f"node{i}" / keys_io.LOCK_FILE).st_mtime for i in range(n)]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "ceremony_s": max(done_at) - connected, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="4:1,4:100,7:100,10:100")
    args = parser.parse_args()
    print(
        f"{'N':>3} {'V':>5} {'wall s':>8} {'ceremony s':>11} {'CPU s (all N)':>14} {'CPU ms / validator':>19}"
    )
    for item in args.runs.split(","):
        n, v = (int(x) for x in item.split(":"))
        with tempfile.TemporaryDirectory(prefix="covalidator-dkg-bench-") as folder:
            r = one(n, v, Path(folder))
        print(
            f"{n:>3} {v:>5} {r['wall_s']:>8.1f} {r['ceremony_s']:>11.1f} {r['cpu_s']:>14.1f} {1000 * r['cpu_s'] / v:>19.0f}"
        )


if __name__ == "__main__":
    main()
