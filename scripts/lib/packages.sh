# shellcheck shell=bash
# Idempotent Debian package installs, shared by the scripts (source it).
# `apt-get update` runs only when something is actually missing.

# Whether a Debian package is installed.
pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Runs a command as root: directly when we are root, through non-interactive sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "need root (or passwordless sudo) to run: $*" >&2
        return 1
    fi
}

# install_missing PKG...: installs those not installed yet, without
# recommends (which would pull in services such as dnsmasq). Servers we
# install only to run in our own namespaces (ocserv, openvpn) must not start
# on the host: a temporary policy-rc.d keeps Debian's maintainer scripts from
# starting any service during the install, and units of packages this call
# installed are disabled afterwards where systemd runs.
install_missing() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "    all present: $*"
        return 0
    fi
    echo "    installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy" && made_policy=1
    fi
    as_root apt-get update -q || rc=$?
    [ "$rc" -ne 0 ] || as_root apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ "$made_policy" -eq 0 ] || as_root rm -f "$policy"
    if [ "$rc" -eq 0 ] && [ -d /run/systemd/system ]; then
        for p in "${missing[@]}"; do
            case "$p" in
            ocserv) as_root systemctl disable --now ocserv.service ocserv.socket >/dev/null 2>&1 || true ;;
            openvpn) as_root systemctl disable --now openvpn.service >/dev/null 2>&1 || true ;;
            esac
        done
    fi
    return "$rc"
}
