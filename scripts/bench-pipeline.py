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
and prints a Markdown table. Peak RSS is the child's ru_maxrss.

Usage: scripts/bench-pipeline.py [--clip FILE] [--interval MS] [--runs N]
Without --clip, a 1280x720 H.264 copy of vtest.avi (real pedestrians, 79.5 s)
is made once under var/bench/.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WAYSIDE_MODELS_DIR", ROOT / "models" / "cache"))


def run(cmd, **kw):
    """Runs cmd; returns (wall seconds, peak RSS MiB of that child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, **kw)
    wall = time.monotonic() - start
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far; the bench
    # runs the biggest (wayside) last, so this is that child's peak.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024.0, out.stdout


def make_clip() -> Path:
    src = CACHE / "media" / "vtest.avi"
    if not src.exists():
        sys.exit(f"{src} is missing: run scripts/setup-models.sh")
    out = ROOT / "var" / "bench" / "vtest-720p.mp4"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-vf", "scale=1280:720",
             "-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
             "-movflags", "+faststart", str(tmp)],
            check=True,
        )
        tmp.rename(out)
    return out


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
    clip = (args.clip or make_clip()).resolve()
    real = duration_s(clip)

    gst = ["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!",
           "videoconvert", "!", "video/x-raw,format=RGB", "!", "fakesink", "sync=false"]
    ffmpeg = ["ffmpeg", "-loglevel", "error", "-i", str(clip), "-f", "null", "-"]
    out_mp4 = ROOT / "var" / "bench" / "annotated.mp4"
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    wayside = [str(args.wayside), "process", "--json", "--interval", str(args.interval),
               "--out", str(out_mp4), str(clip)]

    def median_of(cmd):
        runs = [run(cmd) for _ in range(args.runs)]
        walls = [r[0] for r in runs]
        i = walls.index(statistics.median_low(walls))
        return runs[i]

    gst_s, _, _ = median_of(gst)
    ff_s, _, _ = median_of(ffmpeg)
    way_s, rss, out = median_of(wayside)
    summary = json.loads(out)
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
