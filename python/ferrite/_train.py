"""Training and fine-tuning: :func:`train` and the :class:`TrainingRun` it returns.

A thin layer over ``ferrite::Trainer::builder()``: every setting left ``None`` keeps the
library's default, and with ``init`` (fine-tuning a trained model on your own faces) the
library's fine-tuning recipe, which suits a few hundred to a few thousand faces.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _ferrite
from ._errors import DataError, SettingError

PathLike = Union[str, "os.PathLike[str]"]

#: The columns of a table of faces (a pandas DataFrame or rows): the image and its class name.
DATA_COLUMNS: Tuple[str, str] = ("path", "label")


def _faces(data: Any, name: str) -> Any:
    """A path, or rows of (image path, class name) from a DataFrame or a sequence of pairs."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # pandas DataFrame
        missing = [c for c in DATA_COLUMNS if c not in data.columns]
        if missing:
            raise DataError(
                f"setting `{name}`: the table has no column {', '.join(repr(c) for c in missing)} "
                f"(expected columns {DATA_COLUMNS[0]!r} and {DATA_COLUMNS[1]!r}; it has {', '.join(map(str, data.columns))})"
            )
        return [(os.fspath(p), str(l)) for p, l in zip(data["path"], data["label"])]
    if isinstance(data, Sequence):
        rows = []
        for i, row in enumerate(data):
            if not (isinstance(row, Sequence) and len(row) == 2):
                raise SettingError(f"setting `{name}`: row {i} is {row!r}: expected (image path, class name)")
            rows.append((os.fspath(row[0]), str(row[1])))
        return rows
    raise SettingError(
        f"setting `{name}` = {type(data).__name__}: expected a folder of class folders, a FER2013 CSV, "
        "an image list, a pandas DataFrame with 'path' and 'label' columns, or (path, label) rows"
    )


class _Progress:
    """A tqdm bar over the run's steps (``tqdm.auto``: a widget in notebooks, text in
    terminals), or a line per epoch on stderr without tqdm."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.epoch = 0

    def step(self, epoch: int, epochs: int, step: int, steps: int, loss: float, accuracy: float, lr: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is None:
                self.enabled = False
                print("ferrite.train: progress needs tqdm (pip install tqdm); training goes on quietly", file=sys.stderr)
                return
            self.bar = tqdm(total=epochs * steps, initial=(epoch - 1) * steps + step - 1, unit="step", dynamic_ncols=True)
        self.bar.update(1)
        if epoch != self.epoch or step == steps:
            self.epoch = epoch
            self.bar.set_description(f"epoch {epoch}/{epochs}")
        self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * accuracy:.1f}%", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _hooks(progress: bool, on_epoch: Optional[Callable[[Dict[str, Any]], Any]]) -> Tuple[_Progress, Any, Any]:
    bar = _Progress(progress)
    epoch_hook = None
    if on_epoch is not None:
        def epoch_hook(record: str) -> None:
            on_epoch(json.loads(record))
    return bar, epoch_hook, bar.step


class TrainingRun:
    """A training run's directory: its history, models and state. ``ferrite.Analyzer(model=run.path)``
    (or ``model=run.model``) loads what it trained.

    ``history`` holds one dict per finished epoch (``epoch``, ``lr``, ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``, ``val_macro_f1``, ``val_balanced_acc``,
    ``epoch_seconds``, ``elapsed_seconds``); :meth:`resume` continues an unfinished run (after
    Ctrl-C, or a limit) from its last finished epoch.
    """

    def __init__(self, path: PathLike, outcome: Optional[Dict[str, Any]] = None) -> None:
        self.path: str = os.fspath(path)
        self._outcome: Dict[str, Any] = dict(outcome or {})

    @property
    def config(self) -> Dict[str, Any]:
        """The run's settings as the library checked them (``config.json``)."""
        with open(os.path.join(self.path, "config.json"), encoding="utf-8") as f:
            return json.load(f)

    @property
    def history(self) -> List[Dict[str, Any]]:
        """One dict per finished epoch, from the run's ``metrics.csv``."""
        path = os.path.join(self.path, "metrics.csv")
        if not os.path.exists(path):
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]

    def to_pandas(self) -> Any:
        """The history as a pandas DataFrame (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("TrainingRun.to_pandas needs pandas: pip install pandas (or use history)") from e
        return pd.DataFrame(self.history)

    @property
    def best_model(self) -> str:
        """The model file of the epoch with the best validation accuracy so far."""
        return os.path.join(self.path, "best.ferrite")

    @property
    def finished(self) -> bool:
        """Whether the run is over (its last epoch, early stop or time budget): it has its final model."""
        return os.path.exists(os.path.join(self.path, "model.ferrite"))

    @property
    def model(self) -> str:
        """The model to use: the final one once the run is over, else the best so far."""
        final = os.path.join(self.path, "model.ferrite")
        return final if os.path.exists(final) else self.best_model

    @property
    def missing_classes(self) -> Optional[List[str]]:
        """The classes without a single training face (their outputs stay, and learn to stay
        low), as the last call saw them; ``None`` before a call in this process."""
        return self._outcome.get("missing_classes")

    @property
    def stopped_early(self) -> Optional[bool]:
        """Whether the last call ended by early stopping."""
        return self._outcome.get("stopped_early")

    @property
    def best_epoch(self) -> Optional[int]:
        """The epoch the best model comes from."""
        return self._outcome.get("best_epoch")

    def resume(self, progress: bool = True, on_epoch: Optional[Callable[[Dict[str, Any]], Any]] = None) -> "TrainingRun":
        """Continue from the last finished epoch to the end of the run; returns ``self``."""
        bar, epoch_hook, step_hook = _hooks(progress, on_epoch)
        try:
            self._outcome = json.loads(_ferrite.resume(self.path, epoch_hook, step_hook))
        finally:
            bar.close()
        return self

    def __repr__(self) -> str:
        h = self.history
        best = max((r["val_acc"] for r in h), default=None)
        state = "finished" if self.finished else "unfinished"
        score = f", best val accuracy {100 * best:.2f}%" if best is not None else ""
        return f"TrainingRun({self.path!r}, {len(h)} epoch(s), {state}{score})"


def train(
    data: Any,
    *,
    out: PathLike,
    val: Any = None,
    init: Optional[PathLike] = None,
    epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    time_budget: Optional[float] = None,
    early_stop: Optional[int] = None,
    val_fraction: Optional[float] = None,
    seed: Optional[int] = None,
    augment: Optional[Dict[str, Any]] = None,
    label_smoothing: Optional[float] = None,
    class_weight_power: Optional[float] = None,
    ferplus: Optional[str] = None,
    votes: Optional[PathLike] = None,
    val_votes: Optional[PathLike] = None,
    skip_bad: Optional[bool] = None,
    max_per_class: Optional[int] = None,
    arch: Optional[str] = None,
    width: Optional[int] = None,
    dropout: Optional[float] = None,
    progress: bool = True,
    on_epoch: Optional[Callable[[Dict[str, Any]], Any]] = None,
) -> TrainingRun:
    """Train a network into the run directory ``out`` (created), or fine-tune one (``init``).

    :param data: the training faces: a folder of class subfolders (``angry/``, ``happy/``, ...),
        a FER2013 CSV (its Training rows), an image list (a CSV file with ``path`` and
        ``label`` columns), a pandas DataFrame with ``path`` and ``label`` columns, or a
        sequence of ``(path, label)`` rows. Class names are ferrite's (:data:`ferrite.EMOTIONS`);
        a class may be missing (posed sets often have no neutral).
    :param val: validation faces in the same forms; without it, ``val_fraction`` of ``data``
        is held out (stratified, seeded).
    :param init: start from this model (``"embedded:default"``, a model file or a run
        directory): fine-tuning, with the library's fine-tuning recipe for every setting left
        ``None`` (learning rate, epochs, time budget, augmentation, early stopping).
    :param time_budget: wall-time budget in minutes.
    :param augment: augmentation settings replacing the recipe's (``flip``, ``shift``,
        ``rotate_deg``, ``zoom``, ``erase_prob``, ``low_res``, ``low_res_min``, ``light``); a key
        left out takes the library's ``AugmentConfig`` default (flip on, the rest off).
    :param ferplus: train on FER+ votes: ``"majority"``, ``"probability"``, ``"crossentropy"``
        or ``"multi-target"`` (``votes``/``val_votes``: the vote files, found beside the data
        when not given).
    :param arch: ``"reference"`` or ``"compact"`` (with ``width``, ``dropout``); default the
        ``init`` model's network, else the reference network.
    :param progress: a tqdm bar over the steps (``tqdm.auto``: notebooks and terminals).
    :param on_epoch: called with each finished epoch's record (a dict, as in
        :attr:`TrainingRun.history`), after its checkpoint is written.

    The GIL is released while it trains. Ctrl-C (``KeyboardInterrupt``) stops at the next
    step, keeping the last finished epoch: ``ferrite.TrainingRun(out).resume()`` continues.
    An exception raised by ``on_epoch`` stops the run the same way and is raised here.
    """
    bar, epoch_hook, step_hook = _hooks(progress, on_epoch)
    try:
        outcome = json.loads(
            _ferrite.train(
                _faces(data, "data"), os.fspath(out),
                val=None if val is None else _faces(val, "val"),
                init=None if init is None else os.fspath(init),
                epochs=epochs, batch_size=batch_size, lr=lr, time_budget=time_budget, early_stop=early_stop,
                val_fraction=val_fraction, seed=seed,
                augment=None if augment is None else json.dumps(augment),
                label_smoothing=label_smoothing, class_weight_power=class_weight_power,
                ferplus=ferplus, votes=None if votes is None else os.fspath(votes),
                val_votes=None if val_votes is None else os.fspath(val_votes),
                skip_bad=skip_bad, max_per_class=max_per_class, arch=arch, width=width, dropout=dropout,
                on_epoch=epoch_hook, on_step=step_hook,
            )
        )
    finally:
        bar.close()
    return TrainingRun(out, outcome)
