//! Fuzz target: WebSocket client messages of the live-camera protocol. First byte even: a text
//! (control) message to `Session::control`; odd: a binary frame through the frame decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn analyzer() -> Arc<ferrite::vision::analyzer::Analyzer> {
    static A: OnceLock<Arc<ferrite::vision::analyzer::Analyzer>> = OnceLock::new();
    A.get_or_init(|| Arc::new(ferrite::vision::analyzer::Analyzer::new().expect("embedded analyzer builds"))).clone()
}

fuzz_target!(|data: &[u8]| {
    ferrite_fuzz::report_caught_panics();
    let Some((&kind, body)) = data.split_first() else { return };
    let limits = ferrite::server::Limits { max_side: 1024, max_pixels: 1 << 20, ..Default::default() };
    if kind % 2 == 0 {
        let mut session = ferrite::server::Session::new(analyzer(), limits);
        let reply = session.control(&String::from_utf8_lossy(body));
        assert!(reply["type"].is_string());
    } else {
        let _ = ferrite::server::decode_image(body, &limits);
    }
});
