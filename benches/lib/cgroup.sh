# Sourced by the bench scripts that run `hetier` children under cgroup v1 memory limits
# (needs root): where the binary is, and one child in a fresh group of its own.

cg_root=/sys/fs/cgroup/memory

# hetier_bin ROOT: the release binary ($HETIER, else the target dir's); fails the script when
# it is not built.
hetier_bin() {
  local bin="${HETIER:-${CARGO_TARGET_DIR:-$1/target}/release/hetier}"
  [ -x "$bin" ] || { echo "no hetier binary at $bin (cargo build --release -p hetier-cli)" >&2; exit 1; }
  echo "$bin"
}

# require_cgroup_v1: fails the script when the memory controller is not mounted.
require_cgroup_v1() {
  [ -e "$cg_root/memory.limit_in_bytes" ] || { echo "cgroup v1 memory controller not mounted" >&2; exit 1; }
}

# in_cgroup GROUP LIMIT_BYTES TIME_FILE STDOUT STDERR CMD...: runs CMD as the one process of a
# fresh group GROUP (no limit when LIMIT_BYTES is 0), under /usr/bin/time (peak RSS in KiB, the
# last line of TIME_FILE). The child joins the group before it execs CMD, so every page it
# touches is counted. Prints "MAX_USAGE_BYTES FAILCNT OOM_KILLS EXIT_CODE PEAK_RSS_KIB".
in_cgroup() {
  local cg="$cg_root/$1" limit="$2" time="$3" stdout="$4" stderr="$5"; shift 5
  mkdir "$cg"
  if [ "$limit" -gt 0 ]; then echo "$limit" > "$cg/memory.limit_in_bytes"; fi
  local rc=0
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec /usr/bin/time -f "%M" -o "$0" "$@"' \
    "$time" "$cg" "$@" > "$stdout" 2> "$stderr" || rc=$?
  local max fail oom
  max=$(cat "$cg/memory.max_usage_in_bytes")
  fail=$(cat "$cg/memory.failcnt")
  oom=$(awk '/oom_kill /{print $2}' "$cg/memory.oom_control")
  echo 0 > "$cg/memory.force_empty" 2>/dev/null || true
  rmdir "$cg"
  echo "$max $fail ${oom:-0} $rc $(tail -n1 "$time" 2>/dev/null || echo 0)"
}
