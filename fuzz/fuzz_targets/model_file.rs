//! Fuzz target: `.ferrite` model files (`modelfile::decode`: prefix, JSON header, burnpack
//! weights checked against the architecture).
#![no_main]
use ferrite::model::{Arch, ModelSpec};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// A header naming a big network (the reference CNN, an ensemble, a wide compact net) is valid
/// but costs the random initialisation of up to millions of weights before the weights are
/// checked: such inputs stop after the (fuzzed) header checks, so the time goes to parsing.
fn cheap(spec: &ModelSpec) -> bool {
    spec.arch == Arch::Compact && spec.width.is_some_and(|w| w <= 8) && spec.members.is_empty()
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.ferrite");
    let Ok((header, _)) = ferrite::modelfile::decode_header(data, path) else { return };
    if !cheap(&header.spec) {
        return;
    }
    let device = ferrite::device::inference_device();
    let _ = ferrite::modelfile::decode(data, path, &device);
});
