//! The pipe to ffmpeg's encoder: raw RGB frames, each with its own time, in a minimal Matroska stream.
//!
//! A raw pipe carries pictures but no times, so an encoder fed one can only space the frames
//! evenly, and a variable-rate video would come out at its average rate. Matroska carries a
//! time on every block; ffmpeg reads `V_UNCOMPRESSED` tracks whose colour space is the `RGB`
//! 24-bit fourcc as `rgb24`. Only what that needs is written: the EBML header, one segment of
//! unknown size (a stream), the track, and one cluster per frame (so each time is absolute).

use std::io::{self, Write};

/// The times on the stream are counted in microseconds (Matroska's scale is in nanoseconds).
const TIMESTAMP_SCALE_NS: u64 = 1_000;

/// An element's size as an EBML variable-length integer (the all-ones value of a length is
/// reserved for "unknown", so a length holds one less).
fn size_vint(n: u64) -> Vec<u8> {
    let len = (1..=8u32)
        .find(|&l| n < (1u64 << (7 * l)) - 1)
        .expect("an element under 2^56 bytes");
    let mut out = n.to_be_bytes()[8 - len as usize..].to_vec();
    out[0] |= 1 << (8 - len);
    out
}

/// An unsigned integer in as few bytes as hold it.
fn uint(v: u64) -> Vec<u8> {
    let n = (v.max(1).ilog2() / 8 + 1) as usize;
    v.to_be_bytes()[8 - n..].to_vec()
}

/// An element: its id (with its length marker, as the spec spells ids), size and payload.
fn element(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend(size_vint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// The stream's start: the EBML header, the segment's opening, its info and the one video track.
pub fn header(width: u32, height: u32) -> Vec<u8> {
    let ebml = [
        element(&[0x42, 0x82], b"matroska"), // DocType
        element(&[0x42, 0x87], &uint(4)),    // DocTypeVersion
        element(&[0x42, 0x85], &uint(2)),    // DocTypeReadVersion
    ]
    .concat();
    let info = [
        element(&[0x2A, 0xD7, 0xB1], &uint(TIMESTAMP_SCALE_NS)), // TimestampScale
        element(&[0x4D, 0x80], b"ferrite"),                      // MuxingApp
        element(&[0x57, 0x41], b"ferrite"),                      // WritingApp
    ]
    .concat();
    let video = [
        element(&[0xB0], &uint(width.into())),    // PixelWidth
        element(&[0xBA], &uint(height.into())),   // PixelHeight
        element(&[0x2E, 0xB5, 0x24], b"RGB\x18"), // ColourSpace: rgb24's fourcc
    ]
    .concat();
    let track = [
        element(&[0xD7], &uint(1)),          // TrackNumber
        element(&[0x73, 0xC5], &uint(1)),    // TrackUID
        element(&[0x83], &uint(1)),          // TrackType: video
        element(&[0x9C], &uint(0)),          // FlagLacing: off
        element(&[0x86], b"V_UNCOMPRESSED"), // CodecID
        element(&[0xE0], &video),
    ]
    .concat();
    let mut out = element(&[0x1A, 0x45, 0xDF, 0xA3], &ebml);
    // Segment of unknown size: a stream that ends when the pipe closes.
    out.extend([
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    out.extend(element(&[0x15, 0x49, 0xA9, 0x66], &info));
    out.extend(element(
        &[0x16, 0x54, 0xAE, 0x6B],
        &element(&[0xAE], &track),
    ));
    out
}

/// Write one frame at `micros` from the stream's start: a cluster holding its time and one
/// key-frame block (the pixels are written straight from `rgb`, not copied).
pub fn write_frame(w: &mut impl Write, micros: u64, rgb: &[u8]) -> io::Result<()> {
    let timestamp = element(&[0xE7], &uint(micros));
    // SimpleBlock: track 1, no offset from the cluster's time, a key frame.
    let block_head = [0x81, 0x00, 0x00, 0x80];
    let block_len = (block_head.len() + rgb.len()) as u64;
    let mut block_open = vec![0xA3];
    block_open.extend(size_vint(block_len));
    let cluster_len = (timestamp.len() + block_open.len()) as u64 + block_len;
    let mut head = vec![0x1F, 0x43, 0xB6, 0x75];
    head.extend(size_vint(cluster_len));
    head.extend(timestamp);
    head.extend(block_open);
    head.extend(block_head);
    w.write_all(&head)?;
    w.write_all(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_integers_take_the_fewest_bytes() {
        assert_eq!(size_vint(0), [0x80]);
        assert_eq!(size_vint(126), [0xFE]);
        // 127 is "unknown" in one byte, so it takes two.
        assert_eq!(size_vint(127), [0x40, 0x7F]);
        // A 640x480 frame's block: three bytes hold up to 2^21 - 2.
        assert_eq!(size_vint(921_604), [0x2E, 0x10, 0x04]);
        assert_eq!(size_vint(1 << 21), [0x10, 0x20, 0x00, 0x00]);
        assert_eq!(uint(0), [0]);
        assert_eq!(uint(255), [0xFF]);
        assert_eq!(uint(1_000_000), [0x0F, 0x42, 0x40]);
    }

    #[test]
    fn a_frame_is_one_cluster_with_its_time_and_pixels() {
        let mut out = Vec::new();
        write_frame(&mut out, 40_000, &[1, 2, 3]).unwrap();
        let want = [
            0x1F, 0x43, 0xB6, 0x75, 0x8D, // Cluster, 13 bytes
            0xE7, 0x82, 0x9C, 0x40, // Timestamp 40,000 us
            0xA3, 0x87, 0x81, 0x00, 0x00, 0x80, 1, 2, 3, // SimpleBlock, track 1, key frame
        ];
        assert_eq!(out, want);
    }
}
