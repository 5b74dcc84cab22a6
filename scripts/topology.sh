#!/usr/bin/env bash
# Network-namespace topology for one end-to-end run (demo, e2e tests, peer A/B).
#
#   scripts/topology.sh up       [PREFIX]
#   scripts/topology.sh up-relay [PREFIX]
#   scripts/topology.sh down     [PREFIX]
#
#   ${PREFIX}device                 ${PREFIX}gateway                 ${PREFIX}org
#   to-gw 10.10.0.2/24 ──veth── to-dev 10.10.0.1/24
#                                   to-org 10.99.0.1/24 ──veth── to-gw 10.99.0.2/24
#                                   ip_forward=1                     route 192.168.99.0/24 via 10.99.0.1
#
# The device has no route to the org network (10.99.0.0/24) and the org has no
# route to the device link (10.10.0.0/24): the only way between them is the VPN
# tunnel, whose pool (192.168.99.0/24, or $CORRIDOR_POOL) the org routes back to the gateway.
#
# `up-relay` builds the relayed topology instead (the organisation opens no
# inbound port; the gateways dial out to the relay):
#
#   ${PREFIX}device  10.10.0.2 ─┐                ┌─ 10.20.0.2 ${PREFIX}gateway  10.99.0.1 ─┐
#   ${PREFIX}device2 10.10.0.3 ─┴─ br-dev 10.10.0.1 ${PREFIX}relay br-gw 10.20.0.1 ─┴─ 10.20.0.3 ${PREFIX}gateway2 10.99.0.3 ─┴─ br-org 10.99.0.2 ${PREFIX}org
#
# Devices reach only the relay (10.10.0.1, the address the direct topology
# gives the gateway, so certificates and client commands stay the same); the
# relay reaches the gateways' 10.20.0.0/24 side; the org is behind the
# gateways. Each gateway masquerades tunnel traffic into the org network
# (both may hand out the same pool), and its nftables input chain accepts
# only loopback and established/related packets: nothing connects in.
#
# Every link is created directly inside its namespaces (`ip -n NS link add ...
# peer ... netns NS2`), so nothing is ever added to the host's own network
# namespace and two runs with different prefixes can reuse the same names and
# addresses. Both verbs are idempotent: `up` on a live topology only re-applies
# addresses, routes and sysctls; `down` on a missing one does nothing.
#
# /etc/netns/${PREFIX}device/resolv.conf is created so that everything started
# with `ip netns exec ${PREFIX}device` (openconnect's vpnc-script in particular,
# should a gateway push DNS servers) sees a private /etc/resolv.conf instead of
# rewriting the host's.
set -euo pipefail

usage() {
    echo "usage: $0 up|up-relay|down [PREFIX]" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
ACTION="$1"
PREFIX="${2:-}"

NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
NS_DEVICE2="${PREFIX}device2"
NS_GATEWAY2="${PREFIX}gateway2"
NS_RELAY="${PREFIX}relay"
# Every namespace either topology may have made: `down` removes them all.
ALL_NS=("$NS_DEVICE" "$NS_GATEWAY" "$NS_ORG" "$NS_DEVICE2" "$NS_GATEWAY2" "$NS_RELAY")

# Addresses are fixed: namespaces isolate one run from another, so there is no
# reason to vary them with the prefix.
DEVICE_IP=10.10.0.2/24
GATEWAY_DEVICE_SIDE_IP=10.10.0.1/24
GATEWAY_ORG_SIDE_IP=10.99.0.1/24
ORG_IP=10.99.0.2/24
# The tunnel address pool the org routes back to the gateway. Runs with more
# devices than a /24 holds (scripts/bench.sh) widen it; 192.168.99.0/24 stays
# inside any wider pool given here, so tools that expect it still work.
POOL="${CORRIDOR_POOL:-192.168.99.0/24}"

ns_exists() {
    # `ip netns list` prints "name (id: N)" for namespaces with an id.
    ip netns list | awk '{print $1}' | grep -qxF "$1"
}

link_exists() { # NS IFNAME
    ip -n "$1" link show dev "$2" >/dev/null 2>&1
}

# A veth pair whose ends live in two namespaces from birth. If only one end is
# left (half-torn topology), it is removed first: deleting a veth end always
# deletes its peer, so the pair is then recreated whole.
ensure_veth() { # NS_A IF_A NS_B IF_B
    local ns_a="$1" if_a="$2" ns_b="$3" if_b="$4"
    if link_exists "$ns_a" "$if_a" && link_exists "$ns_b" "$if_b"; then
        return 0
    fi
    link_exists "$ns_a" "$if_a" && ip -n "$ns_a" link del dev "$if_a"
    link_exists "$ns_b" "$if_b" && ip -n "$ns_b" link del dev "$if_b"
    ip -n "$ns_a" link add "$if_a" type veth peer name "$if_b" netns "$ns_b"
}

topology_up() {
    local ns
    for ns in "$NS_DEVICE" "$NS_GATEWAY" "$NS_ORG"; do
        ns_exists "$ns" || ip netns add "$ns"
        ip -n "$ns" link set lo up
    done

    mkdir -p "/etc/netns/$NS_DEVICE"
    [ -f "/etc/netns/$NS_DEVICE/resolv.conf" ] ||
        echo "# private resolv.conf of netns $NS_DEVICE (scripts/topology.sh)" >"/etc/netns/$NS_DEVICE/resolv.conf"

    ensure_veth "$NS_DEVICE" to-gw "$NS_GATEWAY" to-dev
    ensure_veth "$NS_GATEWAY" to-org "$NS_ORG" to-gw

    ip -n "$NS_DEVICE" addr replace "$DEVICE_IP" dev to-gw
    ip -n "$NS_GATEWAY" addr replace "$GATEWAY_DEVICE_SIDE_IP" dev to-dev
    ip -n "$NS_GATEWAY" addr replace "$GATEWAY_ORG_SIDE_IP" dev to-org
    ip -n "$NS_ORG" addr replace "$ORG_IP" dev to-gw

    ip -n "$NS_DEVICE" link set to-gw up
    ip -n "$NS_GATEWAY" link set to-dev up
    ip -n "$NS_GATEWAY" link set to-org up
    ip -n "$NS_ORG" link set to-gw up

    # The gateway routes between its TUN (the pool) and the org link.
    ip netns exec "$NS_GATEWAY" sysctl -q -w net.ipv4.ip_forward=1
    # Replies from org servers to tunnel addresses go back to the gateway.
    ip -n "$NS_ORG" route replace "$POOL" via "${GATEWAY_ORG_SIDE_IP%/*}"
}

ensure_bridge() { # NS BRIDGE ADDR/PREFIX
    link_exists "$1" "$2" || ip -n "$1" link add "$2" type bridge
    ip -n "$1" addr replace "$3" dev "$2"
    ip -n "$1" link set "$2" up
}

# A veth from NS (IFNAME, ADDR) to a port of BRIDGE in BRIDGE_NS (PORT).
attach_to_bridge() { # NS IFNAME ADDR/PREFIX BRIDGE_NS PORT BRIDGE
    ensure_veth "$1" "$2" "$4" "$5"
    ip -n "$1" addr replace "$3" dev "$2"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" master "$6"
    ip -n "$4" link set "$5" up
}

# The gateway side of the relayed topology: org link, NAT, no inbound.
relayed_gateway() { # NS RELAY_SIDE_ADDR ORG_SIDE_ADDR ORG_PORT
    local ns="$1"
    attach_to_bridge "$ns" to-relay "$2" "$NS_RELAY" "$4-r" br-gw
    attach_to_bridge "$ns" to-org "$3" "$NS_ORG" "$4" br-org
    ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1
    # Relays are reached through the relay side; nothing else is routed.
    ip netns exec "$ns" nft -f - <<NFT
table inet corridor_fw
delete table inet corridor_fw
table inet corridor_fw {
    chain input {
        type filter hook input priority 0; policy drop;
        iif "lo" accept
        ct state established,related accept
        counter comment "dropped inbound"
    }
    chain nat {
        type nat hook postrouting priority 100;
        oifname "to-org" ip saddr $POOL masquerade
    }
}
NFT
}

topology_up_relay() {
    local ns
    for ns in "$NS_DEVICE" "$NS_DEVICE2" "$NS_RELAY" "$NS_GATEWAY" "$NS_GATEWAY2" "$NS_ORG"; do
        ns_exists "$ns" || ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    for ns in "$NS_DEVICE" "$NS_DEVICE2"; do
        mkdir -p "/etc/netns/$ns"
        [ -f "/etc/netns/$ns/resolv.conf" ] ||
            echo "# private resolv.conf of netns $ns (scripts/topology.sh)" >"/etc/netns/$ns/resolv.conf"
    done
    ensure_bridge "$NS_RELAY" br-dev 10.10.0.1/24
    ensure_bridge "$NS_RELAY" br-gw 10.20.0.1/24
    ensure_bridge "$NS_ORG" br-org 10.99.0.2/24
    attach_to_bridge "$NS_DEVICE" to-relay 10.10.0.2/24 "$NS_RELAY" dev1 br-dev
    attach_to_bridge "$NS_DEVICE2" to-relay 10.10.0.3/24 "$NS_RELAY" dev2 br-dev
    relayed_gateway "$NS_GATEWAY" 10.20.0.2/24 10.99.0.1/24 gw1
    relayed_gateway "$NS_GATEWAY2" 10.20.0.3/24 10.99.0.3/24 gw2
}

# Processes still running inside NS: TERM first (openconnect sends its BYE and
# runs its vpnc-script disconnect), KILL whatever is left after ~3 s.
kill_ns_processes() { # NS
    local ns="$1" pids
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    [ -n "$pids" ] || return 0
    echo "$pids" | xargs -r kill 2>/dev/null || true
    for _ in $(seq 30); do
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    echo "$pids" | xargs -r kill -9 2>/dev/null || true
}

topology_down() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        ns_exists "$ns" || continue
        kill_ns_processes "$ns"
        ip netns del "$ns"
    done
    rm -rf "/etc/netns/$NS_DEVICE" "/etc/netns/$NS_DEVICE2"
    # /etc/netns itself only if we left it empty (other namespaces may use it).
    [ -d /etc/netns ] && rmdir --ignore-fail-on-non-empty /etc/netns
    return 0
}

case "$ACTION" in
up) topology_up ;;
up-relay) topology_up_relay ;;
down) topology_down ;;
*) usage ;;
esac
