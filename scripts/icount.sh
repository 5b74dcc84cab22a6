#!/usr/bin/env bash
# corridor's instruction-count gate: fixed fast-path scenarios counted under
# callgrind and compared with the committed baseline, bench/icount-baseline.json.
#
#   bash scripts/icount.sh            check; exit 1 on a regression beyond the tolerance
#   bash scripts/icount.sh --update   rewrite the baseline from this machine's counts
#
# What is counted: each scenario of `corridor-icount --list` (bench/) runs once
# in its own process under `valgrind --tool=callgrind --toggle-collect=bench::measured*`,
# so only the measured part is counted: process start-up, the scenario's set-up
# (keys, packets) and its checks afterwards are not. Instruction counts are
# deterministic where wall-clock times are not; run to run they move by a few
# dozen instructions at most (heap addresses change memcpy's path), far inside
# the tolerance. Wall-clock figures (PERF.md, `cargo bench`) never fail a test.
#
# What the numbers are not: valgrind hides AVX-512 (and VAES) from the program,
# so AES-GCM takes aws-lc's AES-NI/AVX2 path, not the one it takes on the
# hardware. The gate tracks the cost of corridor's own code around the crypto
# (record layer, parsing, policy, the shard's per-record logic), not the
# crypto's speed. Counts also depend on the compiler and dependency versions
# and the CPU features valgrind reports, so the baseline records rustc and
# valgrind versions; after a toolchain or dependency bump, re-baseline
# deliberately.
#
# Runs as root on Debian 12 (installs valgrind when missing) or as a user with
# valgrind on PATH. Exit: 0 pass, 1 regression or scenario set changed,
# 2 usage or a scenario that failed to run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BASELINE="bench/icount-baseline.json"
# Default tolerance for a fresh baseline; an existing file's `tolerance_pct` wins.
DEFAULT_TOLERANCE_PCT=1

update=false
case "${1:-}" in
    "") ;;
    --update) update=true ;;
    *)
        echo "usage: bash scripts/icount.sh [--update]" >&2
        exit 2
        ;;
esac

# shellcheck source=scripts/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

command -v valgrind >/dev/null 2>&1 || install_missing valgrind

cargo build --release --quiet -p corridor-bench --bin corridor-icount
bin="${CARGO_TARGET_DIR:-$REPO/target}/release/corridor-icount"

# scenario name -> instructions counted in bench::measured
counts="$(mktemp)"
trap 'rm -f "$counts"' EXIT
for scenario in $("$bin" --list | cut -f1); do
    log="$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='bench::measured*' \
        "$bin" "$scenario" 2>&1)" || {
        printf '%s\n' "$log" >&2
        echo "scenario $scenario failed to run" >&2
        exit 2
    }
    n="$(awk '/Collected :/ { print $NF }' <<<"$log")"
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -eq 0 ]; then
        printf '%s\n' "$log" >&2
        echo "no instruction count for $scenario (is bench::measured still a symbol?)" >&2
        exit 2
    fi
    printf '%s %s\n' "$scenario" "$n" >>"$counts"
done

rustc_version="$(rustc --version)"
valgrind_version="$(valgrind --version)"
# AWS-LC picks its AES/SHA code paths from the CPU features valgrind passes
# through, so a different CPU model can move the crypto-heavy scenarios.
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"

# Comparison and the baseline file are JSON; python3 is on every target (test.sh installs it).
python3 - "$BASELINE" "$counts" "$update" "$DEFAULT_TOLERANCE_PCT" "$rustc_version" "$valgrind_version" "$cpu_model" <<'PY'
import json, os, sys

baseline_path, counts_path, update, default_tol, rustc, valgrind, cpu = sys.argv[1:]
now = {}
with open(counts_path) as f:
    for line in f:
        name, n = line.split()
        now[name] = int(n)

old = {}
if os.path.exists(baseline_path):
    with open(baseline_path) as f:
        old = json.load(f)
tolerance = float(old.get("tolerance_pct", default_tol))
base = old.get("instructions", {})
HOW_TO_UPDATE = (
    "If the change is deliberate, update the baseline and commit it with the reason:\n"
    "    bash scripts/icount.sh --update\n"
    "    git commit bench/icount-baseline.json -m 'icount baseline: <why the counts moved>'"
)

if update == "true":
    doc = {
        "tolerance_pct": tolerance,
        "comment": "Instructions counted by scripts/icount.sh in bench::measured; "
        "update with `bash scripts/icount.sh --update` and say why in the commit.",
        "rustc": rustc,
        "cpu": cpu,
        "valgrind": valgrind,
        "instructions": dict(now),
    }
    with open(baseline_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

w = max(len(n) for n in list(now) + list(base) + ["scenario"])
print(f"instruction counts (callgrind, bench::measured only); tolerance {tolerance:g} %")
print(f"| {'scenario':<{w}} | {'baseline':>12} | {'now':>12} | {'change %':>8} |")
print(f"|{'-' * (w + 2)}|{'-' * 13}:|{'-' * 13}:|{'-' * 9}:|")
regressions, improvements, unmatched = [], [], []
for name in list(now) + [n for n in base if n not in now]:
    b, n = base.get(name), now.get(name)
    if b is None or n is None:
        unmatched.append(name)
        change = "new" if b is None else "gone"
    else:
        pct = (n - b) * 100.0 / b
        change = f"{pct:+.2f}"
        if n > b * (1 + tolerance / 100):
            regressions.append(name)
            change += " !"
        elif n < b * (1 - tolerance / 100):
            improvements.append(name)
    bs = "-" if b is None else str(b)
    ns = "-" if n is None else str(n)
    print(f"| {name:<{w}} | {bs:>12} | {ns:>12} | {change:>8} |")

if update == "true":
    print(f"baseline written: {baseline_path} ({rustc}; {valgrind}); commit it with the reason")
    sys.exit(0)
if old and old.get("cpu") not in (None, cpu):
    print(f"note: baseline taken on CPU '{old.get('cpu')}', this is '{cpu}': the crypto code path "
          "(and so record/handshake counts) may differ for that reason alone; if only those moved, "
          "update the baseline deliberately")
if old and (old.get("rustc"), old.get("valgrind")) != (rustc, valgrind):
    print(f"note: baseline taken with {old.get('rustc')}, {old.get('valgrind')}; "
          f"now {rustc}, {valgrind}: counts may move for that reason alone")
if improvements:
    print(f"improved beyond {tolerance:g} %: {', '.join(improvements)} (not a failure; "
          "run `bash scripts/icount.sh --update` and commit to lock the gain in)")
if regressions or unmatched:
    if regressions:
        print(f"FAIL: above baseline by more than {tolerance:g} %: {', '.join(regressions)}")
    if unmatched:
        print(f"FAIL: scenarios without a baseline, or baselined but gone: {', '.join(unmatched)}")
    print(HOW_TO_UPDATE)
    sys.exit(1)
print("instruction counts within tolerance")
PY
