#!/usr/bin/env python3
"""How many of a clip's analysed frames a motion gate would let detection
skip (issue 12's "skipping detection on unchanged frames"), before building
one.

Follows the daemon's schedule for tracking (every frame at <= 5 fps, else
every round(fps / 5)-th) and a Frigate-style gate: the frame in grey,
box-averaged to 1/8 of its size (which also averages away most sensor and
compression noise), against the last frame that was detected; detection runs
when at least MIN_PX of those pixels moved by more than THR levels, or a
second has passed since the last detection.

Usage: var/bench-venv/bin/python bench/unchanged_frames.py CLIP...
"""

import sys

import cv2
import numpy as np

SETTINGS = [(15, 4), (25, 4), (40, 8)]  # (THR levels, MIN_PX), most to least sensitive
MAX_SKIP_MS = 1000


def thumbnail(bgr):
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    size = (grey.shape[1] // 8, grey.shape[0] // 8)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.int16)


def detected(clip, thr, min_px):
    """(frames analysed, frames the gate sends to detection)."""
    cap = cv2.VideoCapture(clip)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    every = max(1, round(fps / 5))
    analysed = runs = 0
    reference, last_ms, i = None, None, 0
    while cap.grab():
        if i % every == 0:
            t_ms = i * 1000.0 / fps
            thumb = thumbnail(cap.retrieve()[1])
            analysed += 1
            if (reference is None or t_ms - last_ms >= MAX_SKIP_MS
                    or (np.abs(thumb - reference) > thr).sum() >= min_px):
                runs += 1
                reference, last_ms = thumb, t_ms
        i += 1
    return analysed, runs


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("| clip | threshold, min pixels | analysed | detected | skipped |")
    print("|---|---|---:|---:|---:|")
    for clip in sys.argv[1:]:
        for thr, min_px in SETTINGS:
            n, runs = detected(clip, thr, min_px)
            print(f"| {clip.rsplit('/', 1)[-1]} | {thr}, {min_px} | {n} | {runs} | {100 * (n - runs) / n:.0f} % |")


if __name__ == "__main__":
    main()
