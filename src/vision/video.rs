//! Video in and out through ffmpeg: probe a source, read RGB frames, write an annotated copy.
//!
//! Any source ffmpeg reads works (files, `/dev/video0`, RTSP URLs). Frames travel as raw
//! `rgb24` over pipes; errors name the source and carry ffmpeg's own message.

use crate::error::{Error, Result};
use image::RgbImage;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a video source holds.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second (the stream's average rate; 25 when the source does not say).
    pub fps: f64,
    pub has_audio: bool,
    /// The stream says its frames come at one steady rate (average rate = base rate), so a
    /// frame's number and its time agree and a reader can seek to a frame by time.
    pub constant_rate: bool,
}

fn video_error(source: &str, message: impl Into<String>) -> Error {
    Error::Video {
        source_name: source.to_string(),
        message: message.into(),
    }
}

/// An I/O failure while `what`, with the error as its source.
fn video_io(source: &str, what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    let source_name = source.to_string();
    move |source| Error::VideoIo { source_name, what, source }
}

fn spawn(cmd: &mut Command, source: &str) -> Result<Child> {
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            video_error(source, format!("{} not found: install ffmpeg (Debian: apt install ffmpeg)", cmd.get_program().to_string_lossy()))
        } else {
            video_io(source, "starting ffmpeg")(e)
        }
    })
}

/// Parse "30000/1001" or "25" into frames per second.
fn parse_rate(s: &str) -> Option<f64> {
    let v = match s.split_once('/') {
        Some((a, b)) => a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?,
        None => s.trim().parse().ok()?,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// ffprobe's JSON answer for `source` with `args` (`-v error ... -of json` around them); its
/// own message when it cannot read the source.
fn ffprobe(source: &str, args: &[&str]) -> Result<serde_json::Value> {
    let out = spawn(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-of", "json"])
            .arg(source)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        source,
    )?
    .wait_with_output()
    .map_err(video_io(source, "running ffprobe"))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(video_error(source, if msg.is_empty() { "ffprobe cannot read it".into() } else { msg }));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| video_error(source, format!("bad ffprobe output: {e}")))
}

/// Ask ffprobe for the size, frame rate and audio of `source`.
pub fn probe(source: &str) -> Result<VideoInfo> {
    let v = ffprobe(source, &["-show_entries", "stream=codec_type,width,height,avg_frame_rate,r_frame_rate"])?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or_else(|| video_error(source, "no video stream"))?;
    let width = video["width"].as_u64().unwrap_or(0) as u32;
    let height = video["height"].as_u64().unwrap_or(0) as u32;
    if width == 0 || height == 0 {
        return Err(video_error(source, "video stream without a frame size"));
    }
    let avg = video["avg_frame_rate"].as_str().and_then(parse_rate);
    let base = video["r_frame_rate"].as_str().and_then(parse_rate);
    let fps = avg.or(base).unwrap_or(25.0);
    let constant_rate = matches!((avg, base), (Some(a), Some(b)) if (a - b).abs() <= 1e-6 * b);
    let has_audio = streams.iter().any(|s| s["codec_type"] == "audio");
    Ok(VideoInfo { width, height, fps, has_audio, constant_rate })
}

/// One decoded frame with its place in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Its number in the stream (0-based, every decoded frame counted once).
    pub index: usize,
    /// Its presentation time: seconds from the stream's first frame, as the stream stamps it
    /// (variable frame rates included); `index / fps` only where the stream carries no time.
    pub time_s: f64,
    pub image: RgbImage,
}

/// ffmpeg's log, read on a thread of its own: the presentation time of each frame (from the
/// `showinfo` filter, in output order) and the errors ffmpeg reports.
struct FfmpegLog {
    /// Each frame's stamp and the time base it counts in (seconds per tick).
    times: Receiver<Option<(i64, f64)>>,
    errors: Arc<Mutex<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How much of ffmpeg's error text is kept (a hostile stream can make it talk without end).
const MAX_ERROR_TEXT: usize = 8 << 10;

/// One line of ffmpeg's log, written with `-loglevel level+info`: `[context @ 0x..] [level] text`
/// or `[level] text`. Gives the level and the text.
fn log_line(line: &str) -> Option<(&str, &str)> {
    let mut rest = line;
    if rest.starts_with('[') {
        let close = rest.find(']')?;
        if rest[..close].contains(" @ ") {
            rest = rest[close + 1..].trim_start();
        }
    }
    let rest = rest.strip_prefix('[')?;
    let close = rest.find(']')?;
    Some((&rest[..close], rest[close + 1..].trim_start()))
}

/// What a `showinfo` line says: the time base of the frames it will report (`config in
/// time_base: 1/12800, ...`), or a frame's time stamp (`n: 3 pts: 1536 pts_time:0.12 ...`; `None`
/// for a frame without one, `NOPTS`).
#[derive(Debug, PartialEq)]
enum ShowInfo {
    TimeBase(f64),
    Frame(Option<i64>),
}

fn showinfo(text: &str) -> Option<ShowInfo> {
    if let Some(rest) = text.strip_prefix("config in time_base:") {
        let (num, den) = rest.split(',').next()?.trim().split_once('/')?;
        let (num, den) = (num.parse::<i64>().ok()?, den.parse::<i64>().ok()?);
        return (num > 0 && den > 0).then(|| ShowInfo::TimeBase(num as f64 / den as f64));
    }
    if !text.starts_with("n:") {
        return None;
    }
    let pts = text.split_once(" pts:")?.1.split_whitespace().next()?;
    Some(ShowInfo::Frame(pts.parse::<i64>().ok()))
}

impl FfmpegLog {
    fn start(stderr: ChildStderr) -> FfmpegLog {
        let (tx, times) = std::sync::mpsc::channel();
        let errors = Arc::new(Mutex::new(String::new()));
        let kept = errors.clone();
        let thread = std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut buf = Vec::new();
            let mut time_base = None;
            loop {
                buf.clear();
                match lines.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf);
                let Some((level, text)) = log_line(line.trim_end()) else { continue };
                match level {
                    "info" => match showinfo(text) {
                        Some(ShowInfo::TimeBase(tb)) => time_base = Some(tb),
                        // The integer stamp (showinfo's own `pts_time` keeps six digits: 10 ms
                        // steps two hours in). The reader may have stopped listening; then
                        // ffmpeg is being stopped.
                        Some(ShowInfo::Frame(pts)) => {
                            let _ = tx.send(pts.zip(time_base));
                        }
                        None => {}
                    },
                    "error" | "fatal" | "panic" => {
                        let mut e = kept.lock().unwrap_or_else(|e| e.into_inner());
                        if e.len() < MAX_ERROR_TEXT {
                            if !e.is_empty() {
                                e.push('\n');
                            }
                            e.push_str(text);
                        }
                    }
                    _ => {}
                }
            }
        });
        FfmpegLog { times, errors, thread: Some(thread) }
    }

    /// The time of the frame just read: it is logged before the frame is written, so it has
    /// arrived or is on its way (a few seconds' patience for a loaded machine).
    fn next_time(&self) -> Option<(i64, f64)> {
        self.times.recv_timeout(Duration::from_secs(5)).ok().flatten()
    }

    /// Everything ffmpeg reported as an error (after it has exited).
    fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).trim().to_string()
    }
}

/// Decoded RGB frames of a source, one at a time, each once (none repeated or dropped to hold
/// a rate) and with its presentation time.
pub struct FrameReader {
    source: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    log: FfmpegLog,
    width: u32,
    height: u32,
    fps: f64,
    /// The index of the next frame.
    next: usize,
    /// The presentation time (stream seconds) of the stream's first frame: known before a
    /// read that starts by seeking, else taken from the first frame read.
    origin: Option<i64>,
    last_time: Option<f64>,
    finished: bool,
    /// A frame read ahead (to check where a seek landed).
    peeked: Option<VideoFrame>,
}

/// Where a file's video stream begins.
struct FirstFrame {
    /// The first frame's stamp, in the stream's time base.
    pts: i64,
    /// Its time in seconds from the container's start (from which ffmpeg's `-ss` counts).
    from_container_start: f64,
}

/// The first video frame of a file, from its first packets decoded by ffprobe.
fn first_frame_time(source: &str) -> Result<FirstFrame> {
    let v = ffprobe(
        source,
        &["-select_streams", "v:0", "-read_intervals", "%+#16", "-show_entries", "frame=best_effort_timestamp:stream=time_base:format=start_time"],
    )?;
    let pts = v["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["best_effort_timestamp"].as_i64())
        .min()
        .ok_or_else(|| video_error(source, "ffprobe finds no frame with a time at the start of the video stream"))?;
    let time_base = v["streams"][0]["time_base"].as_str().and_then(parse_rate).ok_or_else(|| video_error(source, "the video stream has no time base"))?;
    let container_start = v["format"]["start_time"].as_str().and_then(|s| s.parse::<f64>().ok()).filter(|t| t.is_finite()).unwrap_or(0.0);
    Ok(FirstFrame { pts, from_container_start: (pts as f64 * time_base - container_start).max(0.0) })
}

impl FrameReader {
    /// Start decoding `source` (probed beforehand for its size).
    pub fn open(source: &str, info: &VideoInfo) -> Result<FrameReader> {
        Self::spawn_reader(source, info, None)
    }

    /// Start decoding `source` at frame `start` (0-based): the frames [`FrameReader::open`]
    /// would give, less the first `start`, with the same indices and times. A file at a
    /// constant frame rate is sought by time (ffmpeg decodes from the key frame before it and
    /// drops frames before the time asked; the first frame's time is checked against its
    /// index); other sources are decoded from the start and the first `start` frames passed
    /// over.
    pub fn open_at(source: &str, info: &VideoInfo, start: usize) -> Result<FrameReader> {
        if start == 0 {
            return Self::open(source, info);
        }
        let seekable = std::fs::metadata(source).is_ok_and(|m| m.is_file());
        if info.constant_rate && seekable {
            let first = first_frame_time(source)?;
            // Half a frame early: the first frame kept is `start`, whatever the rounding of
            // its time stamp.
            let seek = first.from_container_start + (start as f64 - 0.5) / info.fps;
            let origin = first.pts;
            let mut reader = Self::spawn_reader(source, info, Some((seek, origin)))?;
            reader.next = start;
            match reader.peek_time()? {
                // Past the end: nothing to give.
                None => return Ok(reader),
                Some(t) if (t * info.fps - start as f64).abs() < 0.5 => return Ok(reader),
                // The stream's times do not follow its rate here: count frames instead.
                Some(_) => drop(reader),
            }
        }
        let mut reader = Self::open(source, info)?;
        for _ in 0..start {
            if reader.next_frame()?.is_none() {
                break;
            }
        }
        Ok(reader)
    }

    /// `seek`: (seconds from the container's start, the stamp of the stream's first frame).
    fn spawn_reader(source: &str, info: &VideoInfo, seek: Option<(f64, i64)>) -> Result<FrameReader> {
        let mut cmd = Command::new("ffmpeg");
        // Info level for showinfo's frame times; each line names its level.
        cmd.args(["-nostdin", "-hide_banner", "-nostats", "-v", "level+info", "-copyts"]);
        if let Some((t, _)) = seek {
            cmd.arg("-ss").arg(format!("{t:.6}"));
        }
        // Every decoded frame once, none repeated to fill a rate or the container's duration;
        // showinfo logs each frame's time, then setpts numbers the frames so that the raw
        // output never drops one for a repeated time stamp (in the time base of the stream).
        cmd.arg("-i").arg(source).args(["-map", "0:v:0", "-fps_mode", "passthrough"]);
        cmd.args(["-vf", "showinfo=checksum=0,setpts=N", "-enc_time_base", "-1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        let mut child = spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()), source)?;
        let stdout = child.stdout.take().ok_or_else(|| video_error(source, "no ffmpeg output pipe"))?;
        let stderr = child.stderr.take().ok_or_else(|| video_error(source, "no ffmpeg log pipe"))?;
        Ok(FrameReader {
            source: source.to_string(),
            child,
            stdout: BufReader::with_capacity(1 << 20, stdout),
            log: FfmpegLog::start(stderr),
            width: info.width,
            height: info.height,
            fps: info.fps,
            next: 0,
            origin: seek.map(|(_, origin)| origin),
            last_time: None,
            finished: false,
            peeked: None,
        })
    }

    /// The time of the next frame (read and kept for [`next_frame`](Self::next_frame)).
    fn peek_time(&mut self) -> Result<Option<f64>> {
        if self.peeked.is_none() {
            self.peeked = self.read_frame()?;
        }
        Ok(self.peeked.as_ref().map(|f| f.time_s))
    }

    /// The next frame; `Ok(None)` at the end of a clean stream. A stream that ends inside a
    /// frame, or that ffmpeg reports as broken, is an error naming the source.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>> {
        match self.peeked.take() {
            Some(f) => Ok(Some(f)),
            None => self.read_frame(),
        }
    }

    fn read_frame(&mut self) -> Result<Option<VideoFrame>> {
        if self.finished {
            return Ok(None);
        }
        let len = (self.width * self.height * 3) as usize;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(video_io(&self.source, "reading frames from ffmpeg")(e)),
            }
        }
        if filled == len {
            let index = self.next;
            self.next += 1;
            let stamped = self.log.next_time();
            if self.origin.is_none() {
                self.origin = stamped.map(|(pts, _)| pts);
            }
            let time_s = match (stamped, self.origin) {
                // Counted in ticks from the first frame: the same number whichever way the
                // read began.
                (Some((pts, tb)), Some(origin)) => (pts - origin) as f64 * tb,
                // No time on this frame: one frame on from the last, or its number at the rate.
                _ => self.last_time.map_or(index as f64 / self.fps, |t| t + 1.0 / self.fps),
            };
            self.last_time = Some(time_s);
            let image = RgbImage::from_raw(self.width, self.height, buf).ok_or_else(|| video_error(&self.source, "frame buffer size"))?;
            return Ok(Some(VideoFrame { index, time_s, image }));
        }
        self.finished = true;
        let status = self.child.wait().map_err(video_io(&self.source, "waiting for ffmpeg"))?;
        let stderr = self.log.finish();
        if filled > 0 {
            return Err(video_error(&self.source, format!("stream ended inside a frame (truncated?) {stderr}")));
        }
        if !status.success() {
            return Err(video_error(
                &self.source,
                if stderr.is_empty() { format!("ffmpeg failed ({status})") } else { stderr },
            ));
        }
        // ffmpeg decodes what it can of a damaged file and reports the rest as errors.
        if !stderr.is_empty() {
            return Err(video_error(&self.source, format!("decoding errors: {stderr}")));
        }
        Ok(None)
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.log.finish();
        }
    }
}

/// Encodes RGB frames to a video file (H.264 in MP4 by the extension), each at its own time,
/// copying the audio of `audio_from` when it has some. Written under a temporary name and
/// renamed on `finish`.
///
/// Frames travel to ffmpeg in a Matroska stream that stamps each one, and ffmpeg keeps those
/// stamps (`-fps_mode passthrough`): a variable-rate source keeps its timing, and no frame is
/// added or dropped to fit a rate.
pub struct FrameWriter {
    out: PathBuf,
    tmp: PathBuf,
    child: Child,
    stdin: Option<std::io::BufWriter<ChildStdin>>,
    width: u32,
    height: u32,
    /// The last frame's time in microseconds, to keep the times increasing.
    last_micros: Option<u64>,
}

impl FrameWriter {
    pub fn create(out: &Path, width: u32, height: u32, audio_from: Option<&str>) -> Result<FrameWriter> {
        let name = out.display().to_string();
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
        let tmp = out.with_extension(format!("partial.{ext}"));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-y", "-v", "error", "-f", "matroska", "-i", "-"]);
        if let Some(src) = audio_from {
            cmd.arg("-i").arg(src).args(["-map", "0:v:0", "-map", "1:a?", "-c:a", "aac", "-shortest"]);
        }
        // yuv420p needs even sizes: pad odd ones by a pixel. The frames keep their own times
        // (the stream's microseconds).
        cmd.args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fps_mode", "passthrough", "-enc_time_base", "-1"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"])
            .arg(&tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, &name)?;
        let mut stdin = child.stdin.take().map(|s| std::io::BufWriter::with_capacity(1 << 16, s));
        if let Some(s) = stdin.as_mut() {
            s.write_all(&super::matroska::header(width, height)).map_err(video_io(&name, "ffmpeg stopped taking frames"))?;
        }
        Ok(FrameWriter {
            out: out.to_path_buf(),
            tmp,
            child,
            stdin,
            width,
            height,
            last_micros: None,
        })
    }

    /// Add `frame` at `time_s` seconds from the first frame. A time at or before the last
    /// frame's is moved a microsecond past it (a video's times only go forward).
    pub fn write(&mut self, frame: &RgbImage, time_s: f64) -> Result<()> {
        let name = self.out.display().to_string();
        if frame.dimensions() != (self.width, self.height) {
            return Err(video_error(&name, "frame size changed"));
        }
        let stdin = self.stdin.as_mut().ok_or_else(|| video_error(&name, "writer already finished"))?;
        let asked = if time_s.is_finite() { (time_s.max(0.0) * 1e6).round() as u64 } else { 0 };
        let micros = self.last_micros.map_or(asked, |last| asked.max(last + 1));
        self.last_micros = Some(micros);
        super::matroska::write_frame(stdin, micros, frame.as_raw()).map_err(video_io(&name, "ffmpeg stopped taking frames"))
    }

    /// Close the stream, wait for ffmpeg and move the file into place.
    pub fn finish(mut self) -> Result<()> {
        let name = self.out.display().to_string();
        let flushed = self.stdin.take().map_or(Ok(()), |mut s| s.flush());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self.child.wait().map_err(video_io(&name, "waiting for ffmpeg"))?;
        if !status.success() || flushed.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
            let why = flushed.err().map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(video_error(&name, format!("ffmpeg failed: {}{why}", stderr.trim())));
        }
        std::fs::rename(&self.tmp, &self.out).map_err(|e| Error::io(&self.out, e))
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Not finished: stop ffmpeg (before the buffer's last flush, which then fails
            // at once) and leave no partial file behind.
            let _ = self.child.kill();
            drop(self.stdin.take());
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_parse() {
        assert_eq!(parse_rate("25"), Some(25.0));
        assert!((parse_rate("30000/1001").unwrap() - 29.97).abs() < 0.01);
        assert_eq!(parse_rate("0/0"), None);
        assert_eq!(parse_rate("x"), None);
    }

    #[test]
    fn ffmpeg_log_lines_give_levels_time_bases_and_frame_stamps() {
        let frame = "[Parsed_showinfo_0 @ 0x55d1bf48d740] [info] n:  12 pts:   6144 pts_time:0.48    pos: 48 fmt:yuv420p";
        assert_eq!(log_line(frame).map(|(l, _)| l), Some("info"));
        assert_eq!(showinfo(log_line(frame).unwrap().1), Some(ShowInfo::Frame(Some(6144))));
        let config = "[Parsed_showinfo_0 @ 0x1] [info] config in time_base: 1/12800, frame_rate: 25/1";
        assert_eq!(showinfo(log_line(config).unwrap().1), Some(ShowInfo::TimeBase(1.0 / 12800.0)));
        assert_eq!(showinfo("n:   3 pts:NOPTS pts_time:NOPTS"), Some(ShowInfo::Frame(None)));
        assert_eq!(log_line("[error] moov atom not found"), Some(("error", "moov atom not found")));
        assert_eq!(log_line("[h264 @ 0x2] [error] concealing 40 DC errors").map(|(l, _)| l), Some("error"));
        // Side data, stream listings and unprefixed text are not frames.
        assert_eq!(showinfo("  side data - User Data Unregistered:"), None);
        assert_eq!(showinfo("config in time_base: 0/0, frame_rate: 0/0"), None);
        assert_eq!(log_line("no level here"), None);
    }
}
