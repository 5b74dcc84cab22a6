#!/usr/bin/env bash
# Throughput and gateway CPU cost: corridor against ocserv, with the same
# openconnect client, on one scripts/topology.sh topology. The measurement
# behind the end-to-end tables of PERF.md; not a test (it checks nothing
# beyond "the tunnel came up").
#
#   sudo bash scripts/perf-vs-ocserv.sh [--rounds N] [--seconds S] [--quick]
#                                       [--json FILE] [--only LIST] [--prefix P] [--keep]
#
#   --rounds N    rounds per contender (default 3); the table shows medians
#   --seconds S   seconds per iperf3 run (default 10)
#   --quick       1 round of 3 s
#   --json FILE   also write every figure, per round and median, with machine info
#   --only LIST   comma-separated subset of baseline,corridor,ocserv (debugging)
#   --prefix P    namespace prefix (default pf: pfdevice, pfgateway, pforg)
#   --keep        keep the work directory (configs, logs, iperf3 JSON, metrics);
#                 it is also kept whenever a contender fails
#
# Contenders, one after the other (each: start, connect, all rounds, stop):
#   baseline  no tunnel: the device reaches the org through the gateway
#             namespace's plain kernel forwarding (temporary routes, removed
#             after); no gateway process, so no gateway CPU figures
#   corridor  target/release/corridor gateway (cargo build --release)
#   ocserv    Debian's ocserv through scripts/ocserv-peer.sh
# The client is the same openconnect invocation for both gateways; a run only
# counts once openconnect logged "Established DTLS connection" and tun0 has
# its pool address, so the data goes over DTLS in both cases.
#
# Per round, from the device namespace to the iperf3 server at 10.99.0.2 in
# the org namespace:
#   tcp_up    iperf3 -c 10.99.0.2 -t S -J                 one TCP stream device→org
#   tcp_down  iperf3 -c 10.99.0.2 -t S -J -R              one TCP stream org→device
#   udp       iperf3 -c 10.99.0.2 -t S -J -u -b 2G -l 1300
#             offered 2 Gbit/s of 1300-byte datagrams device→org; the received
#             rate and the loss are the server's side of the test (sum_received)
# Around every iperf3 run the script samples utime+stime (/proc/PID/stat,
# which covers all threads of a process) of every process in the gateway
# namespace (`ip netns pids`: corridor alone; ocserv's main process, sec-mod
# and the session's worker), of the openconnect client, and the whole
# machine's busy time (/proc/stat). CPU time the kernel spends in softirq on
# behalf of a gateway (veth, UDP, forwarding) is charged to whichever task
# happens to run, so "gateway CPU" is the process's own user+system time.
# Around every run it also snapshots, in all three namespaces, the UDP
# counters and every link's drop counters, to show where packets were lost
# (client TUN queue, gateway socket buffer, gateway TUN queue, receiver).
#
# Nothing is pinned or tuned by this script. corridor pins its shard threads
# itself ([dataplane] pin_cores = true, its default, one shard per core);
# ocserv, openconnect and iperf3 float. Other work on the machine is not
# stopped: the per-test "machine busy cores" figure in --json shows how much
# CPU everything used, so a noisy run can be recognised.
#
# Output: a Markdown table of medians over rounds, one row per contender, and a
# corridor/ocserv ratio line; a second table with per-test CPU detail.
#
# Runs as root on Debian 12; installs its apt packages if missing (apt-get
# update only then) and needs cargo. Everything it starts (gateways, client,
# iperf3, namespaces, temporary routes, work directory) is removed on exit,
# failure, Ctrl-C and TERM.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/ocserv-peer.sh
source "$SCRIPTS/ocserv-peer.sh"

PREFIX=pf
ROUNDS=3
TEST_SECONDS=10
JSON_OUT=""
KEEP=0
CONTENDERS=(baseline corridor ocserv)

GATEWAY_IP=10.10.0.1
GATEWAY_ORG_IP=10.99.0.1
ORG_IP=10.99.0.2
ORG_NET=10.99.0.0/24
DEVICE_NET=10.10.0.0/24
POOL=192.168.99.0/24
POOL_PREFIX=192.168.99.
DEVICE_TUN=tun0
PERF_USER=alice
PERF_GROUP=org
ADMIN_LISTEN=127.0.0.1:9443
UDP_RATE=2G
UDP_LEN=1300
TESTS=(tcp_up tcp_down udp)

APT_PACKAGES=(iperf3 ocserv openconnect vpnc-scripts iproute2 openssl curl python3 procps)

usage() {
    sed -n '/^#   sudo bash/,/^#                 it is also kept/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --seconds) TEST_SECONDS="${2:?}"; shift 2 ;;
    --quick) ROUNDS=1; TEST_SECONDS=3; shift ;;
    --json) JSON_OUT="${2:?}"; shift 2 ;;
    --only) IFS=, read -r -a CONTENDERS <<<"${2:?}"; shift 2 ;;
    --prefix) PREFIX="${2:?}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds wants a positive integer" >&2; exit 2; }
[[ "$TEST_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "--seconds wants a positive integer" >&2; exit 2; }
for c in "${CONTENDERS[@]}"; do
    case "$c" in baseline | corridor | ocserv) ;; *) echo "unknown contender: $c" >&2; exit 2 ;; esac
done
# --json FILE relative to where the script was started.
if [ -n "$JSON_OUT" ]; then
    case "$JSON_OUT" in /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
fi

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
CLK_TCK="$(getconf CLK_TCK)"

# Filled in as the run goes; read by cleanup.
WORK=""
TOPOLOGY_UP=""
IPERF_SERVER_PID=""
OPENCONNECT_PID=""
CORRIDOR_PID=""
OCSERV_RUNDIR=""
BASELINE_ROUTES=""
FAILURES=0

# ---------------------------------------------------------------------------
# helpers

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf '    WARNING: %s\n' "$*" >&2; }
die() {
    printf '\nFAILED: %s\n' "$*" >&2
    exit 1
}

now() { date +%s.%N; }

wait_for() { # SECONDS COMMAND...
    local n=$(($1 * 10)) i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# Running and not a zombie.
alive() { # PID
    local line rest
    [ -n "$1" ] || return 1
    line="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${line##*) }"
    [ "${rest%% *}" != Z ]
}
gone() { ! alive "$1"; }

stop_pid() { # PID SECONDS
    local pid="$1"
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "$2" gone "$pid" && return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 2 gone "$pid" || true
}

listening() { # NS tcp|udp PORT
    local flag=-Htln
    [ "$2" = udp ] && flag=-Huln
    ip netns exec "$1" ss "$flag" "sport = :$3" | grep -q .
}

# utime+stime, in clock ticks, summed over PIDS (a process's /proc/PID/stat
# covers all its threads, live and exited). Vanished PIDs count 0.
proc_ticks() { # PID...
    local pid line rest sum=0
    local -a f
    for pid in "$@"; do
        line="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        # Field 2 (comm) may hold spaces: split after its closing ") ".
        rest="${line##*) }"
        read -r -a f <<<"$rest"
        # rest starts at field 3 (state): utime = field 14 -> f[11], stime = 15 -> f[12].
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

gateway_pids() { ip netns pids "$NS_GATEWAY" 2>/dev/null | tr '\n' ' '; }

# Busy ticks of the whole machine (all CPUs): everything but idle and iowait.
machine_busy_ticks() {
    awk '/^cpu / { s = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6) s += $i; print s; exit }' /proc/stat
}

# Where packets go missing: UDP counters (/proc/net/snmp) and every link's
# tx/rx drops, of one namespace, as "ROLE_KEY VALUE" lines. A TUN's tx_dropped
# counts packets the kernel could not queue to the process reading the TUN
# (openconnect on the device, the gateway on its side); a namespace's
# Udp RcvbufErrors counts datagrams dropped on a full socket receive buffer.
ns_counters() { # ROLE NS
    # shellcheck disable=SC2016 # awk's and sh's own variables
    ip netns exec "$2" awk -v role="$1" '
        /^Udp:/ {
            if (!seen) { for (i = 2; i <= NF; i++) col[i] = $i; seen = 1; next }
            for (i = 2; i <= NF; i++) print role "_udp_" col[i], $i
        }' /proc/net/snmp
    # shellcheck disable=SC2016
    ip netns exec "$2" sh -c 'for d in /sys/class/net/*; do
            n=${d##*/}; [ "$n" = lo ] && continue
            echo "$n $(cat "$d/statistics/tx_dropped") $(cat "$d/statistics/rx_dropped")"
        done' | awk -v role="$1" '{ print role "_link_" $1 "_tx_dropped", $2; print role "_link_" $1 "_rx_dropped", $3 }'
}

snapshot_counters() { # FILE
    {
        ns_counters device "$NS_DEVICE"
        ns_counters gateway "$NS_GATEWAY"
        ns_counters org "$NS_ORG"
    } >"$1" 2>/dev/null || true
}

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$@"; }

meta() { # CONTENDER KEY VALUE
    printf '%s\t%s\n' "$2" "$3" >>"$WORK/$1/meta.tsv"
}

# ---------------------------------------------------------------------------
# teardown

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    step "cleaning up"
    stop_pid "$OPENCONNECT_PID" 5
    stop_pid "$CORRIDOR_PID" 10
    [ -n "$OCSERV_RUNDIR" ] && ocserv_peer_stop "$OCSERV_RUNDIR"
    stop_pid "$IPERF_SERVER_PID" 3
    [ -n "$BASELINE_ROUTES" ] && remove_baseline_routes
    # Takes down anything still running inside the namespaces too.
    [ -n "$TOPOLOGY_UP" ] && "$SCRIPTS/topology.sh" down "$PREFIX"
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ] || [ "$FAILURES" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; }; then
            info "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    case "$rc" in
    0) info "done" ;;
    130 | 143) info "interrupted" ;;
    *) printf 'FAILED (exit status %s)\n' "$rc" >&2 ;;
    esac
    exit "$rc"
}

# ---------------------------------------------------------------------------
# setup

install_packages() {
    step "packages: ${APT_PACKAGES[*]}"
    # Services the packages may start (ocserv's) live in the host namespace and
    # do not meet the copies this script runs inside ${PREFIX}gateway.
    install_missing "${APT_PACKAGES[@]}"
}

build_gateway() {
    step "building corridor (cargo build --release)"
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "${HOME:-/root}/.cargo/bin/cargo" ] || die "cargo not found: install a Rust toolchain (https://rustup.rs)"
        PATH="${HOME:-/root}/.cargo/bin:$PATH"
    fi
    (cd "$REPO" && cargo build --release)
    CORRIDOR="$REPO/target/release/corridor"
    [ -x "$CORRIDOR" ] || die "build produced no $CORRIDOR"
}

bring_up() {
    step "topology $NS_DEVICE / $NS_GATEWAY / $NS_ORG, certificates, iperf3 server"
    WORK="$(mktemp -d /tmp/corridor-perf.XXXXXX)"
    # ocserv's workers (user nobody) must be able to traverse into its run dir.
    chmod 711 "$WORK"
    mkdir -p "$WORK/baseline" "$WORK/corridor" "$WORK/ocserv"
    : >"$WORK/samples.tsv"
    # A run killed hard may have left the namespaces behind.
    "$SCRIPTS/topology.sh" down "$PREFIX"
    TOPOLOGY_UP=1
    "$SCRIPTS/topology.sh" up "$PREFIX"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    chmod 755 "$WORK/certs"
    PERF_PASSWORD="$(openssl rand -hex 12)"
    start_iperf_server
    info "work directory $WORK"
}

start_iperf_server() {
    stop_pid "$IPERF_SERVER_PID" 3
    # `ip netns exec` execs iperf3, so $! is the server itself.
    ip netns exec "$NS_ORG" iperf3 -s -B "$ORG_IP" </dev/null >>"$WORK/iperf3-server.log" 2>&1 &
    IPERF_SERVER_PID=$!
    wait_for 10 listening "$NS_ORG" tcp 5201 || die "iperf3 server did not listen on $ORG_IP:5201"
}

# ---------------------------------------------------------------------------
# contenders

add_baseline_routes() {
    BASELINE_ROUTES=1
    ip -n "$NS_DEVICE" route replace "$ORG_NET" via "$GATEWAY_IP"
    ip -n "$NS_ORG" route replace "$DEVICE_NET" via "$GATEWAY_ORG_IP"
}

remove_baseline_routes() {
    ip -n "$NS_DEVICE" route del "$ORG_NET" via "$GATEWAY_IP" 2>/dev/null || true
    ip -n "$NS_ORG" route del "$DEVICE_NET" via "$GATEWAY_ORG_IP" 2>/dev/null || true
    BASELINE_ROUTES=""
}

write_corridor_config() {
    local dir="$WORK/corridor"
    cat >"$dir/gateway.toml" <<EOF
# Written by scripts/perf-vs-ocserv.sh.
[server]
name = "corridor-perf"
listen = "$GATEWAY_IP:443"
dtls_port = 443
cert = "$WORK/certs/server.crt"
key = "$WORK/certs/server.key"

[auth]
password_file = "passwd"

[network]
pool = "$POOL"
tun_name = "corridor0"

[dataplane]
# The gateway's defaults, written out: one shard per core, each pinned.
shards = 0
pin_cores = true

[[group]]
name = "$PERF_GROUP"
allowed = ["$ORG_NET"]
split_include = ["$ORG_NET"]

[admin]
listen = "$ADMIN_LISTEN"
EOF
    printf '%s\n' "$PERF_PASSWORD" |
        "$CORRIDOR" passwd --file "$dir/passwd" "$PERF_USER" --group "$PERF_GROUP" >/dev/null
}

start_corridor() {
    local dir="$WORK/corridor"
    write_corridor_config || { warn "corridor passwd failed"; return 1; }
    # NO_COLOR: plain log lines. `ip netns exec` execs, so $! is the gateway.
    NO_COLOR=1 ip netns exec "$NS_GATEWAY" "$CORRIDOR" gateway --config "$dir/gateway.toml" \
        </dev/null >"$dir/gateway.log" 2>&1 &
    CORRIDOR_PID=$!
    corridor_ready() {
        alive "$CORRIDOR_PID" || return 2
        listening "$NS_GATEWAY" tcp 443 && listening "$NS_GATEWAY" udp 443
    }
    local i rc
    for ((i = 0; i < 200; i++)); do
        rc=0
        corridor_ready || rc=$?
        [ "$rc" -eq 0 ] && break
        if [ "$rc" -eq 2 ]; then
            warn "corridor exited during start-up; log tail:"
            strip_ansi "$dir/gateway.log" | tail -n 20 >&2
            return 1
        fi
        sleep 0.1
    done
    [ "$rc" -eq 0 ] || { warn "corridor not listening on TCP+UDP 443 within 20 s"; return 1; }
    meta corridor gateway_version "$("$CORRIDOR" --version 2>/dev/null | head -n 1)"
    wait_for 5 grep -q 'gateway started' "$dir/gateway.log" || true
    info "corridor pid $CORRIDOR_PID listening; $(strip_ansi "$dir/gateway.log" | grep -m1 -o 'shards=[^ ]*' || true)"
}

stop_corridor() {
    [ -n "$CORRIDOR_PID" ] || return 0
    save_corridor_metrics after
    kill -TERM "$CORRIDOR_PID" 2>/dev/null || true
    wait_for 10 gone "$CORRIDOR_PID" || warn "corridor still running 10 s after SIGTERM; killing"
    stop_pid "$CORRIDOR_PID" 1
    wait "$CORRIDOR_PID" 2>/dev/null || true
    CORRIDOR_PID=""
}

save_corridor_metrics() { # TAG
    ip netns exec "$NS_GATEWAY" curl -s --max-time 5 "http://$ADMIN_LISTEN/metrics" \
        >"$WORK/corridor/metrics-$1.txt" 2>/dev/null || warn "could not read corridor metrics ($1)"
}

start_ocserv() {
    OCSERV_RUNDIR="$WORK/ocserv/run"
    OCSERV_PEER_DEBUG=1 ocserv_peer_start "$PREFIX" "$WORK/certs" "$OCSERV_RUNDIR" "$PERF_PASSWORD" || return 1
    meta ocserv gateway_version "$(ocserv --version 2>&1 | head -n 1)"
    info "ocserv pid $(cat "$OCSERV_RUNDIR/ocserv.main.pid") listening"
}

stop_ocserv() {
    [ -n "$OCSERV_RUNDIR" ] || return 0
    ocserv_peer_stop "$OCSERV_RUNDIR"
    OCSERV_RUNDIR=""
}

# The same openconnect invocation for every gateway.
connect_client() { # CONTENDER
    local name="$1" log="$WORK/$1/openconnect.log" rc=0 line
    printf '%s\n' "$PERF_PASSWORD" |
        timeout 60 ip netns exec "$NS_DEVICE" openconnect --protocol=anyconnect \
            --user "$PERF_USER" --passwd-on-stdin --non-inter \
            --cafile "$WORK/certs/ca.crt" --interface "$DEVICE_TUN" \
            --background --pid-file "$WORK/$name/openconnect.pid" -v --timestamp \
            "https://$GATEWAY_IP/" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        warn "openconnect could not connect (exit $rc); log tail:"
        tail -n 15 "$log" >&2
        return 1
    fi
    OPENCONNECT_PID="$(cat "$WORK/$name/openconnect.pid")"
    if ! wait_for 20 grep -q 'Established DTLS connection' "$log"; then
        warn "openconnect did not establish DTLS within 20 s; log tail:"
        tail -n 15 "$log" >&2
        return 1
    fi
    if ! wait_for 20 bash -c "ip -n $NS_DEVICE -4 addr show dev $DEVICE_TUN 2>/dev/null | grep -qF 'inet $POOL_PREFIX'"; then
        warn "no tunnel address from $POOL on $DEVICE_TUN within 20 s"
        return 1
    fi
    line="$(grep -m1 'Established DTLS connection' "$log")"
    meta "$name" dtls "$(grep -o 'Ciphersuite .*' <<<"$line" | sed 's/^Ciphersuite //; s/\.$//')"
    meta "$name" tls "$(grep -m1 -o 'with ciphersuite .*' "$log" | sed 's/^with ciphersuite //' || true)"
    meta "$name" tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$DEVICE_TUN/mtu")"
    meta "$name" tunnel_addr "$(ip -n "$NS_DEVICE" -4 -o addr show dev "$DEVICE_TUN" | awk '{print $4}')"
    info "openconnect pid $OPENCONNECT_PID: $(ip -n "$NS_DEVICE" -4 -o addr show dev "$DEVICE_TUN" | awk '{print $4}') on $DEVICE_TUN," \
        "MTU $(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$DEVICE_TUN/mtu"), DTLS $(grep -o 'Ciphersuite .*' <<<"$line" | sed 's/^Ciphersuite //; s/\.$//')"
}

disconnect_client() { # CONTENDER
    [ -n "$OPENCONNECT_PID" ] || return 0
    local log="$WORK/$1/openconnect.log"
    # How often DTLS came up during the run (more than once = it was lost and
    # re-established, with CSTP carrying the data in between).
    meta "$1" dtls_established_count "$(grep -c 'Established DTLS connection' "$log" || true)"
    stop_pid "$OPENCONNECT_PID" 5
    OPENCONNECT_PID=""
    wait_for 5 bash -c "! ip -n $NS_DEVICE link show dev $DEVICE_TUN >/dev/null 2>&1" ||
        warn "$DEVICE_TUN still present after openconnect exited"
}

# ---------------------------------------------------------------------------
# measurement

# One iperf3 run with CPU samples around it; a line in samples.tsv.
run_test() { # CONTENDER ROUND TEST
    local name="$1" round="$2" test="$3" out rc=0
    local -a args=()
    case "$test" in
    tcp_up) ;;
    tcp_down) args=(-R) ;;
    udp) args=(-u -b "$UDP_RATE" -l "$UDP_LEN") ;;
    esac
    out="$WORK/$name/r$round-$test.json"

    local gw0 gw1 cl0 cl1 m0 m1 t0 t1 pids0 pids1
    snapshot_counters "$out.counters-before"
    pids0="$([ "$name" = baseline ] || gateway_pids)"
    t0="$(now)"
    m0="$(machine_busy_ticks)"
    # shellcheck disable=SC2086 # word-split PID lists
    gw0="$(proc_ticks $pids0)"
    cl0="$(proc_ticks ${OPENCONNECT_PID:+"$OPENCONNECT_PID"})"

    timeout $((TEST_SECONDS + 30)) ip netns exec "$NS_DEVICE" \
        iperf3 -c "$ORG_IP" -t "$TEST_SECONDS" -J --connect-timeout 5000 "${args[@]}" \
        >"$out" 2>"$out.stderr" || rc=$?

    pids1="$([ "$name" = baseline ] || gateway_pids)"
    # shellcheck disable=SC2086
    gw1="$(proc_ticks $pids1)"
    cl1="$(proc_ticks ${OPENCONNECT_PID:+"$OPENCONNECT_PID"})"
    m1="$(machine_busy_ticks)"
    t1="$(now)"
    snapshot_counters "$out.counters-after"

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$test" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$([ "$name" = baseline ] && echo "" || echo $((gw1 - gw0)))" \
        "$([ "$name" = baseline ] && echo "" || echo $((cl1 - cl0)))" \
        "$((m1 - m0))" \
        "$(echo "$pids1" | wc -w)" >>"$WORK/samples.tsv"

    # One progress line.
    python3 - "$out" "$test" "$rc" "$((gw1 - gw0))" "$CLK_TCK" "$name" <<'PY' || true
import json, sys
path, test, rc, gw, tck, name = sys.argv[1:7]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"    {test:8s} iperf3 exit {rc}, no JSON ({e})"); sys.exit()
if "error" in d:
    print(f"    {test:8s} iperf3 exit {rc}: {d['error']}"); sys.exit()
end = d["end"]
if test == "udp":
    s = end["sum_received"]; secs = s["seconds"] or 1
    gbps = s["bits_per_second"] / 1e9
    extra = f", loss {s['lost_percent']:.2f} %"
else:
    s = end["sum_received"]; secs = s["seconds"] or 1
    gbps = s["bits_per_second"] / 1e9
    extra = f", retr {end['sum_sent'].get('retransmits', '?')}"
cpu = "" if name == "baseline" else f", gateway {int(gw) / int(tck) / secs:.2f} cores"
print(f"    {test:8s} {gbps:6.3f} Gbit/s{extra}{cpu}")
PY
    if [ "$rc" -ne 0 ]; then
        warn "$name round $round $test: iperf3 exit $rc ($(tail -c 300 "$out.stderr" | tr '\n' ' '))"
        # A server left in the middle of a test refuses the next one: restart it.
        start_iperf_server
    fi
    sleep 1
}

run_rounds() { # CONTENDER
    local r t
    for ((r = 1; r <= ROUNDS; r++)); do
        info "$1 round $r/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        for t in "${TESTS[@]}"; do
            if [ "$1" != baseline ] && ! alive "$OPENCONNECT_PID"; then
                warn "openconnect is gone; skipping the rest of $1"
                return 1
            fi
            run_test "$1" "$r" "$t"
        done
        [ "$1" = corridor ] && save_corridor_metrics "r$r"
    done
    return 0
}

contender_failed() { # CONTENDER WHAT
    FAILURES=$((FAILURES + 1))
    meta "$1" status "failed: $2"
    warn "$1: $2"
}

measure_baseline() {
    step "baseline: no tunnel (kernel forwarding in $NS_GATEWAY)"
    add_baseline_routes
    if ! ip netns exec "$NS_DEVICE" ping -c 1 -W 2 "$ORG_IP" >/dev/null; then
        contender_failed baseline "no route device -> org"
    else
        meta baseline tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat /sys/class/net/to-gw/mtu)"
        run_rounds baseline && meta baseline status ok
    fi
    remove_baseline_routes
}

measure_corridor() {
    step "corridor: target/release/corridor in $NS_GATEWAY, openconnect in $NS_DEVICE"
    if ! start_corridor; then
        contender_failed corridor "gateway did not start"
    elif ! connect_client corridor; then
        contender_failed corridor "client did not connect with DTLS"
    else
        save_corridor_metrics before
        if run_rounds corridor; then meta corridor status ok; else contender_failed corridor "client died during the rounds"; fi
    fi
    disconnect_client corridor
    stop_corridor
    strip_ansi "$WORK/corridor/gateway.log" >"$WORK/corridor/gateway.clean.log" 2>/dev/null || true
    meta corridor log_error_lines "$(grep -c '\bERROR\b' "$WORK/corridor/gateway.clean.log" || true)"
    meta corridor log_warn_lines "$(grep -c '\bWARN\b' "$WORK/corridor/gateway.clean.log" || true)"
}

measure_ocserv() {
    step "ocserv: $(ocserv --version 2>&1 | head -n 1) in $NS_GATEWAY, openconnect in $NS_DEVICE"
    if ! start_ocserv; then
        contender_failed ocserv "gateway did not start"
    elif ! connect_client ocserv; then
        contender_failed ocserv "client did not connect with DTLS"
    elif run_rounds ocserv; then
        meta ocserv status ok
    else
        contender_failed ocserv "client died during the rounds"
    fi
    disconnect_client ocserv
    stop_ocserv
}

# ---------------------------------------------------------------------------
# report

machine_info() {
    local commit dirty=""
    commit="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=1
    {
        printf 'nproc\t%s\n' "$(nproc)"
        printf 'cpu_model\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'commit\t%s\n' "$commit"
        printf 'worktree_dirty\t%s\n' "${dirty:-0}"
        printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'openconnect\t%s\n' "$(openconnect --version 2>/dev/null | sed -n 's/^OpenConnect version //p' | head -n 1)"
        printf 'iperf3\t%s\n' "$(iperf3 --version 2>/dev/null | head -n 1)"
        printf 'clk_tck\t%s\n' "$CLK_TCK"
        printf 'rounds\t%s\n' "$ROUNDS"
        printf 'seconds\t%s\n' "$TEST_SECONDS"
        printf 'udp_rate\t%s\n' "$UDP_RATE"
        printf 'udp_len\t%s\n' "$UDP_LEN"
    } >"$WORK/machine.tsv"
}

report() {
    step "results"
    machine_info
    python3 - "$WORK" "$JSON_OUT" "${CONTENDERS[@]}" <<'PY'
import json, os, statistics, sys

work, json_out, contenders = sys.argv[1], sys.argv[2], sys.argv[3:]

def tsv(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("\t")
            out[k] = v
    return out

machine = tsv(os.path.join(work, "machine.tsv"))
tck = int(machine["clk_tck"])
udp_len = int(machine["udp_len"])

def counters(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.strip().partition(" ")
            if v.lstrip("-").isdigit():
                out[k] = int(v)
    return out

samples = {}
for line in open(os.path.join(work, "samples.tsv")):
    name, rnd, test, rc, wall, gw, cl, busy, npids = line.rstrip("\n").split("\t")
    rec = dict(rc=int(rc), wall_s=float(wall),
               gateway_cpu_s=None if gw == "" else int(gw) / tck,
               client_cpu_s=None if cl == "" else int(cl) / tck,
               machine_busy_cpu_s=int(busy) / tck,
               gateway_processes=int(npids) if gw != "" else None)
    path = os.path.join(work, name, f"r{rnd}-{test}.json")
    rec.update(gbps=None, gbit=None, loss_pct=None, error=None)
    try:
        d = json.load(open(path))
    except Exception as e:
        d = {"error": f"no iperf3 JSON ({e})"}
    if "error" in d:
        rec["error"] = d["error"]
    else:
        end = d["end"]
        if test == "udp":
            # iperf3 3.12: sum_sent is the client's side, sum_received the
            # server's (bytes that arrived, datagrams lost by sequence number).
            s = end["sum_received"]
            rec.update(gbit=s["bytes"] * 8 / 1e9, gbps=s["bits_per_second"] / 1e9,
                       loss_pct=s["lost_percent"], packets=s["packets"], lost_packets=s["lost_packets"],
                       sent_datagrams=end["sum_sent"]["packets"],
                       offered_gbps=end["sum_sent"]["bits_per_second"] / 1e9, seconds=s["seconds"])
        else:
            s = end["sum_received"]
            rec.update(gbit=s["bytes"] * 8 / 1e9, gbps=s["bits_per_second"] / 1e9, seconds=s["seconds"],
                       retransmits=end.get("sum_sent", {}).get("retransmits"))
    before, after = (counters(f"{path}.counters-{w}") for w in ("before", "after"))
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) != 0}
    rec["counters"] = delta
    rec["drops"] = {
        "device_tun_tx_dropped": delta.get("device_link_tun0_tx_dropped", 0),
        "device_udp_rcvbuf_errors": delta.get("device_udp_RcvbufErrors", 0),
        "gateway_udp_rcvbuf_errors": delta.get("gateway_udp_RcvbufErrors", 0),
        "gateway_tun_tx_dropped": sum(v for k, v in delta.items() if k.startswith("gateway_link_")
                                      and k.endswith("_tx_dropped") and not k.startswith(("gateway_link_to-dev", "gateway_link_to-org"))),
        "veth_dropped": sum(v for k, v in delta.items() if "_link_to-" in k),
        "org_udp_rcvbuf_errors": delta.get("org_udp_RcvbufErrors", 0),
    }
    if rec["gateway_cpu_s"] is not None:
        rec["gateway_cpu_cores"] = rec["gateway_cpu_s"] / rec["wall_s"]
        rec["gbit_per_gateway_cpu_s"] = (rec["gbit"] / rec["gateway_cpu_s"]
                                         if rec["gbit"] is not None and rec["gateway_cpu_s"] > 0 else None)
    if rec["client_cpu_s"] is not None:
        rec["client_cpu_cores"] = rec["client_cpu_s"] / rec["wall_s"]
    rec["machine_busy_cores"] = rec["machine_busy_cpu_s"] / rec["wall_s"]
    samples.setdefault(name, {}).setdefault(int(rnd), {})[test] = rec

COLS = ["tcp1_up_gbps", "tcp1_down_gbps", "udp1300_gbps", "udp_loss_pct",
        "gateway_cpu_cores", "gbit_per_gateway_cpu_s"]

def per_round(name):
    rows = []
    for rnd, tests in sorted(samples.get(name, {}).items()):
        g = lambda t, k: tests.get(t, {}).get(k)
        row = {"round": rnd,
               "tcp1_up_gbps": g("tcp_up", "gbps"),
               "tcp1_down_gbps": g("tcp_down", "gbps"),
               "udp1300_gbps": g("udp", "gbps"),
               "udp_loss_pct": g("udp", "loss_pct"),
               "gateway_cpu_cores": g("tcp_down", "gateway_cpu_cores"),
               "gbit_per_gateway_cpu_s": None}
        # Efficiency over the whole round: all three tests' received Gbit over
        # the gateway CPU seconds they cost.
        if name != "baseline" and all(g(t, "gbit") is not None for t in ("tcp_up", "tcp_down", "udp")):
            cpu = sum(g(t, "gateway_cpu_s") for t in ("tcp_up", "tcp_down", "udp"))
            gbit = sum(g(t, "gbit") for t in ("tcp_up", "tcp_down", "udp"))
            row["gbit_per_gateway_cpu_s"] = gbit / cpu if cpu > 0 else None
        row["tests"] = tests
        rows.append(row)
    return rows

def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

result = {"machine": machine, "contenders": {}}
rows_of = {}
for name in contenders:
    rows = rows_of[name] = per_round(name)
    med = {c: median(r[c] for r in rows) for c in COLS}
    detail = {}
    for t in ("tcp_up", "tcp_down", "udp"):
        detail[t] = {k: median(r["tests"].get(t, {}).get(k) for r in rows)
                     for k in ("gbps", "gateway_cpu_cores", "client_cpu_cores", "machine_busy_cores",
                               "gbit_per_gateway_cpu_s", "retransmits", "loss_pct")}
        detail[t]["failed_runs"] = sum(1 for r in rows if r["tests"].get(t, {}).get("error"))
    meta = tsv(os.path.join(work, name, "meta.tsv"))
    result["contenders"][name] = {"median": med, "median_by_test": detail, "rounds": rows, "meta": meta}

def fmt(v, nd=3):
    return "n/a" if v is None else f"{v:.{nd}f}"

print()
print(f"Medians of {machine['rounds']} round(s) x {machine['seconds']} s; commit {machine['commit']}"
      f"{' (work tree modified)' if machine['worktree_dirty'] == '1' else ''}; "
      f"{machine['nproc']} x {machine['cpu_model']}; kernel {machine['kernel']}")
print()
print("| contender | " + " | ".join(COLS) + " |")
print("|---|" + "---:|" * len(COLS))
for name in contenders:
    med = result["contenders"][name]["median"]
    status = result["contenders"][name]["meta"].get("status", "?")
    label = name if status == "ok" else f"{name} ({status})"
    print(f"| {label} | " + " | ".join(fmt(med[c], 2 if c in ("udp_loss_pct", "gateway_cpu_cores") else 3) for c in COLS) + " |")
ratios = None
if "corridor" in contenders and "ocserv" in contenders:
    a, b = result["contenders"]["corridor"]["median"], result["contenders"]["ocserv"]["median"]
    ratios = {c: (a[c] / b[c] if a[c] is not None and b[c] not in (None, 0) else None) for c in COLS}
    result["ratio_corridor_over_ocserv"] = ratios
    print("| **corridor/ocserv** | " + " | ".join(fmt(ratios[c], 2) for c in COLS) + " |")
print()
print("gateway_cpu_cores: gateway processes' user+system CPU seconds per wall second during tcp down;")
print("gbit_per_gateway_cpu_s: Gbit received over tcp up + tcp down + udp per gateway CPU second (per round, then median).")
print()
print("Per test (medians): Gbit/s | gateway cores | openconnect cores | whole-machine busy cores | Gbit per gateway CPU-s")
print()
print("| contender | test | gbit_s | gateway_cores | client_cores | machine_busy_cores | gbit_per_gw_cpu_s | tcp_retransmits | failed_runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for name in contenders:
    for t, d in result["contenders"][name]["median_by_test"].items():
        print(f"| {name} | {t} | {fmt(d['gbps'])} | {fmt(d['gateway_cpu_cores'], 2)} | {fmt(d['client_cpu_cores'], 2)} | "
              f"{fmt(d['machine_busy_cores'], 2)} | {fmt(d['gbit_per_gateway_cpu_s'])} | "
              f"{'n/a' if d['retransmits'] is None else int(d['retransmits'])} | {d['failed_runs']} |")
print()
DROPS = ["device_tun_tx_dropped", "gateway_udp_rcvbuf_errors", "gateway_tun_tx_dropped",
         "device_udp_rcvbuf_errors", "org_udp_rcvbuf_errors", "veth_dropped"]
for name in contenders:
    for t in ("tcp_up", "tcp_down", "udp"):
        result["contenders"][name]["median_by_test"][t]["drops"] = {
            k: median(r["tests"].get(t, {}).get("drops", {}).get(k) for r in rows_of[name]) for k in DROPS}
print("Packets dropped on the way (medians per run). device_tun_tx_dropped: client TUN queue full (openconnect")
print("behind); gateway_udp_rcvbuf_errors: gateway's UDP socket buffer full; gateway_tun_tx_dropped: gateway TUN")
print("queue full (gateway behind); device_udp_rcvbuf_errors: openconnect's socket full; org_udp_rcvbuf_errors:")
print("iperf3 server behind.")
print()
print("| contender | test | " + " | ".join(DROPS) + " |")
print("|---|---|" + "---:|" * len(DROPS))
for name in contenders:
    for t, d in result["contenders"][name]["median_by_test"].items():
        print(f"| {name} | {t} | " + " | ".join("n/a" if d["drops"][k] is None else f"{d['drops'][k]:.0f}" for k in DROPS) + " |")
print()
for name in contenders:
    m = result["contenders"][name]["meta"]
    keys = [k for k in ("status", "gateway_version", "tls", "dtls", "tunnel_mtu", "dtls_established_count",
                        "log_error_lines", "log_warn_lines") if k in m]
    print(f"{name}: " + "; ".join(f"{k}={m[k]}" for k in keys))

if json_out:
    with open(json_out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"\nJSON written to {json_out}")
PY
}

# Counters from corridor's admin endpoint that show drops or errors (non-zero only).
report_corridor_metrics() {
    local mf="$WORK/corridor/metrics-after.txt"
    [ -s "$mf" ] || return 0
    local lines
    lines="$(grep -E '^corridor_[a-z_]*(drop|error|fail|reject|malformed|replay|spoof|blocked)[a-z_]*(\{[^}]*\})? ' "$mf" |
        awk '$NF != 0' || true)"
    printf '\ncorridor admin /metrics at the end of its rounds, non-zero drop/error counters:\n'
    if [ -n "$lines" ]; then while IFS= read -r l; do printf '    %s\n' "$l"; done <<<"$lines"; else echo "    none"; fi
}

# ---------------------------------------------------------------------------

main() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    [ "$(id -u)" -eq 0 ] || die "run as root: namespaces, TUN devices and port 443 need it"
    install_packages
    if [[ " ${CONTENDERS[*]} " == *" corridor "* ]]; then build_gateway; fi
    bring_up
    local c
    for c in "${CONTENDERS[@]}"; do
        "measure_$c"
    done
    report
    [[ " ${CONTENDERS[*]} " == *" corridor "* ]] && report_corridor_metrics
    [ "$FAILURES" -eq 0 ] || warn "$FAILURES contender(s) failed; see above and the kept work directory"
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
