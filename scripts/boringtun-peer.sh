#!/usr/bin/env bash
# boringtun (Cloudflare's userspace WireGuard, `boringtun-cli` from crates.io)
# as a comparison peer on the scripts/topology.sh topology. The kernel here has
# no WireGuard module, so boringtun runs on both ends: one in ${PREFIX}gateway,
# one in ${PREFIX}device; `wg` (Debian's wireguard-tools) configures each
# through its UAPI socket /var/run/wireguard/IFACE.sock.
#
# As a library (for scripts/compare-peers.sh):
#   source scripts/boringtun-peer.sh
#   boringtun_peer_start PREFIX RUNDIR BORINGTUN THREADS   # returns once traffic flows
#   boringtun_peer_stop RUNDIR
#
# As a command:
#   scripts/boringtun-peer.sh start PREFIX RUNDIR BORINGTUN THREADS
#   scripts/boringtun-peer.sh stop RUNDIR
#
# BORINGTUN is the boringtun-cli binary; THREADS its --threads on both ends
# (compare-peers passes the core count, as corridor runs one shard per core).
# Both run in the foreground (--foreground, logging to RUNDIR/*.log) as root
# (--disable-drop-privileges), with connected UDP sockets and multi-queue TUN
# (their defaults).
#
# Interfaces: ${PREFIX}btgw (192.168.97.1/24, listen port 51820 on
# 10.10.0.1) and ${PREFIX}btdev (192.168.97.2/24, endpoint 10.10.0.1:51820),
# MTU 1420 (what wg-quick sets on a 1500-byte link). The UAPI socket directory
# is not per network namespace, so the two names differ and carry the prefix.
# Routes: 10.99.0.0/24 over ${PREFIX}btdev in the device; 192.168.97.0/24 via
# 10.99.0.1 in the org (removed by boringtun_peer_stop). Fresh keys every
# start (wg genkey), kept in RUNDIR.
#
# Start-up only succeeds when a ping from the device reaches 10.99.0.2, the
# device's peer reports a completed handshake (last_handshake_time_* in its
# UAPI answer) and both ends received bytes (`wg show transfer`).

# stop_pid (and wait_for, alive); found next to this file, however it is sourced.
# shellcheck source=scripts/lib/proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/proc.sh"

BORINGTUN_PEER_POOL=192.168.97.0/24
BORINGTUN_PEER_PORT="${BORINGTUN_PEER_PORT:-51820}"
BORINGTUN_PEER_MTU=1420

boringtun_peer_ifnames() { # PREFIX -> "GWIF DEVIF"
    echo "${1}btgw ${1}btdev"
}

# The UAPI "get" answer of IFNAME (key=value lines), straight from its socket.
_boringtun_peer_uapi_get() { # IFNAME
    python3 - "/var/run/wireguard/$1.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"get=1\n\n")
data = b""
while not data.endswith(b"\n\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
PY
}

_boringtun_peer_alive() { # PIDFILE
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

_boringtun_peer_fail() { # RUNDIR MESSAGE
    echo "boringtun-peer: $2" >&2
    local f
    for f in gateway device; do
        [ -f "$1/$f.log" ] || continue
        echo "---- boringtun $f log (tail) ----" >&2
        sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1/$f.log" | tail -n 20 >&2
    done
    for f in gateway device; do
        [ -f "$1/wg-$f.txt" ] || continue
        echo "---- wg show ($f) ----" >&2
        cat "$1/wg-$f.txt" >&2
    done
    return 1
}

boringtun_peer_start() { # PREFIX RUNDIR BORINGTUN THREADS
    local prefix="$1" rundir bin="$3" threads="$4" gwif devif side ns ifname i
    mkdir -p "$2"
    rundir="$(cd "$2" && pwd)"
    read -r gwif devif <<<"$(boringtun_peer_ifnames "$prefix")"
    if [ "${#gwif}" -gt 15 ] || [ "${#devif}" -gt 15 ]; then
        echo "boringtun-peer: prefix $prefix too long for interface names ($gwif, $devif)" >&2
        return 1
    fi
    [ -x "$bin" ] || {
        echo "boringtun-peer: $bin is not an executable" >&2
        return 1
    }
    command -v wg >/dev/null || {
        echo "boringtun-peer: wg is not installed (apt-get install wireguard-tools)" >&2
        return 1
    }
    echo "$prefix" >"$rundir/prefix"
    (
        umask 077
        wg genkey >"$rundir/gateway.key"
        wg genkey >"$rundir/device.key"
    )
    wg pubkey <"$rundir/gateway.key" >"$rundir/gateway.pub"
    wg pubkey <"$rundir/device.key" >"$rundir/device.pub"

    for side in gateway device; do
        ns="${prefix}$side"
        ifname="$gwif"
        [ "$side" = device ] && ifname="$devif"
        # A socket left by a run killed hard would make wg talk to nobody.
        rm -f "/var/run/wireguard/$ifname.sock"
        # `ip netns exec` execs boringtun, so $! is boringtun itself. NO_COLOR
        # is not honoured by its logger; the reader strips escapes.
        ip netns exec "$ns" "$bin" --foreground --disable-drop-privileges \
            --threads "$threads" --verbosity info "$ifname" \
            </dev/null >"$rundir/$side.log" 2>&1 &
        echo "$!" >"$rundir/$side.pid"
    done
    for ((i = 0; i < 100; i++)); do
        for side in gateway device; do
            _boringtun_peer_alive "$rundir/$side.pid" ||
                { _boringtun_peer_fail "$rundir" "boringtun ($side) exited during start-up"; return 1; }
        done
        [ -S "/var/run/wireguard/$gwif.sock" ] && [ -S "/var/run/wireguard/$devif.sock" ] &&
            ip -n "${prefix}gateway" link show dev "$gwif" >/dev/null 2>&1 &&
            ip -n "${prefix}device" link show dev "$devif" >/dev/null 2>&1 && break
        sleep 0.1
    done
    if ! [ -S "/var/run/wireguard/$gwif.sock" ] || ! [ -S "/var/run/wireguard/$devif.sock" ]; then
        _boringtun_peer_fail "$rundir" "no UAPI sockets in /var/run/wireguard within 10 s"
        return 1
    fi

    ip netns exec "${prefix}gateway" wg set "$gwif" private-key "$rundir/gateway.key" \
        listen-port "$BORINGTUN_PEER_PORT" \
        peer "$(cat "$rundir/device.pub")" allowed-ips 192.168.97.2/32 ||
        { _boringtun_peer_fail "$rundir" "wg set $gwif failed"; return 1; }
    ip -n "${prefix}gateway" addr replace 192.168.97.1/24 dev "$gwif"
    ip -n "${prefix}gateway" link set dev "$gwif" mtu "$BORINGTUN_PEER_MTU" up

    ip netns exec "${prefix}device" wg set "$devif" private-key "$rundir/device.key" \
        peer "$(cat "$rundir/gateway.pub")" endpoint "10.10.0.1:$BORINGTUN_PEER_PORT" \
        allowed-ips 192.168.97.1/32,10.99.0.0/24 ||
        { _boringtun_peer_fail "$rundir" "wg set $devif failed"; return 1; }
    ip -n "${prefix}device" addr replace 192.168.97.2/24 dev "$devif"
    ip -n "${prefix}device" link set dev "$devif" mtu "$BORINGTUN_PEER_MTU" up
    ip -n "${prefix}device" route replace 10.99.0.0/24 dev "$devif"
    ip -n "${prefix}org" route replace "$BORINGTUN_PEER_POOL" via 10.99.0.1

    # The first ping triggers the handshake.
    local pinged=0
    ip netns exec "${prefix}device" ping -n -c 3 -i 0.2 -W 2 10.99.0.2 >"$rundir/ping.log" 2>&1 && pinged=1
    ip netns exec "${prefix}gateway" wg show "$gwif" >"$rundir/wg-gateway.txt" 2>&1 || true
    ip netns exec "${prefix}device" wg show "$devif" >"$rundir/wg-device.txt" 2>&1 || true
    if [ "$pinged" != 1 ]; then
        cat "$rundir/ping.log" >&2
        _boringtun_peer_fail "$rundir" "no ping from ${prefix}device to 10.99.0.2 through the tunnel"
        return 1
    fi
    local rx
    # boringtun reports last_handshake_time_* as the time since the handshake
    # (not since the epoch), so `wg show latest-handshakes` prints 0 within the
    # first second; the field is only there once a handshake completed, so ask
    # the UAPI socket directly.
    _boringtun_peer_uapi_get "$devif" >"$rundir/uapi-device.txt" 2>&1 || true
    if ! grep -q '^last_handshake_time_sec=' "$rundir/uapi-device.txt"; then
        _boringtun_peer_fail "$rundir" "no completed WireGuard handshake on $devif"
        return 1
    fi
    for side in gateway device; do
        ifname="$gwif"
        [ "$side" = device ] && ifname="$devif"
        rx="$(ip netns exec "${prefix}$side" wg show "$ifname" transfer | awk '{ print $2; exit }')"
        if [ -z "$rx" ] || [ "$rx" = 0 ]; then
            _boringtun_peer_fail "$rundir" "$ifname ($side) received nothing through WireGuard"
            return 1
        fi
    done
    if ! ip -n "${prefix}device" route get 10.99.0.2 | grep -q "dev $devif"; then
        _boringtun_peer_fail "$rundir" "10.99.0.2 is not routed over $devif in ${prefix}device"
        return 1
    fi
    return 0
}

boringtun_peer_gateway_pid() { cat "$1/gateway.pid" 2>/dev/null; }
boringtun_peer_device_pid() { cat "$1/device.pid" 2>/dev/null; }

# Stop both ends (TERM removes their TUN and UAPI socket) and the org route.
# Idempotent.
boringtun_peer_stop() { # RUNDIR
    local rundir="$1" side pid prefix gwif devif
    for side in device gateway; do
        [ -f "$rundir/$side.pid" ] || continue
        pid="$(cat "$rundir/$side.pid")"
        stop_pid "$pid" 5
        wait "$pid" 2>/dev/null || true
        rm -f "$rundir/$side.pid"
    done
    if [ -f "$rundir/prefix" ]; then
        prefix="$(cat "$rundir/prefix")"
        read -r gwif devif <<<"$(boringtun_peer_ifnames "$prefix")"
        rm -f "/var/run/wireguard/$gwif.sock" "/var/run/wireguard/$devif.sock"
        ip -n "${prefix}org" route del "$BORINGTUN_PEER_POOL" via 10.99.0.1 2>/dev/null || true
        rm -f "$rundir/prefix"
    fi
    return 0
}

# Command-line use; does nothing when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
    start)
        [ $# -eq 5 ] || {
            echo "usage: $0 start PREFIX RUNDIR BORINGTUN THREADS" >&2
            exit 2
        }
        boringtun_peer_start "$2" "$3" "$4" "$5"
        disown -a
        echo "boringtun-peer: running, pids $(cat "$3/gateway.pid") (gateway) $(cat "$3/device.pid") (device), logs in $3"
        ;;
    stop)
        [ $# -eq 2 ] || {
            echo "usage: $0 stop RUNDIR" >&2
            exit 2
        }
        boringtun_peer_stop "$2"
        ;;
    *)
        echo "usage: $0 start PREFIX RUNDIR BORINGTUN THREADS | stop RUNDIR" >&2
        exit 2
        ;;
    esac
fi
