"""`python -m ferrite.ray analyze` on a real two-node Ray cluster (issue 33).

The cluster runs inside a network namespace that the test makes (`unshare -n`, only loopback up),
so all of Ray's traffic stays on 127.0.0.1; the head and a second node have 1 CPU each. The job
runs on the committed photos, a corrupt file and a generated video cut into segments; midway the
second node's raylet is killed (Ray restarts its actor on the head node). Checked: every input
once, no row twice, the same faces and probabilities as `ferrite detect` and `ferrite video
--csv`, an error row for the corrupt file, and a re-run that skips everything. The cluster is
stopped by a trap, also on failure. Needs root (for `unshare -n`), Ray and pyarrow (`.ci/run`
installs `./python[ray]`), ffmpeg, and the binary (`FERRITE_BIN`, as for test_ferrite.py).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import ferrite
import ferrite.ray
from _clips import CLIPS, stream_times

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
BIN = Path(os.environ.get("FERRITE_BIN", ROOT / "target" / "release" / "ferrite"))
TOL = 1e-4
PORT, WORKER_RAYLET_PORT = 6390, 6391


try:
    import pyarrow  # noqa: F401
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False


def need(ok, what):
    # In CI these must be present (.ci/run installs them): fail there, skip on a bare machine.
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"the Ray test needs {what}")
        pytest.skip(f"needs {what}")


CLUSTER = r"""
set -euo pipefail
# The cluster's own settings: a home folder of its own (Ray reads ~/.ray/auth_token, which a local
# `ray.init()` leaves behind), and no authentication settings from the caller's environment.
export HOME="{home}"
unset RAY_AUTH_MODE RAY_AUTH_TOKEN RAY_AUTH_TOKEN_PATH
ip link set lo up
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
ray start --head --num-cpus=1 --port={port} --include-dashboard=false --disable-usage-stats --temp-dir="{ray_tmp}" > "{out}/head.log" 2>&1
ray start --address=127.0.0.1:{port} --num-cpus=1 --node-manager-port={nm} --disable-usage-stats > "{out}/node2.log" 2>&1
job() {{ "{python}" -m ferrite.ray analyze {inputs} --output "{out}/result" --address 127.0.0.1:{port} --workers 2 --detect-every 2 --segment-frames 12 --batch-size 2; }}
job > "{out}/first.out" 2> "{out}/first.log" &
pid=$!
# Midway (a few items written), kill the second node's raylet: its actor dies with it. (Found by
# process name and port, never by a pattern that this script's own command line could match.)
for i in $(seq 1 1200); do
  n=$( (ls "{out}/result/data/"*.parquet 2>/dev/null || true) | wc -l)
  if [ "$n" -ge 3 ] || ! kill -0 $pid 2>/dev/null; then break; fi
  sleep 0.1
done
echo "outputs before the kill: $n" > "{out}/kill.txt"
for p in $(pgrep -x raylet || true); do
  if tr '\0' ' ' < /proc/$p/cmdline | grep -q -- "--node_manager_port={nm} "; then kill -9 $p && echo "killed $p" >> "{out}/kill.txt"; fi
done
wait $pid
cp "{out}/result/summary.json" "{out}/first.json"
job > "{out}/second.out" 2> "{out}/second.log"
cp "{out}/result/summary.json" "{out}/second.json"
"""


def test_ray_job_on_two_nodes_matches_the_cli(tmp_path):
    need(HAVE_RAY, "ray and pyarrow (pip install './python[ray]')")
    need(os.geteuid() == 0 and shutil.which("unshare"), "root and unshare (a private network namespace)")
    need(shutil.which("ffmpeg") is not None, "ffmpeg")
    assert BIN.is_file(), f"the ferrite binary is not at {BIN}"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(p, inputs / p.name)
    (inputs / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-t", "3", "-i", str(PHOTOS / "group1.jpg"),
         "-vf", "scale=320:240,setsar=1", "-r", "10", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=120,
    )
    short = tmp_path / "short.mp4"  # within one segment: comparable with `ferrite video` as a whole
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-frames:v", "10", str(short)], check=True, timeout=120)
    out = tmp_path / "job"
    out.mkdir()
    bindir = os.path.dirname(sys.executable)
    # Ray's own files in a folder of this test's (short: Ray's socket paths must fit 107 bytes).
    ray_tmp = tempfile.mkdtemp(prefix="ferrite-ray-", dir="/tmp")
    home = tmp_path / "cluster-home"
    home.mkdir()
    # The caller's home holds a stale token, as one left by a local run without --address
    # (issue 45): the cluster must not read it.
    user_home = tmp_path / "user-home"
    (user_home / ".ray").mkdir(parents=True)
    (user_home / ".ray" / "auth_token").write_text("stale-token-from-an-earlier-local-run\n")
    script = CLUSTER.format(port=PORT, nm=WORKER_RAYLET_PORT, out=out, python=sys.executable, ray_tmp=ray_tmp,
                            home=home, inputs=" ".join(f'"{p}"' for p in [inputs, clip, short, *CLIPS]))
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}", RAY_DISABLE_USAGE_STATS="1",
               HOME=str(user_home), RAY_AUTH_TOKEN_PATH=str(user_home / ".ray" / "auth_token"))
    try:
        r = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=900, env=env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(out.glob("*.log")) + sorted(out.glob("*.txt")))
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{logs}"
    kill = (out / "kill.txt").read_text()
    assert "killed" in kill, logs
    before = int(kill.split("outputs before the kill: ")[1].split()[0])

    first = json.loads((out / "first.json").read_text())
    second = json.loads((out / "second.json").read_text())
    frames_clip = int(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets",
         "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True).stdout.strip())
    segments = -(-frames_clip // 12)
    clip_frames = {p: len(stream_times(p)) for p in CLIPS}
    photos = len(list(PHOTOS.glob("*.jpg"))) + 1  # the committed photos and corrupt.jpg, an item each
    items = photos + segments + 1 + sum(-(-n // 12) for n in clip_frames.values())
    # Inputs: the photos, the clip, the short clip and CLIPS.
    assert first["items"] == items and first["analysed"] == items and first["inputs"] == photos + 2 + len(CLIPS), first
    assert second["skipped"] == items and second["analysed"] == 0, "a re-run skips what is written"
    assert [e["source"] for e in first["errors"]] == [str(inputs / "corrupt.jpg")]
    # Where the time went: the workers' seconds in batches, and the wait for the first batch.
    assert 0 < first["worker_seconds"] and 0 <= first["first_batch_after_s"] < first["seconds"], first
    assert second["worker_seconds"] == 0 and second["first_batch_after_s"] is None, second

    table = ferrite.ray.read(str(out / "result")).to_pylist()
    assert len(ferrite.ray.done_keys(str(out / "result"))) == items
    files = len(list((out / "result" / "data").glob("*.parquet")))
    assert files == -(-items // 2), "a file per batch of 2"
    assert before < files, f"the raylet was killed midway ({before} of {files} files written), not after the job"
    keys = [(r["source"], r["segment"], r["frame"], r["face"]) for r in table]
    assert len(keys) == len(set(keys)), "no row written twice"
    errors = [r for r in table if r["error"]]
    assert len(errors) == 1 and errors[0]["source"].endswith("corrupt.jpg") and "not a readable image" in errors[0]["error"]

    # Images: the same faces and probabilities as `ferrite detect`.
    detect = json.loads(subprocess.run([str(BIN), "detect", "--format", "json", *sorted(map(str, inputs.glob("*.jpg")))],
                                       capture_output=True, text=True, timeout=600).stdout)
    assert len(detect) == photos - 1  # every photo but corrupt.jpg
    for row in detect:
        got = sorted((r for r in table if r["source"] == row["image"] and not r["error"]), key=lambda r: r["face"])
        assert len(got) == len(row["faces"]), row["image"]
        for g, w in zip(got, row["faces"]):
            assert g["label"] == w["label"] and g["model"] == "embedded:default"
            assert abs(g["x"] - w["box"]["x"]) < 1e-3 and abs(g["score"] - w["score"]) <= TOL
            for e in ferrite.EMOTIONS:
                assert abs(g[e] - w["probabilities"][e]) <= TOL, (row["image"], e)

    # Videos: every frame once; track ids name their segment; the short clip as `ferrite video --csv`.
    clip_rows = [r for r in table if r["source"] == str(clip)]
    assert {r["frame"] for r in clip_rows} == set(range(frames_clip))
    assert {r["segment"] for r in clip_rows} == set(range(segments))
    assert all(r["track_id"].startswith(f"{r['segment']}-") for r in clip_rows)
    assert all(abs(r["time_s"] - r["frame"] / 10) < 1e-6 for r in clip_rows)
    subprocess.run([str(BIN), "video", str(short), "--csv", str(tmp_path / "short.csv"), "--detect-every", "2"],
                   check=True, capture_output=True, timeout=600)
    with open(tmp_path / "short.csv") as f:
        want = list(csv.DictReader(f))
    got = sorted((r for r in table if r["source"] == str(short)), key=lambda r: (r["frame"], r["face"]))
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g["frame"] == int(w["frame"]) and g["track_id"] == f"0-{w['track']}" and g["label"] == w["label"]
        for e in ferrite.EMOTIONS:
            assert abs(g[e] - float(w[e])) <= TOL
    assert np.isclose(sum(first["labels"].values()), first["faces"])

    # Issue 45's clips (shorter than its audio, a variable frame rate, a B-frame GOP), cut into
    # segments of 12 frames: the frames and times of the stream (within 1 ms), none past its
    # end, and the faces of `ferrite video --csv` (same detection frames, so the same boxes;
    # tracking and smoothing start afresh in each segment, so ids and labels may differ).
    for path, n in clip_frames.items():
        times = stream_times(path)
        csv_path = tmp_path / f"{path.stem}.csv"
        subprocess.run([str(BIN), "video", str(path), "--csv", str(csv_path), "--detect-every", "2"],
                       check=True, capture_output=True, timeout=600)
        with open(csv_path) as f:  # rows by frame, then faces in the detector's order; boxes in whole pixels
            want = [(int(w["frame"]), float(w["time_s"]), *(float(w[k]) for k in "xywh")) for w in csv.DictReader(f)]
        got = [(r["frame"], r["time_s"], *(r[k] for k in "xywh")) for r in
               sorted((r for r in table if r["source"] == str(path) and not r["error"]), key=lambda r: (r["frame"], r["face"]))]
        assert len(got) == len(want) > 0, path.name
        assert all(k < n and abs(t - times[k]) < 1e-3 for k, t, *_ in got), path.name
        for g, w in zip(got, want):
            assert g[0] == w[0] and abs(g[1] - w[1]) < 1e-3, (path.name, g, w)
            assert all(abs(a - b) <= 0.5 + 1e-6 for a, b in zip(g[2:], w[2:])), (path.name, g, w)


def test_listing_and_planning(tmp_path):
    need(HAVE_RAY, "ray and pyarrow (pip install './python[ray]')")
    import ferrite.ray as fr

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/x.jpg", "a/b/y.png", "a/b/.hidden.jpg", "a/notes.txt", "c.JPG"]:
        (tmp_path / name).write_bytes(b"x")
    got = fr.list_inputs([str(tmp_path / "a"), str(tmp_path / "*.JPG")])
    assert got == [(str(tmp_path / "a/b/y.png"), "image"), (str(tmp_path / "a/x.jpg"), "image"), (str(tmp_path / "c.JPG"), "image")]
    with pytest.raises(ferrite.FileNotFoundError, match="nothing"):
        fr.list_inputs([str(tmp_path / "nothing")])
    with pytest.raises(ferrite.FileNotFoundError, match="no file matches"):
        fr.list_inputs([str(tmp_path / "*.gif")])
    with pytest.raises(ferrite.SettingError, match="segment_frames"):
        fr.plan([str(tmp_path / "a")], segment_frames=0)
    keys = [i["key"] for i in fr.plan([str(tmp_path / "a")])]
    assert len(keys) == len(set(keys)) == 2 and keys == [i["key"] for i in fr.plan([str(tmp_path / "a")])]
