#!/usr/bin/env bash
# Relayed vs direct, in one run: the stock openconnect client through
# corridor directly (scripts/topology.sh up) and through `corridor relay`
# (scripts/topology.sh up-relay, gateway firewalled and dialling out), the
# same iperf3 and ping workloads alternated round by round, with the CPU time
# of the gateway and of the relay. Prints a Markdown table of medians and
# relayed/direct ratios, and the relay's CPU-seconds per GB carried.
#
#   sudo bash scripts/relay-bench.sh [--rounds N] [--seconds S] [--json FILE]
#
# Defaults: 3 rounds of 8 s per test. Needs root; installs iperf3 and the
# client if missing; builds the release binary. Everything it starts is
# stopped and its namespaces removed on exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# step, die, on_exit
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
LOG_NAME=relay-bench
# gateway_config, relay_config, corridor_start, corridor_stop
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"

ROUNDS=3
SECONDS_PER_TEST=8
JSON=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_TEST="$2"; shift 2 ;;
    --json) JSON="$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--json FILE]" >&2; exit 2 ;;
    esac
done

DIRECT=rbd  # namespace prefixes
RELAYED=rbr
ORG_IP=10.99.0.2
CLK_TCK="$(getconf CLK_TCK)"
WORK="$(mktemp -d /tmp/corridor-relay-bench.XXXXXX)"
CORRIDOR="$REPO/target/release/corridor"
# Set and read by name (corridor_start, corridor_stop).
# shellcheck disable=SC2034
RELAY_PID="" DIRECT_GATEWAY_PID="" RELAYED_GATEWAY_PID=""

cleanup() { # RC
    corridor_stop DIRECT_GATEWAY_PID 10
    corridor_stop RELAYED_GATEWAY_PID 10
    corridor_stop RELAY_PID 5
    # Also ends the clients and iperf3 servers left in the namespaces.
    for p in "$DIRECT" "$RELAYED"; do "$SCRIPTS/topology.sh" down "$p"; done
    rm -rf "$WORK"
}
on_exit cleanup

# utime+stime ticks of the processes of a namespace whose command line matches PATTERN.
ticks() { # NS PATTERN
    local sum=0 pid rest
    local -a f
    for pid in $(ip netns pids "$1" 2>/dev/null); do
        grep -q -- "$2" "/proc/$pid/cmdline" 2>/dev/null || continue
        rest="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        rest="${rest##*) }"
        read -r -a f <<<"$rest"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

relay_metric() { # NAME [LABEL="VALUE"]: summed over its label sets (those carrying LABEL="VALUE")
    ip netns exec "${RELAYED}relay" curl -s --max-time 5 http://127.0.0.1:9101/metrics |
        awk -v n="$1" -v f="${2:-}" '!/^#/ { split($1, p, "{") } !/^#/ && p[1] == n && (f == "" || index($1, f)) { s += $2 } END { printf "%d", s }'
}

# The two gateways differ only in where they listen and the relayed one's link.
GATEWAY_FIELDS=(written_by=scripts/relay-bench.sh server.cert=certs/server.crt server.key=certs/server.key
    auth.password_file=passwd network.pool=192.168.99.0/24 network.tun_name=corridor0 dataplane.shards=0
    group.name=default group.allowed=10.99.0.0/24 group.split_include=10.99.0.0/24)

setup() {
    step "packages and build"
    install_missing iperf3 openconnect vpnc-scripts iproute2 openssl curl python3 nftables
    (cd "$REPO" && cargo build --release --quiet)
    step "topologies $DIRECT (direct) and $RELAYED (relayed)"
    for p in "$DIRECT" "$RELAYED"; do "$SCRIPTS/topology.sh" down "$p"; done
    "$SCRIPTS/topology.sh" up "$DIRECT"
    "$SCRIPTS/topology.sh" up-relay "$RELAYED"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    PASSWORD="$(openssl rand -hex 12)"
    printf '%s\n' "$PASSWORD" | "$CORRIDOR" passwd --file "$WORK/passwd" alice
    (umask 077 && openssl rand -hex 32 >"$WORK/relay.token")
    gateway_config "$WORK/direct.toml" server.listen=10.10.0.1:443 admin.ctl_socket=direct.ctl.sock "${GATEWAY_FIELDS[@]}"
    gateway_config "$WORK/relayed.toml" server.listen=10.20.0.2:443 admin.ctl_socket=relayed.ctl.sock "${GATEWAY_FIELDS[@]}" \
        relay.address=10.20.0.1:3101 relay.name=vpn.test relay.token_file=relay.token \
        relay.pin_sha256="$(cat "$WORK/certs/relay-link.pin")"
    relay_config "$WORK/relay.toml" written_by=scripts/relay-bench.sh relay.listen=10.10.0.1:443 \
        relay.gateway_listen=10.20.0.1:3101 gateway.name=vpn.test gateway.token_file=relay.token \
        gateway_link.cert=certs/relay-link.crt gateway_link.key=certs/relay-link.key admin.listen=127.0.0.1:9101
    corridor_start relay RELAY_PID "${RELAYED}relay" "$WORK/relay.toml" "$WORK/relay.log" ||
        die "the relay did not start"
    corridor_start gateway DIRECT_GATEWAY_PID "${DIRECT}gateway" "$WORK/direct.toml" "$WORK/direct.log" ||
        die "the direct gateway did not start"
    if ! corridor_start gateway RELAYED_GATEWAY_PID "${RELAYED}gateway" "$WORK/relayed.toml" "$WORK/relayed.log" ||
        ! wait_for 20 grep -q "relay link up" "$WORK/relayed.log"; then
        die "the relayed gateway's link did not come up"
    fi
    for p in "$DIRECT" "$RELAYED"; do
        ip netns exec "${p}org" iperf3 -s -B "$ORG_IP" -D
    done
    step "clients"
    printf '%s\n' "$PASSWORD" | ip netns exec "${DIRECT}device" openconnect --protocol=anyconnect --user alice \
        --passwd-on-stdin --non-inter --cafile "$WORK/certs/ca.crt" --background https://10.10.0.1/ \
        >"$WORK/oc-direct.log" 2>&1 || die "direct client"
    printf '%s\n' "$PASSWORD" | ip netns exec "${RELAYED}device" openconnect --protocol=anyconnect --user alice \
        --passwd-on-stdin --non-inter --cafile "$WORK/certs/ca.crt" --background \
        --resolve=vpn.test:10.10.0.1 https://vpn.test/ >"$WORK/oc-relayed.log" 2>&1 || die "relayed client"
    for p in "$DIRECT" "$RELAYED"; do
        wait_for 20 bash -c "ip -n ${p}device -4 route get $ORG_IP 2>/dev/null | grep -q 'dev tun'" || die "$p: no tunnel route"
    done
    for m in direct relayed; do
        wait_for 10 grep -q "Established DTLS" "$WORK/oc-$m.log" || die "$m: the client has no DTLS"
    done
}

# One test in one mode: appends "mode test round value gateway_ticks relay_ticks relay_bytes secs" to samples.
measure() { # MODE(direct|relayed) TEST ROUND
    local mode="$1" test="$2" round="$3" p gw0 gw1 r0=0 r1=0 b0=0 b1=0 t0 t1 out value
    p="$([ "$mode" = direct ] && echo "$DIRECT" || echo "$RELAYED")"
    out="$WORK/$mode-$test-$round"
    gw0="$(ticks "${p}gateway" "corridor")"
    if [ "$mode" = relayed ]; then
        r0="$(ticks "${p}relay" "corridor")"
        b0=$(relay_metric corridor_relay_udp_bytes_total)
    fi
    t0="$(date +%s.%N)"
    case "$test" in
    tcp_up | tcp_down)
        ip netns exec "${p}device" iperf3 -c "$ORG_IP" -t "$SECONDS_PER_TEST" -J \
            $([ "$test" = tcp_down ] && echo -R) >"$out.json"
        value="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9)' "$out.json")"
        ;;
    ping_idle | ping_load)
        local n=$(((SECONDS_PER_TEST - 1) * 50)) ip=""
        if [ "$test" = ping_load ]; then
            ip netns exec "${p}device" iperf3 -c "$ORG_IP" -t "$SECONDS_PER_TEST" -J >"$out.json" &
            ip=$!
            sleep 0.5
        fi
        ip netns exec "${p}device" ping -n -i 0.02 -c "$n" -W 1 "$ORG_IP" >"$out.ping" 2>&1 || true
        [ -n "$ip" ] && wait "$ip"
        value="$(python3 -c 'import re,sys
t=sorted(float(m) for m in re.findall(r"time=([0-9.]+) ms", open(sys.argv[1]).read()))
print(t[max(0,-(-99*len(t)//100)-1)] if t else "nan")' "$out.ping")"
        ;;
    esac
    t1="$(date +%s.%N)"
    gw1="$(ticks "${p}gateway" "corridor")"
    if [ "$mode" = relayed ]; then
        r1="$(ticks "${p}relay" "corridor")"
        b1=$(relay_metric corridor_relay_udp_bytes_total)
    fi
    printf '%s %s %s %s %s %s %s %s\n' "$mode" "$test" "$round" "$value" $((gw1 - gw0)) $((r1 - r0)) $((b1 - b0)) \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$WORK/samples"
    printf '    %-8s %-10s round %s: %s\n' "$mode" "$test" "$round" "$value"
}

report() {
    python3 - "$WORK/samples" "$CLK_TCK" "${JSON:-}" "$(git -C "$REPO" rev-parse --short HEAD)" "$(nproc)" "$(uname -r)" <<'PY'
import json, statistics, sys
path, tck, out, commit, cores, kernel = sys.argv[1:7]
tck = int(tck)
rows = [l.split() for l in open(path)]
def med(mode, test, f):
    v = [f(r) for r in rows if r[0] == mode and r[1] == test]
    v = [x for x in v if x == x]
    return statistics.median(v) if v else float("nan")
val = lambda r: float(r[3])
print(f"\nrelay-bench: commit {commit}, {cores} cores, kernel {kernel}, medians of {len(rows) // 8} rounds\n")
print("| test | direct | relayed | relayed/direct |")
print("|---|---|---|---|")
res = {}
for test, unit in [("tcp_up", "Gbit/s"), ("tcp_down", "Gbit/s"), ("ping_idle", "ms p99"), ("ping_load", "ms p99")]:
    d, r = med("direct", test, val), med("relayed", test, val)
    res[test] = {"direct": d, "relayed": r, "ratio": r / d if d else None, "unit": unit}
    print(f"| {test} ({unit}) | {d:.3f} | {r:.3f} | {r / d:.2f}x |")
# Relay CPU per GB carried, over the throughput tests.
cpu = sum(int(r[5]) for r in rows if r[0] == "relayed" and r[1].startswith("tcp")) / tck
gb = sum(int(r[6]) for r in rows if r[0] == "relayed" and r[1].startswith("tcp")) / 1e9
gw_d = sum(int(r[4]) for r in rows if r[0] == "direct" and r[1].startswith("tcp")) / tck
gw_r = sum(int(r[4]) for r in rows if r[0] == "relayed" and r[1].startswith("tcp")) / tck
print(f"\nrelay CPU: {cpu:.2f} s for {gb:.2f} GB relayed = {cpu / gb if gb else float('nan'):.2f} CPU-s per GB")
print(f"gateway CPU over the TCP tests: direct {gw_d:.2f} s, relayed {gw_r:.2f} s")
res["relay_cpu_s_per_gb"] = cpu / gb if gb else None
res["gateway_cpu_s"] = {"direct": gw_d, "relayed": gw_r}
res["machine"] = {"commit": commit, "cores": int(cores), "kernel": kernel}
if out:
    json.dump(res, open(out, "w"), indent=2)
PY
}

setup
step "measuring: $ROUNDS rounds of ${SECONDS_PER_TEST} s, direct and relayed alternated"
for round in $(seq "$ROUNDS"); do
    for test in tcp_up tcp_down ping_idle ping_load; do
        for mode in direct relayed; do
            measure "$mode" "$test" "$round"
        done
    done
done
report
