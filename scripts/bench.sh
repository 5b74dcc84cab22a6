#!/usr/bin/env bash
# `corridor bench run`, every scenario, against corridor and against ocserv:
# the same generator (the device library: TLS, login, CONNECT, DTLS
# PSK-NEGOTIATE) on one scripts/topology.sh topology, one gateway after the
# other, so the two are measured on identical work in one run.
#
#   sudo bash scripts/bench.sh [--gateways corridor,ocserv] [--quick]
#                              [--out DIR] [--prefix P] [--keep] [CASE...]
#
#   --gateways LIST  which gateways (default corridor,ocserv)
#   --quick          small fleets, 2 s of traffic (what CI runs)
#   --out DIR        where the JSON results and summary.md go
#                    (default target/bench/DATE-COMMIT)
#   --prefix P       namespace prefix (default bn)
#   --keep           keep the work directory (configs, logs)
#   CASE             any of the cases below (default: all)
#
# Cases (full / --quick):
#   handshake-storm      1000 / 50 devices, 64 / 16 handshaking at once
#   handshake-storm-cert the same storm, every device logging in with a client
#                        certificate and no password (user carol, the CN of
#                        scripts/certs.sh's client.crt): no password hash in
#                        the measurement. The gateway is restarted for it:
#                        corridor with auth.client_ca and no password file,
#                        ocserv with auth = "certificate" (OCSERV_PEER_AUTH)
#   udp-echo             20 / 5 devices, 2000 / 500 probes/s for 10 / 2 s
#   udp-echo-saturation  20 / 5 devices, 8 probes in flight each, 10 / 2 s
#   bulk-64 bulk-512 bulk-1400 bulk-imix
#                        4 / 1 devices, one-way UDP as fast as it goes, 10 / 2 s
#   many-sessions        corridor 10000 / 200 devices (2 generator processes:
#                        one process's open-file limit holds fewer), ocserv
#                        1000 / 100 (a worker process per session); held
#                        30 / 3 s; the gateway's memory per session
#
# Equal footing: both gateways get the same certificate, pool (a /18, so 10 000
# devices fit), routes and user; corridor's password hash uses 5000 PBKDF2
# iterations, about the cost of the SHA-256-crypt with 5000 rounds that
# ocserv's ocpasswd writes, so handshake-storm measures the handshakes and not
# a password-hash setting; handshake-storm-cert leaves the hash out for both.
#
# Output: one JSON result per gateway and case (`corridor bench run --json`),
# corridor's /metrics after each case, summary.md (the key figures side by
# side with the corridor/ocserv ratio) and SVG plots (scripts/lib/plots.py).
# Exit status non-zero when a gateway fails to start or a case fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# step, info, die, on_exit
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
LOG_NAME=bench
# gateway_config, corridor_start, corridor_stop
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"
# scenario_of, traffic_args, reflector_start
# shellcheck source=scripts/lib/loadgen.sh
. "$SCRIPTS/lib/loadgen.sh"
# shellcheck source=scripts/ocserv-peer.sh
. "$SCRIPTS/ocserv-peer.sh"

ALL_CASES=(handshake-storm handshake-storm-cert udp-echo udp-echo-saturation bulk-64 bulk-512 bulk-1400 bulk-imix many-sessions)
GATEWAYS=corridor,ocserv
QUICK=0
OUT=""
PREFIX=bn
KEEP=0
CASES=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --gateways) GATEWAYS="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *)
        [[ " ${ALL_CASES[*]} " == *" $1 "* ]] || { echo "unknown case $1 (known: ${ALL_CASES[*]})" >&2; exit 2; }
        CASES+=("$1")
        shift
        ;;
    esac
done
[ ${#CASES[@]} -gt 0 ] || CASES=("${ALL_CASES[@]}")

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
GATEWAY_IP=10.10.0.1
REFLECTOR=10.99.0.2:9000
POOL=192.168.64.0/18
export CORRIDOR_POOL="$POOL" OCSERV_PEER_POOL="$POOL"
CORRIDOR="$REPO/target/release/corridor"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
export CORRIDOR_COMMIT="$COMMIT"
[ -n "$OUT" ] || OUT="$REPO/target/bench/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/corridor-bench.XXXXXX)"
# ocserv's workers run as nobody and reach their socket under $WORK/ocserv.
chmod 711 "$WORK"
PASSWORD="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
GATEWAY_PID=""
# How the running gateway logs users in (login_of); empty: none runs.
GATEWAY_LOGIN=""
REFLECTOR_PID=""
FAILED=()

on_exit loadgen_cleanup
# This script has always exited 130 on TERM too.
trap 'exit 130' TERM

# Parameters of one case for one gateway, as `corridor bench run` arguments.
case_args() { # GATEWAY CASE
    local q="$QUICK" secs=10 many
    [ "$q" = 1 ] && secs=2
    case "$2" in
    handshake-storm | handshake-storm-cert) [ "$q" = 1 ] && echo "--devices 50 --concurrency 16" || echo "--devices 1000 --concurrency 64" ;;
    udp-echo) [ "$q" = 1 ] && echo "--devices 5 --rate 500 --seconds 2" || echo "--devices 20 --rate 2000 --seconds 10" ;;
    udp-echo-saturation) traffic_args "$2" "$([ "$q" = 1 ] && echo 5 || echo 20)" "$secs" ;;
    bulk-*) traffic_args "$2" "$([ "$q" = 1 ] && echo 1 || echo 4)" "$secs" ;;
    many-sessions)
        if [ "$1" = corridor ]; then many=$([ "$q" = 1 ] && echo 200 || echo 10000); else many=$([ "$q" = 1 ] && echo 100 || echo 1000); fi
        echo "--devices $many --concurrency 64 --processes 2 --seconds $([ "$q" = 1 ] && echo 3 || echo 30) --gateway-pid $GATEWAY_PID"
        ;;
    esac
}

# How the devices of a case log in: password (alice) or certificate (carol).
login_of() { # CASE
    case "$1" in
    handshake-storm-cert) echo certificate ;;
    *) echo password ;;
    esac
}

# The `bench run` arguments that log a device in; the password goes on stdin.
login_args() { # LOGIN
    if [ "$1" = certificate ]; then
        echo "--cert $WORK/certs/client.crt --key $WORK/certs/client.key"
    else
        echo "--user alice --password-stdin"
    fi
}

# A certificate login is the client certificate alone: client_ca on, and no
# password file, as ocserv's auth = "certificate". The certificate's user
# (carol) has no group of its own and gets the first [[group]], bench.
start_corridor() { # LOGIN
    local fields=()
    [ "$1" = certificate ] && fields=(auth.password_file= auth.client_ca="$WORK/certs/ca.crt")
    load_test_corridor scripts/bench.sh "$WORK" "$NS_GATEWAY" "$GATEWAY_IP" "$POOL" "$PASSWORD" GATEWAY_PID \
        "${fields[@]}" || return 1
    info "corridor pid $GATEWAY_PID ($1 login)"
}

# The same limits for both logins: the sessions of many-sessions, a hundred more.
start_ocserv() { # LOGIN
    local many=1000
    [ "$QUICK" = 1 ] && many=100
    OCSERV_PEER_AUTH="$1" OCSERV_PEER_MAX_CLIENTS=$((many + 100)) \
        ocserv_peer_start "$PREFIX" "$WORK/certs" "$WORK/ocserv" "$PASSWORD" || return 1
    GATEWAY_PID="$(cat "$WORK/ocserv/ocserv.main.pid")"
    info "ocserv pid $GATEWAY_PID ($1 login)"
}

# Starts GATEWAY for LOGIN unless it already runs so; a running one with the
# other login is stopped first.
ensure_gateway() { # GATEWAY LOGIN
    [ "$GATEWAY_LOGIN" = "$2" ] && return 0
    [ -n "$GATEWAY_LOGIN" ] && stop_gateway "$1"
    step "starting $1 ($2 login)"
    case "$1" in
    corridor) start_corridor "$2" || die "corridor did not start (log above)" ;;
    ocserv) start_ocserv "$2" || die "ocserv did not start (log above)" ;;
    *) die "unknown gateway $1 (corridor, ocserv)" ;;
    esac
    GATEWAY_LOGIN="$2"
}

stop_gateway() { # GATEWAY
    loadgen_stop_gateway "$1"
    GATEWAY_LOGIN=""
}

run_case() { # GATEWAY CASE
    local gw="$1" c="$2" json="$OUT/$1-$2.json" args login
    args="$(case_args "$gw" "$c")"
    login="$(login_args "$(login_of "$c")")"
    step "$gw: $c ($args; $(login_of "$c") login)"
    # shellcheck disable=SC2086 # args and login are lists of words
    if printf '%s\n' "$PASSWORD" | ip netns exec "$NS_DEVICE" "$CORRIDOR" bench run "$(scenario_of "$c")" \
        --gateway "https://$GATEWAY_IP/" --cafile "$WORK/certs/ca.crt" $login \
        --reflector "$REFLECTOR" --json "$json" $args; then
        return 0
    fi
    FAILED+=("$gw/$c")
    rm -f "$json"
    return 0
}

# corridor's Prometheus counters after a case, beside its result.
save_metrics() { # GATEWAY CASE
    [ "$1" = corridor ] || return 0
    ip netns exec "$NS_DEVICE" curl -s --max-time 5 "http://$GATEWAY_IP:9100/metrics" >"$OUT/$1-$2.metrics.txt" || true
}

main() {
    [ "$(id -u)" -eq 0 ] || die "run as root (namespaces, TUN)"
    step "packages"
    install_missing iproute2 ocserv openssl curl
    step "build (release)"
    (cd "$REPO" && cargo build --release --quiet)
    [ -x "$CORRIDOR" ] || die "no $CORRIDOR"
    step "certificates and topology (prefix $PREFIX, pool $POOL)"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    "$SCRIPTS/topology.sh" down "$PREFIX"
    "$SCRIPTS/topology.sh" up "$PREFIX"
    reflector_start "$NS_ORG" "$REFLECTOR" "$WORK/reflector.log" REFLECTOR_PID || die "the reflector did not start"

    local gw c
    IFS=, read -ra gws <<<"$GATEWAYS"
    for gw in "${gws[@]}"; do
        case "$gw" in
        corridor | ocserv) ;;
        *) die "unknown gateway $gw (corridor, ocserv)" ;;
        esac
        for c in "${CASES[@]}"; do
            ensure_gateway "$gw" "$(login_of "$c")"
            run_case "$gw" "$c"
            save_metrics "$gw" "$c"
            alive "$GATEWAY_PID" || die "$gw died during $c"
        done
        stop_gateway "$gw"
    done

    step "summary ($OUT/summary.md)"
    BENCH_GATEWAYS="$GATEWAYS" python3 "$SCRIPTS/lib/bench_summary.py" "$OUT" "${CASES[@]}" | tee "$OUT/summary.md"
    python3 "$SCRIPTS/lib/plots.py" bench "$OUT" "$OUT" || true
    if [ ${#FAILED[@]} -gt 0 ]; then
        die "failed: ${FAILED[*]}"
    fi
}

main
