"""ferrite: facial expression recognition.

Every face in a photo or video, with the probabilities of the seven FER2013 emotions (angry,
disgust, fear, happy, neutral, sad, surprise). The face detector and the expression models are
compiled into the package: nothing is downloaded at run time.

>>> import ferrite
>>> faces = ferrite.analyze("photo.jpg")                        # doctest: +SKIP
>>> faces[0].label, faces[0].probabilities["happy"]             # doctest: +SKIP
('happy', 0.93)

An image is a path (``str`` or ``os.PathLike``), encoded ``bytes``, a numpy ``uint8`` array (HxW,
HxWx3 RGB or HxWx4 RGBA; ``bgr=True`` for OpenCV frames) or a PIL image.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import tempfile
import threading
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _ferrite
from ._errors import (
    DataError,
    Error,
    FileNotFoundError,
    ImageError,
    InputError,
    IOError,
    ModelError,
    SettingError,
    TrainingError,
    VideoError,
)
from ._train import DATA_COLUMNS, TrainingRun, train

__version__: str = _ferrite.__version__

#: The class names in the order of every probability array.
EMOTIONS: Tuple[str, ...] = tuple(_ferrite.emotions())

__all__ = [
    "Analyzer",
    "Face",
    "Frame",
    "Video",
    "analyze",
    "analyze_video",
    "evaluate",
    "train",
    "TrainingRun",
    "DATA_COLUMNS",
    "EMOTIONS",
    "Error",
    "FileNotFoundError",
    "IOError",
    "ImageError",
    "InputError",
    "SettingError",
    "DataError",
    "ModelError",
    "VideoError",
    "TrainingError",
]

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]


class Face:
    """One face: its box, the detector's score, landmarks, the seven probabilities and the label.

    ``box`` is ``(x, y, w, h)`` in image pixels; ``landmarks`` six ``(x, y)`` points (eyes, nose
    tip, mouth centre, then BlazeFace's ear tragions or YuNet's mouth corners) or ``None``; ``probabilities`` a dict by class name; ``probs`` the
    same as an array in :data:`EMOTIONS` order; ``label`` the top class or ``"uncertain"``;
    ``id`` the track id in a video (``None`` in photos).
    """

    __slots__ = ("box", "score", "landmarks", "probabilities", "label", "id")

    def __init__(self, d: Dict[str, Any]) -> None:
        b = d["box"]
        self.box: Tuple[float, float, float, float] = (b["x"], b["y"], b["w"], b["h"])
        self.score: float = d["score"]
        lm = d.get("landmarks")
        self.landmarks: Optional[List[Tuple[float, float]]] = [tuple(p) for p in lm] if lm else None
        self.probabilities: Dict[str, float] = dict(d["probabilities"])
        self.label: str = d["label"]
        self.id: Optional[int] = d.get("id")

    @property
    def probs(self) -> np.ndarray:
        """The seven probabilities as a float32 array, in :data:`EMOTIONS` order."""
        return np.array([self.probabilities[e] for e in EMOTIONS], dtype=np.float32)

    def to_dict(self) -> Dict[str, Any]:
        """The face as plain data (the shape ``ferrite detect --format json`` writes)."""
        x, y, w, h = self.box
        d: Dict[str, Any] = {
            "box": {"x": x, "y": y, "w": w, "h": h},
            "score": self.score,
            "label": self.label,
            "probabilities": dict(self.probabilities),
        }
        if self.landmarks is not None:
            d["landmarks"] = [list(p) for p in self.landmarks]
        if self.id is not None:
            d["id"] = self.id
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Face) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        top = max(self.probabilities, key=self.probabilities.__getitem__)
        box = ", ".join(f"{v:.0f}" for v in self.box)
        ident = f"#{self.id} " if self.id is not None else ""
        return f"Face({ident}{self.label}, {top} {self.probabilities[top]:.2f}, box=({box}), score={self.score:.2f})"


def _input(image: ImageLike, bgr: bool = False) -> Any:
    """An image in one of the forms the Rust layer reads."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(image), "<bytes>")
    if isinstance(image, np.ndarray):
        return _pixels(image, bgr)
    if hasattr(image, "mode") and hasattr(image, "tobytes") and hasattr(image, "size"):  # PIL
        mode = image.mode
        if mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in mode else "RGB")
        w, h = image.size
        return ("pixels", image.tobytes(), w, h, {"L": 1, "RGB": 3, "RGBA": 4}[image.mode])
    raise InputError(
        f"cannot read an image from {type(image).__name__}: give a path, bytes, a numpy uint8 array or a PIL image"
    )


def _pixels(a: np.ndarray, bgr: bool) -> Tuple[str, bytes, int, int, int]:
    if a.dtype != np.uint8:
        raise SettingError(f"setting `image` = array of {a.dtype}: expected a uint8 array")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        channels = 1
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        channels = a.shape[2]
        if bgr:
            a = a[:, :, [2, 1, 0] + ([3] if channels == 4 else [])]
    else:
        raise SettingError(f"setting `image` = array of shape {a.shape}: expected HxW, HxWx3 or HxWx4")
    h, w = a.shape[:2]
    return ("pixels", np.ascontiguousarray(a).tobytes(), w, h, channels)


def _faces(text: str) -> List[Face]:
    return [Face(d) for d in json.loads(text)]


class Analyzer:
    """The face detector and an expression model, built once; safe to share between threads.

    :param model: the embedded default model, ``"embedded:fer2013"`` (the model trained on
        FER2013's own labels), a model file or a training run directory.
    :param detector: ``"yunet-first"`` (default: YuNet, and the BlazeFace pair where it finds
        no face), ``"yunet"`` (faces in the wild: turned, dim, small), ``"both"`` (the BlazeFace
        pair, merged), ``"back"`` (small, distant faces) or ``"full"`` (large, near faces).
    :param tta: test-time views per face: ``"none"``, ``"flip"``, ``"ten"``, ``"thirty"``, ``"ninety"``.
    :param abstain: label a face ``"uncertain"`` when its top probability is below this.
    :param margin: margin around each face before cropping, a fraction of the box.
    :param align: turn each crop so the eyes are level.
    :param min_score: smallest detector score kept (default: each detector model's own).
    :param tiles: also search an N x N grid of tiles for small faces (1 = off).
    :param pad_retry: when no face is found, search again padded by this fraction (0 = off).
    :param prior_correction: divide by the class priors to this power, on top of the model's own.
    :param threads: threads :meth:`analyze_many` uses (default: all cores).
    :param max_pixels: largest image (width x height) a file or byte string may declare; a
        larger one raises :class:`ImageError` from its header, before decoding (default 64
        megapixels).
    :param edge_pad: mirror each frame's edges into a margin of this fraction of its longest
        side before searching it, to find faces cut by the frame's edge (0 = off).
    :param small_face_tiles: when ``tiles`` is 1 and a frame holds a face smaller than this
        fraction of its longest side, also search it in 2 x 2 tiles for more small faces (0 = off).
    :param precision: ``"f32"`` (default) or ``"int8"``: the expression model quantized to 8
        bits (the model must carry int8 calibration, as the embedded default does; faster only on
        CPUs with int8 dot products: AVX-512 VNNI, AVX-VNNI, AMX).

    A setting left ``None`` takes the library's default (given above). Every setting is checked
    when the analyzer is built: a bad one raises :class:`SettingError`
    naming it. An analyzer pickles by its settings (multiprocessing, cluster frameworks).
    """

    def __init__(
        self,
        model: Optional[Union[str, "os.PathLike[str]"]] = None,
        detector: Optional[str] = None,
        tta: Optional[str] = None,
        abstain: Optional[float] = None,
        margin: Optional[float] = None,
        align: Optional[bool] = None,
        min_score: Optional[float] = None,
        tiles: Optional[int] = None,
        pad_retry: Optional[float] = None,
        prior_correction: Optional[float] = None,
        threads: Optional[int] = None,
        max_pixels: Optional[int] = None,
        edge_pad: Optional[float] = None,
        small_face_tiles: Optional[float] = None,
        precision: Optional[str] = None,
    ) -> None:
        given = dict(model=model, detector=detector, tta=tta, abstain=abstain, margin=margin, align=align,
                     min_score=min_score, tiles=tiles, pad_retry=pad_retry, prior_correction=prior_correction, threads=threads,
                     max_pixels=max_pixels, edge_pad=edge_pad, small_face_tiles=small_face_tiles, precision=precision)
        # Only the settings given: every default lives in the library (ferrite::AnalyzerBuilder).
        self._settings: Dict[str, Any] = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in given.items() if v is not None}
        self._native = _ferrite.NativeAnalyzer(**self._settings)

    @property
    def settings(self) -> Dict[str, Any]:
        """The settings this analyzer was built with (those given; the rest are the defaults)."""
        return dict(self._settings)

    @property
    def model_meta(self) -> Dict[str, Any]:
        """The model's contract and provenance: contrast step, class priors, prior correction, labels."""
        return json.loads(self._native.model_meta())

    def analyze(self, image: ImageLike, bgr: bool = False) -> List[Face]:
        """Every face in one image."""
        return _faces(self._native.analyze(_input(image, bgr)))

    def analyze_many(
        self, images: Iterable[ImageLike], threads: Optional[int] = None, bgr: bool = False, errors: str = "raise"
    ) -> List[Any]:
        """Every face in each image, images decoded and analysed in parallel (``threads``: for
        this call; default the analyzer's). ``errors="raise"`` raises the first failure (naming
        the file); ``errors="return"`` puts the exception in that image's place."""
        if errors not in ("raise", "return"):
            raise SettingError(f"setting `errors` = {errors!r}: expected 'raise' or 'return'")
        inputs = [_input(i, bgr) for i in images]
        out: List[Any] = []
        for r in self._native.analyze_many(inputs, threads):
            if isinstance(r, BaseException):
                if errors == "raise":
                    raise r
                out.append(r)
            else:
                out.append(_faces(r))
        return out

    def predict(self, crops: Union[np.ndarray, Sequence[ImageLike]], bgr: bool = False) -> np.ndarray:
        """The seven probabilities of each face crop (no detector): ``crops`` is a sequence of
        images or an ``N x H x W`` (or ``N x H x W x C``) uint8 array. Returns ``N x 7`` float32."""
        if isinstance(crops, np.ndarray):
            if crops.ndim not in (3, 4):
                raise SettingError(f"setting `crops` = array of shape {crops.shape}: expected N x H x W or N x H x W x C")
            items = [_pixels(c, bgr) for c in crops]
        else:
            items = [_input(c, bgr) for c in crops]
        probs = self._native.predict(items)
        return np.asarray(probs, dtype=np.float32).reshape(len(items), len(EMOTIONS))

    def analyze_video(
        self, source: Union[str, "os.PathLike[str]"], detect_every: int = 3, smooth_seconds: float = 0.3,
        max_frames: Optional[int] = None, start_frame: int = 0,
    ) -> "Video":
        """The frames of a video file, camera (``/dev/video0``) or stream URL, with faces
        tracked (ids) and probabilities smoothed over ``smooth_seconds``; the detector runs on
        every ``detect_every``-th frame. ``start_frame`` and ``max_frames`` cut a segment out
        (frames before it are decoded, not analysed; tracking starts afresh at it; frame indices
        and times stay those of the whole video)."""
        if start_frame < 0:
            raise SettingError(f"setting `start_frame` = {start_frame}: expected 0 or more")
        native = self._native.video(os.fspath(source), detect_every, smooth_seconds, max_frames, start_frame)
        return Video(native)

    def __reduce__(self) -> Tuple[Any, Tuple[Dict[str, Any]]]:
        return (_restore, (self._settings,))

    def __repr__(self) -> str:
        return f"ferrite.Analyzer({', '.join(f'{k}={v!r}' for k, v in self._settings.items())})"


#: The names of :class:`Analyzer`'s settings.
_SETTINGS: Tuple[str, ...] = tuple(inspect.signature(Analyzer.__init__).parameters)[1:]


def _restore(settings: Dict[str, Any]) -> Analyzer:
    return Analyzer(**settings)


_shared: Dict[Tuple[Tuple[str, Any], ...], Analyzer] = {}
_shared_lock = threading.Lock()


def _analyzer(options: Dict[str, Any]) -> Analyzer:
    """One analyzer per distinct settings, built on first use and kept."""
    unknown = set(options) - set(_SETTINGS)
    if unknown:
        raise SettingError(f"unknown setting(s) {', '.join(sorted(unknown))}: expected some of {', '.join(_SETTINGS)}")
    key = tuple(sorted((k, os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items()))
    with _shared_lock:
        a = _shared.get(key)
        if a is None:
            a = _shared[key] = Analyzer(**options)
        return a


def analyze(image: ImageLike, bgr: bool = False, **options: Any) -> List[Face]:
    """Every face in ``image``; ``options`` are :class:`Analyzer`'s settings (an analyzer per
    distinct settings is built once and reused)."""
    return _analyzer(options).analyze(image, bgr=bgr)


class Frame:
    """One analysed video frame: ``index`` (its number in the stream), ``time`` (its own
    presentation time, seconds from the stream's first frame), ``detected`` (the detector ran),
    ``cut`` (a new shot began) and the tracked ``faces`` (each with an ``id``)."""

    __slots__ = ("index", "time", "detected", "cut", "faces")

    def __init__(self, d: Dict[str, Any]) -> None:
        self.index: int = d["index"]
        self.time: float = d["time_s"]
        self.detected: bool = d["detected"]
        self.cut: bool = d["cut"]
        self.faces: List[Face] = [Face(f) for f in d["faces"]]

    def __repr__(self) -> str:
        return f"Frame({self.index}, t={self.time:.3f}s, {len(self.faces)} face(s))"


#: The timeline's columns (as ``ferrite video --csv`` writes them).
TIMELINE_COLUMNS: Tuple[str, ...] = ("frame", "time_s", "track", "detected", "x", "y", "w", "h", "score", "label") + EMOTIONS


class Video:
    """An iterator of :class:`Frame`; frames already seen are kept for :meth:`rows`,
    :meth:`to_csv` and :meth:`to_pandas` (which read the rest of the video first)."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.frames: List[Frame] = []
        self.width, self.height, self.fps = native.info

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        text = self._native.next_frame()
        if text is None:
            raise StopIteration
        frame = Frame(json.loads(text))
        self.frames.append(frame)
        return frame

    def _finish(self) -> None:
        for _ in self:
            pass

    def rows(self) -> List[Tuple[Any, ...]]:
        """One row per face per frame, in :data:`TIMELINE_COLUMNS` order."""
        self._finish()
        return [
            (fr.index, fr.time, f.id, fr.detected, *f.box, f.score, f.label, *(f.probabilities[e] for e in EMOTIONS))
            for fr in self.frames
            for f in fr.faces
        ]

    def to_csv(self, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Optional[str]:
        """The timeline as CSV: written atomically to ``path``, or returned as text."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(TIMELINE_COLUMNS)
        w.writerows(self.rows())
        if path is None:
            return buf.getvalue()
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".ferrite-", suffix=".csv")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return None

    def to_pandas(self) -> Any:
        """The timeline as a pandas DataFrame (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Video.to_pandas needs pandas: pip install pandas (or use to_csv / rows)") from e
        return pd.DataFrame(self.rows(), columns=list(TIMELINE_COLUMNS))


def analyze_video(
    source: Union[str, "os.PathLike[str]"], detect_every: int = 3, smooth_seconds: float = 0.3,
    max_frames: Optional[int] = None, start_frame: int = 0, **options: Any,
) -> Video:
    """The frames of a video file, camera or stream URL (ffmpeg reads it), faces tracked and
    smoothed; ``options`` are :class:`Analyzer`'s settings."""
    return _analyzer(options).analyze_video(source, detect_every, smooth_seconds, max_frames, start_frame)


def evaluate(
    data: Union[str, "os.PathLike[str]"], model: Optional[Union[str, "os.PathLike[str]"]] = None,
    ferplus: bool = False, votes: Optional[Union[str, "os.PathLike[str]"]] = None, tta: str = "none",
    usage: Optional[str] = None, skip_bad: bool = False, prior_correction: float = 0.0,
) -> Dict[str, Any]:
    """A model's scores on a labelled data set (image folder of class subfolders, or the
    FER2013 CSV with ``usage``), against its own labels or FER+'s majority (``ferplus=True``):
    ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``per_class`` (precision, recall, F1,
    support), ``confusion`` (rows: true class), ``classes``, ``samples``."""
    r = json.loads(
        _ferrite.evaluate(
            os.fspath(data), None if model is None else os.fspath(model), ferplus,
            None if votes is None else os.fspath(votes), tta, usage, skip_bad, prior_correction,
        )
    )
    out = dict(r["report"])
    out.update(model=r["model"], labels=r["labels"], skipped=r["skipped"], model_meta=r["model_meta"])
    return out
