"""The dependency lock (requirements/test.lock, installed by `make setup` with --require-hashes) covers
every dependency pyproject.toml names, at a version its bounds allow, each with sha256 hashes; and what
`covalidator run` needs does not include the proofs' Z3 nor the optional blst backend."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    text = (ROOT / "requirements" / "test.lock").read_text()
    entries: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s\\]+)", block)
        if head:
            entries[canonicalize_name(head[1])] = (
                head[2],
                len(re.findall(r"--hash=sha256:[0-9a-f]{64}", block)),
            )
    return entries


def test_every_dependency_is_pinned_within_its_bounds_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    lock = locked()
    assert len(lock) > 50, "the lock should hold the whole closure, not only the direct dependencies"
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is in pyproject.toml but not in requirements/test.lock: run make lock"
        version = lock[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (name, version, str(requirement))
    assert all(hashes >= 1 for _, hashes in lock.values()), [n for n, (_, h) in lock.items() if h == 0]


def test_run_needs_neither_z3_nor_pyblst() -> None:
    """Every module of the model, the simulator and the runtime imports (and the default BLS backend
    loads) without pulling in Z3 or pyblst: only the proofs and the blst backend module need them."""
    code = """
import importlib, pkgutil, sys
import covalidator.model, covalidator.runtime, covalidator.sim
for package in (covalidator.model, covalidator.runtime, covalidator.sim):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name != "covalidator.model.crypto.backends.blst":
            importlib.import_module(module.name)
from covalidator.model.crypto import bls
bls.backend()
print(sorted(m for m in ("z3", "pyblst") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
