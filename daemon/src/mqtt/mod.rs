//! MQTT telemetry (API.md, "MQTT"): the sink for per-window counts, the
//! box's status and sightings. The topic tree, one kind per level:
//!
//! | topic | payload | QoS | retained |
//! | --- | --- | --- | --- |
//! | `wayside/<device>/status` | `online`, or `offline` (last will, and on a clean stop) | 1 | yes |
//! | `wayside/<device>/<camera>/counts` | one JSON object per closed window (camera/mod.rs) | 1 | no |
//! | `wayside/<device>/<camera>/events` | one JSON object per face or plate sighting, no vectors | 1 | no |
//!
//! One task owns the connection ([`connection`]); producers (camera
//! threads) only push into a bounded queue, so a slow or absent broker
//! never blocks a camera. While the broker is away messages wait in that
//! queue, oldest dropped past `max_buffered`; messages that were in flight
//! when the connection dropped go back to its front. Delivery is at least
//! once while the box runs; MQTT is not the durable path (the outbox is).

mod connection;
mod queue;

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use queue::BoundedQueue;

/// `[mqtt]`: where telemetry goes. Without `url` there is no MQTT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:1883]`, or `mqtts://host[:8883]` for TLS.
    pub url: Option<String>,
    /// This box's name in the topics; give every box its own.
    pub device: String,
    /// Defaults to `wayside-<device>`. Two clients with one id knock each
    /// other off the broker.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA(s) that sign the broker's certificate (mqtts://);
    /// the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Seconds between pings; the broker declares the box gone (and
    /// publishes the last will) after 1.5 times this without a word.
    pub keepalive_s: u64,
    /// Messages kept while the broker is away; the oldest go first.
    pub max_buffered: usize,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            device: "wayside".into(),
            client_id: None,
            username: None,
            password: None,
            ca_file: None,
            keepalive_s: 30,
            max_buffered: 10_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
        }
    }
}

/// A broker address from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttConfig {
    pub fn validate(&self) -> Result<()> {
        if let Some(url) = &self.url {
            parse_url(url).map_err(|e| anyhow::anyhow!("mqtt.url: {e}"))?;
        }
        if let Err(e) = topic_level(&self.device) {
            bail!("mqtt.device: {e}");
        }
        if self.client_id.as_deref().is_some_and(str::is_empty) {
            bail!("mqtt.client_id: must not be empty");
        }
        if self.password.is_some() && self.username.is_none() {
            bail!("mqtt.password: needs mqtt.username");
        }
        if let Some(ca) = &self.ca_file {
            if self
                .url
                .as_deref()
                .is_some_and(|u| !parse_url(u).is_ok_and(|b| b.tls))
            {
                bail!("mqtt.ca_file: only used with an mqtts:// url");
            }
            if !ca.is_file() {
                bail!("mqtt.ca_file: {} is not a readable file", ca.display());
            }
        }
        // rumqttc panics on a keep-alive under a second; MQTT's field is u16.
        if !(5..=3600).contains(&self.keepalive_s) {
            bail!(
                "mqtt.keepalive_s: must be 5..=3600, got {}",
                self.keepalive_s
            );
        }
        if !(1..=1_000_000).contains(&self.max_buffered) {
            bail!(
                "mqtt.max_buffered: must be 1..=1000000, got {}",
                self.max_buffered
            );
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            bail!("mqtt.reconnect_min_ms: must be positive and at most mqtt.reconnect_max_ms");
        }
        Ok(())
    }

    fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("wayside-{}", self.device))
    }
}

fn parse_url(url: &str) -> Result<Broker, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not scheme://host[:port]"))?;
    let (tls, default_port) = match scheme {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "ssl" => (true, 8883),
        _ => return Err(format!("scheme {scheme:?}: use mqtt:// or mqtts://")),
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "{url:?}: only scheme://host[:port] (credentials go in mqtt.username/password)"
        ));
    }
    // "[::1]:1883", "host:1883", "host"
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?;
            (h, port)
        }
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

/// A name used as one topic level (device, camera): no separators or
/// wildcards, and kept to characters every broker and dashboard takes.
pub fn topic_level(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "{name:?} may only have letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// One message for the broker.
#[derive(Debug, Clone)]
struct Message {
    topic: String,
    payload: Vec<u8>,
}

/// What the connection task and the producers share.
struct Shared {
    device: String,
    queue: Mutex<BoundedQueue<Message>>,
    /// Wakes the connection task when a message is queued.
    queued: Notify,
    connected: AtomicBool,
    /// The latest connection failure, for `/healthz`.
    last_error: Mutex<Option<String>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    /// Acknowledged by the broker.
    published: AtomicU64,
    dropped: AtomicU64,
    connects: AtomicU64,
    connect_errors: AtomicU64,
    inflight: AtomicU64,
}

/// The handle producers publish through; cheap to clone.
#[derive(Clone)]
pub struct Mqtt {
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    /// The connection task, taken by [`Mqtt::shutdown`].
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Mqtt {
    /// Starts the connection task on the current runtime; `None` when
    /// `[mqtt]` has no url.
    pub fn start(config: &MqttConfig) -> Result<Option<Mqtt>> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let broker = parse_url(url).map_err(|e| anyhow::anyhow!("mqtt.url: {e}"))?;
        let shared = Arc::new(Shared {
            device: config.device.clone(),
            queue: Mutex::new(BoundedQueue::new(config.max_buffered)),
            queued: Notify::new(),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
            stats: Stats::default(),
        });
        let stop = Arc::new(Notify::new());
        let options = connection::options(config, &broker)?;
        let task = tokio::spawn(connection::run(
            options,
            shared.clone(),
            stop.clone(),
            Duration::from_millis(config.reconnect_min_ms),
            Duration::from_millis(config.reconnect_max_ms),
        ));
        tracing::info!(
            "mqtt: publishing to {}:{}{} as device {:?}",
            broker.host,
            broker.port,
            if broker.tls { " (TLS)" } else { "" },
            config.device
        );
        Ok(Some(Mqtt {
            shared,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }))
    }

    /// One closed window of `camera` (QoS 1).
    pub fn publish_counts(&self, camera: &str, payload: &serde_json::Value) {
        self.push(
            format!("wayside/{}/{camera}/counts", self.shared.device),
            payload,
        );
    }

    /// A sighting on `camera` (QoS 1): the hook for the face and plate
    /// stages. The payload carries no vectors.
    pub fn publish_event(&self, camera: &str, payload: &serde_json::Value) {
        self.push(
            format!("wayside/{}/{camera}/events", self.shared.device),
            payload,
        );
    }

    fn push(&self, topic: String, payload: &serde_json::Value) {
        let message = Message {
            topic,
            payload: payload.to_string().into_bytes(),
        };
        let dropped = lock(&self.shared.queue).push(message);
        if dropped > 0 {
            self.shared
                .stats
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.shared.queued.notify_one();
    }

    /// Publishes `offline` and disconnects cleanly (so the broker does not
    /// also send the will), within `budget`.
    pub async fn shutdown(&self, budget: Duration) {
        let Some(task) = lock(&self.task).take() else {
            return;
        };
        self.stop.notify_one();
        if tokio::time::timeout(budget, task).await.is_err() {
            tracing::warn!(
                "mqtt: no clean disconnect in time; the broker's last will says offline"
            );
        }
    }

    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// For `/healthz`.
    pub fn health(&self) -> serde_json::Value {
        json!({
            "connected": self.connected(),
            "buffered": lock(&self.shared.queue).len(),
            "last_error": *lock(&self.shared.last_error),
        })
    }

    /// For `/metrics`.
    pub fn write_prometheus(&self, out: &mut String) {
        let s = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let buffered = lock(&self.shared.queue).len();
        let lines = [
            (
                "connected",
                "gauge",
                "1 while connected to the broker.",
                u64::from(self.connected()),
            ),
            (
                "buffered",
                "gauge",
                "Messages waiting for the broker.",
                buffered as u64,
            ),
            (
                "inflight",
                "gauge",
                "Messages sent, not yet acknowledged.",
                get(&s.inflight),
            ),
            (
                "published_total",
                "counter",
                "Messages the broker acknowledged.",
                get(&s.published),
            ),
            (
                "dropped_total",
                "counter",
                "Messages dropped, oldest first, past mqtt.max_buffered.",
                get(&s.dropped),
            ),
            (
                "connects_total",
                "counter",
                "Connections the broker accepted.",
                get(&s.connects),
            ),
            (
                "connect_errors_total",
                "counter",
                "Failed connections and dropped connections.",
                get(&s.connect_errors),
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = write!(
                out,
                "# HELP wayside_mqtt_{name} {help}\n# TYPE wayside_mqtt_{name} {kind}\nwayside_mqtt_{name} {value}\n"
            );
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MqttConfig> {
        let c: MqttConfig = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn urls_parse() {
        let b = |u| parse_url(u).unwrap();
        assert_eq!(
            b("mqtt://broker.lan"),
            Broker {
                host: "broker.lan".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(
            b("mqtts://10.0.0.2:8884/"),
            Broker {
                host: "10.0.0.2".into(),
                port: 8884,
                tls: true
            }
        );
        assert_eq!(b("mqtt://[::1]:1999").host, "::1");
        for bad in [
            "broker:1883",
            "http://x",
            "mqtt://",
            "mqtt://u:p@h",
            "mqtt://h:99999",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse("").is_ok());
        for (text, field) in [
            ("url = \"http://x\"", "mqtt.url"),
            ("device = \"a/b\"", "mqtt.device"),
            ("keepalive_s = 0", "mqtt.keepalive_s"),
            ("password = \"x\"", "mqtt.password"),
            (
                "url = \"mqtt://h\"\nca_file = \"/nonexistent\"",
                "mqtt.ca_file",
            ),
            ("max_buffered = 0", "mqtt.max_buffered"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(format!("{e:#}").contains(field), "{text}: {e:#}");
        }
    }
}
