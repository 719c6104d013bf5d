#!/usr/bin/env python3
"""Wayside against the Python reference pipeline (issue 12), side by side.

For each clip and run, `wayside process --json` (the release build, same
code as `POST /video`, no annotated video) and bench/reference/pipeline.py
(OpenCV + onnxruntime + supervision, in var/bench-venv) process the same clip
with the same interval and counting line, one after the other, each in its
own child process. Per child: wall time (start to exit, model load
included), CPU time (user + sys) and peak RSS (ru_maxrss) from wait4() on
that child alone, so peaks never mix; per stage, what the program itself
reports (`stage_ms`). The order of the two alternates between runs so that
drift in the machine's load falls on both.

Prints a Markdown table of medians over the runs, the ratios, a
counts-agreement table, and the load average (the machine may be shared);
writes every raw result to var/bench/compare-<time>.json.

Usage (after bench/setup.sh; run it under `nice -n 19` on a shared box):
  var/bench-venv/bin/python bench/compare.py [--runs N] [--interval MS]
      [--line x1,y1,x2,y2] [--clip FILE ...] [--wayside BIN] [--threads T]
Without --clip: a 1280x720 H.264 copy of vtest.avi (made once under
var/bench/ by bench/harness.py, as for every bench) and otvision-cars-truck.mp4.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, CACHE, ROOT, exported_model, run_measured, vtest_clip

REFERENCE = ROOT / "bench" / "reference" / "pipeline.py"
ARRAYS = ("pedestrian_counts", "vehicle_counts", "pedestrians_per_interval", "vehicles_per_interval")


def probe(clip: Path) -> dict:
    """Width, height, frame count and duration of the clip's video stream."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=width,height,nb_read_packets,codec_name:format=duration",
         "-of", "json", str(clip)],
        check=True, capture_output=True, text=True,
    ).stdout
    j = json.loads(out)
    s = j["streams"][0]
    return {"width": s["width"], "height": s["height"], "codec": s["codec_name"],
            "frames": int(s["nb_read_packets"]), "duration_s": float(j["format"]["duration"])}


def run_child(cmd: list[str], env: dict) -> dict:
    """Runs cmd alone; its wall time, CPU time and peak RSS, and its JSON."""
    m = run_measured(cmd, env)
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "user_s": m.user_s, "sys_s": m.sys_s,
            "rss_mib": m.rss_mib, "result": json.loads(m.stdout)}


def commands(args, clip: Path) -> dict[str, list[str]]:
    common = ["--interval", str(args.interval)] + (["--line", args.line] if args.line else [])
    return {
        "wayside": [str(args.wayside), "process", "--json", *common, str(clip)],
        "reference": [args.python, str(REFERENCE), "--model", str(exported_model("detector")),
                      "--threads", str(args.threads), "--resize", args.resize,
                      "--trim-padding", str(args.trim_padding), *common, str(clip)],
    }


def med(runs, f):
    return statistics.median(f(r) for r in runs)


def stage(r: dict, name: str) -> float:
    """A stage's ms under the common names: decode, detect, track (tracking and counting)."""
    s = r["result"]["stage_ms"]
    if name == "track" and "count" in s:
        return s["track"] + s["count"]
    return s.get(name, 0)


def perf_table(clips, results, args) -> list[str]:
    lines = [
        "| clip | pipeline | wall s | video frames/s | analysed frames/s | CPU s (user+sys) "
        "| CPU ms / analysed frame | peak RSS MiB | decode ms | detect ms | detect ms / frame "
        "| track+count ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clip, info in clips:
        for impl in ("wayside", "reference"):
            runs = results[clip.name][impl]
            frames = runs[0]["result"]["frames_processed"]
            wall = med(runs, lambda r: r["wall_s"])
            cpu = med(runs, lambda r: r["cpu_s"])
            detect = med(runs, lambda r: stage(r, "detect"))
            lines.append(
                f"| {clip.name} | {impl} | {wall:.1f} | {info['frames'] / wall:.1f} "
                f"| {frames / wall:.2f} | {cpu:.1f} | {cpu * 1000 / frames:.0f} "
                f"| {med(runs, lambda r: r['rss_mib']):.0f} "
                f"| {med(runs, lambda r: stage(r, 'decode')):.0f} | {detect:.0f} "
                f"| {detect / frames:.1f} | {med(runs, lambda r: stage(r, 'track')):.0f} |"
            )
    return lines


def ratio_table(clips, results) -> list[str]:
    lines = [
        "| clip | fps ratio (wayside / reference) | CPU-time ratio (reference / wayside) "
        "| peak RSS ratio (wayside / reference) | goal fps >= 2x | goal RSS <= 0.5x |",
        "|---|---:|---:|---:|---|---|",
    ]
    for clip, _ in clips:
        w, r = results[clip.name]["wayside"], results[clip.name]["reference"]
        fps = med(r, lambda x: x["wall_s"]) / med(w, lambda x: x["wall_s"])
        cpu = med(r, lambda x: x["cpu_s"]) / med(w, lambda x: x["cpu_s"])
        rss = med(w, lambda x: x["rss_mib"]) / med(r, lambda x: x["rss_mib"])
        yes = lambda ok: "met" if ok else "**not met**"  # noqa: E731
        lines.append(f"| {clip.name} | {fps:.2f}x | {cpu:.2f}x | {rss:.2f}x "
                     f"| {yes(fps >= 2.0)} | {yes(rss <= 0.5)} |")
    return lines


def matched_passes(w: dict, r: dict, slack: int) -> tuple[int, int]:
    """How many of wayside's passes the reference also has within `slack`
    windows, of the same kind (greedy, in time order); and the totals."""
    matched, total = 0, 0
    for key in ("pedestrians_per_interval", "vehicles_per_interval"):
        ws = [i for i, c in enumerate(w[key]) for _ in range(c)]
        rs = [i for i, c in enumerate(r[key]) for _ in range(c)]
        for i in ws:
            near = [j for j in rs if abs(j - i) <= slack]
            if near:
                rs.remove(min(near, key=lambda j: abs(j - i)))
                matched += 1
        total += len(ws)
    return matched, total


def counts_table(clips, results, args) -> list[str]:
    lines = [
        "| clip | samples | passed pedestrians W / R | passed vehicles W / R "
        "| per-frame pedestrians: equal samples, mean abs diff, W sum / R sum "
        "| per-frame vehicles: equal samples, mean abs diff, W sum / R sum "
        "| windows with equal pass counts | W passes also in R (same kind, +-1 s) | same counts every run |",
        "|---|---:|---|---|---|---|---:|---:|---|",
    ]
    for clip, _ in clips:
        w = results[clip.name]["wayside"][0]["result"]
        r = results[clip.name]["reference"][0]["result"]
        n = min(len(w["pedestrian_counts"]), len(r["pedestrian_counts"]))

        def per_frame(key):
            a, b = w[key][:n], r[key][:n]
            equal = sum(x == y for x, y in zip(a, b))
            mad = sum(abs(x - y) for x, y in zip(a, b)) / max(n, 1)
            return f"{equal}/{n}, {mad:.2f}, {sum(w[key])} / {sum(r[key])}"

        windows = sum(
            w["pedestrians_per_interval"][i] == r["pedestrians_per_interval"][i]
            and w["vehicles_per_interval"][i] == r["vehicles_per_interval"][i]
            for i in range(n)
        )
        matched, total = matched_passes(w, r, 1000 // args.interval)
        stable = all(
            all(run["result"][k] == runs[0]["result"][k] for k in ARRAYS)
            for runs in results[clip.name].values() for run in runs
        )
        samples = (f"{n}" if len(w["pedestrian_counts"]) == len(r["pedestrian_counts"])
                   else f"{len(w['pedestrian_counts'])} / {len(r['pedestrian_counts'])}")
        lines.append(
            f"| {clip.name} | {samples} "
            f"| {sum(w['pedestrians_per_interval'])} / {sum(r['pedestrians_per_interval'])} "
            f"| {sum(w['vehicles_per_interval'])} / {sum(r['vehicles_per_interval'])} "
            f"| {per_frame('pedestrian_counts')} | {per_frame('vehicle_counts')} "
            f"| {windows}/{n} | {matched}/{total} | {'yes' if stable else 'no'} |"
        )
    return lines


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", action="append", type=Path, help="clip to run (repeatable)")
    p.add_argument("--interval", type=int, default=200, help="sampling interval, ms")
    p.add_argument("--line", default="0.5,0,0.5,1",
                   help='counting line "x1,y1,x2,y2" in 0..1; "" for the travel rule')
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--wayside", type=Path, default=ROOT / "var" / "wayside-release",
                   help="release binary (default var/wayside-release: a copy of "
                        "target/release/wayside)")
    p.add_argument("--python", default=str(ROOT / "var" / "bench-venv" / "bin" / "python"))
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime threads of the reference (the daemon's "
                        "models.threads defaults to 1)")
    p.add_argument("--resize", choices=("antialias", "cv2"), default="antialias",
                   help="the reference's letterbox resize (bench/reference/pipeline.py)")
    p.add_argument("--trim-padding", type=int, default=0, metavar="N",
                   help="the reference trims its letterbox padding in blocks of N, as the "
                        "daemon's manifest says for the detector (default 0: the model's full "
                        "416x416 input, as most code feeds a fixed-size model)")
    args = p.parse_args()
    if not args.wayside.exists():
        sys.exit(f"{args.wayside} is missing: copy target/release/wayside there")
    if not Path(args.python).exists():
        sys.exit(f"{args.python} is missing: run bench/setup.sh")

    paths = args.clip or [vtest_clip(720), CACHE / "media" / "otvision-cars-truck.mp4"]
    clips = [(c, probe(c)) for c in paths]
    env = dict(os.environ, WAYSIDE_MODELS_DIR=str(CACHE))
    env.pop("WAYSIDE_CONFIG", None)  # the daemon's defaults, as the reference has
    results = {c.name: {"wayside": [], "reference": []} for c, _ in clips}
    loads = [os.getloadavg()]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for run in range(args.runs):
        for clip, _ in clips:
            order = ["wayside", "reference"] if run % 2 == 0 else ["reference", "wayside"]
            cmds = commands(args, clip)
            for impl in order:
                r = run_child(cmds[impl], env)
                r["load_before"] = loads[-1]
                loads.append(os.getloadavg())
                results[clip.name][impl].append(r)
                print(f"[compare] run {run + 1}/{args.runs} {clip.name} {impl}: "
                      f"{r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                      f"{r['rss_mib']:.0f} MiB, load {loads[-1][0]:.2f}", file=sys.stderr)

    one = [l[0] for l in loads]
    ref_versions = results[clips[0][0].name]["reference"][0]["result"].get("versions", {})
    out = [
        f"Measured {started} on {cpu_model()}, {os.cpu_count()} logical cores, "
        f"{platform.machine()}; load average (1 min) {min(one):.2f}-{max(one):.2f} "
        f"during the bench (at start {loads[0][0]:.2f} / {loads[0][1]:.2f} / {loads[0][2]:.2f}).",
        f"Interval {args.interval} ms, line `{args.line or 'none (travel rule)'}`, "
        f"{args.runs} runs each, medians; reference onnxruntime threads {args.threads}, "
        f"resize {args.resize}, letterbox "
        f"{f'padding trimmed in blocks of {args.trim_padding}' if args.trim_padding else '416x416'}; "
        + ", ".join(f"{k} {v}" for k, v in ref_versions.items()) + ".",
        "",
        "Clips: " + "; ".join(
            f"{c.name} {i['width']}x{i['height']} {i['codec']}, {i['frames']} frames, "
            f"{i['duration_s']:.1f} s" for c, i in clips) + ".",
        "",
        *perf_table(clips, results, args),
        "",
        *ratio_table(clips, results),
        "",
        "Counts (W = wayside, R = reference; first run of each):",
        "",
        *counts_table(clips, results, args),
    ]
    print("\n".join(out))

    raw = BENCH / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "clips": {c.name: i for c, i in clips},
                               "loads": loads, "results": results}, indent=1))
    print(f"[compare] raw results: {raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
