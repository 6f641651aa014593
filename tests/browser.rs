//! The web app in real headless Chromium (tests/browser/run.mjs, playwright-core): Chromium's
//! fake camera plays a video with five faces; the page must show boxes and labels over the live
//! video, update the chart, download the CSV, and annotate an uploaded photo.
//!
//! Needs Debian's `chromium`, Node.js, `npm ci --prefix tests/browser` and ffmpeg; `.ci/run`
//! installs them. Screenshots go to `$FERRITE_SCREENSHOTS` (e.g. docs/screenshots) when set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(ok: bool, what: &str) {
    assert!(ok, "browser test needs {what} (.ci/run installs it)");
}

#[test]
fn web_page_live_camera_chart_csv_and_upload() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(Path::new(&chromium).exists(), "Chromium (Debian: apt install chromium)");
    require(Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()), "Node.js");
    require(
        root.join("tests/browser/node_modules/playwright-core").exists(),
        "playwright-core (npm ci --prefix tests/browser)",
    );
    require(Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success()), "ffmpeg");

    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let mp4 = dir.path().join("cam.mp4");
    let y4m = dir.path().join("cam.y4m");
    let o = Command::new(root.join("bench/make_video.sh")).arg(&mp4).arg("6").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(&mp4)
        .args(["-r", "10", "-pix_fmt", "yuv420p"])
        .arg(&y4m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();

    let shots = std::env::var("FERRITE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();
    let o = Command::new("node")
        .arg(root.join("tests/browser/run.mjs"))
        .arg(&url)
        .arg(&y4m)
        .arg(root.join("tests/fixtures/photos/group4.jpg"))
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    drop(server);
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}");
    eprintln!("{out}");
    assert!(shots.join("live.png").exists() && shots.join("upload.png").exists());
}
