#!/bin/bash
# milter-only vs milter with [lmtp] (per-recipient decisions + stamp), same rules.
set -e
cd "$(dirname "$0")/.."
run() {
  local variant=$1 port=$2 http=$3
  D=$(mktemp -d /tmp/weir-bench-$variant.XXXX)
  cp -r examples/quickstart "$D/rules"
  echo secret > "$D/token"
  {
    echo "rules = \"rules/support.flow\""
    echo "state_dir = \"state\""
    echo "[milter]"; echo "listen = \"inet:127.0.0.1:$port\""
    echo "[http]"; echo "listen = \"inet:127.0.0.1:$http\""; echo "token_file = \"token\""
    echo "[notify.slack-vip]"; echo "url = \"http://127.0.0.1:9/hook\""
    if [ "$variant" = both ]; then
      echo "[lmtp]"; echo "listen = \"inet:127.0.0.1:$((port+1))\""; echo "maildir = \"$D/mail/{domain}/{local}\""
    fi
  } > "$D/weir.toml"
  WEIR_LOG=warn target/release/weir serve --config "$D/weir.toml" 2>"$D/log" &
  local pid=$!
  sleep 3
  target/release/milter-load --addr 127.0.0.1:$port --sessions $4 --messages $5 2>&1 | tail -6
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$D"
}
for s in 1 8; do
  echo "== milter only, sessions $s"; run milter 18990 18980 $s 3000
  echo "== milter + [lmtp] (stamp), sessions $s"; run both 18992 18981 $s 3000
done
