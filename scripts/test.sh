#!/usr/bin/env bash
# corridor test runner: installs the interop peers, then runs fmt, clippy,
# build, the whole test suite (the tests inside a private network namespace),
# the instruction-count gate (scripts/icount.sh), a few seconds of every fuzz
# target (scripts/fuzz.sh --smoke), the Debian package built (from the FIPS
# build), installed and purged (scripts/package.sh --test), one login and
# DTLS tunnel with that FIPS binary (tests/fips.rs), and one quick round of
# the peer comparison (scripts/compare-peers.sh --quick, checked
# functionally).
#
# Runs as root on a fresh Debian 12 (bookworm) and in CI (CI=true); it never
# reads stdin. Every step prints a banner; any failure exits non-zero.
#
#   bash scripts/test.sh
#
# Environment:
#   CORRIDOR_PEERS_VENV  exported by this script (default $REPO/target/peers-venv):
#                        the Python venv holding python-mbedtls for the DTLS peers.
set -euo pipefail
set -o errtrace # the ERR trap below also fires inside functions

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

export DEBIAN_FRONTEND=noninteractive
if [ "${CI:-}" = "true" ]; then
    # No progress bars in CI logs.
    export CARGO_TERM_PROGRESS_WHEN=never
    export PIP_PROGRESS_BAR=off
fi

# prometheus: for /usr/bin/promtool, which tests/metrics.rs runs on both
# /metrics pages (its server unit stays disabled: install_missing sees to it).
APT_PACKAGES=(openssl gnutls-bin libgnutls28-dev pkg-config gcc iproute2 util-linux python3 python3-venv
    openconnect vpnc-scripts nftables curl ocserv prometheus)
MBEDTLS_PIP_SPEC="python-mbedtls==2.10.1"
export CORRIDOR_PEERS_VENV="${CORRIDOR_PEERS_VENV:-$REPO/target/peers-venv}"

CURRENT_STEP="(setup)"
banner() {
    CURRENT_STEP="$*"
    printf '\n==================== %s ====================\n' "$*"
}
on_error() {
    local rc=$?
    printf '\n!!!!!!!!!!!!!!!!!!!! FAILED (exit %s): %s !!!!!!!!!!!!!!!!!!!!\n' "$rc" "$CURRENT_STEP" >&2
    exit "$rc"
}
trap on_error ERR

# shellcheck source=scripts/lib/packages.sh
. "$REPO/scripts/lib/packages.sh"

# python3 -m venv only creates working venvs when ensurepip is there: Debian's
# python3 has the venv module but ships ensurepip in python3-venv.
python_venv_works() {
    command -v python3 >/dev/null 2>&1 &&
        python3 -m venv --help >/dev/null 2>&1 &&
        python3 -c 'import ensurepip' >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
banner "system packages"
wanted=()
for p in "${APT_PACKAGES[@]}"; do
    # A Python with a working venv (pyenv's, say) needs no python3-venv.
    if [ "$p" = python3-venv ] && python_venv_works; then
        continue
    fi
    wanted+=("$p")
done
install_missing "${wanted[@]}"
for tool in openssl gnutls-cli gnutls-serv gcc pkg-config ip unshare python3 openconnect nft curl ocserv ocpasswd promtool; do
    command -v "$tool" >/dev/null 2>&1 || { echo "still missing after install: $tool" >&2; false; }
done
echo "openssl: $(openssl version)"
echo "gnutls:  $(gnutls-cli --version 2>/dev/null | sed -n 1p || true)"

# ---------------------------------------------------------------------------
banner "rust toolchain components"
if command -v rustup >/dev/null 2>&1; then
    installed_components="$(rustup component list --installed 2>/dev/null || true)"
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$installed_components"; then
            rustup component add "$c"
        fi
    done
else
    echo "rustup not found; using the cargo/rustfmt/clippy on PATH"
fi
cargo --version
rustc --version

# ---------------------------------------------------------------------------
banner "python peers venv ($CORRIDOR_PEERS_VENV)"
venv_py="$CORRIDOR_PEERS_VENV/bin/python"
if [ ! -x "$venv_py" ] || ! "$venv_py" -c 'import sys' >/dev/null 2>&1; then
    echo "creating venv"
    rm -rf "$CORRIDOR_PEERS_VENV"
    mkdir -p "$(dirname "$CORRIDOR_PEERS_VENV")"
    python3 -m venv "$CORRIDOR_PEERS_VENV"
fi
if ! "$venv_py" -c 'import mbedtls' >/dev/null 2>&1; then
    echo "installing $MBEDTLS_PIP_SPEC"
    "$venv_py" -m pip install --quiet --disable-pip-version-check --no-input "$MBEDTLS_PIP_SPEC"
fi
"$venv_py" -c 'import mbedtls, mbedtls.version; print("python-mbedtls", mbedtls.__version__, "/", mbedtls.version.version)'

# ---------------------------------------------------------------------------
banner "cargo fmt --check"
cargo fmt --all -- --check

banner "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

banner "cargo build (all targets)"
cargo build --workspace --all-targets

banner "cargo test --no-run"
cargo test --workspace --no-run

# ---------------------------------------------------------------------------
# Private network namespace: its only interface is lo, so every peer (gnutls-serv
# binds 0.0.0.0 and ::) is reachable from nothing outside, and ports are private.
banner "cargo test (private network namespace)"
if [ "$(id -u)" -eq 0 ]; then
    unshare_args=(--net)
else
    unshare_args=(--net --map-root-user)
fi
test_log="$REPO/target/test-output.log"
mkdir -p "$REPO/target"
unshare "${unshare_args[@]}" -- bash -c 'ip link set lo up && exec cargo test --workspace --offline' </dev/null 2>&1 | tee "$test_log"
# The pipeline's status is cargo's (pipefail); a failure stops here.

# The same data-plane and end-to-end suites once more on the readiness I/O
# engine (epoll + recvmmsg/sendmmsg), the fallback where io_uring is off.
banner "cargo test on the readiness engine (CORRIDOR_IO=readiness)"
unshare "${unshare_args[@]}" -- bash -c 'ip link set lo up && CORRIDOR_IO=readiness exec cargo test --offline -p corridor-dataplane -p corridor --test fast_path --test load --test allocations --test gateway' </dev/null 2>&1 | tee -a "$test_log"

# The control core's simulated tests (device sessions against the core, in
# memory) once more as an unprivileged user in a network namespace with no
# interface up: they must need no root, no TUN and no network at all.
banner "control core tests: unprivileged, no network"
bash scripts/core-tests-unprivileged.sh 2>&1 | tee -a "$test_log"

# Deterministic instruction counts of the fast path against the committed
# baseline (bench/icount-baseline.json); it prints how to update deliberately.
banner "instruction-count gate"
bash scripts/icount.sh

# Every parser of untrusted input (fuzz/fuzz_targets) under libFuzzer for a
# few seconds from its committed seeds: an unoptimised build without a
# sanitizer, so the cost is mostly building the targets (docs/security.md,
# "Fuzzing", has the figures and the long campaign's command).
banner "fuzz smoke (scripts/fuzz.sh --smoke)"
bash scripts/fuzz.sh --smoke

# The Debian package (scripts/package.sh): built from the FIPS build of the
# release binary (`--features fips`, in target/fips, with Go and CMake for
# the AWS-LC FIPS module; refused unless it says `fips: true`), checked by
# lintian, installed, its units verified by systemd-analyze, then purged.
banner "debian package (scripts/package.sh --test)"
bash scripts/package.sh --test </dev/null

# That very binary end to end, in a private network namespace as above: a
# login with openconnect and a DTLS tunnel carrying traffic, then `corridor
# ctl status` and /metrics must say fips=true and TLS must refuse ChaCha20
# and X25519 (tests/fips.rs; the plain run above checked fips=false).
banner "FIPS build end to end (tests/fips.rs with the package's binary)"
fips_bin="${CARGO_TARGET_DIR:-$REPO/target}/fips/release/corridor"
unshare "${unshare_args[@]}" -- env CORRIDOR_BIN="$fips_bin" CORRIDOR_EXPECT_FIPS=1 \
    bash -c 'ip link set lo up && exec cargo test --offline -p corridor --test fips' </dev/null 2>&1 | tee -a "$test_log"

# The five contenders (no tunnel, corridor, ocserv, OpenVPN, boringtun) on one
# namespace topology, one short round each; outside the unshare above, since it
# builds its own namespaces. It builds and runs the plain (non-FIPS)
# target/release. The check is functional (every tunnel came up and carried
# traffic), never a speed comparison.
banner "compare-peers --quick"
bash scripts/compare-peers.sh --quick --json target/compare-quick.json </dev/null | tee target/compare-quick.txt
bash scripts/check-compare.sh target/compare-quick.json target/compare-quick.txt

banner "all checks passed"
# One closing line with the totals over every test binary (the last
# `test result` lines cargo prints are the doc-tests, which have none).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"
