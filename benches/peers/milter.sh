#!/usr/bin/env bash
# Through Postfix: what a milter adds to a message as a sending MTA sees it.
# One private Postfix on loopback (its own config directory and queue) with
# four smtpd listeners, one per set-up, measured in the same run:
#   none     Postfix alone, no milter
#   accept   Postfix + accept-milter (benches/src/bin/accept_milter.rs: the
#            same milter library as Weir, every stage, accepts everything)
#   weir     Postfix + `weir serve` (release build) with rules_N.flow
#   rspamd   Postfix + rspamd's proxy in milter mode (self_scan) with only the
#            generated rspamd_N.lua rules (no stock rules, no Bayes, no
#            network checks; DNS pointed at a closed loopback port)
# smtp-load (benches/src/bin/smtp_load.rs) sends the synthetic corpus over
# SMTP, one message per connection, to user@example.com; latency is from the
# end of DATA to Postfix's 250 (where Postfix waits for its milter). Each
# set-up is run at 1 session (p50/p90/p99) and at 32 sessions (messages/s),
# and each milter also without Postfix (milter-load at 32 sessions straight
# to the milter's socket: the kind of figure 1,785/s in issue 17 is),
# REPEAT times, set-ups interleaved so that the machine's other load falls on
# all of them alike. Postfix delivers to its `discard` transport: delivery
# happens after the 250 and is not what is measured, but on a small machine
# it competes for the CPU; discard is the cheapest agent (it marks the
# recipient done without reading the message) and keeps the queue empty.
# Postfix still writes and fsyncs each queue file before its 250, as in
# production, in every set-up.
#
# Usage (as root, on Debian; installs postfix and rspamd if missing):
#   benches/peers/milter.sh            # N=1000 REPEAT=2 MESSAGES_1=2000 MESSAGES_32=10000
#   benches/peers/milter.sh --smoke    # 20 messages per measurement, once: checks the set-up
#   CONFIGS="accept weir" limits the set-ups; KEEP=1 keeps the work directory (Postfix's log)
#   ACCEPT_ARGS="--no-reply --quick-ack" passes options to accept-milter (see its --help)
# Any rejected or tempfailed message stops the script with status 1.
# Figures: benches/README.md, "Through Postfix".
set -euo pipefail
# Also inside $(...), so that a failed measurement stops the script.
shopt -s inherit_errexit
root="$(cd "$(dirname "$0")/../.." && pwd)"
N=${N:-1000}
REPEAT=${REPEAT:-2}
MESSAGES_1=${MESSAGES_1:-2000}
MESSAGES_32=${MESSAGES_32:-10000}
CONFIGS=${CONFIGS:-none accept weir rspamd}
if [[ ${1:-} == --smoke ]]; then
  REPEAT=1 MESSAGES_1=20 MESSAGES_32=64
elif [[ $# -gt 0 ]]; then
  sed -n '2,32p' "$0" >&2
  exit 2
fi
[[ $(id -u) == 0 ]] || { echo "milter.sh: run as root (Postfix's master needs it)" >&2; exit 1; }
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
bin="$target_dir/release"
corpus="$root/target/bench-corpus"
# The rspamd configuration both scripts measure (rspamd_config, rspamd_run).
# shellcheck source=benches/peers/rspamd-config.sh
source "$root/benches/peers/rspamd-config.sh"
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"
# Postfix wants its queue under root-owned directories: a private one in /tmp.
work=$(mktemp -d /tmp/weir-milter-peers.XXXXXX)
# mktemp makes it 0700; Postfix's own user must reach its data directory.
chmod 755 "$work"
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $work/postfix/etc/main.cf ]] && postfix -c "$work/postfix/etc" stop >/dev/null 2>&1
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

install_packages() {
  command -v postfix >/dev/null && command -v rspamd >/dev/null && return
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends postfix rspamd >/dev/null
}

generate() {
  [[ -f $corpus/rules/rules_$N.flow ]] && return
  python3 "$root/tests/corpus/gen_corpus.py" "$corpus" >/dev/null
  python3 "$root/tests/corpus/gen_rules.py" "$corpus" "$corpus/rules" >/dev/null
}

# Eight free loopback ports (seven used) (the kernel picks them; they are released just
# before use, which is good enough on a machine without a port race).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

# Postfix prints its errors only to a tty or syslog: under script(1) they show.
pf() { script -qec "postfix -c $work/postfix/etc $*" /dev/null; }

postfix_start() {
  local wd=$work/postfix
  install -d -m 0755 "$wd" "$wd/etc" "$wd/spool" "$wd/log"
  install -d -m 0700 -o postfix -g postfix "$wd/data"
  cat >"$wd/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $wd/spool
data_directory = $wd/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $wd/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, $wd/log
myhostname = mx.bench.test
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# Every recipient is discarded once queued (see the header of this script).
default_transport = discard:benchmark
relay_transport = discard:benchmark
local_transport = discard:benchmark
milter_protocol = 6
# A milter that is down or too slow tempfails the message, which stops the run.
milter_default_action = tempfail
in_flow_delay = 0
smtpd_error_sleep_time = 0
default_process_limit = 200
EOF
  cat >"$wd/etc/master.cf" <<EOF
# service         type  private unpriv chroot wakeup maxproc command
pickup            unix  n       -      n      60     1       pickup
cleanup           unix  n       -      n      -      0       cleanup
qmgr              unix  n       -      n      300    1       qmgr
rewrite           unix  -       -      n      -      -       trivial-rewrite
bounce            unix  -       -      n      -      0       bounce
defer             unix  -       -      n      -      0       bounce
trace             unix  -       -      n      -      0       bounce
verify            unix  -       -      n      -      1       verify
flush             unix  n       -      n      1000?  0       flush
proxymap          unix  -       -      n      -      -       proxymap
showq             unix  n       -      n      -      -       showq
error             unix  -       -      n      -      -       error
retry             unix  -       -      n      -      -       error
discard           unix  -       -      n      -      -       discard
anvil             unix  -       -      n      -      1       anvil
scache            unix  -       -      n      -      1       scache
postlog           unix-dgram n  -      n      -      1       postlogd
127.0.0.1:${smtp_port[none]} inet n - n - - smtpd
127.0.0.1:${smtp_port[accept]} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:${milter_port[accept]}
127.0.0.1:${smtp_port[weir]} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:${milter_port[weir]}
127.0.0.1:${smtp_port[rspamd]} inet n - n - - smtpd -o smtpd_milters=unix:$work/rspamd/milter.sock
EOF
  pf check
  pf start
  wait_port "${smtp_port[none]}" 20
}

# Waits until Postfix has discarded everything queued, so that one
# measurement's deliveries do not run during the next.
drain() {
  local _
  for _ in $(seq 600); do
    postqueue -c "$work/postfix/etc" -p 2>/dev/null | grep -q '^Mail queue is empty' && return
    sleep 0.1
  done
  echo "milter.sh: Postfix's queue did not drain in 60 s" >&2
  return 1
}

weir_start() {
  local dir=$work/weir port=${milter_port[weir]}
  mkdir -p "$dir"
  cp "$corpus/rules/rules_$N.flow" "$dir/rules.flow"
  echo secret-token-for-the-bench >"$dir/token"
  chmod 600 "$dir/token"
  printf 'rules = "rules.flow"\nstate_dir = "state"\n[milter]\nlisten = "inet:127.0.0.1:%s"\n[http]\nlisten = "inet:127.0.0.1:%s"\ntoken_file = "token"\n' \
    "$port" "$http_port" >"$dir/weir.toml"
  WEIR_LOG=warn "$bin/weir" serve --config "$dir/weir.toml" 2>>"$dir/log" &
  pids+=($!)
  wait_port "$port" 60
}

rspamd_start() {
  local dir=$work/rspamd
  # Only the generated rules: rspamd's stock Lua rules are not loaded.
  rspamd_config "$dir" "$corpus/rules/rspamd_$N.lua" 0
  # The proxy scans by itself (self_scan): no hop to a normal worker. One
  # process per core, as Weir's runtime has one thread per core. A Unix
  # socket: over TCP each message waited about 40 ms more (Nagle's
  # algorithm against Postfix's delayed ACK, the harness's pitfall 4; Weir
  # and accept-milter set TCP_NODELAY, rspamd's proxy does not seem to).
  cat >"$dir/etc/local.d/worker-proxy.inc" <<CONF
bind_socket = "$dir/milter.sock mode=0666";
milter = yes;
count = $(nproc);
upstream "local" { default = yes; self_scan = yes; }
CONF
  rspamd_run "$dir"
  pids+=($!)
  local _
  for _ in $(seq 1200); do
    [[ -S $dir/milter.sock ]] && return
    sleep 0.1
  done
  echo "milter.sh: rspamd did not open $dir/milter.sock in 120 s" >&2
  return 1
}

accept_start() {
  # shellcheck disable=SC2086 # ACCEPT_ARGS is a list of options
  "$bin/accept-milter" --listen "127.0.0.1:${milter_port[accept]}" ${ACCEPT_ARGS:-} >/dev/null &
  pids+=($!)
  wait_port "${milter_port[accept]}" 20
}

# Starts the milter of set-up $1 (none: nothing) and sends a few messages
# until one goes through, so that start-up (rspamd compiles its regexps)
# is not measured.
milter_start() {
  case $1 in
    none) ;;
    accept) accept_start ;;
    weir) weir_start ;;
    rspamd) rspamd_start ;;
  esac
  local _
  for _ in $(seq 60); do
    "$bin/smtp-load" --addr "127.0.0.1:${smtp_port[$1]}" --sessions 1 --messages 20 \
      >/dev/null 2>"$work/warmup.err" && { drain; return; }
    sleep 1
  done
  echo "milter.sh: $1 never accepted a message:" >&2
  cat "$work/warmup.err" >&2
  return 1
}

milter_stop() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  rm -rf "$work/weir" "$work/rspamd"
}

# CPU time (user + system, clock ticks) used so far by the running milter:
# its processes and their children (rspamd's proxy workers).
milter_ticks() {
  local pid child all=() ticks=0
  for pid in "${pids[@]}"; do
    all+=("$pid")
    while read -r child; do all+=("$child"); done < <(pgrep -P "$pid" || true)
  done
  for pid in "${all[@]}"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$ticks"
}

# The milter alone, without Postfix: milter-load at 32 sessions straight to
# the milter's socket (the figure issue 17's 1,785 messages/s is: see "The
# milter path" in benches/README.md). Prints messages/s and the milter's
# CPU milliseconds per message (its own processes only, not milter-load's).
direct() { # set-up
  local addr="127.0.0.1:${milter_port[$1]:-}" before
  before=$(milter_ticks)
  [[ $1 == rspamd ]] && addr="unix:$work/rspamd/milter.sock"
  "$bin/milter-load" --addr "$addr" --sessions 32 --messages "$MESSAGES_32" \
    >"$work/direct.out" 2>&1 || {
    echo "milter.sh: milter-load against $1 failed:" >&2
    cat "$work/direct.out" >&2
    return 1
  }
  local after
  after=$(milter_ticks)
  awk -v a="$before" -v b="$after" -v t="$(getconf CLK_TCK)" -v n="$MESSAGES_32" \
    '/ messages\/s$/ {printf "%s %.3f\n", $(NF - 1), (b - a) / t * 1000 / n}' "$work/direct.out"
}

# One measurement: prints "RESULT set-up sessions msg/s p50 p90 p99".
measure() { # set-up sessions messages
  drain
  "$bin/smtp-load" --addr "127.0.0.1:${smtp_port[$1]}" --sessions "$2" --messages "$3" \
    --label "$1" >"$work/load.out" 2>&1 || {
    echo "milter.sh: $1 at $2 sessions failed:" >&2
    cat "$work/load.out" >&2
    return 1
  }
  grep '^RESULT' "$work/load.out"
}

install_packages
generate
(cd "$root" && cargo build --release -q -p weir -p weir-benches \
  --bin weir --bin smtp-load --bin accept-milter --bin milter-load)
read -r -a ports <<<"$(free_ports)"
declare -A smtp_port=([none]=${ports[0]} [accept]=${ports[1]} [weir]=${ports[2]} [rspamd]=${ports[3]})
declare -A milter_port=([accept]=${ports[4]} [weir]=${ports[5]})
http_port=${ports[7]}
postfix_start

printf 'Through Postfix, %s rules, %s; %s cores, load average %s\n' "$N" "$(date -u '+%F %H:%M UTC')" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| run | set-up | p50 ms (1 session) | p90 ms | p99 ms | p50 added over accept | msg/s (32 sessions) | milter alone, msg/s (32 sessions) | milter alone, CPU ms/msg | load avg |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for run in $(seq "$REPEAT"); do
  accept_p50=""
  for c in $CONFIGS; do
    milter_start "$c"
    read -r _ _ _ _ p50 p90 p99 <<<"$(measure "$c" 1 "$MESSAGES_1")"
    read -r _ _ _ rate _ <<<"$(measure "$c" 32 "$MESSAGES_32")"
    alone="–" cpu="–"
    [[ $c == none ]] || read -r alone cpu <<<"$(direct "$c")"
    milter_stop
    [[ $c == accept ]] && accept_p50=$p50
    added=$(awk -v a="$accept_p50" -v p="$p50" 'BEGIN {if (a == "") print "n/a"; else printf "%+.2f ms", p - a}')
    [[ $c == none || $c == accept ]] && added="–"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$run" "$c" "$p50" "$p90" "$p99" \
      "$added" "$rate" "$alone" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
if [[ $(grep -c 'milter-reject\|status=bounced\|status=deferred' "$work/postfix/log/postfix.log" || true) != 0 ]]; then
  echo "milter.sh: Postfix's log shows refused or undelivered messages:" >&2
  grep 'milter-reject\|status=bounced\|status=deferred' "$work/postfix/log/postfix.log" | head >&2
  exit 1
fi
