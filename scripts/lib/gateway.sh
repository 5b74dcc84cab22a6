# shellcheck shell=bash
# corridor's gateway and relay as the scripts run them (source it; the
# functions that start one need $CORRIDOR, the binary):
#
#   gateway_config FILE FIELD=VALUE...
#   relay_config FILE FIELD=VALUE...
#       write FILE from scripts/lib/gateway.toml.in or relay.toml.in, the one
#       list of the fields the scripts and the testbed set (section.field:
#       server.listen=10.10.0.1:443 group.allowed=10.99.0.0/24 ...;
#       written_by=scripts/NAME.sh for the header line). A field given no
#       value is left out of the file and takes the program's default (the
#       rule is fill_template's, scripts/lib/template.sh).
#   corridor_start gateway|relay PID_VAR NS CONFIG LOG
#       starts `corridor gateway|relay --config CONFIG` in netns NS, its
#       output (plain: NO_COLOR) in LOG, stores its pid in the variable
#       PID_VAR and waits up to 20 s for its "gateway started" / "relay
#       started" line, which it logs once its listeners and sockets are
#       bound (the gateway's TUN and shards too). Status 0: up; 2: it exited
#       during start-up; 1: not up within 20 s (still running).
#   corridor_stop PID_VAR [SECONDS]
#       SIGTERM to the process in PID_VAR, up to SECONDS (default 10) for it
#       to exit, SIGKILL after; clears PID_VAR and sets CORRIDOR_EXIT to its
#       exit status. Status 0: it exited by itself (or was not running); 1:
#       it had to be killed.
#   load_test_corridor WRITTEN_BY WORK NS GATEWAY_IP POOL PASSWORD PID_VAR [FIELD=VALUE...]
#       the gateway the load scripts (bench.sh, flood-bench.sh, soak.sh,
#       shard-sweep.sh) measure, on certificates already in WORK/certs: a
#       configuration WORK/corridor/gateway.toml under LOAD_GENERATOR_LIMITS
#       (listening on GATEWAY_IP:443 TCP and UDP, admin on GATEWAY_IP:9100,
#       its ctl socket in WORK/corridor, pool POOL, one group "bench"
#       reaching 10.99.0.0/24, a shard per core), user alice (PASSWORD,
#       group bench, 5000 PBKDF2 iterations), started in netns NS with its
#       pid in PID_VAR; its log is WORK/corridor/gateway.log. FIELD=VALUE
#       pairs change or add fields (auth.client_ca=..., dataplane.shards=4;
#       auth.password_file= leaves the password file out). Status 0 once
#       up, else non-zero with the log's tail on stderr. Needs $CORRIDOR.
#   load_test_gateway WRITTEN_BY WORK PREFIX GATEWAY_IP POOL PASSWORD PID_VAR [FIELD=VALUE...]
#       the same, after making the certificates in WORK/certs and bringing
#       topology PREFIX up afresh; in PREFIXgateway. Needs $SCRIPTS too.
#   LOAD_GENERATOR_LIMITS
#       the [limits] fields a gateway under `corridor bench` needs: one user
#       logging in thousands of times from one address is a load generator
#       there, not an attack (no session cap, no login pace, room for every
#       simulated device at once). Append "${LOAD_GENERATOR_LIMITS[@]}".

_GATEWAY_LIB="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck disable=SC2034 # used by the scripts that source this file
LOAD_GENERATOR_LIMITS=(limits.max_sessions_per_user=0 limits.login_interval_ms=0
    limits.max_preauth=20000 limits.max_preauth_per_source=20000)
# wait_for, alive, gone
# shellcheck source=scripts/lib/proc.sh
. "$_GATEWAY_LIB/proc.sh"
# fill_template
# shellcheck source=scripts/lib/template.sh
. "$_GATEWAY_LIB/template.sh"

CORRIDOR_EXIT=""

gateway_config() { # FILE FIELD=VALUE...
    local file="$1" text
    shift
    text="$(fill_template "$_GATEWAY_LIB/gateway.toml.in" "$@")" || return
    printf '%s\n' "$text" >"$file"
}

relay_config() { # FILE FIELD=VALUE...
    local file="$1" text
    shift
    text="$(fill_template "$_GATEWAY_LIB/relay.toml.in" "$@")" || return
    printf '%s\n' "$text" >"$file"
}

corridor_start() { # gateway|relay PID_VAR NS CONFIG LOG
    local role="$1" var="$2" ns="$3" config="$4" log="$5" pid i
    case "$role" in
    gateway | relay) ;;
    *)
        echo "corridor_start: gateway or relay, not $role" >&2
        return 2
        ;;
    esac
    # `ip netns exec` execs the binary, so $! is the gateway (or relay) itself.
    NO_COLOR=1 ip netns exec "$ns" "$CORRIDOR" "$role" --config "$config" </dev/null >"$log" 2>&1 &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || return 2
        grep -q "$role started" "$log" && return 0
        sleep 0.1
    done
    return 1
}

# CORRIDOR_EXIT is for the caller.
# shellcheck disable=SC2034
corridor_stop() { # PID_VAR [SECONDS]
    local var="$1" seconds="${2:-10}" pid rc=0
    pid="${!var:-}"
    CORRIDOR_EXIT=""
    [ -n "$pid" ] || return 0
    printf -v "$var" '%s' ""
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$seconds" gone "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 2 gone "$pid" || true
        rc=1
    fi
    # Our own child: `wait` gives its exit status (127 if it is not ours).
    CORRIDOR_EXIT=0
    wait "$pid" 2>/dev/null || CORRIDOR_EXIT=$?
    return "$rc"
}

load_test_corridor() { # WRITTEN_BY WORK NS GATEWAY_IP POOL PASSWORD PID_VAR [FIELD=VALUE...]
    local by="$1" work="$2" ns="$3" ip="$4" pool="$5" password="$6" var="$7"
    shift 7
    mkdir -p "$work/corridor"
    gateway_config "$work/corridor/gateway.toml" written_by="$by" \
        server.listen="$ip:443" server.dtls_port=443 \
        server.cert="$work/certs/server.crt" server.key="$work/certs/server.key" server.max_connections=12000 \
        auth.password_file=passwd network.pool="$pool" dataplane.shards=0 \
        admin.listen="$ip:9100" admin.ctl_socket=ctl.sock \
        group.name=bench group.allowed=10.99.0.0/24 group.split_include=10.99.0.0/24 \
        "${LOAD_GENERATOR_LIMITS[@]}" "$@" || return
    printf '%s\n' "$password" | "$CORRIDOR" passwd --file "$work/corridor/passwd" alice --group bench --iterations 5000 ||
        return
    corridor_start gateway "$var" "$ns" "$work/corridor/gateway.toml" "$work/corridor/gateway.log" ||
        { tail -n 30 "$work/corridor/gateway.log" >&2; return 1; }
}

load_test_gateway() { # WRITTEN_BY WORK PREFIX GATEWAY_IP POOL PASSWORD PID_VAR [FIELD=VALUE...]
    local by="$1" work="$2" prefix="$3" ip="$4" pool="$5" password="$6" var="$7"
    shift 7
    "$SCRIPTS/certs.sh" "$work/certs" >/dev/null || return
    "$SCRIPTS/topology.sh" down "$prefix"
    "$SCRIPTS/topology.sh" up "$prefix" || return
    load_test_corridor "$by" "$work" "${prefix}gateway" "$ip" "$pool" "$password" "$var" "$@"
}
