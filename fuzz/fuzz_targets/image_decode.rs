//! Fuzz target: image bytes through the server's decode path (`server::decode_image`: format
//! sniffing, size limits, `imageio::decode` with EXIF orientation, palette TIFF, truncation).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrite_fuzz::report_caught_panics();
    // The server's limits, scaled down so that one input stays fast (the checks are the same).
    let limits = ferrite::server::Limits { max_side: 1024, max_pixels: 1 << 20, ..Default::default() };
    if let Ok(img) = ferrite::server::decode_image(data, &limits) {
        assert!(img.width() <= 1024 && img.height() <= 1024);
    }
});
