# shellcheck shell=bash
# Process and socket helpers shared by the scripts that start gateways
# (source it).

# wait_for SECONDS COMMAND...: retries COMMAND every 0.1 s until it succeeds.
wait_for() {
    local deadline i
    deadline=$(($1 * 10))
    shift
    for ((i = 0; i < deadline; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# Whether PID runs. A zombie (exited, not yet reaped: a daemonised
# openconnect is reaped by whatever PID 1 is) counts as gone.
alive() { # PID
    local state
    state="$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}
gone() { ! alive "$1"; }

# TERM a process we started, KILL it if it is still there after SECONDS.
# Succeeds silently when it is already gone.
stop_pid() { # PID SECONDS
    local pid="$1"
    [ -n "$pid" ] && alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "$2" gone "$pid" && return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 2 gone "$pid" || true
}

# Whether something listens on PORT in namespace NS.
listening() { # NS tcp|udp PORT
    local flag=-Htln
    [ "$2" = udp ] && flag=-Huln
    ip netns exec "$1" ss "$flag" "sport = :$3" | grep -q .
}
