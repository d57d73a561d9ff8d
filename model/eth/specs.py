"""Access to the consensus specs' own Python package (`eth-consensus-specs`), imported lazily, once.

Decides: which forks covalidator signs for (phase0 .. fulu, in order), which presets it knows
(mainnet, minimal), and that a spec module is imported only when first needed (the Fulu module costs
~0.5-1 s and ~55 MB) and then kept. Containers, domain constants, `compute_domain` and
`compute_signing_root` all come from these modules: nothing is hand-written that the specs define.

Must not: read the network's configuration (that is `signing.ForkSchedule`); the modules' own
`config` values (mainnet fork versions) are never used for signing.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Final

FORKS: Final = ("phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu")
PRESETS: Final = ("mainnet", "minimal")
FAR_FUTURE_EPOCH: Final = 2**64 - 1

_modules: dict[tuple[str, str], ModuleType] = {}
_lock = threading.Lock()


def spec(fork: str, preset: str = "mainnet") -> ModuleType:
    """The `eth_consensus_specs.<fork>.<preset>` module (imported on first use)."""
    if fork not in FORKS:
        raise ValueError(f"unsupported fork {fork!r}; covalidator signs for {', '.join(FORKS)}")
    if preset not in PRESETS:
        raise ValueError(f"unsupported preset {preset!r}; covalidator knows {', '.join(PRESETS)}")
    key = (fork, preset)
    with _lock:  # one import even when executor threads race to the first signing root
        if key not in _modules:
            _modules[key] = importlib.import_module(f"eth_consensus_specs.{fork}.{preset}")
        return _modules[key]
