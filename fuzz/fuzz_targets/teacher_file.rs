//! Fuzz target: teacher files for distillation (`teacher::parse_teacher`): every row read is a
//! finite distribution over the classes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(table) = ferrite::data::teacher::parse_teacher(&text, Path::new("fuzz.csv")) {
        for p in table.probs.values() {
            assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0));
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-3);
        }
    }
});
