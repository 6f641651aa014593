#!/usr/bin/env python3
"""A FER2013 image folder relabelled by a teacher's top class (issue 32): for each row of a
teacher CSV (tools/teacher's `file,angry,...,surprise`), a symbolic link to IMAGES/file under
OUT/<top class>/, so that `ferrite evaluate --data OUT` measures agreement with the teacher.

Usage: docs/runs/teacher_labels.py TEACHER.csv IMAGES OUT
"""
import csv
import os
import sys

teacher, images, out = sys.argv[1:]
rows = list(csv.DictReader(open(teacher)))
classes = [c for c in rows[0].keys() if c != "file"]
for r in rows:
    top = max(classes, key=lambda c: float(r[c]))
    os.makedirs(os.path.join(out, top), exist_ok=True)
    os.symlink(os.path.join(images, r["file"]), os.path.join(out, top, r["file"].replace("/", "_")))
