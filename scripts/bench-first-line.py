#!/usr/bin/env python3
"""Time to the first /video-streaming line (issue 12 goal: <= 1 s after upload).

Starts `wayside serve` (release build) on 127.0.0.1 with its state in a
temporary directory, then for each clip and interval uploads the clip to
POST /video-streaming and measures, from the moment the last byte of the
request was sent: the first NDJSON line, and the last. The reference, in the
same run, is real time: a live source could give its first sample no sooner
than one interval after it started, so "first line / interval" below 1 is
ahead of real time. The box's models are loaded once at start, as in
service, so they are not in the figure.

Usage: scripts/bench-first-line.py [--bin PATH] [--runs N] [--clip FILE ...]
       [--interval MS ...]
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from harness import CACHE, ROOT, free_port, vtest_clip  # noqa: E402


def start_daemon(binary, state):
    port = free_port()
    config = state / "wayside.toml"
    config.write_text(
        f"""[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
spool_dir = "{state / 'spool'}"
[media]
dir = "{state / 'media'}"
[outbox]
dir = "{state / 'outbox'}"
"""
    )
    log = open(state / "daemon.log", "w")
    proc = subprocess.Popen(
        [str(binary), "--config", str(config), "serve"], cwd=ROOT, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"daemon exited; see {state / 'daemon.log'}")
        time.sleep(0.2)
    proc.kill()
    sys.exit("daemon not healthy within 120 s")


def stream_once(port, clip, interval_ms):
    """(first line s, last line s, lines) after the request's last byte."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"interval\"\r\n\r\n"
        f"{interval_ms}\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f"name=\"video\"; filename=\"{clip.name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.putrequest("POST", "/video-streaming")
    c.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    c.putheader("Content-Length", str(len(body)))
    c.endheaders()
    c.send(body)
    sent = time.monotonic()
    res = c.getresponse()
    if res.status != 200:
        sys.exit(f"{clip.name}: HTTP {res.status}: {res.read()[:300]!r}")
    first, lines = None, 0
    while True:
        line = res.readline()
        if not line:
            break
        if line.strip():
            json.loads(line)
            lines += 1
            if first is None:
                first = time.monotonic() - sent
    return first, time.monotonic() - sent, lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "wayside")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--clip", type=Path, action="append")
    p.add_argument("--interval", type=int, action="append")
    args = p.parse_args()
    # The 720p clip is made only when no clip is named.
    named = args.clip or [vtest_clip(720), CACHE / "media" / "otvision-cars-truck.mp4",
                          CACHE / "media" / "bikes.mp4"]
    clips = [c for c in named if c.exists()]
    intervals = args.interval or [1000, 200]
    if not clips:
        sys.exit("none of the clips exists")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_daemon(args.bin, Path(tmp))
        try:
            rows = []
            for clip in clips:
                for interval in intervals:
                    runs = [stream_once(port, clip, interval) for _ in range(args.runs)]
                    first = statistics.median(r[0] for r in runs)
                    last = statistics.median(r[1] for r in runs)
                    rows.append((clip.name, interval, first, max(r[0] for r in runs), last, runs[0][2]))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load average at start {load[0]:.2f}; {args.runs} runs each, medians; binary {args.bin.name}."
    )
    print()
    print("| clip | interval ms | first line s (median / worst) | first line / interval (real time) | last line s | lines | goal first line <= 1 s |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, interval, first, worst, last, lines in rows:
        met = "met" if worst <= 1.0 else "**not met**"
        print(
            f"| {name} | {interval} | {first:.2f} / {worst:.2f} | {first * 1000 / interval:.2f}x | "
            f"{last:.1f} | {lines} | {met} |"
        )


if __name__ == "__main__":
    main()
