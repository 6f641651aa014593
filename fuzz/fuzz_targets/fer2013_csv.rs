//! Fuzz target: the FER2013 CSV reader (`data::read_csv`), strict and with `--skip-bad`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.csv");
    for skip_bad in [false, true] {
        let opts = ferrite::data::LoadOptions { skip_bad, ..Default::default() };
        if let Ok(ds) = ferrite::data::read_csv(data, path, &opts) {
            assert_eq!(ds.faces.len(), ds.len() * ferrite::data::preprocess::FACE_PIXELS);
        }
    }
});
