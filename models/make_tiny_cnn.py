#!/usr/bin/env python3
"""Writes the bundled demo model models/tiny_cnn.onnx (+ a seeded input) with onnx.helper.

A small image classifier (Conv-BN-ReLU, MaxPool, Conv-ReLU, GlobalAveragePool, Gemm, Softmax)
with a dynamic batch axis and seeded random weights: small enough to commit, and it exercises
the importer, shape inference and several op families end to end.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1234)


def w(name, *shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


inits = [
    w("c1_w", 16, 3, 3, 3), w("c1_b", 16, scale=0.05),
    numpy_helper.from_array((1 + 0.1 * rng.standard_normal(16)).astype(np.float32), "bn_scale"),
    w("bn_bias", 16, scale=0.1), w("bn_mean", 16, scale=0.1),
    numpy_helper.from_array((0.5 + rng.random(16)).astype(np.float32), "bn_var"),
    w("c2_w", 32, 16, 3, 3, scale=0.1), w("c2_b", 32, scale=0.05),
    w("fc_w", 10, 32), w("fc_b", 10, scale=0.05),
]
nodes = [
    helper.make_node("Conv", ["images", "c1_w", "c1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn1"], name="bn1"),
    helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
    helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
    helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
    helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
    helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
    helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "tiny_cnn",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])],
    [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
    initializer=inits)
model = helper.make_model(graph, producer_name="ramjet-models", opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, "tiny_cnn.onnx")
np.save("tiny_cnn_input.npy", rng.random((2, 3, 32, 32), dtype=np.float32))
print("wrote tiny_cnn.onnx and tiny_cnn_input.npy")

# The independent reference: onnxruntime's output on the bundled input (tests compare with it).
try:
    import onnxruntime as ort
    x = np.load("tiny_cnn_input.npy")
    np.save("tiny_cnn_expected_ort.npy", ort.InferenceSession("tiny_cnn.onnx").run(None, {"images": x})[0])
    print("wrote tiny_cnn_expected_ort.npy (onnxruntime", ort.__version__ + ")")
except ImportError:
    print("onnxruntime not installed: tiny_cnn_expected_ort.npy not regenerated")
