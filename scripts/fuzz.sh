#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (one per parser of untrusted input).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   every (or each named) target for SECONDS (default 60)
#   bash scripts/fuzz.sh --smoke [TARGET...]     every target for FUZZ_SMOKE_SECS (default 3) each
#
# Before a run the committed seeds (fuzz/seeds/<target>/, written by
# fuzz/seeds/generate.py from the captured exchanges) are copied into the
# target's working corpus (fuzz/corpus/<target>/, not committed), which
# the run grows. Every target is built once, in one cargo invocation (see
# build_flags below). For each target one line says what it did:
#
#   fuzz http_request: 1234567 execs in 60 s (20576/s), cov: 1234 ft: 5678, corpus 321, ok
#
# A crash, a failed assertion, a leak, an input over the RSS or time limit:
# the reproducer lands in fuzz/artifacts/<target>/, the libFuzzer log is
# printed, the other targets still run, and the script exits non-zero.
#
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the stable
# toolchain provide them. cargo-fuzz itself is installed from crates.io
# when missing.
#
# Environment:
#   FUZZ_SMOKE_SECS  seconds per target in --smoke (default 3)
#   FUZZ_MAX_RUNS    also stop a target after this many executions (libFuzzer -runs)
#   FUZZ_LOG_DIR     where each target's libFuzzer log is kept (default fuzz/logs)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO/fuzz"

secs=60
# Full runs: release, debug assertions and overflow checks, AddressSanitizer
# (cargo-fuzz's defaults). The smoke builds unoptimised without a sanitizer
# and without debug info (still with coverage feedback, debug assertions and
# overflow checks): a cold build of that is a fraction of the release one,
# and a few seconds per target need no speed.
build_flags=()
if [ "${1:-}" = "--smoke" ]; then
    secs="${FUZZ_SMOKE_SECS:-3}"
    build_flags=(--dev --sanitizer none)
    export CARGO_PROFILE_DEV_DEBUG=0
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    secs="$1"
    shift
fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1

all_targets="$(cargo fuzz list)"
if [ "$#" -gt 0 ]; then
    targets="$*"
    for t in $targets; do
        grep -qx "$t" <<<"$all_targets" || { echo "no fuzz target $t (have: $(echo $all_targets))" >&2; exit 2; }
    done
else
    targets="$all_targets"
fi

log_dir="${FUZZ_LOG_DIR:-$REPO/fuzz/logs}"
mkdir -p "$log_dir"

start=$SECONDS
echo "== building the fuzz targets"
cargo fuzz build "${build_flags[@]}"
echo "built in $((SECONDS - start)) s"

failed=()
for t in $targets; do
    corpus="corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    if [ -d "seeds/$t" ]; then
        cp -n seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    log="$log_dir/$t.log"
    runs=()
    if [ -n "${FUZZ_MAX_RUNS:-}" ]; then
        runs=(-runs="$FUZZ_MAX_RUNS")
    fi
    began=$SECONDS
    rc=0
    # -rss_limit_mb and -malloc_limit_mb: an input that makes a parser
    # allocate without bound is a crash. -timeout: one that loops is too.
    cargo fuzz run "${build_flags[@]}" "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -timeout=10 -print_final_stats=1 "${runs[@]}" >"$log" 2>&1 || rc=$?
    took=$((SECONDS - began))
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)"
    corp="$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)"
    if [ "$rc" -eq 0 ]; then
        verdict=ok
    else
        verdict="FAILED (exit $rc; reproducer in fuzz/artifacts/$t/)"
        failed+=("$t")
    fi
    echo "fuzz $t: ${execs:-?} execs in $took s (${rate:-?}/s), ${cov:-cov: ?}, corpus ${corp:-?}, $verdict"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
    fi
done

echo "fuzzing took $((SECONDS - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]}" >&2
    exit 1
fi
