#!/usr/bin/env python3
"""Per-class recall side by side (issue 43): one row per `ferrite evaluate --out` JSON, one column
per class, plus accuracy and balanced accuracy. Writes a Markdown table to stdout.

Usage: docs/runs/recall_tables.py LABEL=EVALUATE.json [LABEL=EVALUATE.json ...]
(an evaluate.json of a labelled folder, `report`, or of photos through the pipeline, `photos`)
"""
import json
import sys

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def main(args):
    if not args:
        sys.exit(__doc__)
    print("| model | accuracy | balanced | " + " | ".join(CLASSES) + " |")
    print("|---|---|---|" + "---|" * len(CLASSES))
    for spec in args:
        label, _, path = spec.partition("=")
        d = json.load(open(path))
        r = d.get("report") or d.get("photos")
        if "report" in d:
            recall = {c["class"]: c["recall"] for c in r["per_class"]}
        else:  # photos: [class, photos, without a face, labelled right]
            recall = {c[0]: c[3] / c[1] for c in r["per_class"] if c[1]}
        cells = ["%.2f" % recall[c] if c in recall else "-" for c in CLASSES]
        print("| %s | %.2f%% | %.2f%% | %s |" % (label, 100 * r["accuracy"], 100 * r["balanced_accuracy"], " | ".join(cells)))


if __name__ == "__main__":
    main(sys.argv[1:])
