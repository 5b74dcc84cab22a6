#!/usr/bin/env bash
# Where the seccomp allowlists come from (docs/security.md, "Process
# model"): runs the end-to-end tests that exercise the keeper and the relay
# with every corridor process under `strace -f`, then lists, per process
# kind, each call made once its filters were on, and every call they
# refused (EPERM, ENOSYS) or killed it for (SIGSYS); exit status 1 when
# there was any. Runs as root (the tests need it):
#
#   bash scripts/seccomp-audit.sh [KIND...]   # keeper, relay, gateway; default: keeper relay
#
# corridor keeps its own pid under strace (a wrapper attaches strace to
# itself, then execs corridor), so the tests' signals still reach it. Tests
# that count the gateway's children see strace as one and fail: that says
# nothing of the filters, so their outcome is shown and not judged here.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/lib/packages.sh
. "$REPO/scripts/lib/packages.sh"

[ "$(id -u)" -eq 0 ] || { echo "run as root: the end-to-end tests need it" >&2; exit 1; }
install_missing strace
kinds=("$@")
[ "${#kinds[@]}" -gt 0 ] || kinds=(keeper relay)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/traces"
cat >"$work/corridor" <<EOF
#!/bin/sh
strace -f -qq -s 128 -o "$work/traces/\$1.\$\$" -p \$\$ &
while ! grep -Eq 'TracerPid:[[:space:]]*[1-9]' /proc/\$\$/status; do sleep 0.01; done
exec "$REPO/target/debug/corridor" "\$@"
EOF
chmod +x "$work/corridor"

cargo build --offline -p corridor
unshare --net -- env CORRIDOR_BIN="$work/corridor" bash -c 'ip link set lo up && exec cargo test --offline \
    --no-fail-fast -p corridor --test relay --test reload --test privsep --test drain --test cluster_cookies' </dev/null 2>&1 |
    grep -E '^test |^test result' || true
python3 "$REPO/scripts/lib/seccomp_audit.py" "$work/traces" "${kinds[@]}"
