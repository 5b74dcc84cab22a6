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
# recommends (which would pull in services such as dnsmasq).
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
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}
