//! `ferrite video`: faces in a video file, camera or stream over time: annotated copy, CSV
//! timeline, emotion-over-time plot.

use super::detect::{CSV_PROBS, face_csv_fields};
use super::face::FaceArgs;
use anyhow::{Context, Result};
use clap::Args;
use ferrite::plot::TimelinePoint;
use ferrite::vision::analyzer::{VideoAnalyzer, VideoOptions};
use ferrite::vision::video::{FrameReader, FrameWriter, VideoInfo, probe};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct VideoArgs {
    /// Anything ffmpeg reads: a file, /dev/video0, rtsp://...
    pub source: String,
    /// Write an annotated copy (same frame rate, audio kept).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the per-frame, per-face timeline as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write each person's emotion over time as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Run the face detector on every Nth frame; the tracker carries boxes in between.
    #[arg(long, default_value_t = 3)]
    pub detect_every: usize,
    /// Smoothing of each face's probabilities over time: the time constant of their moving
    /// average in seconds, 0 (none) to 5.
    #[arg(long, default_value_t = 0.3)]
    pub smooth_seconds: f32,
    /// Label hysteresis: a face's shown label changes only when another class's smoothed
    /// probability beats it by more than this, 0 (always the top class) to 0.5.
    #[arg(long, default_value_t = 0.15)]
    pub hysteresis: f32,
    /// Scene-cut detection: a frame whose small grayscale thumbnail differs from the previous
    /// one's by more than this mean absolute difference (0-1) starts a new shot, where tracks
    /// end and the detector runs. 0 = off.
    #[arg(long, default_value_t = 0.1)]
    pub cut_threshold: f32,
    /// Stop after this many frames (cameras and streams run until stopped otherwise).
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Show the annotated frames in a window (needs a display and ffplay).
    #[arg(long)]
    pub show: bool,
    #[command(flatten)]
    pub face: FaceArgs,
}

pub fn run(args: VideoArgs) -> Result<()> {
    let VideoArgs { source, out, csv, plot, detect_every, smooth_seconds, hysteresis, cut_threshold, max_frames, show, face } = args;
    let opts = VideoOptions {
        detect_every,
        tracker: ferrite::vision::track::TrackerConfig { smooth_seconds, hysteresis, ..Default::default() },
        cut_threshold,
    };
    opts.validate()?;
    let outputs = Outputs { video: out.as_deref(), csv: csv.as_deref(), plot: plot.as_deref(), show };
    video(&source, outputs, opts, max_frames, &face)
}

/// Where a run's results go.
struct Outputs<'a> {
    video: Option<&'a Path>,
    csv: Option<&'a Path>,
    plot: Option<&'a Path>,
    show: bool,
}

/// Seconds spent waiting on each stage ffmpeg and the drawing take, over the run.
#[derive(Default)]
struct StageTimes {
    decode_s: f64,
    draw_s: f64,
    encode_s: f64,
}

/// The per-frame, per-face CSV with its header written.
fn open_csv(p: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?);
    writeln!(f, "frame,time_s,track,detected,x,y,w,h,score,label,{CSV_PROBS}")?;
    Ok(f)
}

/// An ffplay window fed raw RGB frames, where there is a display (a warning where not).
fn open_viewer(info: &VideoInfo) -> Option<std::process::Child> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        eprintln!("warning: --show needs a display (DISPLAY is not set); continuing without a window");
        return None;
    }
    std::process::Command::new("ffplay")
        .args(["-loglevel", "error", "-f", "rawvideo", "-pixel_format", "rgb24", "-video_size"])
        .arg(format!("{}x{}", info.width, info.height))
        .arg("-framerate")
        .arg(format!("{}", info.fps))
        .args(["-window_title", "ferrite", "-i", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| eprintln!("warning: cannot open a window (ffplay: {e})"))
        .ok()
}

fn video(source: &str, to: Outputs, mut opts: VideoOptions, max_frames: Option<usize>, face: &FaceArgs) -> Result<()> {
    let info = probe(source)?;
    let analyzer = face.analyzer()?;
    let mut reader = FrameReader::open(source, &info)?;
    let audio = info.has_audio.then_some(source);
    let mut writer = match to.video {
        Some(p) => Some(FrameWriter::create(p, info.width, info.height, audio)?),
        None => None,
    };
    let mut csv_file = match to.csv {
        Some(p) => Some((p, open_csv(p)?)),
        None => None,
    };
    let mut viewer = if to.show { open_viewer(&info) } else { None };
    // A track survives a second without its face (and at least one detection interval).
    opts.tracker.max_missed = (info.fps.round() as usize).max(opts.detect_every + 1);
    let detect_every = opts.detect_every;
    let mut va = VideoAnalyzer::new(&analyzer, info.fps, opts);
    let mut timeline: Vec<TimelinePoint> = Vec::new();
    let started = std::time::Instant::now();
    let mut frames = 0usize;
    let interactive = std::io::stderr().is_terminal();
    let mut times = StageTimes::default();
    let outcome: Result<()> = (|| {
        while max_frames.is_none_or(|m| frames < m) {
            let t = std::time::Instant::now();
            let Some(read) = reader.next_frame()? else { break };
            times.decode_s += t.elapsed().as_secs_f64();
            let mut frame = read.image;
            let r = va.process_at(&frame, read.index, read.time_s)?;
            frames += 1;
            if let Some((_, f)) = csv_file.as_mut() {
                for t in &r.faces {
                    writeln!(f, "{},{:.3},{},{},{}", r.index, r.time_s, t.id, r.detected as u8, face_csv_fields(&t.face))?;
                }
                f.flush()?;
            }
            for t in &r.faces {
                timeline.push(TimelinePoint { time_s: r.time_s, track: t.id, probs: t.face.probs });
            }
            let t = std::time::Instant::now();
            if writer.is_some() || viewer.is_some() {
                analyzer.draw_tracked(&mut frame, &r.faces);
            }
            let t2 = std::time::Instant::now();
            times.draw_s += (t2 - t).as_secs_f64();
            if let Some(w) = writer.as_mut() {
                w.write(&frame, read.time_s)?;
            }
            times.encode_s += t2.elapsed().as_secs_f64();
            if let Some(v) = viewer.as_mut()
                && v.stdin.as_mut().is_none_or(|s| s.write_all(frame.as_raw()).is_err())
            {
                viewer = None; // window closed
            }
            if interactive && frames.is_multiple_of(25) {
                eprint!("\rframe {frames} ({:.1} fps)", frames as f64 / started.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })();
    if interactive {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    // Whatever happened, keep what was already analysed: the CSV rows are flushed per frame.
    if let Some((p, mut f)) = csv_file {
        f.flush().with_context(|| format!("writing {}", p.display()))?;
        println!("timeline: {}", p.display());
    }
    if let Some(p) = to.plot
        && !timeline.is_empty()
    {
        ferrite::plot::timeline(&timeline, 6, p).with_context(|| format!("writing {}", p.display()))?;
        println!("plot: {}", p.display());
    }
    outcome.with_context(|| format!("after {frames} frame(s)"))?;
    if let Some(w) = writer {
        w.finish()?;
        println!("annotated video: {}", to.video.map(|p| p.display().to_string()).unwrap_or_default());
    }
    let tracks: std::collections::BTreeSet<u32> = timeline.iter().map(|t| t.track).collect();
    println!("{frames} frame(s) in {secs:.1}s ({:.1} fps), {} person(s) tracked", frames as f64 / secs.max(1e-9), tracks.len());
    let per = |s: f64| 1000.0 * s / frames.max(1) as f64;
    println!(
        "ms per frame: decode wait {:.2}, detect {:.2} (every {detect_every} frames), classify {:.2}, draw {:.2}, encode wait {:.2}",
        per(times.decode_s),
        per(va.detect_s),
        per(va.classify_s),
        per(times.draw_s),
        per(times.encode_s)
    );
    Ok(())
}
