"""Prints the bootstrapping side-by-side table from compare_boot.sh's results folder."""
import json
import os
import sys

out = sys.argv[1]
rows = []
h = json.load(open(os.path.join(out, "hetier.json")))
rows.append(("hetier", h["seconds"], h["precision_bits"], h["levels_after"],
             h["key_count"], h["key_bytes_stored"], h["peak_rss"] / 2**30))
o = json.load(open(os.path.join(out, "openfhe.json")))
rows.append(("OpenFHE " + o["lib"].split()[1], o["timings_s"]["EvalBootstrap_median"],
             o.get("precision_bits"), o.get("levels_remaining_after_boot"),
             o.get("num_bootstrap_automorphism_keys"), o.get("bootstrap_keys_serialized_bytes"),
             o.get("max_rss_mib", 0) / 1024))
d_path = os.path.join(out, "desilo.jsonl")
if os.path.exists(d_path):
    stages = [json.loads(line) for line in open(d_path) if line.strip()]
    boots = [s for s in stages if s.get("stage") == "bootstrap"]
    if boots:
        b = boots[-1]
        rows.append(("DESILO (small keys)", b["s"], b["bits"], b["level_after"], None, None,
                     b["rss_mib"] / 1024))
base = rows[0][1]
print("| library | s / bootstrap | × hetier | precision (bits, max err) | levels left | keys | key bytes stored | peak RSS GiB |")
print("|---|---|---|---|---|---|---|---|")
for name, s, bits, lv, kc, kb, rss in rows:
    kb_s = "%.2f GB" % (kb / 1e9) if kb else "–"
    print(f"| {name} | {s:.2f} | {s / base:.2f} | {bits if bits is None else round(bits, 1)} | {lv} | "
          f"{kc if kc is not None else '–'} | {kb_s} | {rss:.1f} |")
t2_path = os.path.join(out, "hetier-2t.json")
if os.path.exists(t2_path):
    t2 = json.load(open(t2_path))
    print(f"\nhetier 2 threads: {t2['seconds']:.2f} s, {t2['precision_bits']:.1f} bits: "
          f"{rows[0][1] / t2['seconds']:.2f}x faster than 1 thread")
if len(rows) > 1:
    print(f"\nhetier / OpenFHE time: {rows[0][1] / rows[1][1]:.2f}")
