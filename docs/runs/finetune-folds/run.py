"""Issue 46's fine-tuning protocol on a labelled folder of face crops (class subfolders).

The faces are split into K folds (stratified by class, seeded; by person instead when the file
names start with a person id and --person-prefix gives its length). For each fold:
``ferrite.train(data=<the other folds>, out=..., init="embedded:default")`` with no other
setting (the library's fine-tuning recipe), then ``ferrite.Analyzer(model=out).predict`` on the
fold's faces. Printed and written to OUT/folds.csv and OUT/summary.json: each fold's accuracy,
the embedded model's accuracy on the same faces without fine-tuning, and each fine-tune's time.

    python docs/runs/finetune-folds/run.py ../shared/data/fer2013/val /tmp/folds [--folds 10]
"""

import argparse
import collections
import csv
import json
import os
import platform
import random
import subprocess
import time

import numpy as np

import ferrite


def faces(root):
    rows = []
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        if os.path.isdir(d) and not label.startswith("."):
            rows += [(os.path.join(d, f), label) for f in sorted(os.listdir(d)) if not f.startswith(".")]
    return rows


def folds_of(rows, k, seed, person_prefix):
    rng = random.Random(seed)
    if person_prefix:
        people = sorted({os.path.basename(p)[:person_prefix] for p, _ in rows})
        rng.shuffle(people)
        fold_of = {person: i % k for i, person in enumerate(people)}
        return [fold_of[os.path.basename(p)[:person_prefix]] for p, _ in rows]
    fold = [0] * len(rows)
    by_class = collections.defaultdict(list)
    for i, (_, label) in enumerate(rows):
        by_class[label].append(i)
    for idx in by_class.values():
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold[i] = j % k
    return fold


def accuracy(analyzer, rows):
    probs = analyzer.predict([p for p, _ in rows])
    predicted = [ferrite.EMOTIONS[i] for i in probs.argmax(axis=1)]
    return float(np.mean([p == label for p, (_, label) in zip(predicted, rows)]))


def cpu():
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[1].splitlines()[0].strip()
    except Exception:
        return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--person-prefix", type=int, default=0, help="fold by person: the first N characters of each file name")
    a = ap.parse_args()
    rows = faces(a.data)
    fold = folds_of(rows, a.folds, a.seed, a.person_prefix)
    os.makedirs(a.out, exist_ok=True)
    base = ferrite.Analyzer()
    results = []
    for k in range(a.folds):
        train = [r for r, f in zip(rows, fold) if f != k]
        test = [r for r, f in zip(rows, fold) if f == k]
        out = os.path.join(a.out, f"fold-{k}")
        started = time.monotonic()
        run = ferrite.train(train, out=out, init="embedded:default", progress=False)
        seconds = time.monotonic() - started
        acc = accuracy(ferrite.Analyzer(model=out), test)
        before = accuracy(base, test)
        results.append(dict(fold=k, train=len(train), test=len(test), epochs=len(run.history), seconds=round(seconds, 1),
                            accuracy=acc, embedded_accuracy=before, missing=",".join(run.missing_classes or [])))
        print(f"fold {k}: {len(train)} faces, {len(run.history)} epochs in {seconds:.0f} s; "
              f"held-out {len(test)}: {100 * acc:.2f}% (embedded model {100 * before:.2f}%)", flush=True)
    with open(os.path.join(a.out, "folds.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    summary = dict(
        data=os.path.abspath(a.data), folds=a.folds, faces=len(rows), cpu=cpu(), cores=os.cpu_count(),
        mean_accuracy=float(np.mean([r["accuracy"] for r in results])),
        mean_embedded_accuracy=float(np.mean([r["embedded_accuracy"] for r in results])),
        total_fine_tune_minutes=sum(r["seconds"] for r in results) / 60,
        recipe={k: v for k, v in run.config.items() if k in ("lr", "epochs", "batch_size", "schedule", "augment", "early_stop_patience", "val_fraction", "time_budget_minutes")},
    )
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
