"""Shared fixtures. Conformance vectors live in ../shared/ beside the project root (CI has it there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# `covalidator run` serves monitoring on 127.0.0.1:3620 by default: the tests' nodes (subprocesses
# inherit this) take any free port instead, so several nodes and a demo on this machine never collide
os.environ.setdefault("COVALIDATOR_MONITORING", "127.0.0.1:0")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


# No generated example is held to a time limit: a test's speed is measured in bench/, never asserted, and
# `make test` runs some tests at the lowest CPU priority (below), where an example may wait for the CPU
settings.register_profile("covalidator", deadline=None)
settings.load_profile("covalidator")

# The test modules that read no wall clock: the model, the proofs, seeded simulations, codecs and CLI
# commands run in-process. `make test` (scripts/two-lanes) runs them at the lowest CPU priority beside the
# timed ones (live nodes, real clients, timeouts, the e2e runs), which so keep the machine as if alone.
# A module not named here counts as timed; a name without its file is an error.
UNTIMED = frozenset(
    {
        "test_bls",
        "test_bls_backends",
        "test_bls_threshold",
        "test_bn_duties",
        "test_cluster_cli",
        "test_cluster_lock",
        "test_cluster_sim",
        "test_cluster_sim_ci",
        "test_cluster_sim_signer",
        "test_cluster_stateful",
        "test_definition",
        "test_deposit",
        "test_dkg_ceremony",
        "test_duty_phases",
        "test_eip3076_vectors",
        "test_frost",
        "test_g2_endomorphism",
        "test_interchange",
        "test_json_encode",
        "test_keystore",
        "test_lanes",
        "test_monitoring_unit",
        "test_node_guards",
        "test_node_real_vc",
        "test_node_validity",
        "test_old_traces",
        "test_peer_hostile",
        "test_pool_model",
        "test_proofs_dv_safety",
        "test_proofs_pool",
        "test_proofs_qbft",
        "test_proofs_slashing",
        "test_qbft",
        "test_qbft_edges",
        "test_qbft_messages",
        "test_qbft_rules",
        "test_qbft_stateful",
        "test_replay_model",
        "test_runtime_trace",
        "test_signer_model",
        "test_signer_vectors",
        "test_signing",
        "test_signing_json",
        "test_sim_committees",
        "test_simulation",
        "test_simulation_cli",
        "test_simulation_qbft",
        "test_slashing_properties",
        "test_slashing_view",
        "test_store_oracle",
        "test_strict_numbers",
        "test_supply_chain",
        "test_threshold_rule",
        "test_vc_hostile",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = sorted(UNTIMED - {p.stem for p in (ROOT / "tests").glob("test_*.py")})
    if missing:
        raise pytest.UsageError(f"conftest UNTIMED names modules that do not exist: {missing}")
    for item in items:
        if item.path.stem in UNTIMED:
            item.add_marker(pytest.mark.untimed)


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
