"""Convert a TF.js graph model (model.json + weight shards) to ONNX.

Runs inside the converter venv (tensorflow-cpu + tf2onnx, pinned in
requirements-convert.txt), as a subprocess of fetch.py.

Route: parse `modelTopology` into a GraphDef with protobuf's json_format, read
the weight shards in `weightsManifest` order (dequantising uint8/uint16 with
scale/min and widening float16), inline each weight as the `value` of its Const
node, then tf2onnx --graphdef (opset 13). TF.js stores int64 constants as int32;
widening them back to the dtype their Const node declares is what lets the graph
import (the investigation instead narrowed SparseToDense to int32; same result).

This is the reference route: fetch.py --verify-tf runs it and checks its output
against tfjs_graph.py (the default route, no TensorFlow).

Usage: tfjs_to_onnx.py MODEL_JSON OUT_ONNX [--rename old=new ...]
"""
import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
import onnx  # noqa: E402
import tf2onnx  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfjs_graph import load_weights  # noqa: E402  (numpy + onnx only; shared weight reader)

def build_graph_def(model_json):
    spec = json.load(open(model_json))
    gd = json_format.ParseDict(spec["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    nodes = {n.name: n for n in gd.node}
    for name, arr in load_weights(os.path.dirname(model_json), spec["weightsManifest"]):
        node = nodes[name]
        declared = node.attr["dtype"].type
        if declared == tf.int64.as_datatype_enum and arr.dtype == np.int32:
            arr = arr.astype(np.int64)  # TF.js narrowed it; the graph wants int64
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
        node.attr["dtype"].type = tf.as_dtype(arr.dtype).as_datatype_enum
    sig = spec["signature"]
    return gd, list(sig["inputs"]), sorted(sig["outputs"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_json")
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--rename", action="append", default=[], help="old=new tensor name")
    a = ap.parse_args()
    gd, inputs, outputs = build_graph_def(a.model_json)
    model, _ = tf2onnx.convert.from_graph_def(gd, input_names=inputs, output_names=outputs, opset=a.opset)
    ren = dict(r.split("=", 1) for r in a.rename)
    g = model.graph
    for vi in list(g.input) + list(g.output):
        if vi.name in ren:
            old, vi.name = vi.name, ren[vi.name]
            for n in g.node:
                for i, x in enumerate(n.input):
                    if x == old:
                        n.input[i] = vi.name
                for i, x in enumerate(n.output):
                    if x == old:
                        n.output[i] = vi.name
    model.producer_name = "wayside-tfjs_to_onnx"
    model.producer_version = ""
    onnx.checker.check_model(model)
    onnx.save(model, a.out)


if __name__ == "__main__":
    main()
