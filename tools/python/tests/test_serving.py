"""hetier.Server on the serving API: requests from several Python threads run at once over one
store, each checked against the plaintext model (onnxruntime)."""

import threading

import numpy as np

import fixtures
import hetier
from conftest import ort_run

# Small, NOT secure parameters (log N = 12), explicitly opted into, keep the suite quick.
FAST = dict(insecure_test_params=True)


def test_concurrent_requests_from_threads_each_agree_with_the_plaintext_model(save, tmp_path):
    m = fixtures.small_cnn()
    model = hetier.load(save(m), **FAST)
    client = hetier.Client(model)
    server = hetier.Server(model, pool=tmp_path / "pool", dram_budget="64MiB", policy="planned")
    server.load_keys(client.evaluation_keys())
    k = 4
    xs = np.random.default_rng(11).uniform(-1, 1, (k, 1, 8, 8)).astype(np.float32)
    cts = [client.encrypt(x) for x in xs]
    start = threading.Barrier(k)
    outs, failures = [None] * k, []

    def request(i):
        try:
            start.wait()
            outs[i] = server.infer(cts[i])
        except Exception as e:  # reported below, with the others
            failures.append((i, e))

    threads = [threading.Thread(target=request, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "a request hung"
    assert not failures, failures
    for x, out in zip(xs, outs):
        want = ort_run(m, x)
        y = client.decrypt(out)
        assert np.max(np.abs(y - want)) < 1e-3, (y, want)
    s = server.stats()
    assert (s["served"], s["failed"]) == (k, 0), s
    # Only requests that released the GIL while they ran can have been admitted together.
    assert s["peak_running_bytes"] > s["request_bytes"], f"no two requests ran at once: {s}"
    assert s["running_bytes"] == 0, s


def test_requests_before_keys_and_after_keys_of_another_set(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), **FAST)
    client = hetier.Client(model)
    server = hetier.Server(model, pool=tmp_path / "pool")
    try:
        server.stats()
        raise AssertionError("stats before keys")
    except hetier.KeySetError as e:
        assert "load_keys" in str(e)
    server.load_keys(client.evaluation_keys())
    x = np.random.default_rng(3).uniform(-1, 1, 16).astype(np.float32)
    want = ort_run(fixtures.mlp(), x)
    assert np.max(np.abs(client.decrypt(server.infer(client.encrypt(x))) - want)) < 1e-3
    # A second client's keys: the server now serves that key set.
    other = hetier.Client(model)
    server.load_keys(other.evaluation_keys())
    assert np.max(np.abs(other.decrypt(server.infer(other.encrypt(x))) - want)) < 1e-3
    assert server.restore_keys(other.evaluation_keys()) == 0
