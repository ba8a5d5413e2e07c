#!/usr/bin/env python3
"""The classifier benchmark (see run.sh): split, learn, classify, score."""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SPAM_GROUPS = ("spam-1", "spam-2")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def split(data, seed, out):
    with open(os.path.join(data, "file_list.json")) as f:
        files = json.load(f)
    rng = random.Random(seed)
    files = sorted(files)
    rng.shuffle(files)
    half = len(files) // 2
    sets = {"train": files[:half], "test": files[half:]}
    truth = {}
    for part, names in sets.items():
        for name in names:
            group = name.split("/")[0]
            label = "spam" if group in SPAM_GROUPS else "ham"
            dest = os.path.join(out, part, label)
            os.makedirs(dest, exist_ok=True)
            target = os.path.join(dest, name.replace("/", "_"))
            shutil.copyfile(os.path.join(data, name), target)
            if part == "test":
                truth[target] = label
    return truth


def count(out, part, label):
    return len(os.listdir(os.path.join(out, part, label)))


def scores(truth, predicted_spam):
    spam = [f for f, l in truth.items() if l == "spam"]
    ham = [f for f, l in truth.items() if l == "ham"]
    tp = sum(1 for f in spam if predicted_spam(f))
    fp = sum(1 for f in ham if predicted_spam(f))
    recall = 100.0 * tp / len(spam)
    fpr = 100.0 * fp / len(ham)
    acc = 100.0 * (tp + len(ham) - fp) / len(truth)
    return f"recall {recall:6.2f} %  false positives {fpr:5.2f} % ({fp} of {len(ham)})  accuracy {acc:6.2f} %"


def weir_side(args, out, truth):
    state = os.path.join(out, "weir-state")
    learned = count(out, "train", "spam") + count(out, "train", "ham")
    t0 = time.monotonic()
    for label in ("spam", "ham"):
        subprocess.run([args.weir, "learn", "spam", label, os.path.join(out, "train", label),
                        "--state", state], check=True, stdout=subprocess.DEVNULL)
    t_learn = time.monotonic() - t0
    t0 = time.monotonic()
    run = subprocess.run([args.weir, "run", "--json", "--state", state, args.rules,
                          os.path.join(out, "test")], check=True, capture_output=True, text=True)
    t_classify = time.monotonic() - t0
    junk, prob = {}, {}
    for line in run.stdout.splitlines():
        d = json.loads(line)
        junk[d["file"]] = d["folder"] == "Junk"
        p = [t for t in d["tags"] if t.startswith("p=")]
        prob[d["file"]] = float(p[0][2:]) if p else 0.0
    print("Weir (learned classifier, default cut: spam.class == \"spam\")")
    print(f"  default cut          {scores(truth, lambda f: junk[f])}")
    for t in THRESHOLDS:
        print(f"  probability >= {t:<5} {scores(truth, lambda f, t=t: prob[f] >= t)}")
    print(f"  learn    {learned / t_learn:8.0f} messages/s ({learned} in {t_learn:.2f} s, two `weir learn` runs)")
    print(f"  classify {len(truth) / t_classify:8.0f} messages/s ({len(truth)} in {t_classify:.2f} s, one `weir run --state`)")
    return learned / t_learn, len(truth) / t_classify


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sa_side(args, out, truth):
    """SpamAssassin 4 with a private Bayes database (harness recipe)."""
    site = os.path.join(out, "sa-site")
    shutil.copytree("/etc/spamassassin", site)
    bayes = os.path.join(out, "sa-bayes")
    os.makedirs(bayes)
    settings = (f"bayes_path {bayes}/bayes\nuse_bayes 1\nbayes_auto_learn 0\n"
                "bayes_min_ham_num 1\nbayes_min_spam_num 1\nskip_rbl_checks 1\n"
                "bayes_file_mode 0777\nlock_method flock\n")
    prefs = os.path.join(out, "sa-prefs")
    with open(prefs, "w") as f:
        f.write(settings)
    with open(os.path.join(site, "local.cf"), "a") as f:
        f.write("\n" + settings)
    os.chmod(out, 0o755)
    for d, _, files in os.walk(out):
        os.chmod(d, 0o777)
        for name in files:
            os.chmod(os.path.join(d, name), 0o666)
    learned = count(out, "train", "spam") + count(out, "train", "ham")
    t0 = time.monotonic()
    for label in ("spam", "ham"):
        subprocess.run(["sa-learn", f"--prefs-file={prefs}", "-L", f"--{label}",
                        os.path.join(out, "train", label)], check=True, stdout=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    t_learn = time.monotonic() - t0
    for d, _, files in os.walk(bayes):
        os.chmod(d, 0o777)
        for name in files:
            os.chmod(os.path.join(d, name), 0o666)
    port = free_port()
    # Its own session: spamd signals its process group when it stops.
    spamd = subprocess.Popen(["spamd", f"--siteconfigpath={site}", "-x", "-L", "--max-children=2",
                              "--port", str(port), "--listen", "127.0.0.1", "-u", "nobody"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        files = sorted(truth)
        t0 = time.monotonic()
        results = {}
        procs = {}
        pending = list(files)
        while pending or procs:
            while pending and len(procs) < 2:
                f = pending.pop()
                procs[f] = subprocess.Popen(["spamc", "-p", str(port), "-R"], stdin=open(f, "rb"),
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for f, p in list(procs.items()):
                if p.poll() is not None:
                    results[f] = p.stdout.read().decode("utf-8", "replace")
                    del procs[f]
            time.sleep(0.002)
        t_classify = time.monotonic() - t0
    finally:
        os.killpg(spamd.pid, signal.SIGTERM)
        spamd.wait()
    score, bayes_level = {}, {}
    for f, text in results.items():
        first = text.split("\n", 1)[0]
        try:
            score[f] = float(first.split("/")[0])
        except ValueError:
            score[f] = 0.0
        m = re.findall(r"BAYES_(\d+)", text)
        bayes_level[f] = int(m[0]) if m else -1
    print("SpamAssassin 4 (Debian, private Bayes, -L, two spamd children)")
    for level in (99, 95, 80, 60, 50):
        print(f"  Bayes >= BAYES_{level:<3}     {scores(truth, lambda f, l=level: bayes_level[f] >= l)}")
    print(f"  full rules, score >= 5 {scores(truth, lambda f: score[f] >= 5.0)}")
    print(f"  learn    {learned / t_learn:8.1f} messages/s ({learned} in {t_learn:.1f} s, sa-learn)")
    print(f"  classify {len(truth) / t_classify:8.1f} messages/s ({len(truth)} in {t_classify:.1f} s, spamc)")
    return learned / t_learn, len(truth) / t_classify


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--weir", required=True)
    p.add_argument("--rules", required=True)
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--no-spamassassin", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    out = tempfile.mkdtemp(prefix="weir-classify-")
    try:
        truth = split(args.data, args.seed, out)
        print(f"corpus: {args.data}")
        print(f"split (seed {args.seed}): train {count(out, 'train', 'spam')} spam + "
              f"{count(out, 'train', 'ham')} ham, test {count(out, 'test', 'spam')} spam + "
              f"{count(out, 'test', 'ham')} ham")
        w_learn, w_classify = weir_side(args, out, truth)
        if not args.no_spamassassin:
            if shutil.which("spamd") is None:
                print("SpamAssassin: not installed (apt-get install spamassassin spamc)")
            else:
                s_learn, s_classify = sa_side(args, out, truth)
                print(f"Weir / SpamAssassin: learn {w_learn / s_learn:.0f}x, classify {w_classify / s_classify:.0f}x")
        sys.stdout.flush()
    finally:
        if args.keep:
            print(f"work directory kept: {out}")
        else:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
