# shellcheck shell=bash
# `corridor bench run` as the load scripts drive it on a scripts/topology.sh
# topology (source it; needs $CORRIDOR):
#
#   scenario_of CASE
#       the `bench run` scenario of a case name of scripts/bench.sh and
#       scripts/shard-sweep.sh: udp-echo-saturation is udp-echo, bulk-SIZE
#       is bulk, handshake-storm-cert is handshake-storm, others are their
#       own name.
#   traffic_args CASE DEVICES SECONDS
#       the `bench run` arguments of a traffic case (udp-echo-saturation,
#       bulk-64, bulk-1400, ... bulk-imix) for DEVICES devices and SECONDS of
#       traffic; status 2 for any other case.
#   reflector_start NS ADDR LOG PID_VAR
#       `corridor bench reflect --listen ADDR` in netns NS, output in LOG, its
#       pid in PID_VAR; status 0 once it reflects, 1 (with LOG on stderr) if
#       not within 10 s.
#   loadgen_stop_gateway NAME
#       stops the gateway under test: ocserv (NAME ocserv, its run directory
#       WORK/ocserv) or corridor (pid in GATEWAY_PID); clears GATEWAY_PID.
#   loadgen_cleanup RC
#       the on_exit clean-up of scripts/bench.sh and scripts/gateway-cost.sh:
#       the reflector (REFLECTOR_PID), the gateway (GATEWAY_PID, or ocserv
#       under WORK/ocserv), topology PREFIX down, and WORK removed unless KEEP
#       is 1 or RC is non-zero (then its path goes to stderr).

# wait_for
# shellcheck source=scripts/lib/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

scenario_of() { # CASE
    case "$1" in
    udp-echo-saturation) echo udp-echo ;;
    bulk-*) echo bulk ;;
    handshake-storm-cert) echo handshake-storm ;;
    *) echo "$1" ;;
    esac
}

traffic_args() { # CASE DEVICES SECONDS
    case "$1" in
    udp-echo-saturation) echo "--devices $2 --rate 0 --window 8 --seconds $3" ;;
    bulk-*) echo "--devices $2 --size ${1#bulk-} --seconds $3" ;;
    *)
        echo "traffic_args: $1 is not a traffic case (udp-echo-saturation, bulk-SIZE)" >&2
        return 2
        ;;
    esac
}

reflector_start() { # NS ADDR LOG PID_VAR
    local ns="$1" addr="$2" log="$3" var="$4"
    ip netns exec "$ns" "$CORRIDOR" bench reflect --listen "$addr" </dev/null >"$log" 2>&1 &
    printf -v "$var" '%s' "$!"
    wait_for 10 grep -q "reflecting on" "$log" && return 0
    echo "corridor bench reflect did not start on $addr:" >&2
    cat "$log" >&2
    return 1
}

loadgen_stop_gateway() { # NAME
    if [ "$1" = ocserv ]; then
        ocserv_peer_stop "$WORK/ocserv"
    else
        corridor_stop GATEWAY_PID 10 || true
    fi
    GATEWAY_PID=""
}

loadgen_cleanup() { # RC
    local rc="$1"
    stop_pid "$REFLECTOR_PID" 5
    # The corridor gateway, or ocserv's main process.
    stop_pid "$GATEWAY_PID" 10
    ocserv_peer_stop "$WORK/ocserv" 2>/dev/null
    "$SCRIPTS/topology.sh" down "$PREFIX" >/dev/null 2>&1
    if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
