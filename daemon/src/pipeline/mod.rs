//! One video through the whole flow: decode → sample → detect → track →
//! count → annotate/encode. Runs on a blocking thread; results leave through
//! the `on_sample` callback (the HTTP stream, the CLI's progress bar) and the
//! returned [`Summary`].

pub mod analyse;
pub mod faces;
pub mod plates;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;
use thiserror::Error;
use wayside_vision::annotate::Overlay;
use wayside_vision::classes::ResolvedClassMap;
use wayside_vision::count::{
    CountConfig, CountError, Counter, CountingLine, CountsReport, FrameCounts,
};
use wayside_vision::detect::{DetectError, Detector};
use wayside_vision::face::{FaceEngine, FaceError};
use wayside_vision::plate::{PlateEngine, PlateError};
use wayside_vision::track::{TrackerConfig, TrackerConfigError};
use wayside_vision::{BBox, RgbFrame};

use crate::config::{FacesConfig, PlatesConfig};
use crate::decode::{DecodeError, Decoder, VideoInfo};
use crate::encode::{EncodeError, Encoder};
use crate::forward::Sightings;
use analyse::{Analyser, Stage, StageClock, annotated};
use schedule::Schedule;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Face(#[from] FaceError),
    #[error(transparent)]
    Plate(#[from] PlateError),
    #[error(transparent)]
    Count(#[from] CountError),
    #[error(transparent)]
    Tracker(#[from] TrackerConfigError),
    #[error("video is {got_s:.0} s long; the limit is {limit_s} s")]
    TooLong { got_s: f64, limit_s: u64 },
    #[error("video is {width}x{height}; the limit is {limit} pixels on the long side")]
    TooLarge { width: u32, height: u32, limit: u32 },
    #[error("encoding a JPEG: {0}")]
    Jpeg(String),
    #[error("cancelled")]
    Cancelled,
}

/// Everything loaded once at start and shared by all jobs.
pub struct Engine {
    pub detector: Detector,
    /// None in `wayside process`, which looks for no sightings.
    pub faces: Option<FaceEngine>,
    pub faces_config: FacesConfig,
    /// Loaded only when `plates.enabled`: `/licence-plate` searches text.
    pub plates: Option<PlateEngine>,
    pub plates_config: PlatesConfig,
    pub classes: ResolvedClassMap,
    pub tracker: TrackerConfig,
    pub count: CountConfig,
    pub min_track_fps: f64,
    pub max_duration_s: u64,
    pub max_dimension: u32,
    pub jpeg_quality: u8,
}

/// What one job asks for.
pub struct JobSpec {
    pub interval_ms: u64,
    pub line: Option<CountingLine>,
    /// Write the annotated MP4 here.
    pub annotated_video: Option<PathBuf>,
    /// Attach a JPEG of each annotated sample frame.
    pub sample_jpegs: bool,
    /// Where kept faces and voted plates go; none are looked for without
    /// it (or with `faces.enabled` / `plates.enabled` false).
    pub sightings: Option<Sightings>,
}

/// One sample, emitted once its window has closed so that its pass-through
/// counts are final (they equal the arrays of the summary).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub index: usize,
    pub timestamp: u64,
    pub counts: FrameCounts,
    pub pedestrians_per_interval: u32,
    pub vehicles_per_interval: u32,
    #[serde(skip)]
    pub jpeg: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub counts: CountsReport,
    pub duration_ms: u64,
    pub frames_processed: u64,
    pub processing_ms: u64,
    pub stage_ms: StageTimes,
    /// Faces kept (one per face track per period) and handed to the outbox.
    pub faces_forwarded: u32,
    /// Vehicles whose plate was read, voted and handed to the outbox.
    pub plates_forwarded: u32,
    /// Faces and plates found that the outbox could not store (disk full):
    /// they will never reach the data API, so `/video` does not answer the
    /// job as a success (see `http/video.rs`).
    #[serde(skip)]
    pub sightings_not_kept: u32,
}

/// Where a job's time went, in milliseconds of wall time. Decoding runs in
/// GStreamer's threads beside the rest, so `decode` is only the time spent
/// waiting for the next frame (mostly for skipped frames to go by).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    pub decode: u64,
    pub detect: u64,
    /// Tracking and counting.
    pub track: u64,
    /// Face detection, tracking, alignment, embedding and forwarding.
    pub faces: u64,
    /// Plate finding, reading, voting and forwarding.
    pub plates: u64,
    /// Drawing, H.264 encoding and sample JPEGs.
    pub annotate_encode: u64,
}

/// Accumulates [`StageTimes`] while a job runs.
#[derive(Default)]
struct Stopwatch {
    decode: Duration,
    detect: Duration,
    track: Duration,
    faces: Duration,
    plates: Duration,
    annotate_encode: Duration,
}

impl StageClock for Stopwatch {
    fn record(&mut self, stage: Stage, took: Duration) {
        *match stage {
            Stage::Decode => &mut self.decode,
            Stage::Detect => &mut self.detect,
            Stage::Track => &mut self.track,
            Stage::Faces => &mut self.faces,
            Stage::Plates => &mut self.plates,
            Stage::Annotate => &mut self.annotate_encode,
        } += took;
    }
}

impl Stopwatch {
    fn times(&self) -> StageTimes {
        let ms = |d: Duration| d.as_millis() as u64;
        StageTimes {
            decode: ms(self.decode),
            detect: ms(self.detect),
            track: ms(self.track),
            faces: ms(self.faces),
            plates: ms(self.plates),
            annotate_encode: ms(self.annotate_encode),
        }
    }
}

/// A sample waiting for its window to close.
struct Pending {
    index: usize,
    timestamp: u64,
    counts: FrameCounts,
    jpeg: Option<Vec<u8>>,
}

/// A video opened and checked against the limits, ready to run. Opening is
/// separate so that a bad upload is refused with a status code before a
/// response stream starts.
pub struct Job {
    engine: Arc<Engine>,
    decoder: Decoder,
    info: VideoInfo,
    spec: JobSpec,
    started: Instant,
}

impl Job {
    pub fn open(engine: Arc<Engine>, input: &Path, spec: JobSpec) -> Result<Job, PipelineError> {
        let started = Instant::now();
        let decoder = Decoder::open(input)?;
        let info = decoder.info().clone();
        if let Some(d) = info.duration_ms
            && d > engine.max_duration_s * 1000
        {
            return Err(PipelineError::TooLong {
                got_s: d as f64 / 1000.0,
                limit_s: engine.max_duration_s,
            });
        }
        if info.width.max(info.height) > engine.max_dimension {
            return Err(PipelineError::TooLarge {
                width: info.width,
                height: info.height,
                limit: engine.max_dimension,
            });
        }
        Ok(Job {
            engine,
            decoder,
            info,
            spec,
            started,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Run to the end. `on_sample` returning false cancels the job.
    pub fn run(
        mut self,
        mut on_sample: impl FnMut(Sample) -> bool,
    ) -> Result<Summary, PipelineError> {
        let (engine, info, spec) = (&*self.engine, &self.info, &self.spec);
        let mut schedule = Schedule::new(spec.interval_ms, engine.min_track_fps, info.fps);
        let mut analyser = Analyser::new(engine, spec.sightings.is_some())?;
        let line = spec.line.map(|l| l.to_pixels(info.width, info.height));
        let mut counter = Counter::new(
            engine.count.clone(),
            engine.classes.clone(),
            spec.interval_ms,
        )?;
        if let Some(l) = line {
            counter = counter.with_line(l);
        }
        let (mut faces_forwarded, mut plates_forwarded) = (0u32, 0u32);
        // Shared by both closures below: only one runs at a time.
        let not_kept = std::cell::Cell::new(0u32);
        let mut forward_faces = |found: Vec<faces::FaceSighting>| {
            if let Some(sink) = &spec.sightings {
                for f in found {
                    let kept = sink.face(f);
                    faces_forwarded += u32::from(kept);
                    not_kept.set(not_kept.get() + u32::from(!kept));
                }
            }
        };
        let mut forward_plates = |found: Vec<plates::PlateSighting>| {
            if let Some(sink) = &spec.sightings {
                for p in found {
                    let kept = sink.plate(p);
                    plates_forwarded += u32::from(kept);
                    not_kept.set(not_kept.get() + u32::from(!kept));
                }
            }
        };
        let mut encoder = match &spec.annotated_video {
            Some(path) => Some(Encoder::create(path, info.width, info.height)?),
            None => None,
        };

        let (mut frames_processed, mut last_pts) = (0u64, 0u64);
        let (mut passed_ped, mut passed_veh) = (0u32, 0u32);
        let mut pending: Option<Pending> = None;
        let mut emit = |p: Pending, counter: &Counter| {
            let w = counter.windows().window(p.index as u64);
            on_sample(Sample {
                index: p.index,
                timestamp: p.timestamp,
                counts: p.counts,
                pedestrians_per_interval: w.pedestrians,
                vehicles_per_interval: w.vehicles,
                jpeg: p.jpeg,
            })
        };

        let mut watch = Stopwatch::default();
        while let Some(frame) = watch.time(Stage::Decode, || self.decoder.next_frame())? {
            let t = frame.pts_ms();
            last_pts = t;
            let slot = schedule.slot(t);
            if !slot.track {
                continue;
            }
            frames_processed += 1;
            let rgb = frame.rgb();
            let found = analyser.frame(&rgb, t, &mut counter, &mut watch)?;
            let (pedestrians, vehicles) = found.passed_by_kind();
            passed_ped += pedestrians;
            passed_veh += vehicles;
            let now = counter.frame_counts(&found.detections);
            watch.time(Stage::Faces, || forward_faces(found.faces));
            watch.time(Stage::Plates, || forward_plates(found.plates));
            let annotate_start = Instant::now();
            let wants_jpeg = spec.sample_jpegs && !slot.samples.is_empty();
            let drawn = (encoder.is_some() || wants_jpeg).then(|| {
                annotated(
                    &rgb,
                    &Overlay {
                        tracks: &found.tracks,
                        line: line.as_ref(),
                        pedestrians_now: now.pedestrians,
                        vehicles_now: now.vehicles,
                        pedestrians_passed: passed_ped,
                        vehicles_passed: passed_veh,
                    },
                )
            });
            drop(frame);
            if let (Some(enc), Some(img)) = (encoder.as_mut(), drawn.as_ref()) {
                enc.push(img, t)?;
            }
            let jpeg = match (&drawn, wants_jpeg) {
                (Some(img), true) => Some(encode_jpeg(img, engine.jpeg_quality)?),
                _ => None,
            };
            watch.record(Stage::Annotate, annotate_start.elapsed());
            for index in slot.samples {
                let counts = counter.sample(&found.detections);
                let next = Pending {
                    index,
                    timestamp: index as u64 * spec.interval_ms,
                    counts,
                    jpeg: jpeg.clone(),
                };
                if let Some(p) = pending.replace(next)
                    && !emit(p, &counter)
                {
                    return Err(PipelineError::Cancelled);
                }
            }
        }
        if let Some(p) = pending.take()
            && !emit(p, &counter)
        {
            return Err(PipelineError::Cancelled);
        }
        if let Some(enc) = encoder {
            watch.time(Stage::Annotate, || enc.finish())?;
        }
        let (faces, plates) = analyser.finish(&mut watch)?;
        watch.time(Stage::Faces, || forward_faces(faces));
        watch.time(Stage::Plates, || forward_plates(plates));
        Ok(Summary {
            counts: counter.report(),
            duration_ms: info.duration_ms.unwrap_or(last_pts),
            frames_processed,
            processing_ms: self.started.elapsed().as_millis() as u64,
            stage_ms: watch.times(),
            faces_forwarded,
            plates_forwarded,
            sightings_not_kept: not_kept.get(),
        })
    }
}

pub(crate) fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::with_capacity(64 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| PipelineError::Jpeg(e.to_string()))?;
    Ok(out)
}

/// A box (a face, a vehicle) grown by `margin` of its size on every side,
/// clamped to the frame, copied out: what a person is shown of a sighting.
pub(crate) fn crop(frame: &RgbFrame, b: &BBox, margin: f32) -> RgbImage {
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let (mx, my) = (b.width() * margin, b.height() * margin);
    let x1 = (b.x1 - mx).clamp(0.0, w - 1.0) as u32;
    let y1 = (b.y1 - my).clamp(0.0, h - 1.0) as u32;
    let x2 = ((b.x2 + mx).clamp(0.0, w) as u32).max(x1 + 1);
    let y2 = ((b.y2 + my).clamp(0.0, h) as u32).max(y1 + 1);
    let (cw, ch) = (x2 - x1, y2 - y1);
    let stride = frame.stride();
    let data = frame.data();
    let mut out = Vec::with_capacity((cw * ch * 3) as usize);
    for y in y1..y2 {
        let row = y as usize * stride + x1 as usize * 3;
        out.extend_from_slice(&data[row..row + cw as usize * 3]);
    }
    RgbImage::from_raw(cw, ch, out).expect("cw * ch * 3 bytes")
}
