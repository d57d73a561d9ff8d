#!/usr/bin/env bash
# A walk through the slashing-protection CLI on a throw-away DB: import a VC's EIP-3076 export,
# check messages (safe / refused with the rule and the conflicting record), record, export.
# Exits non-zero if any step does not give the expected exit code.
set -uo pipefail
bin=${COVALIDATOR:-covalidator}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
db=$dir/slashing.sqlite
pk=0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c
gvr=0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673
cat > "$dir/vc-export.json" <<JSON
{"metadata": {"interchange_format_version": "5", "genesis_validators_root": "$gvr"},
 "data": [{"pubkey": "$pk",
           "signed_blocks": [{"slot": "81952", "signing_root": "0x4ff6f743a43f3b4f95350831aeaf0a122a1a392922c45d804280284a69eb850b"}],
           "signed_attestations": [{"source_epoch": "2290", "target_epoch": "3007"},
                                   {"source_epoch": "3007", "target_epoch": "3008"}]}]}
JSON
failures=0
step() {  # expected-exit-code description command...
    local want=$1 what=$2; shift 2
    printf '\n$ %s\n' "${*/#$bin/covalidator}"
    "$@"; local got=$?
    if [ "$got" -eq "$want" ]; then printf '  -> exit %s (%s) as expected\n' "$got" "$what"
    else printf '  -> exit %s, expected %s (%s)\n' "$got" "$want" "$what"; failures=$((failures + 1)); fi
}
step 0 imported   $bin slashing import "$dir/vc-export.json" --db "$db"
step 0 safe       $bin slashing check --db "$db" --pubkey $pk --attestation 3008 3009 --record
step 3 "double vote refused"   $bin slashing check --db "$db" --pubkey $pk --attestation 3008 3009 --signing-root 0x$(printf '11%.0s' {1..32})
step 3 "surround refused"      $bin slashing check --db "$db" --pubkey $pk --attestation 3000 3010
step 3 "double proposal refused" $bin slashing check --db "$db" --pubkey $pk --block 81952
step 0 "new block safe"        $bin slashing check --db "$db" --pubkey $pk --block 81985 --record
step 2 "bad input, DB unchanged" $bin slashing check --db "$db" --pubkey $pk --attestation 1 18446744073709551616
step 2 "wrong chain refused"   $bin slashing check --db "$db" --pubkey $pk --block 1 --genesis-validators-root 0x$(printf '00%.0s' {1..32})
step 0 exported   $bin slashing export --db "$db" --out "$dir/export.json"
printf '\nexported interchange:\n'; cat "$dir/export.json"
[ "$failures" -eq 0 ] && echo "slashing demo: all steps as expected" || { echo "slashing demo: $failures unexpected results"; exit 1; }
