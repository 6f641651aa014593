//! Fuzz target: the CSV files a user gives as data: the FER2013 CSV reader (`data::read_csv`)
//! and the image-list reader (`data::read_image_list`, `path,label` rows), strict and with
//! `--skip-bad`; an image list written back reads as the same rows.
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
        if let Ok((rows, skipped)) = ferrite::data::read_image_list(data, path, skip_bad) {
            assert!(skip_bad || skipped.is_empty());
            let pairs: Vec<_> = rows.iter().map(|(p, l, _)| (p.clone(), *l)).collect();
            if let Ok(bytes) = ferrite::data::write_image_list(&pairs) {
                let (again, _) = ferrite::data::read_image_list(bytes.as_slice(), path, false).expect("a written list reads back");
                let again: Vec<_> = again.into_iter().map(|(p, l, _)| (p, l)).collect();
                assert_eq!(again, pairs);
            }
        }
    }
});
