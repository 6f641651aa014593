//! The code's layout, checked (issue 25): no source file over 700 lines, `main.rs` at most 150,
//! no import circle between the library's parts or between the files of one part, no kernel code under `src/model/`, no
//! process-wide switch in the kernels, every file opening with a `//!` line, and every part
//! named in `lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// (path under src/, text) of every source file.
fn files() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    sources(&src(), &mut paths);
    paths
        .into_iter()
        .map(|p| (p.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/"), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

/// The library part a file belongs to: its top folder or file under src/ (`None`: the binary).
fn part(path: &str) -> Option<String> {
    if path == "main.rs" || path.starts_with("cli/") || path == "lib.rs" {
        return None;
    }
    Some(path.split('/').next().unwrap().trim_end_matches(".rs").to_string())
}

/// The code of a file without comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn files_stay_small_and_main_thin() {
    for (path, text) in files() {
        let lines = text.lines().count();
        assert!(lines <= 700, "src/{path} has {lines} lines (at most 700)");
        assert!(text.starts_with("//!"), "src/{path} does not open with a //! line on what it is for");
    }
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap().lines().count();
    assert!(main <= 150, "src/main.rs has {main} lines (at most 150: it parses and dispatches)");
}

#[test]
fn no_import_circle_between_the_parts() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let all: Vec<(String, String)> = files();
    let parts: BTreeSet<String> = all.iter().filter_map(|(p, _)| part(p)).collect();
    for (path, text) in &all {
        let (Some(from), false) = (part(path), path.ends_with("tests.rs")) else { continue };
        let code = code(text);
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if name != from && parts.contains(&name) {
                deps.entry(from.clone()).or_default().insert(name);
            }
        }
    }
    for start in deps.keys() {
        let mut path = vec![start.clone()];
        assert!(!reach(&deps, start, start, &mut BTreeSet::new(), &mut path), "import circle: {}", path.join(" -> "));
    }
    // The layering the architecture describes (ARCHITECTURE.md), spot-checked.
    for (lower, upper) in [("kernels", "model"), ("model", "train"), ("model", "vision"), ("train", "plot"), ("data", "model"), ("vision", "server")] {
        assert!(!deps.get(lower).is_some_and(|d| d.contains(upper)), "{lower} imports {upper}");
    }
}

/// Depth-first search for a path from `from` back to `to` in `deps`.
fn reach(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str, seen: &mut BTreeSet<String>, path: &mut Vec<String>) -> bool {
    for next in deps.get(from).into_iter().flatten() {
        path.push(next.clone());
        if next == to || (seen.insert(next.clone()) && reach(deps, next, to, seen, path)) {
            return true;
        }
        path.pop();
    }
    false
}

/// Inside each part too: no two files of one folder import each other, directly or through
/// others (`super::NAME` or `crate::PART::NAME`; a folder's `mod.rs`, which declares its files,
/// and inline tests are left out).
#[test]
fn no_import_circle_inside_a_part() {
    let all = files();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &all {
        let Some((folder, file)) = path.rsplit_once('/') else { continue };
        if file == "mod.rs" || file == "tests.rs" || folder.starts_with("cli") {
            continue;
        }
        let siblings: BTreeSet<String> = all
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&format!("{folder}/")))
            .filter(|f| !f.contains('/') && *f != "mod.rs" && *f != "tests.rs")
            .map(|f| f.trim_end_matches(".rs").to_string())
            .collect();
        let me = file.trim_end_matches(".rs");
        let code = code(text);
        let crate_prefix = format!("crate::{}::", folder.replace('/', "::"));
        for prefix in ["super::", crate_prefix.as_str()] {
            for (i, _) in code.match_indices(prefix) {
                let name: String = code[i + prefix.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name != me && siblings.contains(&name) {
                    deps.entry(format!("{folder}/{me}")).or_default().insert(format!("{folder}/{name}"));
                }
            }
        }
    }
    assert!(deps.values().map(|d| d.len()).sum::<usize>() > 5, "the check sees the imports between files: {deps:?}");
    for start in deps.keys() {
        let mut path = vec![start.clone()];
        assert!(!reach(&deps, start, start, &mut BTreeSet::new(), &mut path), "import circle: {}", path.join(" -> "));
    }
}

#[test]
fn kernels_live_in_kernels_and_hold_no_process_wide_switch() {
    for (path, text) in files() {
        let code = code(&text);
        if path.starts_with("model/") {
            for kernel in ["#[target_feature", "backend_extension", "std::arch::"] {
                assert!(!code.contains(kernel), "src/{path} holds kernel code ({kernel}): it belongs in src/kernels/");
            }
        }
        if path.starts_with("kernels/") {
            for global in ["AtomicBool", "AtomicU", "static mut"] {
                assert!(!code.contains(global), "src/{path}: a process-wide switch ({global}); pass the setting as a value");
            }
        }
    }
}

#[test]
fn lib_rs_names_every_part() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let parts: BTreeSet<String> = files().iter().filter_map(|(p, _)| part(p)).collect();
    for p in parts {
        assert!(lib.contains(&format!("pub mod {p};")), "lib.rs does not declare {p}");
        assert!(lib.contains(&format!("[`{p}`]")) || lib.contains(&format!("[`mod@{p}`]")), "lib.rs's overview does not name {p}");
    }
}

/// The library's core (`default-features = false`) compiles no web server, command line,
/// plotting or progress bars (issue 31): `cargo tree` over its normal dependencies.
#[test]
fn the_core_leaves_out_server_cli_and_plots() {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "-e", "normal", "--no-default-features", "-p", "ferrite", "--prefix", "none", "--offline"])
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains("tract-onnx") && crates.contains("image"), "the core keeps detection and models: {crates:?}");
    for left_out in ["axum", "hyper", "tokio", "clap", "plotters", "indicatif", "tracing-subscriber"] {
        assert!(!crates.contains(left_out), "`default-features = false` still depends on {left_out}");
    }
}

/// Every crate the Python package's build shares with the binary's test build is built with the
/// same features in both (python/Cargo.toml names the features the binary's server and log
/// filter turn on), so the wheel build reuses target/ instead of compiling burn, tract and the
/// rest a second time: `cargo tree` of both, crate by crate, ferrite itself aside.
#[test]
fn the_wheel_build_shares_the_binarys_dependencies() {
    let features = |args: &[&str]| -> BTreeMap<String, BTreeSet<String>> {
        let out = std::process::Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["tree", "--prefix", "none", "--offline", "-f", "{p} [{f}]"])
            .args(args)
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(version)) = (words.next(), words.next()) {
                let feats = line.split('[').nth(1).and_then(|r| r.split(']').next()).unwrap_or_default();
                map.entry(format!("{name} {version}")).or_default().insert(feats.to_string());
            }
        }
        map
    };
    let binary = features(&["-p", "ferrite", "-e", "normal,build,dev"]);
    let wheel = features(&["-p", "ferrite-python", "-e", "normal,build"]);
    let differ: Vec<String> = wheel
        .iter()
        .filter(|(name, _)| !name.starts_with("ferrite "))
        .filter_map(|(name, f)| binary.get(name).filter(|g| *g != f).map(|g| format!("{name}: binary {g:?}, wheel {f:?}")))
        .collect();
    assert!(wheel.len() > 100 && binary.len() > wheel.len(), "cargo tree listed {} and {} crates", binary.len(), wheel.len());
    assert!(differ.is_empty(), "built twice with other features (name them in python/Cargo.toml):\n{}", differ.join("\n"));
}
