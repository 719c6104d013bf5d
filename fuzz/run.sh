#!/usr/bin/env bash
# Runs each fuzz target for a fixed time and prints a table: target, inputs
# run, crashes. A bench script, not CI (CI replays the kept corpora as tests:
# data-api/tests/fuzz_corpus.rs, vision/tests/fuzz_corpus.rs). Needs the
# nightly toolchain and `cargo install cargo-fuzz --locked`.
#
#   fuzz/run.sh [seconds per target] [target ...]     (default: 120, all)
#
# Runs at nice 19: it shares the machine. A crash stops its target's run; the
# input is kept in fuzz/artifacts/<target>/ and its log in
# fuzz/artifacts/<target>/run.log. New inputs found go into
# fuzz/corpus/<target>/: cut it down before committing it
# (`python3 fuzz/keep.py <target>`). docs/RELIABILITY.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${1:-120}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Safe Rust only: no sanitizer (it would only slow the runs down), but
# debug assertions on, so arithmetic overflow is a crash too.
flags=(--sanitizer none --debug-assertions)
export CARGO_INCREMENTAL=0
nice -n 19 cargo +nightly fuzz build "${flags[@]}"

rows=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
    stamp=$(mktemp)
    log="fuzz/artifacts/$t/run.log"
    status=ok
    nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$t" -- \
        -max_total_time="$budget" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=crash
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
    fi
    crashes=$(find "fuzz/artifacts/$t" -type f -newer "$stamp" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    rm -f "$stamp"
    rows+=("$(printf '%-14s %12s %8s  %s' "$t" "${runs:-?}" "$crashes" "$status")")
done

printf '%-14s %12s %8s  %s\n' target runs crashes status
printf '%s\n' "${rows[@]}"
