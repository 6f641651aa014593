#!/usr/bin/env python3
"""FER+ vote distributions with neutral's votes down-weighted, as a target file for
`ferrite train --teacher FILE --teacher-weight 1` (issue 32: "a neutral class that means no
expression, not weak expression").

For each face of a vote file (`file,ferplus_name,neutral,happiness,surprise,sadness,anger,
disgust,fear,contempt,unknown,NF`, the shared data set's `ferplus/{train,val}.csv`): single votes
are dropped (as the FER+ paper drops them), contempt, unknown and NF are dropped, neutral's count
is multiplied by W, and the seven counts are normalised. A face with six neutral and four angry
votes is then angry at W = 0.5 (3 against 4); a face with only neutral votes stays neutral. Faces
with no vote left are not written (they keep their FER+ target). Output: `file,angry,disgust,
fear,happy,neutral,sad,surprise` (ferrite's class order, six decimals, as tools/teacher writes),
written under a temporary name and renamed when complete.

With `--mix TEACHER.csv --mix-weight M` each face's distribution is mixed with a teacher's
probabilities (tools/teacher's CSV): `(1 - M) * distribution + M * teacher`, faces without a
teacher row unmixed (both levers in one target file). `--mix-min-confidence C` mixes only faces
whose teacher gives its top class at least C, and `--mix-min-votes V` only those where that class
also has at least V FER+ votes (distillation where the teacher is sure and raters saw it too);
the other faces keep their votes alone.

Usage: tools/ferplus/neutral_weight.py VOTES.csv OUT.csv [--neutral-weight W]
       [--mix T.csv --mix-weight M [--mix-min-confidence C] [--mix-min-votes V]]
"""
import argparse
import csv
import os
import sys

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
COLUMN_OF = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
             "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}


def target(row, w, where):
    counts = {}
    for c in CLASSES:
        try:
            v = int(row[COLUMN_OF[c]])
        except (KeyError, TypeError, ValueError):
            raise SystemExit(f"{where}: column {COLUMN_OF[c]!r} is not a vote count: {row.get(COLUMN_OF[c])!r}")
        if v < 0:
            raise SystemExit(f"{where}: column {COLUMN_OF[c]!r} is negative: {v}")
        counts[c] = 0.0 if v <= 1 else float(v)
    counts["neutral"] *= w
    total = sum(counts.values())
    return None if total <= 0 else [counts[c] / total for c in CLASSES]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("votes")
    ap.add_argument("out")
    ap.add_argument("--neutral-weight", type=float, default=0.5)
    ap.add_argument("--mix", help="a teacher CSV (file,angry,...,surprise) to mix in")
    ap.add_argument("--mix-weight", type=float, default=0.4)
    ap.add_argument("--mix-min-confidence", type=float, default=0.0)
    ap.add_argument("--mix-min-votes", type=int, default=0)
    a = ap.parse_args()
    if not 0.0 <= a.neutral_weight <= 1.0:
        raise SystemExit(f"--neutral-weight must be in [0, 1], got {a.neutral_weight}")
    if not 0.0 <= a.mix_weight <= 1.0:
        raise SystemExit(f"--mix-weight must be in [0, 1], got {a.mix_weight}")
    if not 0.0 <= a.mix_min_confidence <= 1.0:
        raise SystemExit(f"--mix-min-confidence must be in [0, 1], got {a.mix_min_confidence}")
    if not 0 <= a.mix_min_votes <= 10:
        raise SystemExit(f"--mix-min-votes must be in 0..=10, got {a.mix_min_votes}")
    teacher = read_teacher(a.mix) if a.mix else {}
    tmp = a.out + ".tmp"
    try:
        written, skipped, mixed = convert(a.votes, tmp, a.neutral_weight, teacher, a.mix_weight,
                                          a.mix_min_confidence, a.mix_min_votes)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, a.out)
    print(f"{written} faces -> {a.out} (neutral weight {a.neutral_weight}; {skipped} without votes left; "
          f"{mixed} mixed with the teacher)", file=sys.stderr)


def read_teacher(path):
    try:
        f = open(path, newline="")
    except OSError as e:
        raise SystemExit(f"{path}: {e.strerror}")
    out = {}
    with f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                out[row["file"]] = [float(row[c]) for c in CLASSES]
            except (KeyError, TypeError, ValueError):
                raise SystemExit(f"{path}:{line}: expected file,{','.join(CLASSES)} with numbers")
    return out


def convert(votes, tmp, w, teacher, m, min_confidence=0.0, min_votes=0):
    written = skipped = mixed = 0
    try:
        f = open(votes, newline="")
    except OSError as e:
        raise SystemExit(f"{votes}: {e.strerror}")
    with f, open(tmp, "w", newline="") as out:
        rows = csv.DictReader(f)
        if rows.fieldnames is None or "file" not in rows.fieldnames:
            raise SystemExit(f"{votes}: no header with a 'file' column")
        wr = csv.writer(out)
        wr.writerow(["file"] + CLASSES)
        for line, row in enumerate(rows, start=2):
            t = target(row, w, f"{votes}:{line}")
            if t is None:
                skipped += 1
                continue
            p = teacher.get(row["file"])
            if p is not None and max(p) >= min_confidence and votes_for(row, CLASSES[p.index(max(p))]) >= min_votes:
                mixed += 1
                t = [(1 - m) * a + m * b for a, b in zip(t, p)]
                total = sum(t)
                t = [v / total for v in t]
            wr.writerow([row["file"]] + ["%.6f" % p for p in t])
            written += 1
    return written, skipped, mixed


def votes_for(row, c):
    return int(row[COLUMN_OF[c]])


if __name__ == "__main__":
    main()
