#!/usr/bin/env bash
# Before and after of the milter path: `weir serve` binaries side by side
# under milter-load (no MTA), each on a fresh state directory with
# rules_1000.flow, interleaved ROUNDS times. Prints per run: messages/s,
# the latency line of milter-load, the daemon's CPU milliseconds per
# message (utime + stime of all its threads from /proc/PID/stat: what the
# other load of a shared machine disturbs least) and the load tool's
# (its whole process, from `perf stat -e task-clock`).
#
# Usage: benches/milter_ab.sh LABEL=/path/to/weir [LABEL=/path/to/weir ...]
#   e.g. git stash; cargo build --release -p weir; cp target/release/weir /tmp/weir-before;
#        git stash pop; cargo build --release -p weir -p weir-benches --bin weir --bin milter-load
#        benches/milter_ab.sh before=/tmp/weir-before after=target/release/weir
# A label written LABEL=WEIR,LOAD also picks the milter-load binary (the
# load tool's own before and after).
# Env: SESSIONS="1 32" MSGS_1=2000 MSGS_32=10000 ROUNDS=2. Figures: benches/README.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
[[ $# -gt 0 ]] || { sed -n '2,14p' "$0" >&2; exit 2; }
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
load="$target_dir/release/milter-load"
rules="$root/target/bench-corpus/rules/rules_1000.flow"
SESSIONS=${SESSIONS:-"1 32"}
ROUNDS=${ROUNDS:-2}
ticks_per_s=$(getconf CLK_TCK)
read -r port http <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
printf '| label | round | sessions | messages | msg/s | daemon CPU ms/msg | load tool CPU ms/msg | load avg | latency (ms): p50 p90 p99 max |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for round in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    label=${spec%%=*} bins=${spec#*=}
    bin=$(realpath "${bins%%,*}") tool=$load
    [[ $bins == *,* ]] && tool=$(realpath "${bins#*,}")
    dir=$(mktemp -d /tmp/weir-milter-ab.XXXXXX)
    cp "$rules" "$dir/rules.flow"
    echo secret-token-for-the-bench >"$dir/token"
    chmod 600 "$dir/token"
    printf 'rules = "rules.flow"\nstate_dir = "state"\n[milter]\nlisten = "inet:127.0.0.1:%s"\n[http]\nlisten = "inet:127.0.0.1:%s"\ntoken_file = "token"\n' \
      "$port" "$http" >"$dir/weir.toml"
    (cd "$dir" && WEIR_LOG=warn exec "$bin" serve --config weir.toml 2>"$dir/log") &
    pid=$!
    wait_port "$port" 30
    "$tool" --addr "127.0.0.1:$port" --sessions 4 --messages 300 >/dev/null
    for s in $SESSIONS; do
      n=${MSGS_32:-10000}
      [[ $s == 1 ]] && n=${MSGS_1:-2000}
      before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      out=$(perf stat -x, -e task-clock -o "$dir/perf" \
        "$tool" --addr "127.0.0.1:$port" --sessions "$s" --messages "$n")
      after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      rate=$(awk '/ messages\/s$/ {print $(NF - 1)}' <<<"$out")
      latency=$(awk '/^per message/ {print $(NF - 3), $(NF - 2), $(NF - 1), $NF}' <<<"$out")
      cpu=$(awk -v a="$before" -v b="$after" -v t="$ticks_per_s" -v n="$n" 'BEGIN {printf "%.3f", (b - a) / t * 1000 / n}')
      tool_cpu=$(awk -F, -v n="$n" '$3 == "task-clock" {printf "%.3f", $1 / n}' "$dir/perf")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$round" "$s" "$n" "$rate" "$cpu" \
        "$tool_cpu" "$(cut -d' ' -f1 /proc/loadavg)" "$latency"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
