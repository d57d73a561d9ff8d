"""Shared fixtures. Conformance vectors live in ../shared/ beside the project root (CI has it there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# `covalidator run` serves monitoring on 127.0.0.1:3620 by default: the tests' nodes (subprocesses
# inherit this) take any free port instead, so several nodes and a demo on this machine never collide
os.environ.setdefault("COVALIDATOR_MONITORING", "127.0.0.1:0")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/; skip when it is missing outside CI, fail under CI=true."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"conformance data missing: {path} (the ../shared/ folder beside the project root)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def blst_backend() -> Iterator[None]:
    """Run a module's simulations on the blst backend: byte-identical to the default arkworks (the
    backends are cross-checked in test_bls_backends.py) and ~1.6x faster on the pairings that dominate
    a cluster simulation. CI time; the runtime tests and the shorter model tests keep arkworks."""
    from covalidator.model.crypto import bls

    previous = bls.backend_name()
    bls.use_backend("blst")
    yield
    bls.use_backend(previous)
