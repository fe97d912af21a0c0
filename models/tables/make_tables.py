#!/usr/bin/env python3
"""Build the full-size layer tables that hetier's plan mode loads (issue 6, section 6).

    python3 models/tables/make_tables.py          # writes models/tables/*.json, asserts totals
    python3 models/tables/make_tables.py --check  # only rebuilds in memory and compares to the files

Standard library only. The architectures are built from their published definitions:
  * MobileNetV2 1.0-224 (Sandler et al. 2018, Table 2): stem conv 3x3/2 to 32, 17 inverted-residual
    blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
    (6,320,1,1), conv 1x1 to 1280, global average pool, FC 1280 -> 1000. ReLU6 after every
    expansion and depthwise conv, linear bottleneck (no activation after the projection).
  * ResNet-50 v1.5 (He et al. 2016, with the stride-2 of each downsampling bottleneck on the 3x3
    conv, as in the torchvision / NVIDIA "v1.5" model): stem conv 7x7/2 to 64, max pool 3x3/2,
    stages of (3, 4, 6, 3) bottlenecks with widths 64/128/256/512 and expansion 4, a 1x1 projection
    shortcut in the first block of each stage, global average pool, FC 2048 -> 1000.
  * ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2): conv 3x3 to 16, three stages of 3 basic
    blocks with 16/32/64 channels, option-A shortcuts (identity; on downsampling, stride-2 subsample
    and zero-pad channels -- no parameters, no convolution), global average pool, FC 64 -> 10.

What is counted (per row; totals are sums over rows):
  weights  conv kernels and FC matrices: k_h*k_w*(c_in/groups)*c_out, or c_in*c_out.
  bias     the FC bias (the published convs have no bias of their own: batch-norm follows them).
  bn       the 2*c_out trainable batch-norm parameters (gamma, beta) after each conv; running
           mean/variance are buffers, not parameters.
  params   weights + bias + bn, i.e. the trainable parameters of the published (unfolded) model.
  folded_params  what the encrypted model stores once batch-norm is folded into the conv:
           weights + one bias per conv output channel (+ the FC bias).
  macs     multiply-adds of the conv/FC itself: out_h*out_w*c_out * k_h*k_w*(c_in/groups) for a
           conv, c_in*c_out for FC. Pools, adds, batch-norm and activations count 0 MACs (they
           are listed with their own element counts in `elems`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = "hetier-layer-table/1"


class Net:
    """Accumulates rows while tracking the current tensor (name, H, W, C)."""

    def __init__(self, name: str, h: int, w: int, c: int):
        self.name = name
        self.rows: list[dict] = []
        self.cur = ("input", h, w, c)

    def _row(self, row: dict) -> dict:
        self.rows.append(row)
        self.cur = (row["name"], *row["output"])
        return row

    def conv(self, name, c_out, k, stride, groups=1, act=None, src=None, pad=None):
        src = src or self.cur
        inp, h, w, c_in = src
        pad = (k - 1) // 2 if pad is None else pad
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        weights = k * k * (c_in // groups) * c_out
        depthwise = groups > 1 and groups == c_in == c_out
        return self._row({
            "name": name, "kind": "dwconv" if depthwise else "conv", "inputs": [inp],
            "input": [h, w, c_in], "output": [oh, ow, c_out],
            "kernel": [k, k], "stride": stride, "padding": pad, "groups": groups,
            "activation": act,
            "weights": weights, "bias": 0, "bn": 2 * c_out,
            "params": weights + 2 * c_out, "folded_params": weights + c_out,
            "macs": oh * ow * c_out * k * k * (c_in // groups),
            "elems": oh * ow * c_out,
        })

    def pool(self, name, op, k, stride, pad=0, global_=False):
        inp, h, w, c = self.cur
        if global_:
            k, stride, pad, oh, ow = h, 1, 0, 1, 1
        else:
            oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._row({
            "name": name, "kind": "pool", "op": op, "inputs": [inp],
            "input": [h, w, c], "output": [oh, ow, c],
            "kernel": [k, k], "stride": stride, "padding": pad, "groups": c, "activation": None,
            "weights": 0, "bias": 0, "bn": 0, "params": 0, "folded_params": 0, "macs": 0,
            "elems": oh * ow * c,
        })

    def add(self, name, a, b, act=None, shortcut=None):
        if a[1:] != b[1:]:
            raise ValueError(f"{name}: add of {a} and {b}")
        _, h, w, c = a
        return self._row({
            "name": name, "kind": "add", "inputs": [a[0], b[0]],
            "input": [h, w, c], "output": [h, w, c],
            "kernel": None, "stride": 1, "padding": 0, "groups": 1, "activation": act,
            "shortcut": shortcut,
            "weights": 0, "bias": 0, "bn": 0, "params": 0, "folded_params": 0, "macs": 0,
            "elems": h * w * c,
        })

    def fc(self, name, c_out):
        inp, h, w, c_in = self.cur
        if (h, w) != (1, 1):
            raise ValueError(f"{name}: FC after a {h}x{w} map")
        return self._row({
            "name": name, "kind": "fc", "inputs": [inp],
            "input": [1, 1, c_in], "output": [1, 1, c_out],
            "kernel": None, "stride": 1, "padding": 0, "groups": 1, "activation": None,
            "weights": c_in * c_out, "bias": c_out, "bn": 0, "params": c_in * c_out + c_out,
            "folded_params": c_in * c_out + c_out,
            "macs": c_in * c_out, "elems": c_out,
        })


def mobilenet_v2() -> Net:
    net = Net("mobilenet_v2_1.0_224", 224, 224, 3)
    net.conv("stem", 32, 3, 2, act="relu6")
    block = 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            block += 1
            src = net.cur
            stride = s if i == 0 else 1
            hidden = src[3] * t
            p = f"block{block}"
            if t != 1:
                net.conv(f"{p}.expand", hidden, 1, 1, act="relu6")
            net.conv(f"{p}.dw", hidden, 3, stride, groups=hidden, act="relu6")
            net.conv(f"{p}.project", c, 1, 1, act=None)
            if stride == 1 and src[3] == c:
                net.add(f"{p}.add", net.cur, src)
    net.conv("head", 1280, 1, 1, act="relu6")
    net.pool("avgpool", "avg", 0, 1, global_=True)
    net.fc("fc", 1000)
    return net


def resnet50_v15() -> Net:
    net = Net("resnet50_v1.5", 224, 224, 3)
    net.conv("stem", 64, 7, 2, act="relu")
    net.pool("maxpool", "max", 3, 2, pad=1)
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        for i in range(blocks):
            src = net.cur
            stride = 2 if i == 0 and stage > 1 else 1
            p = f"layer{stage}.{i}"
            net.conv(f"{p}.conv1", width, 1, 1, act="relu")
            net.conv(f"{p}.conv2", width, 3, stride, act="relu")  # v1.5: stride on the 3x3
            main = net.conv(f"{p}.conv3", width * 4, 1, 1, act=None)
            short = src
            if i == 0:
                proj = net.conv(f"{p}.downsample", width * 4, 1, stride, src=src, pad=0)
                short = (proj["name"], *proj["output"])
            net.add(f"{p}.add", (main["name"], *main["output"]), short, act="relu")
    net.pool("avgpool", "avg", 0, 1, global_=True)
    net.fc("fc", 1000)
    return net


def resnet20_cifar() -> Net:
    net = Net("resnet20_cifar10", 32, 32, 3)
    net.conv("stem", 16, 3, 1, act="relu")
    for stage, width in enumerate([16, 32, 64], start=1):
        for i in range(3):
            src = net.cur
            stride = 2 if i == 0 and stage > 1 else 1
            p = f"layer{stage}.{i}"
            net.conv(f"{p}.conv1", width, 3, stride, act="relu")
            main = net.conv(f"{p}.conv2", width, 3, 1, act=None)
            # Option A: the shortcut is the block input itself, subsampled and zero-padded in
            # channels when the shape changes (no weights, no MACs); record the shape it has then.
            short = src if stride == 1 else (src[0], src[1] // 2, src[2] // 2, width)
            how = None if stride == 1 else "option_a: subsample 2x2, zero-pad channels"
            net.add(f"{p}.add", (main["name"], *main["output"]), short, act="relu", shortcut=how)
    net.pool("avgpool", "avg", 0, 1, global_=True)
    net.fc("fc", 10)
    return net


def totals(net: Net) -> dict:
    rows = net.rows
    by_kind = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    s = {k: sum(r[k] for r in rows)
         for k in ("weights", "bias", "bn", "params", "folded_params", "macs")}
    s["convolutions"] = by_kind.get("conv", 0) + by_kind.get("dwconv", 0)
    s["rows_by_kind"] = by_kind
    return s


# Published totals and what each is checked against (see the module docstring for the terms).
EXPECT = {
    "mobilenet_v2_1.0_224": {
        "convolutions": 52, "fc": 1, "blocks": 17,
        "macs": (300.8e6, 0.05e6, "conv + FC multiply-adds"),
        "weights": (3.47e6, 0.005e6, "conv + FC weights, no biases/BN"),
    },
    "resnet50_v1.5": {
        "convolutions": 53, "fc": 1, "projections": 4,
        "macs": (4.09e9, 0.005e9, "conv + FC multiply-adds"),
        "params": (25.56e6, 0.005e6, "all trainable parameters incl. BN and FC bias"),
    },
    "resnet20_cifar10": {
        "convolutions": 19, "fc": 1,
        "macs": (40.6e6, 0.05e6, "conv + FC multiply-adds"),
        "params": (0.27e6, 0.005e6, "all trainable parameters incl. BN and FC bias"),
    },
}


# The exact totals these definitions give (params match the torchvision MobileNetV2 / ResNet-50
# and the usual CIFAR ResNet-20 counts); asserted so that any edit to a definition is noticed.
EXACT = {
    "mobilenet_v2_1.0_224": {"macs": 300_774_272, "weights": 3_469_760, "params": 3_504_872},
    "resnet50_v1.5": {"macs": 4_089_184_256, "weights": 25_502_912, "params": 25_557_032},
    "resnet20_cifar10": {"macs": 40_551_040, "weights": 268_336, "params": 269_722},
}


def check_wiring(net: Net) -> list[str]:
    """Every row reads values that exist earlier and whose shape is the row's input shape."""
    shapes = {"input": net.rows[0]["input"]}
    errs = []
    for r in net.rows:
        for i, src in enumerate(r["inputs"]):
            want = r["input"]
            got = shapes.get(src)
            if got is None:
                errs.append(f"{r['name']}: reads unknown {src!r}")
            elif got != want and not (i == 1 and r.get("shortcut")):
                errs.append(f"{r['name']}: input {want} but {src!r} gives {got}")
        shapes[r["name"]] = r["output"]
    return errs


def check_published(net: Net, t: dict) -> list[str]:
    e = EXPECT[net.name]
    errs = [f"{k} {t[k]} != exact {v}" for k, v in EXACT[net.name].items() if t[k] != v]
    errs += check_wiring(net)
    if t["convolutions"] != e["convolutions"]:
        errs.append(f"convolutions {t['convolutions']} != {e['convolutions']}")
    if t["rows_by_kind"].get("fc", 0) != e["fc"]:
        errs.append(f"fc layers {t['rows_by_kind'].get('fc', 0)} != {e['fc']}")
    if "blocks" in e:
        n = len({r["name"].split(".")[0] for r in net.rows if r["name"].startswith("block")})
        if n != e["blocks"]:
            errs.append(f"blocks {n} != {e['blocks']}")
    if "projections" in e:
        n = sum(1 for r in net.rows if r["name"].endswith("downsample"))
        if n != e["projections"]:
            errs.append(f"projections {n} != {e['projections']}")
    for key in ("macs", "weights", "params"):
        if key in e:
            want, tol, _ = e[key]
            if abs(t[key] - want) > tol:
                errs.append(f"{key} {t[key]} not within {tol:g} of {want:g}")
    return errs


def document(net: Net) -> dict:
    t = totals(net)
    e = EXPECT[net.name]
    published = {k: {"value": v[0], "tolerance": v[1], "counted_as": v[2]}
                 for k, v in e.items() if isinstance(v, tuple)}
    return {
        "schema": SCHEMA,
        "model": net.name,
        "layout": "input/output are [H, W, C]; kernel [kh, kw]; stride and padding symmetric",
        "counting": "weights: conv kernels + FC matrices; bias: FC bias (convs have none); bn: "
                    "2 per conv output channel (gamma, beta); params = weights + bias + bn (the "
                    "unfolded model's trainable parameters); folded_params = weights + one bias "
                    "per conv output channel + FC bias (batch-norm folded); macs: conv/FC "
                    "multiply-adds only (pool, add, BN, activation count 0); elems: output "
                    "elements of the row",
        "totals": {k: v for k, v in t.items()},
        "published": published,
        "layers": net.rows,
    }


def to_json(doc: dict) -> str:
    """Pretty header, then one layer per line so diffs and reviews stay readable."""
    head = {k: v for k, v in doc.items() if k != "layers"}
    body = json.dumps(head, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r) for r in doc["layers"])
    return f'{body},\n "layers": [\n  {rows}\n ]\n}}\n'


BUILDERS = [mobilenet_v2, resnet50_v15, resnet20_cifar]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the files, write nothing")
    args = ap.parse_args()
    ok = True
    for build in BUILDERS:
        net = build()
        doc = document(net)
        t = doc["totals"]
        errs = check_published(net, t)
        print(f"{net.name}: {t['convolutions']} convs, rows {t['rows_by_kind']}, "
              f"macs {t['macs']:,}, weights {t['weights']:,}, params {t['params']:,}, "
              f"folded_params {t['folded_params']:,}"
              + ("" if not errs else "  FAIL: " + "; ".join(errs)))
        ok &= not errs
        text = to_json(doc)
        path = HERE / f"{net.name}.json"
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"  {path.name}: {'up to date' if same else 'DIFFERS'}")
            ok &= same
        else:
            path.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
