//! One video through the whole flow: decode → sample → detect → track →
//! count → annotate/encode. Runs on a blocking thread; results leave through
//! the `on_sample` callback (the HTTP stream, the CLI's progress bar) and the
//! returned [`Summary`].

pub mod analyse;
mod detect_ahead;
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
    CountConfig, CountError, Counter, CountingLine, CountsReport, FrameCounts, PixelLine,
};
use wayside_vision::detect::{DetectError, Detection, Detector};
use wayside_vision::face::{FaceEngine, FaceError};
use wayside_vision::plate::{PlateEngine, PlateError};
use wayside_vision::track::{TrackerConfig, TrackerConfigError};
use wayside_vision::{BBox, RgbFrame};

use crate::config::{FacesConfig, PlatesConfig};
use crate::decode::{DecodeError, DecodedFrame, Decoder, VideoInfo};
use crate::encode::{EncodeError, Encoder};
use crate::forward::{Handed, Sightings};
use analyse::{Analyser, Stage, StageClock, annotated};
use detect_ahead::DetectAhead;
use faces::FaceSighting;
use plates::PlateSighting;
use schedule::{Schedule, Slot};

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
    #[error("a detection worker stopped")]
    DetectWorker,
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
    /// Frames of one video detected at once, each on its own thread.
    pub detect_workers: usize,
    /// Threads of one stream's software video decoder (0: libav's choice).
    pub decode_threads: u32,
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
    /// Faces and plates found that the outbox had no room to store (disk
    /// full, I/O error): they will never reach the data API unless the
    /// video is sent again, so `/video` does not answer the job as a
    /// success (see `http/video.rs`).
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
        let decoder = Decoder::open(input, engine.decode_threads)?;
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
    pub fn run(self, on_sample: impl FnMut(Sample) -> bool) -> Result<Summary, PipelineError> {
        let Job {
            engine,
            mut decoder,
            info,
            spec,
            started,
        } = self;
        let engine = &*engine;
        std::thread::scope(|scope| {
            let mut ahead = DetectAhead::start(scope, &engine.detector, engine.detect_workers)?;
            let mut run = Run::new(engine, &info, &spec, on_sample)?;
            // The frames the schedule skips need no conversion to RGB.
            let mut schedule = run.schedule.clone();
            decoder.skip_unused(move |f| schedule.slot(f.t_ms).track);
            while let Some(frame) = run.watch.time(Stage::Decode, || decoder.next_frame())? {
                let t = frame.pts_ms();
                run.last_pts = t;
                let slot = run.schedule.slot(t);
                if !slot.track {
                    continue;
                }
                if let Some(done) = run.watch.time(Stage::Detect, || ahead.push(frame, slot)) {
                    run.tracked(done?)?;
                }
            }
            while let Some(done) = run.watch.time(Stage::Detect, || ahead.pop()) {
                run.tracked(done?)?;
            }
            run.last_pts = run.last_pts.max(decoder.last_decoded_ms());
            run.finish(&info, started)
        })
    }
}

/// A job's state from one tracked frame to the next: the frames come back
/// from detection in order and go through here one at a time.
struct Run<'j, F> {
    engine: &'j Engine,
    spec: &'j JobSpec,
    schedule: Schedule,
    analyser: Analyser<'j>,
    line: Option<PixelLine>,
    counter: Counter,
    encoder: Option<Encoder>,
    on_sample: F,
    /// The last sample, held until the next one closes its window.
    pending: Option<Pending>,
    watch: Stopwatch,
    frames_processed: u64,
    last_pts: u64,
    /// Pedestrians and vehicles passed so far, for the overlay.
    passed: (u32, u32),
    faces_forwarded: u32,
    plates_forwarded: u32,
    sightings_not_kept: u32,
}

impl<'j, F: FnMut(Sample) -> bool> Run<'j, F> {
    fn new(
        engine: &'j Engine,
        info: &VideoInfo,
        spec: &'j JobSpec,
        on_sample: F,
    ) -> Result<Self, PipelineError> {
        let line = spec.line.map(|l| l.to_pixels(info.width, info.height));
        let mut counter = Counter::new(
            engine.count.clone(),
            engine.classes.clone(),
            spec.interval_ms,
        )?;
        if let Some(l) = line {
            counter = counter.with_line(l);
        }
        let encoder = match &spec.annotated_video {
            Some(path) => Some(Encoder::create(path, info.width, info.height)?),
            None => None,
        };
        Ok(Self {
            engine,
            spec,
            schedule: Schedule::new(spec.interval_ms, engine.min_track_fps, info.fps),
            analyser: Analyser::new(engine, spec.sightings.is_some())?,
            line,
            counter,
            encoder,
            on_sample,
            pending: None,
            watch: Stopwatch::default(),
            frames_processed: 0,
            last_pts: 0,
            passed: (0, 0),
            faces_forwarded: 0,
            plates_forwarded: 0,
            sightings_not_kept: 0,
        })
    }

    /// One frame back from detection: track, count, forward, draw, sample.
    fn tracked(
        &mut self,
        (frame, slot, detections): (DecodedFrame, Slot, Vec<Detection>),
    ) -> Result<(), PipelineError> {
        let (engine, spec) = (self.engine, self.spec);
        let t = frame.pts_ms();
        self.frames_processed += 1;
        let found =
            self.analyser
                .frame(&frame, t, detections, &mut self.counter, &mut self.watch)?;
        let (pedestrians, vehicles) = found.passed_by_kind();
        self.passed.0 += pedestrians;
        self.passed.1 += vehicles;
        let now = self.counter.frame_counts(&found.detections);
        self.forward(found.faces, found.plates);
        let annotate_start = Instant::now();
        let wants_jpeg = spec.sample_jpegs && !slot.samples.is_empty();
        let drawn = (self.encoder.is_some() || wants_jpeg).then(|| {
            annotated(
                frame.into_rgb_image(),
                &Overlay {
                    tracks: &found.tracks,
                    line: self.line.as_ref(),
                    pedestrians_now: now.pedestrians,
                    vehicles_now: now.vehicles,
                    pedestrians_passed: self.passed.0,
                    vehicles_passed: self.passed.1,
                },
            )
        });
        if let (Some(enc), Some(img)) = (self.encoder.as_mut(), drawn.as_ref()) {
            enc.push(img, t)?;
        }
        let jpeg = match (&drawn, wants_jpeg) {
            (Some(img), true) => Some(encode_jpeg(img, engine.jpeg_quality)?),
            _ => None,
        };
        self.watch.record(Stage::Annotate, annotate_start.elapsed());
        for index in slot.samples {
            let counts = self.counter.sample(&found.detections);
            let next = Pending {
                index,
                timestamp: index as u64 * spec.interval_ms,
                counts,
                jpeg: jpeg.clone(),
            };
            if let Some(p) = self.pending.replace(next) {
                self.emit(p)?;
            }
        }
        Ok(())
    }

    /// Hands kept faces and voted plates to the job's sink, if it has one.
    fn forward(&mut self, faces: Vec<FaceSighting>, plates: Vec<PlateSighting>) {
        let Some(sink) = &self.spec.sightings else {
            return;
        };
        let (forwarded, not_kept) = (&mut self.faces_forwarded, &mut self.sightings_not_kept);
        self.watch.time(Stage::Faces, || {
            for f in faces {
                let handed = sink.face(f);
                *forwarded += u32::from(handed.kept());
                *not_kept += u32::from(handed == Handed::NoRoom);
            }
        });
        let (forwarded, not_kept) = (&mut self.plates_forwarded, &mut self.sightings_not_kept);
        self.watch.time(Stage::Plates, || {
            for p in plates {
                let handed = sink.plate(p);
                *forwarded += u32::from(handed.kept());
                *not_kept += u32::from(handed == Handed::NoRoom);
            }
        });
    }

    /// A sample whose window has closed; the client may cancel here.
    fn emit(&mut self, p: Pending) -> Result<(), PipelineError> {
        let w = self.counter.windows().window(p.index as u64);
        let sample = Sample {
            index: p.index,
            timestamp: p.timestamp,
            counts: p.counts,
            pedestrians_per_interval: w.pedestrians,
            vehicles_per_interval: w.vehicles,
            jpeg: p.jpeg,
        };
        if (self.on_sample)(sample) {
            Ok(())
        } else {
            Err(PipelineError::Cancelled)
        }
    }

    fn finish(mut self, info: &VideoInfo, started: Instant) -> Result<Summary, PipelineError> {
        if let Some(p) = self.pending.take() {
            self.emit(p)?;
        }
        if let Some(enc) = self.encoder.take() {
            self.watch.time(Stage::Annotate, || enc.finish())?;
        }
        let (faces, plates) = self.analyser.finish(&mut self.watch)?;
        self.forward(faces, plates);
        Ok(Summary {
            counts: self.counter.report(),
            duration_ms: info.duration_ms.unwrap_or(self.last_pts),
            frames_processed: self.frames_processed,
            processing_ms: started.elapsed().as_millis() as u64,
            stage_ms: self.watch.times(),
            faces_forwarded: self.faces_forwarded,
            plates_forwarded: self.plates_forwarded,
            sightings_not_kept: self.sightings_not_kept,
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
