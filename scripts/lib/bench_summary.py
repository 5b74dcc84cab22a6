#!/usr/bin/env python3
"""Summary table of a scripts/bench.sh run: the key figures of every case,
corridor beside ocserv, with the corridor/ocserv ratio.

    python3 scripts/lib/bench_summary.py OUTDIR CASE...

Reads OUTDIR/GATEWAY-CASE.json (`corridor bench run --json` results) and
prints Markdown. A missing result shows as "failed", or "not run" for a
gateway left out of $BENCH_GATEWAYS. When both handshake storms ran, a
second table sets the certificate storm beside the password storm, per
gateway.
"""
import json
import os
import sys

GATEWAYS = ["corridor", "ocserv"]


def pct(name, p):
    return ("histograms", name, "percentiles", p)


STORM = [
    ("handshakes/s", ("figures", "handshakes_per_s"), 1),
    ("time to tunnel p50 (ms)", pct("time_to_tunnel_us", 50.0), 1e-3),
    ("time to tunnel p90 (ms)", pct("time_to_tunnel_us", 90.0), 1e-3),
    ("time to tunnel p99 (ms)", pct("time_to_tunnel_us", 99.0), 1e-3),
    ("failures", ("figures", "failures"), 1),
]

# (label, path, scale)
KEYS = {
    # Password login (alice), and client certificate alone (carol).
    "handshake-storm": STORM,
    "handshake-storm-cert": STORM,
    "udp-echo": [
        ("RTT p50 (µs)", pct("rtt_us", 50.0), 1),
        ("RTT p99 (µs)", pct("rtt_us", 99.0), 1),
        ("RTT p99.9 (µs)", pct("rtt_us", 99.9), 1),
        ("lost probes", ("figures", "loss"), 1),
    ],
    "udp-echo-saturation": [
        ("echoes/s", ("figures", "echoes_per_s"), 1),
        ("RTT p50 (µs)", pct("rtt_us", 50.0), 1),
        ("RTT p99 (µs)", pct("rtt_us", 99.0), 1),
    ],
    "bulk": [
        ("delivered Gbit/s", ("figures", "delivered_gbps"), 1),
        ("delivered kpps", ("figures", "delivered_pps"), 1e-3),
        ("loss %", ("figures", "loss_ratio"), 100),
    ],
    "many-sessions": [
        ("sessions up", ("figures", "devices_up"), 1),
        ("sessions lost while held", ("figures", "sessions_lost"), 1),
        ("gateway KiB per session", ("figures", "gateway_bytes_per_session"), 1 / 1024),
    ],
}


def lookup(doc, path):
    v = doc
    for k in path:
        if isinstance(v, dict):
            v = v.get(k)
        elif isinstance(v, list) and isinstance(k, float):
            v = next((e.get("value") for e in v if e.get("percentile") == k), None)
        else:
            return None
    return v if isinstance(v, (int, float)) else None


def fmt(x, ran=True):
    if x is None:
        return "failed" if ran else "not run"
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:.3g}"


def main():
    out, cases = sys.argv[1], sys.argv[2:]
    ran = os.environ.get("BENCH_GATEWAYS", ",".join(GATEWAYS)).split(",")
    docs = {}
    for g in GATEWAYS:
        for c in cases:
            p = os.path.join(out, f"{g}-{c}.json")
            if os.path.exists(p):
                with open(p) as f:
                    docs[(g, c)] = json.load(f)
    machine = next((d.get("machine") for d in docs.values()), {})
    commit = next((d.get("commit") for d in docs.values()), "?")
    print(f"machine: {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
          f"kernel {machine.get('kernel', '?')}; commit {commit}\n")
    print("| case | figure | corridor | ocserv | corridor/ocserv |")
    print("|---|---|---:|---:|---:|")
    for c in cases:
        keys = KEYS["bulk" if c.startswith("bulk-") else c]
        for label, path, scale in keys + [("generator cores", ("figures", "generator_cores"), 1)]:
            vals = []
            for g in GATEWAYS:
                d = docs.get((g, c))
                v = lookup(d, path) if d else None
                vals.append(None if v is None else v * scale)
            a, b = vals
            ratio = f"{a / b:.2f}" if a is not None and b else "-"
            if label == "generator cores":
                ratio = ""
            print(f"| {c} | {label} | {fmt(a, 'corridor' in ran)} | {fmt(b, 'ocserv' in ran)} | {ratio} |")
    if "handshake-storm" in cases and "handshake-storm-cert" in cases:
        logins(docs)
    return 0


def logins(docs):
    """The certificate storm against the password storm of the same run:
    what the password check costs each gateway."""
    print("\n| gateway | figure | password | certificate | certificate/password |")
    print("|---|---|---:|---:|---:|")
    for g in GATEWAYS:
        pw, cert = docs.get((g, "handshake-storm")), docs.get((g, "handshake-storm-cert"))
        if not pw or not cert:
            continue
        for label, path, scale in STORM[:4]:
            a, b = lookup(pw, path), lookup(cert, path)
            ratio = f"{b / a:.2f}" if a and b is not None else "-"
            a = None if a is None else a * scale
            b = None if b is None else b * scale
            print(f"| {g} | {label} | {fmt(a)} | {fmt(b)} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
