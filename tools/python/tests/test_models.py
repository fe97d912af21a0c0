"""Encrypted inference of ONNX models from Python, checked against onnxruntime."""

import numpy as np
import pytest

import fixtures
import hetier
from conftest import ort_run

# Small, NOT secure parameters (log N = 12), explicitly opted into, keep the suite quick.
FAST = dict(insecure_test_params=True)


def run_encrypted(model_path, xs, tmp_path, **load_kw):
    model = hetier.load(model_path, **FAST, **load_kw)
    client = hetier.Client(model)
    server = hetier.Server(model, pool=tmp_path / "pool", dram_budget="64MiB", policy="planned")
    server.load_keys(client.evaluation_keys())
    ys = [client.decrypt(server.infer(client.encrypt(x))) for x in xs]
    return model, server, ys


def test_mlp_matches_onnxruntime(save, tmp_path):
    m = fixtures.mlp()
    xs = np.random.default_rng(7).uniform(-1, 1, (2, 16)).astype(np.float32)
    model, server, ys = run_encrypted(save(m), xs, tmp_path)
    assert [l["kind"] for l in model.layers()] == ["dense", "activation", "dense"]
    for x, y in zip(xs, ys):
        want = ort_run(m, x)
        assert y.shape == want.shape == (4,)
        assert np.max(np.abs(y - want)) < 1e-3, (y, want)
    rep = server.last_report()
    assert rep["seconds"] > 0 and rep["steps"] > 0
    assert [l["layer"] for l in rep["layers"]] == ["fc1", "square", "fc2"]
    assert rep["dram_budget"] == 64 << 20 and rep["policy"] == "planned"
    assert rep["store_peak_dram"] <= rep["dram_budget"]


def test_cnn_with_batchnorm_residual_and_pooling_matches_onnxruntime(save, tmp_path):
    m = fixtures.small_cnn()
    xs = np.random.default_rng(8).uniform(-1, 1, (2, 1, 8, 8)).astype(np.float32)
    model, _, ys = run_encrypted(save(m), xs, tmp_path)
    kinds = [l["kind"] for l in model.layers()]
    # The BatchNorm is folded into the convolution (its only reader).
    assert kinds == ["conv2d", "activation", "add", "avgpool", "flatten", "dense"], kinds
    for x, y in zip(xs, ys):
        want = ort_run(m, x)
        assert np.max(np.abs(y - want)) < 1e-3, (y, want)


def test_cryptonets_exported_to_onnx_matches_onnxruntime(save, tmp_path):
    m = fixtures.cryptonets()
    xs, labels = fixtures.cryptonets_images(2)
    model, _, ys = run_encrypted(save(m), xs, tmp_path)
    assert model.depth == 5
    for x, y, label in zip(xs, ys, labels):
        want = ort_run(m, x)
        assert np.max(np.abs(y - want)) < 1e-3, (y, want)
        assert int(np.argmax(y)) == int(np.argmax(want))
    assert [int(np.argmax(y)) for y in ys] == [int(v) for v in labels]


def test_relu_is_a_calibrated_polynomial(save, tmp_path):
    m = fixtures.relu_mlp()
    samples = np.random.default_rng(9).uniform(-1, 1, (32, 8))
    xs = samples[:2]
    model, _, ys = run_encrypted(save(m), xs, tmp_path, calibration=samples, act_degree=31)
    relu = [l for l in model.layers() if l.get("function") == "relu"][0]
    lo, hi = relu["range"]
    assert lo == -hi and 0 < hi < 10
    for x, y in zip(xs, ys):
        ref = model.reference(x)
        assert np.max(np.abs(y - ref)) < 1e-3
        # The polynomial is close to the real ReLU network on the calibrated range.
        assert np.max(np.abs(ref - ort_run(m, x))) < 0.1


def test_hetier_model_json_runs_from_python(tmp_path):
    model = hetier.load(fixtures.MODELS / "digits.json", **FAST)
    t = fixtures.read_safetensors(fixtures.MODELS / "digits.test.safetensors")
    client = hetier.Client(model)
    server = hetier.Server(model, pool=tmp_path / "pool")
    server.load_keys(client.evaluation_keys())
    raw = t["images"][0]
    y = client.decrypt(server.infer(client.encrypt(raw)))
    assert np.max(np.abs(y - t["logits"][0])) < 1e-3
