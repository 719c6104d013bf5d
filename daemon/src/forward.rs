//! Sightings leave the box: each kept face becomes a record in the durable
//! outbox (`wayside-outbox`), which delivers it to the data API's `/media`
//! and `/faces` at least once. The record id is derived from what identifies
//! the sighting (source, track, time), so re-processing the same video or a
//! retried delivery never stores a face twice.

use std::time::SystemTime;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::runtime::Handle;
use wayside_outbox::{Accepted, Outbox, Record, record_id};

use crate::pipeline::faces::FaceSighting;

/// The outbox and the runtime its storage thread answers on.
#[derive(Clone)]
pub struct Forwarder {
    outbox: Outbox,
    runtime: Handle,
}

impl Forwarder {
    pub fn new(outbox: Outbox, runtime: Handle) -> Self {
        Self { outbox, runtime }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The sightings of one job or camera: `source` names it in the data API
    /// (`upload-<sha256 prefix>` for an uploaded video), `started` anchors
    /// `captured_at` (an upload's wall-clock time is unknown; the time it was
    /// processed is the best stand-in, and `time_ms` stays exact).
    pub fn for_source(&self, source: String, started: SystemTime) -> Sightings {
        Sightings {
            forwarder: self.clone(),
            source,
            started: OffsetDateTime::from(started),
        }
    }
}

pub struct Sightings {
    forwarder: Forwarder,
    source: String,
    started: OffsetDateTime,
}

impl Sightings {
    /// Stores the face durably (blocking: call it from the job's thread).
    /// Returns whether the outbox took it; a refusal (outbox closed at
    /// shutdown, disk full) is logged and counted by the outbox, and the job
    /// goes on: its counts do not depend on it.
    pub fn face(&self, s: FaceSighting) -> bool {
        let track = s.track_id.to_string();
        let t = s.t_ms.to_string();
        let id = record_id(&[&self.source, "face", &track, &t]);
        let captured_at = (self.started + time::Duration::milliseconds(s.t_ms as i64))
            .format(&Rfc3339)
            .unwrap_or_default();
        let body = json!({
            "face_vector": s.vector,
            "time_ms": s.t_ms,
            "source": self.source,
            "captured_at": captured_at,
        });
        let outbox = &self.forwarder.outbox;
        match self
            .forwarder
            .runtime
            .block_on(outbox.enqueue(Record::face(id, body, s.jpeg)))
        {
            Ok(Accepted::New | Accepted::AlreadyQueued) => true,
            Err(e) => {
                tracing::warn!(source = %self.source, t_ms = s.t_ms, "face not forwarded: {e}");
                false
            }
        }
    }
}
