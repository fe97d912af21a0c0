#!/usr/bin/env bash
# ResNet-20 encrypted at log N = 16 under a cgroup v1 memory limit of budget + headroom, for
# each policy, beside an all-DRAM run (budget = the whole footprint): time per image, its
# split, agreement with plaintext, and memory read from outside (peak RSS by /usr/bin/time,
# the cgroup's max usage). Needs root and the cgroup v1 memory controller.
#
#   benches/resnet20_budget.sh [OUT_DIR]
#   env: HETIER (binary), IMAGES (1), BUDGET_MIB (2200 = 0.246 of the 9.37 GB footprint),
#        HEADROOM_MIB (3072: the bootstrapper, its scratch and the decoded program live outside the store), POLICIES ("all-dram planned lru alpha"), POOL (a pool dir to reuse)
set -euo pipefail
OUT=${1:-resnet20-budget}
HETIER=${HETIER:-target/release/hetier}
IMAGES=${IMAGES:-1}
BUDGET_MIB=${BUDGET_MIB:-2200}
HEADROOM_MIB=${HEADROOM_MIB:-3072}
POLICIES=${POLICIES:-"all-dram planned lru alpha"}
POOL=${POOL:-$OUT/pool}
CG=/sys/fs/cgroup/memory/hetier-resnet20-$$
mkdir -p "$OUT"
[ -x "$HETIER" ] || cargo build --release -p hetier-cli
for p in $POLICIES; do
  if [ "$p" = all-dram ]; then budget=12000; policy=planned; else budget=$BUDGET_MIB; policy=$p; fi
  mkdir "$CG"
  echo $(( (budget + HEADROOM_MIB) << 20 )) > "$CG/memory.limit_in_bytes"
  # The child joins the cgroup before it execs hetier: every page it touches is counted.
  /usr/bin/time -v -o "$OUT/$p.time" sh -c "echo \$\$ > $CG/cgroup.procs; exec $HETIER --json run \
    --model resnet20 --images $IMAGES --dram-mib $budget --policy $policy --dir $POOL" \
    > "$OUT/$p.json"
  echo "$p: cgroup max $(cat "$CG/memory.max_usage_in_bytes") bytes" | tee "$OUT/$p.cgroup"
  rmdir "$CG"
done
python3 - "$OUT" $POLICIES <<'PY'
import json, sys, re
out, policies = sys.argv[1], sys.argv[2:]
base = None
print(f"{'run':10} {'s/image':>8} {'x all-DRAM':>10} {'boot s':>7} {'conv s':>7} {'wait s':>7} {'agree':>6} {'max err':>9} {'peak RSS':>9} {'cgroup max':>10}")
for p in policies:
    d = json.load(open(f"{out}/{p}.json"))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{out}/{p}.time").read()).group(1)) << 10
    cg = int(open(f"{out}/{p}.cgroup").read().split()[-2])
    s = d["seconds_per_image"]
    base = base or s
    sp = d["split_per_image"]
    print(f"{p:10} {s:8.1f} {s/base:10.2f} {sp['bootstrapping']:7.1f} {sp['convolutions']:7.1f} {sp['waiting_for_store']:7.1f} "
          f"{d['agree_with_plaintext']}/{d['images']:<4} {d['max_logit_error']:9.2e} {rss/2**30:8.2f}G {cg/2**30:9.2f}G")
PY
