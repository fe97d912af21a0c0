#!/usr/bin/env bash
# Issue 13's table: each `hetier run` (digits; CryptoNets in the slot and batch layouts) at
# several DRAM budgets, every run a child in its own cgroup v1 group limited to budget + 64 MiB,
# and `hetier bench-model` (log N 14, its children in such groups too). Prints, per run: the
# budget, the cgroup limit, the group's max usage, the peak RSS (VmHWM from /usr/bin/time,
# outside the process), the constant the process printed as held outside its store, whether
# the group hit an OOM kill, and agreement with plaintext. Needs root and a release build:
#
#   cargo build --release -p hetier-cli && benches/memory_budget.sh [OUT_DIR]
#
# Environment: BUDGETS ("32 128 512", MiB), IMAGES (4), SLACK_MIB (64: the limit is budget +
# this), BENCH_MODEL (1: also run bench-model; 0: skip), RESNET (0; 1 adds ResNet-20 at log N 16,
# one image at RESNET_MIB=2400 under budget + RESNET_SLACK_MIB=160: minutes, ~3 GiB, and its
# constant is above 64 MiB for the reasons docs/measurements.md gives).
# The tiered-store benchmark prints its own limits and maxima:
#   cargo bench -p hetier-tiering --bench tiering_e2e -- --scale 0.25 --ops 48 --dir /var/tmp
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/cgroup.sh
. "$root/benches/lib/cgroup.sh"
bin="$(hetier_bin "$root")"
out="${1:-$root/benches/results/memory_budget}"
budgets="${BUDGETS:-32 128 512}"
images="${IMAGES:-4}"
slack="${SLACK_MIB:-64}"
require_cgroup_v1
mkdir -p "$out"
: > "$out/runs.txt"

# run NAME BUDGET_MIB LIMIT_MIB ARGS...: `hetier ARGS` in its own group; NAME.json, NAME.mem.
run() {
  local name="$1" budget="$2" limit="$3"; shift 3
  echo "[$name] budget $budget MiB, limit $limit MiB: hetier $*" >&2
  local max fail oom rc hwm
  read -r max fail oom rc hwm < <(in_cgroup "hetier_mem_$$_$name" $(( limit << 20 )) \
    "$out/$name.time" "$out/$name.json" "$out/$name.err" "$bin" "$@")
  echo "$name $budget $limit $max $oom $rc $hwm" >> "$out/runs.txt"
}

for b in $budgets; do
  limit=$(( b + slack ))
  for m in digits cryptonets; do
    pool="$out/pool-$m-$b"; rm -rf "$pool"
    run "$m-slot-$b" "$b" "$limit" --json run --model "$m" --images "$images" --dram-mib "$b" --dir "$pool"
  done
  pool="$out/pool-cryptonets-batch-$b"; rm -rf "$pool"
  run "cryptonets-batch-$b" "$b" "$limit" --json run --model cryptonets --layout batch \
    --images "$images" --dram-mib "$b" --dir "$pool"
done
if [ "${RESNET:-0}" = 1 ]; then
  rb="${RESNET_MIB:-2400}"
  run "resnet20-$rb" "$rb" $(( rb + ${RESNET_SLACK_MIB:-160} )) --json run --model resnet20 \
    --images 1 --dram-mib "$rb" --policy planned
fi
if [ "${BENCH_MODEL:-1}" = 1 ]; then
  rm -rf "$out/pool-bench-model"
  echo "[bench-model] log N 14, 40 MiB, its children in groups of budget + 64 MiB" >&2
  "$bin" --json bench-model --log-n 14 --dram-mib 40 --images 1 --policies lru,planned \
    --dir "$out/pool-bench-model" > "$out/bench-model.json" 2> "$out/bench-model.err"
fi

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
mib = lambda b: f"{b / 2**20:8.1f}"
print(f"{'run':<24} {'budget':>7} {'limit':>7} {'cg max':>8} {'peak RSS':>8} {'outside':>8} "
      f"{'oom':>3} {'rc':>3} {'agree':>7}")
for line in open(os.path.join(out, "runs.txt")):
    name, budget, limit, cgmax, oom, rc, hwm_kib = line.split()
    try:
        r = json.load(open(os.path.join(out, name + ".json")))
    except ValueError:
        r = {}
    o = r.get("outside_store_images") or r.get("outside_store") or {}
    agree = f"{r.get('agree_with_plaintext', '-')}/{r.get('images', '-')}"
    print(f"{name:<24} {budget:>7} {limit:>7} {mib(int(cgmax))} {mib(int(hwm_kib) * 1024)} "
          f"{mib(o.get('outside_store_bytes', 0))} {oom:>3} {rc:>3} {agree:>7}")
p = os.path.join(out, "bench-model.json")
if os.path.exists(p):
    try:
        bm = json.load(open(p))
    except ValueError:
        bm = {"runs": []}
    for r in bm.get("runs", []):
        print(f"{'bench-model ' + r['name']:<24} {(r.get('budget') or 0) >> 20:>7} "
              f"{(r.get('cgroup_limit') or 0) >> 20:>7} {mib(r.get('cgroup_max') or 0)} "
              f"{mib(r.get('hwm') or 0)} {mib(r.get('outside_store') or 0)} "
              f"{int(bool(r.get('oom_killed'))):>3} {int(bool(r.get('failed'))):>3} "
              f"{'same' if r.get('outputs_equal_all_dram') else str(r.get('outputs_equal_all_dram')):>7}")
PY
