#!/usr/bin/env python3
"""How a box's cost grows with resolution, interval and number of cameras
(issue 12), each against the smallest case measured in the same run.

  resolution  `wayside process --interval 1000` on vtest.avi stretched to
              640x360, 1280x720 and 1920x1080 (H.264, made once under
              var/bench/ by bench/harness.py);
  interval    the 720p clip at 2000, 1000, 200 and 100 ms;
  cameras     `wayside serve` with 1, 2 and 4 file cameras looping the 720p
              clip (10 fps, 1 s windows): analysed frames/s per camera from
              `wayside_camera_frames_analysed_total` over `--seconds`, and
              what all of them decoded, left undecoded and converted to RGB.

Usage: scripts/bench-scaling.py [--bin PATH] [--seconds S] [--only resolution|interval|cameras]
                                [--config TOML] [--source URI] [--cameras N,N,...]
--config: TOML added to every run's configuration, e.g. "[video]\ndecode_threads = 0".
--source: every camera's source in place of the looping 720p file, e.g. an
          RTSP stream (`tests/examples/rtsp_server.rs` serves a file as one).
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from harness import ROOT, free_port, run_measured, vtest_clip  # noqa: E402

EXTRA_CONFIG = ""


def process(binary, video, interval):
    """(wall s, CPU s, peak RSS MiB, summary) of one `wayside process`."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write(EXTRA_CONFIG)
        config.flush()
        m = run_measured([str(binary), "--config", config.name, "process", str(video),
                          "--interval", str(interval), "--json"])
    return m.wall_s, m.cpu_s, m.rss_mib, json.loads(m.stdout)


def row(label, wall, cpu, frames, base_ms=None):
    per = wall * 1000 / frames
    ratio = f"{per / base_ms:.2f}x" if base_ms else "1.00x (reference)"
    print(f"| {label} | {frames} | {wall:.1f} | {cpu:.1f} | {per:.0f} | {cpu * 1000 / frames:.0f} | {ratio} |")
    return per


def resolution(binary):
    print("\n| clip | analysed frames | wall s | CPU s | wall ms / analysed frame | CPU ms / analysed frame | wall per frame vs 360p |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    clips = {h: vtest_clip(h) for h in (360, 720, 1080)}
    base = None
    for h, video in clips.items():
        wall, cpu, rss, s = process(binary, video, 1000)
        per = row(f"vtest {h}p (peak RSS {rss:.0f} MiB)", wall, cpu, s["frames_processed"], base)
        base = base or per


def interval(binary):
    print("\n| interval ms | analysed frames | wall s | CPU s | wall ms / analysed frame | CPU ms / analysed frame | per frame vs 2000 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = None
    for ms in (2000, 1000, 200, 100):
        wall, cpu, _, s = process(binary, vtest_clip(720), ms)
        per = row(str(ms), wall, cpu, s["frames_processed"], base)
        base = base or per


FRAME_COUNTS = ("analysed", "decoded", "undecoded", "converted")


def frame_counts(port):
    """{count: {camera: frames}} from the daemon's /metrics."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return {k: {m[0]: float(m[1]) for m in re.findall(
        rf'^wayside_camera_frames_{k}_total\{{camera="([^"]+)"\}} (\S+)$', text, re.M)}
        for k in FRAME_COUNTS}


def cameras(binary, seconds, source, counts):
    print("\n| cameras | analysed frames/s per camera (each) | total analysed frames/s "
          "| decoded / undecoded / converted frames/s, all cameras | CPU s / s | peak RSS MiB "
          "| total vs 1 camera |")
    print("|---:|---|---:|---|---:|---:|---:|")
    base = None
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            port = free_port()
            cams = "".join(
                f'[[camera]]\nname = "cam{i}"\nsource = "{source}"\nwindow_ms = 1000\n'
                for i in range(n)
            )
            (tmp / "w.toml").write_text(
                f'[server]\nlisten = "127.0.0.1:{port}"\nspool_dir = "{tmp / "spool"}"\n'
                f'[media]\ndir = "{tmp / "media"}"\n[outbox]\ndir = "{tmp / "outbox"}"\n{cams}'
                f'{EXTRA_CONFIG}\n'
            )
            log = open(tmp / "log", "w")
            proc = subprocess.Popen([str(binary), "--config", str(tmp / "w.toml"), "serve"],
                                    cwd=ROOT, stdout=log, stderr=log)
            try:
                time.sleep(10)  # models loaded, cameras streaming
                first, t0 = frame_counts(port), time.monotonic()
                cpu0 = cpu_of(proc.pid)
                time.sleep(seconds)
                last, t1 = frame_counts(port), time.monotonic()
                cpu = (cpu_of(proc.pid) - cpu0) / (t1 - t0)
                rss = peak_rss_of(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        if len(last["analysed"]) != n:
            sys.exit(f"{n} cameras: metrics show {sorted(last['analysed'])}; see the daemon log")
        rate = {k: {cam: (v - first[k].get(cam, 0)) / (t1 - t0) for cam, v in last[k].items()}
                for k in FRAME_COUNTS}
        each = [rate["analysed"][cam] for cam in sorted(rate["analysed"])]
        total = sum(each)
        frames = " / ".join(f"{sum(rate[k].values()):.1f}" for k in FRAME_COUNTS[1:])
        ratio = f"{total / base:.2f}x" if base else "1.00x (reference)"
        base = base or total
        print(f"| {n} | {', '.join(f'{e:.1f}' for e in each)} | {total:.1f} | {frames} "
              f"| {cpu:.2f} | {rss:.0f} | {ratio} |")


def peak_rss_of(pid):
    """VmHWM of a running process, in MiB."""
    kib = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(kib[1]) / 1024


def cpu_of(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "wayside")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--only", choices=["resolution", "interval", "cameras"])
    p.add_argument("--config", default="", help="TOML added to every run's configuration")
    p.add_argument("--source", help="every camera's source (default: the 720p clip as a file: camera)")
    p.add_argument("--cameras", default="1,2,4", help="numbers of cameras to run, one run each")
    args = p.parse_args()
    global EXTRA_CONFIG
    EXTRA_CONFIG = args.config.replace("\\n", "\n")
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f}; one run each; binary {args.bin.name}"
          + (f"; config {EXTRA_CONFIG!r}." if EXTRA_CONFIG else "."))
    if args.only in (None, "resolution"):
        resolution(args.bin)
    if args.only in (None, "interval"):
        interval(args.bin)
    if args.only in (None, "cameras"):
        source = args.source or f"file:{vtest_clip(720)}"
        cameras(args.bin, args.seconds, source, [int(n) for n in args.cameras.split(",")])


if __name__ == "__main__":
    main()
