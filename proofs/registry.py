"""Every theorem `covalidator prove` runs. Each module listed exposes THEOREMS: list[Theorem];
theorems are shown as `<module>.<name>` (e.g. `slashing.attestation_inductive_safety`)."""

from __future__ import annotations

import dataclasses
import importlib

from covalidator.proofs.harness import Theorem

THEOREM_MODULES = [
    "covalidator.proofs.slashing",
    "covalidator.proofs.dv_safety",
    "covalidator.proofs.signer",
    "covalidator.proofs.pool",
    "covalidator.proofs.qbft",
]


def all_theorems() -> list[Theorem]:
    theorems: list[Theorem] = []
    for module_name in THEOREM_MODULES:
        short = module_name.rsplit(".", 1)[-1]
        for theorem in importlib.import_module(module_name).THEOREMS:
            theorems.append(dataclasses.replace(theorem, name=f"{short}.{theorem.name}"))
    return theorems
