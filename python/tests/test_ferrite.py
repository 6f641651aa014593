"""The Python package against the command line: every input type, parity with `ferrite detect`,
`predict`, `video` and `evaluate`, errors, threads, pickling.

The `ferrite` binary is `$FERRITE_BIN`, default `target/release/ferrite` of this repository (the
README's test command, `cargo test --release`, builds it first in `.ci/run`).
"""

import builtins
import csv
import io
import json
import os
import pickle
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferrite
from _clips import CLIPS_DIR, stream_times

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
BIN = Path(os.environ.get("FERRITE_BIN", ROOT / "target" / "release" / "ferrite"))
TOL = 1e-4


def cli(*args, cwd=None):
    assert BIN.is_file(), f"the ferrite binary is not at {BIN}: run `cargo build --release` or set FERRITE_BIN"
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert r.returncode == 0, f"ferrite {' '.join(map(str, args))} failed: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def analyzer():
    return ferrite.Analyzer()


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    """The astronaut photo as a lossless PNG: every decoder gives the same pixels."""
    p = tmp_path_factory.mktemp("png") / "astronaut.png"
    Image.open(PHOTOS / "astronaut.jpg").convert("RGB").save(p)
    return p


def same_faces(a, b, tol=TOL):
    assert len(a) == len(b), (a, b)
    for fa, fb in zip(a, b):
        assert fa.label == fb.label
        assert np.allclose(fa.box, fb.box, atol=1e-3), (fa.box, fb.box)
        assert np.allclose(fa.probs, fb.probs, atol=tol), (fa.probs, fb.probs)


def test_every_input_type_gives_the_same_faces(analyzer, png):
    by_path = analyzer.analyze(str(png))
    assert len(by_path) == 1 and by_path[0].label != "", by_path
    rgb = np.asarray(Image.open(png).convert("RGB"))
    pil = Image.open(png)
    for other in (
        analyzer.analyze(png),  # os.PathLike
        analyzer.analyze(png.read_bytes()),
        analyzer.analyze(bytearray(png.read_bytes())),
        analyzer.analyze(rgb),
        analyzer.analyze(rgb[:, :, ::-1].copy(), bgr=True),
        analyzer.analyze(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
        analyzer.analyze(pil),
        ferrite.analyze(png),
    ):
        same_faces(by_path, other, tol=1e-6)


def test_gray_arrays_and_pil_modes(analyzer, tmp_path):
    gray = Image.open(PHOTOS / "astronaut.jpg").convert("L")
    gray.save(tmp_path / "gray.png")
    want = analyzer.analyze(tmp_path / "gray.png")
    assert len(want) == 1
    same_faces(want, analyzer.analyze(np.asarray(gray)), tol=1e-6)
    same_faces(want, analyzer.analyze(np.asarray(gray)[:, :, None]), tol=1e-6)
    same_faces(want, analyzer.analyze(gray), tol=1e-6)
    # A palette image is converted (to RGB) rather than refused.
    assert len(analyzer.analyze(Image.open(PHOTOS / "astronaut.jpg").convert("P"))) == 1


def test_face_fields_and_to_dict(analyzer):
    (face,) = analyzer.analyze(PHOTOS / "astronaut.jpg")
    assert set(face.probabilities) == set(ferrite.EMOTIONS) and len(ferrite.EMOTIONS) == 7
    assert abs(sum(face.probabilities.values()) - 1) < 1e-4
    assert face.probs.shape == (7,) and face.probs.dtype == np.float32
    assert face.label in ferrite.EMOTIONS + ("uncertain",)
    assert 0 < face.score <= 1 and len(face.box) == 4
    assert face.landmarks is not None and len(face.landmarks) == 6
    d = face.to_dict()
    assert set(d) == {"box", "score", "label", "probabilities", "landmarks"}
    json.dumps(d)
    assert "Face(" in repr(face)


def test_same_faces_and_probabilities_as_ferrite_detect(analyzer):
    photos = sorted(PHOTOS.glob("*.jpg"))
    rows = json.loads(cli("detect", "--format", "json", *photos))
    assert len(rows) == len(photos)
    total = 0
    for row in rows:
        got = analyzer.analyze(row["image"])
        want = row["faces"]
        assert len(got) == len(want), row["image"]
        for g, w in zip(got, want):
            total += 1
            assert g.label == w["label"]
            assert np.allclose(g.box, [w["box"][k] for k in "xywh"], atol=1e-3)
            assert abs(g.score - w["score"]) <= TOL
            for e in ferrite.EMOTIONS:
                assert abs(g.probabilities[e] - w["probabilities"][e]) <= TOL, (row["image"], e)
            assert np.allclose(g.landmarks, w["landmarks"], atol=1e-3)
    assert total >= 20, "the committed photos hold at least 20 faces"


def test_analyze_many_matches_analyze_in_order(analyzer):
    photos = sorted(PHOTOS.glob("*.jpg"))
    one = [analyzer.analyze(p) for p in photos]
    for threads in (None, 1, 2):
        many = analyzer.analyze_many(photos, threads=threads)
        assert len(many) == len(photos)
        for a, b in zip(one, many):
            same_faces(a, b, tol=1e-6)


def test_analyze_many_errors_raise_or_take_their_place(analyzer, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = PHOTOS / "astronaut.jpg"
    with pytest.raises(ferrite.ImageError, match="broken.jpg"):
        analyzer.analyze_many([good, bad])
    out = analyzer.analyze_many([good, bad, tmp_path / "missing.jpg"], errors="return")
    assert len(out[0]) == 1
    assert isinstance(out[1], ferrite.ImageError) and "broken.jpg" in str(out[1])
    assert isinstance(out[2], ferrite.FileNotFoundError)


def test_errors_are_typed_and_name_the_file_or_setting(analyzer, tmp_path):
    with pytest.raises(ferrite.FileNotFoundError, match="nope.jpg") as e:
        analyzer.analyze(tmp_path / "nope.jpg")
    assert isinstance(e.value, builtins.FileNotFoundError) and isinstance(e.value, ferrite.Error)
    with pytest.raises(ferrite.ImageError) as e:
        analyzer.analyze(b"definitely not an image")
    assert isinstance(e.value, ValueError)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        analyzer.analyze(tmp_path / "empty.png")
    for kwargs, name in [
        (dict(margin=3.0), "margin"),
        (dict(abstain=-0.1), "abstain"),
        (dict(tiles=0), "tiles"),
        (dict(detector="sideways"), "detector"),
        (dict(tta="twelve"), "tta"),
        (dict(min_score=1.5), "min_score"),
        (dict(threads=0), "threads"),
        (dict(edge_pad=0.9), "edge_pad"),
        (dict(small_face_tiles=1.5), "small_face_tiles"),
        (dict(precision="int4"), "precision"),
        # A model without int8 calibration cannot run quantized.
        (dict(model="embedded:fer2013", precision="int8"), "precision"),
    ]:
        with pytest.raises(ferrite.SettingError, match=name) as e:
            ferrite.Analyzer(**kwargs)
        assert isinstance(e.value, ValueError) and "--" not in str(e.value)
    with pytest.raises(ferrite.SettingError, match="colour"):
        ferrite.analyze(PHOTOS / "astronaut.jpg", colour=True)
    with pytest.raises(ferrite.FileNotFoundError, match="missing.ferrite"):
        ferrite.Analyzer(model=tmp_path / "missing.ferrite")
    with pytest.raises(ferrite.ModelError, match="nope"):
        ferrite.Analyzer(model="embedded:nope")
    with pytest.raises(ferrite.InputError):
        analyzer.analyze(12345)
    with pytest.raises(ferrite.SettingError, match="uint8"):
        analyzer.analyze(np.zeros((10, 10), np.float32))
    with pytest.raises(ferrite.SettingError, match="shape"):
        analyzer.analyze(np.zeros((10, 10, 2), np.uint8))


def test_predict_matches_ferrite_predict(analyzer, tmp_path):
    rng = np.random.default_rng(7)
    faces = rng.integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    paths = []
    for i, f in enumerate(faces):
        p = tmp_path / f"face{i}.png"
        Image.fromarray(f).save(p)
        paths.append(p)
    got = analyzer.predict(faces)
    assert got.shape == (3, 7) and got.dtype == np.float32
    assert np.allclose(got.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(analyzer.predict(paths), got, atol=1e-6)
    want = [json.loads(line) for line in cli("predict", "--json", *paths).splitlines()]
    for row, p in zip(got, want):
        assert np.allclose(row, [p["probabilities"][e] for e in ferrite.EMOTIONS], atol=TOL)


def test_int8_precision_follows_f32(analyzer):
    # Issue 47: the embedded default quantized to 8 bits finds the same faces and moves no
    # probability by more than 0.05 on a committed photo.
    int8 = ferrite.Analyzer(precision="int8")
    assert int8.settings == {"precision": "int8"}
    a, b = analyzer.analyze(PHOTOS / "group1.jpg"), int8.analyze(PHOTOS / "group1.jpg")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.box == y.box
        assert np.abs(x.probs - y.probs).max() <= 0.05


def test_eight_threads_share_one_analyzer(analyzer):
    photos = sorted(PHOTOS.glob("*.jpg"))
    want = {p: analyzer.analyze(p) for p in photos}
    results, errors = [], []

    def work(k):
        try:
            for p in photos[k % len(photos):] + photos[: k % len(photos)]:
                results.append((p, analyzer.analyze(p)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(results) == 8 * len(photos)
    for p, faces in results:
        same_faces(want[p], faces, tol=1e-6)


def test_the_gil_is_released_while_rust_works(analyzer):
    photos = sorted(PHOTOS.glob("*.jpg")) * 2
    done = threading.Event()

    def work():
        analyzer.analyze_many(photos, threads=1)
        done.set()

    t = threading.Thread(target=work)
    started = time.perf_counter()
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - started
    # With the GIL held for the whole call this loop could not run until it ended.
    assert elapsed > 0.1 and ticks > 20, (elapsed, ticks)


def test_an_analyzer_pickles_by_its_settings(analyzer):
    a = ferrite.Analyzer(tta="flip", abstain=0.5, detector="back")
    b = pickle.loads(pickle.dumps(a))
    assert b.settings == a.settings and "tta='flip'" in repr(b)
    same_faces(a.analyze(PHOTOS / "group1.jpg"), b.analyze(PHOTOS / "group1.jpg"), tol=1e-6)
    assert b.model_meta["contrast"] == "equalize"
    assert ferrite.Analyzer(model="embedded:fer2013").model_meta["contrast"] == "raw"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2-second, 10 fps video: the astronaut photo moving right, then a group photo."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed (Debian package ffmpeg; .ci/run installs it)")
    d = tmp_path_factory.mktemp("video")
    out = d / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-t", "1", "-i", str(PHOTOS / "astronaut.jpg"),
         "-loop", "1", "-t", "1", "-i", str(PHOTOS / "group1.jpg"),
         "-filter_complex", "[0]scale=320:240,setsar=1[a];[1]scale=320:240,setsar=1[b];[a][b]concat=n=2:v=1[v]",
         "-map", "[v]", "-r", "10", "-pix_fmt", "yuv420p", str(out)],
        check=True, timeout=120,
    )
    return out


def test_video_timeline_matches_ferrite_video_csv(analyzer, clip, tmp_path):
    video = analyzer.analyze_video(clip, detect_every=2)
    first = next(video)
    assert first.index == 0 and first.detected and (video.width, video.height) == (320, 240)
    rows = video.rows()
    assert 18 <= len(video.frames) <= 24 and video.fps == pytest.approx(10)
    assert [f.index for f in video.frames] == list(range(len(video.frames)))
    assert video.frames[-1].time == pytest.approx((len(video.frames) - 1) / 10)
    cli("video", clip, "--csv", tmp_path / "cli.csv", "--detect-every", "2")
    with open(tmp_path / "cli.csv") as f:
        want = list(csv.DictReader(f))
    assert len(want) == len(rows) > 20
    for r, w in zip(rows, want):
        named = dict(zip(ferrite.TIMELINE_COLUMNS, r))
        assert int(w["frame"]) == named["frame"] and int(w["track"]) == named["track"]
        assert w["label"] == named["label"]
        for e in ferrite.EMOTIONS:
            assert abs(float(w[e]) - named[e]) <= TOL
    text = video.to_csv()
    assert text.splitlines()[0] == ",".join(ferrite.TIMELINE_COLUMNS)
    video.to_csv(tmp_path / "py.csv")
    assert (tmp_path / "py.csv").read_text() == text
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            video.to_pandas()
    else:
        assert len(video.to_pandas()) == len(rows)
    with pytest.raises(ferrite.SettingError, match="detect_every"):
        ferrite.analyze_video(clip, detect_every=0)
    with pytest.raises(ferrite.VideoError):
        ferrite.analyze_video(tmp_path / "cli.csv")


@pytest.mark.parametrize("name", ["short-video.mp4", "vfr.mp4", "gop.mp4"])
def test_video_frames_and_times_are_the_streams_own(analyzer, name, tmp_path):
    """Issue 45: a video shorter than its audio, a variable frame rate and a B-frame GOP give
    the stream's frames and times (within 1 ms), the same face rows as `ferrite video --csv`,
    and segments (``start_frame``/``max_frames``, as the Ray job cuts them) whose union is the
    whole read."""
    clip = CLIPS_DIR / name
    want = stream_times(clip)
    video = analyzer.analyze_video(clip, detect_every=2)
    rows = video.rows()
    assert [f.index for f in video.frames] == list(range(len(want)))
    assert max(abs(f.time - t) for f, t in zip(video.frames, want)) < 1e-3
    cli("video", clip, "--csv", tmp_path / "cli.csv", "--detect-every", "2")
    with open(tmp_path / "cli.csv") as f:
        cli_rows = list(csv.DictReader(f))
    assert len(cli_rows) == len(rows) > 0
    for r, w in zip(rows, cli_rows):
        named = dict(zip(ferrite.TIMELINE_COLUMNS, r))
        assert int(w["frame"]) == named["frame"] and abs(float(w["time_s"]) - named["time_s"]) < 1e-3
        assert w["label"] == named["label"] and abs(float(w["x"]) - named["x"]) <= 0.5 + 1e-6  # whole pixels in the CSV
    segments = []
    for start in range(0, len(want), 12):
        segments += analyzer.analyze_video(clip, detect_every=2, start_frame=start, max_frames=12)
    assert [(f.index, f.time) for f in segments] == [(f.index, f.time) for f in video.frames]
    # Detection runs on the same frames (every second frame of the stream), so the boxes agree.
    boxes = lambda frames: [(f.index, [tuple(round(v, 3) for v in face.box) for face in f.faces]) for f in frames if f.detected]
    assert boxes(segments) == boxes(video.frames)


def test_evaluate_matches_ferrite_evaluate(tmp_path):
    # A tiny labelled folder: face crops cut from the committed photos, one class each.
    data = tmp_path / "faces"
    a = ferrite.Analyzer()
    k = 0
    for p in sorted(PHOTOS.glob("group*.jpg")):
        img = Image.open(p).convert("L")
        for f in a.analyze(p):
            x, y, w, h = f.box
            cls = ferrite.EMOTIONS[k % 7]
            (data / cls).mkdir(parents=True, exist_ok=True)
            img.crop((int(x), int(y), int(x + w), int(y + h))).resize((48, 48)).save(data / cls / f"{k}.png")
            k += 1
    got = ferrite.evaluate(data)
    assert got["samples"] == k and 0 <= got["accuracy"] <= 1
    assert sum(map(sum, got["confusion"])) == k and got["classes"] == list(ferrite.EMOTIONS)
    assert {"precision", "recall", "f1", "support"} <= set(got["per_class"][0])
    cli("evaluate", "--data", data, "--out", tmp_path / "out")
    want = json.loads((tmp_path / "out" / "evaluate.json").read_text())["report"]
    assert got["accuracy"] == pytest.approx(want["accuracy"]) and got["confusion"] == want["confusion"]
    with pytest.raises(ferrite.FileNotFoundError):
        ferrite.evaluate(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ferrite.DataError, match="empty"):
        ferrite.evaluate(empty)


def test_max_pixels_refuses_large_images_from_their_header(tmp_path):
    small = ferrite.Analyzer(max_pixels=1000)
    with pytest.raises(ferrite.ImageError, match="astronaut.jpg"):
        small.analyze(PHOTOS / "astronaut.jpg")
    with pytest.raises(ferrite.SettingError, match="max_pixels"):
        ferrite.Analyzer(max_pixels=0)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ferrite.Error, match="pipe.jpg"):
        small.analyze(fifo)
