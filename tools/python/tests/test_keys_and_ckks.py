"""Keys persist across processes; the low-level ckks module against numpy."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fixtures
import hetier

SCRIPT = textwrap.dedent(
    """
    import sys, json, numpy as np, hetier
    model_path, pool, secret, step = sys.argv[1:5]
    model = hetier.load(model_path, insecure_test_params=True)
    if step == "first":
        client = hetier.Client(model)
        client.save(secret)
        server = hetier.Server(model, pool=pool)
        info = server.load_keys(client.evaluation_keys())
    else:
        client = hetier.Client.load(model, secret)
        server = hetier.Server(model, pool=pool)
        info = {"keys_found": server.use_keys(client.key_set_id)}
    x = np.linspace(-1, 1, 16)
    y = client.decrypt(server.infer(client.encrypt(x)))
    info["y"] = y.tolist()
    print(json.dumps(info))
    """
)


def test_keys_put_by_one_process_are_reused_by_the_next(save, tmp_path):
    path = save(fixtures.mlp())
    pool, secret = tmp_path / "pool", tmp_path / "client.key"
    outs = []
    for step in ["first", "second"]:
        r = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(path), str(pool), str(secret), step],
            capture_output=True,
            text=True,
            check=True,
        )
        outs.append(__import__("json").loads(r.stdout))
    first, second = outs
    assert first["keys_put"] >= 1 and first["keys_reused"] == 0
    assert second["keys_found"] == first["keys_put"]
    assert np.max(np.abs(np.array(first["y"]) - np.array(second["y"]))) < 1e-3
    assert (secret.stat().st_mode & 0o777) == 0o600


def test_ckks_operations_match_numpy():
    ctx = hetier.ckks.Context(log_n=12, depth=3, insecure=True)
    assert not ctx.secure and ctx.slots == 2048
    keys = ctx.keygen(rotations=[3])
    r = np.random.default_rng(4)
    a, b = r.uniform(-1, 1, ctx.slots), r.uniform(-1, 1, ctx.slots)
    ca, cb = keys.encrypt(a), keys.encrypt(b)
    assert np.max(np.abs(keys.decrypt(ctx.add(ca, cb)) - (a + b))) < 1e-6
    prod = ctx.rescale(ctx.multiply(ca, cb, keys))
    assert prod.level == ca.level - 1
    assert np.max(np.abs(keys.decrypt(prod) - a * b)) < 1e-5
    assert np.max(np.abs(keys.decrypt(ctx.rotate(ca, 3, keys)) - np.roll(a, -3))) < 1e-5
    back = ctx.ciphertext_from_bytes(ctx.ciphertext_to_bytes(ca))
    assert np.max(np.abs(keys.decrypt(back) - a)) < 1e-6
    with pytest.raises(hetier.KeySetError):
        ctx.rotate(ca, 1, keys)
    with pytest.raises(hetier.CryptoError):
        ctx.add(ca, prod)  # different levels
    with pytest.raises(hetier.ConfigError, match="insecure|bound|128"):
        hetier.ckks.Context(log_n=12, depth=3)


def test_plan_predicts_time_per_policy_and_budget(save, tmp_path):
    model = hetier.load(save(fixtures.mlp()), insecure_test_params=True)
    p = model.plan(budgets=[0.25, 1.0], policies=["lru", "planned"], pm_dir=tmp_path)
    assert p["peak_live_bytes"] > 0
    rows = p["predictions"]
    assert [(r["fraction"], r["policy"]) for r in rows] == [
        (0.25, "lru"), (0.25, "planned"), (1.0, "lru"), (1.0, "planned")
    ]
    assert all(r["predicted_seconds"] > 0 for r in rows)


def test_the_gil_is_released_while_computing(save):
    import threading
    import time

    model = hetier.load(save(fixtures.cryptonets()), insecure_test_params=True)
    client = hetier.Client(model)
    span = {}

    def work():
        span["start"] = time.perf_counter()
        client.evaluation_keys()  # ~50 keys
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    t.start()
    ticks = []
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    margin = 0.05
    inside = [x for x in ticks if span["start"] + margin < x < span["end"] - margin]
    assert span["end"] - span["start"] > 4 * margin
    # Holding the GIL for the call would keep this thread from running strictly inside it.
    assert len(inside) > 100, (len(inside), span["end"] - span["start"])
