//! Hostile inputs to the command line: files that declare huge images, devices, FIFOs and
//! symlink loops end with an error naming the file, in bounded time and memory; a caught
//! decoder panic is one line, not a backtrace. (The server's probes are in tests/server.rs
//! and tests/serve.rs; `bench/hostile.sh` measures them all.)

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use common::text;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `ferrite ARGS` under an address-space cap of `cap_bytes` (prlimit), killed after
/// `limit`; its output and how long it ran.
fn ferrite_capped(args: &[&str], cap_bytes: u64, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(format!("--as={cap_bytes}"))
        .arg(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

/// An address-space cap the CLI runs a normal photo under (threads, model and detector
/// included) but that a multi-gigabyte reservation breaks.
const CAP: u64 = 3_000_000_000;

fn assert_refused_quickly(args: &[&str], name: &str) {
    let (out, took) = ferrite_capped(args, CAP, Duration::from_secs(20));
    let t = text(&out);
    assert!(took < Duration::from_secs(5), "{args:?} took {took:?}: {t}");
    assert_eq!(out.status.code(), Some(1), "{args:?} ended with {:?} (not an error exit): {t}", out.status);
    assert!(t.contains(name), "{args:?}: the error names {name}: {t}");
}

#[test]
fn a_jpeg_declaring_60000x60000_is_refused_from_its_header() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let f = dir.path().join("huge.jpg");
    std::fs::write(&f, hostile::jpeg_declaring(60000, 60000)).unwrap();
    assert_refused_quickly(&["detect", f.to_str().unwrap()], "huge.jpg");
    let (out, _) = ferrite_capped(&["detect", f.to_str().unwrap()], CAP, Duration::from_secs(20));
    assert!(text(&out).contains("60000x60000"), "{}", text(&out));
    // --max-pixels lowers the limit: a normal photo over it is refused by name too.
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/astronaut.jpg");
    assert_refused_quickly(&["detect", photo.to_str().unwrap(), "--max-pixels", "1000"], "astronaut.jpg");
}

#[test]
fn devices_and_fifos_are_refused_by_name() {
    assert_refused_quickly(&["detect", "/dev/zero"], "/dev/zero");
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let fifo = dir.path().join("pipe.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert_refused_quickly(&["detect", fifo.to_str().unwrap()], "pipe.jpg");
    // Inside a folder: that file is an error, the others are analysed.
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/astronaut.jpg");
    std::fs::copy(&photo, dir.path().join("astronaut.jpg")).unwrap();
    let (out, took) = ferrite_capped(&["detect", dir.path().to_str().unwrap()], CAP, Duration::from_secs(20));
    let t = text(&out);
    assert!(took < Duration::from_secs(5), "took {took:?}: {t}");
    assert!(t.contains("pipe.jpg") && t.contains("not a regular file"), "{t}");
    assert!(t.contains("astronaut.jpg: 1 face"), "{t}");
}

#[test]
fn symlink_loops_end_and_each_image_is_analysed_once() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/astronaut.jpg");
    std::fs::copy(&photo, dir.path().join("astronaut.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop1")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop2")).unwrap();
    let (out, took) = ferrite_capped(&["detect", dir.path().to_str().unwrap(), "--format", "csv"], CAP, Duration::from_secs(30));
    let t = text(&out);
    assert!(took < Duration::from_secs(5) && out.status.success(), "took {took:?}: {t}");
    let rows = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("astronaut.jpg")).count();
    assert_eq!(rows, 1, "the photo once: {t}");
}

#[test]
fn a_caught_decoder_panic_is_one_line_without_a_backtrace() {
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/image_decode/zune-jpeg-idct-panic.jpg");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["detect", bad.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("stack backtrace") && !err.contains("panicked at"), "{err}");
    assert!(err.contains("zune-jpeg-idct-panic.jpg") && err.contains("decoder failed"), "{err}");
    assert!(err.lines().count() <= 4, "{err}");
}

/// Small files that would cost gigabytes or seconds: each decodes within the limits or is
/// refused, and the palette LZW bomb costs no more than its image.
#[test]
fn small_files_that_expand_are_bounded() {
    use ferrite::data::imageio::{DecodeLimits, decode, header};
    let limits = DecodeLimits::default();
    // A palette TIFF whose strip expands to 250 MB: decoded as its 512 x 512 image, the rest
    // of the strip never produced.
    let bomb = hostile::palette_tiff_lzw_bomb(512, 512, 250_000_000);
    assert!(bomb.len() < 400_000, "{} bytes", bomb.len());
    let started = Instant::now();
    let img = decode(&bomb, &limits).unwrap();
    assert_eq!((img.width(), img.height()), (512, 512));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // A valid palette TIFF with an LZW strip reads, header first.
    let small = hostile::palette_tiff_lzw_bomb(64, 32, 64 * 32);
    assert_eq!(header(&small).unwrap().width, 64);
    assert!(decode(&small, &limits).is_ok());
    // 5,000 one-byte strips of an 8000 x 5000 TIFF: an error, quickly.
    let strips = hostile::tiff_one_byte_strips(8000, 5000);
    let started = Instant::now();
    assert!(decode(&strips, &limits).is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // Declared sizes are refused before decoding when over the limits.
    let tight = DecodeLimits { max_side: 4096, max_pixels: 4_000_000 };
    for bytes in [hostile::rle8_bmp(8000, 5000), hostile::jpeg_declaring(8000, 5000)] {
        let h = header(&bytes).unwrap();
        assert_eq!((h.width, h.height), (8000, 5000));
        let e = decode(&bytes, &tight).unwrap_err().to_string();
        assert!(e.contains("8000x5000"), "{e}");
    }
}
