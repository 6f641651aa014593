//! Helpers shared by the integration tests: run the `ferrite` binary, read its output.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Run the built `ferrite` binary with `args` (quiet logging).
pub fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ferrite")
}

/// Standard output and standard error together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
