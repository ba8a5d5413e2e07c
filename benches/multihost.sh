#!/bin/bash
# The shared store's cost on the milter path: `weir serve` (release build)
# with the 1,000 generated rules (target/bench-corpus, made by the criterion
# benches or tests/corpus/gen_*.py), loaded by milter-load over loopback,
# with each store:
#   sled       the default, state_dir on local disk
#   redis      one redis-server on loopback (appendonly yes, appendfsync everysec)
#   cluster    a three-master Redis Cluster on loopback (same persistence)
# and with RATES=1 two `rate()` rules added (sender and client address),
# so each message also counts (RATES=3: a third, by subject). Prints messages/s and the Redis round trips
# per message (weir_store_round_trips_total / messages).
# SESSIONS (default 8) and MESSAGES (default 3000). PROFILE=dev uses the
# debug build: its messages/s mean nothing, but the round trips per message
# are the same. Figures: benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-8}
MESSAGES=${MESSAGES:-3000}
RATES=${RATES:-0}
RULES=target/bench-corpus/rules/rules_1000.flow
[ -f "$RULES" ] || { echo "no $RULES: run the criterion benches once, or tests/corpus/gen_corpus.py and gen_rules.py" >&2; exit 1; }
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" -q -p weir -p weir-benches --bin weir --bin milter-load
bin=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
work=$(mktemp -d /tmp/weir-multihost.XXXX)
trap 'for f in "$work"/redis-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 1; rm -rf "$work"' EXIT

redis() { # port extra...
  local p=$1; shift
  redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --pidfile "$work/redis-$p.pid" \
    --logfile "$work/redis-$p.log" --dir "$work" --dbfilename "dump-$p.rdb" --save "" \
    --appendonly yes --appendfsync everysec --appendfilename "aof-$p" --appenddirname "aof-$p" "$@"
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && return; sleep 0.1; done
}

run() { # name store-table
  local name=$1 store=$2 port=18890
  local dir=$work/$name
  mkdir -p "$dir"
  cp "$RULES" "$dir/rules.flow"
  if [ "$RATES" != 0 ]; then
    printf '%s\n' 'rule by_sender { when rate("from:${envelope.from}", 1h) > 1000000 then tag "busy-sender" }' \
      'rule by_client { when rate("ip:${client.ip}", 1m) > 1000000 then tag "busy-client" }' >>"$dir/rules.flow"
  fi
  if [ "$RATES" = 3 ]; then
    printf '%s\n' 'rule by_subject { when rate("subject:${subject}", 1d) > 1000000 then tag "campaign" }' >>"$dir/rules.flow"
  fi
  echo secret-token-for-the-bench >"$dir/token"; chmod 600 "$dir/token"
  printf 'rules = "rules.flow"\nstate_dir = "state"\n[milter]\nlisten = "inet:127.0.0.1:%s"\n[http]\nlisten = "inet:127.0.0.1:%s"\ntoken_file = "token"\n%s\n' \
    "$port" "$((port + 1))" "$store" >"$dir/weir.toml"
  WEIR_LOG=warn "$bin/weir" serve --config "$dir/weir.toml" 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 1))/healthz" >/dev/null && break; sleep 0.1; done
  local before
  before=$(curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk '/^weir_store_round_trips_total/ {print $2}')
  echo "== $name, $SESSIONS sessions, rates=$RATES"
  "$bin/milter-load" --addr "127.0.0.1:$port" --sessions "$SESSIONS" --messages "$MESSAGES" 2>&1 | tail -7
  local after
  after=$(curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk '/^weir_store_round_trips_total/ {print $2}')
  echo "round trips per message: $(echo "scale=2; ($after - $before) / $MESSAGES" | bc)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run sled ""
redis 26379
run redis "$(printf '[store]\nbackend = "redis"\nurl = "redis://127.0.0.1:26379"\nhost = "bench"')"
# CLUSTER_PORT: the first master's port (each also needs port + 10000 free).
c=${CLUSTER_PORT:-27001}
for p in $c $((c + 1)) $((c + 2)); do redis "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf"; done
redis-cli --cluster create 127.0.0.1:$c 127.0.0.1:$((c + 1)) 127.0.0.1:$((c + 2)) --cluster-yes >/dev/null
for _ in $(seq 100); do redis-cli -p "$c" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
run cluster "$(printf '[store]\nbackend = "redis"\ncluster = ["127.0.0.1:%s", "127.0.0.1:%s", "127.0.0.1:%s"]\nhost = "bench"' $c $((c + 1)) $((c + 2)))"
