"""Give an ONNX graph a canonical form so converted models hash the same every run.

tf2onnx and onnxruntime.quantization number their intermediate tensors with
counters whose order depends on dict/set iteration, so two runs of the same
conversion produce equivalent graphs with different names. This module renames
every intermediate tensor, node and initializer from a structural hash (op type,
attributes, and the hashes of its inputs; initializers by content), orders nodes
by (depth, hash), and strips producer/doc strings. Graph inputs and outputs keep
their names (optionally renamed through `rename`).
"""
import hashlib

import onnx
from onnx import numpy_helper


def _h(*parts):
    m = hashlib.sha256()
    for p in parts:
        m.update(p if isinstance(p, bytes) else str(p).encode())
        m.update(b"\0")
    return m.hexdigest()


def canonicalize(model: onnx.ModelProto, rename=None) -> onnx.ModelProto:
    rename = dict(rename or {})
    g = model.graph
    io_names = {v.name for v in list(g.input) + list(g.output)}
    key = {}  # tensor name -> structural hash
    depth = {}
    for v in g.input:
        key[v.name] = _h("input", rename.get(v.name, v.name))
        depth[v.name] = 0
    for init in g.initializer:
        key[init.name] = _h("init", init.data_type, list(init.dims), numpy_helper.to_array(init).tobytes())
        depth[init.name] = 0
    key[""] = _h("absent")
    depth[""] = 0
    node_key = []
    for n in g.node:  # nodes are topologically sorted already
        attrs = sorted((a.name, a.SerializeToString(deterministic=True)) for a in n.attribute)
        k = _h(n.op_type, n.domain, attrs, *[key[i] for i in n.input])
        d = 1 + max([depth[i] for i in n.input] or [0])
        for j, o in enumerate(n.output):
            key[o] = _h(k, j)
            depth[o] = d
        node_key.append((d, k, n))
    node_key.sort(key=lambda t: (t[0], t[1]))

    new_name = {}
    for v in io_names:
        new_name[v] = rename.get(v, v)
    inits = sorted(g.initializer, key=lambda t: key[t.name])
    seen_init = {}
    for i, init in enumerate(inits):
        new_name.setdefault(init.name, f"c{i}")
    t = 0
    for idx, (_, _, n) in enumerate(node_key):
        n.name = f"{n.op_type}_{idx}"
        for o in n.output:
            if o and o not in new_name:
                new_name[o] = f"t{t}"
                t += 1
        for i, x in enumerate(n.input):
            n.input[i] = new_name.get(x, x)
        for i, x in enumerate(n.output):
            n.output[i] = new_name.get(x, x)
        n.doc_string = ""
    for init in inits:
        init.name = new_name[init.name]
    del seen_init
    nodes = [n for _, _, n in node_key]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    for v in list(g.input) + list(g.output):
        v.name = new_name.get(v.name, v.name)
    vis = [v for v in g.value_info if v.name in new_name]
    for v in vis:
        v.name = new_name[v.name]
    del g.value_info[:]
    g.value_info.extend(sorted(vis, key=lambda v: v.name))
    g.name = "main"
    g.doc_string = ""
    model.doc_string = ""
    model.producer_name = "wayside"
    model.producer_version = ""
    return model
