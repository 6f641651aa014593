#!/usr/bin/env python3
"""Where the posed-face bar and the FER+ majority pull apart (issue 32).

Reads a model's probabilities for every val/ face (`ferrite predict --json`), face-api.js's
(tools/teacher's CSV) and the FER+ votes; prints (1) for the faces the teacher calls angry,
fear, sad or disgust: the FER+ majority against the model's label, and (2) what scaling the
model's neutral probability by w (a neutral-only prior correction) does to FER+ majority
accuracy and to the teacher's angry faces called neutral.

The FER+ majority is ferrite's (`data::ferplus` `Votes::majority`): a unique top among all ten
columns, which must be one of the seven emotions.

Usage: conflict.py PREDICTIONS.jsonl TEACHER_VAL.csv FERPLUS_VAL.csv
"""
import collections
import csv
import json
import sys

E = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
COLS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
EMO = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "neutral": "neutral",
       "sadness": "sad", "surprise": "surprise"}

preds_path, teacher_path, votes_path = sys.argv[1:]
pred = {}
for line in open(preds_path):
    o = json.loads(line)
    pred[o["image"].split("/val/")[-1]] = o["probabilities"]
teach = {r["file"]: {e: float(r[e]) for e in E} for r in csv.DictReader(open(teacher_path))}
majority = {}
for r in csv.DictReader(open(votes_path)):
    v = [int(r[c]) for c in COLS]
    m = max(v)
    if m > 0 and v.count(m) == 1 and COLS[v.index(m)] in EMO:
        majority[r["file"]] = EMO[COLS[v.index(m)]]
top = lambda d: max(d, key=d.get)
files = [f for f in pred if f in teach]
print(f"{len(files)} faces with the model's and the teacher's probabilities, {sum(f in majority for f in files)} with a FER+ majority\n")
for tc in ["angry", "fear", "sad", "disgust"]:
    c = collections.Counter((majority.get(f, "none"), top(pred[f])) for f in files if top(teach[f]) == tc)
    print(f"teacher says {tc}: {sum(c.values())} faces; rows FER+ majority ('none': no majority), columns the model's label")
    print("| FER+ \\ model | " + " | ".join(E) + " |")
    print("|---|" + "---|" * len(E))
    for row in E + ["none"]:
        if any(c[(row, e)] for e in E):
            print(f"| {row} | " + " | ".join(str(c[(row, e)]) for e in E) + " |")
    print()
print("neutral probability scaled by w (then the top class):\n")
print("| w | FER+ val majority acc | balanced | teacher's angry called neutral | called angry |")
print("|---|---|---|---|---|")
for w in [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]:
    ok = n = 0
    rec, sup, ta = collections.Counter(), collections.Counter(), collections.Counter()
    for f in files:
        q = dict(pred[f])
        q["neutral"] *= w
        t = top(q)
        if f in majority:
            n += 1
            ok += t == majority[f]
            sup[majority[f]] += 1
            rec[majority[f]] += t == majority[f]
        if top(teach[f]) == "angry":
            ta[t] += 1
    bal = sum(rec[c] / sup[c] for c in sup) / len(sup)
    print(f"| {w} | {100 * ok / n:.2f}% | {100 * bal:.2f}% | {ta['neutral']} | {ta['angry']} |")
