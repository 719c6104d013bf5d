//! What the end-to-end tests share: the built binaries, the fetched media.
//!
//! The tests run the binaries that `cargo build --bins` left in the target
//! directory (`scripts/test.sh` builds them first), exactly as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a workspace binary in the dev profile.
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let path = target.join("debug").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first", path.display());
    path
}

/// A fetched test photo or clip.
pub fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models/cache"));
    let path = dir.join("media").join(name);
    assert!(path.exists(), "{} is missing: run scripts/setup-models.sh", path.display());
    path
}

/// `wayside ARGS…` run from the workspace root (where the default config
/// finds `models/`), with its output captured.
pub fn wayside(args: &[&str]) -> Output {
    Command::new(binary("wayside"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("wayside runs")
}
