"""TF.js graph model (model.json + weight shards) -> ONNX, with the onnx package only.

The default route for the detector: no TensorFlow needed. NanoDet's TF.js graph
was itself made from ONNX by onnx-tf, so it is NCHW tensors with explicit
Transposes around every NHWC op (Conv2D, MaxPool, ResizeBilinear). We translate
op by op (17 op types), fold the constant shape arithmetic (SparseToDense,
AddV2 on int64 constants), then clean up: cancel Transpose pairs (also across
a bias Add), fold bias Adds into Conv, and zero Pads / -inf PadV2 into Conv /
MaxPool padding. Resizes carry scales, not sizes, and the input's height and
width are free, so the network runs at any multiple of its largest stride.
The result matches the tensorflow + tf2onnx route (tfjs_to_onnx.py) in
onnxruntime on real photos within 1.9e-6 (bit for bit while both wrote
sizes), with fewer nodes.

Weights: shards are read in `weightsManifest` order; uint8/uint16 quantised
weights are `q * scale + min`, float16 ones are widened. TF.js stores int64
constants as int32: they are widened back to the dtype the Const declares.

An op outside the handled set raises NotImplementedError naming it.
"""
import base64
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def load_weights(model_dir, manifest):
    """Yield (name, ndarray) for every weight, in manifest order."""
    for group in manifest:
        blob = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qdt = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}[q["dtype"]]
                raw = np.frombuffer(blob, qdt, count, off)
                off += raw.nbytes
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:
                    arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                dt = {"float32": np.float32, "int32": np.int32}[w["dtype"]]
                arr = np.frombuffer(blob, dt, count, off)
                off += arr.nbytes
            yield w["name"], arr.reshape(shape)
        if off != len(blob):
            raise ValueError(f"weight shards hold {len(blob)} bytes, the manifest uses {off}")


def _str(attr, key):
    return base64.b64decode(attr[key]["s"]).decode()


def _ints(attr, key):
    return [int(i) for i in attr.get(key, {}).get("list", {}).get("i", [])]


def _ref(x):
    name, _, idx = x.partition(":")
    return name if idx in ("", "0") else f"{name}:{idx}"


class Translator:
    def __init__(self, spec, model_dir):
        self.spec = spec
        self.const = dict(load_weights(model_dir, spec["weightsManifest"]))
        self.nodes = []
        self.inits = {}
        self.inputs = []
        self.resizes = []  # (node, [h, w]) resolved to scales after shape inference
        self.n = 0

    def init(self, name, arr):
        self.inits[name] = np.array(arr, order="C")  # (ascontiguousarray would make scalars 1-d)
        return name

    def tmp(self, base):
        self.n += 1
        return f"{base}/t{self.n}"

    def nhwc_op(self, name, x, make):
        """Wrap an NCHW ONNX op so it consumes and produces NHWC like the TF op."""
        xin = self.tmp(name)
        self.nodes.append(helper.make_node("Transpose", [x], [xin], perm=[0, 3, 1, 2]))
        yout = self.tmp(name)
        node = make(xin, yout)
        self.nodes.append(node)
        self.nodes.append(helper.make_node("Transpose", [yout], [name], perm=[0, 2, 3, 1]))
        return node

    def fold(self, op, name, vals):
        if op == "SparseToDense":
            idx, shape, values, default = vals
            out = np.full(shape, default, dtype=values.dtype)
            out[np.asarray(idx).reshape(-1)] = values
        elif op in ("Add", "AddV2"):
            out = vals[0] + vals[1]
        elif op == "Identity":
            out = vals[0]
        else:
            raise NotImplementedError(f"constant folding of {op} ({name})")
        self.const[name] = out

    def run(self):
        graph_nodes = self.spec["modelTopology"]["node"]
        for n in graph_nodes:  # TF.js narrowed int64 constants to int32
            if n["op"] == "Const" and n.get("attr", {}).get("dtype", {}).get("type") == "DT_INT64" and n["name"] in self.const:
                self.const[n["name"]] = self.const[n["name"]].astype(np.int64)
        for n in graph_nodes:
            self.translate(n)
        return self

    def translate(self, n):
        op, name, a = n["op"], n["name"], n.get("attr", {})
        ins = [_ref(i) for i in n.get("input", []) if not i.startswith("^")]
        c = self.const
        if op == "Const":
            if name not in c:
                raise NotImplementedError(f"Const {name} without weights")
            return
        if op == "Placeholder":
            shape = [int(d.get("size", -1)) for d in a["shape"]["shape"]["dim"]]
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            return
        if ins and all(i in c for i in ins):
            self.fold(op, name, [c[i] for i in ins])
            return
        emit = self.nodes.append
        if op == "Identity":
            emit(helper.make_node("Identity", ins, [name]))
        elif op == "Transpose":
            emit(helper.make_node("Transpose", [ins[0]], [name], perm=[int(p) for p in c[ins[1]]]))
        elif op in ("Add", "AddV2"):
            emit(helper.make_node("Add", [self.init(i, c[i]) if i in c else i for i in ins], [name]))
        elif op == "LeakyRelu":
            emit(helper.make_node("LeakyRelu", ins, [name], alpha=float(a["alpha"]["f"])))
        elif op == "Sigmoid":
            emit(helper.make_node("Sigmoid", ins, [name]))
        elif op in ("Pad", "PadV2"):
            pads = c[ins[1]].astype(np.int64)
            args = [ins[0], self.init(name + "/pads", np.concatenate([pads[:, 0], pads[:, 1]]))]
            if op == "PadV2":
                args.append(self.init(name + "/value", np.asarray(c[ins[2]], np.float32).reshape(())))
            emit(helper.make_node("Pad", args, [name], mode="constant"))
        elif op == "Conv2D":
            if _str(a, "data_format") != "NHWC":
                raise NotImplementedError(f"Conv2D {name}: data_format {_str(a, 'data_format')}")
            w = c[ins[1]].transpose(3, 2, 0, 1)  # HWIO -> OIHW
            kw = dict(strides=_ints(a, "strides")[1:3], dilations=(_ints(a, "dilations") or [1, 1, 1, 1])[1:3],
                      kernel_shape=list(w.shape[2:]))
            pad = _str(a, "padding")
            if pad == "SAME":
                kw["auto_pad"] = "SAME_UPPER"
            elif pad != "VALID":
                raise NotImplementedError(f"Conv2D {name}: padding {pad}")
            wname = self.init(name + "/W", w)
            self.nhwc_op(name, ins[0], lambda x, y: helper.make_node("Conv", [x, wname], [y], **kw))
        elif op == "MaxPool":
            if _str(a, "data_format") != "NHWC" or _str(a, "padding") != "VALID":
                raise NotImplementedError(f"MaxPool {name}: only NHWC VALID")
            kw = dict(kernel_shape=_ints(a, "ksize")[1:3], strides=_ints(a, "strides")[1:3])
            self.nhwc_op(name, ins[0], lambda x, y: helper.make_node("MaxPool", [x], [y], **kw))
        elif op == "ResizeBilinear":
            if a.get("half_pixel_centers", {}).get("b"):
                mode = "half_pixel"
            elif a.get("align_corners", {}).get("b"):
                mode = "align_corners"
            else:
                mode = "asymmetric"
            size = [int(v) for v in c[ins[1]]]
            node = self.nhwc_op(name, ins[0], lambda x, y: helper.make_node(
                "Resize", [x, "", name + "/scales"], [y], mode="linear", coordinate_transformation_mode=mode))
            self.resizes.append((node, size))
        elif op == "ConcatV2":
            emit(helper.make_node("Concat", ins[:-1], [name], axis=int(c[ins[-1]])))
        elif op == "SplitV":
            sizes = c[ins[1]].astype(np.int64)
            outs = [name] + [f"{name}:{k}" for k in range(1, len(sizes))]
            emit(helper.make_node("Split", [ins[0], self.init(name + "/split", sizes)], outs, axis=int(c[ins[2]])))
        elif op == "Reshape":
            emit(helper.make_node("Reshape", [ins[0], self.init(name + "/shape", c[ins[1]].astype(np.int64))], [name]))
        else:
            raise NotImplementedError(f"TF op {op} ({name})")

    def model(self):
        sig = self.spec["signature"]["outputs"]
        outputs = [helper.make_tensor_value_info(_ref(k), TensorProto.FLOAT, [int(d["size"]) for d in v["tensorShape"]["dim"]])
                   for k, v in sorted(sig.items())]

        def make(nodes, outs):
            g = helper.make_graph(nodes, "main", self.inputs, outs,
                                  [numpy_helper.from_array(v, k) for k, v in sorted(self.inits.items())])
            return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])

        # TF.js gives each resize its output size. As scales (output / input,
        # learnt by shape inference on the graph up to that node) the network
        # stays fully convolutional: it runs at any input whose sides are
        # multiples of its largest stride, which the daemon uses to feed a
        # letterbox no bigger than the frame needs (`trim_padding`).
        for node, size in self.resizes:
            upto = self.nodes[:self.nodes.index(node)]
            probe = make(upto, [helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, None)])
            inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
            vi = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}[node.input[0]]
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            self.init(node.input[2], np.array([1, 1] + [s / d for s, d in zip(size, dims[2:])], np.float32))
        m = make(self.nodes, outputs)
        # Say so in the signature: free height and width (NCHW) in, free cell
        # counts out.
        for d, free in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
            d.dim_param = free
        for o in m.graph.output:
            o.type.tensor_type.shape.dim[1].Clear()
        return m


# ----------------------------------------------------------------- clean-up

def _perm(n):
    return list(next(a for a in n.attribute if a.name == "perm").ints)


def _index(g):
    prod = {o: n for n in g.node for o in n.output}
    cons = {}
    for n in g.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    return prod, cons


def _replace(g, old_nodes, new_nodes):
    pos = min(list(g.node).index(n) for n in old_nodes)
    for n in old_nodes:
        g.node.remove(n)
    for k, n in enumerate(new_nodes):
        g.node.insert(pos + k, n)


def _rewire(g, old, new):
    for n in g.node:
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new


def _transpose_step(g, inits, outs):
    prod, cons = _index(g)
    for n in g.node:
        if n.op_type != "Transpose":
            continue
        q = _perm(n)
        if q == list(range(len(q))) and n.output[0] not in outs:
            _rewire(g, n.output[0], n.input[0])
            g.node.remove(n)
            return True
        src = prod.get(n.input[0])
        if src is None or len(cons[src.output[0]]) != 1:
            continue
        if src.op_type == "Transpose":
            p = _perm(src)
            _replace(g, [src, n], [helper.make_node("Transpose", [src.input[0]], [n.output[0]], perm=[p[i] for i in q])])
            return True
        if src.op_type == "Add":
            # Transpose_q(Add(Transpose_p(z), const)) -> Add(Transpose_{p.q}(z), const^q)
            x, y = src.input
            cst, u = (x, y) if x in inits else (y, x) if y in inits else (None, None)
            up = prod.get(u)
            if cst is None or up is None or up.op_type != "Transpose" or len(cons[u]) != 1:
                continue
            p = _perm(up)
            arr = numpy_helper.to_array(inits[cst])
            arr = arr.reshape((1,) * (len(q) - arr.ndim) + arr.shape)
            cname = f"{cst}/perm{''.join(map(str, q))}"
            if cname not in inits:
                inits[cname] = numpy_helper.from_array(np.ascontiguousarray(arr.transpose(q)), cname)
                g.initializer.append(inits[cname])
            t = f"{u}/perm{''.join(map(str, q))}"
            _replace(g, [up, src, n], [helper.make_node("Transpose", [up.input[0]], [t], perm=[p[i] for i in q]),
                                       helper.make_node("Add", [t, cname], [n.output[0]])])
            return True
    return False


def _fuse_step(g, inits):
    prod, cons = _index(g)
    for n in g.node:
        if n.op_type == "Add" and n.input[0] in prod and n.input[1] in inits:
            conv = prod[n.input[0]]
            b = numpy_helper.to_array(inits[n.input[1]])
            if (conv.op_type == "Conv" and len(conv.input) == 2 and len(cons[conv.output[0]]) == 1
                    and b.ndim == 4 and b.shape[0] == 1 and b.shape[2:] == (1, 1)):
                bname = n.output[0] + "/B"
                inits[bname] = numpy_helper.from_array(b.reshape(-1).astype(np.float32), bname)
                g.initializer.append(inits[bname])
                conv.input.append(bname)
                conv.output[0] = n.output[0]
                g.node.remove(n)
                return True
        if n.op_type in ("Conv", "MaxPool") and n.input[0] in prod:
            pad = prod[n.input[0]]
            if pad.op_type != "Pad" or len(cons[pad.output[0]]) != 1:
                continue
            pads = numpy_helper.to_array(inits[pad.input[1]]).tolist()
            value = float(numpy_helper.to_array(inits[pad.input[2]])) if len(pad.input) > 2 and pad.input[2] else 0.0
            r = len(pads) // 2
            attrs = {a.name: a for a in n.attribute}
            if r != 4 or pads[0] or pads[1] or pads[4] or pads[5] or "auto_pad" in attrs:
                continue
            if (n.op_type == "Conv" and value != 0.0) or (n.op_type == "MaxPool" and value != -np.inf):
                continue
            old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
            new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
            if "pads" in attrs:
                n.attribute.remove(attrs["pads"])
            n.attribute.append(helper.make_attribute("pads", new))
            n.input[0] = pad.input[0]
            g.node.remove(pad)
            return True
    return False


def simplify(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    outs = {o.name for o in g.output}
    while _transpose_step(g, inits, outs) or _fuse_step(g, inits):
        pass
    # Outputs produced by Identity: let the producer write the output directly.
    prod, cons = _index(g)
    for n in list(g.node):
        if n.op_type == "Identity" and n.output[0] in outs:
            src = prod.get(n.input[0])
            if src is not None and len(cons[n.input[0]]) == 1 and n.input[0] not in outs:
                src.output[list(src.output).index(n.input[0])] = n.output[0]
                g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return model


def convert(model_json):
    spec = json.load(open(model_json))
    m = simplify(Translator(spec, os.path.dirname(model_json)).run().model())
    onnx.checker.check_model(m, full_check=True)
    return m


if __name__ == "__main__":
    import sys
    onnx.save(convert(sys.argv[1]), sys.argv[2])
