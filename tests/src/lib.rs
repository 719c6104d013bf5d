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
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// A fetched test photo or clip.
pub fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models/cache"));
    let path = dir.join("media").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-models.sh",
        path.display()
    );
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

/// A `wayside serve` process on a free loopback port, killed on drop.
pub struct Daemon {
    child: std::process::Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Start with `extra` TOML appended to a config whose spool and media
    /// directories live in a fresh temporary directory.
    pub async fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\nspool_dir = \"{spool}\"\n{extra}\n\
             [media]\ndir = \"{media}\"\n",
            spool = dir.path().join("spool").display(),
            media = dir.path().join("media").display(),
        );
        let path = dir.path().join("wayside.toml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary("wayside"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .current_dir(workspace())
            .spawn()
            .expect("wayside serve starts");
        let daemon = Daemon {
            child,
            base,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{}/healthz", daemon.base)).send().await
                && r.status().is_success()
            {
                return daemon;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("wayside serve did not become healthy within 60 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
