"""The fixed set of planted bugs CI runs: one per guard on the path from BN data to a signature.

Each is a one-place source change a plausible mistake would make, and the proofs or tests that must
catch it. `tests/test_planted_bugs.py` applies each to a fresh copy of the package (never to the
checkout), runs its catchers against the copy, and fails unless EVERY catcher fails; the same catchers
pass on the real code (they are part of the ordinary suite). The README's proofs table names, for
each assumption of a theorem, the planted bug and the test tied to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"model": "model", "sim": "sim", "runtime": "runtime", "proofs": "proofs"}

GUARDS = "tests/test_node_guards.py"
ORACLE = "tests/test_store_oracle.py"


@dataclass(frozen=True)
class Planted:
    name: str
    guard: str  # what it removes, in the words of the theorem that assumes it
    path: str  # relative to the project root
    find: str  # must occur exactly once
    replace: str
    tests: tuple[str, ...] = ()  # pytest node ids that must fail
    theorems: tuple[str, ...] = ()  # `covalidator prove` theorems that must fail


PLANTED: tuple[Planted, ...] = (
    Planted(
        "ordering-rule",
        "dv_safety G1: a later slashable duty waits for the earlier one",
        "model/node/ordering.py",
        "    return [other.id for other in state.duties.values() if blocked_by(other, rec, on_duty(other), keys)]",
        "    return []",
        tests=(
            f"{GUARDS}::test_a_later_slashable_duty_waits_until_the_earlier_one_is_decided_and_persisted",
        ),
    ),
    Planted(
        "view-check",
        "dv_safety G1: consensus validity checks the value against the node's slashing view",
        "model/node/guards.py",
        "    if isinstance(message, SignedAttestation):\n        return view.check_attestation(pubkey, message)\n"
        "    return view.check_block(pubkey, message)",
        "    return Verdict(True)",
        tests=(f"{GUARDS}::test_a_leader_proposing_data_slashable_against_the_view_gets_no_prepare",),
    ),
    Planted(
        "store-refusals",
        "dv_safety G2: what the store refused at Persist is never served nor signed",
        "model/node/consensus.py",
        "    refused = state.config.guards.refused_by_store(event.refused)",
        "    refused: dict[str, str] = {}",
        tests=(f"{GUARDS}::test_what_the_store_refused_is_never_served_nor_signed",),
    ),
    Planted(
        "may-serve",
        "persist_before_serve: only the phase after PERSISTED serves",
        "model/node/phases.py",
        "    return phase is Phase.SIGNING",
        "    return phase in (Phase.PERSISTING, Phase.SIGNING)",
        tests=(
            f"{GUARDS}::test_while_persisting_nothing_is_served_accepted_or_combined_and_everything_is_once_persisted",
        ),
        theorems=("dv_safety.persist_before_serve",),
    ),
    Planted(
        "serve-data-request",
        "persist_before_serve: the VC's data request is answered only where may_serve holds",
        "model/node/vc.py",
        "    if not state.config.guards.may_serve(rec.phase):\n        return\n",
        "",
        tests=(f"{GUARDS}::test_a_block_is_not_served_while_its_proposal_is_persisting",),
    ),
    Planted(
        "accept-vc-partial",
        "persist_before_serve: the VC's partial counts only where may_serve holds",
        "model/node/vc.py",
        "    if state.config.guards.may_serve(rec.phase) and rec.validators[key].data is not None:",
        "    if rec.validators[key].data is not None:",
        tests=(
            f"{GUARDS}::test_while_persisting_nothing_is_served_accepted_or_combined_and_everything_is_once_persisted",
        ),
    ),
    Planted(
        "combine-peers",
        "persist_before_serve: peers' partials combine only where may_serve holds",
        "model/node/parsig.py",
        "        if not state.config.guards.may_serve(rec.phase) or key not in rec.roots:",
        "        if key not in rec.roots:",
        tests=(
            f"{GUARDS}::test_while_persisting_nothing_is_served_accepted_or_combined_and_everything_is_once_persisted",
        ),
    ),
    Planted(
        "threshold",
        "dv_safety lemma A: a signature needs M partials",
        "model/node/guards.py",
        "    return count >= threshold",
        "    return count >= threshold - 1",
        theorems=("dv_safety.dv_safety",),
    ),
    Planted(
        "safe-threshold",
        "dv_safety: the lock accepts only M > (N + F) / 2",
        "model/qbft/rules.py",
        "    return And(m >= 1, m <= n, 2 * m - n >= fault_tolerance(n) + 1)",
        "    return And(m >= 1, m <= n, 2 * m - n >= 1)",
        tests=(
            "tests/test_proofs_dv_safety.py::test_the_theorem_holds_exactly_for_the_thresholds_the_code_accepts",
        ),
        theorems=("dv_safety.dv_safety",),
    ),
    Planted(
        "surround-rule",
        "attestation_inductive_safety: a recorded vote surrounding the new one is refused",
        "model/slashing/rules.py",
        "        is_surround_vote(s2, t2, s1, t1),\n",
        "",
        theorems=("slashing.attestation_inductive_safety",),
    ),
    Planted(
        "minimal-watermark",
        "minification_soundness: a minified DB refuses a source below its watermark",
        "model/slashing/rules.py",
        "    return And(s <= t, s >= max_source, t > max_target)",
        "    return And(s <= t, s >= max_source - 1, t > max_target)",
        theorems=("slashing.minification_soundness",),
    ),
    Planted(
        "store-nearest-below",
        "neighbour_check_sufficiency: the store hands the check the NEAREST record below",
        "runtime/store.py",
        '        order = "DESC" if step < 0 else "ASC"',
        '        order = "ASC" if step < 0 else "DESC"',
        tests=(f"{ORACLE}::test_the_cases_found_by_planting_bugs_stay_refused",),
    ),
    Planted(
        "import-staircase",
        "neighbour_check_sufficiency: imports keep whole only histories without slashable pairs",
        "model/slashing/rules.py",
        "        seen = by_target.get(r.target_epoch)\n        if seen is not None and seen != r:\n"
        "            return False\n        by_target[r.target_epoch] = r",
        "        by_target.setdefault(r.target_epoch, r)",
        tests=(f"{ORACLE}::test_the_cases_found_by_planting_bugs_stay_refused",),
    ),
    Planted(
        "qbft-quorum",
        "agreement and quorum_intersection: a quorum is ceil((N + F + 1) / 2)",
        "model/qbft/rules.py",
        "    return CeilDiv(n + fault_tolerance(n) + 1, 2)",
        "    return CeilDiv(n + fault_tolerance(n), 2)",
        theorems=("qbft.quorum_intersection",),
    ),
    Planted(
        "persist-awaited",
        "persist_before_serve at run time: a Persist is durable before the step's next action runs",
        "runtime/node_runner.py",
        "                    persisted = await self._in_io(self.store.persist, action)  # durable before anything else",
        "                    self._spawn(self._in_io(self.store.persist, action))\n                    return",
        tests=(
            "tests/test_runtime_runner.py::test_persist_before_the_reply_stop_after_the_step_and_a_raising_step_is_survived",
        ),
    ),
)


def copy_tree(into: Path, bug: Planted | None) -> None:
    """A self-contained copy under `into`: the package as installed (covalidator/{model,runtime,
    proofs}, `bug` applied), the tests, the mutation tools and pyproject.toml (pytest's settings),
    with `../shared` (the conformance vectors) linked beside it as the tests expect. Runs against it
    see neither later edits of the checkout nor each other."""
    ignore = shutil.ignore_patterns("__pycache__")
    package = into / "covalidator"
    shutil.copytree(ROOT / "covalidator", package, ignore=ignore)
    for name, folder in PACKAGES.items():
        shutil.copytree(ROOT / folder, package / name, ignore=ignore)
    shutil.copytree(ROOT / "tests", into / "tests", ignore=ignore)
    shutil.copytree(ROOT / "mutation", into / "mutation", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    shared = into.parent / "shared"
    if (ROOT.parent / "shared").exists() and not shared.exists():
        shared.symlink_to(ROOT.parent / "shared")
    if bug is not None:
        top, _, rest = bug.path.partition("/")
        target = package / top / rest
        source = target.read_text()
        count = source.count(bug.find)
        if count != 1:
            raise AssertionError(f"{bug.name}: the text to change occurs {count} times in {bug.path}")
        target.write_text(source.replace(bug.find, bug.replace))


@dataclass(frozen=True)
class Outcome:
    catcher: str
    code: int
    output: str


def run_catchers(bug: Planted | None, catchers: list[tuple[str, str]]) -> list[Outcome]:
    """Run each (kind, what) catcher ("pytest", node id) or ("prove", theorem) against a copy with
    `bug` planted, one process each; the exit code of each (mutation/in_copy.py)."""
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree, bug)
        outcomes = []
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        for kind, what in catchers:
            done = subprocess.run(
                [sys.executable, str(tree / "mutation" / "in_copy.py"), str(tree), f"--{kind}", what],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            outcomes.append(
                Outcome(f"{kind} {what}", done.returncode, done.stdout[-3000:] + done.stderr[-3000:])
            )
        return outcomes


def catchers_of(bug: Planted) -> list[tuple[str, str]]:
    return [("pytest", t) for t in bug.tests] + [("prove", t) for t in bug.theorems]
