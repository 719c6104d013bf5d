//! Loading the vision models named by the config, once, at start.

use anyhow::{Context, Result, bail};
use wayside_vision::detect::Detector;
use wayside_vision::face::FaceEngine;
use wayside_vision::face::detect::FaceDetector;
use wayside_vision::face::embed::Embedder;
use wayside_vision::plate::{PlateDetector, PlateEngine, Recognizer};
use wayside_vision::runtime::cpu::set_cpu_features;

use crate::config::Config;
use crate::models::{Manifest, ModelEntry, sha256_file};
use crate::pipeline::Engine;

/// The manifest entry `id`, checked against its pinned hash.
fn verified<'m>(manifest: &'m Manifest, config: &Config, id: &str) -> Result<&'m ModelEntry> {
    let entry = manifest.model(id)?;
    entry.verify(&config.models.dir)?;
    Ok(entry)
}

/// tract's process-wide settings, made before the first model loads.
pub fn configure_tract(config: &Config) -> Result<()> {
    wayside_vision::runtime::set_threads(config.models.threads);
    let choice = set_cpu_features(&config.models.cpu_features).context("models.cpu_features")?;
    tracing::info!(%choice, "tract: instruction set");
    Ok(())
}

pub fn load_detector(config: &Config) -> Result<Detector> {
    configure_tract(config)?;
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

/// The plate detector and recogniser of `[plates]`, with the recogniser's
/// dictionary (named by its `[model.output]`, pinned like the models: a
/// dictionary that does not match the model reads every plate wrong).
pub fn load_plates(config: &Config) -> Result<PlateEngine> {
    let manifest = Manifest::load(&config.models.manifest)?;
    let p = &config.plates;
    let dir = &config.models.dir;
    let det = verified(&manifest, config, &p.detector_model).context("plates.detector_model")?;
    let rec = verified(&manifest, config, &p.recognizer).context("plates.recognizer")?;
    let field = |name: &str| {
        rec.output
            .get(name)
            .and_then(|v| v.as_str())
            .with_context(|| format!("model {}: [model.output] has no `{name}`", rec.id))
    };
    let dict = dir.join(field("dict")?);
    let pinned = field("dict_sha256")?;
    let got = sha256_file(&dict)
        .with_context(|| format!("model {}: cannot read {}", rec.id, dict.display()))?;
    if !got.eq_ignore_ascii_case(pinned) {
        bail!(
            "model {}: {} has sha256 {got}, manifest pins {pinned}",
            rec.id,
            dict.display()
        );
    }
    let dict_text = std::fs::read_to_string(&dict)
        .with_context(|| format!("model {}: reading {}", rec.id, dict.display()))?;
    let detector = PlateDetector::load(
        &det.path(dir),
        det.input.clone(),
        det.decode_spec()?,
        p.detector.clone(),
    )
    .with_context(|| format!("loading plate detector {}", det.id))?;
    let recognizer = Recognizer::load(
        &rec.path(dir),
        rec.input.clone(),
        rec.decode_spec()?,
        &dict_text,
    )
    .with_context(|| format!("loading plate recogniser {}", rec.id))?;
    PlateEngine::new(detector, recognizer, p.rectify.clone(), p.grammar.clone()).context("plates")
}

/// Everything a video job needs, loaded and validated. The face and plate
/// models (~70 MiB) only `with_sightings`: `wayside process` forwards and
/// searches nothing, so it does without them.
pub fn load_engine(config: &Config, with_sightings: bool) -> Result<Engine> {
    let engine = Engine {
        detector: load_detector(config)?,
        faces: with_sightings.then(|| load_faces(config)).transpose()?,
        faces_config: config.faces.clone(),
        plates: (with_sightings && config.plates.enabled)
            .then(|| load_plates(config))
            .transpose()?,
        plates_config: config.plates.clone(),
        classes: config.classes.resolve()?,
        tracker: config.tracker.clone(),
        count: config.count.clone(),
        min_track_fps: config.video.min_track_fps,
        detect_workers: config.video.detect_workers(config.models.threads),
        decode_threads: config.video.decode_threads,
        max_duration_s: config.video.max_duration_s,
        max_dimension: config.video.max_dimension,
        jpeg_quality: config.video.jpeg_quality,
    };
    release_freed_memory();
    Ok(engine)
}

/// Loading a model parses the ONNX file and optimises the graph: tens of MiB
/// allocated and freed on this thread before the first frame. glibc keeps
/// the freed pages of its main arena resident (9 MiB of the detector's load
/// on the 720p bench, never reused by a job: docs/BENCHMARKS.md, "Where the
/// memory goes"); one `malloc_trim` at start hands them back.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointer and may be called at
        // any time from any thread; it only returns free memory to the OS.
        unsafe {
            malloc_trim(0);
        }
    }
}
