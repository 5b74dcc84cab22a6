#!/usr/bin/env bash
# The same workloads through five contenders on one scripts/topology.sh
# topology (device → gateway → org), one after another, in one run: no tunnel,
# corridor, ocserv, OpenVPN and boringtun. The measurement behind the
# end-to-end tables of PERF.md; it checks only that every tunnel came up and
# carried the traffic, never how fast (wall-clock figures fail nothing).
#
#   sudo bash scripts/compare-peers.sh [--rounds N] [--seconds S] [--quick]
#                                      [--json FILE] [--only LIST] [--prefix P]
#                                      [--bench-devices N] [--passwd-iterations N] [--keep]
#
#   --rounds N         rounds per contender (default 3); the tables show medians
#   --seconds S        seconds per iperf3 run and per udp-echo run (default 10)
#   --quick            1 round of 3 s, 20 load-generator devices (CI)
#   --json FILE        also write every figure (medians, per round, per test)
#   --only LIST        comma-separated subset of baseline,corridor,ocserv,openvpn,boringtun
#                      and corridor's variants corridor-plain (offloads off),
#                      corridor-epoll (readiness I/O engine), corridor-1shard
#                      (one shard instead of one per core) and corridor-nosteer
#                      (no TUN steering program), which only run when named
#   --prefix P         namespace prefix (default cp: cpdevice, cpgateway, cporg)
#   --bench-devices N  devices of `corridor bench run` (default 100; --quick 20)
#   --passwd-iterations N
#                      PBKDF2 iterations of corridor's password file (default
#                      5000, about the cost of the SHA-256-crypt with 5000
#                      rounds that ocserv's ocpasswd writes, so handshakes/s
#                      compares handshakes, not hash settings; `corridor
#                      passwd`'s own default is 600000)
#   --keep             keep the work directory (configs, logs, iperf3 JSON,
#                      counters); it is also kept whenever something fails
#
# Contenders, in this order (each: start, verify that the tunnel carries
# traffic, all rounds, stop, remove its routes):
#   baseline   no tunnel: the device reaches the org through the gateway
#              namespace's plain kernel forwarding (temporary routes); no
#              gateway process, so no gateway CPU figures
#   corridor   target/release/corridor gateway (cargo build --release) with the
#              real openconnect client; counts once openconnect logged
#              "Established DTLS connection" and tun0 has its pool address
#   ocserv     Debian's ocserv through scripts/ocserv-peer.sh, the same
#              openconnect invocation and the same DTLS check
#   corridor-connect, ocserv-connect (only when named): those gateways with
#              `corridor connect` as the device instead of openconnect
#              (the same flags, --background; up once it logs "DTLS up");
#              no load-generator rows
#   openvpn    Debian's OpenVPN 2.6 through scripts/openvpn-peer.sh: UDP, TUN,
#              TLS mode, data channel AES-256-GCM (checked in both logs),
#              userspace (no DCO), pool 192.168.98.0/24
#   boringtun  boringtun-cli 0.7.1 (userspace WireGuard, cargo-installed into
#              target/tools) on both ends through scripts/boringtun-peer.sh,
#              configured with wg; --threads = cores, as corridor runs one
#              shard per core; pool 192.168.97.0/24
# Every tunnel must also pass a ping from the device to 10.99.0.2 with the
# route to it on the tunnel's device. A contender that does not start, connect
# or carry a test at all is an error: the run goes on with the others, prints
# the tables, the failures and the log tails, and exits non-zero.
#
# Per round, device namespace → iperf3 server at 10.99.0.2 in the org:
#   tcp1       iperf3 -t S                    1 TCP stream, received Gbit/s
#   tcp4       iperf3 -t S -P 4               4 TCP streams, received Gbit/s
#   tcp_down   iperf3 -t S -R                 1 TCP stream org→device
#   udp1300    iperf3 -t S -u -b 2G -l 1300   received Gbit/s and loss (server side)
#   udp100     iperf3 -t S -u -b 500M -l 100  small datagrams: received
#              kpps = (server's packets - lost) / seconds / 1000, and loss
#   ping_load  ping -i 0.01 for S-1 s while an iperf3 tcp1 runs: p50/p99 RTT
#              from ping's per-reply times, and lost pings
# For corridor and ocserv (same protocol, same generator), after the iperf3
# rounds and with openconnect gone, per round: `corridor bench run
# handshake-storm` and `udp-echo` from the device namespace against the
# gateway (reflector: `corridor bench reflect --listen 10.99.0.2:9001` in the
# org): handshakes/s, time to tunnel and echo RTT percentiles.
#
# Around every iperf3 run the script samples utime+stime (/proc/PID/stat, all
# threads of a process) of every process in the gateway namespace (`ip netns
# pids`: corridor; ocserv's main, sec-mod and worker; openvpn's server;
# boringtun's gateway end), of the device-side tunnel process (openconnect,
# openvpn client, boringtun's device end) and the whole machine's busy time
# (/proc/stat). gateway_cores_tcp1 = gateway CPU-s / wall-s during tcp1;
# gbit_per_gateway_cpu_s = Gbit received in tcp1 / gateway CPU-s in tcp1.
# Softirq work the kernel does for a process (veth, UDP, forwarding) is charged
# to whichever task happens to run, so this is the processes' own user+system
# time. Around every run it also snapshots, in all three namespaces, the UDP
# counters and every link's drop counters, to show where packets were lost.
#
# Nothing is pinned or tuned by this script: corridor pins its shards itself
# (its defaults: one per core); the rest float. Other work on the machine is
# not stopped: the per-test "machine busy cores" figure shows how much CPU
# everything used, so a noisy run can be recognised.
#
# Output: a Markdown table of medians over rounds, one row per contender
# (`| name | ...`), with ratios to the baseline, and ratio rows
# corridor/ocserv, corridor/openvpn, corridor/boringtun; the load-generator
# table; per-test CPU and drop detail. --json FILE writes
#   {"machine": {...}, "commit": ..., "date": ..., "rounds": N, "seconds": S,
#    "contenders": [{"name": "baseline", "tcp1_gbps": ..., "tcp4_gbps": ...,
#      "udp1300_gbps": ..., "udp100_kpps": ..., "ping_load_p99_ms": ...,
#      "gateway_cores_tcp1": ..., "gbit_per_gateway_cpu_s": ..., ...}, ...],
#    "ratios": {...}, "failures": [...]}
# with the contenders in the order above; scripts/check-compare.sh checks it.
#
# Runs as root on Debian 12; installs its apt packages if missing (apt-get
# update only then) and boringtun-cli with cargo into target/tools if missing;
# builds corridor (cargo build --release). Everything it starts (gateways,
# clients, iperf3, namespaces, routes, work directory) is removed on exit,
# failure, Ctrl-C and TERM.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# wait_for, alive, gone, stop_pid, listening
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# step, info, warn, die, on_exit, strip_ansi
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
# gateway_config, corridor_start, corridor_stop
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"
# shellcheck source=scripts/ocserv-peer.sh
source "$SCRIPTS/ocserv-peer.sh"
# shellcheck source=scripts/openvpn-peer.sh
source "$SCRIPTS/openvpn-peer.sh"
# shellcheck source=scripts/boringtun-peer.sh
source "$SCRIPTS/boringtun-peer.sh"

# corridor-plain (offloads = false), corridor-epoll (io = "readiness"),
# corridor-1shard (shards = 1) and corridor-nosteer (steering = false) are
# corridor's own A/B variants: measured only when --only names them.
ALL_CONTENDERS=(baseline corridor corridor-plain corridor-epoll corridor-1shard corridor-nosteer corridor-connect ocserv
    ocserv-connect openvpn boringtun)
DEFAULT_CONTENDERS=(baseline corridor ocserv openvpn boringtun)

PREFIX="cp"
ROUNDS=3
TEST_SECONDS=10
JSON_OUT=""
KEEP=0
BENCH_DEVICES=100
BENCH_DEVICES_SET=""
PASSWD_ITERATIONS=5000
CONTENDERS=("${DEFAULT_CONTENDERS[@]}")

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
UDP_SMALL_RATE=500M
UDP_SMALL_LEN=100
PING_INTERVAL=0.01
REFLECT_PORT=9001
BENCH_RATE=1000
TESTS=(tcp1 tcp4 tcp_down udp1300 udp100 ping_load)

BORINGTUN_VERSION=0.7.1
TOOLS="$REPO/target/tools"
BORINGTUN="$TOOLS/bin/boringtun-cli"
BORINGTUN_THREADS="$(nproc)"
# ocserv's session limit (64 in scripts/ocserv-peer.sh) must not cap the fleets.
export OCSERV_PEER_MAX_CLIENTS=1024
# The pools are fixed here: a wider CORRIDOR_POOL (scripts/bench.sh) in the
# environment would overlap OpenVPN's and boringtun's.
unset CORRIDOR_POOL
export OCSERV_PEER_POOL="$POOL"

APT_PACKAGES=(iperf3 ocserv openconnect vpnc-scripts openvpn wireguard-tools iproute2 iputils-ping
    openssl curl python3 procps)

usage() {
    sed -n '/^#   sudo bash/,/^#                      counters); it is also kept/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --seconds) TEST_SECONDS="${2:?}"; shift 2 ;;
    --quick) ROUNDS=1; TEST_SECONDS=3; [ -n "$BENCH_DEVICES_SET" ] || BENCH_DEVICES=20; shift ;;
    --json) JSON_OUT="${2:?}"; shift 2 ;;
    --only) IFS=, read -r -a CONTENDERS <<<"${2:?}"; shift 2 ;;
    --prefix) PREFIX="${2:?}"; shift 2 ;;
    --bench-devices) BENCH_DEVICES="${2:?}"; BENCH_DEVICES_SET=1; shift 2 ;;
    --passwd-iterations) PASSWD_ITERATIONS="${2:?}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds wants a positive integer" >&2; exit 2; }
[[ "$TEST_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "--seconds wants a positive integer" >&2; exit 2; }
[[ "$BENCH_DEVICES" =~ ^[1-9][0-9]*$ ]] || { echo "--bench-devices wants a positive integer" >&2; exit 2; }
[ -z "$PASSWD_ITERATIONS" ] || [[ "$PASSWD_ITERATIONS" =~ ^[1-9][0-9]*$ ]] ||
    { echo "--passwd-iterations wants a positive integer" >&2; exit 2; }
[[ "$PREFIX" =~ ^[a-z0-9]{0,8}$ ]] || { echo "--prefix: up to 8 of [a-z0-9] (it names namespaces and interfaces)" >&2; exit 2; }
# Keep the given subset in the canonical order.
declare -A WANTED=()
for c in "${CONTENDERS[@]}"; do
    case " ${ALL_CONTENDERS[*]} " in *" $c "*) WANTED[$c]=1 ;; *) echo "unknown contender: $c" >&2; exit 2 ;; esac
done
CONTENDERS=()
for c in "${ALL_CONTENDERS[@]}"; do [ -n "${WANTED[$c]:-}" ] && CONTENDERS+=("$c"); done
[ "${#CONTENDERS[@]}" -gt 0 ] || { echo "--only: no contender left" >&2; exit 2; }
# --json FILE relative to where the script was started.
if [ -n "$JSON_OUT" ]; then
    case "$JSON_OUT" in /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
fi

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
CLK_TCK="$(getconf CLK_TCK)"
read -r BT_GW_IF BT_DEV_IF <<<"$(boringtun_peer_ifnames "$PREFIX")"

# Filled in as the run goes; read by cleanup.
WORK=""
CORRIDOR=""
TOPOLOGY_UP=""
IPERF_SERVER_PID=""
REFLECT_PID=""
OPENCONNECT_PID=""
CORRIDOR_PID=""
OCSERV_RUNDIR=""
OPENVPN_RUNDIR=""
BORINGTUN_RUNDIR=""
BASELINE_ROUTES=""
# The device-side tunnel process(es) of the contender being measured and the
# processes whose death means its tunnel is gone.
CLIENT_PIDS=""
TUNNEL_PIDS=""
FAILURES=0
FAILED_WHAT=()

has_contender() { [[ " ${CONTENDERS[*]} " == *" $1 "* ]]; }
has_openconnect_gateway() { [[ " ${CONTENDERS[*]} " == *" corridor"* || " ${CONTENDERS[*]} " == *" ocserv"* ]]; }
# corridor-connect, ocserv-connect: the device is `corridor connect`, not openconnect.
uses_corridor_client() { [[ "$1" == *-connect ]]; }

# ---------------------------------------------------------------------------
# helpers

now() { date +%s.%N; }

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
# (the client on the device, the gateway on its side); a namespace's
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

meta() { # CONTENDER KEY VALUE
    printf '%s\t%s\n' "$2" "$3" >>"$WORK/$1/meta.tsv"
}

# ---------------------------------------------------------------------------
# teardown (on_exit)

cleanup() { # RC
    local rc="$1"
    step "cleaning up"
    stop_pid "$OPENCONNECT_PID" 5
    corridor_stop CORRIDOR_PID 10
    [ -n "$OCSERV_RUNDIR" ] && ocserv_peer_stop "$OCSERV_RUNDIR"
    [ -n "$OPENVPN_RUNDIR" ] && openvpn_peer_stop "$OPENVPN_RUNDIR"
    [ -n "$BORINGTUN_RUNDIR" ] && boringtun_peer_stop "$BORINGTUN_RUNDIR"
    stop_pid "$REFLECT_PID" 3
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
}

# ---------------------------------------------------------------------------
# setup

install_packages() {
    step "packages: ${APT_PACKAGES[*]}"
    # Services the packages may start (ocserv's, openvpn's) live in the host
    # namespace and do not meet the copies this script runs in ${PREFIX}gateway.
    install_missing "${APT_PACKAGES[@]}"
}

find_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "${HOME:-/root}/.cargo/bin/cargo" ] || die "cargo not found: install a Rust toolchain (https://rustup.rs)"
        PATH="${HOME:-/root}/.cargo/bin:$PATH"
    fi
}

# boringtun-cli into target/tools, once (cargo install builds it in a
# temporary directory of its own; about a minute on 2 cores).
install_boringtun() {
    step "boringtun-cli $BORINGTUN_VERSION ($BORINGTUN)"
    if [ -x "$BORINGTUN" ] && [ "$("$BORINGTUN" --version 2>/dev/null)" = "boringtun $BORINGTUN_VERSION" ]; then
        info "present: $("$BORINGTUN" --version)"
        return 0
    fi
    find_cargo
    info "installing with cargo install (once)"
    cargo install boringtun-cli --version "=$BORINGTUN_VERSION" --locked --root "$TOOLS" --quiet ||
        die "cargo install boringtun-cli $BORINGTUN_VERSION failed"
    [ -x "$BORINGTUN" ] || die "cargo install left no $BORINGTUN"
}

build_gateway() {
    step "building corridor (cargo build --release)"
    find_cargo
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
    CORRIDOR="$REPO/target/release/corridor"
    [ -x "$CORRIDOR" ] || die "build produced no $CORRIDOR"
}

bring_up() {
    step "topology $NS_DEVICE / $NS_GATEWAY / $NS_ORG, certificates, iperf3 server"
    WORK="$(mktemp -d /tmp/corridor-compare.XXXXXX)"
    # ocserv's workers (user nobody) must be able to traverse into its run dir.
    chmod 711 "$WORK"
    local c
    for c in "${CONTENDERS[@]}"; do mkdir -p "$WORK/$c"; done
    : >"$WORK/samples.tsv"
    # A run killed hard may have left the namespaces behind.
    "$SCRIPTS/topology.sh" down "$PREFIX"
    TOPOLOGY_UP=1
    "$SCRIPTS/topology.sh" up "$PREFIX"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    chmod 755 "$WORK/certs"
    PERF_PASSWORD="$(openssl rand -hex 12)"
    start_iperf_server
    if has_openconnect_gateway; then start_reflector; fi
    info "work directory $WORK"
}

start_iperf_server() {
    stop_pid "$IPERF_SERVER_PID" 3
    # `ip netns exec` execs iperf3, so $! is the server itself.
    ip netns exec "$NS_ORG" iperf3 -s -B "$ORG_IP" </dev/null >>"$WORK/iperf3-server.log" 2>&1 &
    IPERF_SERVER_PID=$!
    wait_for 10 listening "$NS_ORG" tcp 5201 || die "iperf3 server did not listen on $ORG_IP:5201"
}

start_reflector() {
    ip netns exec "$NS_ORG" "$CORRIDOR" bench reflect --listen "$ORG_IP:$REFLECT_PORT" \
        </dev/null >"$WORK/reflect.log" 2>&1 &
    REFLECT_PID=$!
    wait_for 10 listening "$NS_ORG" udp "$REFLECT_PORT" ||
        { cat "$WORK/reflect.log" >&2; die "corridor bench reflect did not listen on $ORG_IP:$REFLECT_PORT"; }
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

# Traffic to the org really takes DEV: the route says so and a ping answers.
verify_path() { # CONTENDER DEV
    local route
    route="$(ip -n "$NS_DEVICE" route get "$ORG_IP" 2>&1)" || true
    if ! grep -q "dev $2 " <<<"$route "; then
        warn "$1: $ORG_IP is not routed over $2 in $NS_DEVICE: $route"
        return 1
    fi
    if ! ip netns exec "$NS_DEVICE" ping -n -c 3 -i 0.2 -W 2 "$ORG_IP" >"$WORK/$1/ping-check.log" 2>&1; then
        warn "$1: no ping from $NS_DEVICE to $ORG_IP over $2:"
        cat "$WORK/$1/ping-check.log" >&2
        return 1
    fi
    meta "$1" path_dev "$2"
}

# The corridor variant being measured: corridor, corridor-plain or corridor-epoll.
CORRIDOR_NAME=corridor

is_corridor() { [[ "$1" == corridor* ]]; }

write_corridor_config() {
    local dir="$WORK/$CORRIDOR_NAME" variant=() shards=0
    mkdir -p "$dir"
    case "$CORRIDOR_NAME" in
        corridor-plain) variant=(dataplane.offloads=false) ;;
        corridor-epoll) variant=(dataplane.io=readiness) ;;
        corridor-1shard) shards=1 ;;
        corridor-nosteer) variant=(dataplane.steering=false) ;;
    esac
    # The gateway's dataplane defaults, written out: one shard per core (0), each pinned.
    gateway_config "$dir/gateway.toml" written_by=scripts/compare-peers.sh \
        server.name=corridor-compare server.listen="$GATEWAY_IP:443" server.dtls_port=443 \
        server.cert="$WORK/certs/server.crt" server.key="$WORK/certs/server.key" auth.password_file=passwd \
        network.pool="$POOL" network.tun_name=corridor0 dataplane.shards="$shards" dataplane.pin_cores=true \
        "${variant[@]}" group.name="$PERF_GROUP" group.allowed="$ORG_NET" group.split_include="$ORG_NET" \
        admin.listen="$ADMIN_LISTEN" admin.ctl_socket=ctl.sock "${LOAD_GENERATOR_LIMITS[@]}" || return 1
    local -a iter=()
    [ -n "$PASSWD_ITERATIONS" ] && iter=(--iterations "$PASSWD_ITERATIONS")
    printf '%s\n' "$PERF_PASSWORD" |
        "$CORRIDOR" passwd --file "$dir/passwd" "$PERF_USER" --group "$PERF_GROUP" "${iter[@]}" >/dev/null || return 1
    # user:pbkdf2-sha256:ITERATIONS:salt:hash[:group]
    meta corridor password_hash "$(awk -F: -v u="$PERF_USER" '$1 == u { print $2 " " $3 " iterations"; exit }' "$dir/passwd")"
}

start_corridor() {
    local dir="$WORK/$CORRIDOR_NAME"
    write_corridor_config || { warn "corridor passwd failed"; return 1; }
    # Plain log lines (NO_COLOR); up once it logs "gateway started", which it
    # does once it listens on TCP and UDP 443.
    local rc=0
    corridor_start gateway CORRIDOR_PID "$NS_GATEWAY" "$dir/gateway.toml" "$dir/gateway.log" || rc=$?
    if [ "$rc" -eq 2 ]; then
        warn "corridor exited during start-up; log tail:"
        strip_ansi "$dir/gateway.log" | tail -n 20 >&2
        return 1
    fi
    [ "$rc" -eq 0 ] || { warn "corridor not listening on TCP+UDP 443 within 20 s"; return 1; }
    meta "$CORRIDOR_NAME" gateway_version "$("$CORRIDOR" --version 2>/dev/null | head -n 1)"
    info "corridor pid $CORRIDOR_PID listening; $(strip_ansi "$dir/gateway.log" | grep -m1 -o 'shards=[^ ]*' || true)"
}

stop_corridor() {
    [ -n "$CORRIDOR_PID" ] || return 0
    save_corridor_metrics after
    corridor_stop CORRIDOR_PID 10 || warn "corridor still running 10 s after SIGTERM; killing"
}

save_corridor_metrics() { # TAG
    ip netns exec "$NS_GATEWAY" curl -s --max-time 5 "http://$ADMIN_LISTEN/metrics" \
        >"$WORK/$CORRIDOR_NAME/metrics-$1.txt" 2>/dev/null || warn "could not read corridor metrics ($1)"
}

start_ocserv() {
    OCSERV_RUNDIR="$WORK/ocserv/run"
    OCSERV_PEER_DEBUG=1 ocserv_peer_start "$PREFIX" "$WORK/certs" "$OCSERV_RUNDIR" "$PERF_PASSWORD" || return 1
    meta ocserv gateway_version "$(ocserv --version 2>&1 | head -n 1)"
    # ocpasswd's crypt(3) hash: $5$ = SHA-256-crypt, 5000 rounds unless "rounds=" says otherwise.
    meta ocserv password_hash "$(awk -F: '$1 == "alice" { split($3, p, "$"); print (p[2] == "5" ? "sha256-crypt" : p[2] == "6" ? "sha512-crypt" : "crypt $" p[2] "$"), (p[3] ~ /^rounds=/ ? substr(p[3], 8) : 5000), "rounds"; exit }' "$OCSERV_RUNDIR/ocpasswd")"
    info "ocserv pid $(cat "$OCSERV_RUNDIR/ocserv.main.pid") listening"
}

stop_ocserv() {
    [ -n "$OCSERV_RUNDIR" ] || return 0
    ocserv_peer_stop "$OCSERV_RUNDIR"
    OCSERV_RUNDIR=""
}

# The device: openconnect, or `corridor connect` for the *-connect
# contenders, with the same flags; up once its log says DTLS is and the TUN
# has its pool address.
connect_client() { # CONTENDER
    local name="$1" log="$WORK/$1/openconnect.log" rc=0 line who up suite
    local -a client
    mkdir -p "$WORK/$name"
    if uses_corridor_client "$name"; then
        who="corridor connect" up='DTLS up'
        client=("$CORRIDOR" connect)
    else
        who=openconnect up='Established DTLS connection'
        client=(openconnect --protocol=anyconnect --non-inter -v --timestamp)
    fi
    printf '%s\n' "$PERF_PASSWORD" |
        timeout 60 ip netns exec "$NS_DEVICE" "${client[@]}" --user "$PERF_USER" --passwd-on-stdin \
            --cafile "$WORK/certs/ca.crt" --interface "$DEVICE_TUN" \
            --background --pid-file "$WORK/$name/openconnect.pid" "https://$GATEWAY_IP/" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        warn "$who could not connect (exit $rc); log tail:"
        tail -n 15 "$log" >&2
        return 1
    fi
    OPENCONNECT_PID="$(cat "$WORK/$name/openconnect.pid")"
    if ! wait_for 20 grep -q "$up" "$log"; then
        warn "$who did not establish DTLS within 20 s; log tail:"
        tail -n 15 "$log" >&2
        return 1
    fi
    if ! wait_for 20 bash -c "ip -n $NS_DEVICE -4 addr show dev $DEVICE_TUN 2>/dev/null | grep -qF 'inet $POOL_PREFIX'"; then
        warn "no tunnel address from $POOL on $DEVICE_TUN within 20 s"
        return 1
    fi
    line="$(grep -m1 "$up" "$log")"
    if uses_corridor_client "$name"; then
        suite="$(grep -o 'suite=[A-Z0-9_]*' <<<"$line" | sed 's/^suite=//')"
    else
        suite="$(grep -o 'Ciphersuite .*' <<<"$line" | sed 's/^Ciphersuite //; s/\.$//')"
        meta "$name" tls "$(grep -m1 -o 'with ciphersuite .*' "$log" | sed 's/^with ciphersuite //' || true)"
    fi
    meta "$name" dtls "$suite"
    meta "$name" tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$DEVICE_TUN/mtu")"
    meta "$name" tunnel_addr "$(ip -n "$NS_DEVICE" -4 -o addr show dev "$DEVICE_TUN" | awk '{print $4}')"
    info "$who pid $OPENCONNECT_PID: $(ip -n "$NS_DEVICE" -4 -o addr show dev "$DEVICE_TUN" | awk '{print $4}') on $DEVICE_TUN," \
        "MTU $(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$DEVICE_TUN/mtu"), DTLS $suite"
}

disconnect_client() { # CONTENDER
    [ -n "$OPENCONNECT_PID" ] || return 0
    local log="$WORK/$1/openconnect.log"
    # How often DTLS came up during the run (more than once = it was lost and
    # re-established, with CSTP carrying the data in between).
    meta "$1" dtls_established_count "$(grep -c 'Established DTLS connection\|DTLS up' "$log" || true)"
    stop_pid "$OPENCONNECT_PID" 5
    OPENCONNECT_PID=""
    CLIENT_PIDS=""
    TUNNEL_PIDS=""
    wait_for 5 bash -c "! ip -n $NS_DEVICE link show dev $DEVICE_TUN >/dev/null 2>&1" ||
        warn "$DEVICE_TUN still present after openconnect exited"
}

start_openvpn() {
    OPENVPN_RUNDIR="$WORK/openvpn/run"
    openvpn_peer_start "$PREFIX" "$WORK/certs" "$OPENVPN_RUNDIR" || return 1
    local s c
    s="$(openvpn_peer_server_pid "$OPENVPN_RUNDIR")"
    c="$(openvpn_peer_client_pid "$OPENVPN_RUNDIR")"
    CLIENT_PIDS="$c"
    TUNNEL_PIDS="$s $c"
    meta openvpn gateway_version "$(openvpn --version 2>/dev/null | head -n 1 | awk '{print $1, $2}')"
    meta openvpn data_channel "$(grep -m1 -o "Data Channel: cipher '[^']*'" "$OPENVPN_RUNDIR/client.log" | sed "s/.*cipher '//; s/'$//")"
    meta openvpn tls "$(grep -m1 -o 'Control Channel: [^,]*, cipher [^,]*' "$OPENVPN_RUNDIR/client.log" | sed 's/^Control Channel: //' || true)"
    meta openvpn tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$OPENVPN_PEER_DEV_IF/mtu")"
    meta openvpn tunnel_addr "$(ip -n "$NS_DEVICE" -4 -o addr show dev "$OPENVPN_PEER_DEV_IF" | awk '{print $4}')"
    info "openvpn server pid $s, client pid $c: $(ip -n "$NS_DEVICE" -4 -o addr show dev "$OPENVPN_PEER_DEV_IF" | awk '{print $4}')" \
        "on $OPENVPN_PEER_DEV_IF, MTU $(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$OPENVPN_PEER_DEV_IF/mtu")," \
        "data channel $(grep -m1 -o "Data Channel: cipher '[^']*'" "$OPENVPN_RUNDIR/client.log" | sed "s/.*cipher '//; s/'$//")"
}

stop_openvpn() {
    [ -n "$OPENVPN_RUNDIR" ] || return 0
    # Still the cipher it started with (a renegotiation would log it again).
    meta openvpn data_channel_lines "$(grep -c "Data Channel: cipher" "$OPENVPN_RUNDIR/client.log" || true)"
    openvpn_peer_stop "$OPENVPN_RUNDIR"
    OPENVPN_RUNDIR=""
    CLIENT_PIDS=""
    TUNNEL_PIDS=""
}

start_boringtun() {
    BORINGTUN_RUNDIR="$WORK/boringtun/run"
    boringtun_peer_start "$PREFIX" "$BORINGTUN_RUNDIR" "$BORINGTUN" "$BORINGTUN_THREADS" || return 1
    local g d
    g="$(boringtun_peer_gateway_pid "$BORINGTUN_RUNDIR")"
    d="$(boringtun_peer_device_pid "$BORINGTUN_RUNDIR")"
    CLIENT_PIDS="$d"
    TUNNEL_PIDS="$g $d"
    meta boringtun gateway_version "$("$BORINGTUN" --version 2>/dev/null), threads $BORINGTUN_THREADS"
    meta boringtun data_channel "WireGuard (ChaCha20-Poly1305)"
    meta boringtun tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$BT_DEV_IF/mtu")"
    meta boringtun tunnel_addr "$(ip -n "$NS_DEVICE" -4 -o addr show dev "$BT_DEV_IF" | awk '{print $4}')"
    info "boringtun pids $g (gateway) $d (device), $BORINGTUN_THREADS threads each: handshake done," \
        "$(ip -n "$NS_DEVICE" -4 -o addr show dev "$BT_DEV_IF" | awk '{print $4}') on $BT_DEV_IF, MTU $(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$BT_DEV_IF/mtu")"
}

stop_boringtun() {
    [ -n "$BORINGTUN_RUNDIR" ] || return 0
    ip netns exec "$NS_DEVICE" wg show "$BT_DEV_IF" >"$BORINGTUN_RUNDIR/wg-device-end.txt" 2>&1 || true
    ip netns exec "$NS_GATEWAY" wg show "$BT_GW_IF" >"$BORINGTUN_RUNDIR/wg-gateway-end.txt" 2>&1 || true
    boringtun_peer_stop "$BORINGTUN_RUNDIR"
    BORINGTUN_RUNDIR=""
    CLIENT_PIDS=""
    TUNNEL_PIDS=""
}

# ---------------------------------------------------------------------------
# measurement

# One test (an iperf3 run; for ping_load an iperf3 run with ping beside it)
# with CPU samples around it; a line in samples.tsv.
run_test() { # CONTENDER ROUND TEST
    local name="$1" round="$2" test="$3" out rc=0 iperf_pid pings
    local -a args=()
    case "$test" in
    tcp1 | ping_load) ;;
    tcp4) args=(-P 4) ;;
    tcp_down) args=(-R) ;;
    udp1300) args=(-u -b "$UDP_RATE" -l "$UDP_LEN") ;;
    udp100) args=(-u -b "$UDP_SMALL_RATE" -l "$UDP_SMALL_LEN") ;;
    esac
    out="$WORK/$name/r$round-$test.json"

    local gw0 gw1 cl0 cl1 m0 m1 t0 t1 pids0 pids1
    snapshot_counters "$out.counters-before"
    pids0="$([ "$name" = baseline ] || gateway_pids)"
    t0="$(now)"
    m0="$(machine_busy_ticks)"
    # shellcheck disable=SC2086 # word-split PID lists
    gw0="$(proc_ticks $pids0)"
    # shellcheck disable=SC2086
    cl0="$(proc_ticks $CLIENT_PIDS)"

    if [ "$test" = ping_load ]; then
        timeout $((TEST_SECONDS + 30)) ip netns exec "$NS_DEVICE" \
            iperf3 -c "$ORG_IP" -t "$TEST_SECONDS" -J --connect-timeout 5000 \
            >"$out" 2>"$out.stderr" &
        iperf_pid=$!
        # Pings over the middle S-1 s of the transfer, 100 per second.
        pings=$(((TEST_SECONDS - 1) * 100))
        [ "$pings" -ge 50 ] || pings=50
        sleep 0.5
        ip netns exec "$NS_DEVICE" ping -n -i "$PING_INTERVAL" -c "$pings" -W 1 "$ORG_IP" \
            >"$out.ping" 2>&1 || true
        wait "$iperf_pid" || rc=$?
    else
        timeout $((TEST_SECONDS + 30)) ip netns exec "$NS_DEVICE" \
            iperf3 -c "$ORG_IP" -t "$TEST_SECONDS" -J --connect-timeout 5000 "${args[@]}" \
            >"$out" 2>"$out.stderr" || rc=$?
    fi

    pids1="$([ "$name" = baseline ] || gateway_pids)"
    # shellcheck disable=SC2086
    gw1="$(proc_ticks $pids1)"
    # shellcheck disable=SC2086
    cl1="$(proc_ticks $CLIENT_PIDS)"
    m1="$(machine_busy_ticks)"
    t1="$(now)"
    snapshot_counters "$out.counters-after"

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$test" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$([ "$name" = baseline ] && echo "" || echo $((gw1 - gw0)))" \
        "$([ -z "$CLIENT_PIDS" ] && echo "" || echo $((cl1 - cl0)))" \
        "$((m1 - m0))" \
        "$(echo "$pids1" | wc -w)" >>"$WORK/samples.tsv"

    # One progress line; exit status 1 when the test carried nothing.
    local ok=0
    python3 - "$out" "$test" "$rc" "$((gw1 - gw0))" "$CLK_TCK" "$name" <<'PY' || ok=$?
import json, re, sys
path, test, rc, gw, tck, name = sys.argv[1:7]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"    {test:9s} iperf3 exit {rc}, no JSON ({e})"); sys.exit(1)
if "error" in d:
    print(f"    {test:9s} iperf3 exit {rc}: {d['error']}"); sys.exit(1)
end = d["end"]
s = end["sum_received"]; secs = s["seconds"] or 1
if test.startswith("udp"):
    got = s["packets"] - s["lost_packets"]
    figure = (f"{got / secs / 1e3:8.1f} kpps" if test == "udp100" else f"{s['bits_per_second'] / 1e9:6.3f} Gbit/s") \
        + f", loss {s['lost_percent']:.2f} %"
    ok = got > 0
else:
    figure = f"{s['bits_per_second'] / 1e9:6.3f} Gbit/s, retr {end['sum_sent'].get('retransmits', '?')}"
    ok = s["bytes"] > 0
if test == "ping_load":
    times = []
    try:
        times = [float(m) for m in re.findall(r"time=([0-9.]+) ms", open(path + ".ping").read())]
    except OSError:
        pass
    if times:
        times.sort()
        p99 = times[max(0, -(-99 * len(times) // 100) - 1)]
        figure += f"; ping {len(times)} replies, p50 {times[len(times) // 2]:.3f} ms, p99 {p99:.3f} ms"
    else:
        figure += "; no ping replies"
        ok = False
cpu = "" if name == "baseline" else f", gateway {int(gw) / int(tck) / secs:.2f} cores"
print(f"    {test:9s} {figure}{cpu}")
sys.exit(0 if ok else 1)
PY
    if [ "$rc" -ne 0 ]; then
        warn "$name round $round $test: iperf3 exit $rc ($(tail -c 300 "$out.stderr" | tr '\n' ' '))"
        # A server left in the middle of a test refuses the next one: restart it.
        start_iperf_server
    fi
    sleep 0.5
    return "$ok"
}

tunnel_alive() {
    local pid
    for pid in $TUNNEL_PIDS; do alive "$pid" || return 1; done
    return 0
}

run_rounds() { # CONTENDER
    local name="$1" r t
    declare -A good=()
    for ((r = 1; r <= ROUNDS; r++)); do
        info "$name round $r/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        for t in "${TESTS[@]}"; do
            if ! tunnel_alive; then
                warn "a $name tunnel process is gone; skipping the rest of $name"
                return 1
            fi
            if run_test "$name" "$r" "$t"; then good[$t]=$((${good[$t]:-0} + 1)); fi
        done
        is_corridor "$name" && save_corridor_metrics "r$r"
    done
    local missing=()
    for t in "${TESTS[@]}"; do [ -n "${good[$t]:-}" ] || missing+=("$t"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        warn "$name carried no traffic in: ${missing[*]} (every round)"
        return 1
    fi
    return 0
}

contender_failed() { # CONTENDER WHAT
    FAILURES=$((FAILURES + 1))
    FAILED_WHAT+=("$1: $2")
    meta "$1" status "failed: $2"
    warn "$1: $2"
}

# The project's load generator against the gateway now running (corridor or
# ocserv), once per round: handshake-storm, then udp-echo. Its figures and a
# verdict go to the work directory; returns non-zero if any run failed.
run_bench() { # CONTENDER
    local name="$1" r scenario out rc failed=0
    for ((r = 1; r <= ROUNDS; r++)); do
        for scenario in handshake-storm udp-echo; do
            out="$WORK/$name/r$r-bench-$scenario"
            rc=0
            printf '%s\n' "$PERF_PASSWORD" |
                timeout $((TEST_SECONDS + 120)) ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run "$scenario" \
                    --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" \
                    --user "$PERF_USER" --password-stdin \
                    --devices "$BENCH_DEVICES" --rate "$BENCH_RATE" --seconds "$TEST_SECONDS" \
                    --reflector "$ORG_IP:$REFLECT_PORT" --json "$out.json" \
                    >"$out.log" 2>&1 || rc=$?
            if ! python3 - "$out.json" "$scenario" "$rc" "$BENCH_DEVICES" <<'PY'; then
import json, sys
path, scenario, rc, devices = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def pct(h, p):
    for e in (h or {}).get("percentiles", []):
        if e["percentile"] == p:
            return e["value"]
    return None
try:
    d = json.load(open(path))
except Exception as e:
    print(f"    bench {scenario}: exit {rc}, no JSON result ({e})"); sys.exit(1)
f, h = d.get("figures", {}), d.get("histograms", {})
why = []
if rc != 0:
    why.append(f"exit {rc}")
if f.get("devices_up", 0) < devices:
    why.append(f"{f.get('devices_up', 0)}/{devices} devices up")
if f.get("failures", 0):
    why.append(f"{f['failures']} failures (first: {f.get('first_failure', '?')})")
tt = h.get("time_to_tunnel_us")
line = f"    bench {scenario}: {f.get('devices_up', 0)}/{devices} up, time to tunnel p50 {pct(tt, 50.0)} µs p99 {pct(tt, 99.0)} µs"
if scenario == "handshake-storm":
    line += f", {f.get('handshakes_per_s', 0):.1f} handshakes/s"
else:
    rtt = h.get("rtt_us")
    line += (f"; echo {f.get('probes_received', 0)}/{f.get('probes_sent', 0)} back,"
             f" RTT p50 {pct(rtt, 50.0)} µs p99 {pct(rtt, 99.0)} µs")
    if not f.get("probes_received"):
        why.append("no echo came back")
print(line + ("" if not why else "  -- FAILED: " + "; ".join(why)))
sys.exit(1 if why else 0)
PY
                failed=1
                warn "$name: corridor bench run $scenario failed (round $r); log tail:"
                strip_ansi "$out.log" | tail -n 12 >&2
            fi
        done
    done
    return "$failed"
}

measure_baseline() {
    step "baseline: no tunnel (kernel forwarding in $NS_GATEWAY)"
    add_baseline_routes
    if ! verify_path baseline to-gw; then
        contender_failed baseline "no route device -> org"
    else
        meta baseline tunnel_mtu "$(ip netns exec "$NS_DEVICE" cat /sys/class/net/to-gw/mtu)"
        if run_rounds baseline; then meta baseline status ok; else contender_failed baseline "tests failed"; fi
    fi
    remove_baseline_routes
}

# corridor and ocserv: openconnect, the rounds, then the load generator.
measure_openconnect_gateway() { # CONTENDER
    local name="$1"
    if ! connect_client "$name"; then
        contender_failed "$name" "openconnect did not connect with DTLS"
        return
    fi
    CLIENT_PIDS="$OPENCONNECT_PID"
    if is_corridor "$name"; then
        TUNNEL_PIDS="$OPENCONNECT_PID $CORRIDOR_PID"
    else
        TUNNEL_PIDS="$OPENCONNECT_PID $(cat "$OCSERV_RUNDIR/ocserv.main.pid")"
    fi
    if ! verify_path "$name" "$DEVICE_TUN"; then
        contender_failed "$name" "the tunnel carries no ping"
        return
    fi
    is_corridor "$name" && save_corridor_metrics before
    if ! run_rounds "$name"; then
        contender_failed "$name" "tests failed or the tunnel died during the rounds"
        return
    fi
    disconnect_client "$name"
    if uses_corridor_client "$name"; then
        # The load generator measures gateways; it was run with openconnect's rows.
        meta "$name" status ok
        return
    fi
    info "$name: corridor bench run handshake-storm / udp-echo, $BENCH_DEVICES devices, $ROUNDS round(s)"
    if run_bench "$name"; then
        meta "$name" bench_status ok
    else
        contender_failed "$name" "load generator (corridor bench run) failed; see $WORK/$name/r*-bench-*.log"
        meta "$name" bench_status failed
        return
    fi
    meta "$name" status ok
}

measure_corridor() {
    CORRIDOR_NAME="${1:-corridor}"
    local name="$CORRIDOR_NAME"
    step "$name: target/release/corridor in $NS_GATEWAY, openconnect in $NS_DEVICE"
    if ! start_corridor; then
        contender_failed "$name" "gateway did not start"
    else
        measure_openconnect_gateway "$name"
    fi
    disconnect_client "$name"
    stop_corridor
    strip_ansi "$WORK/$name/gateway.log" >"$WORK/$name/gateway.clean.log" 2>/dev/null || true
    meta "$name" log_error_lines "$(grep -c '\bERROR\b' "$WORK/$name/gateway.clean.log" || true)"
    meta "$name" log_warn_lines "$(grep -c '\bWARN\b' "$WORK/$name/gateway.clean.log" || true)"
    CORRIDOR_NAME=corridor
}

measure_corridor-plain() { measure_corridor corridor-plain; }
measure_corridor-epoll() { measure_corridor corridor-epoll; }
measure_corridor-1shard() { measure_corridor corridor-1shard; }
measure_corridor-nosteer() { measure_corridor corridor-nosteer; }
measure_corridor-connect() { measure_corridor corridor-connect; }

measure_ocserv() { # [CONTENDER]
    local name="${1:-ocserv}"
    step "$name: $(ocserv --version 2>&1 | head -n 1) in $NS_GATEWAY, $(uses_corridor_client "$name" && echo 'corridor connect' || echo openconnect) in $NS_DEVICE"
    if ! start_ocserv; then
        contender_failed "$name" "gateway did not start"
    else
        measure_openconnect_gateway "$name"
    fi
    disconnect_client "$name"
    stop_ocserv
}

measure_ocserv-connect() { measure_ocserv ocserv-connect; }

measure_openvpn() {
    step "openvpn: $(openvpn --version 2>/dev/null | head -n 1 | awk '{print $1, $2}') server in $NS_GATEWAY, client in $NS_DEVICE (UDP, AES-256-GCM)"
    if ! start_openvpn; then
        contender_failed openvpn "did not start, connect or carry a ping with AES-256-GCM (logs above)"
    elif ! verify_path openvpn "$OPENVPN_PEER_DEV_IF"; then
        contender_failed openvpn "the tunnel carries no ping"
    elif run_rounds openvpn; then
        meta openvpn status ok
    else
        contender_failed openvpn "tests failed or the tunnel died during the rounds"
    fi
    stop_openvpn
}

measure_boringtun() {
    step "boringtun: $("$BORINGTUN" --version 2>/dev/null) in $NS_GATEWAY and $NS_DEVICE, --threads $BORINGTUN_THREADS"
    if ! start_boringtun; then
        contender_failed boringtun "did not start, hand-shake or carry a ping (logs above)"
    elif ! verify_path boringtun "$BT_DEV_IF"; then
        contender_failed boringtun "the tunnel carries no ping"
    elif run_rounds boringtun; then
        meta boringtun status ok
    else
        contender_failed boringtun "tests failed or the tunnel died during the rounds"
    fi
    stop_boringtun
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
        printf 'ocserv\t%s\n' "$(ocserv --version 2>&1 | head -n 1)"
        printf 'openvpn\t%s\n' "$(openvpn --version 2>/dev/null | head -n 1 | awk '{print $2}')"
        printf 'boringtun\t%s\n' "$( [ -x "$BORINGTUN" ] && "$BORINGTUN" --version 2>/dev/null)"
        printf 'boringtun_threads\t%s\n' "$BORINGTUN_THREADS"
        printf 'iperf3\t%s\n' "$(iperf3 --version 2>/dev/null | head -n 1)"
        printf 'clk_tck\t%s\n' "$CLK_TCK"
        printf 'rounds\t%s\n' "$ROUNDS"
        printf 'seconds\t%s\n' "$TEST_SECONDS"
        printf 'tests\t%s\n' "${TESTS[*]}"
        printf 'udp_rate\t%s\n' "$UDP_RATE"
        printf 'udp_len\t%s\n' "$UDP_LEN"
        printf 'udp_small_rate\t%s\n' "$UDP_SMALL_RATE"
        printf 'udp_small_len\t%s\n' "$UDP_SMALL_LEN"
        printf 'ping_interval_s\t%s\n' "$PING_INTERVAL"
        printf 'bench_devices\t%s\n' "$BENCH_DEVICES"
        printf 'bench_rate\t%s\n' "$BENCH_RATE"
    } >"$WORK/machine.tsv"
    printf '%s\n' "${FAILED_WHAT[@]}" >"$WORK/failures.txt"
}

report() {
    step "results"
    machine_info
    python3 - "$WORK" "$JSON_OUT" "${CONTENDERS[@]}" <<'PY'
import json, os, re, statistics, sys

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
failures = [l.strip() for l in open(os.path.join(work, "failures.txt")) if l.strip()]

def counters(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.strip().partition(" ")
            if v.lstrip("-").isdigit():
                out[k] = int(v)
    return out

def nearest_rank(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, -(-p * len(sorted_vals) // 100) - 1)
    return sorted_vals[min(k, len(sorted_vals) - 1)]

samples = {}
for line in open(os.path.join(work, "samples.tsv")):
    name, rnd, test, rc, wall, gw, cl, busy, npids = line.rstrip("\n").split("\t")
    rec = dict(rc=int(rc), wall_s=float(wall),
               gateway_cpu_s=None if gw == "" else int(gw) / tck,
               client_cpu_s=None if cl == "" else int(cl) / tck,
               machine_busy_cpu_s=int(busy) / tck,
               gateway_processes=int(npids) if gw != "" else None)
    path = os.path.join(work, name, f"r{rnd}-{test}.json")
    rec.update(gbps=None, gbit=None, kpps=None, loss_pct=None, error=None)
    try:
        d = json.load(open(path))
    except Exception as e:
        d = {"error": f"no iperf3 JSON ({e})"}
    if "error" in d:
        rec["error"] = d["error"]
    else:
        end = d["end"]
        # iperf3 3.12: sum_received is the server's side (bytes that arrived;
        # for UDP, datagrams by sequence number and those lost).
        s = end["sum_received"]
        secs = s["seconds"] or None
        rec.update(gbit=s["bytes"] * 8 / 1e9, gbps=s["bits_per_second"] / 1e9, seconds=s["seconds"])
        if test.startswith("udp"):
            got = s["packets"] - s["lost_packets"]
            rec.update(loss_pct=s["lost_percent"], packets=s["packets"], lost_packets=s["lost_packets"],
                       received_packets=got, kpps=(got / secs / 1e3) if secs else None,
                       sent_datagrams=end["sum_sent"]["packets"],
                       offered_gbps=end["sum_sent"]["bits_per_second"] / 1e9)
            if got <= 0:
                rec.update(gbps=None, kpps=None, error="no datagram arrived")
        else:
            rec["retransmits"] = end.get("sum_sent", {}).get("retransmits")
            if s["bytes"] <= 0:
                rec.update(gbps=None, error="no byte arrived")
    if test == "ping_load":
        times, sent, recv = [], None, None
        try:
            text = open(path + ".ping").read()
            times = sorted(float(m) for m in re.findall(r"time=([0-9.]+) ms", text))
            m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
            if m:
                sent, recv = int(m.group(1)), int(m.group(2))
        except OSError:
            pass
        rec.update(ping_replies=len(times), ping_p50_ms=nearest_rank(times, 50), ping_p99_ms=nearest_rank(times, 99),
                   ping_max_ms=times[-1] if times else None,
                   ping_loss_pct=(100.0 * (sent - recv) / sent) if sent else None)
    before, after = (counters(f"{path}.counters-{w}") for w in ("before", "after"))
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) != 0}
    rec["counters"] = delta
    tunnel_link = lambda k, side, skip: (k.startswith(f"{side}_link_") and k.endswith("_tx_dropped")
                                         and not any(k.startswith(f"{side}_link_{s}_") for s in skip))
    rec["drops"] = {
        "device_tun_tx_dropped": sum(v for k, v in delta.items() if tunnel_link(k, "device", ("to-gw",))),
        "device_udp_rcvbuf_errors": delta.get("device_udp_RcvbufErrors", 0),
        "gateway_udp_rcvbuf_errors": delta.get("gateway_udp_RcvbufErrors", 0),
        "gateway_tun_tx_dropped": sum(v for k, v in delta.items() if tunnel_link(k, "gateway", ("to-dev", "to-org"))),
        "veth_dropped": sum(v for k, v in delta.items() if "_link_to-" in k),
        "org_udp_rcvbuf_errors": delta.get("org_udp_RcvbufErrors", 0),
    }
    if rec["gateway_cpu_s"] is not None:
        rec["gateway_cpu_cores"] = rec["gateway_cpu_s"] / rec["wall_s"]
        rec["gbit_per_gateway_cpu_s"] = (rec["gbit"] / rec["gateway_cpu_s"]
                                         if rec["gbit"] is not None and rec["gateway_cpu_s"] > 0 else None)
    else:
        rec["gateway_cpu_cores"] = rec["gbit_per_gateway_cpu_s"] = None
    rec["client_cpu_cores"] = rec["client_cpu_s"] / rec["wall_s"] if rec["client_cpu_s"] is not None else None
    rec["machine_busy_cores"] = rec["machine_busy_cpu_s"] / rec["wall_s"]
    samples.setdefault(name, {}).setdefault(int(rnd), {})[test] = rec

def bench_figures(name, rnd):
    def pct(h, p):
        for e in (h or {}).get("percentiles", []):
            if e["percentile"] == p:
                return e["value"]
        return None
    out = {}
    try:
        d = json.load(open(os.path.join(work, name, f"r{rnd}-bench-handshake-storm.json")))
        f, h = d["figures"], d["histograms"]
        out.update(bench_handshakes_per_s=f.get("handshakes_per_s"),
                   bench_devices_up=f.get("devices_up"), bench_handshake_failures=f.get("failures"),
                   bench_time_to_tunnel_p50_us=pct(h.get("time_to_tunnel_us"), 50.0),
                   bench_time_to_tunnel_p99_us=pct(h.get("time_to_tunnel_us"), 99.0),
                   bench_storm_generator_cores=f.get("generator_cores", f.get("generator_cpu_share")))
    except Exception:
        pass
    try:
        d = json.load(open(os.path.join(work, name, f"r{rnd}-bench-udp-echo.json")))
        f, h = d["figures"], d["histograms"]
        sent = f.get("probes_sent") or 0
        out.update(bench_udp_echo_p50_us=pct(h.get("rtt_us"), 50.0),
                   bench_udp_echo_p99_us=pct(h.get("rtt_us"), 99.0),
                   bench_udp_echo_p999_us=pct(h.get("rtt_us"), 99.9),
                   bench_udp_echo_sent=sent, bench_udp_echo_received=f.get("probes_received"),
                   bench_udp_echo_loss_pct=(100.0 * (f.get("loss") or 0) / sent) if sent else None,
                   bench_echo_generator_cores=f.get("generator_cores", f.get("generator_cpu_share")))
    except Exception:
        pass
    return out

BENCH_KEYS = ["bench_handshakes_per_s", "bench_time_to_tunnel_p50_us", "bench_time_to_tunnel_p99_us",
              "bench_udp_echo_p50_us", "bench_udp_echo_p99_us", "bench_udp_echo_p999_us", "bench_udp_echo_loss_pct",
              "bench_devices_up", "bench_handshake_failures",
              "bench_storm_generator_cores", "bench_echo_generator_cores"]
KEYS = ["tcp1_gbps", "tcp4_gbps", "tcp_down_gbps", "udp1300_gbps", "udp1300_loss_pct", "udp100_kpps",
        "udp100_loss_pct", "ping_load_p50_ms", "ping_load_p99_ms", "ping_load_loss_pct", "ping_load_tcp1_gbps",
        "gateway_cores_tcp1", "gbit_per_gateway_cpu_s", "client_cores_tcp1", "machine_busy_cores_tcp1"]

def per_round(name):
    rows = []
    for rnd, tests in sorted(samples.get(name, {}).items()):
        g = lambda t, k: tests.get(t, {}).get(k)
        row = {"round": rnd,
               "tcp1_gbps": g("tcp1", "gbps"), "tcp4_gbps": g("tcp4", "gbps"), "tcp_down_gbps": g("tcp_down", "gbps"),
               "udp1300_gbps": g("udp1300", "gbps"), "udp1300_loss_pct": g("udp1300", "loss_pct"),
               "udp100_kpps": g("udp100", "kpps"), "udp100_loss_pct": g("udp100", "loss_pct"),
               "ping_load_p50_ms": g("ping_load", "ping_p50_ms"), "ping_load_p99_ms": g("ping_load", "ping_p99_ms"),
               "ping_load_loss_pct": g("ping_load", "ping_loss_pct"), "ping_load_tcp1_gbps": g("ping_load", "gbps"),
               "gateway_cores_tcp1": g("tcp1", "gateway_cpu_cores"),
               "gbit_per_gateway_cpu_s": g("tcp1", "gbit_per_gateway_cpu_s"),
               "client_cores_tcp1": g("tcp1", "client_cpu_cores"),
               "machine_busy_cores_tcp1": g("tcp1", "machine_busy_cores")}
        if name.startswith("corridor") or name == "ocserv":
            row.update(bench_figures(name, rnd))
        row["tests"] = tests
        rows.append(row)
    # Load-generator rounds exist even where no iperf3 round left a sample line.
    return rows

def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

DETAIL = ("gbps", "kpps", "loss_pct", "gateway_cpu_cores", "client_cpu_cores", "machine_busy_cores",
          "gbit_per_gateway_cpu_s", "retransmits")
DROPS = ["device_tun_tx_dropped", "gateway_udp_rcvbuf_errors", "gateway_tun_tx_dropped",
         "device_udp_rcvbuf_errors", "org_udp_rcvbuf_errors", "veth_dropped"]
tests_run = machine["tests"].split()

entries, by_name = [], {}
for name in contenders:
    rows = per_round(name)
    meta = tsv(os.path.join(work, name, "meta.tsv"))
    e = {"name": name}
    for k in KEYS:
        e[k] = median(r.get(k) for r in rows)
    # The load generator speaks OpenConnect: figures for corridor and ocserv,
    # null for the others (same keys everywhere).
    for k in BENCH_KEYS:
        e[k] = median(r.get(k) for r in rows) if name.startswith("corridor") or name == "ocserv" else None
    e["status"] = meta.get("status", "failed: did not finish")
    detail = {}
    for t in tests_run:
        detail[t] = {k: median(r["tests"].get(t, {}).get(k) for r in rows) for k in DETAIL}
        detail[t]["failed_runs"] = sum(1 for r in rows if r["tests"].get(t, {}).get("error"))
        detail[t]["drops"] = {k: median(r["tests"].get(t, {}).get("drops", {}).get(k) for r in rows) for k in DROPS}
    e["per_test"] = detail
    e["meta"] = meta
    e["rounds_detail"] = [{k: v for k, v in r.items() if k != "tests"} | {"tests": r["tests"]} for r in rows]
    entries.append(e)
    by_name[name] = e

RATIO_KEYS = ["tcp1_gbps", "tcp4_gbps", "tcp_down_gbps", "udp1300_gbps", "udp100_kpps", "ping_load_p99_ms"]
def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None
base = by_name.get("baseline")
for e in entries:
    e["ratio_to_baseline"] = {k: ratio(e[k], base[k]) for k in RATIO_KEYS} if base else None

COLS = [("tcp1_gbps", "tcp1 Gbit/s", 3), ("tcp4_gbps", "tcp4 Gbit/s", 3), ("tcp_down_gbps", "tcp down Gbit/s", 3),
        ("udp1300_gbps", "udp1300 Gbit/s", 3), ("udp1300_loss_pct", "udp1300 loss %", 1),
        ("udp100_kpps", "udp100 kpps", 1), ("udp100_loss_pct", "udp100 loss %", 1),
        ("ping_load_p99_ms", "ping p99 ms (tcp1 load)", 3),
        ("gateway_cores_tcp1", "gateway cores (tcp1)", 2), ("gbit_per_gateway_cpu_s", "Gbit per gateway CPU-s", 3)]
BASE_COLS = [("tcp1_gbps", "tcp1 ÷ base"), ("tcp4_gbps", "tcp4 ÷ base"), ("udp1300_gbps", "udp1300 ÷ base"),
             ("udp100_kpps", "udp100 ÷ base")]

def fmt(v, nd=3):
    return "n/a" if v is None else f"{v:.{nd}f}"

ratios = {}
for other in ("ocserv", "openvpn", "boringtun"):
    if "corridor" in by_name and other in by_name:
        a, b = by_name["corridor"], by_name[other]
        ratios[f"corridor/{other}"] = {k: ratio(a[k], b[k]) for k, _, _ in COLS}
if "corridor" in by_name and "ocserv" in by_name:
    ratios["corridor/ocserv"].update({k: ratio(by_name["corridor"].get(k), by_name["ocserv"].get(k)) for k in BENCH_KEYS[:7]})
# corridor's own A/B: what offloads and io_uring buy, same run.
for variant in ("corridor-plain", "corridor-epoll", "corridor-1shard", "corridor-nosteer"):
    if "corridor" in by_name and variant in by_name:
        a, b = by_name["corridor"], by_name[variant]
        ratios[f"corridor/{variant}"] = {k: ratio(a[k], b[k]) for k, _, _ in COLS}
        ratios[f"corridor/{variant}"].update({k: ratio(a.get(k), b.get(k)) for k in BENCH_KEYS[:7]})

print()
print(f"Medians of {machine['rounds']} round(s) x {machine['seconds']} s; commit {machine['commit']}"
      f"{' (work tree modified)' if machine['worktree_dirty'] == '1' else ''}; "
      f"{machine['nproc']} x {machine['cpu_model']}; kernel {machine['kernel']}")
print(f"openconnect {machine['openconnect']}; {machine['ocserv']}; OpenVPN {machine['openvpn']}; "
      f"{machine['boringtun']} ({machine['boringtun_threads']} threads); {machine['iperf3']}")
print()
print("| contender | " + " | ".join(h for _, h, _ in COLS) + " | " + " | ".join(h for _, h in BASE_COLS) + " | status |")
print("|---|" + "---:|" * (len(COLS) + len(BASE_COLS)) + "---|")
for e in entries:
    rb = e["ratio_to_baseline"] or {}
    print(f"| {e['name']} | " + " | ".join(fmt(e[k], nd) for k, _, nd in COLS) + " | "
          + " | ".join(fmt(rb.get(k), 3) for k, _ in BASE_COLS) + f" | {e['status']} |")
for label, r in ratios.items():
    print(f"| **{label}** | " + " | ".join(fmt(r[k], 2) for k, _, _ in COLS) + " | " + " | ".join("" for _ in BASE_COLS) + " | |")
print()
print("tcp1/tcp4/tcp down/udp1300: Gbit/s received by the iperf3 server; udp100: 100-byte datagrams received, kpps;")
print("loss: the iperf3 server's count. ping p99: RTT of pings every 10 ms during a tcp1 transfer.")
print("gateway cores: gateway processes' user+system CPU-s per wall-s in tcp1; Gbit per gateway CPU-s: tcp1's Gbit")
print("over those CPU-s. ÷ base: the contender's median over the baseline's. Ratio rows are plain quotients")
print("(for loss, ping and cores, lower is better).")

bench_rows = [e for e in entries if e["name"].startswith("corridor") or e["name"] == "ocserv"]
if bench_rows:
    print()
    print(f"Load generator (`corridor bench run`, {machine['bench_devices']} devices; udp-echo {machine['bench_rate']} probes/s"
          f" for {machine['seconds']} s), medians:")
    print()
    BCOLS = [("bench_handshakes_per_s", "handshakes/s", 1), ("bench_time_to_tunnel_p50_us", "time to tunnel p50 µs", 0),
             ("bench_time_to_tunnel_p99_us", "time to tunnel p99 µs", 0), ("bench_udp_echo_p50_us", "udp-echo RTT p50 µs", 0),
             ("bench_udp_echo_p99_us", "udp-echo RTT p99 µs", 0), ("bench_udp_echo_loss_pct", "echo loss %", 2),
             ("bench_storm_generator_cores", "generator cores (storm)", 2)]
    print("| contender | " + " | ".join(h for _, h, _ in BCOLS) + " | status |")
    print("|---|" + "---:|" * len(BCOLS) + "---|")
    for e in bench_rows:
        print(f"| {e['name']} | " + " | ".join(fmt(e.get(k), nd) for k, _, nd in BCOLS)
              + f" | {e['meta'].get('bench_status', 'not run')} |")
    for label in ("corridor/ocserv", "corridor/corridor-plain", "corridor/corridor-epoll", "corridor/corridor-1shard",
                  "corridor/corridor-nosteer"):
        if label in ratios:
            r = ratios[label]
            print(f"| **{label}** | " + " | ".join(fmt(r.get(k), 2) for k, _, _ in BCOLS) + " | |")
    print()
    print("Every login verifies the password: " + "; ".join(
        f"{e['name']} {e['meta'].get('password_hash', '?')}" for e in bench_rows)
        + ". time to tunnel: TCP connect to DTLS up, per device; generator cores: the generator's own CPU-s per wall-s.")

print()
print("Per test (medians): received | gateway cores | client cores | whole-machine busy cores | Gbit per gateway CPU-s")
print()
print("| contender | test | received | gateway_cores | client_cores | machine_busy_cores | gbit_per_gw_cpu_s | tcp_retransmits | failed_runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for e in entries:
    for t, d in e["per_test"].items():
        got = f"{fmt(d['kpps'], 1)} kpps" if t == "udp100" else f"{fmt(d['gbps'])} Gbit/s"
        print(f"| {e['name']} | {t} | {got} | {fmt(d['gateway_cpu_cores'], 2)} | {fmt(d['client_cpu_cores'], 2)} | "
              f"{fmt(d['machine_busy_cores'], 2)} | {fmt(d['gbit_per_gateway_cpu_s'])} | "
              f"{'n/a' if d['retransmits'] is None else int(d['retransmits'])} | {d['failed_runs']} |")
print()
print("Packets dropped on the way (medians per run). device_tun_tx_dropped: the client's TUN queue full (client")
print("behind); gateway_udp_rcvbuf_errors: a gateway UDP socket buffer full; gateway_tun_tx_dropped: the gateway's")
print("TUN queue full (gateway behind); device_udp_rcvbuf_errors: the client's socket full; org_udp_rcvbuf_errors:")
print("iperf3 server behind.")
print()
print("| contender | test | " + " | ".join(DROPS) + " |")
print("|---|---|" + "---:|" * len(DROPS))
for e in entries:
    for t, d in e["per_test"].items():
        print(f"| {e['name']} | {t} | " + " | ".join("n/a" if d["drops"][k] is None else f"{d['drops'][k]:.0f}" for k in DROPS) + " |")
print()
for e in entries:
    m = e["meta"]
    keys = [k for k in ("status", "gateway_version", "tls", "dtls", "data_channel", "tunnel_mtu", "tunnel_addr",
                        "path_dev", "dtls_established_count", "bench_status", "password_hash",
                        "log_error_lines", "log_warn_lines") if k in m]
    print(f"{e['name']}: " + "; ".join(f"{k}={m[k]}" for k in keys))

if json_out:
    mach = dict(machine)
    for k in ("nproc", "clk_tck", "rounds", "seconds", "bench_devices", "bench_rate", "boringtun_threads"):
        if mach.get(k, "").isdigit():
            mach[k] = int(mach[k])
    result = {"machine": mach, "commit": machine["commit"], "date": machine["date"],
              "rounds": int(machine["rounds"]), "seconds": int(machine["seconds"]),
              "contenders": entries, "ratios": ratios, "failures": failures}
    with open(json_out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"\nJSON written to {json_out}")
PY
}

# Counters from corridor's admin endpoint that show drops or errors (non-zero only).
report_corridor_metrics() {
    local mf="$WORK/corridor/metrics-after.txt"
    [ -s "$mf" ] || return 0
    local lines
    lines="$(grep -E '^corridor_[a-z_]*(drop|error|fail|reject|malformed|replay|spoof|blocked)[a-z_]*(\{[^}]*\})? |outcome="(failed|refused)"' "$mf" |
        awk '$NF != 0' || true)"
    printf '\ncorridor admin /metrics at the end of its rounds, non-zero drop/error counters:\n'
    if [ -n "$lines" ]; then while IFS= read -r l; do printf '    %s\n' "$l"; done <<<"$lines"; else echo "    none"; fi
}

# ---------------------------------------------------------------------------

main() {
    on_exit cleanup
    [ "$(id -u)" -eq 0 ] || die "run as root: namespaces, TUN devices and port 443 need it"
    local started c
    started="$(now)"
    # A result file never outlives the run that failed to rewrite it.
    [ -z "$JSON_OUT" ] || rm -f "$JSON_OUT"
    install_packages
    if has_contender boringtun; then install_boringtun; fi
    if has_openconnect_gateway; then build_gateway; fi
    bring_up
    for c in "${CONTENDERS[@]}"; do
        "measure_$c"
    done
    report
    if has_contender corridor; then report_corridor_metrics; fi
    info "wall time $(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s"
    if [ "$FAILURES" -gt 0 ]; then
        printf '\nFAILED: %s contender(s):\n' "$FAILURES" >&2
        printf '    %s\n' "${FAILED_WHAT[@]}" >&2
        printf '    logs: %s\n' "$WORK" >&2
        exit 1
    fi
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
