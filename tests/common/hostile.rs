//! Hostile inputs for the reliability tests and `bench/hostile.sh` (through
//! `examples/hostile_inputs.rs`): small files that declare huge images or expand without bound.
#![allow(dead_code)]

/// A BMP of `w` x `h` 8-bit pixels, RLE8-compressed, whose data is only the end-of-bitmap
/// code: 1,080 bytes that decode to `w * h` pixels.
pub fn rle8_bmp(w: i32, h: i32) -> Vec<u8> {
    let rle = [0u8, 1];
    let offset = 14 + 40 + 1024;
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((offset + rle.len()) as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // BI_RLE8
    out.extend_from_slice(&(rle.len() as u32).to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&256u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for i in 0..256u32 {
        out.extend_from_slice(&[i as u8, i as u8, i as u8, 0]);
    }
    out.extend_from_slice(&rle);
    out
}

/// A small colour JPEG whose frame header says `w` x `h`: the decoder is told to make an image
/// of that size from a few blocks of data (complete: it ends with its end-of-image marker).
pub fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&img).unwrap();
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).expect("baseline frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

/// A little-endian TIFF: `entries` as (tag, type, count, value or offset), `extra` data after
/// the directory (offsets in `entries` are relative to it; patched here), `patch` the tags whose
/// value is such an offset.
fn tiff(entries: &[(u16, u16, u32, u32)], patch: &[u16], extra: &[u8]) -> Vec<u8> {
    let ifd_len = 2 + entries.len() * 12 + 4;
    let base = (8 + ifd_len) as u32;
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for &(tag, kind, count, value) in entries {
        let value = if patch.contains(&tag) { value + base } else { value };
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
    out.extend_from_slice(extra);
    out
}

/// A gray `w` x `h` TIFF of `h` one-row strips that hold one byte each (about 40 KB for
/// 8000 x 5000).
pub fn tiff_one_byte_strips(w: u32, h: u32) -> Vec<u8> {
    let n = h;
    // Extra data: offsets (n LONGs), byte counts (n LONGs), then n data bytes.
    let offsets_at = 0u32;
    let counts_at = 4 * n;
    let data_at = 8 * n;
    let ifd_len = 2 + 9 * 12 + 4;
    let base = 8 + ifd_len as u32;
    let mut extra = Vec::new();
    for i in 0..n {
        extra.extend_from_slice(&(base + data_at + i).to_le_bytes());
    }
    for _ in 0..n {
        extra.extend_from_slice(&1u32.to_le_bytes());
    }
    extra.extend(std::iter::repeat_n(0x55u8, n as usize));
    tiff(
        &[
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (273, 4, n, offsets_at),
            (277, 3, 1, 1),
            (278, 4, 1, 1),
            (279, 4, n, counts_at),
        ],
        &[273, 279],
        &extra,
    )
}

/// A small palette TIFF (`w` x `h`, 8-bit indices) whose one LZW strip expands to
/// `expanded` bytes, far more than the image holds.
pub fn palette_tiff_lzw_bomb(w: u32, h: u32, expanded: u64) -> Vec<u8> {
    use std::io::Read;
    let mut lzw = Vec::new();
    let mut enc = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let r = enc.into_stream(&mut lzw).encode_all(std::io::BufReader::new(std::io::repeat(0).take(expanded)));
    r.status.unwrap();
    let cmap_len = 3 * 256 * 2;
    let mut extra = Vec::new();
    for k in 0..3 * 256u32 {
        extra.extend_from_slice(&(((k % 256) * 257) as u16).to_le_bytes());
    }
    extra.extend_from_slice(&lzw);
    tiff(
        &[
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 8),
            (259, 3, 1, 5),
            (262, 3, 1, 3),
            (273, 4, 1, cmap_len),
            (277, 3, 1, 1),
            (278, 4, 1, h),
            (279, 4, 1, lzw.len() as u32),
            (320, 3, 768, 0),
        ],
        &[273, 320],
        &extra,
    )
}
