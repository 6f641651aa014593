//! Atomic file writes (write to a temporary file in the same folder, then rename), and input
//! files read within a size limit (regular files only: never a FIFO or device that blocks or
//! never ends).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Write `bytes` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Run `write` against a temporary path next to `path`, then rename it into place.
/// For writers (image encoders, plotters) that insist on a path of their own.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // Keep the extension: encoders pick the format from it.
    let tmp = match path.extension() {
        Some(ext) => temp_path(path).with_extension(ext),
        None => temp_path(path),
    };
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Largest input file read by default (an image or a data file): 256 MiB.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// Read a whole input file of at most `max_bytes`: only a regular file (a FIFO, socket or
/// device, given or found in a folder, is refused by name before it is opened, so nothing
/// blocks or reads without end); a larger file is an error naming it.
pub fn read_input(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let refuse = |what: String| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(refuse(format!("not a regular file ({}); only files are read", file_kind(&meta))));
    }
    if meta.len() > max_bytes {
        return Err(refuse(format!("{} bytes, more than the {max_bytes} read", meta.len())));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The file may have been swapped or grown since: read no more than the limit regardless.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(refuse(format!("more than the {max_bytes} bytes read")));
    }
    Ok(bytes)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = TempDir::new().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, [7u8; 100]).unwrap();
        assert_eq!(read_input(&f, 100).unwrap().len(), 100);
        let e = read_input(&f, 99).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("100 bytes"), "{e}");
        let e = read_input(Path::new("/dev/zero"), MAX_INPUT_BYTES).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("a device"), "{e}");
        let fifo = dir.path().join("pipe.jpg");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_input(&fifo, MAX_INPUT_BYTES).unwrap_err().to_string();
        assert!(e.contains("pipe.jpg") && e.contains("a FIFO"), "{e}");
        let e = read_input(dir.path(), MAX_INPUT_BYTES).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_writer_keeps_the_old_file() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let p = dir.path().join("b.png");
        write_atomic(&p, b"old").unwrap();
        let r = write_atomic_with(&p, |_| Err(Error::Plot("boom".into())));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }
}

/// A uniquely named scratch directory under the system temp folder, removed on drop
/// (tests and benchmarks).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "ferrite-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
