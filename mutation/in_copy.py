"""Run tests and theorems against a copy of the package (one with a planted bug or a mutant).

    python mutation/in_copy.py TREE [--pytest NODE_ID ...] [--prove THEOREM ...]

imports `covalidator` from TREE (a copy made by `planted.copy_tree`: covalidator/{model,runtime,
proofs}, tests/, pyproject.toml), runs the copy's tests, never the checkout's; never imports from the
installed (editable) package, and checks that the copy is what it imported. Theorems run first (they
take a second or two and kill most mutants of a rule), then the tests. Exit code: 0 when every
test passes and every theorem is proved; 1 when a test fails or a theorem is not proved; 2 when the
copy does not even import or collect (a mutant that breaks the module); 99 (with HARNESS-ERROR on
stdout) when the command itself is wrong (a test or theorem that does not exist): never a verdict.
"""

from __future__ import annotations

import sys
import traceback

HARNESS_ERROR = 99


def harness_error(message: str) -> int:
    print(f"HARNESS-ERROR: {message}", flush=True)
    return HARNESS_ERROR


def main(argv: list[str]) -> int:
    tree, *rest = argv
    tests: list[str] = []
    theorems: list[str] = []
    current = None
    for arg in rest:
        if arg in ("--pytest", "--prove"):
            current = tests if arg == "--pytest" else theorems
        elif current is None:
            return harness_error(f"{arg!r} before --pytest or --prove")
        else:
            current.append(arg)
    # the editable install's finder would hand out the checkout's own modules: drop it
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, tree)
    try:
        import covalidator.model
    except Exception:
        traceback.print_exc()
        return 2
    if not (covalidator.model.__file__ or "").startswith(tree):
        return harness_error(f"imported {covalidator.model.__file__}, not the copy in {tree}")
    if theorems:
        try:
            from covalidator.proofs.registry import all_theorems

            chosen = [t for t in all_theorems() if t.name in theorems]
        except Exception:
            traceback.print_exc()
            return 2
        if len(chosen) != len(theorems):
            return harness_error(f"unknown theorem among {theorems}")
        for theorem in chosen:
            try:
                result = theorem.run()
            except Exception:  # the mutant breaks the proof's own code: not a refutation
                traceback.print_exc()
                return 2
            print(f"{theorem.name}: {result.status} {result.detail}", flush=True)
            if not result.ok:
                return 1
    if tests:
        import os

        import pytest

        os.chdir(tree)  # the copy's own tests, with the copy's pytest settings
        code = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests]))
        if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
            return harness_error(f"pytest exit code {code} for {tests}")
        if code != 0:
            return 1 if code == pytest.ExitCode.TESTS_FAILED else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
