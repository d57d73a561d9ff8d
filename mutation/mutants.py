"""`make mutants`: mutation testing (cosmic-ray) of the safety-critical modules, outside CI.

For each target below, cosmic-ray makes every single-point mutant of the listed functions (all of
the module when none are listed) in a COPY of the package (the checkout is never touched) and runs
only that target's tests and theorems against it (`mutation/in_copy.py`): a failing test or a refuted
theorem kills the mutant. Survivors are compared with `mutation/equivalent.toml`, where each known
equivalent mutant is written down with the reason it cannot change behaviour; any other survivor
fails the run and must be killed by a new proof or test (never by an assertion about the mutant).

    python mutation/mutants.py [--target NAME ...] [--keep DIR [--rerun-survivors [--finish]]]

Prints one line per target and a JSON summary. mutation/score.json keeps the latest result of every
target measured so far (each with its date): a run of some targets replaces only theirs.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mutation.planted import copy_tree  # noqa: E402

# CI=true: a conformance folder missing from the copy fails the baseline instead of skipping tests
ENV = {**os.environ, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True)
class Target:
    name: str
    path: str  # relative to the project root
    tests: tuple[str, ...]
    theorems: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # only these (empty: every function of the module)
    timeout_s: float = 300.0


SLASHING_TESTS = (
    "tests/test_slashing_properties.py",
    "tests/test_eip3076_vectors.py",
    "tests/test_store_oracle.py",
    "tests/test_proofs_slashing.py",
    "tests/test_interchange.py",
)
SLASHING_THEOREMS = (
    "slashing.attestation_inductive_safety",
    "slashing.block_inductive_safety",
    "slashing.minification_soundness",
    "slashing.neighbour_check_sufficiency",
    "slashing.pruning_soundness",
    "dv_safety.dv_safety",
)
QBFT_THEOREMS = ("qbft.quorum_intersection", "qbft.agreement", "qbft.broken_variants_refuted")

TARGETS = (
    Target("slashing-rules", "model/slashing/rules.py", SLASHING_TESTS, SLASHING_THEOREMS),
    Target(
        "slashing-view",
        "model/slashing/view.py",
        ("tests/test_store_oracle.py", "tests/test_node_guards.py", "tests/test_slashing_view.py"),
    ),
    Target(
        "qbft-rules",
        "model/qbft/rules.py",
        (
            "tests/test_qbft_rules.py",
            "tests/test_qbft.py",
            "tests/test_proofs_qbft.py",
            # the threshold rule lives here too: its words, the lock's use of it, and the grid test
            # that compares it with dv_safety for every (N, M)
            "tests/test_threshold_rule.py",
            "tests/test_cluster_lock.py",
            "tests/test_proofs_dv_safety.py::test_the_theorem_holds_exactly_for_the_thresholds_the_code_accepts",
        ),
        (*QBFT_THEOREMS, "dv_safety.dv_safety"),
    ),
    Target(
        "qbft-instance",
        "model/qbft/instance.py",
        (
            "tests/test_qbft.py",
            "tests/test_qbft_edges.py",
            "tests/test_qbft_messages.py",
            "tests/test_qbft_stateful.py",
        ),
    ),
    Target(
        "duty-phases",
        "model/node/phases.py",
        ("tests/test_duty_phases.py", "tests/test_node_guards.py"),
        ("dv_safety.persist_before_serve",),
    ),
    Target(
        "node-guards",
        "model/node/guards.py",
        ("tests/test_node_guards.py", "tests/test_signer_model.py"),
        ("dv_safety.dv_safety", "signer.signer_safety", "signer.signer_broken_variants_refuted"),
    ),
    Target(
        "store-selection",
        "runtime/store.py",
        (
            "tests/test_store_oracle.py",
            "tests/test_slashing_properties.py",
            "tests/test_eip3076_vectors.py",
            "tests/test_runtime_store.py",
            "tests/test_store.py",  # the import report's counts (a first partial run: `minified += 2` survived)
        ),
        functions=("_at_target", "_nearest", "_attestation", "_block", "check_batch", "import_interchange"),
        timeout_s=90.0,  # the tests take ~15 s; a mutant that loops forever in a query loop costs this
    ),
)


def function_lines(source: str, functions: tuple[str, ...]) -> list[tuple[int, int]]:
    """(first, last) line of each named function or method."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in functions:
            spans.append((node.lineno, node.end_lineno or node.lineno))
    return spans


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are: with `from __future__ import annotations` (every module
    here) they are never evaluated, so a mutant inside one is equivalent by construction."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for a in annotations:
            if a is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0)))
    return spans


def enclosing_function(source: str, line: int) -> str:
    best = ("<module>", 0)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end and node.lineno > best[1]:
                best = (node.name, node.lineno)
    return best[0]


def load_equivalents() -> list[dict[str, Any]]:
    path = ROOT / "mutation" / "equivalent.toml"
    return list(tomllib.loads(path.read_text()).get("equivalent", [])) if path.exists() else []


def is_listed(equivalents: list[dict[str, Any]], survivor: dict[str, str]) -> str | None:
    """The reason `survivor` is equivalent, if an entry names its module, function, operator and line.
    An entry may name several operators (`operators`) or lines (`lines`) that share one reason."""
    for entry in equivalents:
        operators = entry.get("operators", [entry.get("operator")])
        lines = entry.get("lines", [entry.get("line")])
        if (
            entry.get("module") == survivor["module"]
            and entry.get("function") == survivor["function"]
            and survivor["operator"] in operators
            and survivor["line"] in lines
        ):
            return str(entry.get("reason", ""))
    return None


NOT_RUN = "not-run"  # the output marking a mutant an interrupted session never ran


def refresh_survivors(target: Target, work: Path, finish: bool = False) -> None:
    """--rerun-survivors: a kept session's survivors run again against the checkout's CURRENT tests,
    mutation tools and equivalents (new tests written to kill them), every other verdict kept. The
    module under mutation must be unchanged since the session was made (its mutants' positions).
    With `finish` (--finish), the mutants an interrupted session never ran run too."""
    import shutil
    import sqlite3

    tree, session = work / target.name, work / f"{target.name}.sqlite"
    if not session.is_file():
        raise SystemExit(f"{target.name}: no kept session in {work} to rerun")
    top, _, rest = target.path.partition("/")
    if (tree / "covalidator" / top / rest).read_text() != (ROOT / target.path).read_text():
        raise SystemExit(f"{target.name}: {target.path} changed since the session: run it whole again")
    for folder in ("tests", "mutation"):
        shutil.rmtree(tree / folder)
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    with sqlite3.connect(session) as db:
        if finish:  # survivors and never-run mutants (left marked by an interrupted rerun) all pending
            db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED' OR output = ?", (NOT_RUN,))
            return
        # an interrupted session's mutants never run stay pending: marked FIRST (before the survivors'
        # verdicts are cleared, which makes them pending too) so this rerun skips them (cosmic-ray runs
        # every pending item); unmarked after it, for a later resume
        db.execute(
            "INSERT INTO work_results (worker_outcome, output, test_outcome, diff, job_id) "
            f"SELECT 'SKIPPED', '{NOT_RUN}', NULL, NULL, job_id FROM work_items "
            "WHERE job_id NOT IN (SELECT job_id FROM work_results)"
        )
        db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")


def run_target(target: Target, work: Path, rerun: bool = False, finish: bool = False) -> dict[str, object]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    tree = work / target.name
    if rerun:
        refresh_survivors(target, work, finish)
    else:
        copy_tree(tree, None)
    top, _, rest = target.path.partition("/")
    module = tree / "covalidator" / top / rest
    python = shlex.quote(sys.executable)
    # one process (cosmic-ray runs the command without a shell): the theorems, then the tests
    command = f"{python} {shlex.quote(str(tree / 'mutation' / 'in_copy.py'))} {shlex.quote(str(tree))}"
    command += " --pytest " + " ".join(target.tests)
    if target.theorems:
        command += " --prove " + " ".join(target.theorems)
    baseline = subprocess.run(shlex.split(command), cwd=tree, env=ENV, capture_output=True, text=True)
    if baseline.returncode != 0:  # the unmutated copy must pass, or every "kill" would mean nothing
        raise SystemExit(f"{target.name}: the tests fail without a mutant:\n{baseline.stdout[-3000:]}")
    config = work / f"{target.name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {target.timeout_s}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    session = work / f"{target.name}.sqlite"
    if not rerun:
        subprocess.run(["cosmic-ray", "init", str(config), str(session)], cwd=tree, check=True)
    source = module.read_text()
    spans = function_lines(source, target.functions) if target.functions else []
    annotations = annotation_spans(source)
    in_annotations = 0
    not_run = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        if rerun:  # counted again from the kept verdicts
            in_annotations = sum(1 for _, r in db.completed_work_items if r.output == "annotation")
            not_run = sum(1 for _, r in db.completed_work_items if r.output == NOT_RUN)
        for item in list(db.pending_work_items):
            start = tuple(item.mutations[0].start_pos)
            if spans and not any(a <= start[0] <= b for a, b in spans):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="outside"))
            elif any(low <= start <= high for low, high in annotations):
                in_annotations += 1
                db.set_result(
                    item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="annotation")
                )
    started = time.monotonic()
    subprocess.run(["cosmic-ray", "exec", str(config), str(session)], cwd=tree, env=ENV, check=True)
    lines = source.splitlines()
    killed = incompetent = 0
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                continue
            if "HARNESS-ERROR" in (result.output or ""):
                raise SystemExit(f"{target.name}: the test command is wrong: {result.output}")
            if result.test_outcome is TestOutcome.KILLED:
                killed += 1
            elif result.test_outcome is TestOutcome.INCOMPETENT:
                incompetent += 1
            else:
                mutation = item.mutations[0]
                line = mutation.start_pos[0]
                survivors.append(
                    {
                        "module": target.path,
                        "function": enclosing_function(source, line),
                        "operator": mutation.operator_name,
                        "line": lines[line - 1].strip(),
                        "line_number": str(line),
                        "diff": result.diff or "",
                    }
                )
    if not_run:
        import sqlite3

        with sqlite3.connect(session) as db:
            db.execute("DELETE FROM work_results WHERE output = ?", (NOT_RUN,))
    equivalents = load_equivalents()
    equivalent, unexplained = [], []
    for survivor in survivors:
        reason = is_listed(equivalents, survivor)
        (equivalent if reason is not None else unexplained).append(survivor)
    return {
        "target": target.name,
        "module": target.path,
        "mutants": killed + incompetent + len(survivors),
        "killed": killed,
        "incompetent": incompetent,  # the mutant does not run at all (a crash at import): killed too
        "survived_equivalent": len(equivalent),
        "equivalent_annotations": in_annotations,  # not run: annotations are never evaluated
        "survived": len(unexplained),
        "survivors": unexplained,
        "seconds": round(time.monotonic() - started),
        "rerun_of_survivors": rerun,  # seconds: of the rerun alone
        "not_run": not_run,  # mutants an interrupted session never ran (0: the target is complete)
    }


SCORE = ROOT / "mutation" / "score.json"


def merge_score(results: list[dict[str, object]]) -> dict[str, object]:
    """mutation/score.json with these targets' results replacing their earlier ones (a full run takes
    hours on 2 cores, so targets are measured run by run; each keeps the date it was measured)."""
    previous = json.loads(SCORE.read_text()) if SCORE.is_file() else {}
    by_name = {str(t["target"]): t for t in previous.get("targets", [])}
    today = time.strftime("%Y-%m-%d")
    for result in results:
        by_name[str(result["target"])] = {**result, "measured": today}
    targets = [by_name[t.name] for t in TARGETS if t.name in by_name]
    summary: dict[str, object] = {
        "mutants": sum(int(r["mutants"]) for r in targets),  # type: ignore[call-overload]
        "killed": sum(int(r["killed"]) + int(r["incompetent"]) for r in targets),  # type: ignore[call-overload]
        "equivalent": sum(int(r["survived_equivalent"]) for r in targets),  # type: ignore[call-overload]
        "equivalent_annotations": sum(int(r["equivalent_annotations"]) for r in targets),  # type: ignore[call-overload]
        "survived": sum(int(r["survived"]) for r in targets),  # type: ignore[call-overload]
        "targets_measured": [str(r["target"]) for r in targets],
        "targets_not_measured": [t.name for t in TARGETS if t.name not in by_name],
        "targets": targets,
    }
    SCORE.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", action="append", choices=[t.name for t in TARGETS])
    parser.add_argument("--keep", type=Path, help="keep the copies and sessions here")
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="with --keep DIR of an earlier run: run only its survivors again, against the current tests",
    )
    parser.add_argument(
        "--finish",
        action="store_true",
        help="with --rerun-survivors: also run the mutants an interrupted session never ran",
    )
    args = parser.parse_args()
    if args.finish and not args.rerun_survivors:
        parser.error("--finish goes with --rerun-survivors")
    if args.rerun_survivors and args.keep is None:
        parser.error("--rerun-survivors needs --keep DIR (the earlier run's sessions)")
    chosen = [t for t in TARGETS if not args.target or t.name in args.target]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for target in chosen:
            result = run_target(target, work, rerun=args.rerun_survivors, finish=args.finish)
            results.append(result)
            print(
                f"{target.name:16} {result['mutants']:4} mutants: {result['killed']} killed, "
                f"{result['incompetent']} incompetent, {result['survived_equivalent']} equivalent "
                f"(+{result['equivalent_annotations']} in annotations), "
                f"{result['survived']} survived ({result['seconds']} s)"
                + (f"; {result['not_run']} never run (interrupted)" if result["not_run"] else ""),
                flush=True,
            )
            for survivor in result["survivors"]:  # type: ignore[attr-defined]
                print(
                    f"  SURVIVED {survivor['module']}:{survivor['line_number']} {survivor['function']} "
                    f"{survivor['operator']}: {survivor['line']}"
                )
    summary = merge_score(results)
    print(json.dumps({k: v for k, v in summary.items() if k != "targets"}))
    return 1 if any(int(r["survived"]) for r in results) else 0  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main())
