#!/bin/bash
# What one decision per message costs: `weir serve` (release build) with the
# examples/quickstart rules, loaded by milter-load over loopback in three
# set-ups, each with 1 and 8 concurrent sessions:
#   milter       milter only, no [lmtp]
#   both         milter with [lmtp], then each accepted message delivered
#                over LMTP with the milter's edits (its X-Weir-Stamp)
#   lmtp         LMTP only: no milter session, LMTP evaluates
# RECIPIENTS (default 1) sets the envelope recipients per message;
# MESSAGES (default 3000) the messages per run. Figures: benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPIENTS=${RECIPIENTS:-1}
MESSAGES=${MESSAGES:-3000}
cargo build --release -q -p weir -p weir-benches --bin weir --bin milter-load

run() {
  local variant=$1 sessions=$2 port=18990
  local dir
  dir=$(mktemp -d /tmp/weir-bench-$variant.XXXX)
  cp -r examples/quickstart "$dir/rules"
  echo secret-token-for-the-bench > "$dir/token"
  chmod 600 "$dir/token"
  {
    echo "rules = \"rules/support.flow\""
    echo "state_dir = \"state\""
    echo "[milter]"; echo "listen = \"inet:127.0.0.1:$port\""
    echo "[http]"; echo "listen = \"inet:127.0.0.1:$((port + 2))\""; echo "token_file = \"token\""
    echo "[notify.slack-vip]"; echo "url = \"http://127.0.0.1:9/hook\""
    echo "[relay]"; echo "host = \"inet:127.0.0.1:9\""; echo "from = \"weir@example.com\""
    if [ "$variant" != milter ]; then
      echo "[lmtp]"; echo "listen = \"inet:127.0.0.1:$((port + 1))\""
      echo "maildir = \"$dir/mail/{domain}/{local}\""
    fi
  } > "$dir/weir.toml"
  WEIR_LOG=warn target/release/weir serve --config "$dir/weir.toml" 2>"$dir/log" &
  local pid=$!
  sleep 3
  local lmtp=()
  case $variant in
    both) lmtp=(--lmtp "127.0.0.1:$((port + 1))") ;;
    lmtp) lmtp=(--lmtp "127.0.0.1:$((port + 1))" --lmtp-only) ;;
  esac
  target/release/milter-load --addr "127.0.0.1:$port" --sessions "$sessions" \
    --messages "$MESSAGES" --recipients "$RECIPIENTS" "${lmtp[@]}" 2>&1 | tail -7
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for sessions in 1 8; do
  for variant in milter both lmtp; do
    echo "== $variant, $sessions sessions, $RECIPIENTS recipient(s)"
    run "$variant" "$sessions"
  done
done
