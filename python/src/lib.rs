//! `ferrite._ferrite`: the thin PyO3 layer under the `ferrite` Python package. Settings go
//! straight to `ferrite::Analyzer::builder()` (the library checks them), images arrive as a path,
//! encoded bytes or raw pixels (the Python layer turns numpy arrays and PIL images into those),
//! results go back as the library's own JSON, and every library error becomes the Python
//! exception `ferrite._errors` names for it (mapped once, in [`to_py`]). The GIL is released
//! while Rust works.

use ferrite::data::LoadOptions;
use ferrite::vision::video::{FrameReader, VideoInfo};
use ferrite::data::imageio::DecodeLimits;
use ferrite::{Analyzer, DetectorModel, EncodedImage, Error, ImageInput, ModelSource, Tta, VideoAnalyzer, VideoOptions};
use image::DynamicImage;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The Python exception for a library error: `ferrite.FileNotFoundError` for a missing file,
/// `ferrite.ImageError` (a `ValueError`) for bytes that are not an image, `ferrite.SettingError`
/// (a `ValueError`) for a bad setting, ... all deriving from `ferrite.Error`.
fn to_py(e: Error) -> PyErr {
    let class = match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => "FileNotFoundError",
        Error::Io { .. } => "IOError",
        Error::BadImage { .. } => "ImageError",
        Error::Setting { .. } | Error::Config(_) | Error::Unsupported { .. } => "SettingError",
        Error::BadDataset { .. } | Error::BadCsvRow { .. } => "DataError",
        Error::BadModelFile { .. } | Error::Model(_) | Error::Incompatible(_) => "ModelError",
        Error::RunExists { .. } | Error::BadRunDir { .. } | Error::NonFinite(_) => "TrainingError",
        Error::Video { .. } | Error::VideoIo { .. } => "VideoError",
        _ => "Error",
    };
    Python::attach(|py| {
        let message = e.to_string();
        match py.import("ferrite._errors").and_then(|m| m.getattr(class)) {
            Ok(cls) => match cls.cast_into::<PyType>() {
                Ok(t) => PyErr::from_type(t, message),
                Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
            },
            Err(import) => import,
        }
    })
}

/// A library result as a Python one.
fn ok<T>(r: ferrite::Result<T>) -> PyResult<T> {
    r.map_err(to_py)
}

/// A setting given as a string (`"both"`, `"flip"`), read as the library's enum.
fn choice<T: serde::de::DeserializeOwned>(name: &'static str, value: &str, choices: &str) -> ferrite::Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).map_err(|_| Error::Setting {
        name,
        value: format!("{value:?}"),
        expected: format!("one of {choices}"),
    })
}

fn tta(value: &str) -> ferrite::Result<Tta> {
    choice("tta", value, "none, flip, ten, thirty, ninety")
}

/// An image from Python: a file, encoded bytes, or raw 8-bit pixels (gray, RGB or RGBA rows,
/// made an image as they arrive). The Python layer passes a path (`str`), `("bytes", data, name)`
/// or `("pixels", data, width, height, channels)`.
enum Input {
    Path(PathBuf),
    Encoded(Vec<u8>, String),
    Image(DynamicImage),
}

impl Input {
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Input> {
        let Ok(t) = obj.cast::<PyTuple>() else {
            return Ok(Input::Path(obj.extract()?));
        };
        let tag: String = t.get_item(0)?.extract()?;
        let data = t.get_item(1)?;
        let bytes = data.cast::<PyBytes>().map_err(|_| pyo3::exceptions::PyTypeError::new_err("image data must be bytes"))?.as_bytes().to_vec();
        match tag.as_str() {
            "bytes" => Ok(Input::Encoded(bytes, t.get_item(2)?.extract()?)),
            "pixels" => {
                let (w, h, channels): (u32, u32, u8) = (t.get_item(2)?.extract()?, t.get_item(3)?.extract()?, t.get_item(4)?.extract()?);
                let len = bytes.len();
                let img = match channels {
                    1 => image::GrayImage::from_raw(w, h, bytes).map(DynamicImage::ImageLuma8),
                    3 => image::RgbImage::from_raw(w, h, bytes).map(DynamicImage::ImageRgb8),
                    4 => image::RgbaImage::from_raw(w, h, bytes).map(DynamicImage::ImageRgba8),
                    _ => None,
                };
                match img {
                    Some(img) if w > 0 && h > 0 => Ok(Input::Image(img)),
                    _ => Err(to_py(Error::Setting {
                        name: "image",
                        value: format!("{len} bytes for {w}x{h}x{channels}"),
                        expected: "a uint8 array of shape HxW, HxWx3 or HxWx4".into(),
                    })),
                }
            }
            other => Err(pyo3::exceptions::PyTypeError::new_err(format!("unknown image form {other:?}"))),
        }
    }

    fn many(objs: &Bound<'_, PyAny>) -> PyResult<Vec<Input>> {
        objs.try_iter()?.map(|o| Input::from_py(&o?)).collect()
    }
}

impl ImageInput for Input {
    fn decode(&self, limits: &DecodeLimits) -> ferrite::Result<Cow<'_, DynamicImage>> {
        match self {
            Input::Path(p) => p.decode(limits),
            Input::Encoded(bytes, name) => EncodedImage { name, bytes }.decode(limits).map(|c| Cow::Owned(c.into_owned())),
            Input::Image(img) => Ok(Cow::Borrowed(img)),
        }
    }
}

/// JSON text of a serialisable value (the Python layer parses it).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The analyzer: built once from its settings, shared between Python threads.
#[pyclass(frozen, module = "ferrite._ferrite")]
struct NativeAnalyzer {
    inner: Arc<Analyzer>,
}

#[pymethods]
impl NativeAnalyzer {
    /// Each setting left `None` keeps the library's default (`ferrite::AnalyzerBuilder`).
    #[new]
    #[pyo3(signature = (model=None, detector=None, tta=None, abstain=None, margin=None, align=None, min_score=None, tiles=None, pad_retry=None, prior_correction=None, threads=None, max_pixels=None, edge_pad=None, small_face_tiles=None, precision=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<String>,
        detector: Option<&str>,
        tta: Option<&str>,
        abstain: Option<f32>,
        margin: Option<f32>,
        align: Option<bool>,
        min_score: Option<f32>,
        tiles: Option<u32>,
        pad_retry: Option<f32>,
        prior_correction: Option<f32>,
        threads: Option<usize>,
        max_pixels: Option<u64>,
        edge_pad: Option<f32>,
        small_face_tiles: Option<f32>,
        precision: Option<&str>,
    ) -> PyResult<NativeAnalyzer> {
        let mut b = Analyzer::builder().min_score(min_score).threads(threads);
        if let Some(m) = model {
            b = b.model(m);
        }
        if let Some(d) = detector {
            b = b.detector(ok(choice::<DetectorModel>("detector", d, "yunet-first, yunet, both, back, full"))?);
        }
        if let Some(t) = tta {
            b = b.tta(ok(self::tta(t))?);
        }
        if let Some(v) = abstain {
            b = b.abstain(v);
        }
        if let Some(v) = margin {
            b = b.margin(v);
        }
        if let Some(v) = align {
            b = b.align(v);
        }
        if let Some(v) = tiles {
            b = b.tiles(v);
        }
        if let Some(v) = pad_retry {
            b = b.pad_retry(v);
        }
        if let Some(v) = edge_pad {
            b = b.edge_pad(v);
        }
        if let Some(v) = small_face_tiles {
            b = b.small_face_tiles(v);
        }
        if let Some(v) = prior_correction {
            b = b.prior_correction(v);
        }
        if let Some(v) = max_pixels {
            b = b.max_pixels(v);
        }
        if let Some(p) = precision {
            b = b.precision(ok(p.parse())?);
        }
        let inner = ok(py.detach(|| b.build()))?;
        Ok(NativeAnalyzer { inner: Arc::new(inner) })
    }

    /// The faces in one image, as JSON.
    fn analyze(&self, py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<String> {
        let image = Input::from_py(image)?;
        let a = &self.inner;
        ok(py.detach(|| a.analyze(image.decode(&a.config().decode_limits)?.as_ref()).map(|f| json(&f))))
    }

    /// The faces in each image (JSON), or the error for that image, decoded and analysed in
    /// parallel.
    #[pyo3(signature = (images, threads=None))]
    fn analyze_many(&self, py: Python<'_>, images: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<Vec<Py<PyAny>>> {
        let images = Input::many(images)?;
        let a = &self.inner;
        let results = ok(py.detach(|| a.analyze_many_on(&images, threads)))?;
        results
            .into_iter()
            .map(|r| match r {
                Ok(faces) => Ok(json(&faces).into_pyobject(py)?.into_any().unbind()),
                Err(e) => Ok(to_py(e).into_value(py).into_any()),
            })
            .collect()
    }

    /// The seven probabilities of each face crop (no detector).
    fn predict(&self, py: Python<'_>, crops: &Bound<'_, PyAny>) -> PyResult<Vec<[f32; ferrite::Emotion::COUNT]>> {
        let crops = Input::many(crops)?;
        let a = &self.inner;
        ok(py.detach(|| {
            let images = crops.iter().map(|c| c.decode(&a.config().decode_limits).map(Cow::into_owned)).collect::<ferrite::Result<Vec<_>>>()?;
            a.predict(&images)
        }))
    }

    /// The model's contract and provenance, as JSON.
    fn model_meta(&self) -> String {
        json(self.inner.meta())
    }

    /// Frames of a video file, camera or stream URL, analysed with tracking and smoothing;
    /// it starts at frame `start_frame` (a segment of a long video; a constant-rate file is
    /// sought by time, other sources are decoded from the start).
    #[pyo3(signature = (source, detect_every=3, smooth_seconds=0.3, max_frames=None, start_frame=0))]
    fn video(&self, py: Python<'_>, source: String, detect_every: usize, smooth_seconds: f32, max_frames: Option<usize>, start_frame: usize) -> PyResult<NativeVideo> {
        let mut opts = VideoOptions { detect_every, ..VideoOptions::default() };
        opts.tracker.smooth_seconds = smooth_seconds;
        let analyzer = self.inner.clone();
        let (info, reader, video) = ok(py.detach(move || {
            opts.validate()?;
            let info = ferrite::vision::video::probe(&source)?;
            let reader = FrameReader::open_at(&source, &info, start_frame)?;
            let video = VideoAnalyzer::checked(analyzer, info.fps, opts)?;
            Ok::<_, Error>((info, reader, video))
        }))?;
        Ok(NativeVideo { state: Mutex::new(VideoState { reader, video, left: max_frames }), info })
    }
}

struct VideoState {
    reader: FrameReader,
    video: VideoAnalyzer<Arc<Analyzer>>,
    left: Option<usize>,
}

/// An iterator of analysed video frames (JSON), ffmpeg decoding ahead.
#[pyclass(frozen, module = "ferrite._ferrite")]
struct NativeVideo {
    state: Mutex<VideoState>,
    info: VideoInfo,
}

#[pymethods]
impl NativeVideo {
    /// (width, height, frames per second).
    #[getter]
    fn info(&self) -> (u32, u32, f64) {
        (self.info.width, self.info.height, self.info.fps)
    }

    /// The next frame as JSON, or None at the end.
    fn next_frame(&self, py: Python<'_>) -> PyResult<Option<String>> {
        ok(py.detach(|| {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.left == Some(0) {
                return Ok(None);
            }
            let Some(frame) = s.reader.next_frame()? else { return Ok(None) };
            s.left = s.left.map(|n| n - 1);
            let r = s.video.process_at(&frame.image, frame.index, frame.time_s)?;
            Ok(Some(json(&r)))
        }))
    }
}

/// Scores of a model on a labelled data set (image folder or FER2013 CSV), as JSON.
#[pyfunction]
#[pyo3(signature = (data, model=None, ferplus=false, votes=None, tta="none", usage=None, skip_bad=false, prior_correction=0.0))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    data: PathBuf,
    model: Option<String>,
    ferplus: bool,
    votes: Option<PathBuf>,
    tta: &str,
    usage: Option<String>,
    skip_bad: bool,
    prior_correction: f32,
) -> PyResult<String> {
    let tta = self::tta(tta).map_err(to_py)?;
    let source = model.map(ModelSource::from).unwrap_or_default();
    ok(py.detach(move || {
        let device = ferrite::device::inference_device();
        let (net, header) = source.load(&device)?;
        let opts = LoadOptions { skip_bad, usage, max_per_class: None, contrast: header.contrast() };
        let (net, header) = ferrite::model::infer::correct_priors(net, header, prior_correction)?;
        let ds = ferrite::train::load_labelled(&data, &opts, ferplus.then_some(votes.as_deref()))?;
        let report = ferrite::eval::evaluate_tta(&net, &ds, &device, tta);
        Ok(serde_json::json!({
            "model": source.name(),
            "labels": if ferplus { "ferplus-majority" } else { "own" },
            "skipped": ds.skipped.len(),
            "model_meta": header.meta,
            "report": report,
        })
        .to_string())
    }))
}

/// Faces for training: a path (folder, FER2013 CSV or image list) or rows of (image, class).
#[derive(FromPyObject)]
enum TrainFaces {
    Path(PathBuf),
    Rows(Vec<(PathBuf, String)>),
}

/// The Python callbacks of a training call, told from the training thread with the GIL taken;
/// the first exception one raises (KeyboardInterrupt from Ctrl-C included, checked at every
/// step) stops the run and is raised once it returns.
#[derive(Clone)]
struct Callbacks {
    on_epoch: Option<Arc<Py<PyAny>>>,
    on_step: Option<Arc<Py<PyAny>>>,
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Callbacks {
    fn new(on_epoch: Option<Py<PyAny>>, on_step: Option<Py<PyAny>>) -> Callbacks {
        Callbacks { on_epoch: on_epoch.map(Arc::new), on_step: on_step.map(Arc::new), raised: Arc::new(Mutex::new(None)) }
    }

    fn keep(&self, r: PyResult<()>) -> bool {
        let Err(e) = r else { return true };
        let mut raised = self.raised.lock().unwrap_or_else(|p| p.into_inner());
        raised.get_or_insert(e);
        false
    }

    fn stopped(&self) -> bool {
        self.raised.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The library's options: Ctrl-C and the step callback checked after each step, the epoch
    /// callback told each finished epoch's record (JSON).
    fn options(&self) -> ferrite::train::TrainOptions {
        let step = self.clone();
        let epoch = self.clone();
        ferrite::train::TrainOptions {
            progress: false,
            max_epochs_this_call: None,
            on_step: Some(Arc::new(move |p: &ferrite::train::StepProgress| {
                !step.stopped()
                    && Python::attach(|py| {
                        let r = py.check_signals().and_then(|()| match &step.on_step {
                            Some(f) => f.call1(py, (p.epoch, p.epochs, p.step, p.steps, p.loss, p.accuracy, p.lr)).map(|_| ()),
                            None => Ok(()),
                        });
                        step.keep(r)
                    })
            })),
            on_epoch: Some(Arc::new(move |_run: &ferrite::train::RunDir, state: &ferrite::train::TrainState| {
                if let (Some(f), Some(last)) = (&epoch.on_epoch, state.history.last()) {
                    Python::attach(|py| {
                        let r = f.call1(py, (json(last),)).map(|_| ());
                        epoch.keep(r);
                    });
                }
            })),
        }
    }

    /// The run's outcome as JSON, or the exception a callback raised.
    fn finish(self, r: ferrite::Result<ferrite::train::TrainOutcome>) -> PyResult<String> {
        if let Some(e) = self.raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let o = ok(r)?;
        Ok(serde_json::json!({
            "run_dir": o.run_dir,
            "epochs": o.state.epoch,
            "best_epoch": o.state.best_epoch,
            "best_val_accuracy": o.state.best_val_acc,
            "stopped_early": o.stopped_early,
            "interrupted": o.interrupted,
            "missing_classes": o.missing_classes.iter().map(|e| e.name()).collect::<Vec<_>>(),
        })
        .to_string())
    }
}

/// Train into `out` through `ferrite::Trainer::builder()`: each setting left `None` keeps the
/// library's default (the fine-tuning recipe when `init` is given). The GIL is released while
/// it trains; returns the outcome as JSON.
#[pyfunction]
#[pyo3(signature = (data, out, val=None, init=None, epochs=None, batch_size=None, lr=None, time_budget=None, early_stop=None, val_fraction=None, seed=None, augment=None, label_smoothing=None, class_weight_power=None, ferplus=None, votes=None, val_votes=None, skip_bad=None, max_per_class=None, arch=None, width=None, dropout=None, on_epoch=None, on_step=None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    data: TrainFaces,
    out: PathBuf,
    val: Option<TrainFaces>,
    init: Option<String>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    time_budget: Option<f64>,
    early_stop: Option<usize>,
    val_fraction: Option<f64>,
    seed: Option<u64>,
    augment: Option<&str>,
    label_smoothing: Option<f32>,
    class_weight_power: Option<f32>,
    ferplus: Option<&str>,
    votes: Option<PathBuf>,
    val_votes: Option<PathBuf>,
    skip_bad: Option<bool>,
    max_per_class: Option<usize>,
    arch: Option<&str>,
    width: Option<usize>,
    dropout: Option<f64>,
    on_epoch: Option<Py<PyAny>>,
    on_step: Option<Py<PyAny>>,
) -> PyResult<String> {
    let callbacks = Callbacks::new(on_epoch, on_step);
    let mut b = ferrite::Trainer::builder().out(out);
    b = match data {
        TrainFaces::Path(p) => b.data(p),
        TrainFaces::Rows(rows) => b.rows(rows),
    };
    b = match val {
        Some(TrainFaces::Path(p)) => b.val(p),
        Some(TrainFaces::Rows(rows)) => b.val_rows(rows),
        None => b,
    };
    if let Some(v) = init {
        b = b.init(v);
    }
    if arch.is_some() || width.is_some() || dropout.is_some() {
        let mut spec = ferrite::model::ModelSpec::new(match arch {
            Some(a) => ok(choice("arch", a, "reference, compact"))?,
            None => Default::default(),
        });
        spec.width = width.or(spec.width);
        spec.dropout = dropout.unwrap_or(spec.dropout);
        b = b.network(spec);
    }
    if let Some(a) = augment {
        let augment = serde_json::from_str(a).map_err(|e| to_py(Error::Setting { name: "augment", value: a.to_string(), expected: format!("augmentation settings ({e})") }))?;
        b = b.augment(augment);
    }
    if let Some(mode) = ferplus {
        b = b.ferplus(ferrite::data::ferplus::FerPlusConfig {
            mode: ok(choice("ferplus", mode, "majority, probability, crossentropy, multi-target"))?,
            train_votes: votes,
            val_votes,
            own_label_weight: 0.0,
        });
    }
    macro_rules! given {
        ($($name:ident => $setting:ident),*) => {$( if let Some(v) = $name { b = b.$setting(v); } )*};
    }
    given!(epochs => epochs, batch_size => batch_size, lr => lr, early_stop => early_stop_patience, val_fraction => val_fraction, seed => seed, label_smoothing => label_smoothing, class_weight_power => class_weight_power, skip_bad => skip_bad, max_per_class => max_per_class);
    if let Some(m) = time_budget {
        b = b.time_budget_minutes(Some(m));
    }
    b = b.options(callbacks.options());
    let r = py.detach(|| b.build()?.fit());
    callbacks.finish(r)
}

/// Continue the run in `out` from its last finished epoch (callbacks as for `train`).
#[pyfunction]
#[pyo3(signature = (out, on_epoch=None, on_step=None))]
fn resume(py: Python<'_>, out: PathBuf, on_epoch: Option<Py<PyAny>>, on_step: Option<Py<PyAny>>) -> PyResult<String> {
    let callbacks = Callbacks::new(on_epoch, on_step);
    let opts = callbacks.options();
    let r = py.detach(|| ferrite::train::resume(&out, opts));
    callbacks.finish(r)
}

/// The class names in output order (ferrite's one `Emotion` enum).
#[pyfunction]
fn emotions() -> Vec<&'static str> {
    ferrite::Emotion::ALL.iter().map(|e| e.name()).collect()
}

#[pymodule]
fn _ferrite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeAnalyzer>()?;
    m.add_class::<NativeVideo>()?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(emotions, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
