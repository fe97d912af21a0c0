"""`hetier import` and `hetier run --model-file` on ONNX files (through `cargo run`)."""

import json
import pathlib
import subprocess

import numpy as np

import fixtures
from conftest import ort_run

ROOT = pathlib.Path(__file__).resolve().parents[3]


def hetier(*args):
    r = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "hetier-cli", "--", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "RUST_BACKTRACE": "0"},
    )
    return r


def test_import_writes_model_files_and_reports_depth_and_keys(save, tmp_path):
    path = save(fixtures.small_cnn())
    r = hetier("--json", "import", path, "-o", tmp_path / "out", "--insecure-test-params")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [l["kind"] for l in rep["layers"]] == ["conv2d", "activation", "add", "avgpool", "flatten", "dense"]
    assert rep["depth"] == 4 and rep["bootstrapping_needed"] is False
    assert rep["keys"]["relinearisation"] and rep["keys"]["rotation_steps"]
    assert (tmp_path / "out" / "small_cnn.json").exists() and (tmp_path / "out" / "small_cnn.safetensors").exists()
    r = hetier("import", save(fixtures.unsupported(), "u.onnx"), "-o", tmp_path / "u")
    assert r.returncode != 0 and "probabilities (Softmax)" in r.stderr


def test_run_model_file_outputs_match_reference_and_onnxruntime(save, tmp_path):
    m = fixtures.mlp()
    path = save(m)
    xs = np.random.default_rng(5).uniform(-1, 1, (2, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    r = hetier("--json", "run", "--model-file", path, "--inputs", tmp_path / "x.npy", "--insecure-test-params")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["inputs"] == 2 and not rep["random_inputs"]
    for x, y, ref in zip(xs, rep["outputs"], rep["reference"]):
        assert np.max(np.abs(np.array(y) - ref)) < 1e-3
        assert np.max(np.abs(np.array(y) - ort_run(m, x))) < 1e-3
    # Random inputs, from the hetier-model files the import wrote.
    hetier("import", path, "-o", tmp_path / "out")
    r = hetier("--json", "run", "--model-file", tmp_path / "out" / "mlp.json", "--images", "1", "--insecure-test-params")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["random_inputs"] and rep["max_abs_error"] < 1e-3
