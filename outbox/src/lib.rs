//! The durable outbox: how the edge daemon forwards face and plate records
//! to the data API (shared/API.md, "Forwarding") without losing what it
//! accepted through a crash, a restart, a power cut or a data API outage.
//!
//! ```text
//! pipeline ──enqueue()──▶ outbox-db thread ──▶ <dir>/outbox.db (SQLite, WAL, FULL)
//!                          ▲      (group commit, bound, drop oldest)
//!                          │
//!                    forwarder task ──POST /media, /faces, /plates──▶ wayside-data
//! ```
//!
//! - `enqueue` returns once the record and its image are committed and
//!   fsynced: "accepted" means it survives a crash or power cut.
//! - The forwarder (`forward.rs`) sends the oldest pending record, removes
//!   it on 2xx, retries transient failures with jittered exponential
//!   back-off and dead-letters permanent ones. Delivery is at least once; the
//!   sender-chosen `id` makes the data API store each record once.
//! - The disk use is bounded (`max_records`, `max_bytes`); past the bound
//!   the oldest records are dropped, logged and counted (`store.rs`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), wayside_outbox::OutboxError> {
//! use wayside_outbox::{Outbox, OutboxConfig, Record, record_id};
//! let (outbox, forwarder) = Outbox::open(OutboxConfig::default(), "http://127.0.0.1:8090")?;
//! let id = record_id(&["cam1", "61000", "track-7"]);
//! let body = serde_json::json!({"licence_plate": "ABC123", "time_ms": 61000, "source": "cam1"});
//! outbox.enqueue(Record::plate(id, body, b"\xFF\xD8\xFF...".to_vec())).await?;
//! let m = outbox.metrics(); // render with m.write_prometheus(&mut text)
//! outbox.shutdown(); // stop accepting; the request in flight finishes
//! let _ = forwarder.await;
//! # Ok(()) }
//! ```

mod config;
mod db;
mod error;
mod forward;
mod metrics;
mod record;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::ExponentialBuilder;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use config::{ConfigError, OutboxConfig};
pub use error::OutboxError;
pub use forward::{Class, classify};
pub use metrics::OutboxMetrics;
pub use record::{Kind, MAX_ID_LEN, Record, record_id};
pub use store::{Accepted, DeadLetter};

use db::Db;
use forward::Forwarder;
use metrics::Counters;
use store::{Prepared, Store};

/// Handle to the outbox; cheap to clone, shared by every producer.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    counters: Arc<Counters>,
    max_bytes: u64,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    notify: Arc<Notify>,
}

impl Outbox {
    /// Validates `config`, opens (or creates) the outbox in `config.dir` and
    /// spawns the forwarder to `data_api_url` (e.g. `http://10.0.0.5:8090`)
    /// on the current Tokio runtime. Records left by an earlier run are sent
    /// first. The handle resolves once the forwarder has stopped after
    /// [`Outbox::shutdown`] (or once every `Outbox` handle is dropped).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn open(
        config: OutboxConfig,
        data_api_url: &str,
    ) -> Result<(Outbox, JoinHandle<()>), OutboxError> {
        config.validate()?;
        let base = base_url(data_api_url)?;
        let mut http = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .connect_timeout(config.connect_timeout())
            // A redirected POST would turn into a GET: treat it as a failure.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(token) = &config.auth_token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| crate::config::ConfigError {
                    field: "auth_token",
                    reason: "not a valid header value".into(),
                })?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            http = http.default_headers(headers);
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| crate::config::ConfigError {
                field: "ca_file",
                reason: format!("reading {}: {e}", path.display()),
            })?;
            for ca in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(ca);
            }
        }
        let http = http.build()?;

        let counters = Arc::new(Counters::default());
        let store = Store::open(
            &config.dir,
            config.max_records,
            config.max_bytes,
            counters.clone(),
        )?;
        let pending = counters.snapshot().pending;
        if pending > 0 {
            tracing::info!(
                pending,
                "outbox: resuming delivery of records from an earlier run"
            );
        }
        let notify = Arc::new(Notify::new());
        let db = Db::spawn(store, notify.clone())?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let retry_max = Duration::from_millis(config.retry_max_ms);
        let forwarder = Forwarder {
            db: db.clone(),
            http,
            base,
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(config.retry_min_ms))
                .with_max_delay(retry_max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            retry_max,
            counters: counters.clone(),
            notify: notify.clone(),
            shutdown: shutdown_rx,
        };
        let task = tokio::spawn(forwarder.run());
        let outbox = Outbox {
            inner: Arc::new(Inner {
                db,
                counters,
                max_bytes: config.max_bytes,
                closed: AtomicBool::new(false),
                shutdown,
                notify,
            }),
        };
        Ok((outbox, task))
    }

    /// Stores `record` durably and returns once it is committed to disk;
    /// from then on it will be delivered (or, past the bound, dropped and
    /// counted). A record that cannot be stored (disk full) is an
    /// [`OutboxError::Storage`], counted in `refused`. Enqueueing an id that
    /// is still in the outbox changes nothing and answers
    /// [`Accepted::AlreadyQueued`].
    pub async fn enqueue(&self, record: Record) -> Result<Accepted, OutboxError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(OutboxError::Closed);
        }
        record.check()?;
        let prepared = Prepared {
            kind: record.kind,
            body: record.body.to_string(),
            id: record.id,
            image: record.image,
        };
        let size = prepared.size();
        if size > self.inner.max_bytes {
            return Err(OutboxError::TooLarge {
                id: prepared.id,
                size,
                max: self.inner.max_bytes,
            });
        }
        let stored = self.inner.db.enqueue(prepared).await;
        if let Err(OutboxError::Storage(_)) = &stored {
            // The producer decides what a refusal means for its caller; the
            // operator sees every one here, whoever the producer was.
            Counters::add(&self.inner.counters.refused, 1);
        }
        stored
    }

    pub fn metrics(&self) -> OutboxMetrics {
        self.inner.counters.snapshot()
    }

    /// Records the data API refused for good, oldest first (at most `limit`).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, OutboxError> {
        self.inner.db.dead_letters(limit).await
    }

    /// Puts every dead letter back in the queue at its original place (after
    /// fixing what made the data API refuse them). Returns how many.
    pub async fn requeue_dead_letters(&self) -> Result<u64, OutboxError> {
        let n = self.inner.db.requeue_dead().await?;
        // Wake the forwarder if it was idle.
        if n > 0 {
            self.inner.notify.notify_one();
        }
        Ok(n)
    }

    /// Stops accepting (`enqueue` answers [`OutboxError::Closed`]) and tells
    /// the forwarder to stop after the request in flight; await the handle
    /// `open` returned to know it has. Pending records stay on disk for the
    /// next start.
    pub fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.send_replace(true);
    }
}

/// Checks the data API URL and drops a trailing slash.
fn base_url(url: &str) -> Result<String, OutboxError> {
    let bad = |reason: &str| OutboxError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must be http:// or https://"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_api_urls() {
        assert_eq!(
            base_url("http://127.0.0.1:8090/").expect("ok"),
            "http://127.0.0.1:8090"
        );
        assert_eq!(
            base_url("https://data.example/api").expect("ok"),
            "https://data.example/api"
        );
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("127.0.0.1:8090").is_err());
        assert!(base_url("http://x/?a=1").is_err());
    }
}
