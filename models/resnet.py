"""ResNet-20 (CIFAR form) trainer for train.py: numpy, float32, channels-last, batch-norm.

The network trains with batch-norm after every convolution and is exported with the batch-norm
folded into the convolution weights and biases, so the exported graph (`describe`) has only
conv2d, activation, add, avgpool, flatten and dense layers. Convolutions are im2col + one BLAS
product (forward, weight gradient and input gradient each), on [N, H, W, C] values so the
products need no transposes. Activations are either a learnable degree-2 polynomial
c0 + c1 z + c2 z^2 (one per layer, trained in place) or an exact ReLU (the variant that is
exported with a Chebyshev interpolant instead).
"""

from __future__ import annotations

import math
import time

import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.9
STAGES = [(16, 1), (32, 2), (64, 2)]  # (channels, stride of the first block)
BLOCKS = 3


# ---------------------------------------------------------------------------------------------
# Layer ops on [N, H, W, C] float32 values (forward returns a cache for the backward pass).
# ---------------------------------------------------------------------------------------------


def scratch(pool, key, shape, dtype, zero=False):
    """A reused buffer: fresh 40 MB arrays every step cost more in page faults than the copy."""
    if pool is None:
        return (np.zeros if zero else np.empty)(shape, dtype=dtype)
    buf = pool.get(key)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = pool[key] = np.empty(shape, dtype=dtype)
    if zero:
        buf.fill(0)
    return buf


def conv_fwd(x, w, k, stride, pad, pool=None, key=None):
    """w is [k*k*C, O] in (ky, kx, c) order; zero padding `pad` on every side. `pool`: reused
    buffers (the im2col matrix stays valid until the same layer runs again)."""
    n, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    cols = scratch(pool, (key, "cols"), (n, oh, ow, k * k, c), x.dtype)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, :, ky * k + kx] = xp[:, ky : ky + stride * oh : stride,
                                            kx : kx + stride * ow : stride]
    cols = cols.reshape(n * oh * ow, k * k * c)
    y = (cols @ w).reshape(n, oh, ow, w.shape[1])
    return y, (cols, x.shape, k, stride, pad)


def conv_bwd(dy, w, cache, need_dx=True, pool=None, key=None):
    """Gradients w.r.t. the input (a view into a pooled buffer, valid until the same layer's
    next backward pass) and the weight."""
    cols, (n, h, wd, c), k, stride, pad = cache
    oh, ow = dy.shape[1], dy.shape[2]
    d2 = dy.reshape(-1, dy.shape[3])
    dw = cols.T @ d2
    if not need_dx:
        return None, dw
    dcols = scratch(pool, (key, "dcols"), (n * oh * ow, k * k * c), dy.dtype)
    np.matmul(d2, w.T, out=dcols)
    dcols = dcols.reshape(n, oh, ow, k * k, c)
    dxp = scratch(pool, (key, "dxp"), (n, h + 2 * pad, wd + 2 * pad, c), dy.dtype, zero=True)
    for ky in range(k):
        for kx in range(k):
            dxp[:, ky : ky + stride * oh : stride, kx : kx + stride * ow : stride] += \
                dcols[:, :, :, ky * k + kx]
    return dxp[:, pad : pad + h, pad : pad + wd], dw


def bn_fwd(x, bn, training):
    """Batch statistics (and running-average update) when training, running statistics else."""
    if training:
        mu = x.mean(axis=(0, 1, 2))
        var = x.var(axis=(0, 1, 2))
        bn["mean"] = BN_MOMENTUM * bn["mean"] + (1 - BN_MOMENTUM) * mu
        bn["var"] = BN_MOMENTUM * bn["var"] + (1 - BN_MOMENTUM) * var
    else:
        mu, var = bn["mean"], bn["var"]
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mu) * inv
    return bn["gamma"] * xhat + bn["beta"], (xhat, inv)


def bn_bwd(dy, bn, cache):
    xhat, inv = cache
    m = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dbeta = dy.sum(axis=(0, 1, 2))
    dgamma = (dy * xhat).sum(axis=(0, 1, 2))
    dx = (bn["gamma"] * inv / m) * (m * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def act_fwd(z, coeffs):
    """coeffs None: ReLU; else the polynomial c0 + c1 z + c2 z^2."""
    if coeffs is None:
        return np.maximum(z, 0), z
    c0, c1, c2 = coeffs
    return c0 + z * (c1 + c2 * z), z


def act_bwd(dy, coeffs, z):
    """Gradient w.r.t. the input z and (polynomial only) w.r.t. c0, c1, c2 in float64."""
    if coeffs is None:
        return dy * (z > 0), None
    c1, c2 = coeffs[1], coeffs[2]
    dc = np.array([dy.sum(), (dy * z).sum(), (dy * z * z).sum()], dtype=np.float64)
    return dy * (c1 + 2 * c2 * z), dc


# ---------------------------------------------------------------------------------------------
# The network: parameters and the forward/backward pass.
# ---------------------------------------------------------------------------------------------


def conv_names():
    """(name, in, out, kernel, stride) of every convolution, in execution order."""
    convs = [("conv1", 1, 16, 3, 1)]
    cin = 16
    for si, (cout, s) in enumerate(STAGES, start=1):
        for bi in range(1, BLOCKS + 1):
            st = s if bi == 1 else 1
            p = f"s{si}b{bi}"
            convs.append((f"{p}_conv1", cin, cout, 3, st))
            convs.append((f"{p}_conv2", cout, cout, 3, 1))
            if st != 1 or cin != cout:
                convs.append((f"{p}_short", cin, cout, 1, st))
            cin = cout
    return convs


def act_names():
    """Every activation's name, in execution order (the names `describe` exports)."""
    names = ["act1"]
    for si in range(1, len(STAGES) + 1):
        for bi in range(1, BLOCKS + 1):
            names += [f"s{si}b{bi}_act1", f"s{si}b{bi}_act2"]
    return names


def init_net(rng, poly_init):
    """He-normal convolutions, identity batch-norm, small dense layer; poly_init None for ReLU."""
    net = {"conv": {}, "bn": {}, "act": {}}
    for name, cin, cout, k, _ in conv_names():
        fan_in = cin * k * k
        net["conv"][name] = (rng.standard_normal((k * k * cin, cout)) *
                             math.sqrt(2.0 / fan_in)).astype(np.float32)
        net["bn"][name] = {"gamma": np.ones(cout, np.float32), "beta": np.zeros(cout, np.float32),
                           "mean": np.zeros(cout, np.float32), "var": np.ones(cout, np.float32)}
    for name in act_names():
        net["act"][name] = None if poly_init is None else np.array(poly_init, dtype=np.float64)
    net["fc_w"] = (rng.standard_normal((64, 10)) / 8.0).astype(np.float32)
    net["fc_b"] = np.zeros(10, np.float32)
    return net


def net_forward(net, x, training):
    """x [N, 32, 32, 1] float32 -> (logits, tape, pre-activation values by activation name)."""
    tape = []
    pre = {}

    def conv_bn(name, inp, k, stride):
        y, cc = conv_fwd(inp, net["conv"][name], k, stride, k // 2, net.get("pool"), name)
        z, bc = bn_fwd(y, net["bn"][name], training)
        tape.append(("conv_bn", name, cc, bc))
        return z

    def act(name, z):
        coeffs = None if net["act"][name] is None else [np.float32(c) for c in net["act"][name]]
        a, ac = act_fwd(z, coeffs)
        tape.append(("act", name, ac))
        pre[name] = z
        return a

    h = act("act1", conv_bn("conv1", x, 3, 1))
    cin = 16
    for si, (cout, s) in enumerate(STAGES, start=1):
        for bi in range(1, BLOCKS + 1):
            p, st = f"s{si}b{bi}", (s if bi == 1 else 1)
            tape.append(("block_in", p))
            a = act(f"{p}_act1", conv_bn(f"{p}_conv1", h, 3, st))
            z = conv_bn(f"{p}_conv2", a, 3, 1)
            if st != 1 or cin != cout:
                tape.append(("short_begin", p))
                sc = conv_bn(f"{p}_short", h, 1, st)
            else:
                sc = h
            tape.append(("add", p, st != 1 or cin != cout))
            h = act(f"{p}_act2", z + sc)
            cin = cout
    pooled = h.mean(axis=(1, 2))
    logits = pooled @ net["fc_w"] + net["fc_b"]
    tape.append(("head", pooled, h.shape))
    return logits, tape, pre


def net_backward(net, tape, dlogits, range_pen):
    """Gradients of every parameter; `range_pen(name, z)` adds the range-penalty gradient."""
    g = {"conv": {}, "gamma": {}, "beta": {}, "act": {}}
    _, pooled, hshape = tape.pop()
    g["fc_w"] = pooled.T @ dlogits
    g["fc_b"] = dlogits.sum(axis=0)
    d = np.broadcast_to((dlogits @ net["fc_w"].T)[:, None, None, :] / (hshape[1] * hshape[2]),
                        hshape).astype(np.float32)
    skip = None  # gradient flowing into the block input through the identity shortcut
    pending_short = None
    while tape:
        item = tape.pop()
        kind = item[0]
        if kind == "act":
            _, name, z = item
            coeffs = net["act"][name]
            d, dc = act_bwd(d, None if coeffs is None else [np.float32(c) for c in coeffs], z)
            d = d + range_pen(name, z)
            if dc is not None:
                g["act"][name] = dc
        elif kind == "add":
            _, p, has_short = item
            if has_short:
                pending_short = d  # consumed by the shortcut conv, popped next
            else:
                skip = d
        elif kind == "conv_bn":
            _, name, cc, bc = item
            if name.endswith("_short"):
                d_in = pending_short
            else:
                d_in = d
            dz, dgam, dbet = bn_bwd(d_in, net["bn"][name], bc)
            g["gamma"][name], g["beta"][name] = dgam, dbet
            dx, dw = conv_bwd(dz, net["conv"][name], cc, name != "conv1", net.get("pool"), name)
            g["conv"][name] = dw
            if name.endswith("_short"):
                skip = dx
            else:
                d = dx
        elif kind == "short_begin":
            # the shortcut conv came after conv2 on the tape; continue with conv2's gradient
            d = pending_short
        elif kind == "block_in":
            d = d + skip
            skip = None
    return g


def flat_params(net):
    """(key, array, decay) for the optimiser: weight decay on conv and dense weights only."""
    out = [(("conv", n), net["conv"][n], True) for n in net["conv"]]
    out += [(("gamma", n), net["bn"][n]["gamma"], False) for n in net["bn"]]
    out += [(("beta", n), net["bn"][n]["beta"], False) for n in net["bn"]]
    out += [(("fc_w",), net["fc_w"], True), (("fc_b",), net["fc_b"], False)]
    return out


def grad_of(g, key):
    """The gradient of a `flat_params` key."""
    return g[key[0]] if len(key) == 1 else g[key[0]][key[1]]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def to_nhwc(raw):
    """Raw uint8 [N, 1024] (32x32, already zero-padded) -> [N, 32, 32, 1] float32 in [0, 1]."""
    return (raw.reshape(len(raw), 32, 32, 1).astype(np.float32) / np.float32(255.0))


def range_penalty(cfg):
    """Gradient of lam/N * sum(max(|z| - bound, 0)^2) over each pre-activation (0 if lam == 0)."""
    lam, bound = cfg.get("range_lam", 0.0), cfg.get("range_bound", 0.0)

    def pen(_name, z):
        if lam == 0.0:
            return 0.0
        over = np.maximum(np.abs(z) - np.float32(bound), 0)
        return np.float32(2.0 * lam / z.shape[0]) * over * np.sign(z)

    return pen


def train_net(xtr, ytr, cfg, rng, shift_augment, softmax_xent, log=print):
    """SGD with momentum, cosine learning rate, weight decay and grad-norm clipping."""
    net = init_net(rng, cfg.get("poly_init"))
    net["pool"] = {}
    params = flat_params(net)
    mom = {key: np.zeros_like(arr) for key, arr, _ in params}
    amom = {name: np.zeros(3) for name in net["act"] if net["act"][name] is not None}
    pen = range_penalty(cfg)
    n, bs = len(xtr), cfg["batch"]
    steps = n // bs  # drop the ragged last batch: batch-norm statistics stay comparable
    total, step = cfg["epochs"] * steps, 0
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(n)
        losses, correct = [], 0
        for s in range(steps):
            idx = order[s * bs : (s + 1) * bs]
            xb = to_nhwc(shift_augment(xtr[idx], [1, 32, 32], cfg["shift"], rng))
            logits, tape, _ = net_forward(net, xb, training=True)
            loss, dlog = softmax_xent(logits.astype(np.float64), ytr[idx], cfg["smooth"])
            correct += int((logits.argmax(axis=1) == ytr[idx]).sum())
            g = net_backward(net, tape, dlog.astype(np.float32), pen)
            gl = [grad_of(g, key) for key, _, _ in params]
            sq = sum(float((x.astype(np.float64) ** 2).sum()) for x in gl)
            sq += sum(float((v ** 2).sum()) for v in g["act"].values())
            clip = min(1.0, cfg["clip"] / (math.sqrt(sq) + 1e-12))
            lr = cfg["lr"] * 0.5 * (1.0 + math.cos(math.pi * step / total))
            step += 1
            for (key, arr, decay), gr in zip(params, gl):
                upd = gr * np.float32(clip)
                if decay:
                    upd = upd + np.float32(cfg["wd"]) * arr
                mom[key] *= np.float32(0.9)
                mom[key] += upd
                arr -= np.float32(lr) * mom[key]
            for name, dc in g["act"].items():
                amom[name] = 0.9 * amom[name] + dc * clip
                net["act"][name] -= lr * cfg["act_lr"] * amom[name]
            losses.append(loss)
        net["pool"] = {}
        log(f"  epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  "
            f"train acc (augmented, batch stats) {correct / (steps * bs):.4f}")
    return net


def eval_net(net, raw, chunk=100):
    """Logits and max |pre-activation| per activation, batch-norm in inference mode (float32)."""
    logits, peaks = [], {}
    for s in range(0, len(raw), chunk):
        lg, _, pre = net_forward(net, to_nhwc(raw[s : s + chunk]), training=False)
        logits.append(lg)
        for k, z in pre.items():
            peaks[k] = max(peaks.get(k, 0.0), float(np.abs(z).max()))
    return np.concatenate(logits), peaks


# ---------------------------------------------------------------------------------------------
# Export: batch-norm folded into the convolutions, the graph as a hetier-model/1 layer list.
# ---------------------------------------------------------------------------------------------


def folded_params(net):
    """Every exported tensor (float64, PyTorch layouts) with batch-norm folded in."""
    out = {}
    for name, cin, cout, k, _ in conv_names():
        bn = net["bn"][name]
        scale = bn["gamma"].astype(np.float64) / np.sqrt(bn["var"].astype(np.float64) + BN_EPS)
        w = net["conv"][name].astype(np.float64).reshape(k, k, cin, cout).transpose(3, 2, 0, 1)
        out[f"{name}.weight"] = w * scale[:, None, None, None]
        out[f"{name}.bias"] = bn["beta"].astype(np.float64) - bn["mean"].astype(np.float64) * scale
    out["fc.weight"] = net["fc_w"].astype(np.float64).T.copy()
    out["fc.bias"] = net["fc_b"].astype(np.float64)
    return out


def describe(act_spec):
    """The exported layer list; act_spec(name) gives each activation's schema object."""

    def conv(name, cin, cout, k, stride, inputs=None):
        layer = {"name": name, "kind": "conv2d", "in_channels": cin, "out_channels": cout,
                 "kernel": [k, k], "stride": [stride, stride], "padding": [k // 2] * 4,
                 "groups": 1, "weight": f"{name}.weight", "bias": f"{name}.bias"}
        if inputs:
            layer["inputs"] = inputs
        return layer

    def act(name):
        return {"name": name, "kind": "activation", "activation": act_spec(name)}

    layers = [conv("conv1", 1, 16, 3, 1), act("act1")]
    h, cin = "act1", 16
    for si, (cout, s) in enumerate(STAGES, start=1):
        for bi in range(1, BLOCKS + 1):
            p, st = f"s{si}b{bi}", (s if bi == 1 else 1)
            layers += [conv(f"{p}_conv1", cin, cout, 3, st, [h]), act(f"{p}_act1"),
                       conv(f"{p}_conv2", cout, cout, 3, 1)]
            short = h
            if st != 1 or cin != cout:
                layers.append(conv(f"{p}_short", cin, cout, 1, st, [h]))
                short = f"{p}_short"
            layers += [{"name": f"{p}_add", "kind": "add", "inputs": [f"{p}_conv2", short]},
                       act(f"{p}_act2")]
            h, cin = f"{p}_act2", cout
    layers += [{"name": "pool", "kind": "avgpool", "kernel": [8, 8], "stride": [8, 8],
                "padding": [0, 0, 0, 0]},
               {"name": "flatten", "kind": "flatten"},
               {"name": "fc", "kind": "dense", "in_features": 64, "out_features": 10,
                "weight": "fc.weight", "bias": "fc.bias"}]
    return layers


def train_and_fold(cfg, xtr, ytr, xte, yte, rng, shift_augment, softmax_xent):
    """Train, fold batch-norm and describe the graph: (layers, float64 tensors, extra training
    fields, extra metrics). The ReLU variant's ranges come from the exact-ReLU network's
    pre-activation maxima over the train split (times `relu_margin`)."""
    t0 = time.time()
    net = train_net(xtr, ytr, cfg, rng, shift_augment, softmax_xent)
    seconds = time.time() - t0
    training = {"optimizer": "SGD momentum 0.9, cosine lr decay, grad-norm clip, L2 on conv and "
                             "dense weights, batch-norm (folded at export)",
                "range_penalty": "range_lam / batch * sum(max(|z| - range_bound, 0)^2) over "
                                 "every pre-activation z"}
    print(f"  trained in {seconds:.0f} s")
    metrics = {}
    if cfg.get("poly_init") is None:
        tr_logits, peaks = eval_net(net, xtr)
        te_logits, te_peaks = eval_net(net, xte)
        metrics = {"train_accuracy_exact_relu": float((tr_logits.argmax(axis=1) == ytr).mean()),
                   "test_accuracy_exact_relu": float((te_logits.argmax(axis=1) == yte).mean())}
        ranges = {k: math.ceil(v * cfg["relu_margin"] * 4) / 4 for k, v in peaks.items()}
        print(f"  exact ReLU: test acc {metrics['test_accuracy_exact_relu']:.4f}; max |pre-act| "
              f"train {max(peaks.values()):.3f}, test {max(te_peaks.values()):.3f}")
        training["relu_ranges"] = ("each ReLU's range [-R, R]: R = its max |pre-activation| over "
                                   "the train split (exact ReLU) times relu_margin, rounded up "
                                   "to a multiple of 0.25")

        def act_spec(name):
            r = ranges[name]
            return {"type": "relu", "range": [-r, r], "degree": cfg["relu_degree"]}
    else:
        def act_spec(name):
            return {"type": "poly", "coeffs": [float(c) for c in net["act"][name]]}
    return describe(act_spec), folded_params(net), training, metrics
