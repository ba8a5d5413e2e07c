#!/usr/bin/env bash
# Correctness on real mail: the tags Weir and Dovecot Pigeonhole set over
# messages of the SpamAssassin public corpus, with N rules that
# tests/corpus/gen_rules.py generates from the corpus's own vocabulary
# (tests/corpus/gen_vocab.py), one tag (Sieve: one IMAP flag) per rule.
#
# Usage (as root, on Debian): benches/peers/spamassassin-tags.sh [N [COUNT]]
#   N rules (default 1000), COUNT messages spread evenly over the corpus
#   (default 500; 6046 is all of it).
# Prints the (message, tag) pairs both set, those only Pigeonhole sets,
# those only Weir sets, F1, and the differences by cause; writes every
# differing pair, with its rule, to
# target/bench-corpus/spamassassin/tags-N-COUNT.diff.
#
# Weir is the release build (`cargo build --release -p weir`, honouring
# CARGO_TARGET_DIR); Pigeonhole is Debian's `sieve-test` (dovecot-sieve),
# run once per message as an ordinary user (Dovecot refuses root).
set -euo pipefail
shopt -s inherit_errexit
root="$(cd "$(dirname "$0")/../.." && pwd)"
n=${1:-1000}
count=${2:-500}
target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
weir_bin="$target_dir/release/weir"
work="$root/target/bench-corpus/spamassassin"

command -v sieve-test >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends dovecot-core dovecot-sieve >/dev/null
}
data="$("$root/tests/corpus/fetch-spamassassin.sh")"
(cd "$root" && cargo build -q --release -p weir)

# The messages: all of them in $work/all (the benchmarks read it), COUNT of
# them in $work/sample-COUNT, named GROUP_NAME.eml in corpus order.
mkdir -p "$work"
python3 - "$data" "$work" "$count" <<'PY'
import json, os, shutil, sys
data, work, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = json.load(open(os.path.join(data, "file_list.json")))
def fill(folder, chosen):
    if os.path.isdir(folder) and len(os.listdir(folder)) == len(chosen):
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name in chosen:
        shutil.copy(os.path.join(data, name),
                    os.path.join(folder, name.replace("/", "_").replace(".txt", ".eml")))
fill(os.path.join(work, "all"), names)
fill(os.path.join(work, "sample-%d" % count),
     [names[i * len(names) // count] for i in range(count)])
PY
[[ -f $work/vocab.txt ]] || python3 "$root/tests/corpus/gen_vocab.py" "$work/all" "$work"
[[ -f $work/rules/rules_$n.flow ]] ||
  python3 "$root/tests/corpus/gen_rules.py" "$work" "$work/rules" 1234 "$n" >/dev/null
sample="$work/sample-$count"

# Weir: one JSON decision per message.
"$weir_bin" run --json "$work/rules/rules_$n.flow" "$sample" > "$work/weir-$n-$count.jsonl"

# Pigeonhole: the flags of each message, as `sieve-test` reports them
# (kept from an earlier run of the same N and COUNT: PIGEONHOLE_RERUN=1
# runs it again).
flags_file="$work/pigeonhole-$n-$count.txt"
if [[ ! -s $flags_file || ${PIGEONHOLE_RERUN:-0} == 1 ]]; then
  id weirbench >/dev/null 2>&1 || useradd -m weirbench
  home=/home/weirbench
  rm -rf "$home/sa-mail"
  cp -r "$sample" "$home/sa-mail"
  cp "$work/rules/rules_$n.sieve" "$home/"
  chown -R weirbench "$home"
  runuser -u weirbench -- sievec "$home/rules_$n.sieve" "$home/rules_$n.svbin"
  : > "$flags_file.tmp"
  for f in "$home"/sa-mail/*.eml; do
    flags=$(runuser -u weirbench -- sieve-test "$home/rules_$n.sieve" "$f" 2>/dev/null |
      sed -n 's/.*add IMAP flags: *//p' | tr '\n' ' ')
    printf '%s %s\n' "$(basename "$f")" "$flags" >> "$flags_file.tmp"
  done
  mv "$flags_file.tmp" "$flags_file"
fi

python3 - "$work" "$n" "$count" <<'PY'
import json, os, re, sys
work, n, count = sys.argv[1], sys.argv[2], sys.argv[3]
weir = {}
for line in open(os.path.join(work, "weir-%s-%s.jsonl" % (n, count))):
    d = json.loads(line)
    weir[os.path.basename(d["file"])] = set(d["tags"])
pigeonhole = {}
for line in open(os.path.join(work, "pigeonhole-%s-%s.txt" % (n, count))):
    name, *flags = line.split()
    pigeonhole[name] = {f.lower() for f in flags}
conditions = {}
for m in re.finditer(r'rule (r\d+) \{\n  when (.*)\n', open(os.path.join(work, "rules", "rules_%s.flow" % n)).read()):
    conditions[m.group(1)] = m.group(2)
both = only_p = only_w = 0
lines = []
for name in sorted(pigeonhole):
    p, w = pigeonhole[name], weir.get(name, set())
    both += len(p & w)
    for side, tags in (("pigeonhole-only", p - w), ("weir-only", w - p)):
        for t in sorted(tags, key=lambda t: int(t[1:])):
            lines.append("%s %s %s  %s" % (side, name, t, conditions.get(t, "?")))
    only_p += len(p - w)
    only_w += len(w - p)
f1 = 2 * both / (2 * both + only_p + only_w) if both else 0.0

# Why each message differs, for `body contains "PHRASE"` rules: the two known
# causes (benches/README.md), found with Python's email package.
import collections, email, email.policy
def cause(side, name, phrase):
    msg = email.message_from_bytes(open(os.path.join(work, "all", name), "rb").read(),
                                   policy=email.policy.default)
    words = r"\s+".join(map(re.escape, phrase.split()))
    split = re.compile(r"\b" + words.replace(r"\s+", r"(?:\s|<[^>]*>|&nbsp;)+"), re.I)
    in_alternative = plain = html = html_split = attached = dashed_comment = False
    for part in msg.walk():
        in_alternative |= part.get_content_type() == "multipart/alternative"
        if part.is_multipart():
            continue
        try:
            text = part.get_content()
        except Exception:
            continue
        if not isinstance(text, str):
            continue
        has = phrase.lower() in text.lower()
        if part.get_content_disposition() == "attachment":
            attached |= has
        elif part.get_content_type() == "text/html":
            # Pigeonhole removes tags too: `click <a ...>here</a>` is there.
            html |= has or split.search(text) is not None
            html_split |= not has and split.search(text) is not None
            at = text.find("<!---")
            dashed_comment |= at >= 0 and phrase.lower() in text[at:].lower()
        else:
            plain |= has
    if side == "pigeonhole-only" and in_alternative and html and not plain:
        return "in the HTML alternative only (Pigeonhole reads every text part)"
    if side == "pigeonhole-only" and attached and not plain and not html:
        return "in a text attachment only (Weir's body leaves attachments out)"
    if side == "weir-only" and dashed_comment:
        return "HTML after a comment written <!--- --->, which Pigeonhole never sees end"
    if side == "weir-only" and html_split:
        return "HTML with a line break or spaces around a tag in the phrase (Weir collapses whitespace as browsers render it)"
    return "other"
causes = collections.Counter()
for line in lines:
    side, name, tag, cond = line.split(None, 3)
    m = re.match(r'body contains "(.*)"$', cond.strip())
    causes[(side, cause(side, name, m.group(1)) if m else "not a body contains rule")] += 1
with open(os.path.join(work, "tags-%s-%s.diff" % (n, count)), "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("N=%s, %s messages: both %d, Pigeonhole only %d, Weir only %d, F1 %.3f"
      % (n, count, both, only_p, only_w, f1))
for (side, why), k in sorted(causes.items()):
    print("  %s: %d, %s" % (side, k, why))
PY
