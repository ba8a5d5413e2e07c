# shellcheck shell=bash
# Shell helpers shared by the benchmark scripts (sourced, not run).

# Waits until something listens on 127.0.0.1:PORT, at most SECONDS
# (default 60); says so and fails otherwise.
wait_port() { # port [seconds]
  local _
  for _ in $(seq $((${2:-60} * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listens on 127.0.0.1:$1 after ${2:-60} s" >&2
  return 1
}
