"""Reference tensors for the Rust tests: real input in, onnxruntime output out.

For each model this builds one input exactly as the manifest's [model.input]
says (a real photo letterboxed; an aligned face crop for the embedders; a
rendered plate for the recogniser), runs onnxruntime with one thread, and
writes <cache>/crosscheck/<model-id>/{input.npy, output_<i>.npy, meta.json}.
The Rust side loads input.npy, runs tract, and compares with output_<i>.npy.
For the face detector it also writes opencv_faces.json: what OpenCV's own
FaceDetectorYN decodes from that same input, the reference for the Rust
YuNet decoding.

The pre-processing helpers here (letterbox, align, fit_height, normalise) are
the Python reference for the Rust pre-processing and are reused by
calibration.py and bench_ort.py.

Usage: crosscheck.py [MODEL_ID ...]   (fetch.py calls run_all at the end)
"""
import hashlib
import json
import os
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np

sys.dont_write_bytecode = True  # keep models/ free of __pycache__
HERE = Path(__file__).resolve().parent
VERSION = 2  # bump when the inputs below change, so cached tensors are rebuilt


def cache_dir_default():
    return Path(os.environ.get("WAYSIDE_MODELS_DIR") or HERE / "cache").resolve()


def session(model, threads=1):
    """An onnxruntime session on a model file (path) or a serialised model (bytes)."""
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])


# ------------------------------------------------------------ pre-processing

def letterbox(img, spec):
    """Scale to fit (width, height) keeping aspect; returns (uint8 HxWx3, scale, (dx, dy))."""
    w, h = spec["width"], spec["height"]
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    out = np.full((h, w, 3), int(round(spec["pad"])), np.uint8)
    dx, dy = ((w - nw) // 2, (h - nh) // 2) if spec["center"] else (0, 0)
    out[dy:dy + nh, dx:dx + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, s, (dx, dy)


def similarity(src, dst):
    """Umeyama least-squares similarity (rotation, uniform scale, shift) mapping
    src onto dst, as a 2x3 matrix: what insightface's norm_crop uses
    (scikit-image SimilarityTransform) and what vision/src/face/align.rs does.
    OpenCV's estimateAffinePartial2D(LMEDS) fits a subset of the 5 points
    instead: on obama.jpg its crop embeds at cosine 0.965 to this one."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    s, d = src - src.mean(0), dst - dst.mean(0)
    var = (s ** 2).sum()
    a = (s * d).sum() / var
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / var
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = dst.mean(0) - m[:, :2] @ src.mean(0)
    return m


def align(img, kps, spec):
    """Similarity-warp 5 landmarks onto the manifest template (ArcFace 112x112)."""
    tpl = np.array(spec["template"], np.float32) * np.array([spec["width"] / 112, spec["height"] / 112], np.float32)
    return cv2.warpAffine(img, similarity(kps, tpl), (spec["width"], spec["height"]), borderValue=(0, 0, 0))


def fit_height(img, spec):
    """PaddleOCR-style: height fixed, width by aspect (capped), left-aligned; returns float pixels."""
    w, h = spec["width"], spec["height"]
    ih, iw = img.shape[:2]
    nw = min(w, int(np.ceil(h * iw / ih)))
    out = np.full((h, w, 3), spec["pad"], np.float32)
    out[:, :nw] = cv2.resize(img, (nw, h), interpolation=cv2.INTER_LINEAR)
    return out


def normalise(pixels_bgr, spec):
    """HxWx3 BGR pixels -> float32 tensor [1, 3, H, W] (or NHWC) per the spec."""
    x = pixels_bgr.astype(np.float32)
    if not spec["bgr"]:
        x = x[:, :, ::-1]
    x = (x - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    x = x.transpose(2, 0, 1)[None] if spec["layout"] == "nchw" else x[None]
    return np.ascontiguousarray(x, np.float32)


def prepare(img, spec):
    """A frame (BGR uint8) -> model input per spec (letterbox / fit-height)."""
    if spec["resize"] == "letterbox":
        return normalise(letterbox(img, spec)[0], spec)
    if spec["resize"] == "fit-height":
        return normalise(fit_height(img, spec), spec)
    raise ValueError(f"prepare() does not handle resize={spec['resize']!r}")


# ----------------------------------------------------------- real inputs

def yunet_landmarks(img, cache_dir, manifest):
    """Landmarks of the largest face found by the face-detector (YuNet)."""
    spec = next(m for m in manifest["model"] if m["id"] == "face-detector")
    sess = session(cache_dir / spec["file"])
    boxed, s, (dx, dy) = letterbox(img, spec["input"])
    o = dict(zip([x.name for x in sess.get_outputs()], sess.run(None, {"input": normalise(boxed, spec["input"])})))
    best = None
    for st in spec["output"]["strides"]:
        n = spec["input"]["width"] // st
        yy, xx = np.divmod(np.arange(n * n), n)
        sc = np.sqrt(np.clip(o[f"cls_{st}"][0, :, 0], 0, 1) * np.clip(o[f"obj_{st}"][0, :, 0], 0, 1))
        i = int(sc.argmax())
        if best is None or sc[i] > best[0]:
            kps = (o[f"kps_{st}"][0, i].reshape(5, 2) + [xx[i], yy[i]]) * st
            best = (sc[i], (kps - [dx, dy]) / s)
    return best[1]


def render_plate(text="A·12345"):
    """A blue Chinese-style plate with white characters (Hershey font), BGR uint8."""
    img = np.full((140, 440, 3), (150, 70, 20), np.uint8)  # BGR blue
    cv2.rectangle(img, (6, 6), (433, 133), (255, 255, 255), 3)
    cv2.putText(img, text.replace("·", " "), (22, 108), cv2.FONT_HERSHEY_DUPLEX, 3.0, (255, 255, 255), 7, cv2.LINE_AA)
    return img


def build_input(model, manifest, cache_dir):
    """Return (input tensor, description of where it came from, extra meta)."""
    media = cache_dir / "media"
    spec = model["input"]
    mid = model["id"]
    if mid in ("detector", "detector-int8"):
        return prepare(cv2.imread(str(media / "bus.jpg")), spec), "media/bus.jpg letterboxed", {}
    if mid == "face-detector":
        return prepare(cv2.imread(str(media / "zidane.jpg")), spec), "media/zidane.jpg letterboxed", {}
    if spec["resize"] == "align-arcface":
        img = cv2.imread(str(media / "obama.jpg"))
        kps = yunet_landmarks(img, cache_dir, manifest)
        # The landmarks let the Rust side check its alignment on the same points.
        return normalise(align(img, kps, spec), spec), "media/obama.jpg, YuNet landmarks, ArcFace-aligned", \
            {"landmarks": np.asarray(kps, np.float64).tolist()}
    if mid == "plate-detector":
        return prepare(cv2.imread(str(media / "pexels_double_decker_bus.jpg")), spec), \
            "media/pexels_double_decker_bus.jpg letterboxed", {}
    if mid == "plate-text-detector":
        return prepare(cv2.imread(str(media / "fast-alpr-test_image.png")), spec), \
            "media/fast-alpr-test_image.png letterboxed (a Czech plate)", {}
    if mid == "plate-recognizer":
        return prepare(render_plate(), spec), "rendered plate 'A 12345' (white on blue, Hershey font)", {}
    raise ValueError(f"no cross-check input defined for {mid}")


YUNET_REF_SCORE = 0.5  # low, so the reference also has the doubtful faces


def yunet_reference(model, cache_dir):
    """OpenCV FaceDetectorYN on the cross-check input (the letterboxed photo,
    640x640, so OpenCV neither resizes nor pads): decoding and NMS by OpenCV.
    Rows: x1, y1, x2, y2, 5 x (x, y) landmarks, score; model-input pixels."""
    out = cache_dir / "crosscheck" / model["id"] / "opencv_faces.json"
    if out.is_file():
        old = json.loads(out.read_text())
        if old.get("model_sha256") == model["sha256"] and old.get("version") == VERSION:
            return
    x = np.load(out.parent / "input.npy")
    img = np.ascontiguousarray(x[0].transpose(1, 2, 0).round().clip(0, 255).astype(np.uint8))  # BGR
    out_cfg = model["output"]
    det = cv2.FaceDetectorYN.create(str(cache_dir / model["file"]), "", (img.shape[1], img.shape[0]),
                                    YUNET_REF_SCORE, out_cfg["nms_iou"], 5000)
    _, faces = det.detect(img)
    rows = []
    for f in (faces if faces is not None else []):
        x1, y1, w, h = (float(v) for v in f[:4])
        rows.append([x1, y1, x1 + w, y1 + h] + [float(v) for v in f[4:14]] + [float(f[14])])
    out.write_text(json.dumps({
        "model_sha256": model["sha256"],
        "version": VERSION,
        "opencv": cv2.__version__,
        "score_threshold": YUNET_REF_SCORE,
        "nms_iou": out_cfg["nms_iou"],
        "faces": rows,
    }, indent=1) + "\n")
    print(f"[models] crosscheck {model['id']}: OpenCV FaceDetectorYN found {len(rows)} faces", flush=True)


def run_one(model, manifest, cache_dir):
    rebuilt = run_tensors(model, manifest, cache_dir)
    if model["output"].get("decode") == "yunet":
        yunet_reference(model, cache_dir)  # reads the input.npy just written
    return rebuilt


def run_tensors(model, manifest, cache_dir):
    out_dir = cache_dir / "crosscheck" / model["id"]
    meta_path = out_dir / "meta.json"
    model_sha = model["sha256"]
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("model_sha256") == model_sha and meta.get("version") == VERSION:
            return False
    x, what, extra = build_input(model, manifest, cache_dir)
    sess = session(cache_dir / model["file"])
    iname = sess.get_inputs()[0].name
    outs = sess.run(None, {iname: x})
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "input.npy", x)
    for i, o in enumerate(outs):
        np.save(out_dir / f"output_{i}.npy", np.asarray(o, np.float32))
    meta = {
        "model": model["id"],
        "file": model["file"],
        "model_sha256": model_sha,
        "version": VERSION,
        "source": what,
        "inputs": [[iname, list(x.shape)]],
        "outputs": [[o.name, list(v.shape)] for o, v in zip(sess.get_outputs(), outs)],
        "onnxruntime_threads": 1,
        **extra,
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"[models] crosscheck {model['id']}: {what}", flush=True)
    return True


def run_all(manifest, cache_dir, only=None):
    for m in manifest["model"]:
        if only and m["id"] not in only:
            continue
        run_one(m, manifest, cache_dir)


if __name__ == "__main__":
    man = tomllib.loads((HERE / "manifest.toml").read_text())
    run_all(man, cache_dir_default(), sys.argv[1:] or None)
