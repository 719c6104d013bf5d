//! Loading the vision models named by the config, once, at start.

use anyhow::{Context, Result};
use wayside_vision::detect::Detector;

use crate::config::Config;
use crate::models::Manifest;
use crate::pipeline::Engine;

pub fn load_detector(config: &Config) -> Result<Detector> {
    wayside_vision::runtime::set_threads(config.models.threads);
    let manifest = Manifest::load(&config.models.manifest)?;
    let entry = manifest.model(&config.models.detector)?;
    entry.verify(&config.models.dir)?;
    Detector::load(
        &entry.path(&config.models.dir),
        entry.input.clone(),
        entry.decode_spec()?,
        config.classes.resolve()?,
        config.detector.clone(),
    )
    .with_context(|| format!("loading detector {}", entry.id))
}

/// Everything a video job needs, loaded and validated.
pub fn load_engine(config: &Config) -> Result<Engine> {
    Ok(Engine {
        detector: load_detector(config)?,
        classes: config.classes.resolve()?,
        tracker: config.tracker.clone(),
        count: config.count.clone(),
        min_track_fps: config.video.min_track_fps,
        max_duration_s: config.video.max_duration_s,
        max_dimension: config.video.max_dimension,
        jpeg_quality: config.video.jpeg_quality,
    })
}
