//! Image decoding shared by the data loaders, the command line and the server: format guessed
//! from the bytes, EXIF orientation applied, size limits, truncated JPEGs refused, and
//! palette-colour TIFFs (which the `image` crate's TIFF decoder does not read) decoded here.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;

/// Why bytes are not a usable image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not an image (JPEG, PNG, BMP, TIFF or GIF expected)")]
    UnknownFormat,
    #[error("the image is empty (0 pixels)")]
    Empty,
    #[error("the image is truncated: {0}")]
    Truncated(String),
    #[error("the image is {width}x{height}: too large (at most {max_side} px a side and {max_pixels} pixels are read)")]
    TooLarge { width: u32, height: u32, max_side: u32, max_pixels: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// What one image may cost: checked from its header before a pixel is decoded, and given to
/// the decoders that take limits (the `image` crate's, and through it the TIFF decoder's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecodeLimits {
    /// Largest width or height in pixels.
    pub max_side: u32,
    /// Largest area in pixels.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 16384 px a side, 64 megapixels (a 61-megapixel camera's photos pass; a file that
    /// claims 60000x60000 does not).
    fn default() -> Self {
        DecodeLimits { max_side: 16384, max_pixels: 64_000_000 }
    }
}

impl DecodeLimits {
    /// Bytes of memory an image of this header may take while it is decoded and analysed: the
    /// decoded pixels plus 8 bytes a pixel for their RGB and gray copies and the detector's
    /// working copies (measured: 7.3 bytes a pixel above the process's baseline for an
    /// 8000 x 5000 image decoded to RGB, `ferrite --threads 1 detect`; `bench/hostile.sh`).
    pub fn memory_cost(header: &ImageHeader) -> u64 {
        header.width as u64 * header.height as u64 * (header.bytes_per_pixel as u64 + 8)
    }

    /// Whether an image of this header is within the limits; the error says by how much not.
    pub fn check(&self, header: &ImageHeader) -> Result<(), DecodeError> {
        let (w, h) = (header.width, header.height);
        if w == 0 || h == 0 {
            return Err(DecodeError::Empty);
        }
        if w > self.max_side || h > self.max_side || w as u64 * h as u64 > self.max_pixels {
            return Err(DecodeError::TooLarge { width: w, height: h, max_side: self.max_side, max_pixels: self.max_pixels });
        }
        Ok(())
    }
}

/// What an image's header says, read without decoding its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    /// Bytes a decoded pixel takes (1 for 8-bit gray up to 8 for 16-bit RGBA).
    pub bytes_per_pixel: u8,
}

/// Decode image bytes (any format the build reads, palette TIFF included), turned upright by
/// their EXIF orientation, within `limits`: the header is read first and an image over the
/// limits refused before any pixel memory is taken.
///
/// A decoder that panics on a malformed file (zune-jpeg 0.5.15, the `image` crate's JPEG
/// decoder, does on some: found by `fuzz/fuzz_targets/image_decode.rs`) gives an error, not a
/// crash: the panic is caught here (the decoder owns nothing shared, so nothing is left half
/// changed) and reported in the error; a panic hook that asks [`in_guarded_decoder`] can leave
/// out its backtrace (the command line's does).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    guarded(|| decode_unguarded(bytes, limits))
}

/// The header of image bytes (format guessed from them; palette TIFFs too), with the same
/// guard against decoder panics as `decode`.
pub fn header(bytes: &[u8]) -> Result<ImageHeader, DecodeError> {
    guarded(|| {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        let format = reader.format().ok_or(DecodeError::UnknownFormat)?;
        match reader.into_decoder() {
            Ok(d) => {
                let (width, height) = d.dimensions();
                Ok(ImageHeader { width, height, bytes_per_pixel: d.color_type().bytes_per_pixel() })
            }
            Err(e) if format == ImageFormat::Tiff => palette_tiff_header(bytes).map_err(|p| tiff_error(e, p)),
            Err(e) => Err(DecodeError::Invalid(e.to_string())),
        }
    })
}

thread_local! {
    /// Set while this thread runs a decoder under [`guarded`].
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside a guarded decoder call: a panic hook can stay quiet
/// then (the panic is caught, reported as an error and logged as one line by `guarded`).
pub fn in_guarded_decoder() -> bool {
    IN_DECODER.with(|f| f.get())
}

/// Run a decoder call, turning its panic into an error (and one warning line in the log).
fn guarded<T>(f: impl FnOnce() -> Result<T, DecodeError>) -> Result<T, DecodeError> {
    let outer = IN_DECODER.with(|flag| flag.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_DECODER.with(|flag| flag.set(outer));
    r.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        tracing::warn!("an image decoder panicked (caught; the file is refused): {why}");
        Err(DecodeError::Invalid(format!("the decoder failed on this file ({why})")))
    })
}

fn decode_unguarded(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    let head = header(bytes)?;
    limits.check(&head)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    let format = reader.format().ok_or(DecodeError::UnknownFormat)?;
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // The decoded pixels and the decoder's own buffers: twice the image at its depth.
    l.max_alloc = Some(2 * head.width as u64 * head.height as u64 * head.bytes_per_pixel as u64 + (1 << 20));
    reader.limits(l);
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(e) if format == ImageFormat::Tiff => return decode_palette_tiff(bytes, limits).map_err(|p| tiff_error(e, p)),
        Err(e) => return Err(DecodeError::Invalid(e.to_string())),
    };
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::Empty);
    }
    img.apply_orientation(orientation);
    Ok(img)
}

/// The error to report for a TIFF neither decoder read: the palette decoder's when the file is
/// a palette image, else the `image` crate's.
fn tiff_error(image_err: image::ImageError, palette: PaletteError) -> DecodeError {
    match palette {
        PaletteError::NotPalette => DecodeError::Invalid(image_err.to_string()),
        PaletteError::Bad(m) => DecodeError::Invalid(format!("palette TIFF: {m}")),
    }
}

/// A JPEG must end its last scan with an end-of-image marker (FF D9): entropy-coded data never
/// holds FF D9, so a file cut short has none after its last start-of-scan (FF DA). (Decoders
/// fill a missing tail with gray and report success.)
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), DecodeError> {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) if eoi > sos => Ok(()),
        (None, _) => Err(DecodeError::Truncated("no image data (start-of-scan marker missing)".into())),
        _ => Err(DecodeError::Truncated(format!("the JPEG data ends after {} bytes without its end-of-image marker", bytes.len()))),
    }
}

enum PaletteError {
    NotPalette,
    Bad(String),
}

/// Decode a palette-colour ("RGB palette", photometric 3) TIFF: 1, 2, 4 or 8 bits per pixel,
/// strips stored uncompressed, PackBits or LZW; the colour map turned into RGB.
/// The header of a palette-colour TIFF (decoded to 8-bit RGB).
fn palette_tiff_header(bytes: &[u8]) -> Result<ImageHeader, PaletteError> {
    let (_, width, height) = open_palette_tiff(bytes)?;
    Ok(ImageHeader { width, height, bytes_per_pixel: 3 })
}

type TiffDecoder<'a> = tiff::decoder::Decoder<Cursor<&'a [u8]>>;

/// A TIFF decoder on `bytes` if they hold a palette-colour image, with its size.
fn open_palette_tiff(bytes: &[u8]) -> Result<(TiffDecoder<'_>, u32, u32), PaletteError> {
    use tiff::tags::Tag;
    let mut dec = tiff::decoder::Decoder::new(Cursor::new(bytes)).map_err(|e| PaletteError::Bad(e.to_string()))?;
    let photometric: u16 = dec.find_tag_unsigned(Tag::PhotometricInterpretation).ok().flatten().unwrap_or(u16::MAX);
    if photometric != 3 {
        return Err(PaletteError::NotPalette);
    }
    let (w, h) = dec.dimensions().map_err(|e| PaletteError::Bad(e.to_string()))?;
    Ok((dec, w, h))
}

fn decode_palette_tiff(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, PaletteError> {
    use tiff::tags::Tag;
    let bad = |m: &str| PaletteError::Bad(m.to_string());
    let (mut dec, w, h) = open_palette_tiff(bytes)?;
    if let Err(e) = limits.check(&ImageHeader { width: w, height: h, bytes_per_pixel: 3 }) {
        return Err(PaletteError::Bad(e.to_string()));
    }
    let bits: u16 = dec.find_tag_unsigned(Tag::BitsPerSample).ok().flatten().unwrap_or(1);
    if !matches!(bits, 1 | 2 | 4 | 8) {
        return Err(PaletteError::Bad(format!("{bits} bits per pixel (1, 2, 4 or 8 read)")));
    }
    let samples: u16 = dec.find_tag_unsigned(Tag::SamplesPerPixel).ok().flatten().unwrap_or(1);
    if samples != 1 {
        return Err(PaletteError::Bad(format!("{samples} samples per pixel (1 expected)")));
    }
    let predictor: u16 = dec.find_tag_unsigned(Tag::Predictor).ok().flatten().unwrap_or(1);
    if predictor != 1 {
        return Err(bad("a predictor is not read for palette images"));
    }
    let compression: u16 = dec.find_tag_unsigned(Tag::Compression).ok().flatten().unwrap_or(1);
    let map = dec.get_tag_u16_vec(Tag::ColorMap).map_err(|e| PaletteError::Bad(format!("colour map: {e}")))?;
    let entries = 1usize << bits;
    if map.len() != 3 * entries {
        return Err(PaletteError::Bad(format!("colour map has {} values, {} expected", map.len(), 3 * entries)));
    }
    let offsets: Vec<u64> = dec.find_tag_unsigned_vec(Tag::StripOffsets).ok().flatten().ok_or_else(|| bad("no strip offsets (tiled palette images are not read)"))?;
    let counts: Vec<u64> = dec.find_tag_unsigned_vec(Tag::StripByteCounts).ok().flatten().ok_or_else(|| bad("no strip byte counts"))?;
    if offsets.len() != counts.len() || offsets.is_empty() {
        return Err(bad("strip offsets and byte counts disagree"));
    }
    let row_bytes = (w as usize * bits as usize).div_ceil(8);
    let want = row_bytes * h as usize;
    let mut data = Vec::with_capacity(want);
    for (&off, &n) in offsets.iter().zip(&counts) {
        let (off, n) = (usize::try_from(off).map_err(|_| bad("strip offset"))?, usize::try_from(n).map_err(|_| bad("strip size"))?);
        let strip = off.checked_add(n).and_then(|end| bytes.get(off..end)).ok_or_else(|| bad("a strip lies past the end of the file (truncated?)"))?;
        let left = want.saturating_sub(data.len());
        match compression {
            1 => data.extend_from_slice(&strip[..strip.len().min(left)]),
            32773 => unpack_bits(strip, &mut data, left),
            5 => {
                // Decoded straight into the pixel buffer and stopped where the image ends: a
                // strip that expands past the image costs no memory beyond it.
                let mut lzw = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                let start = data.len();
                data.resize(start + left, 0);
                let (mut input, mut filled) = (strip, 0);
                while filled < left {
                    let r = lzw.decode_bytes(input, &mut data[start + filled..]);
                    input = &input[r.consumed_in..];
                    filled += r.consumed_out;
                    match r.status {
                        Ok(weezl::LzwStatus::Ok) => {}
                        Ok(weezl::LzwStatus::Done | weezl::LzwStatus::NoProgress) => break,
                        Err(e) => return Err(PaletteError::Bad(format!("LZW data: {e}"))),
                    }
                }
                data.truncate(start + filled);
            }
            c => return Err(PaletteError::Bad(format!("compression {c} is not read for palette images"))),
        }
    }
    if data.len() < want {
        return Err(PaletteError::Bad(format!("{} of {want} bytes of pixel data (truncated?)", data.len())));
    }
    let colour = |i: usize| [(map[i] >> 8) as u8, (map[entries + i] >> 8) as u8, (map[2 * entries + i] >> 8) as u8];
    let per_byte = 8 / bits as usize;
    let mask = (1u16 << bits) as u8 - 1;
    let img = RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let byte = data[y * row_bytes + x / per_byte];
        let shift = (per_byte - 1 - x % per_byte) * bits as usize;
        image::Rgb(colour(((byte >> shift) & mask) as usize))
    });
    Ok(DynamicImage::ImageRgb8(img))
}

/// PackBits (TIFF compression 32773) into `out`, at most `limit` bytes.
fn unpack_bits(src: &[u8], out: &mut Vec<u8>, limit: usize) {
    let end = out.len() + limit;
    let mut i = 0;
    while i < src.len() && out.len() < end {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let k = (n as usize + 1).min(src.len() - i).min(end - out.len());
            out.extend_from_slice(&src[i..i + k]);
            i += n as usize + 1;
        } else if n != -128 {
            let Some(&b) = src.get(i) else { break };
            let k = ((1 - n as isize) as usize).min(end - out.len());
            out.extend(std::iter::repeat_n(b, k));
            i += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A little-endian, uncompressed palette TIFF of `w` x `h` 8-bit indices (test fixture).
    pub(crate) fn palette_tiff(w: u16, h: u16, index: impl Fn(u16, u16) -> u8, map: &[[u16; 3]]) -> Vec<u8> {
        let pixels: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| index(x, y)).collect();
        let mut cmap = vec![0u16; 3 * 256];
        for (i, c) in map.iter().enumerate() {
            for k in 0..3 {
                cmap[k * 256 + i] = c[k];
            }
        }
        let entries: [(u16, u16, u32, u32); 9] = [
            (256, 3, 1, w as u32),
            (257, 3, 1, h as u32),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 3),
            (273, 4, 1, 0), // strip offset, patched below
            (277, 3, 1, 1),
            (279, 4, 1, pixels.len() as u32),
            (320, 3, 768, 0), // colour map offset, patched below
        ];
        let ifd_len = 2 + entries.len() * 12 + 4;
        let cmap_at = 8 + ifd_len;
        let pix_at = cmap_at + cmap.len() * 2;
        let mut out = b"II*\0".to_vec();
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            let value = match tag {
                273 => pix_at as u32,
                320 => cmap_at as u32,
                _ => value,
            };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if kind == 3 && count == 1 {
                out.extend_from_slice(&(value as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        for v in cmap {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&pixels);
        out
    }

    #[test]
    fn palette_tiffs_decode_through_their_colour_map() {
        let bytes = palette_tiff(6, 4, |x, y| ((x + y) % 3) as u8, &[[0, 0, 0], [65535, 0, 0], [0, 32768, 65535]]);
        let img = decode(&bytes, &DecodeLimits::default()).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (6, 4));
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(2, 0).0, [0, 128, 255]);
        assert_eq!(img.get_pixel(1, 1).0, [0, 128, 255]);
        // Cut short: an error that says so, no panic.
        let e = decode(&bytes[..bytes.len() - 5], &DecodeLimits::default()).unwrap_err().to_string();
        assert!(e.contains("palette TIFF") && e.contains("truncated"), "{e}");
        for n in [0, 8, 30, 100, 400] {
            let _ = decode(&bytes[..n.min(bytes.len())], &DecodeLimits::default());
        }
    }

    #[test]
    fn packbits_runs_and_literals() {
        let mut out = Vec::new();
        unpack_bits(&[2, 1, 2, 3, 0xFE, 9, 0x80, 0, 7], &mut out, 100);
        assert_eq!(out, vec![1, 2, 3, 9, 9, 9, 7]);
        let mut out = Vec::new();
        unpack_bits(&[0xFD, 5], &mut out, 2);
        assert_eq!(out, vec![5, 5]);
    }

    /// A JPEG with an EXIF APP1 segment whose Orientation tag is `orientation`.
    pub(crate) fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(img).unwrap();
        let mut tiff = b"MM\0*\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes());
        tiff.extend_from_slice(&0x0112u16.to_be_bytes());
        tiff.extend_from_slice(&3u16.to_be_bytes());
        tiff.extend_from_slice(&1u32.to_be_bytes());
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 40x20 picture, left half black, right half white.
        let img = RgbImage::from_fn(40, 20, |x, _| if x < 20 { image::Rgb([0, 0, 0]) } else { image::Rgb([255, 255, 255]) });
        let plain = decode(&jpeg_with_orientation(&img, 1), &DecodeLimits::default()).unwrap().to_luma8();
        assert_eq!(plain.dimensions(), (40, 20));
        // Orientation 6: the camera was turned; shown rotated 90 degrees clockwise, 20x40, the
        // black half on top.
        let turned = decode(&jpeg_with_orientation(&img, 6), &DecodeLimits::default()).unwrap().to_luma8();
        assert_eq!(turned.dimensions(), (20, 40));
        assert!(turned.get_pixel(10, 5).0[0] < 40 && turned.get_pixel(10, 35).0[0] > 215);
    }

    #[test]
    fn a_truncated_jpeg_is_refused_and_a_whole_one_read() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        assert!(decode(&jpeg, &DecodeLimits::default()).is_ok());
        let e = decode(&jpeg[..jpeg.len() / 2], &DecodeLimits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated(_)), "{e}");
        assert_eq!(decode(b"hello, world", &DecodeLimits::default()).unwrap_err(), DecodeError::UnknownFormat);
    }

    /// A CMYK JPEG (as print workflows and some face data sets save them) comes out as the RGB
    /// picture it stands for.
    #[test]
    fn cmyk_jpegs_decode_to_rgb() {
        let (w, h) = (64u16, 48u16);
        let rgb = |x: u16, y: u16| [(x * 4) as u8, (y * 5) as u8, 200u8];
        // Plain CMYK with no black: c = 255 - r, m = 255 - g, y = 255 - b.
        let mut cmyk = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = rgb(x, y);
                cmyk.extend_from_slice(&[255 - r, 255 - g, 255 - b, 0]);
            }
        }
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 95).encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk).unwrap();
        let img = decode(&bytes, &DecodeLimits::default()).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (w as u32, h as u32));
        let mut worst = 0i32;
        for (x, y, p) in img.enumerate_pixels() {
            let want = rgb(x as u16, y as u16);
            for (got, want) in p.0.iter().zip(want) {
                worst = worst.max((*got as i32 - want as i32).abs());
            }
        }
        assert!(worst <= 24, "largest channel error {worst}");
    }

    /// Regression (fuzz/regressions/image_decode/): a crafted JPEG that makes zune-jpeg 0.5.15
    /// panic is an error.
    #[test]
    fn a_jpeg_that_panics_the_decoder_is_an_error() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/image_decode/zune-jpeg-idct-panic.jpg");
        let e = decode(&std::fs::read(path).unwrap(), &DecodeLimits::default()).unwrap_err();
        assert!(e.to_string().contains("the decoder failed on this file"), "{e}");
    }
}
