//! Shared by the decode and encode tests: the real media of the model cache,
//! scratch directories, and ffmpeg as an independent reference decoder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `$WAYSIDE_MODELS_DIR/media`, or the repository's model cache.
pub(crate) fn media(name: &str) -> PathBuf {
    let models = std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/cache"));
    let path = models.join("media").join(name);
    assert!(
        path.is_file(),
        "{} missing: run the models script to fill the cache",
        path.display()
    );
    path
}

/// A directory removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wayside-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run ffmpeg quietly with `args`, panicking with its stderr on failure.
pub(crate) fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The first frame of `path` as packed RGB24, decoded by ffmpeg.
pub(crate) fn ffmpeg_first_frame_rgb(path: &Path) -> Vec<u8> {
    ffmpeg(&[
        "-i",
        path.to_str().expect("utf-8 path"),
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ])
}

/// Mean absolute difference of two equally long byte buffers.
pub(crate) fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "buffers differ in length");
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.len() as f64
}
