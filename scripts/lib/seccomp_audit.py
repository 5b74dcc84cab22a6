#!/usr/bin/env python3
"""What corridor's confined processes called once their seccomp filters went
on, from `strace -f` traces (scripts/seccomp-audit.sh writes them).

    python3 scripts/lib/seccomp_audit.py TRACE_DIR KIND...

KIND is the subcommand a process was started as: `gateway` (the worker and
its threads), `keeper`, `relay`. A process counts as confined from its third
seccomp(SECCOMP_SET_MODE_FILTER) on (service::sandbox installs three
filters). Prints, per kind, each call made after that and how often, then
every call the filters refused (EPERM, ENOSYS) or killed the process for
(SIGSYS). Exit status 1 when there was any.
"""
import collections
import os
import re
import sys

LINE = re.compile(r"(\d+) +(.*)")
# strace abbreviates long arguments: the program's path may end in "...".
EXECVE = re.compile(r'execve\("[^"]*", \["[^"]*"(?:\.\.\.)?, "([^"]*)"')
# A thread's or a child's id, from clone's (or clone3's) result.
CLONE = re.compile(r"(?:<\.\.\. )?clone3?(?: resumed>|\().*= (\d+)$")
CALL = re.compile(r"(?:<\.\.\. )?([a-z_0-9]+)[( ]")
REFUSED = re.compile(r"= -1 (EPERM|ENOSYS)")
FILTERS = 3


def audit(path, kinds, calls, refused):
    lines = [m.groups() for m in map(LINE.match, open(path, errors="replace")) if m]
    kind, parent = {}, {}
    for pid, rest in lines:
        if m := EXECVE.match(rest):
            kind[pid] = m.group(1)
        if m := CLONE.match(rest):
            parent[m.group(1)] = pid

    def process(pid):
        """The kind and the id of the process `pid` is a thread (or child) of."""
        seen = set()
        while pid not in kind and pid in parent and pid not in seen:
            seen.add(pid)
            pid = parent[pid]
        return kind.get(pid, "?"), pid

    installs = collections.Counter()
    for pid, rest in lines:
        k, root = process(pid)
        if k not in kinds:
            continue
        if "seccomp(SECCOMP_SET_MODE_FILTER" in rest:
            installs[root] += 1
            continue
        if installs[root] < FILTERS:
            continue
        if REFUSED.search(rest) or "SIGSYS" in rest:
            refused[k].append(f"{os.path.basename(path)}: {pid} {rest[:200]}")
        call = CALL.match(rest)
        if call and not rest.startswith(("<... ", "+++", "---")):
            calls[k][call.group(1)] += 1


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    directory, kinds = sys.argv[1], set(sys.argv[2:])
    calls = collections.defaultdict(collections.Counter)
    refused = collections.defaultdict(list)
    for name in sorted(os.listdir(directory)):
        audit(os.path.join(directory, name), kinds, calls, refused)
    for k in sorted(kinds):
        print(f"== {k}: calls after its filters went on")
        for name, n in sorted(calls[k].items()):
            print(f"  {name:<20} {n}")
        if not calls[k]:
            print("  (no confined process of this kind was traced)")
    for k in sorted(refused):
        print(f"== {k}: refused or killed")
        for line in refused[k]:
            print(f"  {line}")
    sys.exit(1 if refused or not all(calls[k] for k in kinds) else 0)


if __name__ == "__main__":
    main()
