#!/usr/bin/env bash
# corridor main-job demo: the stock `openconnect` client reaches servers in an
# organisation's network through corridor, on a namespace topology built on
# this machine (scripts/topology.sh):
#
#   device ──10.10.0.0/24── gateway (corridor, TUN corridor0) ──10.99.0.0/24── org
#   openconnect, tun0                                                          HTTP :8080, UDP echo :9000
#
# What it proves, each step a check that stops the demo with "FAILED: <what>":
#   - corridor builds, starts, creates its TUN and listens on TLS and DTLS 443;
#   - openconnect logs in as alice with a password and gets a tunnel address
#     from the pool, with DTLS-PSK (PSK-NEGOTIATE) established;
#   - a page and a 200 MB random file fetched from the org over the tunnel
#     arrive byte for byte (sha256), and the file came over DTLS, not CSTP;
#   - 100 UDP datagrams of 4 .. (tunnel MTU - 28) bytes echo back identical;
#   - the session ends cleanly when the client disconnects and the gateway
#     stops with status 0 on SIGTERM, logging its counters.
# Then it prints a short report. Everything it started (client, gateway, org
# servers, namespaces, temp files) is removed on success, failure and Ctrl-C.
#
#   sudo bash scripts/demo.sh            # device → gateway directly
#   sudo bash scripts/demo.sh --relay    # device → relay ← gateway (dials out)
#
# With --relay the same checks run through `corridor relay` on the relayed
# topology (scripts/topology.sh up-relay): the gateway sits behind a firewall
# that lets nothing in and dials out to the relay on 3101; the device asks
# the relay for vpn.test on 443; TLS is spliced by SNI and DTLS forwarded by
# App-ID through a UDP port the gateway opened from inside. It also checks
# that nothing can connect in to the gateway, and reports the relay's counters.
#
# Runs as root on Debian 12; installs its apt packages if missing (apt-get
# update only then) and needs a Rust toolchain (cargo) for the build.
# Environment:
#   DEMO_KEEP=1   keep the work directory (config, certificates, logs) and print its path
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
# shellcheck source=scripts/lib/packages.sh
. "$SCRIPTS/lib/packages.sh"
# wait_for, alive, gone, stop_pid, listening
# shellcheck source=scripts/lib/proc.sh
. "$SCRIPTS/lib/proc.sh"
# step, info, die, on_exit, strip_ansi
# shellcheck source=scripts/lib/log.sh
. "$SCRIPTS/lib/log.sh"
# gateway_config, relay_config, corridor_start, corridor_stop
# shellcheck source=scripts/lib/gateway.sh
. "$SCRIPTS/lib/gateway.sh"

RELAYED=""
case "${1:-}" in
"") ;;
--relay) RELAYED=1 ;;
*)
    echo "usage: $0 [--relay]" >&2
    exit 2
    ;;
esac

# The demo topology uses the plain names device/gateway/org (and relay).
PREFIX=""
NS_DEVICE="${PREFIX}device"
NS_GATEWAY="${PREFIX}gateway"
NS_ORG="${PREFIX}org"
NS_RELAY="${PREFIX}relay"

# Direct: the device reaches the gateway at 10.10.0.1. Relayed: the relay
# holds 10.10.0.1 and the gateway 10.20.0.2 behind it.
GATEWAY_IP=10.10.0.1
RELAY_GATEWAY_SIDE=10.20.0.1
GATEWAY_RELAY_SIDE=10.20.0.2
SERVER_NAME=vpn.test
ORG_IP=10.99.0.2
HTTP_PORT=8080
UDP_PORT=9000
POOL=192.168.99.0/24
POOL_PREFIX=192.168.99.
GATEWAY_TUN=corridor0
GATEWAY_TUN_ADDR=192.168.99.1
DEVICE_TUN=tun0
DEMO_USER=alice
DEMO_GROUP=org
BIG_FILE_MB=200
UDP_DATAGRAMS=100

APT_PACKAGES=(openconnect vpnc-scripts iproute2 openssl curl python3 nftables)

# What the gateway's log must show (tracing output, one line per event). Kept
# here so a change of wording in the gateway is a one-line change in the demo.
# (tracing prints &str fields quoted: user="alice"; every session event
# carries event="...": docs/operations.md, "Logs").
LOG_LOGIN="\\blogin event=\"login\" session=.*user=\"?$DEMO_USER\\b"
LOG_DTLS="DTLS established"
LOG_ENDED="session ended"
LOG_STOPPED="gateway stopped"
# Lines shown in the report.
LOG_REPORT='gateway started|login |tunnel up|DTLS established|shard|session ended|counters'

# Filled in as the demo goes; read by cleanup and the report.
WORK=""
DATA=""
GATEWAY_PID=""
RELAY_PID=""
OPENCONNECT_PID=""
HTTP_PID=""
UDP_PID=""
TOPOLOGY_UP=""
declare -A RESULT=()

# ---------------------------------------------------------------------------
# helpers

# Time since the epoch in seconds with decimals, for elapsed-time figures.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

show_log_tail() { # TITLE FILE
    [ -s "$2" ] || return 0
    printf '\n---- last lines of %s (%s) ----\n' "$1" "$2" >&2
    strip_ansi "$2" | tail -n 25 >&2
}

# ---------------------------------------------------------------------------
# teardown: runs on every exit (success, failure, Ctrl-C, TERM; on_exit)

cleanup() { # RC
    local rc="$1"
    # A failed check shows the logs behind it; an interrupt (130/143) does not.
    if [ "$rc" -eq 1 ] && [ -n "$WORK" ]; then
        show_log_tail "gateway log" "$WORK/gateway.log"
        show_log_tail "relay log" "$WORK/relay.log"
        show_log_tail "openconnect log" "$WORK/openconnect.log"
    fi
    step "cleaning up"
    stop_pid "$OPENCONNECT_PID" 5
    corridor_stop GATEWAY_PID 10
    corridor_stop RELAY_PID 5
    stop_pid "$HTTP_PID" 3
    stop_pid "$UDP_PID" 3
    # Also takes down anything left inside the namespaces.
    [ -n "$TOPOLOGY_UP" ] && "$SCRIPTS/topology.sh" down "$PREFIX"
    [ -n "$DATA" ] && rm -rf "$DATA"
    if [ -n "$WORK" ]; then
        if [ "${DEMO_KEEP:-}" = 1 ]; then
            info "kept $WORK (DEMO_KEEP=1)"
        else
            rm -rf "$WORK"
        fi
    fi
    case "$rc" in
    0) info "done" ;;
    130 | 143) info "interrupted" ;;
    *) printf '\nFAILED: %s\n' "${FAILED_CHECK:-exit status $rc}" >&2 ;;
    esac
}

# ---------------------------------------------------------------------------
# setup

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root: namespaces, TUN devices and port 443 need it"
}

install_packages() {
    step "packages: ${APT_PACKAGES[*]}"
    install_missing "${APT_PACKAGES[@]}"
}

find_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    # rustup installs into ~/.cargo/bin, which a root shell under sudo may not have on PATH.
    if [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
        PATH="${HOME:-/root}/.cargo/bin:$PATH"
        return 0
    fi
    die "cargo not found: install a Rust toolchain (https://rustup.rs) and re-run"
}

build_gateway() {
    step "building corridor (cargo build --release)"
    find_cargo
    (cd "$REPO" && cargo build --release)
    CORRIDOR="$REPO/target/release/corridor"
    [ -x "$CORRIDOR" ] || die "build produced no $CORRIDOR"
}

bring_up_topology() {
    if [ -n "$RELAYED" ]; then
        step "topology: namespaces $NS_DEVICE, $NS_RELAY, $NS_GATEWAY (firewalled, NAT), $NS_ORG"
    else
        step "topology: namespaces $NS_DEVICE, $NS_GATEWAY, $NS_ORG"
    fi
    # A run that was killed hard (SIGKILL, power loss) can leave the namespaces
    # and whatever ran in them behind; start from nothing.
    "$SCRIPTS/topology.sh" down "$PREFIX"
    local t0
    t0="$(now)"
    TOPOLOGY_UP=1
    if [ -n "$RELAYED" ]; then
        "$SCRIPTS/topology.sh" up-relay "$PREFIX"
    else
        "$SCRIPTS/topology.sh" up "$PREFIX"
    fi
    info "up in $(elapsed "$t0") s"
}

make_work_dirs() {
    WORK="$(mktemp -d /tmp/corridor-demo.XXXXXX)"
    # The 200 MB file and its downloaded copy live in RAM when /dev/shm exists.
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        DATA="$(mktemp -d /dev/shm/corridor-demo-data.XXXXXX)"
    else
        DATA="$WORK/data"
        mkdir -p "$DATA"
    fi
    mkdir -p "$DATA/www"
}

make_certs() {
    step "certificates (scripts/certs.sh)"
    "$SCRIPTS/certs.sh" "$WORK/certs" >/dev/null
    info "CA, server (vpn.test, $GATEWAY_IP), client and relay-link certificates in $WORK/certs"
}

write_gateway_config() {
    step "gateway configuration and user $DEMO_USER"
    # Relative paths are relative to the config file (see config/gateway.example.toml).
    local listen="$GATEWAY_IP" relay=()
    if [ -n "$RELAYED" ]; then
        listen="$GATEWAY_RELAY_SIDE"
        # The gateway dials out to the relay and proves this secret (never
        # sent itself); nothing connects in.
        (umask 077 && openssl rand -hex 32 >"$WORK/relay.token")
        # The link runs over TLS; the gateway pins the relay's link key.
        relay=(relay.address="$RELAY_GATEWAY_SIDE:3101" relay.name="$SERVER_NAME" relay.token_file=relay.token
            relay.pin_sha256="$(cat "$WORK/certs/relay-link.pin")")
    fi
    # shards = 0: one shard per core.
    gateway_config "$WORK/gateway.toml" written_by=scripts/demo.sh \
        server.name=corridor-demo server.listen="$listen:443" server.dtls_port=443 \
        server.cert=certs/server.crt server.key=certs/server.key auth.password_file=passwd \
        network.pool="$POOL" network.tun_name="$GATEWAY_TUN" dataplane.shards=0 \
        group.name="$DEMO_GROUP" group.allowed=10.99.0.0/24 group.split_include=10.99.0.0/24 \
        admin.ctl_socket=ctl.sock "${relay[@]}" || die "could not write $WORK/gateway.toml"
    # A fresh random password each run; it never leaves the work directory.
    DEMO_PASSWORD="$(openssl rand -hex 12)"
    printf '%s\n' "$DEMO_PASSWORD" |
        "$CORRIDOR" passwd --file "$WORK/passwd" "$DEMO_USER" --group "$DEMO_GROUP" ||
        die "corridor passwd could not add $DEMO_USER"
    info "$WORK/gateway.toml; $DEMO_USER in group $DEMO_GROUP"
}

# ---------------------------------------------------------------------------
# the gateway

start_gateway() {
    step "starting corridor gateway in netns $NS_GATEWAY"
    # Plain log lines (NO_COLOR), so the greps below see the text as written.
    local rc=0
    corridor_start gateway GATEWAY_PID "$NS_GATEWAY" "$WORK/gateway.toml" "$WORK/gateway.log" || rc=$?
    [ "$rc" -ne 2 ] || die "gateway exited during start-up"
    if [ "$rc" -ne 0 ] || ! listening "$NS_GATEWAY" tcp 443 || ! listening "$NS_GATEWAY" udp 443; then
        die "gateway not listening on TCP+UDP $GATEWAY_IP:443 within 20 s"
    fi
    ip -n "$NS_GATEWAY" -4 addr show dev "$GATEWAY_TUN" 2>/dev/null | grep -q "inet $GATEWAY_TUN_ADDR/" ||
        die "gateway TUN $GATEWAY_TUN missing or without address $GATEWAY_TUN_ADDR"
    local where="$GATEWAY_IP"
    [ -n "$RELAYED" ] && where="$GATEWAY_RELAY_SIDE (firewalled: only the relay link brings devices)"
    info "pid $GATEWAY_PID, listening on TCP and UDP $where:443, TUN $GATEWAY_TUN = $GATEWAY_TUN_ADDR"
}

start_relay() {
    step "starting corridor relay in netns $NS_RELAY"
    relay_config "$WORK/relay.toml" written_by=scripts/demo.sh \
        relay.listen="$GATEWAY_IP:443" relay.gateway_listen="$RELAY_GATEWAY_SIDE:3101" \
        gateway.name="$SERVER_NAME" gateway.token_file=relay.token admin.listen=127.0.0.1:9101 \
        gateway_link.cert=certs/relay-link.crt gateway_link.key=certs/relay-link.key ||
        die "could not write $WORK/relay.toml"
    local rc=0
    corridor_start relay RELAY_PID "$NS_RELAY" "$WORK/relay.toml" "$WORK/relay.log" || rc=$?
    [ "$rc" -ne 2 ] || die "relay exited during start-up"
    if [ "$rc" -ne 0 ] || ! listening "$NS_RELAY" tcp 443 || ! listening "$NS_RELAY" udp 443 ||
        ! listening "$NS_RELAY" tcp 3101; then
        die "relay not listening on TCP+UDP $GATEWAY_IP:443 and TCP 3101 within 20 s"
    fi
    info "pid $RELAY_PID: devices on TCP+UDP $GATEWAY_IP:443, gateways on TCP $RELAY_GATEWAY_SIDE:3101"
}

# The relayed gateway: its link must come up, and nothing may connect in.
check_relay_link() {
    step "gateway link to the relay"
    wait_for 15 grep -q "relay link up" "$WORK/gateway.log" || die "the gateway's relay link did not come up"
    info "$(strip_ansi "$WORK/gateway.log" | grep -m1 -o 'relay link up.*')"
    if ip netns exec "$NS_RELAY" timeout 3 bash -c "exec 3<>/dev/tcp/$GATEWAY_RELAY_SIDE/443" 2>/dev/null; then
        die "a TCP connection from the relay's side into the gateway got through its firewall"
    fi
    RESULT[firewall]="$(ip netns exec "$NS_GATEWAY" nft list table inet corridor_fw |
        grep -o 'counter packets [0-9]*' | awk '{print $3}')"
    info "inbound TCP to $GATEWAY_RELAY_SIDE:443 dropped by the gateway's firewall (${RESULT[firewall]} packets)"
}

relay_metric() { # NAME [LABEL="VALUE"]: a relay counter or gauge, summed over its label sets (those carrying LABEL="VALUE")
    ip netns exec "$NS_RELAY" curl -s --max-time 5 http://127.0.0.1:9101/metrics |
        awk -v n="$1" -v f="${2:-}" '!/^#/ { split($1, p, "{") } !/^#/ && p[1] == n && (f == "" || index($1, f)) { s += $2 } END { print s + 0 }'
}

# Orderly stop, so the log ends with the gateway's own summary.
stop_gateway() {
    step "stopping the gateway (SIGTERM)"
    corridor_stop GATEWAY_PID 10 || die "gateway still running 10 s after SIGTERM"
    [ "$CORRIDOR_EXIT" -eq 0 ] || die "gateway exited with status $CORRIDOR_EXIT after SIGTERM (expected 0)"
    info "exited with status 0"
}

check_gateway_log() {
    step "gateway log"
    local log="$WORK/gateway.clean.log" pattern
    strip_ansi "$WORK/gateway.log" >"$log"
    for pattern in "$LOG_LOGIN" "$LOG_DTLS" "$LOG_ENDED" "$LOG_STOPPED"; do
        grep -Eq -- "$pattern" "$log" || die "gateway log has no line matching /$pattern/"
    done
    grep -q 'panicked' "$log" && die "gateway panicked"
    RESULT[errors]="$(grep -c '\bERROR\b' "$log" || true)"
    info "login, DTLS hand-off, session end and stop all logged; ${RESULT[errors]} ERROR lines"
}

# ---------------------------------------------------------------------------
# the organisation's servers

start_org_servers() {
    step "org servers in netns $NS_ORG: HTTP $ORG_IP:$HTTP_PORT, UDP echo $ORG_IP:$UDP_PORT"
    printf '<!doctype html>\n<title>org</title>\n<p>Hello from the organisation network (%s).</p>\n' \
        "$ORG_IP" >"$DATA/www/index.html"
    head -c "${BIG_FILE_MB}M" /dev/urandom >"$DATA/www/big.bin"
    BIG_SHA256="$(sha256sum "$DATA/www/big.bin" | cut -d' ' -f1)"

    ip netns exec "$NS_ORG" python3 -m http.server "$HTTP_PORT" --bind "$ORG_IP" \
        --directory "$DATA/www" </dev/null >"$WORK/http.log" 2>&1 &
    HTTP_PID=$!
    ip netns exec "$NS_ORG" python3 "$REPO/tests/e2e/udp_echo.py" serve "$ORG_IP" "$UDP_PORT" \
        </dev/null >"$WORK/udp-echo.log" 2>&1 &
    UDP_PID=$!
    wait_for 10 listening "$NS_ORG" tcp "$HTTP_PORT" || die "HTTP server did not start"
    wait_for 10 listening "$NS_ORG" udp "$UDP_PORT" || die "UDP echo server did not start"
    info "serving index.html and big.bin (${BIG_FILE_MB} MiB random, sha256 ${BIG_SHA256:0:16}...)"
}

# ---------------------------------------------------------------------------
# the device

device_tunnel_addr() {
    ip -n "$NS_DEVICE" -4 -o addr show dev "$DEVICE_TUN" 2>/dev/null |
        awk '{print $4}' | grep -F "$POOL_PREFIX" | head -n 1
}

connect_device() {
    step "connecting openconnect from netns $NS_DEVICE"
    local t0 rc=0
    t0="$(now)"
    # --background: the client forks once the tunnel is configured and the
    # parent exits 0, or exits non-zero when login or CONNECT fails.
    # --non-inter: never wait for a prompt. -v: the log lines checked below.
    local target=("https://$GATEWAY_IP/")
    # Through the relay the device asks for a name (SNI), as a real one would.
    [ -n "$RELAYED" ] && target=("--resolve=$SERVER_NAME:$GATEWAY_IP" "https://$SERVER_NAME/")
    printf '%s\n' "$DEMO_PASSWORD" |
        timeout 60 ip netns exec "$NS_DEVICE" openconnect --protocol=anyconnect \
            --user "$DEMO_USER" --passwd-on-stdin --non-inter \
            --cafile "$WORK/certs/ca.crt" --interface "$DEVICE_TUN" \
            --background --pid-file "$WORK/openconnect.pid" -v --timestamp \
            "${target[@]}" >"$WORK/openconnect.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || die "openconnect could not connect (exit $rc)"
    OPENCONNECT_PID="$(cat "$WORK/openconnect.pid")"
    wait_for 20 bash -c "ip -n $NS_DEVICE -4 addr show dev $DEVICE_TUN 2>/dev/null | grep -qF 'inet $POOL_PREFIX'" ||
        die "no tunnel address from $POOL on $DEVICE_TUN within 20 s"
    RESULT[connect]="$(elapsed "$t0") s"
    RESULT[address]="$(device_tunnel_addr)"
    RESULT[mtu]="$(ip netns exec "$NS_DEVICE" cat "/sys/class/net/$DEVICE_TUN/mtu")"

    # openconnect's own words: "Established DTLS connection (using GnuTLS).
    # Ciphersuite (DTLS1.2)-(PSK)-(AES-256-GCM)."
    local dtls_line
    dtls_line="$(grep -m1 'Established DTLS connection' "$WORK/openconnect.log" || true)"
    [ -n "$dtls_line" ] || die "openconnect did not establish DTLS (data would run over CSTP)"
    RESULT[dtls]="$(grep -o 'Ciphersuite .*' <<<"$dtls_line" | sed 's/^Ciphersuite //; s/\.$//')"
    grep -Fq -- '-(PSK)-' <<<"$dtls_line" || die "DTLS is not in PSK-NEGOTIATE mode: $dtls_line"
    RESULT[tls]="$(grep -m1 -o 'Connected to HTTPS on .* with ciphersuite .*' "$WORK/openconnect.log" |
        sed 's/.*with ciphersuite //' || true)"
    info "tunnel ${RESULT[address]} on $DEVICE_TUN (MTU ${RESULT[mtu]}) after ${RESULT[connect]}; DTLS ${RESULT[dtls]}"
}

device_udp_in() {
    # shellcheck disable=SC2016 # awk's own $2
    ip netns exec "$NS_DEVICE" awk '/^Udp:/ { n++; if (n == 2) print $2 }' /proc/net/snmp
}

fetch_page() {
    step "HTTP: the org page"
    local got
    got="$(ip netns exec "$NS_DEVICE" curl -sS --fail --max-time 20 "http://$ORG_IP:$HTTP_PORT/index.html")" ||
        die "could not fetch http://$ORG_IP:$HTTP_PORT/index.html through the tunnel"
    [ "$got" = "$(cat "$DATA/www/index.html")" ] || die "the org page arrived altered"
    RESULT[page]="$(stat -c %s "$DATA/www/index.html")"
    info "identical (${RESULT[page]} bytes)"
}

fetch_big_file() {
    step "HTTP: ${BIG_FILE_MB} MiB random file"
    local udp_before udp_after stats expected_packets
    udp_before="$(device_udp_in)"
    stats="$(ip netns exec "$NS_DEVICE" curl -sS --fail --max-time 300 -o "$DATA/download.bin" \
        -w '%{size_download} %{time_total} %{speed_download}' \
        "http://$ORG_IP:$HTTP_PORT/big.bin")" ||
        die "download of big.bin through the tunnel failed"
    udp_after="$(device_udp_in)"
    read -r 'RESULT[bytes]' 'RESULT[seconds]' 'RESULT[speed]' <<<"$stats"
    [ "$(sha256sum "$DATA/download.bin" | cut -d' ' -f1)" = "$BIG_SHA256" ] ||
        die "big.bin arrived with a different sha256"
    rm -f "$DATA/download.bin"

    # The point of the demo is the DTLS data path: the download's packets must
    # have reached the device as UDP datagrams (one per TCP segment of at most
    # MTU - 40 bytes), not as CSTP frames over TLS.
    RESULT[udp]=$((udp_after - udp_before))
    expected_packets=$((RESULT[bytes] / (RESULT[mtu] - 40)))
    [ "${RESULT[udp]}" -ge $((expected_packets * 9 / 10)) ] ||
        die "download did not go over DTLS: ${RESULT[udp]} UDP datagrams for ~$expected_packets TCP segments"
    info "sha256 identical; ${RESULT[bytes]} bytes in ${RESULT[seconds]} s; ${RESULT[udp]} DTLS datagrams"
}

udp_echo() {
    step "UDP: $UDP_DATAGRAMS datagrams echoed by $ORG_IP:$UDP_PORT"
    # Largest payload that fits the tunnel MTU without IP fragmentation.
    RESULT[echo]="$(ip netns exec "$NS_DEVICE" python3 "$REPO/tests/e2e/udp_echo.py" check \
        "$ORG_IP" "$UDP_PORT" --count "$UDP_DATAGRAMS" --max-payload $((RESULT[mtu] - 28)))" ||
        die "UDP echo through the tunnel"
    info "${RESULT[echo]}"
}

show_sessions() {
    step "the operator's view (corridor ctl sessions)"
    local table
    # The gateway's ctl socket ([admin] ctl_socket, relative to its config).
    table="$("$CORRIDOR" ctl --socket "$WORK/ctl.sock" sessions)" || die "corridor ctl sessions failed"
    grep -q "  $DEMO_USER  " <<<"$table" || die "corridor ctl sessions does not list $DEMO_USER: $table"
    local line
    while IFS= read -r line; do printf '    %s\n' "$line"; done <<<"$table"
}

disconnect_device() {
    step "disconnecting openconnect (SIGTERM: it sends BYE)"
    kill -TERM "$OPENCONNECT_PID"
    wait_for 10 gone "$OPENCONNECT_PID" || die "openconnect did not exit"
    OPENCONNECT_PID=""
    # Give the gateway a moment to log the end of the session before it stops.
    wait_for 5 grep -q "$LOG_ENDED" "$WORK/gateway.log" || true
    info "disconnected"
}

# ---------------------------------------------------------------------------
# report

report() {
    local mbs mbits
    mbs="$(awk -v s="${RESULT[speed]}" 'BEGIN { printf "%.1f", s / 1e6 }')"
    mbits="$(awk -v s="${RESULT[speed]}" 'BEGIN { printf "%.0f", s * 8 / 1e6 }')"
    printf '\n==================== corridor demo: all checks passed ====================\n'
    printf '  %-18s %s\n' \
        "client" "$(openconnect --version 2>/dev/null | sed -n 's/^OpenConnect version //p' | head -n 1)" \
        "TLS" "${RESULT[tls]}" \
        "DTLS ciphersuite" "${RESULT[dtls]}" \
        "tunnel address" "${RESULT[address]} on $DEVICE_TUN, MTU ${RESULT[mtu]}, up in ${RESULT[connect]}" \
        "org page" "${RESULT[page]} bytes, identical" \
        "download" "${RESULT[bytes]} bytes in ${RESULT[seconds]} s = $mbs MB/s ($mbits Mbit/s), sha256 identical" \
        "  over DTLS" "${RESULT[udp]} UDP datagrams received by the device" \
        "UDP echo" "${RESULT[echo]#udp echo: }" \
        "transferred" "$((RESULT[bytes] + RESULT[page])) bytes over HTTP + the UDP echo"
    if [ -n "$RELAYED" ]; then
        printf '  %-18s %s\n' \
            "relay" "streams spliced $(relay_metric corridor_relay_streams_spliced_total), DTLS flows bound $(relay_metric corridor_relay_flows_bound_total)" \
            "  datagrams" "$(relay_metric corridor_relay_udp_datagrams_total 'direction="to_devices"') to the device ($(relay_metric corridor_relay_udp_bytes_total 'direction="to_devices"') bytes), $(relay_metric corridor_relay_udp_datagrams_total 'direction="to_gateways"') to the gateway" \
            "  gateway firewall" "inbound connection refused; ${RESULT[firewall]} inbound packets dropped"
    fi
    printf '  gateway log (sessions, shards, counters):\n'
    grep -E -- "$LOG_REPORT" "$WORK/gateway.clean.log" | sed 's/^/    /'
    if [ "${RESULT[errors]}" -gt 0 ]; then
        printf '  gateway ERROR lines (%s):\n' "${RESULT[errors]}"
        grep '\bERROR\b' "$WORK/gateway.clean.log" | sed 's/^/    /'
    fi
}

# ---------------------------------------------------------------------------

main() {
    local t0
    t0="$(now)"
    on_exit cleanup
    # A command that fails outside an explicit check still names itself.
    set -o errtrace
    trap 'FAILED_CHECK="${FAILED_CHECK:-line $LINENO: $BASH_COMMAND}"' ERR

    require_root
    install_packages
    build_gateway
    make_work_dirs
    bring_up_topology
    make_certs
    write_gateway_config
    [ -n "$RELAYED" ] && start_relay
    start_gateway
    [ -n "$RELAYED" ] && check_relay_link
    start_org_servers
    connect_device
    fetch_page
    fetch_big_file
    udp_echo
    show_sessions
    if [ -n "$RELAYED" ] && [ "$(relay_metric corridor_relay_flows_bound_total)" -lt 1 ]; then
        die "no DTLS flow went through the relay"
    fi
    disconnect_device
    stop_gateway
    check_gateway_log
    report
    printf '  %-18s %s s\n' "demo time" "$(elapsed "$t0")"
}

# Run when executed; sourcing only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
