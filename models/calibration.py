"""int8 calibration data and the f32-vs-int8 agreement check for the detector.

Calibration frames (real footage, disjoint from the evaluation set):
  vtest.avi every 20th frame from 0 (40 frames), otvision clips frames 0/20/40,
  bikes.mp4 one frame per shot.
Evaluation set: bus.jpg, zidane.jpg, messi5.jpg, basketball1.png,
  pexels_double_decker_bus.jpg and vtest.avi every 40th frame from 10 (20 frames).

fetch.py uses `reader()` only with --recalibrate (or when the committed
calibration table is missing); otherwise quantisation reads the committed table,
which keeps the int8 file byte-identical across machines.

Usage: calibration.py agreement [F32.onnx INT8.onnx]   prints the agreement figures
"""
import json
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np

sys.dont_write_bytecode = True  # keep models/ free of __pycache__
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import crosscheck  # noqa: E402


def _spec():
    man = tomllib.loads((HERE / "manifest.toml").read_text())
    return next(m for m in man["model"] if m["id"] == "detector")


def video_frames(path, indices):
    cap = cv2.VideoCapture(str(path))
    want = set(indices)
    i = 0
    out = []
    while want:
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out.append(frame)
            want.discard(i)
        i += 1
    cap.release()
    if not out:
        raise RuntimeError(f"could not decode {path} (opencv without ffmpeg?)")
    return out


def calibration_frames(media):
    frames = video_frames(media / "vtest.avi", range(0, 795, 20))
    for clip in ("otvision-cars-truck.mp4", "otvision-cars-cyclist.mp4"):
        frames += video_frames(media / clip, [0, 20, 40])
    frames += video_frames(media / "bikes.mp4", [15, 50, 100, 160, 210, 260])
    return frames


def evaluation_frames(media):
    named = [(n, cv2.imread(str(media / n))) for n in
             ("bus.jpg", "zidane.jpg", "messi5.jpg", "basketball1.png", "pexels_double_decker_bus.jpg")]
    named += [(f"vtest#{10 + 40 * k}", f) for k, f in enumerate(video_frames(media / "vtest.avi", range(10, 795, 40)))]
    return named


def reader(model_path, media):
    from onnxruntime.quantization import CalibrationDataReader
    spec = _spec()["input"]
    tensors = [crosscheck.prepare(f, spec) for f in calibration_frames(media)]

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter(tensors)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    return Frames()


def head_nodes(model_path):
    """Names of the last Conv feeding each output (the cls/box prediction convs)."""
    import onnx
    g = onnx.load(str(model_path)).graph
    prod = {o: n for n in g.node for o in n.output}
    heads = set()
    for out in g.output:
        x = out.name
        while x in prod:
            n = prod[x]
            if n.op_type == "Conv":
                heads.add(n.name)
                break
            x = next((i for i in n.input if i in prod), None)
            if x is None:
                break
    return sorted(heads)


# ------------------------------------------------------------ agreement

def decode(outs, names, spec, s, off, thr=0.35, iou=0.6):
    """NanoDet GFL decode -> (boxes in source pixels, scores, classes), class-wise NMS."""
    o = dict(zip(names, outs))
    out = spec["output"]
    size = spec["input"]["width"]
    B, S, C = [], [], []
    bins = np.arange(out["reg_max"] + 1, dtype=np.float32)
    for st, cn, bn in zip(out["strides"], out["score_outputs"], out["box_outputs"]):
        n = size // st
        yy, xx = np.divmod(np.arange(n * n), n)
        cx, cy = (xx + out["center_offset"]) * st, (yy + out["center_offset"]) * st
        d = o[bn][0].reshape(-1, 4, len(bins))
        e = np.exp(d - d.max(-1, keepdims=True))
        dist = (e / e.sum(-1, keepdims=True) * bins).sum(-1) * st
        cls = o[cn][0]
        sc, c = cls.max(1), cls.argmax(1)
        m = sc > thr
        b = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
        B.append(b[m]), S.append(sc[m]), C.append(c[m])
    B = (np.concatenate(B) - [off[0], off[1], off[0], off[1]]) / s
    S, C = np.concatenate(S), np.concatenate(C)
    keep = []
    for c in np.unique(C):
        idx = np.where(C == c)[0]
        k = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in B[idx]],
                             S[idx].tolist(), thr, iou)
        keep += [int(idx[i]) for i in np.array(k).reshape(-1)]
    keep.sort(key=lambda i: -S[i])
    return B[keep], S[keep], C[keep]


def iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def agreement(f32_path, int8_path, media, thr=0.35):
    spec = _spec()
    sf, sq = crosscheck.session(f32_path), crosscheck.session(int8_path)
    names = [o.name for o in sf.get_outputs()]
    n_f = n_q = matched = 0
    ious, dscore, maxdiff = [], [], 0.0
    per_image = []
    for name, img in evaluation_frames(media):
        boxed, s, off = crosscheck.letterbox(img, spec["input"])
        x = crosscheck.normalise(boxed, spec["input"])
        of, oq = sf.run(None, {"input": x}), sq.run(None, {"input": x})
        maxdiff = max(maxdiff, max(float(np.abs(a - b).max()) for a, b, nm in zip(of, oq, names) if nm.startswith("cls")))
        bf, scf, cf = decode(of, names, spec, s, off, thr)
        bq, scq, cq = decode(oq, names, spec, s, off, thr)
        used = set()
        m_here = 0
        for b, sc, c in zip(bf, scf, cf):
            best, bj = 0.5, None
            for j, (b2, c2) in enumerate(zip(bq, cq)):
                if j not in used and c2 == c and iou(b, b2) >= best:
                    best, bj = iou(b, b2), j
            if bj is not None:
                used.add(bj)
                m_here += 1
                ious.append(best)
                dscore.append(abs(float(sc - scq[bj])))
        n_f += len(bf)
        n_q += len(bq)
        matched += m_here
        per_image.append((name, len(bf), len(bq), m_here))
    return {
        "images": len(per_image),
        "threshold": thr,
        "f32_detections": n_f,
        "int8_detections": n_q,
        "matched_iou50_same_class": matched,
        "recall_of_f32": round(matched / max(n_f, 1), 3),
        "precision_vs_f32": round(matched / max(n_q, 1), 3),
        "mean_iou_matched": round(float(np.mean(ious)), 3) if ious else None,
        "mean_abs_score_diff_matched": round(float(np.mean(dscore)), 4) if dscore else None,
        "max_abs_class_score_diff": round(maxdiff, 4),
        "per_image": per_image,
    }


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "agreement":
        sys.exit(__doc__)
    cache = crosscheck.cache_dir_default()
    f32 = sys.argv[2] if len(sys.argv) > 2 else cache / "detector.onnx"
    q = sys.argv[3] if len(sys.argv) > 3 else cache / "detector-int8.onnx"
    r = agreement(f32, q, cache / "media")
    per = r.pop("per_image")
    print(json.dumps(r, indent=1))
    for name, a, b, m in per:
        print(f"  {name:32s} f32 {a:3d}  int8 {b:3d}  matched {m:3d}")
