# shellcheck shell=bash
# What the scripts print as they go, and their way out (source it).
#
#   step TEXT    a banner for the next stage ("\n==> TEXT")
#   info TEXT    a line under it ("    TEXT")
#   warn TEXT    something failed and the run goes on (stderr)
#   die TEXT     the run cannot go on: says so on stderr and exits 1; the
#                line is "FAILED: TEXT" after a blank line, or "NAME: TEXT"
#                in a script that sets LOG_NAME=NAME. FAILED_CHECK keeps TEXT
#                for the script's cleanup.
#   on_exit FUNCTION
#                when the script ends (done, failed, Ctrl-C, TERM), runs
#                FUNCTION RC once with errexit off, then exits with RC;
#                Ctrl-C exits 130, TERM 143.
#   strip_ansi [FILE...]
#                colour codes out of a log

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf '    WARNING: %s\n' "$*" >&2; }

FAILED_CHECK=""
# FAILED_CHECK is for the caller.
# shellcheck disable=SC2034
die() {
    FAILED_CHECK="$*"
    if [ -n "${LOG_NAME:-}" ]; then
        printf '%s: %s\n' "$LOG_NAME" "$*" >&2
    else
        printf '\nFAILED: %s\n' "$*" >&2
    fi
    exit 1
}

_ON_EXIT=""
on_exit() { # FUNCTION
    _ON_EXIT="$1"
    trap _on_exit_run EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_on_exit_run() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    "$_ON_EXIT" "$rc"
    exit "$rc"
}

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$@"; }
