"""Training from Python (`ferrite.train`, issue 46): from a folder, a DataFrame and a FER2013 CSV
of generated faces; history and callbacks; Ctrl-C and `resume()`; a missing class; fine-tuning
the embedded model; errors naming the file or label.

The faces are generated (class c: stripes of period c + 2 pixels at a random phase, plus noise),
so the tests need no data set; a small network (compact, width 4) keeps each run to seconds.
"""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import ferrite

SMALL = dict(arch="compact", width=4, batch_size=8, lr=3e-3, progress=False)


def face(label_index, rng):
    """A 48x48 face of class `label_index`: vertical stripes whose period tells the class."""
    period = label_index + 2
    x = np.arange(48)
    phase = rng.integers(0, period)
    row = np.where(((x + phase) // max(period // 2, 1)) % 2 == 0, 200, 40)
    img = np.tile(row, (48, 1)) + rng.normal(0, 12, (48, 48))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(root, per_class=6, classes=ferrite.EMOTIONS, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for name in classes:
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            p = d / f"{i:03d}.png"
            Image.fromarray(face(ferrite.EMOTIONS.index(name), rng)).save(p)
            rows.append((str(p), name))
    return rows


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rows = make_folder(root / "train", per_class=8, seed=1)
    val_rows = make_folder(root / "val", per_class=3, seed=2)
    return root, rows, val_rows


def test_train_from_a_folder_with_history_and_callbacks(faces, tmp_path):
    root, _, _ = faces
    seen = []
    run = ferrite.train(root / "train", out=tmp_path / "run", val=root / "val", epochs=3, on_epoch=seen.append, **SMALL)
    assert isinstance(run, ferrite.TrainingRun) and run.finished
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    assert [r["epoch"] for r in seen] == [1, 2, 3], "the callback is told each epoch once, in order"
    assert seen[-1]["val_acc"] == pytest.approx(run.history[-1]["val_acc"], abs=1e-5)  # metrics.csv: 5 decimals
    assert set(seen[0]) >= {"train_loss", "val_loss", "val_acc", "lr", "epoch_seconds"}
    df = run.to_pandas()
    assert list(df["epoch"]) == [1, 2, 3] and "val_balanced_acc" in df.columns
    assert run.missing_classes == [] and os.path.exists(run.best_model)
    assert run.config["epochs"] == 3 and run.config["spec"]["width"] == 4
    # The run's model loads into an analyzer (run directory or model file) and predicts.
    crops = np.stack([face(k, np.random.default_rng(9)) for k in range(7)])
    for model in (run.path, run.model):
        probs = ferrite.Analyzer(model=model).predict(crops)
        assert probs.shape == (7, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    # A second run into the same directory is refused: the first is kept.
    with pytest.raises(ferrite.TrainingError, match="resume"):
        ferrite.train(root / "train", out=run.path, epochs=1, **SMALL)
    assert len(run.history) == 3


def test_train_from_a_dataframe_and_from_rows(faces, tmp_path):
    root, rows, val_rows = faces
    df = pd.DataFrame(rows, columns=["path", "label"]).sample(frac=1.0, random_state=3)
    run = ferrite.train(df, out=tmp_path / "df", val=pd.DataFrame(val_rows, columns=["path", "label"]), epochs=2, **SMALL)
    assert len(run.history) == 2 and run.finished
    # The table is kept in the run (absolute paths), so the run does not depend on the caller's table.
    listed = list(csv.DictReader(open(tmp_path / "df" / "train-list.csv", newline="")))
    assert len(listed) == len(rows) and all(os.path.isabs(r["path"]) for r in listed)
    # The same faces as rows, in the folder's order, train to the same history as the folder.
    by_rows = ferrite.train(rows, out=tmp_path / "rows", val=val_rows, epochs=2, seed=5, **SMALL)
    by_folder = ferrite.train(root / "train", out=tmp_path / "folder", val=root / "val", epochs=2, seed=5, **SMALL)
    for a, b in zip(by_rows.history, by_folder.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"])


def test_train_from_a_fer2013_csv(tmp_path):
    rng = np.random.default_rng(4)
    csv_label = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5, "neutral": 6}
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, n in (("Training", 6), ("PublicTest", 2)):
            for name in ferrite.EMOTIONS:
                for _ in range(n):
                    w.writerow([csv_label[name], " ".join(map(str, face(ferrite.EMOTIONS.index(name), rng).ravel())), usage])
    run = ferrite.train(path, out=tmp_path / "run", val=path, epochs=2, **SMALL)
    assert len(run.history) == 2
    # Training rows train, PublicTest rows validate: 7 x 6 faces in 8-face steps.
    assert run.config["train_data"] == str(path)


def test_a_missing_class_trains_and_evaluates(tmp_path):
    classes = [e for e in ferrite.EMOTIONS if e != "neutral"]
    make_folder(tmp_path / "posed", per_class=6, classes=classes, seed=6)
    run = ferrite.train(tmp_path / "posed", out=tmp_path / "run", epochs=2, val_fraction=0.34, **SMALL)
    assert run.missing_classes == ["neutral"]
    report = ferrite.evaluate(tmp_path / "posed", model=run.path)
    assert report["absent"] == ["neutral"] and report["samples"] == 36
    assert report["per_class"][ferrite.EMOTIONS.index("neutral")]["support"] == 0


def test_fine_tuning_the_embedded_model_takes_the_recipe(faces, tmp_path):
    root, _, _ = faces
    run = ferrite.train(root / "train", out=tmp_path / "ft", init="embedded:default", epochs=1, progress=False)
    cfg = run.config
    assert cfg["init"] == "embedded:default" and len(run.history) == 1
    # The recipe is the library's fine-tuning one (the network, the embedded model's own).
    assert cfg["lr"] < 5e-4 and cfg["early_stop_patience"] > 0 and cfg["time_budget_minutes"] is not None
    assert cfg["schedule"]["kind"] == "cosine" and cfg["augment"]["shift"] > 0


def test_an_exception_in_the_callback_stops_after_a_checkpoint_and_resume_finishes(faces, tmp_path):
    root, _, _ = faces

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ferrite.train(root / "train", out=tmp_path / "run", val=root / "val", epochs=3, on_epoch=interrupt, **SMALL)
    run = ferrite.TrainingRun(tmp_path / "run")
    assert [r["epoch"] for r in run.history] == [1] and not run.finished
    told = []
    run.resume(progress=False, on_epoch=told.append)
    assert [r["epoch"] for r in run.history] == [1, 2, 3], "every epoch once"
    assert [r["epoch"] for r in told] == [2, 3] and run.finished


def test_ctrl_c_while_rust_trains_stops_at_the_next_step_and_resume_finishes(faces, tmp_path):
    """A real SIGINT to a process whose training holds no GIL: it stops within a step, keeps the
    last finished epoch, and `resume()` completes the run with every epoch once."""
    root, _, _ = faces
    out = tmp_path / "run"
    # Ctrl-C raises KeyboardInterrupt as in a terminal, also where this test was started in the
    # background of a shell, whose children inherit SIGINT ignored (Python then leaves it so).
    script = textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import ferrite
        ferrite.train({str(root / "train")!r}, out={str(out)!r}, val={str(root / "val")!r}, epochs=4,
                      arch="compact", width=16, batch_size=2, lr=1e-3, progress=False)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    latest = out / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not latest.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert latest.exists(), "the first epoch finished"
    p.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "KeyboardInterrupt" in err, err
    assert time.monotonic() - sent < 30, "it stopped at the next step, not at the end"
    run = ferrite.TrainingRun(out)
    done = [r["epoch"] for r in run.history]
    assert done and done == list(range(1, len(done) + 1)) and not run.finished
    run.resume(progress=False)
    assert [r["epoch"] for r in run.history] == [1, 2, 3, 4] and run.finished


def test_errors_name_the_file_or_the_label(faces, tmp_path):
    root, rows, _ = faces
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ferrite.FileNotFoundError, match="no-such-folder"):
        ferrite.train(missing, out=tmp_path / "a", **SMALL)
    bad = pd.DataFrame([(rows[0][0], "happy"), (rows[1][0], "contempt")], columns=["path", "label"])
    with pytest.raises(ferrite.DataError, match="contempt") as e:
        ferrite.train(bad, out=tmp_path / "b", **SMALL)
    assert rows[1][0] in str(e.value)
    with pytest.raises(ferrite.DataError, match="'label'"):
        ferrite.train(pd.DataFrame({"path": [rows[0][0]], "class": ["happy"]}), out=tmp_path / "c", **SMALL)
    empty = tmp_path / "empty"
    (empty / "happy").mkdir(parents=True)
    with pytest.raises(ferrite.DataError, match="empty") as e:
        ferrite.train(empty, out=tmp_path / "d", **SMALL)
    assert "no usable images" in str(e.value)
    with pytest.raises(ferrite.SettingError, match="epochs"):
        ferrite.train(root / "train", out=tmp_path / "e", epochs=0, progress=False)
    with pytest.raises(ferrite.SettingError, match="augment"):
        ferrite.train(root / "train", out=tmp_path / "f", augment={"flipp": True}, progress=False)
    # An image list whose row names an unknown class: the list, the line and the label.
    listed = tmp_path / "list.csv"
    listed.write_text(f"path,label\n{rows[0][0]},happy\n{rows[1][0]},Contempt\n")
    with pytest.raises(ferrite.DataError, match=r"list\.csv, line 3.*Contempt"):
        ferrite.train(listed, out=tmp_path / "g", **SMALL)
    assert not (tmp_path / "g" / "config.json").exists()
