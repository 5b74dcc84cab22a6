#!/usr/bin/env bash
# OpenVPN 2.6 (Debian's `openvpn` package) as a comparison peer on the
# scripts/topology.sh topology: server in ${PREFIX}gateway, client in
# ${PREFIX}device, UDP, TUN, TLS mode, data channel AES-256-GCM only.
#
# As a library (for scripts/compare-peers.sh):
#   source scripts/openvpn-peer.sh
#   openvpn_peer_start PREFIX CERTDIR RUNDIR   # returns once traffic flows
#   openvpn_peer_stop RUNDIR
#
# As a command:
#   scripts/openvpn-peer.sh start PREFIX CERTDIR RUNDIR
#   scripts/openvpn-peer.sh stop RUNDIR
#
# CERTDIR is scripts/certs.sh's output: the server uses server.crt (EKU
# serverAuth), the client client.crt (clientAuth, CN carol); both verify the
# other against ca.crt, the client checks the server's EKU
# (--remote-cert-tls server). No DH parameters (--dh none: ECDHE), no tls-auth.
#
# The server listens on 10.10.0.1:1194/udp, puts clients in 192.168.98.0/24
# (--topology subnet; server 192.168.98.1, the client gets .2) and pushes the
# route 10.99.0.0/24. The return route 192.168.98.0/24 via 10.99.0.1 is added
# in ${PREFIX}org and removed again by openvpn_peer_stop.
#
# Data channel: --data-ciphers AES-256-GCM (and --cipher AES-256-GCM, so no
# fallback to anything else). Start-up only succeeds when both ends logged
# "Data Channel: cipher 'AES-256-GCM'", the client logged "Initialization
# Sequence Completed" and a ping from the device reaches 10.99.0.2 through the
# tunnel. DCO is off (--disable-dco: this kernel has no ovpn-dco module), so
# this is userspace OpenVPN, one process and one thread per end. Other knobs
# stay at their 2.6 defaults (tun-mtu 1500, mssfix 1492, OS socket buffers).
#
# Everything lives in RUNDIR (server.log, client.log, pid files, prefix); both
# processes run in the foreground as children of the calling shell, as root
# (no --user: nothing is dropped, as for the other peers in the comparison).

# stop_pid (and wait_for, alive); found next to this file, however it is sourced.
# shellcheck source=scripts/lib/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/proc.sh"

OPENVPN_PEER_PORT="${OPENVPN_PEER_PORT:-1194}"
OPENVPN_PEER_NET=192.168.98.0
OPENVPN_PEER_MASK=255.255.255.0
OPENVPN_PEER_POOL=192.168.98.0/24
# ovpn-gw / ovpn-dev: fixed names, each in its own namespace.
OPENVPN_PEER_GW_IF=ovpn-gw
OPENVPN_PEER_DEV_IF=ovpn-dev

_openvpn_peer_alive() { # PIDFILE
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

_openvpn_peer_fail() { # RUNDIR MESSAGE
    echo "openvpn-peer: $2" >&2
    local f
    for f in server client; do
        [ -f "$1/$f.log" ] || continue
        echo "---- openvpn $f log (tail) ----" >&2
        tail -n 25 "$1/$f.log" >&2
    done
    return 1
}

# Start server and client; 0 once the tunnel carries a ping with AES-256-GCM
# on both ends, non-zero (with both log tails) otherwise.
openvpn_peer_start() { # PREFIX CERTDIR RUNDIR
    local prefix="$1" certdir rundir i
    certdir="$(cd "$2" && pwd)"
    mkdir -p "$3"
    rundir="$(cd "$3" && pwd)"
    echo "$prefix" >"$rundir/prefix"

    command -v openvpn >/dev/null || {
        echo "openvpn-peer: openvpn is not installed (apt-get install openvpn)" >&2
        return 1
    }

    # `ip netns exec` execs openvpn, so $! is openvpn itself.
    ip netns exec "${prefix}gateway" openvpn \
        --mode server --tls-server \
        --dev "$OPENVPN_PEER_GW_IF" --dev-type tun --topology subnet \
        --proto udp --local 10.10.0.1 --port "$OPENVPN_PEER_PORT" \
        --server "$OPENVPN_PEER_NET" "$OPENVPN_PEER_MASK" \
        --push "route 10.99.0.0 255.255.255.0" \
        --ca "$certdir/ca.crt" --cert "$certdir/server.crt" --key "$certdir/server.key" --dh none \
        --data-ciphers AES-256-GCM --cipher AES-256-GCM \
        --disable-dco --keepalive 10 60 --verb 3 \
        </dev/null >"$rundir/server.log" 2>&1 &
    echo "$!" >"$rundir/server.pid"

    for ((i = 0; i < 100; i++)); do
        _openvpn_peer_alive "$rundir/server.pid" ||
            { _openvpn_peer_fail "$rundir" "server exited during start-up"; return 1; }
        grep -q 'Initialization Sequence Completed' "$rundir/server.log" && break
        sleep 0.1
    done
    grep -q 'Initialization Sequence Completed' "$rundir/server.log" ||
        { _openvpn_peer_fail "$rundir" "server not ready within 10 s"; return 1; }

    ip -n "${prefix}org" route replace "$OPENVPN_PEER_POOL" via 10.99.0.1

    ip netns exec "${prefix}device" openvpn \
        --client --dev "$OPENVPN_PEER_DEV_IF" --dev-type tun \
        --proto udp --remote 10.10.0.1 "$OPENVPN_PEER_PORT" --nobind \
        --ca "$certdir/ca.crt" --cert "$certdir/client.crt" --key "$certdir/client.key" \
        --remote-cert-tls server \
        --data-ciphers AES-256-GCM --cipher AES-256-GCM \
        --disable-dco --verb 3 \
        </dev/null >"$rundir/client.log" 2>&1 &
    echo "$!" >"$rundir/client.pid"

    for ((i = 0; i < 200; i++)); do
        _openvpn_peer_alive "$rundir/client.pid" ||
            { _openvpn_peer_fail "$rundir" "client exited during start-up"; return 1; }
        grep -q 'Initialization Sequence Completed' "$rundir/client.log" &&
            grep -q "Data Channel: cipher" "$rundir/server.log" && break
        sleep 0.1
    done
    grep -q 'Initialization Sequence Completed' "$rundir/client.log" ||
        { _openvpn_peer_fail "$rundir" "client did not complete initialisation within 20 s"; return 1; }

    # The data channel cipher, as each end reports it.
    local end
    for end in client server; do
        if ! grep -q "Data Channel: cipher 'AES-256-GCM'" "$rundir/$end.log"; then
            _openvpn_peer_fail "$rundir" "$end: data channel cipher is not AES-256-GCM ($(grep -o "Data Channel: cipher '[^']*'" "$rundir/$end.log" | head -n 1 || echo 'no Data Channel line'))"
            return 1
        fi
    done
    if grep -qi 'DCO.*enabled\|dco_installed' "$rundir/client.log" "$rundir/server.log"; then
        _openvpn_peer_fail "$rundir" "data channel offload is on (expected userspace)"
        return 1
    fi

    if ! ip netns exec "${prefix}device" ping -n -c 3 -i 0.2 -W 2 10.99.0.2 >"$rundir/ping.log" 2>&1; then
        cat "$rundir/ping.log" >&2
        _openvpn_peer_fail "$rundir" "no ping from ${prefix}device to 10.99.0.2 through the tunnel"
        return 1
    fi
    # The route really goes over the tunnel device.
    if ! ip -n "${prefix}device" route get 10.99.0.2 | grep -q "dev $OPENVPN_PEER_DEV_IF"; then
        _openvpn_peer_fail "$rundir" "10.99.0.2 is not routed over $OPENVPN_PEER_DEV_IF in ${prefix}device"
        return 1
    fi
    return 0
}

# The PIDs of the server (gateway side) and the client (device side).
openvpn_peer_server_pid() { cat "$1/server.pid" 2>/dev/null; }
openvpn_peer_client_pid() { cat "$1/client.pid" 2>/dev/null; }

# Stop client, then server; remove the org return route. Idempotent.
openvpn_peer_stop() { # RUNDIR
    local rundir="$1" which pid prefix
    for which in client server; do
        [ -f "$rundir/$which.pid" ] || continue
        pid="$(cat "$rundir/$which.pid")"
        stop_pid "$pid" 5
        wait "$pid" 2>/dev/null || true
        rm -f "$rundir/$which.pid"
    done
    if [ -f "$rundir/prefix" ]; then
        prefix="$(cat "$rundir/prefix")"
        ip -n "${prefix}org" route del "$OPENVPN_PEER_POOL" via 10.99.0.1 2>/dev/null || true
        rm -f "$rundir/prefix"
    fi
    return 0
}

# Command-line use; does nothing when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
    start)
        [ $# -eq 4 ] || {
            echo "usage: $0 start PREFIX CERTDIR RUNDIR" >&2
            exit 2
        }
        openvpn_peer_start "$2" "$3" "$4"
        disown -a
        echo "openvpn-peer: running, server pid $(cat "$4/server.pid"), client pid $(cat "$4/client.pid"), logs in $4"
        ;;
    stop)
        [ $# -eq 2 ] || {
            echo "usage: $0 stop RUNDIR" >&2
            exit 2
        }
        openvpn_peer_stop "$2"
        ;;
    *)
        echo "usage: $0 start PREFIX CERTDIR RUNDIR | stop RUNDIR" >&2
        exit 2
        ;;
    esac
fi
