//! Video in and out through ffmpeg: probe a source, read RGB frames, write an annotated copy.
//!
//! Any source ffmpeg reads works (files, `/dev/video0`, RTSP URLs). Frames travel as raw
//! `rgb24` over pipes; errors name the source and carry ffmpeg's own message.

use crate::error::{Error, Result};
use image::RgbImage;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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

/// Ask ffprobe for the size, frame rate and audio of `source`.
pub fn probe(source: &str) -> Result<VideoInfo> {
    let out = spawn(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_type,width,height,avg_frame_rate,r_frame_rate", "-of", "json"])
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
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| video_error(source, format!("bad ffprobe output: {e}")))?;
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

/// Decoded RGB frames of a source, one at a time.
pub struct FrameReader {
    source: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    width: u32,
    height: u32,
    finished: bool,
}

impl FrameReader {
    /// Start decoding `source` (probed beforehand for its size).
    pub fn open(source: &str, info: &VideoInfo) -> Result<FrameReader> {
        Self::spawn_reader(source, info, None)
    }

    /// Start decoding `source` at frame `start` (0-based): the frames [`FrameReader::open`]
    /// would give, less the first `start`. A file at a constant frame rate is sought by time
    /// (ffmpeg decodes from the key frame before it and drops frames before the time asked);
    /// other sources are decoded from the start and the first `start` frames passed over.
    pub fn open_at(source: &str, info: &VideoInfo, start: usize) -> Result<FrameReader> {
        if start == 0 {
            return Self::open(source, info);
        }
        let seekable = std::fs::metadata(source).is_ok_and(|m| m.is_file());
        if info.constant_rate && seekable {
            // Half a frame early: the first frame kept is `start`, whatever the rounding of
            // its time stamp.
            return Self::spawn_reader(source, info, Some((start as f64 - 0.5) / info.fps));
        }
        let mut reader = Self::open(source, info)?;
        for _ in 0..start {
            if reader.next_frame()?.is_none() {
                break;
            }
        }
        Ok(reader)
    }

    fn spawn_reader(source: &str, info: &VideoInfo, seek_seconds: Option<f64>) -> Result<FrameReader> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error"]);
        if let Some(t) = seek_seconds {
            cmd.arg("-ss").arg(format!("{t:.6}"));
        }
        cmd.arg("-i").arg(source).args(["-map", "0:v:0"]);
        if seek_seconds.is_some() {
            // Every decoded frame once, none repeated to fill the time before the first.
            cmd.args(["-fps_mode", "passthrough"]);
        }
        cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        let mut child = spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()), source)?;
        let stdout = child.stdout.take().ok_or_else(|| video_error(source, "no ffmpeg output pipe"))?;
        Ok(FrameReader {
            source: source.to_string(),
            child,
            stdout: BufReader::with_capacity(1 << 20, stdout),
            width: info.width,
            height: info.height,
            finished: false,
        })
    }

    /// The next frame; `Ok(None)` at the end of a clean stream. A stream that ends inside a
    /// frame, or that ffmpeg reports as broken, is an error naming the source.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>> {
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
            return Ok(RgbImage::from_raw(self.width, self.height, buf));
        }
        self.finished = true;
        let status = self.child.wait().map_err(video_io(&self.source, "waiting for ffmpeg"))?;
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let stderr = stderr.trim();
        if filled > 0 {
            return Err(video_error(&self.source, format!("stream ended inside a frame (truncated?) {stderr}")));
        }
        if !status.success() {
            return Err(video_error(
                &self.source,
                if stderr.is_empty() { format!("ffmpeg failed ({status})") } else { stderr.to_string() },
            ));
        }
        // ffmpeg decodes what it can of a damaged file and reports the rest on stderr.
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
        }
    }
}

/// Encodes RGB frames to a video file (H.264 in MP4 by the extension), copying the audio of
/// `audio_from` when it has some. Written under a temporary name and renamed on `finish`.
pub struct FrameWriter {
    out: PathBuf,
    tmp: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    width: u32,
    height: u32,
}

impl FrameWriter {
    pub fn create(out: &Path, width: u32, height: u32, fps: f64, audio_from: Option<&str>) -> Result<FrameWriter> {
        let name = out.display().to_string();
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
        let tmp = out.with_extension(format!("partial.{ext}"));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s"])
            .arg(format!("{width}x{height}"))
            .arg("-r")
            .arg(format!("{fps}"))
            .args(["-i", "-"]);
        if let Some(src) = audio_from {
            cmd.arg("-i").arg(src).args(["-map", "0:v:0", "-map", "1:a?", "-c:a", "aac", "-shortest"]);
        }
        // yuv420p needs even sizes: pad odd ones by a pixel.
        cmd.args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"])
            .arg(&tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, &name)?;
        let stdin = child.stdin.take();
        Ok(FrameWriter {
            out: out.to_path_buf(),
            tmp,
            child,
            stdin,
            width,
            height,
        })
    }

    pub fn write(&mut self, frame: &RgbImage) -> Result<()> {
        let name = self.out.display().to_string();
        if frame.dimensions() != (self.width, self.height) {
            return Err(video_error(&name, "frame size changed"));
        }
        let stdin = self.stdin.as_mut().ok_or_else(|| video_error(&name, "writer already finished"))?;
        stdin
            .write_all(frame.as_raw())
            .map_err(video_io(&name, "ffmpeg stopped taking frames"))
    }

    /// Close the stream, wait for ffmpeg and move the file into place.
    pub fn finish(mut self) -> Result<()> {
        let name = self.out.display().to_string();
        drop(self.stdin.take());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self.child.wait().map_err(video_io(&name, "waiting for ffmpeg"))?;
        if !status.success() {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(video_error(&name, format!("ffmpeg failed: {}", stderr.trim())));
        }
        std::fs::rename(&self.tmp, &self.out).map_err(|e| Error::io(&self.out, e))
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Not finished: stop ffmpeg and leave no partial file behind.
            drop(self.stdin.take());
            let _ = self.child.kill();
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
}
