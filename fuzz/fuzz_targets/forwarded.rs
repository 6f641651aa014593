//! Fuzz target: the headers a reverse proxy forwards (`server::listen::forwarded_client`): the
//! input's lines are `Forwarded` (lines starting `F`) and `X-Forwarded-For` values (the rest),
//! read for a request that came through a trusted proxy.
#![no_main]
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let proxy: IpAddr = "10.0.0.1".parse().expect("an address");
    let trusted = [proxy, "::1".parse().expect("an address")];
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = match line.split_first() {
            Some((b'F', rest)) => ("forwarded", rest),
            _ => ("x-forwarded-for", line),
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let client = ferrite::server::listen::forwarded_client(&headers, proxy, &trusted);
    // The client is the proxy itself or an address the headers hold, never another trusted proxy.
    assert!(client == proxy || !trusted.contains(&client));
});
