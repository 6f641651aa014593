"""ferrite on Ray: emotion recognition over whole archives of images and videos.

A Ray Data pipeline: the inputs are listed (files, folders and globs on any filesystem pyarrow
reaches), long videos are cut into segments of frames, ``map_batches`` sends each item to an
actor that holds one :class:`ferrite.Analyzer`, and each batch of items is written as one Parquet
file (atomically; its metadata lists the items) under ``OUTPUT/data/``. A re-run with the same output skips
the items already written; a crash of the driver loses at most the items in flight. Install with
``pip install './python[ray]'``; run as ``python -m ferrite.ray analyze INPUT... --output OUT``.

One row per face per frame: ``source``, ``kind`` (image/video), ``segment``, ``frame``, ``time_s``,
``face`` (its number in the frame), ``track_id`` (videos: ``"<segment>-<id>"``), the box, the
detector ``score``, ``label``, the seven probabilities, ``model``, ``version``; a file that cannot
be read gives one row with ``error`` set and the job goes on.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import ferrite

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}

#: Frames per video segment by default (12 s at 25 fps): a video's unit of work.
SEGMENT_FRAMES = 300
#: Items (images or video segments) a worker takes at a time, written as one Parquet file.
BATCH_SIZE = 16
#: The Parquet metadata key that lists a file's items.
ITEMS_KEY = "ferrite_items"


def _pa():
    try:
        import pyarrow
        import pyarrow.fs
        import pyarrow.parquet
    except ImportError as e:  # pragma: no cover - the extra installs it
        raise ImportError("ferrite.ray needs pyarrow and ray: pip install './python[ray]'") from e
    return pyarrow


def _filesystem(uri: str) -> Tuple[Any, str]:
    """A pyarrow filesystem and the path on it (local paths made absolute)."""
    pa = _pa()
    if "://" in uri:
        return pa.fs.FileSystem.from_uri(uri)
    return pa.fs.LocalFileSystem(), os.path.abspath(uri)


def _uri(fs: Any, path: str) -> str:
    """How a listed file is named in rows: its local path, or scheme://path on other filesystems."""
    if fs.type_name == "local":
        return path
    return f"{fs.type_name}://{path}"


def _kind(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return "video" if ext in VIDEO_EXTENSIONS else "image"


def list_inputs(inputs: Sequence[str]) -> List[Tuple[str, str]]:
    """(source, kind) for every file the inputs name: files as given, folders searched
    recursively for images and videos, globs (``*``, ``?``, ``[``) matched below their fixed
    prefix. Sorted, each once. A name that matches nothing is an error."""
    pa = _pa()
    found: Dict[str, str] = {}
    for spec in inputs:
        fs, path = _filesystem(spec)
        if any(c in path for c in "*?["):
            base = path
            while any(c in base for c in "*?["):
                base = os.path.dirname(base)
            infos = fs.get_file_info(pa.fs.FileSelector(base, recursive=True, allow_not_found=True))
            matched = [i.path for i in infos if i.type == pa.fs.FileType.File and fnmatch.fnmatch(i.path, path)]
            if not matched:
                raise ferrite.FileNotFoundError(f"{spec}: no file matches")
            for p in matched:
                found[_uri(fs, p)] = _kind(p)
            continue
        info = fs.get_file_info(path)
        if info.type == pa.fs.FileType.NotFound:
            raise ferrite.FileNotFoundError(f"{spec}: no such file or folder")
        if info.type == pa.fs.FileType.Directory:
            for i in fs.get_file_info(pa.fs.FileSelector(path, recursive=True)):
                name = os.path.basename(i.path)
                ext = os.path.splitext(name)[1].lower()
                if i.type == pa.fs.FileType.File and not name.startswith(".") and ext in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                    found[_uri(fs, i.path)] = _kind(i.path)
        else:
            found[_uri(fs, path)] = _kind(path)
    return sorted(found.items())


def _local_copy(source: str) -> Tuple[str, Optional[str]]:
    """A local path for ffmpeg: the source itself, or a temporary copy of a remote file (and the
    temporary folder to remove)."""
    if "://" not in source:
        return source, None
    fs, path = _filesystem(source)
    tmp = tempfile.mkdtemp(prefix="ferrite-ray-")
    local = os.path.join(tmp, os.path.basename(path))
    with fs.open_input_stream(path) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return local, tmp


def video_frames(source: str) -> int:
    """The number of frames in a video (ffprobe counts the packets of its first video stream)."""
    local, tmp = _local_copy(source)
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
             "stream=nb_read_packets", "-of", "csv=p=0", local],
            capture_output=True, text=True, timeout=600,
        )
        text = out.stdout.strip().split(",")[0]
        return int(text) if out.returncode == 0 and text.isdigit() else 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def plan(inputs: Sequence[str], segment_frames: int = SEGMENT_FRAMES) -> List[Dict[str, Any]]:
    """The work items: one per image, one per segment of ``segment_frames`` frames of each video
    (a video ffprobe cannot count is one segment, so its error is reported once). Each item has a
    ``key`` naming its output file."""
    if segment_frames < 1:
        raise ferrite.SettingError(f"setting `segment_frames` = {segment_frames}: expected at least 1")
    items = []
    for source, kind in list_inputs(inputs):
        if kind == "image":
            spans = [(0, 0, 1)]
        else:
            n = video_frames(source)
            spans = [(k, k * segment_frames, min(segment_frames, n - k * segment_frames)) for k in range(max(1, -(-n // segment_frames)))]
            if n == 0:
                spans = [(0, 0, 0)]
        for segment, start, count in spans:
            key = hashlib.sha1(f"{source}\0{segment}\0{start}".encode()).hexdigest()[:20]
            items.append(dict(key=key, source=source, kind=kind, segment=segment, start=start, count=count))
    return items


COLUMNS = (
    ["source", "kind", "segment", "frame", "time_s", "face", "track_id", "x", "y", "w", "h", "score", "label"]
    + list(ferrite.EMOTIONS)
    + ["model", "version", "error"]
)


def _schema():
    pa = _pa()
    types = dict(
        source=pa.string(), kind=pa.string(), segment=pa.int32(), frame=pa.int64(), time_s=pa.float64(),
        face=pa.int32(), track_id=pa.string(), x=pa.float32(), y=pa.float32(), w=pa.float32(), h=pa.float32(),
        score=pa.float32(), label=pa.string(), model=pa.string(), version=pa.string(), error=pa.string(),
    )
    return pa.schema([(c, types.get(c, pa.float32())) for c in COLUMNS])


class Worker:
    """A Ray Data actor: one analyzer, built once; each call analyses a batch of items and writes
    each item's rows (atomically) under the output's ``data/``; returns one summary per item."""

    def __init__(self, settings: Dict[str, Any], output: str, detect_every: int, smooth_seconds: float, threads: int) -> None:
        # The analyzer works on as many threads as the worker has CPUs (not all of the node's).
        self.analyzer = ferrite.Analyzer(**dict(settings, threads=settings.get("threads") or threads))
        self.model = settings.get("model") or "embedded:default"
        self.fs, self.root = _filesystem(output)
        self.detect_every = detect_every
        self.smooth_seconds = smooth_seconds

    def _base(self, item: Dict[str, Any]) -> Dict[str, Any]:
        return dict(source=item["source"], kind=item["kind"], segment=int(item["segment"]), model=self.model,
                    version=ferrite.__version__, error=None)

    @staticmethod
    def _face_row(base: Dict[str, Any], frame: int, time_s: float, k: int, f: ferrite.Face, track: Optional[str]) -> Dict[str, Any]:
        x, y, w, h = f.box
        return dict(base, frame=frame, time_s=time_s, face=k, track_id=track, x=x, y=y, w=w, h=h,
                    score=f.score, label=f.label, **f.probabilities)

    def _images(self, items: List[Dict[str, Any]]) -> List[Any]:
        """Each image's faces (or its error), the batch decoded and analysed in one call."""
        inputs: List[Any] = []
        for item in items:
            source = item["source"]
            if "://" in source:
                try:
                    fs, path = _filesystem(source)
                    with fs.open_input_stream(path) as s:
                        inputs.append(s.read())
                except OSError as e:
                    inputs.append(ferrite.IOError(f"{source}: {e}"))
            else:
                inputs.append(source)
        readable = [i for i in inputs if not isinstance(i, BaseException)]
        results = iter(self.analyzer.analyze_many(readable, errors="return") if readable else [])
        return [i if isinstance(i, BaseException) else next(results) for i in inputs]

    def _rows(self, item: Dict[str, Any], faces: Any = None) -> Tuple[List[Dict[str, Any]], int]:
        base = self._base(item)
        rows: List[Dict[str, Any]] = []
        if item["kind"] == "image":
            if isinstance(faces, BaseException):
                raise faces
            return [self._face_row(base, 0, 0.0, k, f, None) for k, f in enumerate(faces)], 1
        local, tmp = _local_copy(item["source"])
        try:
            video = self.analyzer.analyze_video(local, self.detect_every, self.smooth_seconds,
                                                max_frames=int(item["count"]) or None, start_frame=int(item["start"]))
            frames = 0
            for fr in video:
                frames += 1
                rows.extend(self._face_row(base, fr.index, fr.time, k, f, f"{item['segment']}-{f.id}") for k, f in enumerate(fr.faces))
            return rows, frames
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    def _write(self, keys: List[str], rows: List[Dict[str, Any]]) -> None:
        """One Parquet file for the batch, named by its items, which its metadata lists: written
        under a temporary name and moved into place, so it is there whole or not at all."""
        pa = _pa()
        schema = _schema().with_metadata({ITEMS_KEY: json.dumps(keys)})
        table = pa.Table.from_pylist(rows, schema=schema)
        name = hashlib.sha1("\0".join(keys).encode()).hexdigest()[:24]
        data = f"{self.root}/data"
        self.fs.create_dir(data, recursive=True)
        tmp = f"{data}/.tmp-{name}-{uuid.uuid4().hex}.parquet"
        pa.parquet.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, f"{data}/{name}.parquet")

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[Any]]:
        began = time.time()
        out: Dict[str, List[Any]] = {"key": [], "source": [], "kind": [], "frames": [], "faces": [], "error": [], "labels": [],
                                     "began": [], "seconds": []}
        all_rows: List[Dict[str, Any]] = []
        items = [{k: (batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i]) for k in batch}
                 for i in range(len(batch["key"]))]
        images = [i for i in items if i["kind"] == "image"]
        analysed = dict(zip((i["key"] for i in images), self._images(images))) if images else {}
        for item in items:
            error = None
            try:
                rows, frames = self._rows(item, analysed.get(item["key"]))
            except ferrite.Error as e:
                error = str(e) or type(e).__name__
                if item["source"] not in error:  # (bytes read from an object store are unnamed)
                    error = f"{item['source']}: {error}"
                rows, frames = [dict(source=item["source"], kind=item["kind"], segment=int(item["segment"]),
                                     model=self.model, version=ferrite.__version__, error=error)], 0
            all_rows.extend(rows)
            out["key"].append(item["key"])
            out["source"].append(item["source"])
            out["kind"].append(item["kind"])
            out["frames"].append(frames)
            out["faces"].append(sum(1 for r in rows if r.get("error") is None))
            out["error"].append(error)
            counts: Dict[str, int] = {}
            for r in rows:
                if r.get("label"):
                    counts[r["label"]] = counts.get(r["label"], 0) + 1
            out["labels"].append(json.dumps(counts))
        self._write(out["key"], all_rows)
        # The batch's time (reading, analysis and writing), shared out evenly over its items.
        seconds = (time.time() - began) / len(items)
        out["began"] = [began] * len(items)
        out["seconds"] = [seconds] * len(items)
        return out


def done_keys(output: str) -> set:
    """The items an earlier run wrote completely: those its Parquet files list."""
    pa = _pa()
    fs, root = _filesystem(output)
    infos = fs.get_file_info(pa.fs.FileSelector(f"{root}/data", allow_not_found=True))
    done: set = set()
    for i in infos:
        if i.type == pa.fs.FileType.File and i.path.endswith(".parquet") and not os.path.basename(i.path).startswith("."):
            meta = pa.parquet.read_schema(i.path, filesystem=fs).metadata or {}
            done.update(json.loads(meta.get(ITEMS_KEY.encode(), b"[]")))
    return done


def run(
    inputs: Sequence[str], output: str, address: Optional[str] = None, workers: int = 2, cpus_per_worker: float = 1.0,
    detect_every: int = 3, smooth_seconds: float = 0.3, segment_frames: int = SEGMENT_FRAMES,
    settings: Optional[Dict[str, Any]] = None, batch_size: int = BATCH_SIZE,
) -> Dict[str, Any]:
    """Analyse every input on the Ray cluster at ``address`` (default: the one ``ray.init``
    finds, or a local one) with ``workers`` actors; write rows under ``output`` and return the
    summary (also written to ``output/summary.json``)."""
    import ray

    settings = dict(settings or {})
    ferrite.Analyzer(**settings)  # every setting checked here, before the cluster is asked
    if workers < 1:
        raise ferrite.SettingError(f"setting `workers` = {workers}: expected at least 1")
    if batch_size < 1:
        raise ferrite.SettingError(f"setting `batch_size` = {batch_size}: expected at least 1")
    started = time.perf_counter()
    started_at = time.time()
    items = plan(inputs, segment_frames)
    done = done_keys(output)
    todo = [i for i in items if i["key"] not in done]
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    summaries: List[Dict[str, Any]] = []
    if todo:
        # Images first, video segments after; a block is one batch, so a retried batch is the
        # same items and rewrites the same file.
        todo.sort(key=lambda i: (i["kind"] != "image", i["source"], i["segment"]))
        # At least four batches per worker, so that a few long items (video segments) spread.
        batch = max(1, min(batch_size, -(-len(todo) // (4 * workers))))
        ds = ray.data.from_items(todo, override_num_blocks=-(-len(todo) // batch))
        ds = ds.map_batches(
            Worker,
            fn_constructor_kwargs=dict(settings=settings, output=output, detect_every=detect_every,
                                       smooth_seconds=smooth_seconds, threads=max(1, int(cpus_per_worker))),
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
        )
        summaries = ds.take_all()
    elapsed = time.perf_counter() - started
    labels: Dict[str, int] = {}
    for s in summaries:
        for k, v in json.loads(s["labels"]).items():
            labels[k] = labels.get(k, 0) + v
    frames = sum(int(s["frames"]) for s in summaries)
    summary = dict(
        inputs=len({i["source"] for i in items}),
        items=len(items),
        skipped=len(items) - len(todo),
        analysed=len(summaries),
        images=sum(1 for s in summaries if s["kind"] == "image" and not s["error"]),
        video_frames=sum(int(s["frames"]) for s in summaries if s["kind"] == "video"),
        frames=frames,
        faces=sum(int(s["faces"]) for s in summaries),
        errors=[{"source": s["source"], "error": s["error"]} for s in summaries if s["error"]],
        labels=labels,
        seconds=round(elapsed, 3),
        # Where the time went: the workers' time in batches (summed over workers), and how long
        # the job took to reach its first batch (listing, planning, connecting, actor start-up).
        worker_seconds=round(sum(float(s["seconds"]) for s in summaries), 3),
        first_batch_after_s=round(min(float(s["began"]) for s in summaries) - started_at, 3) if summaries else None,
        frames_per_second=round(frames / elapsed, 2) if elapsed > 0 else None,
    )
    fs, root = _filesystem(output)
    fs.create_dir(root, recursive=True)
    tmp = f"{root}/.summary-{uuid.uuid4().hex}.json"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(summary, indent=2).encode())
    fs.move(tmp, f"{root}/summary.json")
    return summary


def read(output: str) -> Any:
    """Every row written under ``output`` as one pyarrow Table."""
    pa = _pa()
    fs, root = _filesystem(output)
    return pa.parquet.read_table(f"{root}/data", filesystem=fs, schema=_schema())


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrite.ray", description="ferrite on a Ray cluster")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="every face in images and videos, written as Parquet")
    a.add_argument("inputs", nargs="+", help="files, folders or globs (local paths or URIs pyarrow reads)")
    a.add_argument("--output", required=True, help="output folder (local path or URI); re-runs skip what it holds")
    a.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, or a local cluster)")
    a.add_argument("--workers", type=int, default=2, help="analyzer actors (at most; default 2)")
    a.add_argument("--cpus-per-worker", type=float, default=1.0)
    a.add_argument("--detect-every", type=int, default=3, help="videos: run the detector every K frames")
    a.add_argument("--smooth-seconds", type=float, default=0.3)
    a.add_argument("--segment-frames", type=int, default=SEGMENT_FRAMES, help="videos: frames per unit of work")
    a.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="items a worker takes at a time (one Parquet file)")
    a.add_argument("--model", help="embedded:NAME, a model file or a run directory")
    a.add_argument("--detector", choices=["both", "back", "full"])
    a.add_argument("--tta", choices=["none", "flip", "ten", "thirty", "ninety"])
    a.add_argument("--abstain", type=float)
    a.add_argument("--margin", type=float)
    a.add_argument("--no-align", action="store_true")
    a.add_argument("--min-score", type=float)
    a.add_argument("--tiles", type=int)
    a.add_argument("--pad-retry", type=float)
    a.add_argument("--edge-pad", type=float)
    a.add_argument("--small-face-tiles", type=float)
    a.add_argument("--precision", choices=["f32", "int8"], help="int8: the quantized model (CPUs with VNNI or AMX)")
    args = p.parse_args(argv)
    # Analyzer options left out keep the library's defaults (ferrite.Analyzer).
    given = dict(model=args.model, detector=args.detector, tta=args.tta, abstain=args.abstain, margin=args.margin,
                 align=False if args.no_align else None, min_score=args.min_score, tiles=args.tiles, pad_retry=args.pad_retry,
                 edge_pad=args.edge_pad, small_face_tiles=args.small_face_tiles, precision=args.precision)
    settings = {k: v for k, v in given.items() if v is not None}
    try:
        summary = run(args.inputs, args.output, args.address, args.workers, args.cpus_per_worker, args.detect_every,
                      args.smooth_seconds, args.segment_frames, settings, args.batch_size)
    except ferrite.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
