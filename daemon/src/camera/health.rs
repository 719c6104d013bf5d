//! What a camera thread tells the HTTP side: up or down and why, when the
//! last frame came, counters and rates for `/metrics`, the per-stage
//! latency histograms shared by all cameras, and for the web page the
//! latest annotated frame and window.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::json;
use wayside_vision::count::FrameCounts;

use crate::decode::Tally;
use crate::metrics::{Histogram, RateMeter};
use crate::pipeline::analyse::{Stage, StageClock};

/// Per-frame latency of each stage, over all cameras.
#[derive(Debug, Default)]
pub struct StageLatency {
    /// Waiting for the next decoded frame (mostly the camera's own pace).
    pub decode: Histogram,
    pub detect: Histogram,
    /// Tracking and counting.
    pub track: Histogram,
    pub faces: Histogram,
    pub plates: Histogram,
    /// Drawing and encoding the page's preview.
    pub annotate: Histogram,
}

/// A camera thread records into the shared histograms through a reference.
impl StageClock for &StageLatency {
    fn record(&mut self, stage: Stage, took: Duration) {
        match stage {
            Stage::Decode => &self.decode,
            Stage::Detect => &self.detect,
            Stage::Track => &self.track,
            Stage::Faces => &self.faces,
            Stage::Plates => &self.plates,
            Stage::Annotate => &self.annotate,
        }
        .observe(took);
    }
}

impl StageLatency {
    pub fn write_prometheus(&self, out: &mut String) {
        let name = "wayside_camera_stage_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Per-frame time of each stage of the camera pipelines.\n# TYPE {name} histogram"
        );
        for (stage, h) in [
            ("decode", &self.decode),
            ("detect", &self.detect),
            ("track", &self.track),
            ("faces", &self.faces),
            ("plates", &self.plates),
            ("annotate", &self.annotate),
        ] {
            h.write(out, name, &format!("stage=\"{stage}\""));
        }
    }
}

#[derive(Debug)]
struct Status {
    up: bool,
    /// Why it is down (or was last down).
    error: Option<String>,
    last_frame: Option<Instant>,
}

/// The latest annotated frame of a camera, for the web page.
#[derive(Debug, Clone)]
pub struct Preview {
    pub jpeg: Bytes,
    /// When the frame was analysed, Unix ms.
    pub unix_ms: u64,
    /// Objects in that frame.
    pub counts: FrameCounts,
}

#[derive(Debug)]
pub struct CameraHealth {
    pub name: String,
    /// The source as safe to show (no RTSP password).
    pub source: String,
    status: Mutex<Status>,
    pub decoded: RateMeter,
    pub analysed: RateMeter,
    pub frames_decoded: AtomicU64,
    /// Frames dropped before decoding (`decode/disposable.rs`).
    frames_undecoded: AtomicU64,
    /// Frames converted to RGB for the camera's thread (the appsink may
    /// still drop one when analysis falls behind).
    frames_converted: AtomicU64,
    pub frames_analysed: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    pub loops: AtomicU64,
    windows: AtomicU64,
    preview: Mutex<Option<Preview>>,
    /// The last window's MQTT payload.
    last_window: Mutex<Option<serde_json::Value>>,
}

impl CameraHealth {
    pub fn new(name: String, source: String) -> Self {
        Self {
            name,
            source,
            status: Mutex::new(Status {
                up: false,
                error: Some("starting".into()),
                last_frame: None,
            }),
            decoded: RateMeter::default(),
            analysed: RateMeter::default(),
            frames_decoded: AtomicU64::new(0),
            frames_undecoded: AtomicU64::new(0),
            frames_converted: AtomicU64::new(0),
            frames_analysed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            loops: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            preview: Mutex::new(None),
            last_window: Mutex::new(None),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame reached the camera's thread; since the last one did, the
    /// source delivered the frames of `new`: some dropped before decoding,
    /// the others decoded, and some of those converted (the rest were
    /// dropped as decoded).
    pub fn frame(&self, new: Tally) {
        self.frames_decoded
            .fetch_add(new.decoded, Ordering::Relaxed);
        self.frames_undecoded
            .fetch_add(new.undecoded, Ordering::Relaxed);
        self.frames_converted
            .fetch_add(new.converted, Ordering::Relaxed);
        self.decoded.add(new.decoded + new.undecoded);
        let mut s = self.status();
        s.last_frame = Some(Instant::now());
        if !s.up {
            s.up = true;
            s.error = None;
        }
    }

    pub fn down(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.status();
        s.up = false;
        s.error = Some(error);
    }

    pub fn is_up(&self) -> bool {
        self.status().up
    }

    fn last_frame_age(&self) -> Option<Duration> {
        self.status().last_frame.map(|t| t.elapsed())
    }

    pub fn set_preview(&self, preview: Preview) {
        *self.preview.lock().unwrap_or_else(|e| e.into_inner()) = Some(preview);
    }

    pub fn preview(&self) -> Option<Preview> {
        self.preview
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_last_window(&self, payload: serde_json::Value) {
        self.windows.fetch_add(1, Ordering::Relaxed);
        *self.last_window.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
    }

    /// For `GET /cameras`: the health, the latest frame's counts and the
    /// last closed window.
    pub fn view(&self) -> serde_json::Value {
        let mut v = self.json();
        let preview = self.preview();
        v["preview"] = match &preview {
            Some(p) => json!({
                "url": format!("/cameras/{}/preview.jpg", self.name),
                "unix_ms": p.unix_ms,
                "people_count": p.counts.pedestrians,
                "vehicle_count": p.counts.vehicles,
            }),
            None => serde_json::Value::Null,
        };
        v["last_window"] = self
            .last_window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        v
    }

    /// For `/healthz`.
    pub fn json(&self) -> serde_json::Value {
        let s = self.status();
        json!({
            "name": self.name,
            "source": self.source,
            "up": s.up,
            "last_frame_age_ms": s.last_frame.map(|t| t.elapsed().as_millis() as u64),
            "error": s.error,
            "reconnects": self.reconnects.load(Ordering::Relaxed),
            "fps": self.analysed.rate(),
        })
    }
}

/// The per-camera families of `/metrics`.
pub fn write_prometheus(cameras: &[std::sync::Arc<CameraHealth>], out: &mut String) {
    fn get(a: &AtomicU64) -> f64 {
        a.load(Ordering::Relaxed) as f64
    }
    type Value = fn(&CameraHealth) -> f64;
    let families: [(&str, &str, &str, Value); 12] = [
        ("up", "gauge", "1 while the camera delivers frames.", |c| {
            f64::from(u8::from(c.is_up()))
        }),
        (
            "last_frame_age_seconds",
            "gauge",
            "Time since the last frame (-1: none yet).",
            |c| c.last_frame_age().map_or(-1.0, |d| d.as_secs_f64()),
        ),
        (
            "fps",
            "gauge",
            "Frames analysed per second (last 5 s).",
            |c| c.analysed.rate(),
        ),
        (
            "decoded_fps",
            "gauge",
            "Frames taken from the source per second (last 5 s).",
            |c| c.decoded.rate(),
        ),
        (
            "frames_decoded_total",
            "counter",
            "Frames decoded from the source.",
            |c| get(&c.frames_decoded),
        ),
        (
            "frames_undecoded_total",
            "counter",
            "Frames dropped before decoding: no other frame needed them, and the schedule had no use for them.",
            |c| get(&c.frames_undecoded),
        ),
        (
            "frames_converted_total",
            "counter",
            "Frames converted to RGB for analysis; the others were dropped as decoded, as the schedule had no use for them.",
            |c| get(&c.frames_converted),
        ),
        (
            "frames_analysed_total",
            "counter",
            "Frames detected, tracked and counted.",
            |c| get(&c.frames_analysed),
        ),
        (
            "reconnects_total",
            "counter",
            "Times the camera was opened again after a failure.",
            |c| get(&c.reconnects),
        ),
        (
            "errors_total",
            "counter",
            "Failures to open, and streams that broke or stalled.",
            |c| get(&c.errors),
        ),
        (
            "loops_total",
            "counter",
            "Times a file source reached its end and started again.",
            |c| get(&c.loops),
        ),
        (
            "windows_total",
            "counter",
            "Count windows closed and published.",
            |c| get(&c.windows),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(
            out,
            "# HELP wayside_camera_{name} {help}\n# TYPE wayside_camera_{name} {kind}"
        );
        for c in cameras {
            let _ = writeln!(
                out,
                "wayside_camera_{name}{{camera=\"{}\"}} {}",
                c.name,
                value(c)
            );
        }
    }
}
