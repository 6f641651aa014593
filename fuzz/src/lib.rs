//! What the fuzz targets share: the cheap-architecture filter of the model targets and the
//! panic hook of the targets that decode images.

use ferrite::model::{Arch, ModelSpec};

/// A header naming a big network (the reference CNN, an ensemble, a compact net wider than 8)
/// is valid but costs the random initialisation of up to millions of weights before the
/// weights are checked: the model targets stop such inputs after the (fuzzed) header checks,
/// so their time goes to parsing.
pub fn cheap(spec: &ModelSpec) -> bool {
    spec.arch == Arch::Compact && spec.width.is_some_and(|w| w <= 8) && spec.members.is_empty()
}

/// `imageio::decode` turns a decoder's panic into an error: such a caught panic must not abort
/// the run (libfuzzer-sys's panic hook aborts on every panic, caught or not). A panic that
/// escapes the target still aborts it (libfuzzer-sys checks), and is a finding.
pub fn report_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught: {info}"))));
}
