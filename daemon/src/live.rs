//! The live side of `wayside serve`: the cameras and the MQTT connection,
//! started beside the HTTP API, read by `/healthz` and `/metrics`, and
//! stopped after it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::camera::{Cameras, Outputs, Preview};
use crate::config::Config;
use crate::forward::Forwarder;
use crate::mqtt::Mqtt;
use crate::pipeline::Engine;

/// How long the MQTT connection may take to say `offline` at shutdown.
const MQTT_STOP_BUDGET: Duration = Duration::from_secs(3);

/// How long cameras may take to stop.
const CAMERA_STOP_BUDGET: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Live {
    cameras: Option<Cameras>,
    mqtt: Option<Mqtt>,
}

impl Live {
    /// Starts MQTT (on the current runtime) and one thread per camera.
    pub fn start(config: &Config, engine: Arc<Engine>, forwarder: Forwarder) -> Result<Live> {
        let mqtt = Mqtt::start(&config.mqtt)?;
        let cameras = Cameras::start(
            &config.cameras,
            engine,
            Outputs {
                mqtt: mqtt.clone(),
                forwarder,
            },
        )?;
        Ok(Live {
            cameras: Some(cameras),
            mqtt,
        })
    }

    /// Adds `cameras` and `mqtt` to the `/healthz` body; `status` becomes
    /// `degraded` while a camera is down or the broker is away (the HTTP
    /// API itself still answers, hence still 200).
    pub fn add_health(&self, body: &mut serde_json::Value) {
        let mut degraded = false;
        if let Some(c) = &self.cameras {
            degraded |= !c.all_up();
            body["cameras"] = json!(c.health());
        }
        if let Some(m) = &self.mqtt {
            degraded |= !m.connected();
            body["mqtt"] = m.health();
        }
        if degraded {
            body["status"] = json!("degraded");
        }
    }

    /// For `GET /cameras` (none when no camera is configured).
    pub fn cameras(&self) -> Vec<serde_json::Value> {
        self.cameras
            .as_ref()
            .map(Cameras::views)
            .unwrap_or_default()
    }

    pub fn preview(&self, camera: &str) -> Option<Preview> {
        self.cameras.as_ref()?.preview(camera)
    }

    pub fn write_prometheus(&self, out: &mut String) {
        if let Some(c) = &self.cameras {
            c.write_prometheus(out);
        }
        if let Some(m) = &self.mqtt {
            m.write_prometheus(out);
        }
    }

    /// Cameras first, so that nothing is published after the status says
    /// offline; then a clean MQTT disconnect.
    pub async fn stop(&self) {
        if let Some(c) = &self.cameras {
            tokio::task::block_in_place(|| c.stop(CAMERA_STOP_BUDGET));
        }
        if let Some(m) = &self.mqtt {
            m.shutdown(MQTT_STOP_BUDGET).await;
        }
    }
}
