//! The forwarder: one task that delivers the oldest pending record, then
//! the next, at least once and in order of acceptance.
//!
//! For each record: upload the image (`POST /media`, unless its URL is
//! already stored), put the URL in `pic`, `POST /faces` or `/plates`, and
//! remove the record on 2xx. Failures are sorted by [`classify`]:
//! - transient (connection refused or reset, timeout, 5xx, 408, 429): retry
//!   the same record after an exponential, jittered delay (`backon`'s delay
//!   iterator; a `Retry-After` from the server lengthens it). The queue waits
//!   behind it: order is kept, and what stops one record stops all of them.
//! - permanent (any other 4xx): the data API will never take this record, so
//!   it becomes a dead letter (logged, counted, kept) and the queue moves on.
//!
//! Shutdown is checked between requests: a request in flight is finished
//! (each is bounded by `request_timeout_ms`) and its outcome stored.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::db::Db;
use crate::metrics::Counters;
use crate::store::Row;

/// What a response status means for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Delivered,
    Transient,
    Permanent,
}

/// 2xx delivered; 408, 429 and 5xx transient; other 4xx permanent. 1xx/3xx
/// (we follow no redirects) are treated as transient: a proxy or URL
/// mistake is fixed by configuration, and the records should still be here.
pub fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        200..=299 => Class::Delivered,
        408 | 429 => Class::Transient,
        400..=499 => Class::Permanent,
        _ => Class::Transient,
    }
}

#[derive(Debug)]
enum Failure {
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    Permanent(String),
}

fn transport(what: &str, e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "failed"
    };
    Failure::Transient {
        error: format!("{what} {kind}: {e}"),
        retry_after: None,
    }
}

/// Turns a non-2xx response into a failure, keeping a short piece of the
/// body (the data API's `{"error"}`) for the log and the dead letter.
async fn refused(what: &str, resp: reqwest::Response) -> Failure {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut text = resp.text().await.unwrap_or_default();
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let error = format!("{what}: HTTP {}: {}", status.as_u16(), text.trim());
    match classify(status) {
        Class::Permanent => Failure::Permanent(error),
        _ => Failure::Transient { error, retry_after },
    }
}

pub(crate) struct Forwarder {
    pub db: Db,
    pub http: reqwest::Client,
    /// Data API base URL, without a trailing slash.
    pub base: String,
    pub backoff: ExponentialBuilder,
    pub retry_max: Duration,
    pub counters: Arc<Counters>,
    pub notify: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

/// True once `shutdown()` was called or every `Outbox` handle is gone.
fn stopping(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Forwarder {
    pub async fn run(mut self) {
        // The delays of the record at the head, while it keeps failing.
        let mut delays: Option<(i64, ExponentialBackoff)> = None;
        while !stopping(&self.shutdown) {
            let row = match self.db.next_pending().await {
                Ok(Some(row)) => row,
                Ok(None) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = stopped(&mut self.shutdown) => {}
                    }
                    continue;
                }
                Err(crate::OutboxError::Closed) => break,
                Err(e) => {
                    tracing::error!(error = %e, "outbox: reading the queue failed");
                    self.pause(self.retry_max).await;
                    continue;
                }
            };
            let (seq, kind, id) = (row.seq, row.kind.as_str(), row.id.clone());
            match self.deliver(&row).await {
                Ok(created) => {
                    delays = None;
                    tracing::debug!(
                        kind,
                        id,
                        created,
                        attempts = row.attempts + 1,
                        "outbox: delivered"
                    );
                    match self.db.delivered(seq).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(kind, id, "outbox: delivered a record dropped meanwhile")
                        }
                        Err(e) => {
                            tracing::error!(kind, id, error = %e, "outbox: removing a delivered record failed; it will be sent again")
                        }
                    }
                }
                Err(Failure::Permanent(error)) => {
                    delays = None;
                    tracing::error!(
                        kind,
                        id,
                        error,
                        "outbox: refused by the data API; dead-lettered"
                    );
                    if let Err(e) = self.db.dead_letter(seq, error).await {
                        tracing::error!(kind, id, error = %e, "outbox: dead-lettering failed");
                    }
                }
                Err(Failure::Transient { error, retry_after }) => {
                    Counters::add(&self.counters.retried, 1);
                    let attempts = self
                        .db
                        .record_failure(seq, error.clone())
                        .await
                        .unwrap_or(row.attempts + 1);
                    if delays.as_ref().is_none_or(|(s, _)| *s != seq) {
                        delays = Some((seq, self.backoff.build()));
                    }
                    let base = delays
                        .as_mut()
                        .and_then(|(_, d)| d.next())
                        .unwrap_or(self.retry_max);
                    let delay = base.max(retry_after.unwrap_or_default().min(self.retry_max));
                    tracing::warn!(
                        kind,
                        id,
                        attempts,
                        error,
                        retry_in_ms = delay.as_millis() as u64,
                        "outbox: delivery failed; will retry"
                    );
                    self.pause(delay).await;
                }
            }
        }
        self.db.close().await;
        tracing::info!("outbox: forwarder stopped");
    }

    /// Sleeps, or returns early on shutdown.
    async fn pause(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stopped(&mut self.shutdown) => {}
        }
    }

    /// One attempt. Ok(created) on 2xx (`created` false: the data API had
    /// this id already, from an earlier delivery whose answer we lost).
    async fn deliver(&self, row: &Row) -> Result<bool, Failure> {
        let pic = match (&row.pic_url, &row.image) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(image)) => {
                let url = self.upload(row, image).await?;
                Counters::add(&self.counters.uploads, 1);
                // Losing this only costs a re-upload (content-addressed).
                if let Err(e) = self.db.set_pic_url(row.seq, url.clone()).await {
                    tracing::warn!(id = row.id, error = %e, "outbox: keeping the media URL failed");
                }
                Some(url)
            }
            (None, None) => None,
        };
        let mut body: Value = serde_json::from_str(&row.body)
            .map_err(|e| Failure::Permanent(format!("stored body is not JSON: {e}")))?;
        let Some(obj) = body.as_object_mut() else {
            return Err(Failure::Permanent("stored body is not an object".into()));
        };
        obj.insert("id".into(), Value::String(row.id.clone()));
        if let Some(pic) = pic {
            obj.insert("pic".into(), Value::String(pic));
        }
        let what = row.kind.endpoint();
        let resp = self
            .http
            .post(format!("{}{what}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        if classify(resp.status()) != Class::Delivered {
            return Err(refused(what, resp).await);
        }
        let created = resp.status() == StatusCode::CREATED;
        Ok(created)
    }

    async fn upload(&self, row: &Row, image: &[u8]) -> Result<String, Failure> {
        let part = reqwest::multipart::Part::bytes(image.to_vec())
            .file_name(format!("{}.jpg", row.kind.as_str()))
            .mime_str("image/jpeg")
            .map_err(|e| Failure::Permanent(format!("/media: {e}")))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .http
            .post(format!("{}/media", self.base))
            .multipart(form)
            .send()
            .await
            .map_err(|e| transport("/media", e))?;
        if classify(resp.status()) != Class::Delivered {
            return Err(refused("/media", resp).await);
        }
        let answer: Value = resp.json().await.map_err(|e| transport("/media", e))?;
        match answer.get("url").and_then(Value::as_str) {
            Some(url) if !url.is_empty() => Ok(url.to_string()),
            // Not the data API we expect (a proxy page?): keep the record.
            _ => Err(Failure::Transient {
                error: format!("/media: answer without a url: {answer}"),
                retry_after: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let c = |n: u16| classify(StatusCode::from_u16(n).expect("status"));
        assert_eq!(c(200), Class::Delivered);
        assert_eq!(c(201), Class::Delivered);
        for n in [400, 401, 404, 413, 415, 422] {
            assert_eq!(c(n), Class::Permanent, "{n}");
        }
        for n in [408, 429, 500, 502, 503, 504, 301] {
            assert_eq!(c(n), Class::Transient, "{n}");
        }
    }

    #[test]
    fn delays_grow_with_jitter_and_stop_growing() {
        let b = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(800))
            .with_jitter()
            .without_max_times();
        let d: Vec<Duration> = b.build().take(8).collect();
        // Base 100, 200, 400, 800, 800… plus up to 100% jitter.
        for (i, base) in [100u64, 200, 400, 800, 800, 800, 800, 800]
            .into_iter()
            .enumerate()
        {
            let ms = d[i].as_millis() as u64;
            assert!((base..2 * base).contains(&ms), "delay {i} = {ms} ms");
        }
    }
}
