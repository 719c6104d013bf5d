//! The per-frame work a video job and a live camera share once a frame's
//! detections are in: track → count → faces → plates, each stage timed, and
//! the annotated picture. Detection is the caller's (a job runs it ahead on
//! worker threads, a camera inline); what happens to the results (a sample,
//! an MQTT window, the outbox) is too.

use std::time::{Duration, Instant};

use image::RgbImage;
use wayside_vision::Kind;
use wayside_vision::annotate::{Overlay, draw_overlay};
use wayside_vision::count::{Counter, PassEvent};
use wayside_vision::detect::Detection;
use wayside_vision::track::{TrackSnapshot, Tracker};

use super::faces::{FaceSighting, FaceStage};
use super::plates::{PlateSighting, PlateStage};
use super::{Engine, PipelineError};
use crate::decode::DecodedFrame;

#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Waiting for the next decoded frame.
    Decode,
    /// Detecting; in a job, waiting for the detection workers.
    Detect,
    /// Tracking and counting.
    Track,
    Faces,
    Plates,
    /// Drawing, H.264 encoding, JPEGs of annotated frames.
    Annotate,
}

/// Where stage times go: a job's totals, a camera's histograms.
pub trait StageClock {
    fn record(&mut self, stage: Stage, took: Duration);

    /// Runs `f`, recording its wall time under `stage`.
    fn time<T>(&mut self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.record(stage, start.elapsed());
        out
    }
}

/// One tracked frame's results.
pub struct Analysed {
    pub detections: Vec<Detection>,
    pub tracks: Vec<TrackSnapshot>,
    /// Objects that passed (crossed the line, or travelled) in this frame.
    pub passed: Vec<PassEvent>,
    pub faces: Vec<FaceSighting>,
    pub plates: Vec<PlateSighting>,
}

impl Analysed {
    /// Pedestrians and vehicles that passed in this frame.
    pub fn passed_by_kind(&self) -> (u32, u32) {
        let pedestrians = self
            .passed
            .iter()
            .filter(|e| e.kind == Kind::Pedestrian)
            .count() as u32;
        (pedestrians, self.passed.len() as u32 - pedestrians)
    }
}

/// The tracking, face and plate state of one video or camera.
pub struct Analyser<'e> {
    tracker: Tracker,
    faces: Option<FaceStage<'e>>,
    plates: Option<PlateStage<'e>>,
}

impl<'e> Analyser<'e> {
    /// Faces and plates are looked for only with `sightings` (somewhere to
    /// send them) and when enabled in the config.
    pub fn new(engine: &'e Engine, sightings: bool) -> Result<Self, PipelineError> {
        let faces = engine
            .faces
            .as_ref()
            .filter(|_| sightings && engine.faces_config.enabled)
            .map(|f| FaceStage::new(f, &engine.faces_config, engine.jpeg_quality))
            .transpose()?;
        let plates = engine
            .plates
            .as_ref()
            .filter(|_| sightings)
            .map(|p| PlateStage::new(p, &engine.plates_config, engine.jpeg_quality))
            .transpose()?;
        Ok(Self {
            tracker: Tracker::new(engine.tracker.clone())?,
            faces,
            plates,
        })
    }

    /// One tracked frame at `t_ms` with its `detections`, counted by `counter`.
    pub fn frame(
        &mut self,
        frame: &DecodedFrame,
        t_ms: u64,
        detections: Vec<Detection>,
        counter: &mut Counter,
        clock: &mut impl StageClock,
    ) -> Result<Analysed, PipelineError> {
        let (tracks, passed) = clock.time(Stage::Track, || {
            let tracks = self.tracker.update(&detections, t_ms);
            let passed = counter.observe(t_ms, &tracks);
            (tracks, passed)
        });
        let faces = match self.faces.as_mut() {
            Some(stage) => clock.time(Stage::Faces, || stage.observe(frame, t_ms, &detections))?,
            None => Vec::new(),
        };
        let plates = match self.plates.as_mut() {
            Some(stage) => clock.time(Stage::Plates, || stage.observe(frame, t_ms, &tracks))?,
            None => Vec::new(),
        };
        Ok(Analysed {
            detections,
            tracks,
            passed,
            faces,
            plates,
        })
    }

    /// The faces and plates still held when the stream ends; the stages
    /// are spent.
    pub fn finish(
        &mut self,
        clock: &mut impl StageClock,
    ) -> Result<(Vec<FaceSighting>, Vec<PlateSighting>), PipelineError> {
        let faces = match self.faces.take() {
            Some(stage) => clock.time(Stage::Faces, || stage.finish())?,
            None => Vec::new(),
        };
        let plates = match self.plates.take() {
            Some(stage) => clock.time(Stage::Plates, || stage.finish())?,
            None => Vec::new(),
        };
        Ok((faces, plates))
    }
}

/// The frame's picture with boxes, track ids, the line and the counts drawn.
pub fn annotated(mut img: RgbImage, overlay: &Overlay) -> RgbImage {
    draw_overlay(&mut img, overlay);
    img
}
