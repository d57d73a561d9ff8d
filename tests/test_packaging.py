"""`pip install .` works: build the wheel, install it into a fresh venv, run `covalidator --help`.

Also checks the wheel maps import names onto the top-level folders and ships every package folder
(a module under a folder missing from pyproject's `packages` would be silently left out)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {
    "covalidator": "covalidator",
    "model": "covalidator.model",
    "runtime": "covalidator.runtime",
    "proofs": "covalidator.proofs",
}


def expected_modules() -> set[str]:
    names = set()
    for folder, package in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            names.add("/".join([*package.split("."), *relative.parts]) + ".py")
    return names


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("covalidator-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = expected_modules() - shipped
    assert not missing, (
        f"modules left out of the wheel (add their folder to pyproject packages): {sorted(missing)}"
    )
    assert not any(name.startswith(("model/", "runtime/", "proofs/", "tests/")) for name in shipped)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    result = subprocess.run(
        [
            str(
                env_dir / "bin" / "covalidator",
            ),
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "slashing" in result.stdout
    where = subprocess.run(
        [str(python), "-c", "import covalidator.model.slashing.rules as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert str(env_dir) in where.stdout
