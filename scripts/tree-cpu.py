#!/usr/bin/env python3
"""Runs a command and stamps each line it prints with the CPU its whole process tree has used.

Usage: scripts/tree-cpu.py COMMAND [ARGS...]

Every line of the command's stdout and stderr (merged) is printed as
`[t=<elapsed s> cpu=<tree CPU s> load=<1-min load average>] <line>`, where the tree CPU is the
sum of utime + stime (/proc/<pid>/stat) over the command and every live descendant at that
moment. The CPU of a phase is the difference between the stamps of the lines that open and close
it, whichever program the command is (BENCHMARKS.md compares two commits' fleet benches this
way: their own per-phase figures differ). At the end the command's rusage (itself and every
descendant it waited for, as `/usr/bin/time -f '%U %S'` reports it) is printed as
`[tree-cpu] exit=<code> user=<s> system=<s>`.
"""

import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(parent pid, CPU seconds) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count from its closing parenthesis.
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(root):
    """CPU seconds used so far by `root` and its live descendants."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s is not None:
                procs[int(name)] = s
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            total += procs[pid][1]
        todo.extend(children.get(pid, []))
    return total


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    start = time.monotonic()
    child = subprocess.Popen(
        sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    for line in child.stdout:
        load = os.getloadavg()[0]
        stamp = f"[t={time.monotonic() - start:.1f} cpu={tree_cpu(child.pid):.1f} load={load:.1f}]"
        print(stamp, line, end="", flush=True)
    code = child.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"[tree-cpu] exit={code} user={usage.ru_utime:.1f} system={usage.ru_stime:.1f}")
    sys.exit(code)


if __name__ == "__main__":
    main()
