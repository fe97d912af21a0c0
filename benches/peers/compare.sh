#!/usr/bin/env bash
# hetier vs OpenFHE on the issue-4 CKKS parameter sets, in one run, single-threaded.
# Usage: benches/peers/compare.sh [13,14,15,16]   (needs network once for ./setup.sh)
# Writes results_hetier.json and results_openfhe.json here and prints the ratio table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
logn="${1:-13,14,15,16}"
[ -x "$here/venv/bin/python" ] || "$here/setup.sh"
(cd "$here/../.." && HETIER_CKKS_LOGN="$logn" HETIER_CKKS_JSON="$here/results_hetier.json" \
  cargo bench -p hetier-he --bench ckks)
(cd "$here" && OMP_NUM_THREADS=1 ./venv/bin/python bench_openfhe.py --logn "$logn" \
  --out results_openfhe.json)
"$here/venv/bin/python" "$here/make_table.py" "$here/results_hetier.json" "$here/results_openfhe.json"
