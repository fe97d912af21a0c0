"""Prints the hetier vs OpenFHE table (ms, ratio = hetier / OpenFHE) from the two JSON files.

    python make_table.py results_hetier.json results_openfhe.json
"""
import json
import sys

OPS = [
    ("encode", "encode"),
    ("encrypt_pk", "encrypt (pk)"),
    ("add", "add"),
    ("mul_plain", "mul ct×pt"),
    ("mul_relin", "mul ct×ct + relin"),
    ("rescale", "rescale"),
    ("rotate", "rotate"),
    ("keygen_rotation_key", "keygen, one rotation key"),
    ("rotate_16_plain", "16 rotations, plain"),
    ("rotate_16_hoisted", "16 rotations, hoisted"),
    ("lt16_plain", "16-diagonal linear transform, plain rotations"),
]


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def main():
    ours = {r["log_n"]: r for r in json.load(open(sys.argv[1]))}
    peer = {r["log_n"]: r for r in json.load(open(sys.argv[2]))} if len(sys.argv) > 2 else {}
    sizes = sorted(ours)
    head = "| op | " + " | ".join(f"2^{n} hetier ms | 2^{n} OpenFHE ms | ratio" for n in sizes) + " |"
    print(head)
    print("|---" * (1 + 3 * len(sizes)) + "|")

    def row(label, get):
        cells = []
        for n in sizes:
            a = get(ours[n])
            b = get(peer[n]) if n in peer else None
            r = f"{a / b:.2f}" if a is not None and b else "-"
            cells += [fmt(a), fmt(b), r]
        print(f"| {label} | " + " | ".join(cells) + " |")

    for key, label in OPS:
        row(label, lambda r, k=key: r["timings_ms"].get(k, {}).get("median_ms"))
    row("rotation key, stored (MB)", lambda r: r["sizes"]["rotation_key_one"] / 1e6)
    row("relin key, stored (MB)", lambda r: r["sizes"]["relin_key"] / 1e6)
    row("fresh ciphertext, stored (MB)", lambda r: r["sizes"]["ciphertext_pk_fresh"] / 1e6)
    print()
    for n in sizes:
        o = ours[n]["timings_ms"]
        extra = []
        if "rotate_16_hoisted" in o and "rotate_16_plain" in o:
            extra.append("hetier hoisted/plain %.2f" % (o["rotate_16_hoisted"]["median_ms"]
                                                        / o["rotate_16_plain"]["median_ms"]))
        if "rotate_2threads" in o:
            extra.append("hetier rotate 1→2 threads speed-up %.2f×" % (o["rotate"]["median_ms"]
                                                                      / o["rotate_2threads"]["median_ms"]))
        if n in peer and "rotate_16_hoisted" in peer[n]["timings_ms"]:
            p = peer[n]["timings_ms"]
            extra.append("OpenFHE hoisted/plain %.2f" % (p["rotate_16_hoisted"]["median_ms"]
                                                         / p["rotate_16_plain"]["median_ms"]))
        errs = "hetier max|err| " + ", ".join(f"{k} {v:.1e}" for k, v in ours[n]["check_max_abs_err"].items())
        if n in peer:
            errs += "; OpenFHE " + ", ".join(f"{k} {v:.1e}" for k, v in peer[n]["check_max_abs_err"].items())
        print(f"- 2^{n}: " + "; ".join(extra + [errs]))
    lt_line(ours, peer)


def lt_line(ours, peer):
    """The one line of the double-hoisting target (issue 12): at the largest ring measured."""
    n = max((n for n in ours if "lt16_double_hoisted" in ours[n]["timings_ms"]), default=None)
    if n is None:
        return
    o = ours[n]["timings_ms"]
    hoisted = o["lt16_double_hoisted"]["median_ms"]
    plain = o["lt16_plain"]["median_ms"]
    beside = f"2^{n}: hetier {fmt(hoisted)} ms double-hoisted, {fmt(plain)} ms plain"
    p = peer.get(n, {}).get("timings_ms", {})
    if "lt16_fast_rotation" in p:
        fast = p["lt16_fast_rotation"]["median_ms"]
        beside += (f"; OpenFHE {fmt(fast)} ms EvalFastRotation after EvalFastRotationPrecompute"
                   f" (hetier/OpenFHE {hoisted / fast:.2f})")
    print()
    print(f"hetier double-hoisted/plain linear transform (16 diagonals): {hoisted / plain:.2f}"
          f"   [{beside}]")


if __name__ == "__main__":
    main()
