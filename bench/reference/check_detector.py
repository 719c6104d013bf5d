#!/usr/bin/env python3
"""Do the reference's detector and the daemon's agree on the same pixels?

Runs `wayside detect IMAGE` and the reference pipeline's Detector (the
same model as exported, without the rewrites for tract; onnxruntime) on
each image, and prints how many of the daemon's boxes the reference also
found (same class, IoU > 0.9) and the median score difference of those.
Feeding both one decoded image takes video decoding out of the
comparison: what is left is the letterbox and the runtime.

Usage: check_detector.py [--wayside BIN] [--resize antialias|cv2]
       [--trim-padding N] IMAGE...
(with var/bench-venv/bin/python; frames can be cut with
`ffmpeg -ss 10 -i CLIP -frames:v 1 frame.png`)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from pipeline import COUNTED, Detector

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from harness import CACHE, exported_model  # noqa: E402
NAMES = {"person": 0, "bicycle": 1, "car": 2, "motorcycle": 3, "bus": 5, "truck": 7}


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+")
    p.add_argument("--wayside", default=str(ROOT / "var" / "wayside-release"))
    p.add_argument("--resize", choices=("antialias", "cv2"), default="antialias")
    p.add_argument("--trim-padding", type=int, default=32, metavar="N",
                   help="trim the letterbox padding in blocks of N, as the daemon does "
                        "(the manifest's trim_padding); 0: the full 416x416")
    args = p.parse_args()
    detector = Detector(str(exported_model("detector")), 1, args.resize, args.trim_padding)
    assert set(NAMES.values()) == set(COUNTED.tolist())
    for image in args.images:
        out = subprocess.run([args.wayside, "detect", image], check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, WAYSIDE_MODELS_DIR=str(CACHE))).stdout
        w = json.loads(out)["detections"]
        bgr = cv2.imread(image)
        h, wd = bgr.shape[:2]
        scale, px, py = detector.letterbox(bgr)
        xyxy, score, cls = detector.decode(detector.infer(), scale, px, py, wd, h)
        matched, diffs = 0, []
        for d in w:
            best = max(((iou(d["bbox"], b), abs(d["score"] - s))
                        for b, s, c in zip(xyxy, score, cls) if c == NAMES[d["class"]]),
                       default=(0.0, 1.0))
            if best[0] > 0.9:
                matched += 1
                diffs.append(best[1])
        median = f"{statistics.median(diffs):.4f}" if diffs else "-"
        print(f"{Path(image).name} {wd}x{h}: wayside {len(w)} boxes, reference {len(xyxy)}; "
              f"{matched}/{len(w)} of wayside's found by the reference (IoU > 0.9); "
              f"median |score difference| {median}; "
              f">= 0.45: wayside {sum(d['score'] >= 0.45 for d in w)}, "
              f"reference {int((np.asarray(score) >= 0.45).sum())}")


if __name__ == "__main__":
    main()
