#!/usr/bin/env bash
# ocserv 1.1.6 (Debian's `ocserv` package) as the reference peer on the
# scripts/topology.sh topology: same certificates, pool, routes and user as the
# corridor runs, so the two gateways can be measured on identical work.
#
# As a library (for the A/B scripts):
#   source scripts/ocserv-peer.sh
#   ocserv_peer_start PREFIX CERTDIR RUNDIR PASSWORD   # returns once ocserv listens
#   ocserv_peer_stop RUNDIR
#
# As a command:
#   scripts/ocserv-peer.sh start PREFIX CERTDIR RUNDIR   # password of alice on stdin
#   scripts/ocserv-peer.sh stop RUNDIR
#
# With OCSERV_PEER_AUTH=certificate, users log in by client certificate alone
# (the PASSWORD argument is ignored and the command form reads no stdin).
#
# ocserv listens on 10.10.0.1:443 TCP+UDP inside ${PREFIX}gateway, hands out
# 192.168.99.0/24 (or $OCSERV_PEER_POOL), pushes the route 10.99.0.0/24 and offers DTLS-PSK
# (PSK-NEGOTIATE) and the legacy DTLS modes. Everything it owns lives in RUNDIR
# (ocserv.conf, ocpasswd, main socket, pid file, ocserv.log): it never reads
# /etc/ocserv, never writes /run or utmp, opens no occtl socket, does not chroot
# and does not daemonise (foreground child of this shell, logging to
# RUNDIR/ocserv.log).
#
# The Debian package's own service is not used (and is not started in a
# container: policy-rc.d denies it).

# Users and groups the workers run as; both exist on every Debian.
# stop_pid (and wait_for, alive); found next to this file, however it is sourced.
# shellcheck source=scripts/lib/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/proc.sh"

OCSERV_PEER_USER="${OCSERV_PEER_USER:-nobody}"
OCSERV_PEER_GROUP="${OCSERV_PEER_GROUP:-nogroup}"
# seccomp-isolated workers. Set to false if the kernel/container refuses the
# filter (workers then die right after the TLS handshake with "bad system call").
OCSERV_PEER_ISOLATE="${OCSERV_PEER_ISOLATE:-true}"
# ocserv -d level: 0 quiet .. 9 everything (per-packet at >= 4: keep it low for
# throughput runs).
OCSERV_PEER_DEBUG="${OCSERV_PEER_DEBUG:-1}"
# Debian disables TLS 1.3 in its sample config; corridor (rustls) prefers TLS 1.3,
# so the peer offers it too for a like-for-like comparison.
OCSERV_PEER_TLS_PRIORITIES="${OCSERV_PEER_TLS_PRIORITIES:-NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1}"
# Sessions at once (all users); the load generator's fleets need more than a
# handful. Every login is the same user: max-same-clients stays 0 (unlimited).
OCSERV_PEER_MAX_CLIENTS="${OCSERV_PEER_MAX_CLIENTS:-64}"
# The address pool (scripts/bench.sh widens it for its large fleets, together
# with the topology's CORRIDOR_POOL).
OCSERV_PEER_POOL="${OCSERV_PEER_POOL:-192.168.99.0/24}"
# How users log in:
#   password     user alice with the password given to ocserv_peer_start
#                (plain[passwd=RUNDIR/ocpasswd]).
#   certificate  a client certificate signed by CERTDIR/ca.crt, nothing else
#                (auth = "certificate"); the user name is the certificate's CN
#                (cert-user-oid 2.5.4.3: carol for scripts/certs.sh's client.crt).
#                No ocpasswd is written. No CRL is configured: ocserv 1.1.6 runs
#                without one.
OCSERV_PEER_AUTH="${OCSERV_PEER_AUTH:-password}"

# The auth lines of ocserv.conf for $OCSERV_PEER_AUTH; fails on an unknown value.
ocserv_peer_auth_config() { # CERTDIR RUNDIR
    local certdir="$1" rundir="$2"
    case "$OCSERV_PEER_AUTH" in
    password)
        printf '%s\n' "auth = \"plain[passwd=$rundir/ocpasswd]\""
        ;;
    certificate)
        printf '%s\n' 'auth = "certificate"' "ca-cert = $certdir/ca.crt" 'cert-user-oid = 2.5.4.3'
        ;;
    *)
        echo "ocserv-peer: OCSERV_PEER_AUTH must be password or certificate, not '$OCSERV_PEER_AUTH'" >&2
        return 1
        ;;
    esac
}

ocserv_peer_write_config() { # CERTDIR RUNDIR
    local certdir="$1" rundir="$2" auth
    auth="$(ocserv_peer_auth_config "$certdir" "$rundir")" || return 1
    cat >"$rundir/ocserv.conf" <<EOF
# Written by scripts/ocserv-peer.sh — reference peer for corridor.
$auth
listen-host = 10.10.0.1
tcp-port = 443
udp-port = 443
run-as-user = $OCSERV_PEER_USER
run-as-group = $OCSERV_PEER_GROUP
socket-file = $rundir/ocserv.sock
pid-file = $rundir/ocserv.pid
isolate-workers = $OCSERV_PEER_ISOLATE
use-occtl = false
use-utmp = false
server-cert = $certdir/server.crt
server-key = $certdir/server.key
tls-priorities = "$OCSERV_PEER_TLS_PRIORITIES"

max-clients = $OCSERV_PEER_MAX_CLIENTS
max-same-clients = 0
# Repeated test logins must never get the test address banned.
max-ban-score = 0
rate-limit-ms = 0

# Same timers as corridor's defaults (config/gateway.example.toml).
keepalive = 32400
dpd = 90
mobile-dpd = 1800
switch-to-tcp-timeout = 25
try-mtu-discovery = false
auth-timeout = 240
idle-timeout = 1200
session-timeout = 86400
cookie-timeout = 300
deny-roaming = false
rekey-time = 172800
rekey-method = ssl

dtls-psk = true
dtls-legacy = true
cisco-client-compat = true

device = vpns
predictable-ips = true
ipv4-network = $OCSERV_PEER_POOL
ping-leases = false
route = 10.99.0.0/255.255.255.0
EOF
}

# Start ocserv in ${PREFIX}gateway; returns 0 once 10.10.0.1:443 accepts TCP and
# UDP 443 is bound, non-zero (with the log tail) if it died or never listened.
ocserv_peer_start() { # PREFIX CERTDIR RUNDIR PASSWORD
    local prefix="$1" certdir rundir password="$4" ns pid
    certdir="$(cd "$2" && pwd)"
    mkdir -p "$3"
    rundir="$(cd "$3" && pwd)"
    ns="${prefix}gateway"

    command -v ocserv >/dev/null || {
        echo "ocserv-peer: ocserv is not installed (apt-get install ocserv)" >&2
        return 1
    }
    # Workers run as $OCSERV_PEER_USER and connect to the sec-mod socket in
    # RUNDIR, so every directory on the way must be searchable by them (mktemp -d
    # makes 0700 directories: the first run failed with "error connecting to
    # sec-mod socket ...: Permission denied"). Files in RUNDIR stay private.
    chmod 711 "$rundir"
    if ! runuser -u "$OCSERV_PEER_USER" -- test -x "$rundir"; then
        echo "ocserv-peer: $rundir is not reachable by user $OCSERV_PEER_USER (a parent directory is private)" >&2
        return 1
    fi
    if [ "$OCSERV_PEER_AUTH" = password ]; then
        (
            umask 077
            printf '%s\n%s\n' "$password" "$password" | ocpasswd -c "$rundir/ocpasswd" alice
        )
    fi
    (umask 077 && ocserv_peer_write_config "$certdir" "$rundir") || return 1
    ocserv -t -c "$rundir/ocserv.conf" >"$rundir/ocserv-test-config.log" 2>&1 || {
        echo "ocserv-peer: config rejected:" >&2
        cat "$rundir/ocserv-test-config.log" >&2
        return 1
    }

    # `ip netns exec` execs ocserv, so $! is ocserv's main process.
    ip netns exec "$ns" ocserv -f -d "$OCSERV_PEER_DEBUG" -c "$rundir/ocserv.conf" \
        </dev/null >"$rundir/ocserv.log" 2>&1 &
    pid=$!
    echo "$pid" >"$rundir/ocserv.main.pid"

    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "ocserv-peer: ocserv exited during start-up; log:" >&2
            tail -n 30 "$rundir/ocserv.log" >&2
            return 1
        fi
        if ip netns exec "$ns" ss -Htln 'sport = :443' | grep -q . &&
            ip netns exec "$ns" ss -Huln 'sport = :443' | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    echo "ocserv-peer: ocserv did not listen on 10.10.0.1:443 within 10 s; log:" >&2
    tail -n 30 "$rundir/ocserv.log" >&2
    return 1
}

# Stop the ocserv started by ocserv_peer_start (main process, which takes its
# sec-mod and workers down with it). Idempotent.
ocserv_peer_stop() { # RUNDIR
    local rundir="$1" pid
    [ -f "$rundir/ocserv.main.pid" ] || return 0
    pid="$(cat "$rundir/ocserv.main.pid")"
    stop_pid "$pid" 5
    wait "$pid" 2>/dev/null || true
    rm -f "$rundir/ocserv.main.pid"
}

# Command-line use; does nothing when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
    start)
        [ $# -eq 4 ] || {
            echo "usage: $0 start PREFIX CERTDIR RUNDIR  (password on stdin)" >&2
            exit 2
        }
        pw=""
        if [ "$OCSERV_PEER_AUTH" = password ]; then
            IFS= read -r pw
        fi
        ocserv_peer_start "$2" "$3" "$4" "$pw"
        # Keep no shell waiting on it: the command form leaves ocserv running.
        disown -a
        echo "ocserv-peer: running, pid $(cat "$4/ocserv.main.pid"), log $4/ocserv.log"
        ;;
    stop)
        [ $# -eq 2 ] || {
            echo "usage: $0 stop RUNDIR" >&2
            exit 2
        }
        ocserv_peer_stop "$2"
        ;;
    *)
        echo "usage: $0 start PREFIX CERTDIR RUNDIR | stop RUNDIR" >&2
        exit 2
        ;;
    esac
fi
