"""bench/python_api.sh's measurements (run by it: see there). Prints a Markdown table."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ferrite

binary, photos_dir, one_dir, fer_python = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
photos = sorted(photos_dir.glob("*.jpg"))
n = len(photos)
REPEATS = 3


def best(f, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def cli(path):
    subprocess.run([binary, "--threads", "1", "detect", "--format", "json", str(path)], check=True, capture_output=True)


# The CLI's own per-photo time: a run over n photos minus a run over one (start-up, model
# loading and compiling cancel out), on one thread.
cli_many = best(lambda: cli(photos_dir))
cli_one = best(lambda: cli(one_dir))
cli_per_photo = (cli_many - cli_one) / (n - 1)

a1 = ferrite.Analyzer(threads=1)
a1.analyze_many(photos[:3])  # warm up
py_many_1 = best(lambda: a1.analyze_many(photos))
py_per_photo = py_many_1 / n
py_many_2 = best(lambda: a1.analyze_many(photos, threads=2))

# Parity on the way: the same faces as the CLI.
rows = json.loads(subprocess.run([binary, "detect", "--format", "json", *map(str, photos[:9])], check=True, capture_output=True, text=True).stdout)
worst = 0.0
for row in rows:
    got = a1.analyze(row["image"])
    assert len(got) == len(row["faces"]), row["image"]
    for g, w in zip(got, row["faces"]):
        worst = max(worst, max(abs(g.probabilities[e] - w["probabilities"][e]) for e in ferrite.EMOTIONS))

print(f"{n} photos (tests/fixtures/photos, {n // 9} rounds), best of {REPEATS} runs\n")
print("| path | per photo (ms) | vs CLI |")
print("|---|---|---|")
print(f"| CLI `ferrite --threads 1 detect` (n photos minus one) | {1000 * cli_per_photo:.1f} | 1.00x |")
print(f"| Python `Analyzer(threads=1).analyze_many` | {1000 * py_per_photo:.1f} | {py_per_photo / cli_per_photo:.3f}x |")
print(f"| Python `analyze_many(threads=2)` | {1000 * py_many_2 / n:.1f} | {py_many_2 / n / cli_per_photo:.3f}x |")
print(f"\nPython overhead vs the CLI on one thread: {100 * (py_per_photo / cli_per_photo - 1):+.1f}%")
print(f"analyze_many, 2 threads vs 1: {py_many_1 / py_many_2:.2f}x")
print(f"largest probability difference from `ferrite detect` JSON: {worst:.2e}")

if fer_python:
    script = r'''
import sys, time, cv2
try:
    from fer import FER
except ImportError:  # fer >= 25: the class lives in fer.fer
    from fer.fer import FER
paths = sys.argv[1:]
det = FER()
det.detect_emotions(cv2.imread(paths[0]))
t = time.perf_counter()
faces = 0
for p in paths:
    faces += len(det.detect_emotions(cv2.imread(p)))
print((time.perf_counter() - t) / len(paths), faces)
'''
    run = subprocess.run([fer_python, "-c", script, *map(str, photos)], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"PyPI fer failed:\n{run.stderr[-3000:]}")
    out = run.stdout.split()
    fer_s, fer_faces = float(out[-2]), int(out[-1])
    ours = sum(len(f) for f in a1.analyze_many(photos))
    print(f"\nPyPI fer detect_emotions: {1000 * fer_s:.1f} ms per photo ({fer_s / py_per_photo:.2f}x ferrite's), "
          f"{fer_faces} faces found vs ferrite's {ours}")
