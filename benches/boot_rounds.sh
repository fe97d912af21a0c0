#!/usr/bin/env bash
# Interleaved rounds of the all-DRAM bootstrap and the budgeted ones, for ratios that hold on a
# machine whose speed drifts within minutes: each round runs all-DRAM, then each prefetch rule
# under the budget; every budgeted run is compared with the mean of the all-DRAM runs just
# before and after it (one more all-DRAM run closes the last round), and the script prints
# every ratio and their median per rule.
#
#   cargo build --release -p hetier-cli && benches/boot_rounds.sh OUT_DIR
#
# OUT_DIR/pool must hold the keys and durable diagonals: a run of benches/boot_budget.sh with
# the same OUT_DIR, KEY_FORM and DIAGONALS=durable leaves them. No cgroup here (the store's
# budget alone; O_DIRECT keeps the page cache out): boot_budget.sh is the run that checks the
# memory from outside.
#
# Environment: LOG_N (16), LEVELS (9), PRESET (instead of LEVELS), ROUNDS (6), THREADS (2),
# REPEAT (3: the last bootstrap's seconds are compared; the first warms the store, and on a VM
# that hands freed guest memory back to its host, as this one does ("Free page reporting
# enabled" in dmesg), a process's memory runs slower for its first ~10 s: a run that reads its
# keys in place reaches its second bootstrap after ~7 s, and that bootstrap took 0.4–1.0 s
# longer than its third, where the all-DRAM run's second starts after its 17 s of expansions;
# docs/measurements.md, "Twentieth session"),
# BUDGET_MIB (1470: a quarter of n16_deep's expanded key set), KEY_FORM (digits), EXPAND (auto:
# of the budgeted runs; the all-DRAM runs are cached), RULES ("conservative": the prefetch rules
# to run each round, e.g. "conservative aggressive"; RULE@MIB also sets the prefetch lead, e.g.
# "conservative@0 conservative@256"; without it the CLI's default), IN_PLACE_BASE (0; 1: each round also runs
# all-DRAM with the keys read in place, `--expand in-place` without a budget, and prints every
# ratio against it too: what the store costs beside the key form the budget forces). Each rule's
# store waits by bootstrap phase (`store.phase_wait_seconds`, median over the rounds) close the
# summary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/cgroup.sh
. "$root/benches/lib/cgroup.sh"
bin="$(hetier_bin "$root")"
out="${1:?usage: benches/boot_rounds.sh OUT_DIR (OUT_DIR/pool from benches/boot_budget.sh)}"
pool="$out/pool"
[ -d "$pool" ] || { echo "no pool at $pool: run benches/boot_budget.sh $out first" >&2; exit 1; }
log_n="${LOG_N:-16}"
rounds="${ROUNDS:-6}"
rules="${RULES:-conservative}"
insecure=()
[ "$log_n" -lt 16 ] && insecure=(--insecure-test-params)
shape=(--levels "${LEVELS:-9}")
[ -n "${PRESET:-}" ] && shape=(--preset "$PRESET")
common=(--json bootstrap --log-n "$log_n" "${shape[@]}" "${insecure[@]}" --dir "$pool"
        --key-form "${KEY_FORM:-digits}" --diagonals durable --repeat "${REPEAT:-3}"
        --threads "${THREADS:-2}")
mkdir -p "$out/rounds"

# run NAME ARGS...: one process; writes rounds/NAME.json.
run() {
  local name="$1"; shift
  echo "[$name] hetier ${common[*]} $*" >&2
  "$bin" "${common[@]}" "$@" > "$out/rounds/$name.json"
}

in_place_base="${IN_PLACE_BASE:-0}"
rm -f "$out"/rounds/in_place_*.json
for i in $(seq 1 "$rounds"); do
  run "dram_$i" --expand cached
  if [ "$in_place_base" = 1 ]; then
    run "in_place_$i" --expand in-place
  fi
  for spec in $rules; do
    lead=()
    [[ "$spec" == *@* ]] && lead=(--prefetch-lead-mib "${spec#*@}")
    run "${spec}_$i" --dram-mib "${BUDGET_MIB:-1470}" --expand "${EXPAND:-auto}" \
      --policy planned --prefetch-rule "${spec%@*}" "${lead[@]}"
  done
done
run "dram_$((rounds + 1))" --expand cached

python3 - "$out/rounds" "$rounds" $rules <<'EOF'
import json, os, statistics, sys
d, rounds, rules = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name):
    return json.load(open(f"{d}/{name}.json"))
dram = [load(f"dram_{i}")["seconds"] for i in range(1, rounds + 2)]
in_place = None
if os.path.exists(f"{d}/in_place_1.json"):
    in_place = [load(f"in_place_{i}")["seconds"] for i in range(1, rounds + 1)]
print("round  all-DRAM s  " + "  ".join(f"{r:>28}" for r in rules))
ratios = {r: [] for r in rules}
beside = {r: [] for r in rules}
for i in range(1, rounds + 1):
    base = (dram[i - 1] + dram[i]) / 2
    cells = []
    if in_place:
        for r in rules:
            beside[r].append(load(f"{r}_{i}")["seconds"] / in_place[i - 1])
    for r in rules:
        j = load(f"{r}_{i}")
        s = j["store"]
        ratio = j["seconds"] / base
        ratios[r].append(ratio)
        wait = s["key_wait_seconds"] + (s.get("diagonal_store") or {}).get("wait_seconds", 0.0)
        cells.append(f"{j['seconds']:6.2f} s {ratio:5.3f}x wait {wait:4.2f} s")
    print(f"{i:>5}  {dram[i - 1]:10.2f}  " + "  ".join(f"{c:>28}" for c in cells))
print(f"after  {dram[rounds]:10.2f}")
phases = ["mod_raise", "coeff_to_slot", "eval_mod", "slot_to_coeff"]
for r in rules:
    print(f"{r}: median {statistics.median(ratios[r]):.3f}x all-DRAM over {rounds} rounds "
          f"({min(ratios[r]):.3f}-{max(ratios[r]):.3f})")
    waits = [load(f"{r}_{i}")["store"].get("phase_wait_seconds") for i in range(1, rounds + 1)]
    if all(waits):
        cells = [f"{p} {statistics.median(w[p] for w in waits):.2f} s" for p in phases]
        print(f"{r}: store waits by phase, median over rounds (whole run): " + ", ".join(cells))
if in_place:
    keys = [p / ((dram[i] + dram[i + 1]) / 2) for i, p in enumerate(in_place)]
    print(f"all-DRAM with the keys read in place: {', '.join(f'{s:.2f}' for s in in_place)} s, "
          f"median {statistics.median(keys):.3f}x all-DRAM cached")
    for r in rules:
        print(f"{r}: median {statistics.median(beside[r]):.3f}x all-DRAM read in place "
              f"({min(beside[r]):.3f}-{max(beside[r]):.3f})")
EOF
