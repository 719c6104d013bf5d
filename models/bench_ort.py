"""onnxruntime latency reference for the Rust bench (side-by-side with tract).

For each model id (default: all in the manifest) and each thread count, runs
the model on its cross-check input (<cache>/crosscheck/<id>/input.npy) in a
fresh child process: warm-up, then N timed runs. A model that fetch.py
rewrites for tract is run twice, as rewritten and as its exporter wrote it
(fetch.exported_path), and the faster is kept: onnxruntime gains from some
rewrites (the PReLU split) and loses from others (YuNet's pools), and the
reference should be onnxruntime at its best. Prints one JSON line
  {"model", "threads", "median_ms", "p90_ms", "rss_mb", "runs", "graph"}
rss_mb is the child's peak resident set (model + session + buffers); graph
says which file was faster, "rewritten" or "exported".

With --batch N it asks instead whether batching pays: N runs on the input
against one run on N copies of it, alternating, with the batch dimension the
exporters fixed at 1 made free; it prints the median time per input of each,
  {"model", "threads", "single_ms", "batch_ms", "batch", "runs"}

Usage: bench_ort.py [--runs N] [--warmup W] [--threads 1,2] [--batch N] [MODEL_ID ...]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.dont_write_bytecode = True  # keep models/ free of __pycache__
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fetch import exported_path  # noqa: E402


def session_and_input(model, input_npy, threads):
    """An onnxruntime session on `model` (path or bytes), its input's name and the input."""
    import numpy as np
    import crosscheck
    sess = crosscheck.session(model, threads)
    return sess, sess.get_inputs()[0].name, np.load(input_npy)


def child(model_file, input_npy, threads, runs, warmup):
    sess, name, x = session_and_input(model_file, input_npy, threads)
    feed = {name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        t.append((time.perf_counter() - t0) * 1000)
    t.sort()
    return {
        "median_ms": round(t[len(t) // 2], 2),
        "p90_ms": round(t[min(len(t) - 1, int(0.9 * len(t)))], 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": runs,
    }


def batch_free(model_file):
    """The model, serialised, with a free first dimension on its inputs and outputs."""
    import onnx
    m = onnx.load(str(model_file))
    for v in [*m.graph.input, *m.graph.output]:
        if v.type.tensor_type.shape.dim:  # some outputs carry no shape
            v.type.tensor_type.shape.dim[0].dim_param = "batch"
    del m.graph.value_info[:]  # shapes inferred for a batch of 1
    return m.SerializeToString()


def child_batched(model_file, input_npy, threads, runs, warmup, n):
    import numpy as np
    sess, name, x = session_and_input(batch_free(model_file), input_npy, threads)
    one, many = {name: x}, {name: np.concatenate([x] * n)}
    t = ([], [])
    for r in range(warmup + runs):
        t0 = time.perf_counter()
        for _ in range(n):
            sess.run(None, one)
        t1 = time.perf_counter()
        sess.run(None, many)
        t2 = time.perf_counter()
        if r >= warmup:
            t[0].append((t1 - t0) * 1000 / n)
            t[1].append((t2 - t1) * 1000 / n)
    mid = lambda v: round(sorted(v)[len(v) // 2], 2)
    return {"single_ms": mid(t[0]), "batch_ms": mid(t[1]), "batch": n, "runs": runs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("WAYSIDE_BENCH_RUNS", 30)))
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--child", nargs=3, metavar=("MODEL_FILE", "INPUT_NPY", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        args = (a.child[0], a.child[1], int(a.child[2]), a.runs, a.warmup)
        print(json.dumps(child_batched(*args, a.batch) if a.batch else child(*args)))
        return
    man = tomllib.loads((HERE / "manifest.toml").read_text())
    cache = Path(os.environ.get("WAYSIDE_MODELS_DIR") or HERE / "cache").resolve()
    models = {m["id"]: m for m in man["model"]}
    ids = a.models or list(models)
    for mid in ids:
        if mid not in models:
            sys.exit(f"bench_ort: unknown model id {mid!r} (known: {', '.join(models)})")
        m = models[mid]
        npy = cache / "crosscheck" / mid / "input.npy"
        if not npy.is_file():
            sys.exit(f"bench_ort: {npy} missing: run scripts/setup-models.sh first")
        # batching is onnxruntime against itself: one file will do
        graphs = {"rewritten": cache / m["file"]}
        if not a.batch and exported_path(m, cache) != graphs["rewritten"]:
            graphs["exported"] = exported_path(m, cache)
        for th in (int(t) for t in a.threads.split(",")):
            runs = {graph: measured(a, mid, path, npy, th) for graph, path in graphs.items()}
            graph = min(runs, key=lambda g: runs[g].get("median_ms", 0))
            print(json.dumps({"model": mid, "threads": th, **runs[graph], "graph": graph}), flush=True)


def measured(a, mid, path, npy, threads):
    """One child's JSON: the model at `path` timed alone in a fresh process."""
    r = subprocess.run([sys.executable, __file__, "--runs", str(a.runs), "--warmup", str(a.warmup),
                        "--batch", str(a.batch), "--child", str(path), str(npy), str(threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_ort: {mid} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
