#!/usr/bin/env python3
"""Build the fortunes classification example set from Debian's `fortunes` package.

Why: tunery's learning test and demo need real text that nobody wrote for
them. Each fortune cookie file is a category; the task is to tell which file
a fortune came from.

  prompt     = the fortune, whitespace collapsed, + "\\n\\n###\\n\\n"  (separator)
  completion = " " + category  (" computers", " food", " law")

Fortunes of 20..200 characters only (short texts keep the test fast), at most
PER_CLASS per category (balanced), shuffled with a fixed seed, split 80/20
per category. Output: data/examples/fortunes_train.jsonl and
fortunes_valid.jsonl. Standard library only; deterministic for a given
`fortunes` package version.

usage: scripts/make_fortunes_dataset.py [--src /usr/share/games/fortunes] [--out data/examples]
"""
import argparse
import json
import os
import random
import re
import sys

CATEGORIES = ["computers", "food", "law"]
PER_CLASS = 150
SEED = 20231125
SEPARATOR = "\n\n###\n\n"


def read_fortunes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = []
    for chunk in re.split(r"^%\s*$", text, flags=re.M):
        s = " ".join(chunk.split())
        if 20 <= len(s) <= 200:
            out.append(s)
    return sorted(set(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="/usr/share/games/fortunes")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "examples"))
    a = ap.parse_args()
    rng = random.Random(SEED)
    train, valid = [], []
    for cat in CATEGORIES:
        path = os.path.join(a.src, cat)
        if not os.path.exists(path):
            sys.exit("%s is missing: apt-get install fortunes" % path)
        items = read_fortunes(path)
        rng.shuffle(items)
        items = items[:PER_CLASS]
        k = len(items) * 4 // 5
        train += [(s, cat) for s in items[:k]]
        valid += [(s, cat) for s in items[k:]]
    rng.shuffle(train)
    rng.shuffle(valid)
    os.makedirs(a.out, exist_ok=True)
    for name, rows in (("fortunes_train.jsonl", train), ("fortunes_valid.jsonl", valid)):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            for s, cat in rows:
                f.write(json.dumps({"prompt": s + SEPARATOR, "completion": " " + cat}, ensure_ascii=False) + "\n")
    counts = {c: sum(1 for _, x in valid if x == c) for c in CATEGORIES}
    print("wrote %d training and %d validation examples to %s (validation per class: %s)"
          % (len(train), len(valid), a.out, counts))


if __name__ == "__main__":
    main()
