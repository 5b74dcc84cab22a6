#!/usr/bin/env python3
"""The figures of scripts/shard-sweep.sh (stdlib only).

    python3 scripts/lib/shard_sweep.py record RUN_JSON --result BENCH_JSON
            --samples TSV --clk-tck HZ --shards N --case CASE --devices D --threads T
            --nproc P [--metrics-before F --metrics-after F] [--bench-rc RC]
        one run's record: the `corridor bench run` result's figures, the
        gateway's CPU seconds (its process tree, from TSV: "EPOCH_S TICKS
        BUSY TOTAL" lines sampled through the run, the first taken just
        before the generator started, the last just after it ended; BUSY and
        TOTAL the machine's /proc/stat ticks) over the whole run and over
        the traffic phase alone, the machine's busy share then, packets per gateway CPU-second,
        the share of the busiest shard (from the gateway's /metrics before
        and after), and whether the generator or the machine was saturated.
        Prints one line; exit status 1 when the run failed.
    python3 scripts/lib/shard_sweep.py summary OUTDIR
        OUTDIR/sweep.json (every record, and each one's scaling against the
        same case at the smallest shard count) and OUTDIR/summary.md, which
        it also prints.

Packets are those through the gateway: for bulk the packets the reflector
received, for udp-echo-saturation two per echo (there and back).
"""
import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plots import load  # noqa: E402  (a JSON file, or None)

# The generator is saturated when its threads are this busy on average
# (over the whole run, bring-up included, so a little under 1); the machine
# when this share of its CPUs' time was busy during the traffic.
GENERATOR_BUSY = 0.85
MACHINE_BUSY = 0.9


def samples(path):
    """[(time, gateway ticks, machine busy ticks, machine ticks)]"""
    out = []
    with open(path) as f:
        for line in f:
            try:
                t, ticks, busy, total = (float(x) for x in line.split())
            except ValueError:
                continue  # a line cut short when the sampler was stopped
            out.append((t, ticks, busy, total))
    return sorted(out)


def at(series, t, i):
    """Column i of the samples at time t, linear between the samples around it."""
    if t <= series[0][0]:
        return series[0][i]
    for a, b in zip(series, series[1:]):
        if t <= b[0]:
            return a[i] + (b[i] - a[i]) * (t - a[0]) / max(b[0] - a[0], 1e-9)
    return series[-1][i]


def shard_records(path):
    """Records received per shard, from a /metrics text."""
    counts = {}
    if not path or not os.path.exists(path):
        return counts
    pattern = re.compile(r'^corridor_shard_rx_records_total\{shard="(\d+)"\} (\S+)$')
    with open(path) as f:
        for line in f:
            m = pattern.match(line.strip())
            if m:
                counts[int(m.group(1))] = float(m.group(2))
    return counts


def record(a):
    result = load(a.result)
    rec = {"shards": a.shards, "case": a.case, "threads": a.threads, "nproc": a.nproc,
           "result": os.path.basename(a.result), "ok": False}
    problems = []
    if a.bench_rc != 0:
        problems.append(f"corridor bench run exited {a.bench_rc}")
    if result is None:
        problems.append("no result")
    figures = (result or {}).get("figures", {})
    devices = a.devices
    rec["devices"] = devices
    if result is not None and (figures.get("failures", 0) or figures.get("devices_up", 0) < devices):
        problems.append(f"{figures.get('devices_up', 0)}/{devices} devices up, {figures.get('failures', 0)} failures")

    series = samples(a.samples)
    hz = float(a.clk_tck)
    if len(series) >= 2:
        start = series[0][0]
        rec["gateway_cpu_s"] = (series[-1][1] - series[0][1]) / hz
        # The traffic phase: from the moment every device was up to the end
        # of the generator's run (its clock starts right after launch).
        t_on = start + figures.get("handshake_wall_s", 0.0)
        t_off = start + figures.get("wall_s", series[-1][0] - start)
        if t_off > t_on:
            rec["traffic_s"] = t_off - t_on
            rec["gateway_traffic_cpu_s"] = (at(series, t_off, 1) - at(series, t_on, 1)) / hz
            rec["gateway_cores"] = rec["gateway_traffic_cpu_s"] / rec["traffic_s"]
            total = at(series, t_off, 3) - at(series, t_on, 3)
            if total > 0:
                rec["machine_busy"] = (at(series, t_off, 2) - at(series, t_on, 2)) / total
    else:
        problems.append("no gateway CPU samples")

    if a.case.startswith("bulk-"):
        rec["gbps"] = figures.get("delivered_gbps")
        rec["pps"] = figures.get("delivered_pps")
        rec["packets"] = figures.get("packets_delivered")
        rec["loss_ratio"] = figures.get("loss_ratio")
    else:
        echoes = figures.get("echoes_per_s")
        rec["pps"] = None if echoes is None else 2 * echoes
        received = figures.get("probes_received")
        rec["packets"] = None if received is None else 2 * received
        rec["echoes_per_s"] = echoes
    cpu = rec.get("gateway_traffic_cpu_s")
    rec["pps_per_gateway_cpu_s"] = rec["packets"] / cpu if rec.get("packets") and cpu else None

    before, after = shard_records(a.metrics_before), shard_records(a.metrics_after)
    delta = {s: after[s] - before.get(s, 0.0) for s in after}
    rec["shards_seen"] = len(after)
    if delta and sum(delta.values()) > 0:
        rec["busiest_shard_share"] = max(delta.values()) / sum(delta.values())
    if after and len(after) != a.shards:
        problems.append(f"the gateway runs {len(after)} shards, not {a.shards}")

    rec["generator_cores"] = figures.get("generator_cores")
    rec["generator_cpu_s"] = figures.get("generator_cpu_s")
    gen_threads = figures.get("generator_threads", a.threads) or 1
    rec["generator_saturated"] = (rec["generator_cores"] or 0) >= GENERATOR_BUSY * gen_threads
    rec["machine_saturated"] = (rec.get("machine_busy") or 0) >= MACHINE_BUSY
    rec["ok"] = not problems
    if problems:
        rec["problems"] = problems
    with open(a.run_json, "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
        f.write("\n")

    notes = []
    if rec["generator_saturated"]:
        notes.append(f"GENERATOR SATURATED ({rec['generator_cores']:.2f} cores of {gen_threads} threads)")
    if rec["machine_saturated"]:
        notes.append(f"machine saturated ({100 * rec['machine_busy']:.0f} % of {a.nproc} CPUs busy)")
    print(f"{a.shards} shard(s) {a.case}: {num(rec.get('gbps'))} Gbit/s, {num(kilo(rec.get('pps')))} kpps, "
          f"gateway {num(rec.get('gateway_traffic_cpu_s'))} CPU-s in traffic ({num(rec.get('gateway_cores'))} cores), "
          f"{num(rec.get('pps_per_gateway_cpu_s'))} packets per gateway CPU-s"
          + "".join(f"; {n}" for n in notes) + "".join(f"; FAILED: {p}" for p in problems))
    return 0 if rec["ok"] else 1


def kilo(x):
    return None if x is None else x / 1e3


def num(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def summary(out):
    records = [r for p in sorted(glob.glob(os.path.join(out, "shards-*.run.json"))) if (r := load(p))]
    if not records:
        print(f"shard_sweep.py: no shards-*.run.json in {out}", file=sys.stderr)
        return 1
    records.sort(key=lambda r: (r["case"], r["shards"]))
    base = {}
    for r in records:
        if r.get("pps") and r["case"] not in base:
            base[r["case"]] = r
    for r in records:
        b = base.get(r["case"])
        r["scaling"] = r["pps"] / b["pps"] if b and r.get("pps") else None
        r["scaling_base_shards"] = b["shards"] if b else None
    bench = next((d for r in records if (d := load(os.path.join(out, r["result"])))), {})
    machine = bench.get("machine", {})
    doc = {"machine": machine, "commit": bench.get("commit"), "runs": records}
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")

    lines = [f"machine: {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
             f"kernel {machine.get('kernel', '?')}; commit {bench.get('commit', '?')}", "",
             "| shards | case | devices | Gbit/s | kpps | gateway CPU-s | gateway cores | packets per gateway CPU-s "
             "| scaling (kpps) | busiest shard | generator cores | machine busy | note |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in records:
        note = []
        if not r.get("ok"):
            note.append("FAILED: " + "; ".join(r.get("problems", [])))
        if r.get("generator_saturated"):
            note.append("generator saturated")
        if r.get("machine_saturated"):
            note.append("machine saturated")
        scaling = "-" if r.get("scaling") is None else f"{r['scaling']:.2f}× of {r['scaling_base_shards']}"
        share = "-" if r.get("busiest_shard_share") is None else f"{100 * r['busiest_shard_share']:.0f} %"
        gen = "-" if r.get("generator_cores") is None else f"{r['generator_cores']:.2f} / {r['threads']}"
        busy = "-" if r.get("machine_busy") is None else f"{100 * r['machine_busy']:.0f} %"
        lines.append(f"| {r['shards']} | {r['case']} | {r.get('devices', '-')} | {num(r.get('gbps'))} "
                     f"| {num(kilo(r.get('pps')))} | {num(r.get('gateway_traffic_cpu_s'))} "
                     f"| {num(r.get('gateway_cores'))} | {num(r.get('pps_per_gateway_cpu_s'))} | {scaling} "
                     f"| {share} | {gen} | {busy} | {', '.join(note)} |")
    lines += ["",
              "Packets: through the gateway (bulk: delivered; udp-echo-saturation: two per echo). Gateway CPU: "
              "its process tree over the traffic phase (the whole run's is `gateway_cpu_s` in sweep.json). "
              "Busiest shard: its share of the DTLS records the shards received. Generator cores: busy "
              "cores / threads; \"generator saturated\" means the figure measures the generator. Machine busy: "
              "the share of all CPUs' time not idle during the traffic (/proc/stat: softirq included, and "
              "anything else running); \"machine saturated\" from 90 %."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("run_json")
    r.add_argument("--result", required=True)
    r.add_argument("--samples", required=True)
    r.add_argument("--clk-tck", required=True, type=int)
    r.add_argument("--shards", required=True, type=int)
    r.add_argument("--case", required=True)
    r.add_argument("--devices", required=True, type=int)
    r.add_argument("--threads", required=True, type=int)
    r.add_argument("--nproc", required=True, type=int)
    r.add_argument("--metrics-before")
    r.add_argument("--metrics-after")
    r.add_argument("--bench-rc", type=int, default=0)
    s = sub.add_parser("summary")
    s.add_argument("out")
    a = ap.parse_args()
    return record(a) if a.cmd == "record" else summary(a.out)


if __name__ == "__main__":
    sys.exit(main())
