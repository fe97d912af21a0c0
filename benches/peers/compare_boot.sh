#!/usr/bin/env bash
# Bootstrapping side by side at N = 2^16, full 2^15 slots, one thread each, in one run:
# hetier (`hetier bootstrap`), OpenFHE 1.6.1 (`EvalBootstrap`, level budget {3,3}) and DESILO
# (`desilofhe`, small keys; its default medium keys do not fit in 24 GiB). Every library's
# precision is printed beside its time. Needs ../shared/peers beside the checkout (its
# bench_openfhe_boot.py and bench_desilo_boot.py) and network once for the venvs.
# Usage: benches/peers/compare_boot.sh [LEVELS=3|9] [--no-desilo]   (env HETIER: a built binary)
# hetier also runs on 2 threads; the table gives its speed-up over 1 thread.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
peers="$root/../shared/peers"
levels="${1:-3}"
desilo=1
[ "${2:-}" = "--no-desilo" ] && desilo=0
[ -f "$peers/bench_openfhe_boot.py" ] || { echo "no $peers/bench_openfhe_boot.py" >&2; exit 1; }
[ -x "$here/venv/bin/python" ] || "$here/setup.sh"
if [ "$desilo" = 1 ] && [ ! -x "$here/venv-desilo/bin/python" ]; then
  py311="$(pyenv root 2>/dev/null)/versions/$(pyenv versions --bare 2>/dev/null | grep '^3\.11' | tail -1)/bin/python3.11"
  [ -x "$py311" ] || py311=python3.11
  "$py311" -m venv "$here/venv-desilo"
  "$here/venv-desilo/bin/pip" install -q desilofhe numpy
fi
out="$here/results_boot"
mkdir -p "$out"
# A skipped library's results from an earlier run must not reach the table.
[ "$desilo" = 1 ] || rm -f "$out/desilo.jsonl"

bin="${HETIER:-${CARGO_TARGET_DIR:-$root/target}/release/hetier}"
[ -n "${HETIER:-}" ] || (cd "$root" && cargo build --release -q -p hetier-cli)
echo "hetier bootstrap (1 thread, $levels levels left)..." >&2
"$bin" --json bootstrap --log-n 16 --levels "$levels" --threads 1 --repeat 2 > "$out/hetier.json"
echo "hetier bootstrap (2 threads)..." >&2
"$bin" --json bootstrap --log-n 16 --levels "$levels" --threads 2 --repeat 2 > "$out/hetier-2t.json"
echo "OpenFHE EvalBootstrap (1 thread)..." >&2
(cd "$out" && OMP_NUM_THREADS=1 PYTHONPATH="$peers" "$here/venv/bin/python" \
  "$peers/bench_openfhe_boot.py" --reps 2 --out "$out/openfhe.json" >&2)
if [ "$desilo" = 1 ]; then
  echo "DESILO bootstrap (1 thread, small keys)..." >&2
  (cd "$out" && "$here/venv-desilo/bin/python" "$peers/bench_desilo_boot.py" 1 small \
    > "$out/desilo.jsonl") || echo "DESILO failed (see above)" >&2
fi
"$here/venv/bin/python" "$here/boot_table.py" "$out"
