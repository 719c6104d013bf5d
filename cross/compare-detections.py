#!/usr/bin/env python3
"""Compare two `wayside detect` reports: the aarch64 build's against x86's.

Same image size, same number of detections, and each x86 detection matched
one-to-one (greedily, best IoU first) by an aarch64 detection of the same
class with box IoU >= --min-iou and score within --max-score-diff. Prints
one line per pair and exits 1 on any difference past the tolerances.

    compare-detections.py X86.json ARM.json [--min-iou 0.9] [--max-score-diff 0.02]
"""

import argparse
import json
import sys


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("x86")
    ap.add_argument("arm")
    ap.add_argument("--min-iou", type=float, default=0.9)
    ap.add_argument("--max-score-diff", type=float, default=0.02)
    args = ap.parse_args()
    with open(args.x86) as f:
        x86 = json.load(f)
    with open(args.arm) as f:
        arm = json.load(f)

    problems = []
    if (x86["width"], x86["height"]) != (arm["width"], arm["height"]):
        problems.append(f"image size {x86['width']}x{x86['height']} vs {arm['width']}x{arm['height']}")
    xs, ys = x86["detections"], arm["detections"]
    if len(xs) != len(ys):
        problems.append(f"{len(xs)} detections on x86, {len(ys)} on aarch64")

    pairs = sorted(
        ((iou(a["bbox"], b["bbox"]), i, j) for i, a in enumerate(xs) for j, b in enumerate(ys) if a["class"] == b["class"]),
        reverse=True,
    )
    used_x, used_y = set(), set()
    for overlap, i, j in pairs:
        if i in used_x or j in used_y:
            continue
        used_x.add(i)
        used_y.add(j)
        a, b = xs[i], ys[j]
        diff = abs(a["score"] - b["score"])
        ok = overlap >= args.min_iou and diff <= args.max_score_diff
        print(f"{'ok ' if ok else 'BAD'} {a['class']:<10} IoU {overlap:.4f}  score x86 {a['score']:.4f} aarch64 {b['score']:.4f} (diff {diff:.4f})")
        if not ok:
            problems.append(f"{a['class']} at {a['bbox']}: IoU {overlap:.4f}, score diff {diff:.4f}")
    for i, a in enumerate(xs):
        if i not in used_x:
            problems.append(f"x86 {a['class']} {a['score']:.3f} at {a['bbox']} has no aarch64 match")
    for j, b in enumerate(ys):
        if j not in used_y:
            problems.append(f"aarch64 {b['class']} {b['score']:.3f} at {b['bbox']} has no x86 match")

    for p in problems:
        print(f"BAD {p}")
    verdict = "differ" if problems else "agree"
    print(f"{len(xs)} x86 and {len(ys)} aarch64 detections {verdict} "
          f"(same classes, IoU >= {args.min_iou}, scores within {args.max_score_diff})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
