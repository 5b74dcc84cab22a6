#!/usr/bin/env bash
# Test PKI for the end-to-end runs, made with the openssl CLI.
#
#   scripts/certs.sh DIR
#
# Writes into DIR (created if needed):
#   ca.crt     ca.key      a self-signed CA ("corridor test CA"), EC P-256
#   server.crt server.key  the gateway: SAN DNS:vpn.test + IP:10.10.0.1, serverAuth, EC P-256
#   client.crt client.key  a device certificate, CN carol, clientAuth, EC P-256
#   relay-link.crt relay-link.key
#                          the relay's gateway-link certificate ([gateway_link]):
#                          SAN DNS:relay.test + IP:10.20.0.1, serverAuth, EC P-256
#   relay-link.pin         its pin for the gateways' [[relay]] pin_sha256: the
#                          SHA-256 of its SubjectPublicKeyInfo, base64
#
# Idempotent: files that exist and still verify against ca.crt are kept; a new
# CA re-issues both leaves. Keys are mode 600.
#
# Leaves are proper end-entity certificates (basicConstraints CA:FALSE, key
# usage, extended key usage, SKI/AKI) because both rustls/webpki (the gateway)
# and GnuTLS (openconnect, ocserv) check those.
set -euo pipefail

[ $# -eq 1 ] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
DIR="$1"
mkdir -p "$DIR"
cd "$DIR"
umask 077

CA_DAYS=3650
LEAF_DAYS=825

new_ec_key() { # FILE
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# Does FILE exist, verify against ca.crt and match KEY?
leaf_ok() { # CRT KEY
    [ -s "$1" ] && [ -s "$2" ] &&
        openssl verify -CAfile ca.crt "$1" >/dev/null 2>&1 &&
        [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]
}

ca_ok() {
    [ -s ca.crt ] && [ -s ca.key ] &&
        openssl verify -CAfile ca.crt ca.crt >/dev/null 2>&1 &&
        [ "$(openssl x509 -in ca.crt -noout -pubkey)" = "$(openssl pkey -in ca.key -pubout)" ]
}

# Sign a CSR read from stdin with the CA; the extensions come from EXT_TEXT.
sign_leaf() { # CRT EXT_TEXT
    local ext
    ext="$(mktemp)"
    printf '%s\n' "$2" >"$ext"
    openssl x509 -req -in /dev/stdin -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -days "$LEAF_DAYS" -sha256 -extfile "$ext" -out "$1" 2>/dev/null
    rm -f "$ext"
}

issue_leaf() { # NAME SUBJECT EXT_TEXT
    local name="$1" subject="$2" ext_text="$3"
    new_ec_key "$name.key"
    openssl req -new -key "$name.key" -subj "$subject" |
        sign_leaf "$name.crt" "$ext_text"
    echo "certs.sh: issued $DIR/$name.crt ($subject)"
}

if ! ca_ok; then
    new_ec_key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$CA_DAYS" -subj "/CN=corridor test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out ca.crt
    rm -f server.crt client.crt relay-link.crt # leaves of an old CA are worthless now
    echo "certs.sh: issued $DIR/ca.crt"
fi

leaf_ok server.crt server.key || issue_leaf server "/CN=vpn.test" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:vpn.test,IP:10.10.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

leaf_ok client.crt client.key || issue_leaf client "/CN=carol" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

leaf_ok relay-link.crt relay-link.key || issue_leaf relay-link "/CN=relay.test" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:relay.test,IP:10.20.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

# The pin is of the key, so it stays while the key does.
openssl pkey -in relay-link.key -pubout -outform der | openssl dgst -sha256 -binary | base64 >relay-link.pin

chmod 600 ca.key server.key client.key relay-link.key
chmod 644 ca.crt server.crt client.crt relay-link.crt relay-link.pin
