"""The fetch-time graph rewrites on small graphs built here: what each one
rewrites, what it must leave alone, and that the check every rewrite passes
through refuses a graph that computes something else. The real models go
through the same code on every fetch; these graphs hold the cases those
models do not.

    python -m unittest discover -s models -p 'test_*.py'
"""
import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # keep models/ free of __pycache__

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fetch  # noqa: E402

SIZE = 8
SPEC = {"id": "test", "input": {"height": SIZE, "width": SIZE, "mean": [127.5] * 3, "std": [64.0] * 3,
                                "bgr": True, "layout": "nchw"}}


def graph(nodes, consts, outputs, opset=13):
    """A model on input `x` [1, 3, SIZE, SIZE] with named float constants."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(v if isinstance(v, np.ndarray) else rng.normal(size=v).astype(np.float32), k)
             for k, v in consts.items()]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                          [onnx.ValueInfoProto(name=o) for o in outputs], inits)
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]))
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    return m.SerializeToString()


def ops(data):
    return [n.op_type for n in onnx.load_from_string(data).graph.node]


def positive(shape):
    return np.random.default_rng(2).uniform(0.5, 1.5, shape).astype(np.float32)


class FoldIntoConv(unittest.TestCase):
    def test_folds_each_affine_map_a_convolution_alone_feeds(self):
        before = graph([
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["n1"], epsilon=1e-3),
            helper.make_node("Relu", ["n1"], ["r1"]),
            helper.make_node("Conv", ["r1", "dw"], ["c2"], group=4, pads=[1, 1, 1, 1]),  # depthwise, no bias
            helper.make_node("Mul", ["scalar", "c2"], ["m2"]),
            helper.make_node("Add", ["m2", "per_channel"], ["a2"]),
            helper.make_node("Conv", ["a2", "w3"], ["y"]),
        ], {"w1": (4, 3, 3, 3), "b1": (4,), "g": (4,), "beta": (4,), "mean": (4,), "var": positive(4),
            "dw": (4, 1, 3, 3), "scalar": np.array([0.7], np.float32), "per_channel": (1, 4, 1, 1),
            "w3": (2, 4, 1, 1)}, ["y"])
        after = fetch.fold_into_conv(before)
        self.assertEqual(ops(after), ["Conv", "Relu", "Conv", "Conv"])
        fetch.check_same_function(SPEC, "fold-into-conv", before, after)

    def test_leaves_what_is_not_a_per_channel_map_of_one_reader(self):
        before = graph([
            helper.make_node("Conv", ["x", "w1"], ["c1"]),
            helper.make_node("Mul", ["c1", "rows"], ["y1"]),  # varies along H: not per channel
            helper.make_node("Conv", ["x", "w2"], ["c2"]),
            helper.make_node("Add", ["c2", "bias"], ["y2"]),  # c2 is read twice
            helper.make_node("Relu", ["c2"], ["y3"]),
            helper.make_node("Conv", ["x", "w3"], ["c3"]),    # c3 is a graph output
            helper.make_node("Mul", ["c3", "scale"], ["y4"]),
            helper.make_node("Conv", ["x", "w4"], ["c4"]),
            helper.make_node("Add", ["c4", "c4"], ["y5"]),     # not by a constant
        ], {"w1": (4, 3, 1, 1), "rows": (1, 1, SIZE, 1), "w2": (4, 3, 1, 1), "bias": (4, 1, 1),
            "w3": (4, 3, 1, 1), "scale": (4, 1, 1), "w4": (4, 3, 1, 1)}, ["y1", "y2", "y3", "c3", "y4", "y5"])
        with self.assertRaisesRegex(fetch.FetchError, "no Conv followed by"):
            fetch.fold_into_conv(before)


class Check(unittest.TestCase):
    def test_refuses_a_graph_that_computes_something_else(self):
        before = graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["y"])],
                       {"w": (4, 3, 3, 3), "g": (4,), "beta": (4,), "mean": (4,), "var": positive(4)}, ["y"])
        m = onnx.load_from_string(fetch.fold_into_conv(before))
        bias = next(t for t in m.graph.initializer if t.name.endswith("_b"))
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.01, bias.name))
        with self.assertRaisesRegex(fetch.FetchError, "changed the model's outputs"):
            fetch.check_same_function(SPEC, "fold-into-conv", before, m.SerializeToString())

    def test_refuses_a_changed_output_shape(self):
        before = graph([helper.make_node("Relu", ["x"], ["y"])], {}, ["y"])
        after = graph([helper.make_node("Flatten", ["x"], ["y"])], {}, ["y"])
        with self.assertRaisesRegex(fetch.FetchError, "changed the shapes"):
            fetch.check_same_function(SPEC, "a step", before, after)


class Exported(unittest.TestCase):
    def test_the_exported_copy_gets_every_step_but_the_rewrites(self):
        before = graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], {"slope": (3, 1, 1)}, ["y"])
        m = onnx.load_from_string(before)
        m.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
        m.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 1
        data, plain = fetch.converted(SPEC, m.SerializeToString(), ["split-prelu", "strip-shapes"])
        self.assertNotIn("PRelu", ops(data))
        self.assertEqual(ops(plain), ["PRelu"])
        for out in (data, plain):
            self.assertFalse(onnx.load_from_string(out).graph.output[0].type.tensor_type.HasField("shape"))
        rewritten = {"id": "m", "file": "m.onnx", "convert": ["strip-shapes", "split-prelu"]}
        plain_only = {"id": "m", "file": "m.onnx", "convert": "strip-shapes"}
        self.assertEqual(fetch.exported_path(rewritten, Path("c")), Path("c/exported/m.onnx"))
        self.assertEqual(fetch.exported_path(plain_only, Path("c")), Path("c/m.onnx"))


class OtherRewrites(unittest.TestCase):
    def test_split_prelu_keeps_the_function(self):
        before = graph([helper.make_node("PRelu", ["x", "slope"], ["y"])],
                       {"slope": np.array([[[-0.5]], [[0.25]], [[1.2]]], np.float32)}, ["y"])
        after = fetch.split_prelu(before)
        self.assertEqual(ops(after), ["Max", "Min", "Mul", "Add"])
        fetch.check_same_function(SPEC, "split-prelu", before, after)

    def test_fuse_hardswish_fuses_only_the_exact_chain(self):
        consts = {"three": np.array(3, np.float32), "zero": np.array(0, np.float32),
                  "six": np.array(6, np.float32), "five": np.array(5, np.float32)}
        chain = [helper.make_node("Add", ["x", "three"], ["p"]),
                 helper.make_node("Clip", ["p", "zero", "six"], ["q"]),
                 helper.make_node("Mul", ["x", "q"], ["r"])]
        before = graph(chain + [helper.make_node("Div", ["r", "six"], ["y"])], consts, ["y"])
        after = fetch.fuse_hardswish(before)
        self.assertEqual(ops(after), ["HardSwish"])
        fetch.check_same_function(SPEC, "fuse-hardswish", before, after)
        other = graph(chain + [helper.make_node("Div", ["r", "five"], ["y"])], consts, ["y"])
        with self.assertRaisesRegex(fetch.FetchError, "no x"):
            fetch.fuse_hardswish(other)

    def test_two_class_softmax_rewrites_only_a_last_axis_of_two(self):
        def softmax_of(shape):
            return graph([helper.make_node("Reshape", ["x", "shape"], ["r"]),
                          helper.make_node("Softmax", ["r"], ["y"], axis=-1)],
                         {"shape": np.array(shape, np.int64)}, ["y"])
        before = softmax_of([1, 3 * SIZE * SIZE // 2, 2])
        after = fetch.two_class_softmax(before, SPEC)
        self.assertNotIn("Softmax", ops(after))
        fetch.check_same_function(SPEC, "two-class-softmax", before, after)
        with self.assertRaisesRegex(fetch.FetchError, "no Softmax"):
            fetch.two_class_softmax(softmax_of([1, SIZE * SIZE, 3]), SPEC)

    def test_resize_by_scales_only_where_a_computed_size_is_an_integer_multiple(self):
        pool = helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2])
        resize = helper.make_node("Resize", ["p", "", "", "size"], ["y"], mode="nearest",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        # an FPN's upsample: the pooled map resized to the size of another tensor
        before = graph([pool, helper.make_node("Shape", ["x"], ["size"]), resize], {}, ["y"])
        after = fetch.resize_by_scales(before, SPEC)
        self.assertEqual(ops(after), ["MaxPool", "Resize"])
        fetch.check_same_function(SPEC, "resize-by-scales", before, after)
        constant_size = graph([pool, resize], {"size": np.array([1, 3, 6, 6], np.int64)}, ["y"])
        two_less = graph([pool, helper.make_node("Shape", ["x"], ["s"]),
                          helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
                          helper.make_node("Sub", ["hw", "two"], ["hw2"]),
                          helper.make_node("Concat", ["nc", "hw2"], ["size"], axis=0), resize],
                         {"two": np.array([2], np.int64), "four": np.array([4], np.int64),
                          "nc": np.array([1, 3], np.int64)}, ["y"])  # 4 -> 6: 1.5 times
        for left_alone in (constant_size, two_less):
            with self.assertRaisesRegex(fetch.FetchError, "no nearest Resize"):
                fetch.resize_by_scales(left_alone, SPEC)

    def test_pool_by_rows_only_for_a_plain_2x2_pool_of_stride_2(self):
        def pooled(**attrs):
            return graph([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], {}, ["y"])
        before = pooled(kernel_shape=[2, 2], strides=[2, 2])
        after = fetch.pool_by_rows(before)
        self.assertEqual(ops(after).count("MaxPool"), 1)
        self.assertIn("Max", ops(after))
        fetch.check_same_function(SPEC, "pool-by-rows", before, after)
        for left_alone in (pooled(kernel_shape=[3, 3], strides=[2, 2]),
                           pooled(kernel_shape=[2, 2], strides=[1, 1]),
                           pooled(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]),
                           pooled(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)):
            with self.assertRaisesRegex(fetch.FetchError, "no 2x2 MaxPool"):
                fetch.pool_by_rows(left_alone)

    def test_bilinear_by_shifts_only_for_half_pixel_scales_of_2_and_a_half(self):
        def resized(scales, opset=13, **attrs):
            attrs = {"mode": "linear", **attrs}
            return graph([helper.make_node("Resize", ["x", "", "s"], ["y"], **attrs)],
                         {"s": np.array(scales, np.float32)}, ["y"], opset)
        # down then up: the edges of both, and a map the rewrite itself made
        before = graph([helper.make_node("Resize", ["x", "", "half"], ["d"], mode="linear"),
                        helper.make_node("Resize", ["d", "", "two"], ["y"], mode="linear")],
                       {"half": np.array([1, 1, 0.5, 0.5], np.float32), "two": np.array([1, 1, 2, 2], np.float32)},
                       ["y", "d"])
        after = fetch.bilinear_by_shifts(before)
        self.assertNotIn("Resize", ops(after))
        fetch.check_same_function(SPEC, "bilinear-by-shifts", before, after)
        for left_alone in (resized([1, 1, 2, 2], mode="nearest"),
                           resized([1, 1, 2, 2], coordinate_transformation_mode="align_corners"),
                           resized([1, 1, 0.5, 0.5], coordinate_transformation_mode="asymmetric"),
                           resized([1, 1, 0.5, 0.5], opset=18, antialias=1),
                           resized([1, 1, 4, 4]),
                           resized([1, 1, 2, 1])):
            with self.assertRaisesRegex(fetch.FetchError, "no bilinear Resize"):
                fetch.bilinear_by_shifts(left_alone)


if __name__ == "__main__":
    unittest.main()
