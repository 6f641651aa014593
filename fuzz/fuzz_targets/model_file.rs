//! Fuzz target: `.ferrite` model files (`modelfile::decode`: prefix, JSON header, burnpack
//! weights checked against the architecture).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let device = ferrite::device::inference_device();
    let _ = ferrite::modelfile::decode(data, Path::new("fuzz.ferrite"), &device);
});
