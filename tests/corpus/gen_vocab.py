#!/usr/bin/env python3
"""The vocabulary of a folder of real messages, for gen_rules.py.

Usage: gen_vocab.py MAILDIR OUTDIR [N]

Writes OUTDIR/vocab.txt: the N (default 5,000) words of 4 to 12 letters
that occur in the most messages of MAILDIR (subject and text parts, HTML
with its tags removed, as Python's email package decodes them), most
frequent first, ties in alphabetical order: the same file every run.
"""
import collections
import email
import email.policy
import os
import re
import sys

WORD = re.compile(r"[a-z]{4,12}")
TAG = re.compile(r"<[^>]*>")


def words_of(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    texts = [str(msg.get("subject", ""))]
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            text = part.get_content()
        except Exception:  # noqa: BLE001 -- an unreadable part adds no words
            continue
        if part.get_content_subtype() == "html":
            text = TAG.sub(" ", text)
        texts.append(text)
    return set(WORD.findall(" ".join(texts).lower()))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    folder, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    counts = collections.Counter()
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            counts.update(words_of(f.read()))
    vocab = sorted(counts, key=lambda w: (-counts[w], w))[:n]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")


if __name__ == "__main__":
    main()
