//! Fuzz target: what `train --resume` reads from a run directory (`train::decode_resume_point`:
//! config.json, state.json, model.ferrite, optimizer.bpk). The input packs the four files, each
//! but the last behind a 4-byte little-endian length (the seeds are real runs packed so).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return std::mem::take(data);
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (part, rest) = rest.split_at(n);
    *data = rest;
    part
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let (config, state, model) = (take(&mut rest), take(&mut rest), take(&mut rest));
    match ferrite::model::file::decode_header(model, Path::new("model.ferrite")) {
        Ok((header, _)) if !ferrite_fuzz::cheap(&header.spec) => return,
        _ => {}
    }
    // The inference device: on the training (autodiff) device every network built registers
    // graph roots in burn-autodiff that are only freed by a backward pass, so memory grows by
    // ~8 kB per input over a fuzzing run (found by this target: out of memory after 140,000
    // inputs). `train --resume` builds one network per process, where this does not matter.
    let device = ferrite::device::inference_device();
    let _ = ferrite::train::decode_resume_point(config, state, model, rest, Path::new("fuzz/checkpoints/epoch-001"), &device);
});
