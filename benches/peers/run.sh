#!/usr/bin/env bash
# Peer comparison: messages per second over the synthetic corpus for the
# generated rule sets (tests/corpus/gen_rules.py), one core, loopback only,
# no network lookups, in Weir (release build, `weir run RULES DIR`, whole
# process), Dovecot Pigeonhole (`sieve-filter` over a Maildir) and rspamd
# (the regexp module; worker CPU time while `rspamc` feeds the corpus).
#
# Usage (as root, on Debian): benches/peers/run.sh [N ...]   (default: 10 100 1000 10000)
# RSPAMD_STOCK=0 loads only the generated rules in rspamd (not its stock rules).
# Prints one table row per N: msgs/s for each engine and Weir's ratio to each,
# then the milter comparison through Postfix (benches/peers/milter.sh: Postfix
# alone, with an accept-all milter, with `weir serve` and with rspamd's milter)
# at MILTER_N rules (default 1000); MILTER=0 leaves it out.
set -euo pipefail
# Also inside $(...), so that a failed measurement stops the script.
shopt -s inherit_errexit
root="$(cd "$(dirname "$0")/../.." && pwd)"
ns=("${@:-10 100 1000 10000}")
read -r -a ns <<< "${ns[*]}"
work="$root/target/peers"
# Weir's binary goes where cargo puts it: honour CARGO_TARGET_DIR (a
# relative one is relative to $root, where cargo is run below) instead of
# assuming target/, or a stale or missing target/release/weir is measured.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
weir_bin="$target_dir/release/weir"
corpus="$root/target/bench-corpus"
# The rspamd configuration both scripts measure (rspamd_config, rspamd_run).
# shellcheck source=benches/peers/rspamd-config.sh
source "$root/benches/peers/rspamd-config.sh"

install() {
  command -v sieve-filter >/dev/null && command -v rspamd >/dev/null && return
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends dovecot-core dovecot-sieve rspamd >/dev/null
}

generate() {
  [[ -f $corpus/rules/rules_1000.flow ]] && return
  python3 "$root/tests/corpus/gen_corpus.py" "$corpus" >/dev/null
  python3 "$root/tests/corpus/gen_rules.py" "$corpus" "$corpus/rules" >/dev/null
}

# CPU seconds (user + sys) of a command and its children, pinned to one core,
# from getrusage (microseconds): time(1) prints hundredths, and Weir reads the
# whole corpus with 10 or 100 rules in about a tenth of a second, so its rate
# came out as exactly 10,000 messages/s at both. A failing command stops the
# script instead of being timed.
cpu_seconds() {
  if ! python3 -c '
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{used.ru_utime + used.ru_stime:.6f}")
sys.exit(done.returncode)' taskset -c 0 "$@"; then
    printf 'failed: %s\n' "$*" >&2
    return 1
  fi
}

messages=0
weir_rate() {
  local n=$1 secs
  secs=$(cpu_seconds "$weir_bin" run --engine "${WEIR_ENGINE:-jit}" --json \
    "$corpus/rules/rules_$n.flow" "$corpus/synth")
  awk -v m="$messages" -v s="$secs" 'BEGIN {printf "%.0f", m / s}'
}

# Pigeonhole runs as an ordinary user (Dovecot refuses root) over a Maildir
# copy of the corpus.
pigeonhole_setup() {
  id weirbench >/dev/null 2>&1 || useradd -m weirbench
  local home=/home/weirbench
  rm -rf "$home/Maildir"
  mkdir -p "$home/Maildir/"{cur,new,tmp}
  local i=0
  for f in "$corpus"/synth/*.eml; do
    i=$((i + 1))
    cp "$f" "$home/Maildir/cur/$i.synth:2,"
  done
  printf 'mail_location=maildir:~/Maildir\n' > "$home/dovecot.conf"
  chown -R weirbench "$home"
}

pigeonhole_rate() {
  local n=$1 home=/home/weirbench secs
  cp "$corpus/rules/rules_$n.sieve" "$home/"
  chown weirbench "$home/rules_$n.sieve"
  runuser -u weirbench -- sievec "$home/rules_$n.sieve" "$home/rules_$n.svbin" 2>/dev/null || true
  secs=$(cpu_seconds runuser -u weirbench -- sieve-filter -c "$home/dovecot.conf" "$home/rules_$n.sieve" INBOX)
  awk -v m="$messages" -v s="$secs" 'BEGIN {printf "%.0f", m / s}'
}

# rspamd with only the regexp module's generated symbols: a private config
# directory, one normal worker on loopback, DNS pointed at a closed port.
rspamd_rate() {
  local n=$1
  local dir="$work/rspamd-$n" port=11433 pid cpu_before cpu_after
  # RSPAMD_STOCK=0: only the generated rules (rspamd-config.sh); default 1:
  # the stock set-up.
  rspamd_config "$dir" "$corpus/rules/rspamd_$n.lua" "${RSPAMD_STOCK:-1}"
  cat > "$dir/etc/local.d/worker-normal.inc" <<CONF
bind_socket = "127.0.0.1:$port";
count = 1;
CONF
  # Pinned to one core (core 1; rspamc, which feeds it, is not measured).
  rspamd_run "$dir" taskset -c 1
  pid=$!
  # Start-up compiles the regexps (hyperscan) and gives up on DNS: wait
  # until the worker answers a real message.
  for _ in $(seq 300); do
    rspamc -h "127.0.0.1:$port" "$corpus/synth/0001.eml" 2>/dev/null | grep -q '^Action' && break
    sleep 0.5
  done
  local worker
  worker=$(pgrep -f "rspamd: normal process \\(127.0.0.1:$port\\)" | head -1)
  cpu_before=$(awk '{print $14 + $15}' "/proc/$worker/stat")
  rspamc -h "127.0.0.1:$port" "$corpus/synth" >/dev/null 2>&1 || true
  cpu_after=$(awk '{print $14 + $15}' "/proc/$worker/stat")
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local ticks
  ticks=$(getconf CLK_TCK)
  awk -v m="$messages" -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" \
    'BEGIN {s = (b - a) / t; if (s <= 0) print "n/a"; else printf "%.0f", m / s}'
}

install
generate
messages=$(find "$corpus/synth" -type f | wc -l)
(cd "$root" && cargo build --release -q -p weir)
pigeonhole_setup
mkdir -p "$work"
printf '| rules | Weir msg/s | Pigeonhole msg/s | rspamd msg/s | Weir / Pigeonhole | Weir / rspamd |\n'
printf '|---|---|---|---|---|---|\n'
for n in "${ns[@]}"; do
  w=$(weir_rate "$n")
  p=$(pigeonhole_rate "$n")
  r=$(rspamd_rate "$n")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0) printf "%.1fx", a / b; else print "n/a"}'; }
  printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$w" "$p" "$r" "$(ratio "$w" "$p")" "$(ratio "$w" "$r")"
done
if [[ ${MILTER:-1} != 0 ]]; then
  printf '\n'
  N="${MILTER_N:-1000}" "$root/benches/peers/milter.sh"
fi
