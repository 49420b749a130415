#!/usr/bin/env bash
# Runs every fuzz target of fedq (crypto/fuzz: fedq-crypto's decoders;
# node/fuzz: the node's statistics queries and CSV rows) for SECONDS each
# (default 60), then keeps what it found: inputs that reach new coverage are
# merged into the committed corpus (<crate>/fuzz/corpus/<target>/), crashes
# stay in <crate>/fuzz/artifacts/<target>/. `cargo test` replays both
# (crypto/tests/fuzz_corpus.rs, node/tests/fuzz_corpus.rs).
#
#   crypto/fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable toolchain takes
# cargo-fuzz's nightly flags with RUSTC_BOOTSTRAP=1. Build flags, and why:
#   -O                  release build without cargo-fuzz's global debug
#                       assertions (they would slow tfhe's FFTs several times);
#                       each fuzz Cargo.toml turns overflow checks and debug
#                       assertions back on for the crate under test;
#   --sanitizer none    fedq forbids unsafe code; AddressSanitizer would
#                       only watch dependencies and lengthen a build that is
#                       already long on two cores;
#   --codegen-units 16  cargo-fuzz's default of 1 serialises each crate's
#                       code generation.
# The first build of node/fuzz instruments DataFusion too: allow ~30 minutes
# on two cores.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/../.." && pwd)"
wanted=("$@")

export RUSTC_BOOTSTRAP=1
# cargo-fuzz appends its instrumentation flags to RUSTFLAGS: inherited flags
# would change every crate's build hash and rebuild all of tfhe and OpenDP.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
flags=(-O --sanitizer none --codegen-units 16)

status=0
for fuzz in "$root/crypto/fuzz" "$root/node/fuzz"; do
    cd "$fuzz/.."   # cargo-fuzz finds the project in ./fuzz
    export CARGO_TARGET_DIR="$fuzz/target"
    targets=()
    while read -r target; do
        if [ "${#wanted[@]}" -eq 0 ] || [[ " ${wanted[*]} " == *" $target "* ]]; then
            targets+=("$target")
        fi
    done < <(cargo fuzz list)
    [ "${#targets[@]}" -gt 0 ] || continue

    cargo fuzz build "${flags[@]}"
    logs="$fuzz/target/logs"
    mkdir -p "$logs"
    for target in "${targets[@]}"; do
        corpus="$fuzz/corpus/$target"
        artifacts="$fuzz/artifacts/$target"
        mkdir -p "$corpus" "$artifacts"
        # New inputs go to a scratch folder first (libFuzzer writes into its
        # first corpus folder); the merge below keeps only those that add coverage.
        scratch="$(mktemp -d)"
        echo "== $target: ${seconds}s"
        if ! cargo fuzz run "${flags[@]}" "$target" "$scratch" "$corpus" -- \
            -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
            -artifact_prefix="$artifacts/" -print_final_stats=1 \
            >"$logs/$target.log" 2>&1; then
            echo "!! $target crashed: see $logs/$target.log and $artifacts/"
            status=1
        fi
        grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' \
            "$logs/$target.log" || tail -n 5 "$logs/$target.log"
        cargo fuzz run "${flags[@]}" "$target" "$corpus" "$scratch" -- -merge=1 \
            >"$logs/$target.merge.log" 2>&1 || echo "!! $target: merge failed"
        grep -E 'MERGE-OUTER: [0-9]+ new files' "$logs/$target.merge.log" || true
        rm -rf "$scratch"
    done
done
exit "$status"
