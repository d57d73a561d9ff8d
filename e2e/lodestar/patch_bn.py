"""Devnet stand-in for the network's other aggregators, applied by install.sh to the installed Lodestar.

Lodestar 1.5.1 packs into its blocks only attestations it received as AGGREGATES (gossip or
`POST /eth/v1/validator/aggregate_and_proofs`, `chain.aggregatedAttestationPool`); attestations posted
to `POST /eth/v1/beacon/pool/attestations` go only to the pool aggregators draw from. On a real
network other validators of each committee aggregate them. Here every validator is distributed and
this VC version cannot do DV aggregation (it embeds its partial selection proof), so without this
change no attestation of the DV would ever reach a block. The patch adds each attestation posted to
the BN's API, after the BN's own full validation (signature included), to the pool blocks are built
from, exactly as an aggregate of one would be. Sync committee messages likewise: blocks take their
sync aggregate from contributions only, so after a message posted to the API passes the BN's
signature check, the BN's own contribution of its subnet (from the message pool) goes to the
contribution pool. Nothing else changes; blocks carry only what the BN verified, and block import
verifies it again.

    python3 patch_bn.py NODE_MODULES_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

EDITS = (
    (
        "@lodestar/beacon-node/lib/chain/validation/attestation.js",
        "    return { indexedAttestation, subnet: expectedSubnet };",
        "    return { indexedAttestation, subnet: expectedSubnet, committeeIndices }; // covalidator e2e patch",
    ),
    (
        "@lodestar/beacon-node/lib/api/impl/beacon/pool/index.js",
        "                    const { indexedAttestation, subnet } = await validateGossipAttestation(chain, attestation, null);\n"
        "                    const insertOutcome = chain.attestationPool.add(attestation);\n",
        "                    const { indexedAttestation, subnet, committeeIndices } = await validateGossipAttestation(chain, attestation, null);\n"
        "                    const insertOutcome = chain.attestationPool.add(attestation);\n"
        "                    // covalidator e2e patch: stand-in for the network's aggregators (see patch_bn.py)\n"
        "                    chain.aggregatedAttestationPool.add(attestation, indexedAttestation.attestingIndices.length, committeeIndices);\n",
    ),
    (
        "@lodestar/beacon-node/lib/api/impl/beacon/pool/index.js",
        "                    // TODO: Broadcast at once to all topics\n",
        "                    // covalidator e2e patch: stand-in for the sync committee aggregators (see patch_bn.py)\n"
        "                    for (const subnet of subnets) {\n"
        "                        try {\n"
        "                            const contribution = chain.syncCommitteeMessagePool.getContribution(subnet, signature.slot, signature.beaconBlockRoot);\n"
        "                            if (contribution) chain.syncContributionAndProofPool.add({ contribution }, contribution.aggregationBits.getTrueBitIndexes().length);\n"
        '                        } catch (e) { logger.warn("covalidator e2e patch: contribution not pooled", {}, e); }\n'
        "                    }\n"
        "                    // TODO: Broadcast at once to all topics\n",
    ),
)


def main() -> int:
    modules = Path(sys.argv[1])
    for relative, old, new in EDITS:
        path = modules / relative
        text = path.read_text()
        if text.count(old) != 1:
            print(
                f"patch_bn.py: {relative}: expected text found {text.count(old)} times (not Lodestar 1.5.1?)",
                file=sys.stderr,
            )
            return 1
        path.write_text(text.replace(old, new))
    print(f"patch_bn.py: {len(EDITS)} edits applied", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
