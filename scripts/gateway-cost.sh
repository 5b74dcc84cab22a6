#!/usr/bin/env bash
# What the gateway itself costs per packet: corridor, corridor with batch
# forming on (batch_wait_us = 50), corridor's null forwarder (the same path with no crypto) and
# ocserv, each alone on one CPU, at fixed offered loads, both directions.
#
#   sudo bash scripts/gateway-cost.sh [--quick] [--gateways LIST] [--sizes LIST]
#        [--directions up,down] [--loads LIST] [--rounds N] [--seconds S]
#        [--out DIR] [--prefix P] [--keep]
#
#   --gateways LIST  any of corridor, corridor-batch, corridor-null, ocserv,
#                    corridor-epoll (default: the first four)
#   --sizes LIST     IP packet sizes (default 64,512,1400)
#   --directions     up (device → org: UDP → TUN), down (org → device:
#                    TUN → UDP); default both
#   --loads LIST     offered loads in % of the reference saturation (default
#                    25,50,75,100; 100 runs each gateway at its own saturation)
#   --rounds N       rounds of the whole sweep, alternating gateways (default 3);
#                    the summary quotes medians
#   --seconds S      traffic per run (default 8)
#   --quick          1400 bytes, loads 50,100, one round, 3 s (a smoke run)
#   --no-cost        skip the cost sweep (with --echo-gateways)
#   --echo-gateways LIST
#                    after the sweep, paced udp-echo (20 devices, 2,000 probes/s,
#                    --seconds long, --rounds times) through each of LIST for
#                    the round-trip p50/p99 that batching must not worsen:
#                    corridor, corridor-batch, corridor-epoll (the readiness
#                    engine), and with --baseline also baseline, baseline-epoll
#   --baseline BIN   an earlier corridor binary (e.g. a release build of the
#                    commit before a change) for the echo comparison
#
# The layout: the gateway (every thread and process of it) is pinned to the
# last CPU, the load generator and the reflector to CPU 0, so the last CPU's
# /proc/stat time (user, system, irq, softirq, steal: everything but idle)
# during a run is what the gateway cost, softirq included. corridor runs one
# shard, not pinned by itself (the script pins the whole process).
#
# What the gateway CPU pays on this topology (veth pairs: a sender's CPU runs
# its receiver's softirq): up, the shard's receive syscalls, opening, its
# TUN writes and the kernel's forwarding into the org namespace down to the
# reflector's socket, but not the UDP receive softirq of the datagrams the
# generator sent (CPU 0 runs that); down, the TUN reads, sealing, the UDP
# sends and the device namespace's receive softirq, but not the org side's
# forwarding into the TUN. The same for every gateway, so the ratios hold;
# the absolute figures are this topology's.
#
# Offered loads: a saturation run (rate 0, the generator as fast as it goes)
# per gateway, size and direction first; the reference saturation of a size
# and direction is the smallest of the gateways' forwarded packets/s (the
# slowest gateway can carry every fractional load); then each fractional load in packets/s is the
# same for every gateway. The null forwarder's generator is the null build too
# (records in the clear on both ends).
#
# Per run: the packets the gateway forwarded (UDP datagrams that reached the
# far namespace's UDP layer, /proc/net/snmp: at saturation the far end may
# drop some of what the gateway did its work for; the generator's own
# delivered count is beside it), the gateway CPU's busy nanoseconds, ns per
# forwarded packet, CPU-seconds per GB,
# the gateway process tree's own CPU time (schedstat), and for corridor its
# batch counters from /metrics (packets per loop turn, segments per TUN
# write, records per send, datagrams per GRO receive, batched waits). One
# JSON object per run in OUT/runs.jsonl, then OUT/summary.json, summary.md
# and cost.svg (scripts/lib/gateway_cost.py). A run includes its session's
# login (one TLS + DTLS handshake, a few ms of gateway CPU): under 1 % of a
# run's cost at the smallest load of the default sweep.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
LOG_NAME=gateway-cost
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"
# shellcheck source=scripts/lib/loadgen.sh
. "$SCRIPTS/lib/loadgen.sh"
# shellcheck source=scripts/ocserv-peer.sh
. "$SCRIPTS/ocserv-peer.sh"

GATEWAYS=corridor,corridor-batch,corridor-null,ocserv
SIZES=64,512,1400
DIRECTIONS=up,down
LOADS=25,50,75,100
ROUNDS=3
SECONDS_PER_RUN=8
NO_COST=0
ECHO_GATEWAYS=""
BASELINE=""
OUT=""
PREFIX=gc
KEEP=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --gateways) GATEWAYS="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --directions) DIRECTIONS="$2"; shift 2 ;;
    --loads) LOADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --quick) SIZES=1400; LOADS=50,100; ROUNDS=1; SECONDS_PER_RUN=3; shift ;;
    --no-cost) NO_COST=1; shift ;;
    --echo-gateways) ECHO_GATEWAYS="$2"; shift 2 ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) echo "unknown argument $1" >&2; usage ;;
    esac
done
IFS=, read -ra GWS <<<"$GATEWAYS"
IFS=, read -ra SIZE_LIST <<<"$SIZES"
IFS=, read -ra DIR_LIST <<<"$DIRECTIONS"
IFS=, read -ra LOAD_LIST <<<"$LOADS"
for g in "${GWS[@]}"; do
    case "$g" in corridor | corridor-batch | corridor-null | corridor-epoll | ocserv) ;; *) die "--gateways: unknown gateway $g" ;; esac
done
ECHO_GWS=()
[ -z "$ECHO_GATEWAYS" ] || IFS=, read -ra ECHO_GWS <<<"$ECHO_GATEWAYS"
for g in "${ECHO_GWS[@]}"; do
    case "$g" in
    corridor | corridor-batch | corridor-epoll | ocserv) ;;
    baseline | baseline-epoll) [ -x "$BASELINE" ] || die "--echo-gateways $g needs --baseline BIN (an executable)" ;;
    *) die "--echo-gateways: unknown gateway $g" ;;
    esac
done
for d in "${DIR_LIST[@]}"; do
    case "$d" in up | down) ;; *) die "--directions: up or down, not $d" ;; esac
done
for n in "${SIZE_LIST[@]}" "${LOAD_LIST[@]}" "$ROUNDS" "$SECONDS_PER_RUN"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"
done
for l in "${LOAD_LIST[@]}"; do
    [ "$l" -le 100 ] || die "--loads: $l is over 100 %"
done

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
GATEWAY_IP=10.10.0.1
REFLECTOR=10.99.0.2:9000
POOL=192.168.64.0/18
export CORRIDOR_POOL="$POOL" OCSERV_PEER_POOL="$POOL"
CORRIDOR_REAL="$REPO/target/release/corridor"
CORRIDOR_NULL="$REPO/target/null-aead/release/corridor"
CORRIDOR="$CORRIDOR_REAL"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$OUT" ] || OUT="$REPO/target/gateway-cost/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/corridor-gateway-cost.XXXXXX)"
chmod 711 "$WORK"
PASSWORD="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
GATEWAY_PID=""
REFLECTOR_PID=""
GW_CPU=""
CURRENT=""
LAST_PPS=0
FAILED=()

on_exit loadgen_cleanup
trap 'exit 130' TERM

# Every task (thread) of PID and of its descendants onto CPU.
pin_tree() { # PID CPU
    local p
    for p in $(tree_pids "$1"); do
        taskset -a -p -c "$2" "$p" >/dev/null 2>&1 || true
    done
}

# Nanoseconds the gateway process tree has run (schedstat of every task).
tree_ns() { # PID
    local total=0 p t n
    for p in $(tree_pids "$1"); do
        for t in /proc/"$p"/task/*/schedstat; do
            read -r n _ <"$t" 2>/dev/null || continue
            total=$((total + n))
        done
    done
    echo "$total"
}

# UDP datagrams that reached namespace NS's UDP layer: delivered to a
# socket or dropped there for a full buffer (InDatagrams + InErrors of
# /proc/net/snmp). What the gateway forwarded into the far namespace,
# whoever drops it afterwards, and the same count for every gateway.
udp_arrived() { # NS
    # shellcheck disable=SC2016 # an awk program, not shell
    ip netns exec "$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2 + $4 }' /proc/net/snmp
}

# The gateway CPU's busy jiffies (all but idle and iowait) and USER_HZ.
cpu_busy() {
    awk -v cpu="cpu$GW_CPU" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

start_gateway() { # NAME
    local name="$1" variant=()
    mkdir -p "$WORK/$name"
    case "$name" in
    ocserv)
        CORRIDOR="$CORRIDOR_REAL"
        ocserv_peer_start "$PREFIX" "$WORK/certs" "$WORK/ocserv" "$PASSWORD" || return 1
        GATEWAY_PID="$(cat "$WORK/ocserv/ocserv.main.pid")"
        ;;
    corridor* | baseline*)
        CORRIDOR="$CORRIDOR_REAL"
        case "$name" in
        corridor-null) CORRIDOR="$CORRIDOR_NULL" ;;
        corridor-batch) variant=(dataplane.batch_wait_us=50) ;;
        corridor-epoll) variant=(dataplane.io=readiness) ;;
        baseline) CORRIDOR="$BASELINE" ;;
        baseline-epoll) CORRIDOR="$BASELINE" variant=(dataplane.io=readiness) ;;
        esac
        gateway_config "$WORK/$name/gateway.toml" written_by=scripts/gateway-cost.sh \
            server.listen="$GATEWAY_IP:443" server.dtls_port=443 \
            server.cert="$WORK/certs/server.crt" server.key="$WORK/certs/server.key" \
            auth.password_file=passwd network.pool="$POOL" dataplane.shards=1 dataplane.pin_cores=false \
            admin.listen="$GATEWAY_IP:9100" group.name=bench group.allowed=10.99.0.0/24 \
            group.split_include=10.99.0.0/24 "${LOAD_GENERATOR_LIMITS[@]}" "${variant[@]}" || return 1
        printf '%s\n' "$PASSWORD" | "$CORRIDOR" passwd --file "$WORK/$name/passwd" alice --group bench --iterations 5000
        corridor_start gateway GATEWAY_PID "$NS_GATEWAY" "$WORK/$name/gateway.toml" "$WORK/$name/gateway.log" ||
            { tail -n 30 "$WORK/$name/gateway.log" >&2; return 1; }
        grep -m1 "gateway started" "$WORK/$name/gateway.log" >&2 || true
        ;;
    esac
    pin_tree "$GATEWAY_PID" "$GW_CPU"
}

metrics() { # FILE
    case "$CURRENT" in
    corridor* | baseline*) ip netns exec "$NS_DEVICE" curl -s --max-time 5 "http://$GATEWAY_IP:9100/metrics" >"$1" || : >"$1" ;;
    *) : >"$1" ;;
    esac
}

# One measured run; appends its JSON object to OUT/runs.jsonl and leaves
# its delivered packets/s in LAST_PPS (0 when it failed).
measure() { # ROUND SIZE DIRECTION LOAD RATE
    local round="$1" size="$2" dir="$3" load="$4" rate="$5" tag scenario json busy0 busy1 tree0 tree1 far arrived0 arrived1
    tag="$CURRENT-$dir-$size-$load-r$round"
    scenario=bulk
    [ "$dir" = down ] && scenario=bulk-down
    json="$WORK/$tag.json"
    far="$NS_ORG"
    [ "$dir" = down ] && far="$NS_DEVICE"
    metrics "$WORK/$tag.before.prom"
    arrived0="$(udp_arrived "$far")"
    busy0="$(cpu_busy)"
    tree0="$(tree_ns "$GATEWAY_PID")"
    if ! printf '%s\n' "$PASSWORD" | taskset -c 0 ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run "$scenario" \
        --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" --user alice --password-stdin \
        --reflector "$REFLECTOR" --devices 1 --threads 1 --size "$size" --rate "$rate" \
        --seconds "$SECONDS_PER_RUN" --json "$json" >"$WORK/$tag.log" 2>&1; then
        FAILED+=("$tag")
        tail -n 5 "$WORK/$tag.log" >&2
        LAST_PPS=0
        return 0
    fi
    busy1="$(cpu_busy)"
    tree1="$(tree_ns "$GATEWAY_PID")"
    arrived1="$(udp_arrived "$far")"
    metrics "$WORK/$tag.after.prom"
    python3 "$SCRIPTS/lib/gateway_cost.py" run "$json" "$WORK/$tag.before.prom" "$WORK/$tag.after.prom" \
        gateway="$CURRENT" direction="$dir" size="$size" load="$load" rate="$rate" round="$round" \
        busy_jiffies="$((busy1 - busy0))" hz="$(getconf CLK_TCK)" tree_ns="$((tree1 - tree0))" \
        forwarded="$((arrived1 - arrived0))" seconds="$SECONDS_PER_RUN" \
        >>"$OUT/runs.jsonl"
    LAST_PPS=$(((arrived1 - arrived0) / SECONDS_PER_RUN))
}

# Paced udp-echo through the current gateway; appends its round trip's
# percentiles to OUT/echo.jsonl.
echo_run() { # ROUND
    local tag="$CURRENT-echo-r$1" json
    json="$WORK/$tag.json"
    if ! printf '%s\n' "$PASSWORD" | taskset -c 0 ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run udp-echo \
        --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" --user alice --password-stdin \
        --reflector "$REFLECTOR" --devices 20 --rate 2000 --seconds "$SECONDS_PER_RUN" \
        --json "$json" >"$WORK/$tag.log" 2>&1; then
        FAILED+=("$tag")
        tail -n 5 "$WORK/$tag.log" >&2
        return 0
    fi
    python3 "$SCRIPTS/lib/gateway_cost.py" echo "$json" gateway="$CURRENT" round="$1" >>"$OUT/echo.jsonl"
}

# The reference saturation (packets/s) of each size and direction: the
# smallest any gateway forwarded.
declare -A SAT=()

# Each size and direction at saturation through the running gateway.
saturation_runs() { # ROUND
    local size dir key sat
    for size in "${SIZE_LIST[@]}"; do
        for dir in "${DIR_LIST[@]}"; do
            measure "$1" "$size" "$dir" 100 0
            sat="$LAST_PPS"
            info "$CURRENT $dir $size B: $sat packets/s at saturation"
            key="$size-$dir"
            if [ -z "${SAT[$key]:-}" ] || [ "$sat" -lt "${SAT[$key]}" ]; then
                SAT[$key]="$sat"
            fi
        done
    done
}

# Each size, direction and fractional load through the running gateway.
load_runs() { # ROUND
    local size dir load rate
    for size in "${SIZE_LIST[@]}"; do
        for dir in "${DIR_LIST[@]}"; do
            for load in "${LOAD_LIST[@]}"; do
                [ "$load" -lt 100 ] || continue
                rate=$((${SAT[$size-$dir]:-0} * load / 100))
                [ "$rate" -gt 0 ] || continue
                measure "$1" "$size" "$dir" "$load" "$rate"
            done
        done
    done
}

# RUNS ROUND through each GATEWAY in turn: started, measured, checked alive, stopped.
each_gateway() { # WHAT RUNS ROUND GATEWAY...
    local what="$1" runs="$2" round="$3" gw
    shift 3
    for gw in "$@"; do
        CURRENT="$gw"
        step "round $round: $gw, $what"
        start_gateway "$gw" || die "$gw did not start"
        "$runs" "$round"
        alive "$GATEWAY_PID" || die "$gw died"
        loadgen_stop_gateway "$gw"
    done
}

main() {
    [ "$(id -u)" -eq 0 ] || die "run as root (namespaces, TUN)"
    local cpus
    cpus="$(nproc)"
    [ "$cpus" -ge 2 ] || die "needs two CPUs at least (the gateway's and everyone else's)"
    GW_CPU=$((cpus - 1))
    step "packages"
    install_missing iproute2 ocserv openssl curl util-linux procps
    step "build (release, and the null-aead build for corridor-null)"
    (cd "$REPO" && cargo build --release --quiet)
    if [[ ",$GATEWAYS," == *",corridor-null,"* ]]; then
        (cd "$REPO" && cargo build --release --quiet --features null-aead --target-dir target/null-aead)
        "$CORRIDOR_NULL" --version | grep -q '^null-aead: true' || die "$CORRIDOR_NULL is not a null-aead build"
    fi
    "$CORRIDOR_REAL" --version | grep -q '^null-aead' && die "$CORRIDOR_REAL is a null-aead build"
    step "certificates and topology (prefix $PREFIX); gateway on CPU $GW_CPU, the rest on CPU 0"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    "$SCRIPTS/topology.sh" down "$PREFIX"
    "$SCRIPTS/topology.sh" up "$PREFIX"
    reflector_start "$NS_ORG" "$REFLECTOR" "$WORK/reflector.log" REFLECTOR_PID || die "the reflector did not start"
    pin_tree "$REFLECTOR_PID" 0
    : >"$OUT/runs.jsonl"
    {
        echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
        echo "kernel: $(uname -r)"
        echo "commit: $COMMIT"
        echo "command: bash scripts/gateway-cost.sh --gateways $GATEWAYS --sizes $SIZES --directions $DIRECTIONS --loads $LOADS --rounds $ROUNDS --seconds $SECONDS_PER_RUN"
    } >"$OUT/machine.txt"

    local round cost_rounds="$ROUNDS"
    [ "$NO_COST" = 0 ] || cost_rounds=0
    for ((round = 1; round <= cost_rounds; round++)); do
        # Saturation first (it sets the reference), then the fixed loads;
        # the gateways alternate within each round.
        each_gateway "at saturation" saturation_runs "$round" "${GWS[@]}"
        each_gateway "at fixed loads" load_runs "$round" "${GWS[@]}"
    done
    : >"$OUT/echo.jsonl"
    for ((round = 1; round <= ROUNDS && ${#ECHO_GWS[@]} > 0; round++)); do
        each_gateway "paced udp-echo" echo_run "$round" "${ECHO_GWS[@]}"
    done

    step "summary ($OUT/summary.md)"
    python3 "$SCRIPTS/lib/gateway_cost.py" summary "$OUT" | tee "$OUT/summary.md"
    if [ ${#FAILED[@]} -gt 0 ]; then
        die "failed: ${FAILED[*]}"
    fi
}

main
