"""Which BLS backend a process uses: start-up configuration, read from the environment here (the model
reads none) and handed to `model.bls.use_backend`."""

from __future__ import annotations

import os
from typing import Final

from covalidator.model.crypto import bls

ENV_VAR: Final = "COVALIDATOR_BLS_BACKEND"


def choose_from_environment(default: str | None = None) -> None:
    """Use the backend COVALIDATOR_BLS_BACKEND names, else `default` (else the model's, arkworks)."""
    name = os.environ.get(ENV_VAR) or default
    if name:
        bls.use_backend(name)
