#!/usr/bin/env bash
# How corridor's throughput grows with its shards: for each shard count, a
# gateway with dataplane.shards=N (pinned to cores 0..N-1) on a
# scripts/topology.sh topology, loaded by `corridor bench run` with many
# sessions (their flows spread over the shards' SO_REUSEPORT sockets), one
# traffic case after the other. Unattended; meant for a machine with many
# cores (on 2 vCPUs it only shows that it runs: gateway and generator share
# the two CPUs, so nothing can scale).
#
#   sudo bash scripts/shard-sweep.sh [--shards LIST] [--cases LIST]
#                                    [--devices-per-shard N | --devices N]
#                                    [--seconds S] [--threads T]
#                                    [--generator-cpus LIST] [--quick]
#                                    [--out DIR] [--prefix P] [--keep]
#
#   --shards LIST      shard counts, comma-separated (default: the powers of
#                      two up to the number of CPUs: 1,2,4,8,16 on 16)
#   --cases LIST       traffic cases, as scripts/bench.sh names them (default
#                      bulk-1400,bulk-64,udp-echo-saturation; bulk-512 and
#                      bulk-imix too)
#   --devices-per-shard N
#                      sessions per shard (default 64; --quick 8): a run with
#                      N shards has N × this many devices
#   --devices N        the same fleet at every shard count instead
#   --seconds S        seconds of traffic per run (default 10; --quick 2)
#   --threads T        generator threads, the same at every shard count
#                      (default: half the CPUs, at least 1)
#   --generator-cpus LIST
#                      run the generator under `taskset -c LIST` (default:
#                      anywhere)
#   --quick            short runs (what a check of the script needs)
#   --out DIR          results (default target/shard-sweep/DATE-COMMIT)
#   --prefix P         namespace prefix (default ss)
#   --keep             keep the work directory (configs, logs)
#
# Devices log in with scripts/certs.sh's client certificate (no password
# hash in the bring-up). The gateway is restarted for every shard count; its
# CPU time is that of its process tree (keeper and worker: /proc/PID/stat
# utime + stime), before and after each run and every 0.5 s between, so the
# traffic phase's share is known apart from the bring-up's; the machine's
# busy share (/proc/stat) beside it. On veth much of a packet's kernel work
# (softirq) is billed to whichever process runs, not to the gateway: the
# machine's share shows when the CPUs, not the gateway, ran out.
#
# Output in DIR: per run SHARDS-CASE: the bench result
# (shards-N-CASE.json), its output (.txt), the gateway's /metrics before and
# after, the CPU samples (.cpu.tsv) and the run's record (.run.json); the
# gateway's log per shard count; sweep.json (every record, with its scaling
# against the smallest shard count) and summary.md (shards, case, Gbit/s,
# kpps, gateway CPU-s, packets per gateway CPU-s, scaling, the busiest
# shard's share, generator cores). A run whose generator was saturated
# says so on its line and in the table.
# Exit status 1 when a run failed (bench run failed, a device did not come
# up, the gateway ran another number of shards) or the gateway died; 2 on
# bad arguments.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
LOG_NAME=shard-sweep
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"
# shellcheck source=scripts/lib/loadgen.sh
. "$SCRIPTS/lib/loadgen.sh"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}
bad() {
    echo "shard-sweep: $*" >&2
    exit 2
}

SHARDS=""
CASES=bulk-1400,bulk-64,udp-echo-saturation
PER_SHARD=""
DEVICES=""
SECONDS_=""
THREADS=""
GENERATOR_CPUS=""
QUICK=0
OUT=""
PREFIX=ss
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --shards | --cases | --devices-per-shard | --devices | --seconds | --threads | --generator-cpus | --out | --prefix)
        [ $# -ge 2 ] || bad "$1 needs a value"
        case "$1" in
        --shards) SHARDS="$2" ;;
        --cases) CASES="$2" ;;
        --devices-per-shard) PER_SHARD="$2" ;;
        --devices) DEVICES="$2" ;;
        --seconds) SECONDS_="$2" ;;
        --threads) THREADS="$2" ;;
        --generator-cpus) GENERATOR_CPUS="$2" ;;
        --out) OUT="$2" ;;
        --prefix) PREFIX="$2" ;;
        esac
        shift 2
        ;;
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) bad "unknown argument $1 (see --help)" ;;
    esac
done

positive() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

NPROC="$(nproc)"
if [ -z "$SHARDS" ]; then
    SHARDS=1
    for ((n = 2; n <= NPROC; n *= 2)); do SHARDS+=",$n"; done
fi
IFS=, read -ra SHARD_LIST <<<"$SHARDS"
[ ${#SHARD_LIST[@]} -gt 0 ] || bad "--shards is empty"
for n in "${SHARD_LIST[@]}"; do
    if ! positive "$n" || [ "$n" -gt 1024 ]; then bad "--shards: '$n' is not a shard count (1..1024)"; fi
done
IFS=, read -ra CASE_LIST <<<"$CASES"
[ ${#CASE_LIST[@]} -gt 0 ] || bad "--cases is empty"
for c in "${CASE_LIST[@]}"; do
    case "$c" in
    udp-echo-saturation | bulk-imix) ;;
    bulk-*)
        if ! [[ "${c#bulk-}" =~ ^[0-9]+$ ]] || [ "${c#bulk-}" -lt 44 ] || [ "${c#bulk-}" -gt 1500 ]; then
            bad "--cases: bulk sizes are 44..1500 or imix, not '$c'"
        fi
        ;;
    *) bad "--cases: '$c' is not a traffic case (bulk-1400, bulk-64, bulk-512, bulk-imix, udp-echo-saturation)" ;;
    esac
done
[ -z "$PER_SHARD" ] || [ -z "$DEVICES" ] || bad "give --devices-per-shard or --devices, not both"
[ -n "$PER_SHARD" ] || PER_SHARD=$([ "$QUICK" = 1 ] && echo 8 || echo 64)
positive "$PER_SHARD" || bad "--devices-per-shard: '$PER_SHARD' is not a positive number"
[ -z "$DEVICES" ] || positive "$DEVICES" || bad "--devices: '$DEVICES' is not a positive number"
[ -n "$SECONDS_" ] || SECONDS_=$([ "$QUICK" = 1 ] && echo 2 || echo 10)
positive "$SECONDS_" || bad "--seconds: '$SECONDS_' is not a positive number"
[ -n "$THREADS" ] || THREADS=$((NPROC / 2 > 0 ? NPROC / 2 : 1))
positive "$THREADS" || bad "--threads: '$THREADS' is not a positive number"
GENERATOR=()
if [ -n "$GENERATOR_CPUS" ]; then
    taskset -c "$GENERATOR_CPUS" true 2>/dev/null || bad "--generator-cpus: taskset refuses '$GENERATOR_CPUS'"
    GENERATOR=(taskset -c "$GENERATOR_CPUS")
fi

# The fleet of a run with N shards.
devices_for() { # SHARDS
    if [ -n "$DEVICES" ]; then echo "$DEVICES"; else echo $(($1 * PER_SHARD)); fi
}
# The pool (a /18) holds 16 381 devices beside the gateway's own address.
for n in "${SHARD_LIST[@]}"; do
    [ "$(devices_for "$n")" -le 16000 ] || bad "$(devices_for "$n") devices for $n shards: at most 16000"
done

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
GATEWAY_IP=10.10.0.1
REFLECTOR=10.99.0.2:9000
POOL=192.168.64.0/18
export CORRIDOR_POOL="$POOL"
CORRIDOR="$REPO/target/release/corridor"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
export CORRIDOR_COMMIT="$COMMIT"
CLK_TCK="$(getconf CLK_TCK)"
GATEWAY_PID=""
REFLECTOR_PID=""
SAMPLER_PID=""
WORK=""
FAILED=()

cleanup() { # RC
    stop_pid "$SAMPLER_PID" 2
    stop_pid "$REFLECTOR_PID" 5
    stop_pid "$GATEWAY_PID" 10
    "$SCRIPTS/topology.sh" down "$PREFIX" >/dev/null 2>&1
    [ -n "$WORK" ] || return 0
    if [ "$KEEP" = 1 ] || [ "$1" -ne 0 ]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

metrics() { # FILE
    ip netns exec "$NS_DEVICE" curl -s --max-time 5 "http://$GATEWAY_IP:9100/metrics" >"$1" || true
}

# One line of the CPU samples: "EPOCH_S TICKS BUSY TOTAL", TICKS the CPU
# time of the processes PID..., BUSY and TOTAL the machine's non-idle and
# all ticks (/proc/stat, every CPU; idle and iowait are idle).
cpu_sample() { # PID...
    local line
    line="$(date +%s.%N) $(cpu_ticks "$@") $(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat)"
    # One write, so a sampler stopped mid-way leaves no half line.
    printf '%s\n' "$line"
}

# Every 0.5 s a cpu_sample of the processes PID... onto FILE.
sample_cpu() { # FILE PID...
    local file="$1"
    shift
    while :; do
        cpu_sample "$@" >>"$file"
        sleep 0.5
    done
}

start_gateway() { # SHARDS
    local n="$1"
    load_test_corridor scripts/shard-sweep.sh "$WORK" "$NS_GATEWAY" "$GATEWAY_IP" "$POOL" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        GATEWAY_PID dataplane.shards="$n" dataplane.pin_cores=true \
        auth.password_file= auth.client_ca="$WORK/certs/ca.crt" || die "corridor with $n shards did not start (log above)"
    info "corridor pid $GATEWAY_PID, $n shard(s)"
}

run_one() { # SHARDS CASE
    local n="$1" c="$2" base rc=0 devices args pids
    base="$OUT/shards-$n-$c"
    devices="$(devices_for "$n")"
    args="$(traffic_args "$c" "$devices" "$SECONDS_")"
    step "$n shard(s): $c ($args --threads $THREADS)"
    metrics "$base.metrics-before.txt"
    # The tree does not change while the gateway runs: the keeper and its worker.
    mapfile -t pids < <(tree_pids "$GATEWAY_PID")
    rm -f "$base.cpu.tsv"
    cpu_sample "${pids[@]}" >"$base.cpu.tsv"
    sample_cpu "$base.cpu.tsv" "${pids[@]}" &
    SAMPLER_PID=$!
    # shellcheck disable=SC2086 # args is a list of words
    "${GENERATOR[@]}" ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run "$(scenario_of "$c")" \
        --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" \
        --cert "$WORK/certs/client.crt" --key "$WORK/certs/client.key" \
        --reflector "$REFLECTOR" --threads "$THREADS" --json "$base.json" $args \
        </dev/null >"$base.txt" 2>&1 || rc=$?
    stop_pid "$SAMPLER_PID" 2
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    cpu_sample "${pids[@]}" >>"$base.cpu.tsv"
    metrics "$base.metrics-after.txt"
    [ "$rc" -eq 0 ] || tail -n 5 "$base.txt" >&2
    if ! python3 "$SCRIPTS/lib/shard_sweep.py" record "$base.run.json" --result "$base.json" \
        --samples "$base.cpu.tsv" --clk-tck "$CLK_TCK" --shards "$n" --case "$c" --devices "$devices" --threads "$THREADS" \
        --nproc "$NPROC" --metrics-before "$base.metrics-before.txt" --metrics-after "$base.metrics-after.txt" \
        --bench-rc "$rc" | sed 's/^/    /'; then
        FAILED+=("$n/$c")
    fi
}

main() {
    [ "$(id -u)" -eq 0 ] || { echo "shard-sweep: run as root (namespaces, TUN)" >&2; exit 2; }
    [ -n "$OUT" ] || OUT="$REPO/target/shard-sweep/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT"
    mkdir -p "$OUT"
    OUT="$(cd "$OUT" && pwd)"
    # Results of an earlier sweep into the same directory would join the summary.
    rm -f "$OUT"/shards-*.run.json
    WORK="$(mktemp -d /tmp/corridor-shard-sweep.XXXXXX)"
    on_exit cleanup
    step "packages and build (release)"
    install_missing iproute2 openssl curl python3
    (cd "$REPO" && cargo build --release --quiet)
    [ -x "$CORRIDOR" ] || die "no $CORRIDOR"
    step "certificates, topology (prefix $PREFIX), reflector"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    "$SCRIPTS/topology.sh" down "$PREFIX"
    "$SCRIPTS/topology.sh" up "$PREFIX"
    reflector_start "$NS_ORG" "$REFLECTOR" "$WORK/reflector.log" REFLECTOR_PID || die "the reflector did not start"
    info "shards ${SHARD_LIST[*]}; cases ${CASE_LIST[*]}; $SECONDS_ s each; generator $THREADS thread(s)" \
        "${GENERATOR_CPUS:+on CPUs $GENERATOR_CPUS}; $NPROC CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    [ "$NPROC" -ge 4 ] || warn "$NPROC CPUs: gateway and generator share them; these runs cannot show scaling"

    local n c
    for n in "${SHARD_LIST[@]}"; do
        [ "$n" -le "$NPROC" ] || warn "$n shards on $NPROC CPUs: shards share cores"
        step "corridor, $n shard(s)"
        start_gateway "$n"
        for c in "${CASE_LIST[@]}"; do
            run_one "$n" "$c"
            alive "$GATEWAY_PID" || { cp "$WORK/corridor/gateway.log" "$OUT/shards-$n.gateway.log"; die "corridor died during $n/$c"; }
        done
        corridor_stop GATEWAY_PID 10 || warn "corridor ($n shards) had to be killed"
        cp "$WORK/corridor/gateway.log" "$OUT/shards-$n.gateway.log"
    done

    step "summary ($OUT/summary.md)"
    python3 "$SCRIPTS/lib/shard_sweep.py" summary "$OUT"
    [ ${#FAILED[@]} -eq 0 ] || die "failed: ${FAILED[*]}"
}

main
