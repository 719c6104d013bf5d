//! The daemon's one configuration tree: TOML with serde defaults, validated
//! once at start. Every error names the field it is about.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use wayside_vision::classes::ClassMap;
use wayside_vision::detect::DetectorConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: ModelsConfig,
    pub detector: DetectorConfig,
    pub classes: ClassMap,
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
