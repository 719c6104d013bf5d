//! One camera's thread: open the source, analyse frames until the stream
//! breaks, wait, open it again — until the daemon stops. Detection,
//! tracking and counting persist across reconnects, so a track that
//! survives a short outage is not counted twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::json;
use wayside_vision::annotate::Overlay;
use wayside_vision::count::{Counter, FrameCounts};
use wayside_vision::detect::DetectorSession;

use super::gate::Gate;
use super::health::{CameraHealth, Preview, StageLatency};
use super::{CameraConfig, Outputs};
use crate::backoff::Backoff;
use crate::decode::camera::CameraSource;
use crate::decode::{DecodedFrame, Decoder, Tally};
use crate::forward::Sightings;
use crate::pipeline::analyse::{Analysed, Analyser, Stage, StageClock, annotated};
use crate::pipeline::faces::FaceSighting;
use crate::pipeline::plates::PlateSighting;
use crate::pipeline::schedule::Schedule;
use crate::pipeline::{Engine, encode_jpeg};

/// How often a wait between reconnects looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

pub(super) struct Camera {
    pub config: CameraConfig,
    pub source: CameraSource,
    pub engine: Arc<Engine>,
    pub outputs: Outputs,
    pub health: Arc<CameraHealth>,
    pub stages: Arc<StageLatency>,
    pub stop: Arc<AtomicBool>,
}

/// How a stream ended.
enum End {
    /// The daemon is stopping.
    Stopped,
    /// End of stream (a file's end; a live source should not end).
    Ended,
    Failed(String),
}

/// The box's clock on the window grid: `now_ms` counts from the start of
/// the window the camera started in, windows are aligned to multiples of
/// `window_ms` since the Unix epoch. Monotonic, so a clock step (NTP after
/// boot) does not break the tracker.
#[derive(Clone, Copy)]
struct WindowClock {
    origin_ms: u64,
    anchor: Instant,
    offset_ms: u64,
}

impl WindowClock {
    fn new(window_ms: u64) -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let origin_ms = epoch_ms - epoch_ms % window_ms;
        Self {
            origin_ms,
            anchor: Instant::now(),
            offset_ms: epoch_ms - origin_ms,
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    fn ms_at(&self, at: Instant) -> u64 {
        self.offset_ms + at.saturating_duration_since(self.anchor).as_millis() as u64
    }

    /// Unix time in ms of camera time `t_ms`.
    fn unix_ms(&self, t_ms: u64) -> u64 {
        self.origin_ms + t_ms
    }
}

/// The analysis state of one camera, kept across reconnects.
struct Analysis<'e> {
    /// A camera detects inline: it analyses the newest frame, never a queue.
    detector: DetectorSession<'e>,
    analyser: Analyser<'e>,
    /// Built for the first stream's frame size; rebuilt if a reconnect
    /// brings another size (the line is in pixels).
    counter: Option<(Counter, (u32, u32))>,
    sightings: Sightings,
    schedule: Schedule,
    /// The sample of the open window: its index and per-frame counts.
    pending: Option<(u64, FrameCounts)>,
    /// Objects that passed since the daemon started, for the preview.
    passed: (u32, u32),
    /// When the preview was last drawn.
    previewed: Option<Instant>,
}

impl Camera {
    pub fn run(self) {
        let engine = self.engine.clone();
        let clock = WindowClock::new(self.config.window_ms);
        let mut analysis = match self.analysis(&engine, &clock) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(camera = %self.config.name, "camera cannot start: {e:#}");
                self.health.down(format!("cannot start: {e:#}"));
                return;
            }
        };
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_min_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        let stall = Duration::from_millis(self.config.stall_timeout_ms);
        while !self.stopping() {
            let end = match Decoder::open_camera(&self.source, stall, engine.decode_threads) {
                Ok(mut decoder) => {
                    backoff.reset();
                    tracing::info!(camera = %self.config.name, source = %self.source, "camera: streaming");
                    self.stream(&mut decoder, &mut analysis, &clock)
                }
                Err(e) => End::Failed(format!("cannot open {}: {e}", self.source)),
            };
            let why = match end {
                End::Stopped => break,
                End::Ended if self.source.loops() => {
                    self.health.loops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                End::Ended => format!("{} ended", self.source),
                End::Failed(why) => why,
            };
            let delay = backoff.next_delay();
            tracing::warn!(camera = %self.config.name, "camera down: {why}; reconnecting in {delay:.1?}");
            self.health.down(why);
            if !self.sleep(delay) {
                break;
            }
            self.health.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(camera = %self.config.name, "camera: stopped");
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d` unless asked to stop; false when stopping.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(STOP_POLL.min(until - Instant::now()));
        }
        !self.stopping()
    }

    fn analysis<'e>(&self, engine: &'e Engine, clock: &WindowClock) -> Result<Analysis<'e>> {
        let started = UNIX_EPOCH + Duration::from_millis(clock.origin_ms);
        Ok(Analysis {
            detector: engine.detector.session(),
            analyser: Analyser::new(engine, true)?,
            counter: None,
            sightings: self
                .outputs
                .forwarder
                .for_source(self.config.name.clone(), started),
            // No fps: a live frame stands for its own instant only.
            schedule: Schedule::new(self.config.window_ms, engine.min_track_fps, None),
            pending: None,
            passed: (0, 0),
            previewed: None,
        })
    }

    fn stream(&self, decoder: &mut Decoder, a: &mut Analysis, clock: &WindowClock) -> End {
        // A 25 fps camera tracked 5 times a second converts only the frames
        // it tracks, not all 25: the others are dropped as decoded. A frame
        // is timed by when it is ready for this thread, the instant the gate
        // judged it by, so the two agree.
        let gate = Arc::new(Mutex::new(Gate::new(a.schedule.clone())));
        let (decoded, coded, at) = (gate.clone(), gate.clone(), *clock);
        decoder.skip_unused_with(
            move |f| lock(&decoded).admit(at.ms_at(f.ready_at)),
            move |f| lock(&coded).due(at.ms_at(f.ready_at)),
        );
        let mut counted = Tally::default();
        let mut last_t = 0;
        let mut analysis_took = Duration::ZERO;
        loop {
            if self.stopping() {
                return End::Stopped;
            }
            let waited = Instant::now();
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return End::Ended,
                Err(e) => return End::Failed(format!("{}: {e}", self.source)),
            };
            (&*self.stages).record(Stage::Decode, waited.elapsed());
            let tally = decoder.tally();
            self.health.frame(Tally {
                decoded: tally.decoded - counted.decoded,
                converted: tally.converted - counted.converted,
                undecoded: tally.undecoded - counted.undecoded,
            });
            counted = tally;
            // Never backwards, whatever the sink's clock did.
            let t = clock.ms_at(frame.ready_at()).max(last_t);
            last_t = t;
            let slot = a.schedule.slot(t);
            lock(&gate).took(t, &a.schedule);
            if !slot.track {
                continue;
            }
            // Nothing that would be ready before this frame's analysis ends
            // (as long as the last one took) is converted; the next frame
            // ready after it is, up to a frame later. A file camera's frames
            // are judged ahead of their time, so one due after the analysis
            // ends is converted while it runs.
            let started = Instant::now();
            lock(&gate).busy_until(clock.ms_at(started + analysis_took));
            if let Err(e) = self.analyse(a, &frame, t, slot.samples.end, clock) {
                return End::Failed(format!("analysis: {e:#}"));
            }
            analysis_took = started.elapsed();
            lock(&gate).busy_until(0);
        }
    }

    /// One tracked frame. `next_sample` is one past the sample this frame
    /// stands for, if any (several at once only after an outage: the
    /// windows without frames are skipped).
    fn analyse(
        &self,
        a: &mut Analysis,
        frame: &DecodedFrame,
        t: u64,
        next_sample: usize,
        clock: &WindowClock,
    ) -> Result<()> {
        let size = (frame.width(), frame.height());
        if a.counter.as_ref().is_none_or(|(_, s)| *s != size) {
            if a.counter.is_some() {
                tracing::warn!(camera = %self.config.name, "camera: frame size changed to {}x{}; counting starts over", size.0, size.1);
            }
            let e = &self.engine;
            let mut counter =
                Counter::new(e.count.clone(), e.classes.clone(), self.config.window_ms)?;
            if let Some(line) = self.config.line {
                counter = counter.with_line(line.to_pixels(size.0, size.1));
            }
            a.counter = Some((counter, size));
        }
        let (counter, _) = a.counter.as_mut().context("counter set above")?;
        let mut stages = &*self.stages;
        let detections = stages.time(Stage::Detect, || a.detector.detect(frame.yuv()))?;
        let mut found = a
            .analyser
            .frame(frame, t, detections, counter, &mut stages)?;
        for face in std::mem::take(&mut found.faces) {
            stages.time(Stage::Faces, || self.face(&a.sightings, face, clock));
        }
        for plate in std::mem::take(&mut found.plates) {
            stages.time(Stage::Plates, || self.plate(&a.sightings, plate, clock));
        }
        self.health.frames_analysed.fetch_add(1, Ordering::Relaxed);
        self.health.analysed.tick();
        let (pedestrians, vehicles) = found.passed_by_kind();
        a.passed.0 = a.passed.0.saturating_add(pedestrians);
        a.passed.1 = a.passed.1.saturating_add(vehicles);

        // Objects in the frame are only needed for a preview or a window's
        // start, not on every frame.
        let preview_every = Duration::from_millis(self.config.preview_ms);
        let preview_due =
            self.config.preview_ms > 0 && a.previewed.is_none_or(|p| p.elapsed() >= preview_every);
        let sample = (next_sample as u64).checked_sub(1);
        let starts_window = sample.filter(|s| a.pending.is_none_or(|(p, _)| p < *s));
        if !preview_due && starts_window.is_none() {
            return Ok(());
        }
        let now = counter.frame_counts(&found.detections);
        if preview_due {
            a.previewed = Some(Instant::now());
            stages.time(Stage::Annotate, || {
                self.preview(frame, &found, now, a.passed, clock)
            })?;
        }
        if let Some(index) = starts_window
            && let Some((closed, at_start)) = a.pending.replace((index, now))
        {
            self.publish_window(counter, closed, at_start, clock);
        }
        Ok(())
    }

    /// The page's picture of the camera: this frame annotated, as a JPEG.
    fn preview(
        &self,
        frame: &DecodedFrame,
        found: &Analysed,
        now: FrameCounts,
        passed: (u32, u32),
        clock: &WindowClock,
    ) -> Result<()> {
        let line = self
            .config
            .line
            .map(|l| l.to_pixels(frame.width(), frame.height()));
        let img = annotated(
            frame.rgb_image(),
            &Overlay {
                tracks: &found.tracks,
                line: line.as_ref(),
                pedestrians_now: now.pedestrians,
                vehicles_now: now.vehicles,
                pedestrians_passed: passed.0,
                vehicles_passed: passed.1,
            },
        );
        let jpeg = encode_jpeg(&img, self.engine.jpeg_quality)?;
        self.health.set_preview(Preview {
            jpeg: jpeg.into(),
            unix_ms: clock.unix_ms(clock.now_ms()),
            counts: now,
        });
        Ok(())
    }

    /// Window `index` has closed: its message, and the counter forgets it.
    fn publish_window(
        &self,
        counter: &mut Counter,
        index: u64,
        at_start: FrameCounts,
        clock: &WindowClock,
    ) {
        let window_ms = self.config.window_ms;
        let w = counter.take_window(index);
        let mut payload = json!({
            "ts": clock.unix_ms(index * window_ms),
            "window_ms": window_ms,
            "people_count": at_start.pedestrians,
            "vehicle_count": at_start.vehicles,
            "pedestrians_per_interval": w.pedestrians,
            "vehicles_per_interval": w.vehicles,
            "per_class": w.per_class,
        });
        if self.config.line.is_some() {
            payload["line_crossings"] = json!({ "in": w.line_in, "out": w.line_out });
        }
        tracing::debug!(camera = %self.config.name, "window {index}: {payload}");
        // Kept for the page first, so it is never behind what MQTT got.
        self.health.set_last_window(payload.clone());
        if let Some(mqtt) = &self.outputs.mqtt {
            mqtt.publish_counts(&self.config.name, &payload);
        }
    }

    /// A vehicle's voted plate: the reading and picture to the outbox, the
    /// reading to MQTT.
    fn plate(&self, sightings: &Sightings, plate: PlateSighting, clock: &WindowClock) {
        let event = json!({
            "kind": "plate",
            "ts": clock.unix_ms(plate.t_ms),
            "track_id": plate.track_id,
            "licence_plate": plate.text,
            "confidence": plate.confidence,
        });
        if sightings.plate(plate).kept()
            && let Some(mqtt) = &self.outputs.mqtt
        {
            mqtt.publish_event(&self.config.name, &event);
        }
    }

    /// A kept face: the vector and picture to the outbox, a note of the
    /// sighting (no vector) to MQTT.
    fn face(&self, sightings: &Sightings, face: FaceSighting, clock: &WindowClock) {
        let event = json!({
            "kind": "face",
            "ts": clock.unix_ms(face.t_ms),
            "track_id": face.track_id,
        });
        if sightings.face(face).kept()
            && let Some(mqtt) = &self.outputs.mqtt
        {
            mqtt.publish_event(&self.config.name, &event);
        }
    }
}

/// The gate, even if a thread panicked holding it: its state is a schedule
/// and a time, whole after any step.
fn lock(gate: &Mutex<Gate>) -> MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}
