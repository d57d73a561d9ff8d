"""Every theorem `covalidator prove` runs. Each module listed exposes THEOREMS: list[Theorem]."""

from __future__ import annotations

import importlib

from covalidator.proofs.harness import Theorem

THEOREM_MODULES = [
    "covalidator.proofs.slashing",
]


def all_theorems() -> list[Theorem]:
    theorems: list[Theorem] = []
    for name in THEOREM_MODULES:
        theorems.extend(importlib.import_module(name).THEOREMS)
    return theorems
