#!/usr/bin/env python3
"""Train, export and check the plaintext models that hetier runs encrypted.

One command reproduces every committed file in models/ (see models/README.md):

    models/.venv/bin/python models/train.py train     # train + export + check all models
    models/.venv/bin/python models/train.py check     # reload the committed files and re-check

The file has three parts: the reference forward pass over the model description (the
plaintext twin the Rust executor is checked against), a small numpy trainer for the shallow
models (backprop for dense, the first conv2d and polynomial activations, Adam), and the model
definitions with export/check. The ResNet-20s train in `resnet.py` (float32, batch-norm folded
at export); the shallow models train in float64. Weights are exported as float32 and every
reported number (accuracy, activation ranges, reference logits) is recomputed from the
exported float32 weights in float64 arithmetic, exactly as `check` does after a reload.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
from pathlib import Path

# One BLAS thread: the same bits whatever the core count, and polite on a shared 2-core machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

import resnet  # noqa: E402  (models/resnet.py: the ResNet-20 trainer)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
OUT = ROOT / "models"
SCHEMA = "hetier-model/1"

# ---------------------------------------------------------------------------------------------
# Reference forward pass (float64), shared by training, export and check.
# Activations are batched: dense values are [N, n], spatial values are [N, C, H, W].
# ---------------------------------------------------------------------------------------------

CHEB_FNS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def chebyshev_coeffs(fn: str, lo: float, hi: float, degree: int) -> list[float]:
    """Chebyshev-basis coefficients interpolating `fn` at the degree+1 Chebyshev nodes of [lo, hi]."""
    n = degree + 1
    k = np.arange(n)
    t = np.cos(np.pi * (k + 0.5) / n)  # nodes in [-1, 1]
    f = CHEB_FNS[fn]((hi - lo) / 2.0 * t + (hi + lo) / 2.0)
    c = np.array([2.0 / n * np.sum(f * np.cos(j * np.pi * (k + 0.5) / n)) for j in range(n)])
    c[0] /= 2.0
    return [float(v) for v in c]


def eval_activation(spec: dict, z: np.ndarray) -> np.ndarray:
    kind = spec["type"]
    if kind == "square":
        return z * z
    if kind == "poly":
        # Horner on ascending-power coefficients c0 + c1 z + c2 z^2 + ...
        acc = np.zeros_like(z)
        for c in reversed(spec["coeffs"]):
            acc = acc * z + c
        return acc
    if kind == "chebyshev":
        lo, hi = spec["range"]
        t = (2.0 * z - (hi + lo)) / (hi - lo)
        return np.polynomial.chebyshev.chebval(t, spec["coeffs"])
    if kind in ("relu", "silu"):
        # The reader interpolates these itself (desc.rs does the same: same nodes, same formula).
        lo, hi = spec["range"]
        coeffs = chebyshev_coeffs(kind, lo, hi, spec["degree"])
        return eval_activation({"type": "chebyshev", "range": [lo, hi], "coeffs": coeffs}, z)
    raise ValueError(f"unknown activation type {kind!r}")


def pad_nchw(x: np.ndarray, padding: list[int]) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> tuple[np.ndarray, int, int]:
    """[N, C, H, W] (already padded) -> patches [N, OH*OW, C*kh*kw] in (c, ky, kx) order."""
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, ky, kx] = x[:, :, ky : ky + sh * oh : sh, kx : kx + sw * ow : sw]
    return cols.reshape(n, c * kh * kw, oh * ow).transpose(0, 2, 1), oh, ow


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: dict) -> np.ndarray:
    kh, kw = layer["kernel"]
    sh, sw = layer["stride"]
    g = layer["groups"]
    xp = pad_nchw(x, layer["padding"])
    n = x.shape[0]
    cin_g, cout_g = x.shape[1] // g, w.shape[0] // g
    outs = []
    for gi in range(g):
        cols, oh, ow = im2col(xp[:, gi * cin_g : (gi + 1) * cin_g], kh, kw, sh, sw)
        wg = w[gi * cout_g : (gi + 1) * cout_g].reshape(cout_g, -1)
        outs.append(np.einsum("nlk,ok->nol", cols, wg).reshape(n, cout_g, oh, ow))
    y = np.concatenate(outs, axis=1)
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def avgpool(x: np.ndarray, layer: dict) -> np.ndarray:
    kh, kw = layer["kernel"]
    sh, sw = layer["stride"]
    xp = pad_nchw(x, layer["padding"])  # zero padding counts in the mean, as in a plain sum*1/k
    n, c = x.shape[:2]
    cols, oh, ow = im2col(xp.reshape(n * c, 1, *xp.shape[2:]), kh, kw, sh, sw)
    return cols.mean(axis=2).reshape(n, c, oh, ow)


def layer_forward(layer: dict, params: dict, inputs: list[np.ndarray]) -> np.ndarray:
    kind = layer["kind"]
    x = inputs[0]
    if kind == "dense":
        y = x @ params[layer["weight"]].T
        return y + params[layer["bias"]] if layer.get("bias") else y
    if kind == "conv2d":
        b = params[layer["bias"]] if layer.get("bias") else None
        return conv2d(x, params[layer["weight"]], b, layer)
    if kind == "activation":
        return eval_activation(layer["activation"], x)
    if kind == "avgpool":
        return avgpool(x, layer)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)  # C, H, W row-major
    if kind == "add":
        return inputs[0] + inputs[1]
    raise ValueError(f"unknown layer kind {kind!r}")


def layer_inputs(model: dict, idx: int) -> list[str]:
    layer = model["layers"][idx]
    if "inputs" in layer:
        return list(layer["inputs"])
    return [model["layers"][idx - 1]["name"] if idx > 0 else "input"]


def forward(model: dict, params: dict, raw: np.ndarray, keep: bool = False,
            peaks: dict | None = None) -> dict:
    """Run the graph on raw inputs ([N, *input.shape] as stored); returns every layer's value
    (only the last one unless `keep`); `peaks` collects each layer's max |value|."""
    inp = model["input"]
    x = raw.astype(np.float64) * inp["scale"] + inp["offset"]
    vals = {"input": x.reshape(x.shape[0], *inp["shape"])}
    for i, layer in enumerate(model["layers"]):
        names = layer_inputs(model, i)
        vals[layer["name"]] = layer_forward(layer, params, [vals[n] for n in names])
        if peaks is not None:
            peak = float(np.abs(vals[layer["name"]]).max())
            peaks[layer["name"]] = max(peaks.get(layer["name"], 0.0), peak)
        if not keep:
            for n in names:  # drop values no later layer reads
                later = [m for j in range(i + 1, len(model["layers"])) for m in layer_inputs(model, j)]
                if n not in later and n != "input":
                    vals.pop(n, None)
    return vals


def evaluate(model: dict, params: dict, raw: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits and every layer's max |value|, in chunks small enough for the im2col buffers
    (one chunk for the small models, so their numbers do not depend on the chunking)."""
    widest = max(int(np.prod(l.get("out_shape") or [1])) for l in model["layers"])
    chunk = max(1, 20_000_000 // (9 * widest))
    logits, peaks = [], {}
    for s in range(0, len(raw), chunk):
        logits.append(forward(model, params, raw[s : s + chunk], peaks=peaks)[
            model["layers"][-1]["name"]])
    return np.concatenate(logits), peaks


def logits_of(model: dict, params: dict, raw: np.ndarray) -> np.ndarray:
    return evaluate(model, params, raw)[0]


# ---------------------------------------------------------------------------------------------
# Shape inference and validation of a description against its weights.
# ---------------------------------------------------------------------------------------------


def infer_shapes(model: dict, params: dict | None = None) -> None:
    """Fill in_shape/out_shape of every layer and check tensors and fields agree (raises ValueError)."""
    shapes = {"input": list(model["input"]["shape"])}
    for i, layer in enumerate(model["layers"]):
        name, kind = layer["name"], layer["kind"]
        ins = [shapes[n] for n in layer_inputs(model, i)]
        s = ins[0]
        if kind == "dense":
            if len(s) != 1 or s[0] != layer["in_features"]:
                raise ValueError(f"{name}: input {s} != [{layer['in_features']}]")
            out = [layer["out_features"]]
            want = {layer["weight"]: [layer["out_features"], layer["in_features"]]}
            if layer.get("bias"):
                want[layer["bias"]] = out
        elif kind in ("conv2d", "avgpool"):
            if len(s) != 3:
                raise ValueError(f"{name}: needs a C,H,W input, got {s}")
            (kh, kw), (sh, sw), (pt, pb, pl, pr) = layer["kernel"], layer["stride"], layer["padding"]
            oh, ow = (s[1] + pt + pb - kh) // sh + 1, (s[2] + pl + pr - kw) // sw + 1
            if kind == "conv2d":
                g, cin, cout = layer["groups"], layer["in_channels"], layer["out_channels"]
                if s[0] != cin or cin % g or cout % g:
                    raise ValueError(f"{name}: channels {s[0]} vs in {cin}, out {cout}, groups {g}")
                out = [cout, oh, ow]
                want = {layer["weight"]: [cout, cin // g, kh, kw]}
                if layer.get("bias"):
                    want[layer["bias"]] = [cout]
            else:
                out, want = [s[0], oh, ow], {}
        elif kind == "activation":
            out, want = s, {}
        elif kind == "flatten":
            out, want = [int(np.prod(s))], {}
        elif kind == "add":
            if ins[0] != ins[1]:
                raise ValueError(f"{name}: add of shapes {ins[0]} and {ins[1]}")
            out, want = s, {}
        else:
            raise ValueError(f"{name}: unknown kind {kind!r}")
        if params is not None:
            for t, shp in want.items():
                if t not in params or list(params[t].shape) != shp:
                    got = None if t not in params else list(params[t].shape)
                    raise ValueError(f"{name}: tensor {t!r} has shape {got}, want {shp}")
        layer["in_shape"], layer["out_shape"] = s, out
        shapes[name] = out


# ---------------------------------------------------------------------------------------------
# Training: backprop for the kinds the trained models use.
# ---------------------------------------------------------------------------------------------


def backward(model: dict, params: dict, vals: dict, dout: np.ndarray) -> dict:
    """Gradients of the loss w.r.t. params for a straight-line graph (no add), given d logits."""
    grads = {}
    d = dout
    layers = model["layers"]
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        x = vals[layer_inputs(model, i)[0]]
        kind = layer["kind"]
        if kind == "dense":
            grads[layer["weight"]] = d.T @ x
            if layer.get("bias"):
                grads[layer["bias"]] = d.sum(axis=0)
            d = d @ params[layer["weight"]]
        elif kind == "activation":
            spec = layer["activation"]
            if spec["type"] == "square":
                d = d * 2.0 * x
            elif spec["type"] == "poly":
                c = spec["coeffs"]
                deriv = np.zeros_like(x)
                for k in range(len(c) - 1, 0, -1):
                    deriv = deriv * x + k * c[k]
                d = d * deriv
            else:
                raise ValueError("training supports square and poly activations")
        elif kind == "flatten":
            d = d.reshape(x.shape)
        elif kind == "conv2d":
            if i != 0 or layer["groups"] != 1:
                raise ValueError("training supports one ungrouped conv2d as the first layer")
            kh, kw = layer["kernel"]
            cols, _, _ = im2col(pad_nchw(x, layer["padding"]), kh, kw, *layer["stride"])
            dd = d.reshape(d.shape[0], d.shape[1], -1)  # [N, O, L]
            grads[layer["weight"]] = np.einsum("nol,nlk->ok", dd, cols).reshape(
                params[layer["weight"]].shape
            )
            if layer.get("bias"):
                grads[layer["bias"]] = dd.sum(axis=(0, 2))
        else:
            raise ValueError(f"training does not support {kind}")
    return grads


def softmax_xent(logits: np.ndarray, y: np.ndarray, smooth: float) -> tuple[float, np.ndarray]:
    """Cross-entropy against label-smoothed targets; smoothing bounds the logit gap (~log(9(1-s)/s))
    so the logits stay small under CKKS."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n, k = logits.shape
    t = np.full((n, k), smooth / k)
    t[np.arange(n), y] += 1.0 - smooth
    loss = -(t * logp).sum(axis=1).mean()
    return float(loss), (np.exp(logp) - t) / n


def init_params(model: dict, rng: np.random.Generator) -> dict:
    params = {}
    for layer in model["layers"]:
        if layer["kind"] in ("dense", "conv2d"):
            shape = layer_weight_shape(layer)
            fan_in = int(np.prod(shape[1:]))
            params[layer["weight"]] = rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=shape)
            if layer.get("bias"):
                params[layer["bias"]] = np.zeros(shape[0])
    return params


def layer_weight_shape(layer: dict) -> list[int]:
    if layer["kind"] == "dense":
        return [layer["out_features"], layer["in_features"]]
    return [layer["out_channels"], layer["in_channels"] // layer["groups"], *layer["kernel"]]


def train(model, params, x, y, cfg, rng) -> None:
    """Mini-batch Adam with cosine learning-rate decay, L2 weight decay and gradient clipping."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    step, n, bs = 0, len(x), cfg["batch"]
    total = cfg["epochs"] * ((n + bs - 1) // bs)
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(n)
        losses = []
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            xb = shift_augment(x[idx], model["input"]["shape"], cfg.get("shift", 0), rng)
            vals = forward(model, params, xb, keep=True)
            loss, dlog = softmax_xent(vals[model["layers"][-1]["name"]], y[idx], cfg["smooth"])
            grads = backward(model, params, vals, dlog)
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
            clip = min(1.0, cfg["clip"] / (norm + 1e-12))
            lr = cfg["lr"] * 0.5 * (1.0 + math.cos(math.pi * step / total))
            step += 1
            for k, g in grads.items():
                g = g * clip + cfg["wd"] * params[k]
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                mh, vh = m[k] / (1 - b1**step), v[k] / (1 - b2**step)
                params[k] -= lr * mh / (np.sqrt(vh) + eps)
            losses.append(loss)
        if (epoch + 1) % max(1, cfg["epochs"] // 5) == 0:
            acc = accuracy(model, params, x, y)
            print(f"  epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  train acc {acc:.4f}")


def shift_augment(raw: np.ndarray, shape: list[int], k: int, rng: np.random.Generator):
    """Translate each image by a random (dy, dx) in [-k, k]^2, filling with zeros."""
    if k == 0:
        return raw
    n = len(raw)
    h, w = shape[-2], shape[-1]
    img = np.pad(raw.reshape(n, -1, h, w), ((0, 0), (0, 0), (k, k), (k, k)))
    out = np.empty((n, img.shape[1], h, w), dtype=raw.dtype)
    for i, (dy, dx) in enumerate(rng.integers(0, 2 * k + 1, size=(n, 2))):
        out[i] = img[i, :, dy : dy + h, dx : dx + w]
    return out.reshape(raw.shape)


def accuracy(model: dict, params: dict, x: np.ndarray, y: np.ndarray) -> float:
    return float((logits_of(model, params, x).argmax(axis=1) == y).mean())


def normalise_square_layers(model: dict, params: dict, x: np.ndarray, target: float) -> None:
    """Rescale each linear layer feeding a square so max |pre-activation| on x equals `target`.

    (a z)^2 = a^2 z^2, so scaling the layer before a square by a and the next linear layer's
    weights (not its bias) by 1/a^2 leaves the network's function unchanged.
    """
    layers = model["layers"]
    for i, layer in enumerate(layers):
        if layer["kind"] != "activation" or layer["activation"]["type"] != "square":
            continue
        prev = layers[i - 1]
        nxt = next(l for l in layers[i + 1 :] if l["kind"] in ("dense", "conv2d"))
        peak = float(np.abs(forward(model, params, x, keep=True)[prev["name"]]).max())
        a = target / peak
        params[prev["weight"]] *= a
        if prev.get("bias"):
            params[prev["bias"]] *= a
        params[nxt["weight"]] /= a * a


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_csv_gz(path: Path, zero_pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of pixels and labels; zero_pad > 0 adds that many zero rows/columns on every side
    of the (square) images, e.g. MNIST 28x28 -> 32x32 for the CIFAR-shaped ResNet."""
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    raw = arr[:, :-1].astype(np.uint8)
    if zero_pad:
        side = math.isqrt(raw.shape[1])
        raw = np.pad(raw.reshape(-1, side, side), ((0, 0), (zero_pad,) * 2, (zero_pad,) * 2))
        raw = raw.reshape(len(raw), -1)
    return raw, arr[:, -1]


def split(x, y, test_frac: float, seed: int):
    """Shuffle with a fixed seed, then hold out the last test_frac of the permutation."""
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_frac))
    tr, te = perm[:-n_test], perm[-n_test:]
    return x[tr], y[tr], x[te], y[te], te


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def dense(name, n_in, n_out):
    return {"name": name, "kind": "dense", "in_features": n_in, "out_features": n_out,
            "weight": f"{name}.weight", "bias": f"{name}.bias"}


def square(name):
    return {"name": name, "kind": "activation", "activation": {"type": "square"}}


DIGITS_INPUT = {"shape": [64], "dtype": "uint8", "scale": 1.0 / 16.0, "offset": 0.0,
                "layout": "8x8 image, row-major; raw pixel values 0..16"}
MNIST_INPUT = {"shape": [1, 28, 28], "dtype": "uint8", "scale": 1.0 / 255.0, "offset": 0.0,
               "layout": "C,H,W = 1,28,28, row-major; raw pixel values 0..255"}

MNIST32_INPUT = {"shape": [1, 32, 32], "dtype": "uint8", "scale": 1.0 / 255.0, "offset": 0.0,
                 "layout": "C,H,W = 1,32,32, row-major; raw pixel values 0..255; the 28x28 MNIST "
                           "image sits at rows and columns 2..29, inside a 2-pixel border of zeros "
                           "on every side"}
RESNET_DATA = {"data": "mnist_5k.csv.gz", "input": MNIST32_INPUT, "seed": 6, "test_frac": 0.2,
               "n_export": None, "zero_pad": 2, "arch": "resnet20"}
RESNET_GRAPH = ("conv 3x3 1->16, act; 3 stages x 3 basic blocks (16, 32, 64 channels; conv 3x3, "
                "act, conv 3x3, add shortcut, act; the first block of stages 2 and 3 has stride 2 "
                "and a 1x1 stride-2 conv shortcut); avgpool 8x8 -> 64, dense 64->10; batch-norm "
                "folded into the convs")

SPECS = {
    "digits": {
        "description": "8x8 digits MLP: dense 64->32, square, dense 32->10 (the fast default model)",
        "data": "digits.csv.gz", "input": DIGITS_INPUT, "seed": 6, "test_frac": 0.2, "n_export": None,
        "train": {"epochs": 150, "batch": 32, "lr": 3e-3, "wd": 1e-4, "clip": 5.0, "smooth": 0.1},
        "layers": [dense("fc1", 64, 32), square("act1"), dense("fc2", 32, 10)],
    },
    "digits_wide": {
        "description": "wide 8x8 digits MLP: dense 64->256, square, dense 256->256, square, "
                       "dense 256->10 (the larger-than-DRAM run at log N = 16)",
        "data": "digits.csv.gz", "input": DIGITS_INPUT, "seed": 6, "test_frac": 0.2, "n_export": None,
        "train": {"epochs": 150, "batch": 32, "lr": 1e-3, "wd": 1e-4, "clip": 5.0, "smooth": 0.1},
        "layers": [dense("fc1", 64, 256), square("act1"), dense("fc2", 256, 256), square("act2"),
                   dense("fc3", 256, 10)],
    },
    "cryptonets": {
        "description": "CryptoNets network on MNIST: conv 5x5 stride 2, 5 channels, input padded "
                       "to 29x29 (one zero row on top, one zero column on the left) -> 5x13x13 = "
                       "845, square, dense 845->100 (the published model's pool/conv/pool folded "
                       "into one linear layer), square, dense 100->10",
        "data": "mnist_5k.csv.gz", "input": MNIST_INPUT, "seed": 6, "test_frac": 0.2, "n_export": None,
        "train": {"epochs": 60, "batch": 32, "lr": 1e-3, "wd": 1e-4, "clip": 5.0, "smooth": 0.1,
                  "shift": 2},
        "layers": [
            {"name": "conv1", "kind": "conv2d", "in_channels": 1, "out_channels": 5,
             "kernel": [5, 5], "stride": [2, 2], "padding": [1, 0, 1, 0], "groups": 1,
             "weight": "conv1.weight", "bias": "conv1.bias"},
            square("act1"),
            {"name": "flatten", "kind": "flatten"},
            dense("fc1", 845, 100), square("act2"), dense("fc2", 100, 10),
        ],
    },
    "resnet20": dict(RESNET_DATA, description="ResNet-20 (CIFAR form) on MNIST padded to 32x32, "
                     "learnable degree-2 polynomial activations: " + RESNET_GRAPH,
                     train={"epochs": 10, "batch": 64, "lr": 0.1, "wd": 5e-4, "clip": 5.0,
                            "smooth": 0.1, "shift": 2, "poly_init": [0.0, 1.0, 0.05],
                            "act_lr": 0.1, "range_lam": 1e-3, "range_bound": 8.0}),
    "resnet20_relu": dict(RESNET_DATA, description="ResNet-20 (CIFAR form) on MNIST padded to "
                          "32x32, trained with ReLU and exported with each ReLU replaced by its "
                          "Chebyshev interpolant: " + RESNET_GRAPH,
                          train={"epochs": 10, "batch": 64, "lr": 0.1, "wd": 5e-4, "clip": 5.0,
                                 "smooth": 0.1, "shift": 2, "poly_init": None,
                                 "range_lam": 1e-3, "range_bound": 8.0,
                                 "relu_degree": 31, "relu_margin": 1.1}),
}


def relu_degree_sweep(model: dict, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Test accuracy with every ReLU interpolated at other degrees (same ranges), for the record."""
    out = {}
    for degree in (15, 31, 63):
        alt = json.loads(json.dumps(model))
        for layer in alt["layers"]:
            if layer["kind"] == "activation":
                layer["activation"]["degree"] = degree
        out[str(degree)] = float((logits_of(alt, params, x).argmax(axis=1) == y).mean())
        print(f"  ReLU interpolated at degree {degree}: test acc {out[str(degree)]:.4f}")
    return out


def build(name: str) -> None:
    spec = SPECS[name]
    print(f"== {name}: {spec['description']}")
    raw, labels = load_csv_gz(DATA / spec["data"], spec.get("zero_pad", 0))
    xtr, ytr, xte, yte, te_idx = split(raw, labels, spec["test_frac"], spec["seed"])
    model = {"schema": SCHEMA, "name": name, "description": spec["description"],
             "input": spec["input"], "classes": 10}
    rng = np.random.default_rng(spec["seed"] + 1)
    extra_training, extra_metrics = {}, {}
    if spec.get("arch") == "resnet20":
        model["layers"], params, extra_training, extra_metrics = resnet.train_and_fold(
            spec["train"], xtr, ytr, xte, yte, rng, shift_augment, softmax_xent)
        infer_shapes(model)
    else:
        model["layers"] = json.loads(json.dumps(spec["layers"]))
        infer_shapes(model)
        params = init_params(model, rng)
        train(model, params, xtr, ytr, spec["train"], rng)
        normalise_square_layers(model, params, xtr, target=1.0)
        extra_training = {"optimizer": "Adam, cosine lr decay, grad-norm clip, L2",
                          "normalised": "linear layers before each square rescaled so the max "
                                        "|pre-activation| over the train split is 1.0"}
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    p64 = {k: v.astype(np.float64) for k, v in params32.items()}  # what the Rust side will load
    (tr_logits, tr_stats), (te_logits, te_stats) = evaluate(model, p64, xtr), evaluate(model, p64, xte)
    if "relu_degree" in spec["train"]:
        extra_metrics["test_accuracy_by_relu_degree"] = relu_degree_sweep(model, p64, xte, yte)
    for layer in model["layers"]:
        layer["max_abs"] = {"train": round(tr_stats[layer["name"]], 6),
                            "test": round(te_stats[layer["name"]], 6)}
    model["weights"] = f"{name}.safetensors"
    model["weights_dtype"] = "float32"
    model["test_set"] = f"{name}.test.safetensors"
    model["data"] = {
        "file": f"data/{spec['data']}", "rows": len(raw), "split_seed": spec["seed"],
        "test_fraction": spec["test_frac"], "n_train": len(xtr), "n_test": len(xte),
        "split": "rows = numpy.random.default_rng(split_seed).permutation(rows); the last "
                 "round(rows * test_fraction) are the test split, the rest train",
    }
    if spec.get("zero_pad"):
        model["data"]["zero_pad"] = spec["zero_pad"]
    model["training"] = dict(spec["train"], optimizer=extra_training.pop("optimizer"),
                             init_seed=spec["seed"] + 1,
                             loss="softmax cross-entropy, label smoothing", **extra_training)
    model["metrics"] = {"train_accuracy": float((tr_logits.argmax(axis=1) == ytr).mean()),
                        "test_accuracy": float((te_logits.argmax(axis=1) == yte).mean()),
                        **extra_metrics}
    n_exp = spec["n_export"] or len(xte)
    logits = te_logits[:n_exp]
    meta = {"schema": SCHEMA, "model": name}
    save_safetensors(OUT / model["weights"], params32, meta)
    shape = [n_exp, *model["input"]["shape"]]
    save_safetensors(OUT / model["test_set"], {"images": xte[:n_exp].reshape(shape),
               "labels": yte[:n_exp].astype(np.int64),
               "row_index": te_idx[:n_exp].astype(np.int64),
               "logits": logits.astype(np.float64)}, meta)
    with open(OUT / f"{name}.json", "w") as f:
        json.dump(model, f, indent=1)
        f.write("\n")
    m = model["metrics"]
    print(f"  train acc {m['train_accuracy']:.4f}  test acc {m['test_accuracy']:.4f} "
          f"({len(xte)} held out)")
    print("  max |value| on test: " + ", ".join(f"{k} {v:.3f}" for k, v in te_stats.items()))


ST_DTYPES = {"float32": "F32", "float64": "F64", "uint8": "U8", "int64": "I64"}


def save_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    """Write a safetensors file byte-for-byte reproducibly (sorted names, compact header).

    The safetensors package's writer orders its header through a hash map, so two identical runs
    give different bytes; `check` reads these files back with the package's own reader.
    """
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": ST_DTYPES[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for blob in blobs:
            f.write(blob)


def load_model(name: str) -> tuple[dict, dict]:
    with open(OUT / f"{name}.json") as f:
        model = json.load(f)
    if model.get("schema") != SCHEMA:
        raise ValueError(f"{name}: schema {model.get('schema')!r} != {SCHEMA!r}")
    params = {k: v.astype(np.float64) for k, v in load_file(str(OUT / model["weights"])).items()}
    stored = [(l["in_shape"], l["out_shape"]) for l in model["layers"]]
    infer_shapes(model, params)
    if stored != [(l["in_shape"], l["out_shape"]) for l in model["layers"]]:
        raise ValueError(f"{name}: stored in/out shapes disagree with the graph")
    return model, params


def check(name: str) -> bool:
    """Reload the exported files and verify accuracy, activation maxima and reference logits."""
    model, params = load_model(name)
    raw, labels = load_csv_gz(ROOT / model["data"]["file"], model["data"].get("zero_pad", 0))
    xtr, ytr, xte, yte, _ = split(raw, labels, model["data"]["test_fraction"],
                                  model["data"]["split_seed"])
    test = load_file(str(OUT / model["test_set"]))
    te_logits, stats = evaluate(model, params, xte)
    acc = float((te_logits.argmax(axis=1) == yte).mean())
    logits = te_logits[: len(test["images"])]  # the exported images are xte's first rows (checked)
    ok = (
        acc == model["metrics"]["test_accuracy"]
        and np.array_equal(test["images"], xte[: len(test["images"])].reshape(test["images"].shape))
        and list(test["images"].shape[1:]) == model["input"]["shape"]
        and np.array_equal(test["labels"], yte[: len(test["labels"])])
        and float(np.abs(logits - test["logits"]).max()) <= 1e-12
        and all(abs(stats[l["name"]] - l["max_abs"]["test"]) <= 1e-5 for l in model["layers"])
    )
    print(f"check {name}: test acc {acc:.4f} on {len(xte)}; {len(test['images'])} exported "
          f"images; logits max diff {np.abs(logits - test['logits']).max():.2e} -> "
          f"{'OK' if ok else 'MISMATCH'}")
    return ok


def self_test() -> bool:
    """Reference ops the trained models do not use, against direct formulas."""
    rng = np.random.default_rng(0)
    ok = True
    c = chebyshev_coeffs("silu", -8.0, 8.0, 31)
    z = np.linspace(-8, 8, 1001)
    err = np.abs(eval_activation({"type": "chebyshev", "range": [-8, 8], "coeffs": c}, z)
                 - CHEB_FNS["silu"](z)).max()
    ok &= bool(err < 1e-3)
    x = rng.normal(size=(2, 4, 6, 6))
    w = rng.normal(size=(4, 1, 3, 3))
    layer = {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1, 1, 1], "groups": 4}
    y = conv2d(x, w, None, layer)
    xp = pad_nchw(x, layer["padding"])
    direct = np.array([[[[np.sum(xp[n, ch, i:i + 3, j:j + 3] * w[ch, 0]) for j in range(6)]
                         for i in range(6)] for ch in range(4)] for n in range(2)])
    ok &= bool(np.abs(y - direct).max() < 1e-12)
    p = avgpool(x, {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]})
    ok &= bool(np.abs(p - x.reshape(2, 4, 3, 2, 3, 2).mean(axis=(3, 5))).max() < 1e-12)
    print(f"self-test (chebyshev silu err {err:.1e}, depthwise conv, avgpool): "
          f"{'OK' if ok else 'FAIL'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["train", "check"])
    ap.add_argument("models", nargs="*", default=list(SPECS), help="default: all")
    args = ap.parse_args()
    if args.command == "train":
        for name in args.models:
            build(name)
    ok = self_test()
    for name in args.models:
        ok &= check(name)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
