# shellcheck shell=bash
# Sourced by benches/peers/run.sh and benches/peers/milter.sh: one place
# that writes the private rspamd configuration both measure.
#
# rspamd_config DIR RULES_LUA STOCK
#   Copies Debian's /etc/rspamd to DIR/etc (DIR/run and DIR/db made too),
#   installs RULES_LUA (the generated rspamd_N.lua) as rspamd.local.lua,
#   points DNS at a closed loopback port, treats loopback and 192.0.2.0/24
#   (the client milter-load presents) as local, so that no per-client
#   lookup waits for that port's timeout (about 200 ms a message through
#   milter-load before 192.0.2.0/24 was listed), logs errors only to the console
#   and disables every network, Bayes and history module. STOCK=0 loads
#   only the generated rules (rspamd's stock Lua rules, its own regexp,
#   header, HTML and MIME checks, are not loaded), so that rspamd does the
#   same work as the other engines; STOCK=1 keeps the stock set-up. Every
#   worker (normal, proxy, controller, fuzzy) is disabled: the caller
#   enables the one it measures with DIR/etc/local.d/worker-NAME.inc.
rspamd_config() {
  local dir=$1 rules=$2 stock=$3 worker module
  rm -rf "$dir"
  mkdir -p "$dir/run" "$dir/db"
  cp -r /etc/rspamd "$dir/etc"
  cp "$rules" "$dir/etc/rspamd.local.lua"
  if [[ $stock == 0 ]]; then
    cat >"$dir/etc/generated-only.lua" <<'LUA'
require "global_functions" ()
config['regexp'] = {}
rspamd_maps = {}
dofile(rspamd_paths['LOCAL_CONFDIR'] .. '/rspamd.local.lua')
LUA
    # shellcheck disable=SC2016 # rspamd's own variables, not the shell's
    sed -i 's|^lua = "$RULESDIR/rspamd.lua"|lua = "$CONFDIR/generated-only.lua"|' "$dir/etc/common.conf"
    grep -q 'generated-only.lua' "$dir/etc/common.conf" || {
      echo "rspamd_config: $dir/etc/common.conf has no 'lua = \"\$RULESDIR/rspamd.lua\"' line to replace" >&2
      return 1
    }
  fi
  cat >"$dir/etc/local.d/options.inc" <<CONF
dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }
local_addrs = ["127.0.0.0/8", "192.0.2.0/24"];
CONF
  for worker in normal proxy controller fuzzy; do
    printf 'enabled = false;\n' >"$dir/etc/local.d/worker-$worker.inc"
  done
  printf 'type = "console";\nlevel = "error";\n' >"$dir/etc/local.d/logging.inc"
  for module in rbl surbl emails dkim dkim_signing arc spf dmarc fuzzy_check neural \
      phishing multimap asn url_redirector history_redis greylist ratelimit replies \
      mx_check whitelist dcc olefy external_services antivirus bayes_expiry \
      reputation clickhouse elastic metadata_exporter; do
    printf 'enabled = false;\n' >"$dir/etc/local.d/$module.conf"
  done
}

# rspamd_run DIR [COMMAND PREFIX...]: starts rspamd in the foreground on the
# configuration rspamd_config wrote to DIR, in the background, its output
# in DIR/rspamd.log. The caller takes the pid from $!.
rspamd_run() {
  local dir=$1
  shift
  "$@" rspamd -c "$dir/etc/rspamd.conf" -f -u root -g root -i \
    --var=CONFDIR="$dir/etc" --var=LOCAL_CONFDIR="$dir/etc" \
    --var=DBDIR="$dir/db" --var=RUNDIR="$dir/run" --var=LOGDIR="$dir" \
    >"$dir/rspamd.log" 2>&1 &
}
