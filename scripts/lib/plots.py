#!/usr/bin/env python3
"""SVG plots for PERF.md, drawn from result files (stdlib only).

    python3 scripts/lib/plots.py bench BENCH_OUT_DIR SVG_DIR
        latency.svg     udp-echo round-trip time, corridor vs ocserv, as
                        percentile curves from the HDR buckets
        tunnel.svg      handshake-storm time to tunnel, the same way
        tunnel-cert.svg the same for handshake-storm-cert (certificate login)
        bulk.svg        bulk delivered Gbit/s and kpps per packet size
    python3 scripts/lib/plots.py peers COMPARE_JSON SVG_DIR
        peers.svg       tcp1 / tcp4 / udp1300 Gbit/s per tunnel

Each plot is a plain SVG (no script, no external font), readable in a
browser or on GitHub.
"""
import json
import math
import os
import sys

COLOURS = {"corridor": "#1b7837", "ocserv": "#762a83", "baseline": "#878787",
           "openvpn": "#e08214", "boringtun": "#2166ac"}
W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Svg:
    def __init__(self, title):
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
                      f'font-family="sans-serif" font-size="12">',
                      f'<rect width="{W}" height="{H}" fill="white"/>',
                      f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor="middle", extra=""):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{esc(s)}</text>')

    def line(self, x1, y1, x2, y2, colour="#ccc", width=1):
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{colour}" stroke-width="{width}"/>')

    def save(self, path):
        self.add("</svg>")
        with open(path, "w") as f:
            f.write("\n".join(self.parts) + "\n")


def nice_ticks(hi, n=5):
    if hi <= 0:
        return [0, 1]
    step = 10 ** math.floor(math.log10(hi / n))
    for m in (1, 2, 5, 10):
        if hi / (step * m) <= n:
            step *= m
            break
    return [i * step for i in range(int(hi / step) + 2)]


def percentile_curves(series, title, unit, path, scale=1.0):
    """series: {name: [[value, count], ...]} -> latency by percentile, with
    the x axis in 'nines' (0 %, 90 %, 99 %, 99.9 %, 99.99 %); values are
    multiplied by `scale` (µs to ms: 1e-3)."""
    curves = {}
    series = {n: [[v * scale, c] for v, c in b] for n, b in series.items()}
    for name, buckets in series.items():
        total = sum(c for _, c in buckets)
        if not total:
            continue
        seen, pts = 0, []
        for v, c in sorted(buckets):
            seen += c
            q = min(seen / total, 0.99999)
            pts.append((-math.log10(1 - q), v))
        curves[name] = pts
    if not curves:
        return False
    xmax = 5.0
    ymax = max(v for pts in curves.values() for _, v in pts)
    ymin = max(1e-3, min(v for pts in curves.values() for _, v in pts))
    ly0, ly1 = math.log10(ymin), math.log10(ymax) + 0.1
    svg = Svg(title)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    X = lambda x: LEFT + pw * x / xmax
    Y = lambda v: TOP + ph * (1 - (math.log10(max(v, ymin)) - ly0) / (ly1 - ly0))
    for i, lab in enumerate(["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]):
        svg.line(X(i), TOP, X(i), TOP + ph)
        svg.text(X(i), TOP + ph + 16, lab)
    for e in range(int(math.floor(ly0)), int(math.ceil(ly1)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if ymin <= v <= 10 ** ly1:
                svg.line(LEFT, Y(v), LEFT + pw, Y(v))
                svg.text(LEFT - 6, Y(v) + 4, f"{v:,.0f}" if v >= 1 else f"{v:g}", anchor="end")
    svg.text(LEFT + pw / 2, H - 20, "percentile")
    svg.text(16, TOP + ph / 2, unit, extra=f'transform="rotate(-90 16 {TOP + ph / 2})"')
    for i, (name, pts) in enumerate(curves.items()):
        colour = COLOURS.get(name, "#000")
        d = " ".join(f"{'M' if j == 0 else 'L'}{X(x):.1f},{Y(v):.1f}" for j, (x, v) in enumerate(pts))
        svg.add(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        svg.add(f'<rect x="{LEFT + 10}" y="{TOP + 8 + 16 * i}" width="12" height="3" fill="{colour}"/>')
        svg.text(LEFT + 28, TOP + 13 + 16 * i, name, anchor="start")
    svg.save(path)
    return True


def grouped_bars(groups, names, title, unit, path):
    """groups: [(label, {name: value})] -> bars per group, one per name."""
    vals = [v for _, d in groups for v in d.values() if v is not None]
    if not vals:
        return False
    ticks = nice_ticks(max(vals))
    top = ticks[-1]
    svg = Svg(title)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    Y = lambda v: TOP + ph * (1 - v / top)
    for t in ticks:
        svg.line(LEFT, Y(t), LEFT + pw, Y(t))
        svg.text(LEFT - 6, Y(t) + 4, f"{t:g}", anchor="end")
    svg.text(16, TOP + ph / 2, unit, extra=f'transform="rotate(-90 16 {TOP + ph / 2})"')
    gw = pw / len(groups)
    bw = gw * 0.8 / len(names)
    for gi, (label, d) in enumerate(groups):
        x0 = LEFT + gi * gw + gw * 0.1
        for ni, name in enumerate(names):
            v = d.get(name)
            if v is None:
                continue
            x = x0 + ni * bw
            svg.add(f'<rect x="{x:.1f}" y="{Y(v):.1f}" width="{bw - 2:.1f}" height="{TOP + ph - Y(v):.1f}" '
                    f'fill="{COLOURS.get(name, "#000")}"><title>{esc(name)}: {v:.3g}</title></rect>')
        svg.text(LEFT + gi * gw + gw / 2, TOP + ph + 16, label)
    for ni, name in enumerate(names):
        x = LEFT + 10 + ni * 100
        svg.add(f'<rect x="{x}" y="{H - 16}" width="10" height="10" fill="{COLOURS.get(name, "#000")}"/>')
        svg.text(x + 14, H - 7, name, anchor="start")
    svg.save(path)
    return True


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def bench(out, svgdir):
    def buckets(gw, case, hist):
        d = load(os.path.join(out, f"{gw}-{case}.json"))
        return (d or {}).get("histograms", {}).get(hist, {}).get("recorded")

    made = []
    for case, hist, title, name, unit, scale in [
        ("udp-echo", "rtt_us", "udp-echo round trip through the tunnel", "latency.svg", "µs", 1.0),
        ("handshake-storm", "time_to_tunnel_us", "handshake-storm: TCP connect to DTLS up", "tunnel.svg", "ms", 1e-3),
        ("handshake-storm-cert", "time_to_tunnel_us", "handshake-storm-cert: TCP connect to DTLS up (certificate login)",
         "tunnel-cert.svg", "ms", 1e-3),
    ]:
        series = {gw: b for gw in ("corridor", "ocserv") if (b := buckets(gw, case, hist))}
        if percentile_curves(series, title, unit, os.path.join(svgdir, name), scale):
            made.append(name)
    groups = []
    for size in ("64", "512", "1400", "imix"):
        row = {}
        for gw in ("corridor", "ocserv"):
            d = load(os.path.join(out, f"{gw}-bulk-{size}.json"))
            if d:
                row[gw] = d["figures"].get("delivered_gbps")
        groups.append((f"{size} B" if size != "imix" else "IMIX", row))
    if grouped_bars(groups, ["corridor", "ocserv"], "bulk: delivered one-way UDP", "Gbit/s",
                    os.path.join(svgdir, "bulk.svg")):
        made.append("bulk.svg")
    return made


def peers(path, svgdir):
    d = load(path)
    if not d:
        return []
    # The no-tunnel baseline (tens of Gbit/s over veth) would flatten the
    # tunnels' bars: it goes into the title instead.
    contenders = [c for c in d.get("contenders", []) if c.get("name") != "baseline"]
    base = next((c for c in d.get("contenders", []) if c.get("name") == "baseline"), {})
    names = [c["name"] for c in contenders]
    groups = []
    for key, label in [("tcp1_gbps", "TCP, 1 stream"), ("tcp4_gbps", "TCP, 4 streams"),
                       ("udp1300_gbps", "UDP 1300 B")]:
        groups.append((label, {c["name"]: c.get(key) for c in contenders}))
    title = "Through each tunnel, medians (no tunnel: TCP {:.0f} Gbit/s)".format(base.get("tcp1_gbps") or 0)
    if grouped_bars(groups, names, title, "Gbit/s", os.path.join(svgdir, "peers.svg")):
        return ["peers.svg"]
    return []


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("bench", "peers"):
        print(__doc__, file=sys.stderr)
        return 2
    os.makedirs(sys.argv[3], exist_ok=True)
    made = bench(sys.argv[2], sys.argv[3]) if sys.argv[1] == "bench" else peers(sys.argv[2], sys.argv[3])
    for m in made:
        print(os.path.join(sys.argv[3], m))
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
