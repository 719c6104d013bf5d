#!/usr/bin/env python3
"""Where a process's resident memory is, at its highest: runs a command,
reads /proc/PID/smaps every --every seconds, keeps the snapshot with the
most resident memory and prints it grouped (the program's own pages, shared
libraries by family, the main heap, other anonymous memory), with the peak
RSS, CPU time and minor page faults from wait4() (docs/BENCHMARKS.md,
"Where the memory goes").

  python3 bench/rss_breakdown.py [--every S] -- var/wayside-release process --json \\
      --interval 200 --line 0.5,0,0.5,1 var/bench/vtest-720p.mp4

Environment variables pass through, so allocator settings can be compared
(MALLOC_ARENA_MAX=1, LD_PRELOAD=...). Sampling smaps costs the child a
little time: wall times from here are not the bench's.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

FAMILIES = [
    (r"libgst|/gstreamer-1\.0/|libglib|libgobject|libgio|libgmodule|liborc", "GStreamer, GLib"),
    (r"/lib(avcodec|avformat|avfilter|avutil|swscale|swresample|postproc|avdevice)\.", "libav*"),
    (r"/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so", "libc, libm, libstdc++"),
]


def family(name: str, program: str) -> str:
    if name == program:
        return "the program (code, relocated data)"
    if name == "[heap]":
        return "[heap] (glibc main arena)"
    if name.startswith("["):
        return "stacks, vdso" if name.startswith("[stack") or name.startswith("[v") else name
    if not name.startswith("/"):
        return "other anonymous (thread arenas, mmap'd blocks, other allocators, stacks)"
    for pattern, label in FAMILIES:
        if re.search(pattern, name):
            return label
    return "other shared libraries (mostly what libav* links)"


def snapshot(pid: int, program: str) -> dict | None:
    groups = collections.defaultdict(lambda: [0, 0])  # rss, anonymous (KiB)
    current = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if "-" in parts[0] and ":" not in parts[0]:
                    name = parts[5] if len(parts) > 5 else ""
                    current = groups[family(name, program)]
                elif parts[0] == "Rss:" and current is not None:
                    current[0] += int(parts[1])
                elif parts[0] == "Anonymous:" and current is not None:
                    current[1] += int(parts[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return dict(groups)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", type=float, default=0.2, help="seconds between snapshots")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        sys.exit("no command")
    program = os.path.realpath(cmd[0])
    best, best_total, best_at = None, -1, 0.0
    start = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        pid, _, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        snap = snapshot(child.pid, program)
        if snap:
            total = sum(v[0] for v in snap.values())
            if total > best_total:
                best, best_total, best_at = snap, total, time.monotonic() - start
        time.sleep(args.every)
    wall = time.monotonic() - start
    print(f"peak RSS {usage.ru_maxrss / 1024:.1f} MiB (wait4), CPU {usage.ru_utime + usage.ru_stime:.1f} s, "
          f"minor faults {usage.ru_minflt}, wall {wall:.1f} s")
    if not best:
        return
    print(f"largest snapshot: {best_total / 1024:.1f} MiB at {best_at:.1f} s")
    print("| mapping | RSS MiB | of which anonymous MiB |")
    print("|---|---:|---:|")
    for name, (rss, anon) in sorted(best.items(), key=lambda kv: -kv[1][0]):
        if rss >= 64:
            print(f"| {name} | {rss / 1024:.1f} | {anon / 1024:.1f} |")


if __name__ == "__main__":
    main()
