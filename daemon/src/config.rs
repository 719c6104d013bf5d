//! The daemon's one configuration tree: TOML with serde defaults, validated
//! once at start. Every error names the field it is about.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use wayside_vision::classes::ClassMap;
use wayside_vision::count::CountConfig;
use wayside_vision::detect::DetectorConfig;
use wayside_vision::track::TrackerConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub media: MediaConfig,
    pub video: VideoConfig,
    pub models: ModelsConfig,
    pub detector: DetectorConfig,
    pub tracker: TrackerConfig,
    pub count: CountConfig,
    pub classes: ClassMap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Loopback by default: a roadside box is not exposed unless asked.
    pub listen: String,
    /// Base of the URLs handed out (`processed_video_url`), as clients reach us.
    pub public_url: String,
    pub max_upload_bytes: u64,
    /// Video jobs running at once; more get 503 with Retry-After.
    pub max_jobs: usize,
    /// Uploads are spooled here, never held in memory.
    pub spool_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_upload_bytes: 1 << 30,
            max_jobs: 1,
            spool_dir: PathBuf::from("var/spool"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Annotated videos, content-addressed.
    pub dir: PathBuf,
    /// Oldest files go first past this total size.
    pub max_bytes: u64,
    /// Files older than this are removed.
    pub max_age_days: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/media"),
            max_bytes: 10 << 30,
            max_age_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// The tracker sees at least this many frames a second (API.md).
    pub min_track_fps: f64,
    pub max_duration_s: u64,
    /// Longest side in pixels.
    pub max_dimension: u32,
    pub jpeg_quality: u8,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            min_track_fps: 5.0,
            max_duration_s: 3600,
            max_dimension: 3840,
            jpeg_quality: 80,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where `scripts/setup-models.sh` put the model files.
    pub dir: PathBuf,
    /// The manifest pinning every model file by sha256.
    pub manifest: PathBuf,
    /// Manifest id of the detector: "detector" (f32) or "detector-int8".
    pub detector: String,
    /// Cores tract may use inside one inference.
    pub threads: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models/cache"),
            manifest: PathBuf::from("models/manifest.toml"),
            detector: "detector".into(),
            threads: 1,
        }
    }
}

impl Config {
    /// Read `path` (or defaults when `None`), then apply `WAYSIDE_MODELS_DIR`
    /// so test scripts and packaging can move the model cache.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config: Config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("config {}", p.display()))?
            }
            None => Config::default(),
        };
        if let Some(dir) = std::env::var_os("WAYSIDE_MODELS_DIR") {
            config.models.dir = dir.into();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        let d = &self.detector;
        if !(d.min_score > 0.0 && d.min_score < 1.0) {
            bail!(
                "detector.min_score: must be between 0 and 1, got {}",
                d.min_score
            );
        }
        if !(d.nms_iou > 0.0 && d.nms_iou <= 1.0) {
            bail!("detector.nms_iou: must be in (0, 1], got {}", d.nms_iou);
        }
        if self.models.threads == 0 || self.models.threads > 64 {
            bail!(
                "models.threads: must be 1..=64, got {}",
                self.models.threads
            );
        }
        self.classes.resolve().context("classes")?;
        self.tracker.validate()?;
        self.count.validate()?;
        let v = &self.video;
        if !(v.min_track_fps >= 1.0 && v.min_track_fps <= 60.0) {
            bail!(
                "video.min_track_fps: must be 1..=60, got {}",
                v.min_track_fps
            );
        }
        if v.max_duration_s == 0 {
            bail!("video.max_duration_s: must be positive");
        }
        if !(1..=100).contains(&v.jpeg_quality) {
            bail!(
                "video.jpeg_quality: must be 1..=100, got {}",
                v.jpeg_quality
            );
        }
        let s = &self.server;
        s.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("server.listen: {:?} is not an address:port", s.listen))?;
        if !(s.public_url.starts_with("http://") || s.public_url.starts_with("https://")) {
            bail!(
                "server.public_url: must start with http:// or https://, got {:?}",
                s.public_url
            );
        }
        if s.max_jobs == 0 {
            bail!("server.max_jobs: must be at least 1");
        }
        if s.max_upload_bytes == 0 {
            bail!("server.max_upload_bytes: must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        assert!(parse("").is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[detector]\nmin_score = 1.5").unwrap_err();
        assert!(format!("{e:#}").contains("detector.min_score"), "{e:#}");
        let e = parse("[models]\nthreads = 0").unwrap_err();
        assert!(format!("{e:#}").contains("models.threads"), "{e:#}");
        let e = parse("[classes]\nvehicle = [\"tram\"]").unwrap_err();
        assert!(
            format!("{e:#}").contains("classes: unknown COCO class \"tram\""),
            "{e:#}"
        );
        let e = parse("[detector]\nmin_scor = 0.3").unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `min_scor`"),
            "{e:#}"
        );
    }
}
