#!/usr/bin/env bash
# The N = 2^16 bootstrap (n16_deep preset, 9 levels left) with every key in the tiered store,
# O_DIRECT pool, at a DRAM budget of a quarter of the stored key set (as stored: KEY_FORM) or the
# bootstrap's smallest workable budget if larger, under a
# cgroup v1 memory limit of budget + headroom: `planned` and `lru` beside the all-DRAM run.
# Prints the ratio table with peak RSS (VmHWM, from /usr/bin/time outside the process) and the
# cgroup's max usage. Needs root (cgroup v1) and a release build:
#
#   cargo build --release -p hetier-cli && benches/boot_budget.sh [OUT_DIR]
#
# Environment: LOG_N (16), LEVELS (9), PRESET (deep, fast or precise at log N 16: instead of
# LEVELS), HEADROOM_MIB (3072), REPEAT (1), BUDGET_MIB (the budget of
# the planned and lru runs instead of the quarter or working set), EXPAND (of the planned and lru
# runs; auto: cached when the budget holds the expanded set, else `in-place`: never expanded,
# each key switch reads the pinned stored objects, where that fits, else `in-place-all`: the
# relinearisation key read in place too; `per-pin`: expanded at every pin, with
# EXPAND_AHEAD), BASE_EXPAND (auto, i.e. cached: of the all-DRAM runs),
# KEY_FORM (digits: seed-compressed, one pool object per digit; `seeded`: one object per key;
# `expanded` stores every word: twice the bytes to read, nothing to expand at a
# pin — the budget is then a quarter of that larger set; use a fresh OUT_DIR), EXPAND_AHEAD (2: a
# helper thread keeps the next 2 seed-compressed keys expanded while the current one is in use;
# N: N keys, one more expanded block each in the budget, as the CLI's --expand-ahead-keys; 0: off),
# THREADS (worker threads of every run; default all cores), DIAGONALS (auto: the transforms'
# diagonals stored in the budget when it holds the expanded keys and them, else encoded at every
# use — the all-DRAM run stores them, the quarter-budget runs encode; `stored`, `durable` —
# encoded once into the pool by the first run and read from it by every later one — or `encode`).
# ENCODE_SHARE (0): the share of the stored diagonals the planned and lru runs encode at every
# use instead of reading (the CLI's --encode-share; the all-DRAM runs read them all).
# PREFETCH_RULE (conservative): when the planned run's prefetches may evict (--prefetch-rule;
# `aggressive` never waits for what MIN would evict: it reads more and waits less).
# BRACKET (1): the all-DRAM run again after the budgeted ones, and every ratio against the mean
# of the two (this VM's speed drifts by 10-20% within minutes; the two show by how much).
# The first run generates the keys into OUT_DIR/pool (kept, with its 0600 key file beside it);
# later runs of this script reuse them. Takes minutes; numbers depend on machine load.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/cgroup.sh
. "$root/benches/lib/cgroup.sh"
bin="$(hetier_bin "$root")"
out="${1:-$root/benches/results/boot_budget}"
log_n="${LOG_N:-16}"
levels="${LEVELS:-9}"
headroom=$(( ${HEADROOM_MIB:-3072} << 20 ))
repeat="${REPEAT:-1}"
expand="${EXPAND:-auto}"
base_expand="${BASE_EXPAND:-auto}"
key_form="${KEY_FORM:-digits}"
diagonals="${DIAGONALS:-auto}"
ahead=()
# Always passed: EXPAND_AHEAD=1 must mean one key, whatever the CLI's default.
expand_ahead="${EXPAND_AHEAD:-2}"
if [ "$expand_ahead" = 0 ]; then
  ahead=(--no-expand-ahead)
else
  ahead=(--expand-ahead-keys "$expand_ahead")
fi
[ -n "${THREADS:-}" ] && ahead+=(--threads "$THREADS")
insecure=()
[ "$log_n" -lt 16 ] && insecure=(--insecure-test-params)
mkdir -p "$out"
pool="$out/pool"
require_cgroup_v1

shape=(--levels "$levels")
[ -n "${PRESET:-}" ] && shape=(--preset "$PRESET")
common=(--json bootstrap --log-n "$log_n" "${shape[@]}" "${insecure[@]}" --dir "$pool"
        --key-form "$key_form" --diagonals "$diagonals" "${ahead[@]}")

# run NAME LIMIT_BYTES ARGS...: one child in its own cgroup; writes NAME.json and NAME.mem.
run() {
  local name="$1" limit="$2"; shift 2
  echo "[$name] limit $(( limit >> 20 )) MiB: hetier ${common[*]} $*" >&2
  local max fail oom rc hwm
  read -r max fail oom rc hwm < <(in_cgroup "hetier_boot_$$_$name" "$limit" "$out/$name.time" \
    "$out/$name.json" /dev/stderr "$bin" "${common[@]}" "$@")
  echo "$max $fail $rc $hwm" > "$out/$name.mem"
}

# 1. Keys into the pool (generated once; a reused pool skips this).
if [ ! -d "$pool" ]; then
  run keygen 0 --repeat 1 --expand "$base_expand"
  [ -s "$out/keygen.json" ] || { echo "key generation failed" >&2; exit 1; }
fi
# The key set as stored, from a run over the pool (reuses the keys, no limit).
run all_dram 0 --repeat "$repeat" --expand "$base_expand"
stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key_bytes_stored"])' "$out/all_dram.json")
# A quarter of the key set, or the bootstrap's own working set (its key-switch and transform
# buffers are in the budget too) when that is larger: a smaller budget fails before any work.
# (The planned and lru runs read their keys in place by default, below the in-place set with
# the relinearisation key too; EXPAND=in-place keeps that key's cached copy; expanded per pin,
# with EXPAND_AHEAD keys expanded ahead, the budget holds that whole window; EXPAND_AHEAD=0,
# none.)
field=in_place_all_working_set_bytes
[ "$expand" = in-place ] && field=in_place_working_set_bytes
if [ "$expand" = per-pin ]; then
  field=expand_ahead_working_set_bytes
  [ "$expand_ahead" = 0 ] && field=working_set_bytes
fi
need=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$out/all_dram.json" "$field")
budget=$(( stored / 4 ))
[ "$need" -gt "$budget" ] && budget=$need
budget_mib=$(( (budget + (1 << 20) - 1) >> 20 ))
# BUDGET_MIB overrides it (e.g. a quarter of the expanded key set: 1470 for n16_deep).
[ -n "${BUDGET_MIB:-}" ] && budget_mib=$BUDGET_MIB
for p in planned lru; do
  run "$p" $(( (budget_mib << 20) + headroom )) --repeat "$repeat" --dram-mib "$budget_mib" \
    --expand "$expand" \
    --policy "$p" --encode-share "${ENCODE_SHARE:-0}" --prefetch-rule "${PREFETCH_RULE:-conservative}"
done
rm -f "$out/all_dram_after.mem"
[ "${BRACKET:-1}" = 1 ] && run all_dram_after 0 --repeat "$repeat" --expand "$base_expand"

python3 - "$out" "$budget_mib" "$headroom" <<'EOF'
import json, os, sys
out, budget_mib, headroom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
names = ["all_dram", "planned", "lru"]
if os.path.exists(f"{out}/all_dram_after.mem"):
    names.append("all_dram_after")
for name in names:
    mem = open(f"{out}/{name}.mem").read().split()
    cg_max, failcnt, rc, hwm_kb = int(mem[0]), int(mem[1]), int(mem[2]), int(mem[3] or 0)
    try:
        r = json.load(open(f"{out}/{name}.json"))
    except Exception:
        r = None
    rows.append((name, r, cg_max, failcnt, rc, hwm_kb * 1024))
base = rows[0][1]["seconds"] if rows[0][1] else None
k = rows[0][1]
after = rows[-1][1] if rows[-1][0] == "all_dram_after" else None
if base is not None and after is not None:
    # The budgeted runs ran between the two: the ratio is against the baseline of that moment.
    drift = after["seconds"] / base - 1
    base = (base + after["seconds"]) / 2
    print(f"all-DRAM before / after the budgeted runs: {rows[0][1]['seconds']:.2f} / "
          f"{after['seconds']:.2f} s ({drift:+.1%}); ratios against their mean {base:.2f} s")
form = "expanded" if k['key_bytes_stored'] >= k['key_bytes'] else "seed-compressed"
print(f"key set: {k['key_count']} keys, {k['key_bytes_stored']/2**20:.0f} MiB stored "
      f"({form}), {k['key_bytes']/2**20:.0f} MiB expanded; budget {budget_mib} MiB "
      f"({budget_mib / (k['key_bytes_stored'] / 2**20):.2f} of stored, "
      f"{budget_mib / (k['key_bytes'] / 2**20):.2f} of expanded; default a quarter of stored, or "
      f"the bootstrap's working set if larger), cgroup limit budget + {headroom >> 20} MiB")
print(f"{'run':14} {'seconds':>8} {'ratio':>6} {'bits':>5} {'lvls':>4} {'wait s':>7} "
      f"{'expand s':>8} {'pins/ready':>10} {'ahead s':>7} {'mode':>7} {'diag':>7} {'dwait s':>7} "
      f"{'PM->DRAM':>9} "
      f"{'peak RSS':>9} {'cg max':>9} {'failcnt':>7}")
for name, r, cg_max, failcnt, rc, hwm in rows:
    if r is None:
        print(f"{name:14} failed (exit {rc})")
        continue
    s = r["store"]
    print(f"{name:14} {r['seconds']:8.2f} {r['seconds']/base:6.3f} {r['precision_bits']:5.1f} "
          f"{r['levels_after']:4d} {s['key_wait_seconds']:7.2f} {s['key_expand_seconds']:8.2f} "
          f"{s.get('key_pins', 0):5d}/{s.get('key_pins_reused', 0):<4d} "
          f"{s.get('expand_ahead_seconds', 0.0):7.2f} "
          f"{s['expand'] + ('+ahead' if s.get('expand_ahead') else ''):>7} "
          f"{s.get('diagonals', 'encode'):>7} "
          f"{(s.get('diagonal_store') or {}).get('wait_seconds', 0.0):7.2f} "
          f"{s['stats']['bytes_pm_to_dram']/2**20:8.0f}M {hwm/2**20:8.0f}M {cg_max/2**20:8.0f}M "
          f"{failcnt:7d}")
EOF
