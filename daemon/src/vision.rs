//! Loading the vision models named by the config, once, at start.

use anyhow::{Context, Result};
use wayside_vision::detect::Detector;
use wayside_vision::face::FaceEngine;
use wayside_vision::face::detect::FaceDetector;
use wayside_vision::face::embed::Embedder;

use crate::config::Config;
use crate::models::{Manifest, ModelEntry};
use crate::pipeline::Engine;

/// The manifest entry `id`, checked against its pinned hash.
fn verified<'m>(manifest: &'m Manifest, config: &Config, id: &str) -> Result<&'m ModelEntry> {
    let entry = manifest.model(id)?;
    entry.verify(&config.models.dir)?;
    Ok(entry)
}

pub fn load_detector(config: &Config) -> Result<Detector> {
    wayside_vision::runtime::set_threads(config.models.threads);
    let manifest = Manifest::load(&config.models.manifest)?;
    let entry = verified(&manifest, config, &config.models.detector)?;
    Detector::load(
        &entry.path(&config.models.dir),
        entry.input.clone(),
        entry.decode_spec()?,
        config.classes.resolve()?,
        config.detector.clone(),
    )
    .with_context(|| format!("loading detector {}", entry.id))
}

/// The face detector and embedder of `[faces]`; `/face-detect` needs them
/// even when faces in videos are turned off.
pub fn load_faces(config: &Config) -> Result<FaceEngine> {
    let manifest = Manifest::load(&config.models.manifest)?;
    let f = &config.faces;
    let det = verified(&manifest, config, &f.detector_model).context("faces.detector_model")?;
    let emb = verified(&manifest, config, &f.embedder).context("faces.embedder")?;
    let detector = FaceDetector::load(
        &det.path(&config.models.dir),
        det.input.clone(),
        det.decode_spec()?,
        f.detector.clone(),
    )
    .with_context(|| format!("loading face detector {}", det.id))?;
    let embedder = Embedder::load(
        &emb.path(&config.models.dir),
        emb.input.clone(),
        emb.decode_spec()?,
    )
    .with_context(|| format!("loading face embedder {}", emb.id))?;
    FaceEngine::new(detector, embedder, f.quality.clone()).context("faces")
}

/// Everything a video job needs, loaded and validated.
pub fn load_engine(config: &Config) -> Result<Engine> {
    Ok(Engine {
        detector: load_detector(config)?,
        faces: load_faces(config)?,
        faces_config: config.faces.clone(),
        classes: config.classes.resolve()?,
        tracker: config.tracker.clone(),
        count: config.count.clone(),
        min_track_fps: config.video.min_track_fps,
        max_duration_s: config.video.max_duration_s,
        max_dimension: config.video.max_dimension,
        jpeg_quality: config.video.jpeg_quality,
    })
}
