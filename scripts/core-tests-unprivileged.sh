#!/usr/bin/env bash
# Runs the control core's in-memory tests (control/tests/core_*.rs) as the
# unprivileged user `nobody` inside a fresh network namespace whose only
# interface, lo, stays down: proof that the core needs no root, TUN or
# network. Called by scripts/test.sh; runs on its own as root:
#
#   bash scripts/core-tests-unprivileged.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

[ "$(id -u)" -eq 0 ] || { echo "run as root: it drops to nobody itself" >&2; exit 1; }

# The test binaries, as cargo built them.
mapfile -t binaries < <(cargo test --offline -p corridor-control --tests --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"].startswith("core_"):
        print(m["executable"])
')
[ "${#binaries[@]}" -ge 2 ] || { echo "found ${#binaries[@]} core test binaries, expected core_login and core_sessions" >&2; exit 1; }

# A copy nobody can read, wherever the checkout lives.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "${binaries[@]}" "$work/"
cp -r device/testdata "$work/testdata"
chmod -R a+rX "$work"

for b in "${binaries[@]}"; do
    name="$(basename "$b")"
    echo "--- $name as nobody, no network"
    unshare --net -- setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all -- \
        env -i PATH=/usr/bin:/bin HOME=/nonexistent CORRIDOR_TESTDATA="$work/testdata" bash -c '
            set -e
            [ "$(id -u)" != 0 ] || { echo "still root" >&2; exit 1; }
            if [ -n "$(ip -o link show up 2>/dev/null)" ]; then echo "an interface is up" >&2; exit 1; fi
            exec "$0" --test-threads=2
        ' "$work/$name"
done
