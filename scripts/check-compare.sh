#!/usr/bin/env bash
# Functional check of a scripts/compare-peers.sh run: traffic flowed through
# every contender. Never compares speeds (between contenders or against any
# number): wall-clock figures fail nothing.
#
#   bash scripts/check-compare.sh JSONFILE TABLEFILE
#
# JSONFILE is compare-peers.sh's --json output, TABLEFILE its printed output
# (stdout). Fails unless
#   - the JSON has the stable shape: machine, commit, date, rounds, seconds,
#     contenders (a list of objects with a name);
#   - each of baseline, corridor, ocserv, openvpn, boringtun has a JSON entry
#     (in that order) whose tcp1_gbps, tcp4_gbps, udp1300_gbps and udp100_kpps
#     are numbers > 0;
#   - each of them has a Markdown table row starting "| NAME |" in TABLEFILE.
set -euo pipefail

[ $# -eq 2 ] || {
    echo "usage: $0 JSONFILE TABLEFILE" >&2
    exit 2
}

python3 - "$1" "$2" <<'PY'
import json, re, sys

json_path, table_path = sys.argv[1], sys.argv[2]
NAMES = ["baseline", "corridor", "ocserv", "openvpn", "boringtun"]
FIGURES = ["tcp1_gbps", "tcp4_gbps", "udp1300_gbps", "udp100_kpps"]
problems = []

try:
    doc = json.load(open(json_path))
except Exception as e:
    sys.exit(f"check-compare: cannot read {json_path}: {e}")
try:
    table = open(table_path, encoding="utf-8", errors="replace").read()
except Exception as e:
    sys.exit(f"check-compare: cannot read {table_path}: {e}")

for key in ("machine", "commit", "date", "rounds", "seconds", "contenders"):
    if key not in doc:
        problems.append(f"JSON has no top-level {key!r}")
if not isinstance(doc.get("machine"), dict):
    problems.append("JSON machine is not an object")
contenders = doc.get("contenders")
if not isinstance(contenders, list):
    problems.append("JSON contenders is not a list")
    contenders = []
entries = {c.get("name"): c for c in contenders if isinstance(c, dict)}
order = [c.get("name") for c in contenders if isinstance(c, dict) and c.get("name") in NAMES]
if order != [n for n in NAMES if n in entries]:
    problems.append(f"JSON contenders out of order: {order}")

def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v

for name in NAMES:
    c = entries.get(name)
    if c is None:
        problems.append(f"{name}: no JSON entry")
    else:
        for f in FIGURES:
            v = c.get(f)
            if not number(v) or v <= 0:
                problems.append(f"{name}: {f} = {v!r} (want a number > 0; status: {c.get('status', '?')})")
    if not re.search(r"^\| " + re.escape(name) + r" \|", table, re.M):
        problems.append(f"{name}: no '| {name} |' row in {table_path}")

if problems:
    print("check-compare: FAILED", file=sys.stderr)
    for p in problems:
        print(f"    {p}", file=sys.stderr)
    sys.exit(1)
print(f"check-compare: ok: {', '.join(NAMES)} carried tcp1, tcp4, udp1300 and udp100 traffic "
      f"({doc['rounds']} round(s) x {doc['seconds']} s, commit {doc['commit']})")
PY
