//! Fuzz target: FER+ vote files in their three forms (`ferplus::parse_vote_file`), and every
//! label mode on the votes read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(table) = ferrite::data::ferplus::parse_vote_file(&text, Path::new("fuzz.csv")) {
        for votes in table.votes.values() {
            let _ = votes.majority();
            for mode in [
                ferrite::data::ferplus::LabelMode::Majority,
                ferrite::data::ferplus::LabelMode::Probability,
                ferrite::data::ferplus::LabelMode::Crossentropy,
                ferrite::data::ferplus::LabelMode::MultiTarget,
            ] {
                if let Some(t) = votes.target(mode) {
                    assert!(t.iter().all(|p| p.is_finite() && *p >= 0.0));
                }
            }
        }
    }
});
