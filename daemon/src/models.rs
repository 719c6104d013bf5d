//! The model manifest (`models/manifest.toml`) as the daemon sees it: where
//! each model file lives in the cache, its pinned sha256, and how to feed it.
//! Fetching and converting is `models/fetch.py`'s job; this side verifies and
//! loads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wayside_vision::detect::decode::DecodeSpec;
use wayside_vision::detect::letterbox::Preprocess;

/// The parts of the manifest the daemon needs; fetch-only fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub task: String,
    pub file: String,
    pub sha256: String,
    pub input: Preprocess,
    pub output: toml::Table,
    #[serde(default)]
    pub licence: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model manifest {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing model manifest {}", path.display()))
    }

    pub fn model(&self, id: &str) -> Result<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .with_context(|| format!("model {id:?} is not in the manifest"))
    }
}

impl ModelEntry {
    pub fn path(&self, cache: &Path) -> PathBuf {
        cache.join(&self.file)
    }

    /// The detector decoding spec from `[model.output]`.
    pub fn decode_spec(&self) -> Result<DecodeSpec> {
        toml::Value::Table(self.output.clone())
            .try_into()
            .with_context(|| {
                format!(
                    "model {}: [model.output] is not a detector decode spec",
                    self.id
                )
            })
    }

    /// Check the file against its pinned hash.
    pub fn verify(&self, cache: &Path) -> Result<()> {
        let path = self.path(cache);
        let got = sha256_file(&path).with_context(|| {
            format!(
                "model {}: cannot read {} (run scripts/setup-models.sh)",
                self.id,
                path.display()
            )
        })?;
        if !got.eq_ignore_ascii_case(&self.sha256) {
            bail!(
                "model {}: {} has sha256 {got}, manifest pins {}",
                self.id,
                path.display(),
                self.sha256
            );
        }
        Ok(())
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
