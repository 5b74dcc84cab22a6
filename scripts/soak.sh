#!/usr/bin/env bash
# Sessions logging in and out for a long while: does the gateway leak?
# Not part of the test command (10 minutes by default).
#
#   sudo bash scripts/soak.sh [--minutes M] [--devices N] [--hold S] [--out DIR] [--prefix P]
#
#   --minutes M   how long to keep going (default 10)
#   --devices N   sessions per wave (default 1000: two generator processes)
#   --hold S      seconds each wave holds its sessions before logging out (default 5)
#   --out DIR     results (default target/soak/DATE-COMMIT)
#   --prefix P    namespace prefix (default sk)
#
# Waves of `corridor bench run many-sessions` (log in N devices over TLS,
# CONNECT, DTLS; hold; log every one out) run back to back. After each
# wave the script samples the gateway worker's open descriptors
# (/proc/PID/fd) and resident set (VmRSS), the keeper's resident set, and
# the gateway's live-session gauge, into samples.tsv. summary.md compares
# the first wave's figures, the middle wave's and the last's. The first
# half is warm-up (the allocator's arenas and the tables grow to their
# working size); a leak shows as growth over the second half. Exit status
# 1 when a wave's sessions did not all end, or over the second half the
# descriptors grew by more than 16 or the worker's resident set by more
# than 2 % + 1 MiB; 2 on a setup failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
LOG_NAME=soak
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"

MINUTES=10
DEVICES=1000
HOLD=5
OUT=""
PREFIX=sk
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --devices) DEVICES="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

NS_DEVICE="${PREFIX}device"
GATEWAY_IP=10.10.0.1
POOL=192.168.64.0/18
CORRIDOR="$REPO/target/release/corridor"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$OUT" ] || OUT="$REPO/target/soak/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/corridor-soak.XXXXXX)"
PASSWORD="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
GATEWAY_PID=""

cleanup() { # RC
    stop_pid "$GATEWAY_PID" 10
    "$SCRIPTS/topology.sh" down "$PREFIX" >/dev/null 2>&1
    if [ "$1" -ne 0 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
on_exit cleanup

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

sessions() {
    ip netns exec "$NS_DEVICE" curl -s --max-time 5 "http://$GATEWAY_IP:9100/metrics" |
        awk '$1 ~ /^corridor_sessions[{ ]/ || $1 == "corridor_sessions" { s += $2 } END { print s + 0 }'
}

main() {
    [ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces, TUN)" >&2; exit 2; }
    step "packages and build (release)"
    install_missing iproute2 openssl curl python3
    (cd "$REPO" && cargo build --release --quiet)
    step "certificates, topology (prefix $PREFIX), corridor"
    load_test_gateway scripts/soak.sh "$WORK" "$PREFIX" "$GATEWAY_IP" "$POOL" "$PASSWORD" GATEWAY_PID || exit 2
    local keeper
    keeper="$(pgrep -P "$GATEWAY_PID" | head -n 1)"
    info "corridor pid $GATEWAY_PID (keeper $keeper); $(nproc) cores"

    printf 'wave\telapsed_s\tup\tfailures\tsessions_after\tworker_fds\tworker_rss_kib\tkeeper_rss_kib\n' >"$OUT/samples.tsv"
    local start=$SECONDS wave=0 json up failures left
    while [ $((SECONDS - start)) -lt $((MINUTES * 60)) ]; do
        wave=$((wave + 1))
        json="$OUT/wave-$wave.json"
        printf '%s\n' "$PASSWORD" | ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run many-sessions \
            --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" --user alice --password-stdin \
            --devices "$DEVICES" --concurrency 64 --processes 2 --seconds "$HOLD" --json "$json" \
            >"$OUT/generator.log" 2>&1 ||
            warn "wave $wave: the generator failed"
        up="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["figures"]["devices_up"])' "$json" 2>/dev/null || echo 0)"
        failures="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["figures"]["failures"])' "$json" 2>/dev/null || echo -1)"
        # Logouts are asynchronous: give the gateway a moment to end them.
        left=""
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            left="$(sessions)"
            [ "$left" = 0 ] && break
            sleep 0.5
        done
        alive "$GATEWAY_PID" || die "corridor died in wave $wave"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wave" "$((SECONDS - start))" "$up" "$failures" "${left:-?}" \
            "$(find "/proc/$GATEWAY_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)" "$(rss_kib "$GATEWAY_PID")" \
            "$(rss_kib "$keeper")" | tee -a "$OUT/samples.tsv"
        rm -f "$json"
    done

    step "summary ($OUT/summary.md)"
    python3 - "$OUT" "$DEVICES" "$MINUTES" "$(nproc)" "$COMMIT" <<'EOF' | tee "$OUT/summary.md"
import csv, sys, pathlib
out, devices, minutes, cores, commit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rows = list(csv.DictReader(open(out / "samples.tsv"), delimiter="\t"))
first, mid, last = rows[0], rows[len(rows) // 2], rows[-1]
print(f"# soak: {len(rows)} waves of {devices} sessions in {minutes} min (commit {commit}, {cores} cores)\n")
print("| | wave | elapsed (s) | worker fds | worker RSS (KiB) | keeper RSS (KiB) |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in (("first", first), ("middle", mid), ("last", last)):
    print(f"| {name} | {r['wave']} | {r['elapsed_s']} | {r['worker_fds']} | {r['worker_rss_kib']} | {r['keeper_rss_kib']} |")
ups = sum(int(r["up"]) for r in rows)
fails = sum(max(int(r["failures"]), 0) for r in rows)
not_zero = [r["wave"] for r in rows if r["sessions_after"] != "0"]
dfd = int(last["worker_fds"]) - int(mid["worker_fds"])
rss0, rss1 = int(mid["worker_rss_kib"]), int(last["worker_rss_kib"])
print(f"\nsessions up in all: {ups}; failures: {fails}; waves whose sessions did not all end: {not_zero or 'none'}")
print(f"over the second half: worker fds {dfd:+d}; worker RSS {rss1 - rss0:+d} KiB ({(rss1 / rss0 - 1) * 100 if rss0 else 0:+.2f} %)")
ok = not not_zero and dfd <= 16 and rss1 <= rss0 * 1.02 + 1024
print(f"\n{'FLAT' if ok else 'GROWING'}: the bar over the second half is fds +16, RSS +2 % + 1 MiB, and every wave's sessions ended")
sys.exit(0 if ok else 1)
EOF
}

main
