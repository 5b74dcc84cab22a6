#!/usr/bin/env python3
"""scripts/gateway-cost.sh's arithmetic (stdlib only).

    python3 scripts/lib/gateway_cost.py run RESULT.json BEFORE.prom AFTER.prom KEY=VALUE...
        one JSON line: the run's parameters (KEY=VALUE), the load
        generator's figures, the gateway CPU's cost (busy_jiffies, hz,
        tree_ns given by the script) per delivered packet and per GB, and
        for corridor the batch counters between the two /metrics pages
    python3 scripts/lib/gateway_cost.py echo RESULT.json KEY=VALUE...
        one JSON line: a paced udp-echo run's round-trip percentiles
    python3 scripts/lib/gateway_cost.py summary OUT
        OUT/runs.jsonl -> OUT/summary.json, cost.svg, and a Markdown
        summary on stdout (medians over rounds)
"""
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plots  # noqa: E402

# The shard counters whose deltas make the batch figures.
COUNTERS = ["rx_datagrams", "rx_records", "tun_reads", "tun_writes", "tx_datagrams", "loop_turns",
            "batched_waits", "tx_records", "tx_batches", "gso_sends", "gro_receives", "gro_datagrams",
            "tun_super_packets", "tun_super_writes", "tun_super_segments"]
SAMPLE = re.compile(r'^corridor_shard_([a-z_]+)_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)$')
GATEWAYS = ["corridor", "corridor-batch", "corridor-null", "corridor-epoll", "ocserv"]
plots.COLOURS.update({"corridor-batch": "#a6dba0", "corridor-null": "#878787", "corridor-epoll": "#5aae61"})


def counters(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                m = SAMPLE.match(line.strip())
                if m and m.group(1) in COUNTERS:
                    out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    except OSError:
        pass
    return out


def ratio(a, b):
    return a / b if b else None


def run(result, before, after, pairs):
    params = dict(p.split("=", 1) for p in pairs)
    with open(result) as f:
        figures = json.load(f).get("figures", {})
    delivered = figures.get("packets_delivered", 0)
    forwarded = int(params["forwarded"])
    busy_ns = int(params["busy_jiffies"]) * 1e9 / int(params["hz"])
    # IP bytes forwarded: every packet of a run has the run's size.
    bytes_forwarded = forwarded * int(params["size"])
    row = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in params.items()}
    row.update({
        "packets_delivered": delivered,
        "forwarded_pps": forwarded / int(params["seconds"]),
        "forwarded_gbps": bytes_forwarded * 8 / int(params["seconds"]) / 1e9,
        "loss_ratio": figures.get("loss_ratio"),
        "generator_cpu_s": figures.get("generator_cpu_s"),
        "busy_ns": busy_ns,
        "ns_per_packet": ratio(busy_ns, forwarded),
        "cpu_s_per_gb": ratio(busy_ns / 1e9, bytes_forwarded / 1e9),
        "tree_ns_per_packet": ratio(int(params["tree_ns"]), forwarded),
    })
    b, a = counters(before), counters(after)
    if a:
        d = {k: a.get(k, 0) - b.get(k, 0) for k in COUNTERS}
        row["counters"] = d
        row["packets_per_turn"] = ratio(d["rx_datagrams"] + d["tun_reads"], d["loop_turns"])
        row["batched_wait_share"] = ratio(d["batched_waits"], d["loop_turns"])
        row["records_per_send"] = ratio(d["tx_records"], d["tx_batches"])
        row["datagrams_per_gro_receive"] = ratio(d["gro_datagrams"], d["gro_receives"])
        row["segments_per_super_write"] = ratio(d["tun_super_segments"], d["tun_super_writes"])
        row["segments_per_super_read"] = ratio(d["tun_reads"], d["tun_super_packets"])
    print(json.dumps(row, sort_keys=True))


def echo(result, pairs):
    row = dict(p.split("=", 1) for p in pairs)
    with open(result) as f:
        report = json.load(f)
    hist = report.get("histograms", {}).get("rtt_us", {})
    names = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p999"}
    for p in hist.get("percentiles", []):
        if p.get("percentile") in names:
            row[names[p["percentile"]]] = p.get("value")
    row["max"] = hist.get("max")
    row["loss"] = report.get("figures", {}).get("loss")
    print(json.dumps(row, sort_keys=True))


def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec=".0f"):
    return "—" if v is None else format(v, spec)


def summary(out):
    rows = []
    with open(os.path.join(out, "runs.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    groups = {}
    for r in rows:
        groups.setdefault((r["direction"], r["size"], r["load"], r["gateway"]), []).append(r)
    cells = {}
    for key, rs in groups.items():
        cells[key] = {k: median(rs, k) for k in
                      ["ns_per_packet", "cpu_s_per_gb", "forwarded_pps", "forwarded_gbps", "tree_ns_per_packet",
                       "packets_per_turn", "batched_wait_share", "records_per_send", "datagrams_per_gro_receive",
                       "segments_per_super_write", "segments_per_super_read", "loss_ratio", "generator_cpu_s"]}
        cells[key]["rounds"] = len(rs)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump([{"direction": k[0], "size": k[1], "load": k[2], "gateway": k[3], **v}
                   for k, v in sorted(cells.items())], f, indent=1)
    gws = [g for g in GATEWAYS if any(k[3] == g for k in cells)]
    print(open(os.path.join(out, "machine.txt")).read().strip() if os.path.exists(
        os.path.join(out, "machine.txt")) else "")
    print()
    print("Gateway CPU per forwarded packet (ns, median of rounds; the gateway's CPU, softirq included).")
    print("Load: % of the reference saturation (the slowest gateway's); 100 = each at its own saturation.")
    print()
    head = "| direction | size | load | " + " | ".join(f"{g} ns/pkt" for g in gws)
    head += " | corridor ÷ null | ocserv ÷ corridor | corridor kpps | ocserv kpps |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    bars = []
    for direction, size, load in sorted({k[:3] for k in cells}, key=lambda k: (k[0], int(k[1]), int(k[2]))):
        c = {g: cells.get((direction, size, load, g), {}) for g in gws}
        ns = {g: c[g].get("ns_per_packet") for g in gws}
        line = f"| {direction} | {size} | {load} | " + " | ".join(fmt(ns[g]) for g in gws)
        line += f" | {fmt(ratio(ns.get('corridor') or 0, ns.get('corridor-null') or 0), '.2f')}"
        line += f" | {fmt(ratio(ns.get('ocserv') or 0, ns.get('corridor') or 0), '.2f')}"
        kp = lambda g: None if c.get(g, {}).get("forwarded_pps") is None else c[g]["forwarded_pps"] / 1e3
        line += f" | {fmt(kp('corridor'), '.1f')} | {fmt(kp('ocserv'), '.1f')} |"
        print(line)
        if int(load) == 100:
            bars.append((f"{direction} {size}", {g: ns[g] for g in gws if ns[g] is not None}))
    print()
    print("corridor's batches (median of rounds): packets per loop turn, share of waits that asked for a batch,")
    print("records per UDP send, datagrams per GRO receive, device segments per TUN super-write, TUN segments per super-read.")
    print()
    print("| gateway | direction | size | load | pkts/turn | batched waits | records/send | dgrams/GRO rx | segs/TUN write | segs/TUN read | CPU-s/GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(cells, key=lambda k: (k[3], k[0], int(k[1]), int(k[2]))):
        if not key[3].startswith("corridor"):
            continue
        v = cells[key]
        print(f"| {key[3]} | {key[0]} | {key[1]} | {key[2]} | {fmt(v['packets_per_turn'], '.1f')} | "
              f"{fmt(v['batched_wait_share'], '.2f')} | {fmt(v['records_per_send'], '.1f')} | "
              f"{fmt(v['datagrams_per_gro_receive'], '.1f')} | {fmt(v['segments_per_super_write'], '.1f')} | "
              f"{fmt(v['segments_per_super_read'], '.1f')} | {fmt(v['cpu_s_per_gb'], '.2f')} |")
    echo_summary(out)
    plots.grouped_bars(bars, gws, "Gateway CPU per packet at saturation (lower is better)", "ns per packet",
                       os.path.join(out, "cost.svg"))


def echo_summary(out):
    path = os.path.join(out, "echo.jsonl")
    if not os.path.exists(path):
        return
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if not rows:
        return
    print()
    print("Paced udp-echo (20 devices, 2,000 probes/s), round trip in µs, median of rounds:")
    print()
    print("| gateway | p50 | p90 | p99 | p99.9 | rounds |")
    print("|---|---|---|---|---|---|")
    for gw in dict.fromkeys(r["gateway"] for r in rows):
        rs = [r for r in rows if r["gateway"] == gw]
        print(f"| {gw} | " + " | ".join(fmt(median(rs, k)) for k in ("p50", "p90", "p99", "p999")) + f" | {len(rs)} |")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "echo":
        echo(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
