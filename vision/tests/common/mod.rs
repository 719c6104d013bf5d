//! What the integration tests share: where the fetched models and media are,
//! and the manifest entries that describe them.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use serde::Deserialize;
use wayside_vision::detect::decode::DecodeSpec;
use wayside_vision::detect::letterbox::Preprocess;

/// The model cache filled by `scripts/setup-models.sh`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"))
}

/// A fetched test photo or clip; panics with the fix when it is missing.
pub fn media(name: &str) -> PathBuf {
    let p = models_dir().join("media").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-models.sh",
        p.display()
    );
    p
}

#[derive(Deserialize)]
pub struct Manifest {
    pub model: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct Entry {
    pub id: String,
    pub task: String,
    pub file: String,
    pub input: Preprocess,
    pub output: toml::Table,
}

impl Entry {
    pub fn path(&self) -> PathBuf {
        let p = models_dir().join(&self.file);
        assert!(
            p.exists(),
            "{} is missing: run scripts/setup-models.sh",
            p.display()
        );
        p
    }

    pub fn decode(&self) -> DecodeSpec {
        toml::Value::Table(self.output.clone())
            .try_into()
            .expect("detector decode spec")
    }
}

pub fn manifest() -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml");
    toml::from_str(&std::fs::read_to_string(path).expect("models/manifest.toml"))
        .expect("manifest parses")
}

pub fn model(id: &str) -> Entry {
    manifest()
        .model
        .into_iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("no model {id}"))
}
