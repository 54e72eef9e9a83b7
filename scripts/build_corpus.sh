#!/bin/bash
# Builds the pretraining corpus of tunery's built-in base models from
# public-domain / permissively licensed English text that ships as Debian
# packages (no network): the King James Bible (bible-kjv, public domain), the
# Jargon File 4.4.7 (jargon-text, public domain), and the BSD fortunes
# collection (fortunes, fortunes-min; BSD licence). Paragraphs are
# de-duplicated (exact match after whitespace folding), shuffled with a fixed
# seed, and every 50th paragraph is held out for validation.
#   scripts/build_corpus.sh [OUT_DIR]    (default build/corpus)
set -euo pipefail
out="${1:-build/corpus}"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for p in bible-kjv jargon-text fortunes fortunes-min; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "build_corpus: Debian package $p is missing; run scripts/install-deps.sh" >&2; exit 1; }
done

# KJV: `bible` prints "Book N" headings and wrapped, numbered verses.
bible "Gen1:1-Rev22:21" >"$tmp/kjv.txt"
# Jargon File: plain-text entries separated by blank lines.
zcat /usr/share/doc/jargon-text/jargon.txt.gz >"$tmp/jargon.txt"
# Fortunes: entries separated by lines holding only '%'; the offensive set is not used.
for f in /usr/share/games/fortunes/*; do
  case "$f" in *.dat|*.u8) continue;; esac
  [ -f "$f" ] && sed 's/^%$//' "$f"
done >"$tmp/fortunes.txt"

/usr/bin/python3 - "$tmp" "$out" <<'PY'
import hashlib, random, re, sys, os
tmp, out = sys.argv[1], sys.argv[2]
paras, seen, stats = [], set(), {}
for name in ("kjv", "jargon", "fortunes"):
    text = open(os.path.join(tmp, name + ".txt"), encoding="utf-8", errors="replace").read()
    if name == "kjv":
        # One chapter per paragraph: the heading, then one verse per line with
        # the printer's line wrapping undone.
        chunks, verses = [], []
        for l in text.split("\n"):
            m = re.match(r"^\s+(\d+) (.*)$", l)
            if m:
                verses.append(m.group(1) + " " + m.group(2))
            elif l.strip() and verses and not re.match(r"^[1-3]?\s?[A-Z][A-Za-z ]+ \d+$", l):
                verses[-1] += " " + l.strip()
            elif l.strip():
                if len(verses) > 1: chunks.append("\n".join(verses))
                verses = [l.strip()]
        if len(verses) > 1: chunks.append("\n".join(verses))
    else:
        chunks = re.split(r"\n\s*\n", text)
    kept = 0
    for c in chunks:
        c = c.strip("\n")
        key = hashlib.sha1(" ".join(c.split()).encode()).hexdigest()
        if len(c) < 20 or key in seen:
            continue
        seen.add(key); paras.append(c); kept += 1
    stats[name] = kept
random.Random(20261125).shuffle(paras)
valid = [p for i, p in enumerate(paras) if i % 50 == 0]
train = [p for i, p in enumerate(paras) if i % 50 != 0]
sep = "\n<|endoftext|>\n"
open(os.path.join(out, "train.txt"), "w").write(sep.join(train) + "\n")
open(os.path.join(out, "valid.txt"), "w").write(sep.join(valid) + "\n")
print("build_corpus: paragraphs kept per source:", stats, "train", len(train), "valid", len(valid), file=sys.stderr)
PY
ls -l "$out"
