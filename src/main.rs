//! The `ferrite` binary: parse the command line, run the command ([`cli`]), report errors.

mod cli;

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // A decoder panic on a hostile file is caught and reported as the file's error: no
    // backtrace for it. Every other panic is reported as Rust does by default.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !ferrite::data::imageio::in_guarded_decoder() {
            default_hook(info);
        }
    }));
    if let Err(e) = cli::run(cli::Cli::parse()) {
        eprintln!("error: {}", cli::report(&e));
        std::process::exit(1);
    }
}
