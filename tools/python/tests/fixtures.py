"""ONNX models for the tests, built from numpy with onnx.helper (no torch)."""

import json
import pathlib
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODELS = pathlib.Path(__file__).resolve().parents[3] / "models"


def _model(nodes, inits, in_shape, name):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "K"])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )
    m = helper.make_model(graph, producer_name="hetier-tests", opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def mlp(seed=1):
    """Gemm 16→12, x², Gemm 12→4."""
    r = np.random.default_rng(seed)
    inits = {
        "W1": r.normal(0, 0.25, (12, 16)),
        "b1": r.normal(0, 0.1, 12),
        "W2": r.normal(0, 0.5, (4, 12)),
        "b2": r.normal(0, 0.1, 4),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Mul", ["h", "h"], ["a"], name="square"),
        helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], name="fc2", transB=1),
    ]
    return _model(nodes, inits, [16], "mlp")


def small_cnn(seed=2):
    """Conv 3×3 (1→4, pad 1) → BatchNorm → x² → residual Add with the BN output →
    AveragePool 2×2 → Flatten → Gemm 64→3."""
    r = np.random.default_rng(seed)
    inits = {
        "W": r.normal(0, 0.3, (4, 1, 3, 3)),
        "B": r.normal(0, 0.1, 4),
        "gamma": r.uniform(0.5, 1.5, 4),
        "beta": r.normal(0, 0.1, 4),
        "mean": r.normal(0, 0.1, 4),
        "var": r.uniform(0.5, 2.0, 4),
        "Wfc": r.normal(0, 0.3, (3, 64)),
        "bfc": r.normal(0, 0.1, 3),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
        helper.make_node("Mul", ["n", "n"], ["a"], name="square"),
        helper.make_node("Add", ["a", "n"], ["r"], name="residual"),
        helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "Wfc", "bfc"], ["y"], name="fc", transB=1),
    ]
    return _model(nodes, inits, [1, 8, 8], "small_cnn")


def relu_mlp(seed=3):
    """Gemm 8→6, Relu, Gemm 6→2 (the Relu becomes a calibrated polynomial)."""
    r = np.random.default_rng(seed)
    inits = {"W1": r.normal(0, 0.4, (6, 8)), "W2": r.normal(0, 0.5, (2, 6))}
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("Gemm", ["a", "W2"], ["y"], name="fc2", transB=1),
    ]
    return _model(nodes, inits, [8], "relu_mlp")


def unsupported():
    """A graph with two operators hetier does not lower."""
    inits = {"W": np.eye(4)}
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["h"], name="fc", transB=1),
        helper.make_node("Softmax", ["h"], ["s"], name="probabilities"),
        helper.make_node("Max", ["s", "h"], ["y"], name="elementwise_max"),
    ]
    return _model(nodes, inits, [4], "unsupported")


def read_safetensors(path):
    """A dict name → numpy array from a safetensors file (F32, F64, U8, I64)."""
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    types = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(body[a:b], dtype=types[v["dtype"]]).reshape(v["shape"])
    return out


def cryptonets():
    """The committed CryptoNets model (models/cryptonets.*) exported to ONNX: Conv 5×5 stride 2
    with one zero row on top and one column on the left, x², Flatten, Gemm 845→100, x², Gemm
    100→10. Input: pixels / 255, shape [N, 1, 28, 28]."""
    w = read_safetensors(MODELS / "cryptonets.safetensors")
    inits = {
        "conv1.weight": w["conv1.weight"],
        "conv1.bias": w["conv1.bias"],
        "fc1.weight": w["fc1.weight"],
        "fc1.bias": w["fc1.bias"],
        "fc2.weight": w["fc2.weight"],
        "fc2.bias": w["fc2.bias"],
    }
    nodes = [
        helper.make_node(
            "Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], name="conv1", strides=[2, 2], pads=[1, 1, 0, 0]
        ),
        helper.make_node("Mul", ["c", "c"], ["a1"], name="act1"),
        helper.make_node("Flatten", ["a1"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
        helper.make_node("Pow", ["h", "two"], ["a2"], name="act2"),
        helper.make_node("Gemm", ["a2", "fc2.weight", "fc2.bias"], ["y"], name="fc2", transB=1),
    ]
    inits["two"] = np.array(2.0)
    return _model(nodes, inits, [1, 28, 28], "cryptonets")


def cryptonets_images(count):
    """The first `count` held-out MNIST images (float, /255) and their labels."""
    t = read_safetensors(MODELS / "cryptonets.test.safetensors")
    return t["images"][:count].astype(np.float32) / 255.0, t["labels"][:count]
