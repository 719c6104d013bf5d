#!/usr/bin/env python3
"""Cuts a fuzz corpus down to the few inputs worth keeping in the repository.

    python3 fuzz/keep.py <target> [count]      (count: 40)

`cargo fuzz cmin` keeps every input that reaches a feature no other does,
which for a parser is hundreds of files. This keeps the hand-written
`seed-*` and `regression-*` files, then greedily adds the input that reaches
the most code edges not yet reached (ties: the smaller), up to `count`, and
deletes the rest of fuzz/corpus/<target>/. Edges come from libFuzzer's merge
control file, so build the target first (fuzz/run.sh does).
docs/RELIABILITY.md, "Fuzzing".
"""

import os
import subprocess
import sys
import tempfile

fuzz = os.path.dirname(os.path.abspath(__file__))
target = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(fuzz, "target"))
binary = os.path.join(target_dir, "x86_64-unknown-linux-gnu", "release", target)
corpus = os.path.join(fuzz, "corpus", target)

with tempfile.TemporaryDirectory() as tmp:
    control = os.path.join(tmp, "control")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    subprocess.run(
        [binary, "-merge=1", "-use_counters=0", f"-merge_control_file={control}", empty, corpus],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with open(control) as f:
        lines = f.read().splitlines()

n = int(lines[0])
files = lines[2 : 2 + n]
edges = {}
for line in lines[2 + n :]:
    parts = line.split()
    if parts and parts[0] == "COV":
        edges[files[int(parts[1])]] = set(parts[2:])

pinned = [p for p in files if os.path.basename(p).startswith(("seed-", "regression-"))]
kept = list(pinned)
reached = set().union(*(edges.get(p, set()) for p in pinned))
candidates = [p for p in files if p not in pinned and p in edges]
while len(kept) < count:
    best = max(
        candidates,
        key=lambda p: (len(edges[p] - reached), -os.path.getsize(p)),
        default=None,
    )
    if best is None or not edges[best] - reached:
        break
    kept.append(best)
    reached |= edges[best]
    candidates.remove(best)

total = set().union(*edges.values()) if edges else set()
for p in files:
    if p not in kept:
        os.remove(p)
print(f"{target}: kept {len(kept)} of {n} inputs, {len(reached)} of {len(total)} edges")
