#!/bin/bash
# The daemon's memory with a large ruleset (issue 17: at most 60 MB RSS with
# 10,000 rules): `weir serve` (release build) with RULES (default the
# 10,000 generated rules), milter and HTTP listeners and its sled store,
# read from /proc after start and again after milter-load has sent it
# MESSAGES messages (default 1,000: the whole `synth` corpus once), PASSES
# times over (default 3: what keeps growing after the first pass), at once
# and again 2 s later, when the daemon has been quiet for a second.
# Prints VmRSS (resident now), VmHWM (the most it was resident) and the
# anonymous share (heap and stacks, not the mapped binary) at each step.
# ROUNDS (default 1) repeats the whole run; figures: benches/README.md.
# WEIR=PATH measures that `weir` binary instead of target/release/weir
# (another build, another allocator), and NOBUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RULES=${RULES:-target/bench-corpus/rules/rules_10000.flow}
MESSAGES=${MESSAGES:-1000}
PASSES=${PASSES:-3}
ROUNDS=${ROUNDS:-1}
PORT=${PORT:-18890}
[ -n "${NOBUILD:-}" ] || cargo build --release -q -p weir -p weir-benches --bin weir --bin milter-load
# milter-load generates the corpus (and the rules) when they are missing.
if [ ! -e "$RULES" ]; then
  target/release/milter-load --messages 1 >/dev/null 2>&1 || true
fi

# One line of the process's memory, in MB.
memory() {
  local pid=$1 label=$2
  awk -v label="$label" '
    /^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 } /^Threads:/ { threads = $2 }
    END { printf "%-22s VmRSS %6.1f MB  VmHWM %6.1f MB  threads %d", label, rss / 1024, hwm / 1024, threads }
  ' "/proc/$pid/status"
  awk '/^Anonymous:/ { printf "  anonymous %6.1f MB\n", $2 / 1024 }' "/proc/$pid/smaps_rollup"
}

run() {
  local dir pid
  dir=$(mktemp -d /tmp/weir-bench-memory.XXXX)
  echo secret-token-for-the-bench > "$dir/token"
  chmod 600 "$dir/token"
  {
    echo "rules = \"$(realpath "$RULES")\""
    echo "state_dir = \"state\""
    echo "[milter]"; echo "listen = \"inet:127.0.0.1:$PORT\""
    echo "[http]"; echo "listen = \"inet:127.0.0.1:$((PORT + 1))\""; echo "token_file = \"token\""
  } > "$dir/weir.toml"
  # A daemon left on the port would be measured instead of this one.
  if (exec 3<>"/dev/tcp/127.0.0.1/$((PORT + 1))") 2>/dev/null; then
    echo "port $((PORT + 1)) is in use: set PORT" >&2; rm -rf "$dir"; return 1
  fi
  WEIR_LOG=warn ${WEIR:-target/release/weir} serve --config "$dir/weir.toml" 2>"$dir/log" &
  pid=$!
  if ! wait_port "$((PORT + 1))"; then
    cat "$dir/log" >&2; kill "$pid" 2>/dev/null || true; rm -rf "$dir"; return 1
  fi
  sleep 2
  memory "$pid" "after start"
  local pass
  for pass in $(seq 1 "$PASSES"); do
    target/release/milter-load --addr "127.0.0.1:$PORT" --sessions 8 \
      --messages "$MESSAGES" --corpus target/bench-corpus/synth >"$dir/load" 2>&1 \
      || { cat "$dir/load" >&2; kill "$pid"; rm -rf "$dir"; return 1; }
    memory "$pid" "after $((pass * MESSAGES)) messages"
    # Once quiet, the daemon returns what the burst freed (daemon/serve/src/memory.rs).
    sleep 2
    memory "$pid" "  and 2 s later"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

echo "rules $RULES, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
for _ in $(seq 1 "$ROUNDS"); do
  run
done
