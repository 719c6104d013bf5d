#!/usr/bin/env python3
"""Python references for the Rust plate decoding (vision/src/plate/).

Reads the cross-check tensors that crosscheck.py wrote for the two plate
models and decodes onnxruntime's outputs the way the upstream packages do,
so the Rust tests can compare their decoding, not just the raw tensors:

- <cache>/crosscheck/plate-detector/agentclpr_plates.json: agentclpr 1.1.0's
  CLPDetector post-processing (its gen_priors / decode / decode_landm / nms,
  copied below verbatim apart from names), run on output_*.npy of the
  letterboxed pexels bus photo. The final threshold is lowered from 0.7 to
  0.1 so that the photo's small UK plate (best score ~0.18) is in it.
- <cache>/crosscheck/plate-recognizer/paddle_ctc.json: PaddleOCR's
  CTCLabelDecode (argmax, merge repeats, drop blank 0, score = mean of the
  kept maxima) on output_0.npy of the rendered plate, with the dictionary.

Run by fetch.py after the cross-check (cheap, always rewrites); by hand:
plate_reference.py
"""
import json
import sys
from itertools import product
from math import ceil
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import crosscheck  # noqa: E402  (cache_dir_default, manifest reading)
import tomllib  # noqa: E402

VIS_THRESHOLD = 0.1


def gen_priors(h, w, min_sizes, steps, clip):
    anchors = []
    for k, f in enumerate([[ceil(h / s), ceil(w / s)] for s in steps]):
        for i, j in product(range(f[0]), range(f[1])):
            for m in min_sizes[k]:
                anchors += [(j + 0.5) * steps[k] / w, (i + 0.5) * steps[k] / h, m / w, m / h]
    out = np.array(anchors).reshape(-1, 4)
    return np.clip(out, 0, 1) if clip else out


def decode(loc, priors, v):
    boxes = np.concatenate((priors[:, :2] + loc[:, :2] * v[0] * priors[:, 2:],
                            priors[:, 2:] * np.exp(loc[:, 2:] * v[1])), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def decode_landm(pre, priors, v):
    return np.concatenate([priors[:, :2] + pre[:, 2 * k:2 * k + 2] * v[0] * priors[:, 2:] for k in range(4)], 1)


def nms(dets, thresh):
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def detector_reference(model, cache):
    d = cache / "crosscheck" / model["id"]
    out = model["output"]
    _, _, h, w = np.load(d / "input.npy").shape
    loc, conf, landms = (np.load(d / f"output_{i}.npy")[0] for i in range(3))
    priors = gen_priors(h, w, out["min_sizes"], out["steps"], out["clip"])
    scale2 = np.array([w, h] * 2)
    boxes = decode(loc, priors, out["variance"]) * scale2
    lm = decode_landm(landms, priors, out["variance"]) * np.array([w, h] * 4)
    scores = conf[:, 1]
    inds = np.where(scores > 0.02)[0]
    boxes, lm, scores = boxes[inds], lm[inds], scores[inds]
    order = scores.argsort()[::-1][:1000]
    boxes, lm, scores = boxes[order], lm[order], scores[order]
    dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
    keep = nms(dets, out["nms_iou"])
    dets = np.concatenate((dets[keep][:500], lm[keep][:500]), axis=1)
    dets = dets[dets[:, 4] > VIS_THRESHOLD]
    (d / "agentclpr_plates.json").write_text(json.dumps({
        "model_sha256": model["sha256"],
        "vis_threshold": VIS_THRESHOLD,
        "nms_iou": out["nms_iou"],
        "about": "x1, y1, x2, y2, score, then 4 corners (x, y) in the model's order "
                 "(bottom-right, bottom-left, top-left, top-right); model-input pixels",
        "plates": [[float(v) for v in row] for row in dets],
    }, indent=1))
    return len(dets)


def recognizer_reference(model, cache):
    d = cache / "crosscheck" / model["id"]
    out = model["output"]
    symbols = (cache / out["dict"]).read_text(encoding="utf-8").splitlines()
    probs = np.load(d / "output_0.npy")[0]
    index, prob = probs.argmax(1), probs.max(1)
    keep = np.ones(len(index), bool)
    keep[1:] = index[1:] != index[:-1]
    keep &= index != out["blank"]
    chars = [symbols[i - 1] for i in index[keep]]
    confs = prob[keep].tolist()
    (d / "paddle_ctc.json").write_text(json.dumps({
        "model_sha256": model["sha256"],
        "text": "".join(chars),
        "score": float(np.mean(confs)) if confs else 0.0,
        "confidences": confs,
    }, ensure_ascii=False, indent=1))
    return "".join(chars)


def run(manifest, cache):
    models = {m["id"]: m for m in manifest["model"]}
    n = detector_reference(models["plate-detector"], cache)
    text = recognizer_reference(models["plate-recognizer"], cache)
    print(f"[models] plate references: plate-detector {n} plates above {VIS_THRESHOLD}; "
          f"plate-recognizer {text!r}", file=sys.stderr)


if __name__ == "__main__":
    run(tomllib.loads((Path(__file__).resolve().parent / "manifest.toml").read_text()),
        crosscheck.cache_dir_default())
