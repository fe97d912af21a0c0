"""CryptoNets exported to ONNX, imported and run encrypted from Python over a pool in
/var/tmp/hetier-example (128-bit parameters); prints the numbers of docs/python.md.
Usage: python examples/cryptonets_onnx.py [images]  (needs onnx, onnxruntime)."""
import sys, time, json, resource
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
import numpy as np, onnxruntime as ort, fixtures, hetier
import os; os.makedirs("/var/tmp/hetier-example", exist_ok=True)
m = fixtures.cryptonets()
open("/var/tmp/hetier-example/cryptonets.onnx", "wb").write(m.SerializeToString())
xs, labels = fixtures.cryptonets_images(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
t = time.time(); model = hetier.load("/var/tmp/hetier-example/cryptonets.onnx"); t_load = time.time() - t
client = hetier.Client(model)
t = time.time(); keys = client.evaluation_keys(); t_keys = time.time() - t
import shutil; shutil.rmtree("/var/tmp/hetier-example/pool", ignore_errors=True)
server = hetier.Server(model, pool="/var/tmp/hetier-example/pool", dram_budget="64MiB", policy="planned")
t = time.time(); info = server.load_keys(keys); t_put = time.time() - t
sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
errs, agree, correct, secs, enc_s, dec_s = [], 0, 0, [], [], []
for x, lab in zip(xs, labels):
    t = time.time(); ct = client.encrypt(x); enc_s.append(time.time() - t)
    t = time.time(); out = server.infer(ct); secs.append(time.time() - t)
    t = time.time(); y = client.decrypt(out); dec_s.append(time.time() - t)
    want = sess.run(None, {"x": x[None]})[0][0]
    errs.append(float(np.max(np.abs(y - want))))
    agree += int(np.argmax(y) == np.argmax(want)); correct += int(np.argmax(y) == lab)
rep = server.last_report()
print(json.dumps(dict(params=model.params(), depth=model.depth, load_s=t_load, keygen_s=t_keys,
    key_bundle_bytes=len(keys), ciphertext_bytes=len(ct), result_bytes=len(out), load_keys=info, load_keys_s=t_put,
    images=len(xs), max_abs_err_vs_onnxruntime=max(errs), argmax_agree=agree, correct=correct,
    infer_s_mean=sum(secs)/len(secs), infer_s_min=min(secs), encrypt_s=sum(enc_s)/len(enc_s), decrypt_s=sum(dec_s)/len(dec_s),
    last_report=rep, ru_maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024), indent=1))
