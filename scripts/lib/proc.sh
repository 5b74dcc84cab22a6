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

# PID and its descendants, one a line (from /proc/*/stat field 4, the
# parent); nothing when PID is gone.
tree_pids() { # PID
    [ -e "/proc/$1" ] || return 0
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
        # The command name (field 2) may hold spaces and ") ": fields are
        # counted from its last ") ".
        { n = split($0, part, ") "); split(part[n], f, " "); parent[$1] = f[2] }
        END {
            for (p in parent) {
                q = p
                for (depth = 0; q != "" && q != 0 && depth < 64; depth++) {
                    if (q == root) { print p; break }
                    q = parent[q]
                }
            }
        }'
}

# CPU time (user + system, in clock ticks: `getconf CLK_TCK` a second) of
# the processes PID..., from /proc/PID/stat fields 14 and 15 (a process's
# line holds all its threads' time); a process gone counts 0.
cpu_ticks() { # PID...
    local p files=()
    for p in "$@"; do files+=("/proc/$p/stat"); done
    [ ${#files[@]} -gt 0 ] || { echo 0; return 0; }
    { cat "${files[@]}" 2>/dev/null || true; } | awk '
        { n = split($0, part, ") "); split(part[n], f, " "); total += f[12] + f[13] }
        END { print total + 0 }'
}

# The CPU time of PID and every descendant still running, in clock ticks.
tree_cpu_ticks() { # PID
    # shellcheck disable=SC2046 # one pid a word
    cpu_ticks $(tree_pids "$1")
}
