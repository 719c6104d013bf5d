//! Live cameras: one `[[camera]]` table each, one thread each, running for
//! the life of the daemon:
//!
//! ```text
//! source (decode/camera.rs) → decode → schedule → detect → track → count ─┬→ window closed → MQTT counts
//!        ▲ reconnect with back-off on error, stall or end                 └→ faces, plates → outbox + MQTT events
//! ```
//!
//! Time on a camera is the box's clock: frame *t* is milliseconds since the
//! start of the window grid (windows are aligned to multiples of
//! `window_ms` since the Unix epoch, so a 60 s window is a wall-clock
//! minute). Window *i*'s message leaves with the first frame of window
//! *i + 1*; `people_count`/`vehicle_count` are the objects in the frame at
//! the window's start, the `*_per_interval` fields what passed in it — the
//! same rules as `/video` (API.md). A window in which the camera gave no
//! frame at all is not published.

mod gate;
mod health;
mod runner;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use wayside_vision::count::CountingLine;

use crate::decode::camera::CameraSource;
use crate::forward::Forwarder;
use crate::mqtt::{Mqtt, topic_level};
use crate::pipeline::Engine;
pub use health::Preview;
use health::{CameraHealth, StageLatency};

/// One `[[camera]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Its name in MQTT topics, metrics and forwarded sightings.
    pub name: String,
    /// `rtsp://…`, `v4l2:/dev/videoN`, `file:/path` (played in a loop) or
    /// `test:[pattern]` (decode/camera.rs).
    pub source: String,
    /// Length of a count window.
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// Counting line `"x1,y1,x2,y2"` in 0..1 frame coordinates; without one
    /// an object passes by travelling (API.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<CountingLine>,
    /// No frame for this long counts as a broken stream.
    #[serde(default = "default_stall_timeout_ms")]
    pub stall_timeout_ms: u64,
    /// First wait before opening the camera again; doubles to the max.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// How often the web page's picture of the camera is redrawn (an
    /// annotated JPEG of the latest analysed frame); 0 draws none.
    #[serde(default = "default_preview_ms")]
    pub preview_ms: u64,
}

fn default_window_ms() -> u64 {
    60_000
}
fn default_stall_timeout_ms() -> u64 {
    10_000
}
fn default_reconnect_min_ms() -> u64 {
    500
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_preview_ms() -> u64 {
    1_000
}

/// Checks every `[[camera]]`; errors name the camera and the field.
pub fn validate(cameras: &[CameraConfig]) -> Result<()> {
    let mut names = HashSet::new();
    for (i, c) in cameras.iter().enumerate() {
        let at = if c.name.is_empty() {
            format!("camera[{i}]")
        } else {
            format!("camera {:?}", c.name)
        };
        topic_level(&c.name).map_err(|e| anyhow::anyhow!("{at}: name: {e}"))?;
        if !names.insert(c.name.as_str()) {
            bail!("{at}: name: used by two cameras");
        }
        c.source
            .parse::<CameraSource>()
            .with_context(|| format!("{at}: source"))?;
        if !(500..=86_400_000).contains(&c.window_ms) {
            bail!(
                "{at}: window_ms: must be 500..=86400000, got {}",
                c.window_ms
            );
        }
        if !(1_000..=600_000).contains(&c.stall_timeout_ms) {
            bail!(
                "{at}: stall_timeout_ms: must be 1000..=600000, got {}",
                c.stall_timeout_ms
            );
        }
        if c.reconnect_min_ms == 0 || c.reconnect_min_ms > c.reconnect_max_ms {
            bail!("{at}: reconnect_min_ms: must be positive and at most reconnect_max_ms");
        }
        if c.preview_ms != 0 && !(100..=600_000).contains(&c.preview_ms) {
            bail!(
                "{at}: preview_ms: must be 0 (none) or 100..=600000, got {}",
                c.preview_ms
            );
        }
    }
    Ok(())
}

/// Where a camera's results go.
#[derive(Clone)]
pub struct Outputs {
    pub mqtt: Option<Mqtt>,
    pub forwarder: Forwarder,
}

/// The running cameras.
pub struct Cameras {
    health: Vec<Arc<CameraHealth>>,
    stages: Arc<StageLatency>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Cameras {
    /// One thread per camera; each opens its source itself, so a camera
    /// that is down at start is retried like one that goes down later.
    pub fn start(configs: &[CameraConfig], engine: Arc<Engine>, outputs: Outputs) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stages = Arc::new(StageLatency::default());
        let (mut health, mut threads) = (Vec::new(), Vec::new());
        for config in configs {
            let source: CameraSource = config.source.parse()?;
            let h = Arc::new(CameraHealth::new(config.name.clone(), source.to_string()));
            let camera = runner::Camera {
                config: config.clone(),
                source,
                engine: engine.clone(),
                outputs: outputs.clone(),
                health: h.clone(),
                stages: stages.clone(),
                stop: stop.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("camera-{}", config.name))
                .spawn(move || camera.run())
                .context("starting a camera thread")?;
            tracing::info!(camera = %config.name, "camera: started");
            health.push(h);
            threads.push(thread);
        }
        Ok(Self {
            health,
            stages,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// Asks every camera to stop and waits up to `budget` for them: a
    /// camera stops within a frame, but one stuck opening a dead host may
    /// take its whole open timeout, and the process ends anyway.
    pub fn stop(&self, budget: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + budget;
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        while Instant::now() < deadline && !threads.iter().all(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stuck = threads.iter().filter(|t| !t.is_finished()).count();
        if stuck > 0 {
            tracing::warn!("{stuck} camera(s) did not stop in time; they end with the process");
        }
    }

    pub fn all_up(&self) -> bool {
        self.health.iter().all(|h| h.is_up())
    }

    /// For `GET /cameras`: one object per camera, in config order.
    pub fn views(&self) -> Vec<serde_json::Value> {
        self.health.iter().map(|h| h.view()).collect()
    }

    /// The latest annotated frame of camera `name`.
    pub fn preview(&self, name: &str) -> Option<Preview> {
        self.health.iter().find(|h| h.name == name)?.preview()
    }

    /// For `/healthz`: one object per camera.
    pub fn health(&self) -> Vec<serde_json::Value> {
        self.health.iter().map(|h| h.json()).collect()
    }

    pub fn write_prometheus(&self, out: &mut String) {
        if self.health.is_empty() {
            return;
        }
        health::write_prometheus(&self.health, out);
        self.stages.write_prometheus(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cameras(text: &str) -> Result<Vec<CameraConfig>> {
        #[derive(Deserialize)]
        struct File {
            camera: Vec<CameraConfig>,
        }
        let f: File = toml::from_str(text)?;
        validate(&f.camera)?;
        Ok(f.camera)
    }

    #[test]
    fn cameras_parse_with_defaults() {
        let c = cameras(
            "[[camera]]\nname = \"north\"\nsource = \"rtsp://cam/1\"\nline = \"0,0.5,1,0.5\"\n\
             [[camera]]\nname = \"lab\"\nsource = \"test:ball\"\nwindow_ms = 2000\n",
        )
        .unwrap();
        assert_eq!(c[0].window_ms, 60_000);
        assert!(c[0].line.is_some());
        assert_eq!(c[1].window_ms, 2000);
    }

    #[test]
    fn errors_name_the_camera_and_field() {
        for (text, want) in [
            ("name = \"a b\"\nsource = \"test:\"", "camera \"a b\": name"),
            ("name = \"\"\nsource = \"test:\"", "camera[0]: name"),
            (
                "name = \"n\"\nsource = \"http://x\"",
                "camera \"n\": source",
            ),
            (
                "name = \"n\"\nsource = \"test:\"\nwindow_ms = 0",
                "camera \"n\": window_ms",
            ),
            (
                "name = \"n\"\nsource = \"test:\"\nline = \"0,0,2,2\"",
                "line",
            ),
            (
                "name = \"n\"\nsource = \"test:\"\nwindw_ms = 1",
                "unknown field",
            ),
            (
                "name = \"n\"\nsource = \"test:\"\npreview_ms = 5",
                "camera \"n\": preview_ms",
            ),
        ] {
            let e = cameras(&format!("[[camera]]\n{text}\n")).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
        let e = cameras(
            "[[camera]]\nname = \"n\"\nsource = \"test:\"\n[[camera]]\nname = \"n\"\nsource = \"test:\"\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("used by two cameras"), "{e:#}");
    }
}
