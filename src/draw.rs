//! The embedded font and the PNG rendering every picture shares (plots, layer diagrams,
//! annotated photos).

#[cfg(feature = "plot")]
use crate::error::{Error, Result};
#[cfg(feature = "plot")]
use crate::fsutil::write_atomic_with;
#[cfg(feature = "plot")]
use plotters::prelude::*;
#[cfg(feature = "plot")]
use std::path::Path;

pub static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Register the embedded font with plotters (once).
#[cfg(feature = "plot")]
pub fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

#[cfg(feature = "plot")]
pub(crate) fn perr<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(format!("drawing failed: {e}"))
}

/// Draw into an RGB buffer of `w` x `h` with `draw`, then save it as PNG atomically.
#[cfg(feature = "plot")]
pub(crate) fn render_png(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    render_png_on(path, vec![255u8; (w * h * 3) as usize], (w, h), draw)
}

#[cfg(feature = "plot")]
pub(crate) fn render_png_on(
    path: &Path,
    mut buf: Vec<u8>,
    (w, h): (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    ensure_font();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(root.clone())?;
        root.present().map_err(perr)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::Plot("bad buffer".into()))?;
    write_atomic_with(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| Error::Plot(format!("{}: {e}", path.display())))
    })
}

