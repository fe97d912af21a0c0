"""OpenFHE side of the hetier CKKS comparison (PyPI wheel `openfhe`, CKKSRNS, HYBRID).

Same parameter sets as the issue (scale 2^40, dnum 3, depth 2/5/14/30 for log N 13/14/15/16,
OpenFHE's own first-prime size 50/60/60/60, HEStd_128_classic), FIXEDMANUAL scaling so rescale
is an explicit operation, all operations at the top level. Run with OMP_NUM_THREADS=1.

    OMP_NUM_THREADS=1 venv/bin/python bench_openfhe.py --logn 13,14,15,16 --out results_openfhe.json
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import openfhe as fhe

DEPTH_FIRST = {13: (2, 50), 14: (5, 60), 15: (14, 60), 16: (30, 60)}
HOISTED = 16


def timed(fn, setup=None, min_runs=5, min_total=1.0, budget=20.0):
    """Median / min wall time in ms: >= min_runs runs and >= min_total s (fewer if slow)."""
    if setup:
        setup()
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    floor = 2 if first * min_runs > budget else min_runs
    times = []
    while True:
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        total = sum(times)
        if len(times) >= 200 or (len(times) >= floor and (total >= min_total or total >= budget)):
            break
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "reps": len(times)}


def context(log_n):
    depth, first = DEPTH_FIRST[log_n]
    n = 1 << log_n
    p = fhe.CCParamsCKKSRNS()
    p.SetRingDim(n)
    p.SetMultiplicativeDepth(depth)
    p.SetScalingModSize(40)
    p.SetFirstModSize(first)
    p.SetScalingTechnique(fhe.FIXEDMANUAL)
    p.SetKeySwitchTechnique(fhe.HYBRID)
    p.SetNumLargeDigits(3)
    p.SetSecurityLevel(fhe.HEStd_128_classic)
    p.SetBatchSize(n // 2)
    cc = fhe.GenCryptoContext(p)
    for feature in (fhe.PKE, fhe.KEYSWITCH, fhe.LEVELEDSHE):
        cc.Enable(feature)
    return cc, depth, first


def run(log_n):
    cc, depth, first = context(log_n)
    n = 1 << log_n
    slots = n // 2
    rng = np.random.default_rng(7)
    v1 = rng.uniform(-1, 1, slots)
    v2 = rng.uniform(-1, 1, slots)
    keys = cc.KeyGen()
    sk, pk = keys.secretKey, keys.publicKey
    cc.EvalMultKeyGen(sk)
    steps = list(range(1, HOISTED + 1))
    cc.EvalRotateKeyGen(sk, steps)
    pt1 = cc.MakeCKKSPackedPlaintext(v1)
    pt2 = cc.MakeCKKSPackedPlaintext(v2)
    ct1 = cc.Encrypt(pk, pt1)
    ct2 = cc.Encrypt(pk, pt2)
    prod = cc.EvalMult(ct1, ct2)
    m = 2 * n
    t = {}
    t["encode"] = timed(lambda: cc.MakeCKKSPackedPlaintext(v1))
    t["encrypt_pk"] = timed(lambda: cc.Encrypt(pk, pt1))
    t["add"] = timed(lambda: cc.EvalAdd(ct1, ct2))
    t["mul_plain"] = timed(lambda: cc.EvalMult(ct1, pt2))
    t["mul_relin"] = timed(lambda: cc.EvalMult(ct1, ct2))
    t["rescale"] = timed(lambda: cc.Rescale(prod))
    t["rotate"] = timed(lambda: cc.EvalRotate(ct1, 1))
    t["rotate_16_plain"] = timed(lambda: [cc.EvalRotate(ct1, s) for s in steps])

    def hoisted():
        pre = cc.EvalFastRotationPrecompute(ct1)
        return [cc.EvalFastRotation(ct1, s, m, pre) for s in steps]

    try:
        t["rotate_16_hoisted"] = timed(hoisted)
    except Exception as e:  # the binding may lack the fast-rotation API
        print(f"[openfhe] hoisted rotations unavailable: {e}", file=sys.stderr)

    # A 16-diagonal linear transform sum_j d_j * R^j(x), j = 1..16: OpenFHE's hoisted rotations
    # (one precompute, a ModDown per rotation), a product with each diagonal, the sum.
    diags = [cc.MakeCKKSPackedPlaintext(rng.uniform(-1, 1, slots)) for _ in steps]

    def lt16(rotate):
        acc = None
        for s, d in zip(steps, diags):
            term = cc.EvalMult(rotate(s), d)
            acc = term if acc is None else cc.EvalAdd(acc, term)
        return acc

    def lt16_fast():
        pre = cc.EvalFastRotationPrecompute(ct1)
        return lt16(lambda s: cc.EvalFastRotation(ct1, s, m, pre))

    t["lt16_plain"] = timed(lambda: lt16(lambda s: cc.EvalRotate(ct1, s)))
    try:
        t["lt16_fast_rotation"] = timed(lt16_fast)
    except Exception as e:
        print(f"[openfhe] fast-rotation transform unavailable: {e}", file=sys.stderr)

    # Key generation of one rotation key; the key store is cleared (untimed) before each run,
    # since OpenFHE skips keys that already exist.
    t["keygen_rotation_key"] = timed(lambda: cc.EvalRotateKeyGen(sk, [1]),
                                     setup=cc.ClearEvalAutomorphismKeys, min_runs=3)
    cc.ClearEvalAutomorphismKeys()
    cc.EvalRotateKeyGen(sk, [1])
    tag = sk.GetKeyTag()
    sizes = {
        "rotation_key_one": len(fhe.SerializeEvalAutomorphismKeyString(fhe.BINARY, tag)),
        "relin_key": len(fhe.SerializeEvalMultKeyString(fhe.BINARY, tag)),
        "ciphertext_pk_fresh": len(fhe.Serialize(ct1, fhe.BINARY)),
    }

    def dec(c):
        p = cc.Decrypt(sk, c)
        p.SetLength(slots)
        return np.array(p.GetRealPackedValue())

    errs = {
        "encdec": float(np.max(np.abs(dec(ct1) - v1))),
        "mul_relin_rescale": float(np.max(np.abs(dec(cc.Rescale(prod)) - v1 * v2))),
        "rotate": float(np.max(np.abs(dec(cc.EvalRotate(ct1, 1)) - np.roll(v1, -1)))),
    }
    cc.ClearEvalAutomorphismKeys()
    fhe.ClearEvalMultKeys()
    return {"lib": "OpenFHE " + fhe.__version__, "log_n": log_n, "N": n, "depth": depth,
            "first_mod_bits": first, "dnum": 3, "timings_ms": t, "sizes": sizes,
            "check_max_abs_err": errs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logn", default="13,14,15,16")
    ap.add_argument("--out", default="results_openfhe.json")
    a = ap.parse_args()
    out = []
    for log_n in [int(x) for x in a.logn.split(",")]:
        print(f"[openfhe] log N = {log_n}", file=sys.stderr, flush=True)
        rec = run(log_n)
        for k, v in rec["timings_ms"].items():
            print(f"[openfhe] log N = {log_n}: {k:22} {v['median_ms']:10.3f} ms", file=sys.stderr)
        out.append(rec)
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
        fhe.ReleaseAllContexts()


if __name__ == "__main__":
    main()
