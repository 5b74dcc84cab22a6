#!/usr/bin/env bash
# Builds the Debian package target/debian/corridor_VERSION_amd64.deb with
# cargo-deb ([package.metadata.deb] in Cargo.toml): the FIPS build of the
# release binary, the systemd units, the example configurations as
# conffiles, man pages and shell completions from `corridor generate`,
# docs/operations.md.
#
# The binary is `cargo build --release --features fips` (aws-lc-rs on the
# AWS-LC FIPS module, aws-lc-fips-sys, whose build needs Go and CMake), in
# a target directory of its own, target/fips: the plain target/release that
# scripts/compare-peers.sh and the benches use stays a non-FIPS build and
# is never rebuilt by this script. A warm target/fips makes the build a
# no-op check. A binary whose `corridor --version` does not say
# `fips: true` (aws-lc runs in FIPS mode) is refused, never packaged.
#
#   bash scripts/package.sh          build the .deb
#   bash scripts/package.sh --test   and check it: lintian (errors fail),
#                                    dpkg -i, corridor --version (fips:
#                                    true), systemd-analyze verify of the
#                                    installed units, the corridor user,
#                                    dpkg --purge (user and binary gone).
#                                    Root; it installs and purges on this
#                                    machine.
#
# Installs what it needs (cargo-deb, lintian, binutils for strip, systemd for
# systemd-analyze, golang-go and cmake for the FIPS module), idempotently.
# Never reads stdin.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/lib/packages.sh
. "$REPO/scripts/lib/packages.sh"

test_install=0
case "${1:-}" in
--test) test_install=1 ;;
"") ;;
*)
    echo "usage: $0 [--test]" >&2
    exit 2
    ;;
esac

step() { printf -- '--- %s\n' "$*"; }
die() {
    echo "package.sh: $*" >&2
    exit 1
}

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
# scripts/test.sh runs tests/fips.rs with the binary built here.
FIPS_TARGET="$TARGET/fips"
BIN="$FIPS_TARGET/release/corridor"
ASSETS="$REPO/target/debian-assets"

step "tools"
apt_wanted=(binutils dpkg-dev golang-go cmake)
[ "$test_install" -eq 0 ] || apt_wanted+=(lintian systemd adduser)
install_missing "${apt_wanted[@]}"
if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install --locked cargo-deb
fi
cargo deb --version

step "release build with --features fips ($FIPS_TARGET)"
# cargo decides whether anything changed: with a warm target/fips this is
# a no-op check, never a rebuild.
CARGO_TARGET_DIR="$FIPS_TARGET" cargo build --release --locked -p corridor --features fips
[ -x "$BIN" ] || die "no $BIN after the release build"

step "FIPS mode (corridor --version)"
# Its second line says whether aws-lc runs in FIPS mode.
version="$("$BIN" --version)"
printf '%s\n' "$version"
grep -qx 'fips: true' <<<"$version" || die "$BIN does not say 'fips: true': refusing to package a non-FIPS binary"
! grep -q '^null-aead: true' <<<"$version" || die "$BIN is a null-aead build (records NOT encrypted): refusing to package it"

step "man pages and completions (corridor generate)"
rm -rf "$ASSETS"
"$BIN" generate man "$ASSETS/man"
"$BIN" generate completions "$ASSETS/completions"

step "cargo deb"
# cargo-deb reads `target/release/corridor` in the assets as "the release
# binary in cargo's target directory", which CARGO_TARGET_DIR makes
# target/fips; the .deb still goes to target/debian.
mkdir -p "$TARGET/debian"
deb_out="$(CARGO_TARGET_DIR="$FIPS_TARGET" cargo deb --no-build --strip -p corridor --output "$TARGET/debian/")"
deb="$(printf '%s\n' "$deb_out" | tail -n 1)"
[ -f "$deb" ] || die "cargo deb printed no package path: $deb_out"
echo "$deb"
[ "$test_install" -eq 1 ] || exit 0

step "lintian (errors fail, warnings listed)"
lintian --fail-on error "$deb" || die "lintian reported errors"

step "dpkg -i"
dpkg -i "$deb"
version="$(/usr/bin/corridor --version)"
printf '%s\n' "$version"
grep -qx 'fips: true' <<<"$version" || die "the installed /usr/bin/corridor does not say 'fips: true'"
id corridor
for f in /etc/corridor/gateway.toml /etc/corridor/relay.toml /usr/share/man/man1/corridor-gateway.1.gz \
    /usr/share/bash-completion/completions/corridor /usr/share/doc/corridor/operations.md; do
    [ -f "$f" ] || die "installed package lacks $f"
done
dpkg-query -W -f='${Conffiles}\n' corridor | grep -q '/etc/corridor/gateway.toml' || die "gateway.toml is no conffile"

step "systemd-analyze verify (installed units)"
systemd-analyze verify /lib/systemd/system/corridor-gateway.service /lib/systemd/system/corridor-relay.service

step "dpkg --purge"
dpkg --purge corridor
! id corridor >/dev/null 2>&1 || die "the corridor user outlived the purge"
! getent group corridor >/dev/null || die "the corridor group outlived the purge"
[ ! -e /usr/bin/corridor ] || die "/usr/bin/corridor outlived the purge"
[ ! -e /etc/corridor ] || die "/etc/corridor outlived the purge"
echo "package checks passed: $deb"
