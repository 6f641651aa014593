//! Fuzz target: `.ferrite` model files (`modelfile::decode`: prefix, JSON header, burnpack
//! weights checked against the architecture).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.ferrite");
    let Ok((header, _)) = ferrite::model::file::decode_header(data, path) else { return };
    if !ferrite_fuzz::cheap(&header.spec) {
        return;
    }
    let device = ferrite::device::inference_device();
    let _ = ferrite::model::file::decode(data, path, &device);
});
