"""Every failure is a hetier.Error subclass with the Rust message."""

import numpy as np
import pytest

import fixtures
import hetier

FAST = dict(insecure_test_params=True)


def test_unsupported_operators_are_named(save):
    with pytest.raises(hetier.UnsupportedOperatorError) as e:
        hetier.load(save(fixtures.unsupported()))
    msg = str(e.value)
    assert "probabilities (Softmax)" in msg and "elementwise_max (Max)" in msg, msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, hetier.Error)


def test_corrupt_and_missing_files(save, tmp_path):
    good = save(fixtures.mlp()).read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(hetier.ModelError, match="malformed ONNX model"):
        hetier.load(bad)
    with pytest.raises(hetier.FileError) as e:
        hetier.load(tmp_path / "missing.onnx")
    assert isinstance(e.value, OSError)


def test_wrong_input_shape(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    client = hetier.Client(model)
    with pytest.raises(hetier.InputShapeError, match=r"does not fit the model's input shape \[16\]"):
        client.encrypt(np.zeros(15))
    with pytest.raises(ValueError):
        client.encrypt(np.zeros((2, 16)))
    assert len(client.encrypt(np.zeros((1, 16)))) > 0


def test_second_server_on_the_same_pool_is_refused(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    first = hetier.Server(model, pool=tmp_path / "pool")
    with pytest.raises(hetier.StoreError) as e:
        hetier.Server(model, pool=tmp_path / "pool")
    assert isinstance(e.value, OSError)
    del first


def test_keys_missing_wrong_or_garbled(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    client = hetier.Client(model)
    server = hetier.Server(model, pool=tmp_path / "pool")
    ct = client.encrypt(np.zeros(16))
    with pytest.raises(hetier.KeySetError, match="load_keys"):
        server.infer(ct)
    with pytest.raises(hetier.KeySetError, match="no evaluation key"):
        server.use_keys(client.key_set_id)
    keys = client.evaluation_keys()
    with pytest.raises(hetier.CorruptDataError):
        server.load_keys(keys[: len(keys) // 2])
    server.load_keys(keys)
    with pytest.raises(hetier.CorruptDataError):
        server.infer(ct[:100])
    with pytest.raises(hetier.KeySetError, match="no evaluation key"):
        server.use_keys(12345)
    # A key in blob format 3 (its seed expanded by a retired rule) must be made again.
    old = keys.replace(b"HTCK\x04\x00", b"HTCK\x03\x00", 1)
    assert old != keys
    with pytest.raises(hetier.KeySetError, match="regenerate"):
        hetier.Server(model, pool=tmp_path / "old").load_keys(old)
    other = hetier.load(save(fixtures.cryptonets(), "c.onnx"), **FAST)
    # Keys made for other parameters are refused, naming both parameter sets.
    if other.params()["id"] != model.params()["id"]:
        with pytest.raises(hetier.KeySetError, match="parameter"):
            server.load_keys(hetier.Client(other).evaluation_keys())


def test_bad_settings(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    with pytest.raises(hetier.ConfigError, match="policy"):
        hetier.Server(model, pool=tmp_path / "p1", policy="fifo")
    with pytest.raises(hetier.ConfigError, match="dram_budget"):
        hetier.Server(model, pool=tmp_path / "p2", dram_budget="lots")
    with pytest.raises(hetier.ModelError):
        hetier.load(save(fixtures.relu_mlp()))  # a Relu needs a range or calibration


def test_budget_too_small_is_a_store_error(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    with pytest.raises(hetier.StoreError, match="budget"):
        hetier.Server(model, pool=tmp_path / "pool", dram_budget="64KiB")


def test_corrupt_pool_is_a_store_error(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    client = hetier.Client(model)
    pool = tmp_path / "pool"
    server = hetier.Server(model, pool=pool)
    server.load_keys(client.evaluation_keys())
    del server
    (segment,) = [p for p in pool.iterdir() if p.suffix == ".hpool"]
    with open(segment, "r+b") as f:
        for offset in range(1 << 20, 8 << 20, 1 << 18):
            f.seek(offset)
            f.write(b"\xa5" * 64)
    with pytest.raises(hetier.StoreError, match="corrupt|checksum") as e:
        server = hetier.Server(model, pool=pool)
        server.use_keys(client.key_set_id)
        server.infer(client.encrypt(np.zeros(16)))
    assert isinstance(e.value, OSError)
