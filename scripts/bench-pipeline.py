#!/usr/bin/env python3
"""Video pipeline bench (issue 4): whole pipeline and per stage on a 720p clip
at interval 200 ms, peak RSS, against references measured in the same run.

Runs, one after another on the same clip:
  real time      the clip's duration: the pipeline must beat it;
  gst decode     GStreamer decoding alone, the same elements the daemon uses
                 (decodebin ! videoconvert ! RGB), into fakesink;
  ffmpeg decode  ffmpeg decoding the same clip, the usual yardstick;
  wayside        `wayside process --interval 200 --out …` (release build),
                 whose JSON carries the time spent per stage.
and prints a Markdown table. Peak RSS is wayside's own, from wait4().

Usage: scripts/bench-pipeline.py [--clip FILE] [--interval MS] [--runs N]
Without --clip, a 1280x720 H.264 copy of vtest.avi (real pedestrians, 79.5 s)
is made once under var/bench/.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from harness import BENCH, ROOT, run_measured, vtest_clip  # noqa: E402


def duration_s(clip: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip)],
        check=True, capture_output=True, text=True,
    )
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--interval", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1, help="median of N runs of each")
    ap.add_argument("--wayside", type=Path, default=ROOT / "target" / "release" / "wayside")
    args = ap.parse_args()
    if not args.wayside.exists():
        sys.exit(f"{args.wayside} is missing: cargo build --release -p wayside")
    clip = (args.clip or vtest_clip(720)).resolve()
    real = duration_s(clip)

    gst = ["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!",
           "videoconvert", "!", "video/x-raw,format=RGB", "!", "fakesink", "sync=false"]
    ffmpeg = ["ffmpeg", "-loglevel", "error", "-i", str(clip), "-f", "null", "-"]
    out_mp4 = BENCH / "annotated.mp4"
    BENCH.mkdir(parents=True, exist_ok=True)
    wayside = [str(args.wayside), "process", "--json", "--interval", str(args.interval),
               "--out", str(out_mp4), str(clip)]

    def median_of(cmd):
        runs = [run_measured(cmd) for _ in range(args.runs)]
        walls = [r.wall_s for r in runs]
        return runs[walls.index(statistics.median_low(walls))]

    gst_s = median_of(gst).wall_s
    ff_s = median_of(ffmpeg).wall_s
    way = median_of(wayside)
    way_s, rss = way.wall_s, way.rss_mib
    summary = json.loads(way.stdout)
    stages = summary["stage_ms"]
    frames = summary["frames_processed"]
    processing_s = summary["processing_ms"] / 1000.0

    load = os.getloadavg()
    print(f"clip: {clip.name}, {real:.1f} s; interval {args.interval} ms; "
          f"{frames} frames tracked; cores: {os.cpu_count()}; "
          f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| what | wall s | ms / tracked frame | × real time | note |")
    print("|---|---:|---:|---:|---|")

    def row(name, seconds, note=""):
        per = seconds * 1000.0 / frames if frames else float("nan")
        print(f"| {name} | {seconds:.1f} | {per:.1f} | {real / seconds:.2f} | {note} |")

    row("reference: ffmpeg decode", ff_s, "all frames, ffmpeg's threads")
    row("gst decode alone", gst_s, "all frames, the daemon's decode elements")
    row("wayside, whole job", processing_s, f"process wall incl. model load {way_s:.1f} s")
    for name in ["decode", "detect", "track", "annotate_encode"]:
        s = stages[name] / 1000.0
        print(f"| · {name.replace('_', '+')} | {s:.1f} | {s * 1000.0 / frames:.1f} | "
              f"| {100.0 * s / processing_s:.0f} % of the job |")
    print(f"\npeak RSS of wayside process: {rss:.0f} MiB (goal < 300)")
    print(f"pedestrians passed: {sum(summary['pedestrians_per_interval'])}, "
          f"vehicles passed: {sum(summary['vehicles_per_interval'])}")


if __name__ == "__main__":
    main()
