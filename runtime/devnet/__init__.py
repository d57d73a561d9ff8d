"""The devnet: a Beacon-API beacon node over the simulated chain, and a minimal validator client.

Test fixtures and the demo's chain, not a client to stake with. `bn.DevnetBN` serves
`model.sim_chain.SimChain` over real HTTP in wall-clock time (virtual ms = Unix ms; genesis a few
seconds ahead; fast slots) and judges every submission with real BLS against the group pubkeys;
`GET /devnet/report` gives the judge's figures. `vc.DevnetVC` walks the Beacon-API validator flow
with a node's share keystores against any base URL (a covalidator's validator API, or the devnet BN
itself for a 1-of-1 run). Both also run as processes: `python -m covalidator.runtime.devnet.bn`,
`python -m covalidator.runtime.devnet.vc`.
"""
