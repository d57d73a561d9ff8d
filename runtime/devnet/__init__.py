"""The devnet: a Beacon-API beacon node over the simulated chain, and a minimal validator client.

Test fixtures and the demo's chain, not a client to stake with. `bn.DevnetBN` serves
`model.sim_chain.SimChain` over real HTTP in wall-clock time (virtual ms = Unix ms; genesis a few
seconds ahead; fast slots) and judges every submission with real BLS against the group pubkeys;
`GET /devnet/report` gives the judge's figures. `vc.DevnetVC` walks the Beacon-API validator flow
with a node's share keystores against any base URL (a covalidator's validator API, or the devnet BN
itself for a 1-of-1 run). Both also run as processes: `python -m covalidator.runtime.devnet.bn`,
`python -m covalidator.runtime.devnet.vc`.
"""

from covalidator.runtime.bls_choice import choose_from_environment

# The fixtures sign (VC) and verify (BN) for every validator of the cluster, as real clients do with
# blst: here blst signs ~3x and verifies ~1.7x faster than arkworks (0.16 vs 0.52 ms, 0.75 vs 1.29 ms
# measured), the same bytes. The nodes keep the product's default (their batch work is no faster).
FIXTURE_BLS_BACKEND = "blst"


def use_fixture_bls_backend() -> None:
    """As a process: blst, unless COVALIDATOR_BLS_BACKEND names another backend."""
    choose_from_environment(FIXTURE_BLS_BACKEND)
