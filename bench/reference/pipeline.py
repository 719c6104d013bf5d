#!/usr/bin/env python3
"""Reference pipeline for issue 12: the `/video` counting job written the way
a Python team would write it with the usual stack, doing the same work as
`wayside process`, so the two can be timed side by side (bench/compare.py).

  decode   OpenCV (cv2.VideoCapture, FFmpeg backend): `grab()` every frame,
           `retrieve()` (convert to BGR) only the frames that are analysed;
  detect   the daemon's own ONNX detector file (manifest id `detector`) in
           onnxruntime, with the daemon's letterbox, GFL decoding and NMS;
  track    supervision's ByteTrack;
  count    per-frame counts (riders are not pedestrians) and per-interval
           pass-through: supervision's LineZone when a line is given, else
           the daemon's travel rule.

What is matched to the daemon, and where it comes from:
  schedule        daemon/src/pipeline/schedule.rs (sample i = the frame
                  nearest i * interval; tracking at >= min_track_fps)
  letterbox       vision/src/detect/letterbox.rs + models/manifest.toml:
                  416x416, centred, pad 0, BGR, mean/std per channel (with
                  `--trim-padding 32`, as the manifest's `trim_padding`:
                  the padding cut down in blocks of 32, e.g. to 416x288 for
                  a 16:9 frame); resized
                  with Pillow's bilinear filter, which like the daemon's
                  (fast_image_resize, convolution) widens with the scale
                  factor. `--resize cv2` uses cv2.INTER_LINEAR instead (what
                  most Python code does): it samples 4 pixels whatever the
                  scale, and on a 720p frame moves scores by about 0.01
  decode, NMS     vision/src/detect/decode.rs, nms.rs: the best of the counted
                  classes per cell, score >= 0.25, class-aware greedy NMS at
                  IoU > 0.5
  classes         vision/src/classes.rs: person = pedestrian; car, bus, truck,
                  motorcycle, bicycle = vehicle; bicycle, motorcycle carry riders
  counting        vision/src/count/: per-frame counts from detections scoring
                  >= 0.45, a person >= 50 % inside a two-wheeler is its rider;
                  an object is counted once, in the window of its first line
                  crossing (reference point: bottom centre of the box) or,
                  without a line, once it has travelled one box height
  tracker         vision/src/track/ defaults mapped onto ByteTrack's knobs:
                  a new track needs 0.5, 3 consecutive frames to confirm, 3 s
                  buffer, IoU >= 0.2 to match

Not the same (a different implementation, by design): supervision's ByteTrack
has no recovery stage, no per-kind matching, counts the lost buffer in
frames, weighs IoU by the detection's score when matching, and ties its
thresholds together (a new track needs the high threshold + 0.1: set to the
daemon's new-track 0.5, which puts the high threshold at 0.4, not 0.45); LineZone has no hysteresis band and counts every change of side (a
track's first crossing is the one kept here, as the daemon does).

Prints one JSON object: the `/video` counting fields (API.md) plus
`frames_processed`, `duration_ms`, `processing_ms` and `stage_ms`.

Usage: pipeline.py --model detector.onnx --interval 200 [--line x1,y1,x2,y2] VIDEO
"""

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv
from PIL import Image

# COCO ids (vision/src/classes.rs).
PERSON, BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK = 0, 1, 2, 3, 5, 7
PEDESTRIAN_CLASSES = (PERSON,)
VEHICLE_CLASSES = (BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK)
TWO_WHEELERS = (BICYCLE, MOTORCYCLE)
COUNTED = np.array(sorted(PEDESTRIAN_CLASSES + VEHICLE_CLASSES))
CLASS_NAMES = {PERSON: "person", BICYCLE: "bicycle", CAR: "car",
               MOTORCYCLE: "motorcycle", BUS: "bus", TRUCK: "truck"}

# models/manifest.toml, [[model]] id = "detector".
INPUT_W = INPUT_H = 416
MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # tensor channel order: B, G, R
STD = np.array([57.375, 57.12, 58.395], np.float32)
PAD = 0.0
STRIDES = (8, 16, 32)
REG_MAX = 10
NUM_CLASSES = 80

# vision/src/detect/mod.rs, count/mod.rs, track/mod.rs defaults.
MIN_SCORE = 0.25
NMS_IOU = 0.5
COUNT_MIN_SCORE = 0.45
RIDER_MIN_COVER = 0.5
MIN_TRAVEL = 1.0
NEW_TRACK_THRESH = 0.5
MIN_HITS = 3
TRACK_BUFFER_S = 3.0
MATCH_THRESH = 0.8
MIN_TRACK_FPS = 5.0


class Schedule:
    """daemon/src/pipeline/schedule.rs, line for line."""

    def __init__(self, interval_ms, min_track_fps, fps):
        self.interval_ms = max(interval_ms, 1)
        self.track_period_ms = min(max(math.floor(1000.0 / min_track_fps), 1), self.interval_ms)
        self.half_frame_ms = math.floor(500.0 / fps) if fps and fps > 0 else 0
        self.next_sample = 0
        self.next_track_ms = 0

    def slot(self, t_ms):
        """(sample indices this frame stands for, whether to detect and track it)."""
        reach = t_ms + self.half_frame_ms
        first = self.next_sample
        while self.next_sample * self.interval_ms <= reach:
            self.next_sample += 1
        samples = range(first, self.next_sample)
        track = len(samples) > 0 or reach >= self.next_track_ms
        if track:
            self.next_track_ms = t_ms + self.track_period_ms
        return samples, track


class Detector:
    """The daemon's detector in onnxruntime: letterbox, run, decode, NMS."""

    def __init__(self, path, threads, resize="antialias", trim_padding=0):
        self.resize = resize
        self.trim_padding = trim_padding
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.tensor = None
        self.pad_value = (PAD - MEAN) / STD
        self.bins = np.arange(REG_MAX + 1, dtype=np.float32)
        self.priors = {}

    def fit(self, iw, ih):
        """The input tensor and the cell centres per stride for a iw x ih input."""
        if self.tensor is None or self.tensor.shape[2:] != (ih, iw):
            self.tensor = np.empty((1, 3, ih, iw), np.float32)
            for s in STRIDES:
                gw, gh = -(-iw // s), -(-ih // s)
                ys, xs = np.divmod(np.arange(gw * gh), gw)
                self.priors[s] = np.stack([(xs + 0.5) * s, (ys + 0.5) * s], axis=1).astype(np.float32)

    def letterbox(self, bgr):
        sh, sw = bgr.shape[:2]
        scale = min(INPUT_W / sw, INPUT_H / sh)
        nw = min(max(round(sw * scale), 1), INPUT_W)
        nh = min(max(round(sh * scale), 1), INPUT_H)
        px, py = (INPUT_W - nw) // 2, (INPUT_H - nh) // 2
        right, bottom = INPUT_W - nw - px, INPUT_H - nh - py
        if self.trim_padding:
            px, py, right, bottom = (p % self.trim_padding for p in (px, py, right, bottom))
        self.fit(px + nw + right, py + nh + bottom)
        if self.resize == "cv2":
            scaled = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        else:
            # Per channel, so BGR can pass as Pillow's "RGB".
            scaled = np.asarray(Image.fromarray(bgr).resize((nw, nh), Image.BILINEAR))
        norm = (scaled.astype(np.float32) - MEAN) / STD  # HWC, BGR
        t = self.tensor
        t[0] = self.pad_value[:, None, None]
        t[0, :, py:py + nh, px:px + nw] = norm.transpose(2, 0, 1)
        return scale, px, py

    def infer(self):
        return self.session.run(None, {self.input_name: self.tensor})

    def decode(self, outputs, scale, px, py, sw, sh):
        """(xyxy in frame pixels, score, class id) after NMS, best first."""
        boxes, scores, classes = [], [], []
        for s in STRIDES:
            cells = len(self.priors[s])
            cls = next(o for o in outputs if o.shape == (1, cells, NUM_CLASSES))[0]
            dist = next(o for o in outputs if o.shape == (1, cells, 4 * (REG_MAX + 1)))[0]
            kept = cls[:, COUNTED]
            best = kept.argmax(axis=1)
            score = kept[np.arange(cells), best]
            hit = score >= MIN_SCORE
            if not hit.any():
                continue
            logits = dist[hit].reshape(-1, 4, REG_MAX + 1)
            e = np.exp(logits - logits.max(axis=2, keepdims=True))
            side = (e * self.bins).sum(axis=2) / e.sum(axis=2) * s
            c = self.priors[s][hit]
            boxes.append(np.concatenate([c - side[:, :2], c + side[:, 2:]], axis=1))
            scores.append(score[hit])
            classes.append(COUNTED[best[hit]])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int)
        xyxy = np.concatenate(boxes)
        xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - px) / scale).clip(0, sw)
        xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - py) / scale).clip(0, sh)
        score, cls = np.concatenate(scores), np.concatenate(classes)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        keep = area > 0
        xyxy, score, cls = xyxy[keep], score[keep], cls[keep]
        order = nms(xyxy, score, cls, NMS_IOU)
        return xyxy[order], score[order], cls[order]


def nms(xyxy, score, cls, iou_threshold):
    """Greedy, class-aware, best first (vision/src/detect/nms.rs)."""
    order = np.argsort(-score, kind="stable")
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    kept = []
    while order.size:
        i = order[0]
        kept.append(i)
        rest = order[1:]
        ix1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        iy1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        ix2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        iy2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = (ix2 - ix1).clip(0) * (iy2 - iy1).clip(0)
        union = area[i] + area[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[~((cls[rest] == cls[i]) & (iou > iou_threshold))]
    return np.array(kept, int)


def rider_mask(xyxy, cls):
    """A person at least RIDER_MIN_COVER inside a two-wheeler's box is its rider."""
    wheels = xyxy[np.isin(cls, TWO_WHEELERS)]
    mask = np.zeros(len(cls), bool)
    if len(wheels) == 0:
        return mask
    for i in np.flatnonzero(cls == PERSON):
        b = xyxy[i]
        area = (b[2] - b[0]) * (b[3] - b[1])
        if area <= 0:
            continue
        iw = (np.minimum(b[2], wheels[:, 2]) - np.maximum(b[0], wheels[:, 0])).clip(0)
        ih = (np.minimum(b[3], wheels[:, 3]) - np.maximum(b[1], wheels[:, 1])).clip(0)
        mask[i] = bool(((iw * ih) / area >= RIDER_MIN_COVER).any())
    return mask


def frame_counts(xyxy, score, cls):
    keep = score >= COUNT_MIN_SCORE
    xyxy, cls = xyxy[keep], cls[keep]
    riders = rider_mask(xyxy, cls)
    pedestrians = int(((cls == PERSON) & ~riders).sum())
    vehicles = int(np.isin(cls, VEHICLE_CLASSES).sum())
    return pedestrians, vehicles


class PassCounter:
    """Each tracked object counted once per video, in the window where it
    crosses the line (LineZone) or has travelled MIN_TRAVEL box heights."""

    def __init__(self, interval_ms, line_px):
        self.interval_ms = interval_ms
        self.zone = None
        if line_px is not None:
            (x1, y1), (x2, y2) = line_px
            self.zone = sv.LineZone(start=sv.Point(x1, y1), end=sv.Point(x2, y2),
                                    triggering_anchors=[sv.Position.BOTTOM_CENTER])
        self.first = {}  # tracker id -> first box (travel rule)
        self.seen = defaultdict(int)
        self.riding = defaultdict(int)
        self.done = set()
        # window -> {"pedestrians", "vehicles", "in", "out", class name -> n}
        self.windows = defaultdict(lambda: defaultdict(int))

    def observe(self, t_ms, tracked):
        ids = tracked.tracker_id
        if ids is None or len(tracked) == 0:
            if self.zone is not None:
                self.zone.trigger(tracked)
            return
        riders = rider_mask(tracked.xyxy, tracked.class_id)
        if self.zone is not None:
            crossed_in, crossed_out = self.zone.trigger(tracked)
        for k, tid in enumerate(ids):
            tid = int(tid)
            if tid < 0 or tid in self.done:
                continue
            self.seen[tid] += 1
            self.riding[tid] += int(riders[k])
            box = tracked.xyxy[k]
            if self.zone is not None:
                direction = "in" if crossed_in[k] else "out" if crossed_out[k] else None
                if direction is None:
                    continue
            else:
                direction = None
                first = self.first.setdefault(tid, box)
                scale = math.sqrt((first[3] - first[1]) * (box[3] - box[1]))
                dx = (box[0] + box[2] - first[0] - first[2]) / 2
                dy = (box[1] + box[3] - first[1] - first[3]) / 2
                if not (scale > 0 and math.hypot(dx, dy) >= MIN_TRAVEL * scale):
                    continue
            self.done.add(tid)
            cls = int(tracked.class_id[k])
            if cls == PERSON and self.riding[tid] * 2 > self.seen[tid]:
                continue
            w = self.windows[t_ms // self.interval_ms]
            w["pedestrians" if cls == PERSON else "vehicles"] += 1
            w["class:" + CLASS_NAMES[cls]] += 1
            if direction:
                w[direction] += 1

    def report(self, samples, with_line):
        n = len(samples)
        r = {
            "pedestrian_counts": [s[0] for s in samples],
            "vehicle_counts": [s[1] for s in samples],
            "pedestrians_per_interval": [0] * n,
            "vehicles_per_interval": [0] * n,
            "per_class": {},
        }
        crossings = {"in_per_interval": [0] * n, "out_per_interval": [0] * n}
        for index, w in sorted(self.windows.items()):
            if n == 0:
                break
            i = min(index, n - 1)  # the tail after the last sample: last window
            r["pedestrians_per_interval"][i] += w["pedestrians"]
            r["vehicles_per_interval"][i] += w["vehicles"]
            crossings["in_per_interval"][i] += w["in"]
            crossings["out_per_interval"][i] += w["out"]
            for key, count in w.items():
                if key.startswith("class:"):
                    r["per_class"].setdefault(key[6:], [0] * n)[i] += count
        if with_line:
            r["line_crossings"] = crossings
        return r


def parse_line(text):
    v = [float(p) for p in text.split(",")]
    if len(v) != 4 or not all(0.0 <= x <= 1.0 for x in v):
        raise argparse.ArgumentTypeError('line must be "x1,y1,x2,y2" in 0..1')
    return v


def run(args):
    started = time.perf_counter()
    stage = defaultdict(float)

    def timed(name, f, *a):
        t0 = time.perf_counter()
        out = f(*a)
        stage[name] += time.perf_counter() - t0
        return out

    t0 = time.perf_counter()
    detector = Detector(args.model, args.threads, args.resize, args.trim_padding)
    stage["load"] += time.perf_counter() - t0
    cap = cv2.VideoCapture(args.video, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        sys.exit(f"cannot open {args.video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    schedule = Schedule(args.interval, MIN_TRACK_FPS, fps)
    # ByteTrack counts in frames: give it the rate it is fed at, so its lost
    # buffer (in frames at 30 fps) is TRACK_BUFFER_S seconds.
    step_ms = min(args.interval, schedule.track_period_ms)
    track_fps = min(fps, 1000.0 / step_ms) if fps > 0 else 1000.0 / step_ms
    # ByteTrack starts tracks at track_activation_threshold + 0.1.
    tracker = sv.ByteTrack(track_activation_threshold=NEW_TRACK_THRESH - 0.1,
                           lost_track_buffer=round(TRACK_BUFFER_S * 30),
                           minimum_matching_threshold=MATCH_THRESH,
                           frame_rate=track_fps,
                           minimum_consecutive_frames=MIN_HITS)
    line_px = None
    if args.line:
        x1, y1, x2, y2 = args.line
        line_px = ((x1 * width, y1 * height), (x2 * width, y2 * height))
    counter = PassCounter(args.interval, line_px)

    samples, frames_processed, n, last_t = [], 0, 0, 0
    while True:
        if not timed("decode", cap.grab):
            break
        t = round(n * 1000.0 / fps) if fps > 0 else round(cap.get(cv2.CAP_PROP_POS_MSEC))
        n += 1
        last_t = t
        indices, track = schedule.slot(t)
        if not track:
            continue
        ok, frame = timed("decode", cap.retrieve)
        if not ok:
            break
        frames_processed += 1
        sh, sw = frame.shape[:2]
        scale, px, py = timed("preprocess", detector.letterbox, frame)
        outputs = timed("infer", detector.infer)
        xyxy, score, cls = timed("postprocess", detector.decode, outputs, scale, px, py, sw, sh)

        t0 = time.perf_counter()
        dets = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=score.astype(np.float32),
                             class_id=cls.astype(int))
        tracked = tracker.update_with_detections(dets)
        stage["track"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        counter.observe(t, tracked)
        for _ in indices:
            samples.append(frame_counts(xyxy, score, cls))
        stage["count"] += time.perf_counter() - t0
    cap.release()

    result = counter.report(samples, args.line is not None)
    ms = {k: round(v * 1000) for k, v in stage.items()}
    ms["detect"] = ms.get("preprocess", 0) + ms.get("infer", 0) + ms.get("postprocess", 0)
    result.update({
        "duration_ms": round(n * 1000.0 / fps) if fps > 0 else last_t,
        "frames_processed": frames_processed,
        "processing_ms": round((time.perf_counter() - started) * 1000),
        "stage_ms": ms,
        "versions": {"onnxruntime": ort.__version__, "opencv": cv2.__version__,
                     "supervision": sv.__version__, "numpy": np.__version__},
    })
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("video")
    p.add_argument("--model", required=True, help="the daemon's detector.onnx")
    p.add_argument("--interval", type=int, required=True, help="sampling interval, ms")
    p.add_argument("--line", type=parse_line, help='counting line "x1,y1,x2,y2" in 0..1')
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads (default 1, as the daemon's models.threads)")
    p.add_argument("--resize", choices=("antialias", "cv2"), default="antialias",
                   help="letterbox resize: Pillow bilinear as the daemon (default) "
                        "or cv2.INTER_LINEAR")
    p.add_argument("--trim-padding", type=int, default=0, metavar="N",
                   help="cut the letterbox's padding down in blocks of N (the manifest's "
                        "trim_padding); default: the full 416x416")
    args = p.parse_args()
    if args.interval <= 0:
        p.error("--interval must be positive")
    if not os.path.exists(args.model):
        p.error(f"{args.model} does not exist")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
