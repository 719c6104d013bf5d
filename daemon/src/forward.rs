//! Sightings leave the box: each kept face and voted plate becomes a record
//! in the durable outbox (`wayside-outbox`), which delivers it to the data
//! API's `/media` and `/faces` or `/plates` at least once. The record id is
//! derived from what identifies the sighting (source, track, time), so
//! re-processing the same video or a retried delivery never stores one twice.

use std::time::SystemTime;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::runtime::Handle;
use wayside_outbox::{Accepted, Outbox, OutboxError, Record, record_id};

use crate::pipeline::faces::FaceSighting;
use crate::pipeline::plates::PlateSighting;

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

/// What became of one sighting handed to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Stored durably: it will reach the data API.
    Kept,
    /// The outbox's storage failed (disk full, I/O error): a later retry of
    /// the same video can keep it (record ids come from the video).
    NoRoom,
    /// Refused for what it is or for the state of the box (too large, the
    /// outbox shut down): retrying would not help.
    Refused,
}

impl Handed {
    pub fn kept(self) -> bool {
        self == Handed::Kept
    }
}

pub struct Sightings {
    forwarder: Forwarder,
    source: String,
    started: OffsetDateTime,
}

impl Sightings {
    /// Stores the face durably (blocking: call it from the job's thread).
    /// Says whether the outbox took it; a refusal (outbox closed at
    /// shutdown, disk full) is logged, and the job goes on: its counts do
    /// not depend on it.
    pub fn face(&self, s: FaceSighting) -> Handed {
        let id = self.id("face", s.track_id, s.t_ms);
        let body = json!({
            "face_vector": s.vector,
            "time_ms": s.t_ms,
            "source": self.source,
            "captured_at": self.captured_at(s.t_ms),
        });
        self.enqueue(Record::face(id, body, s.jpeg), s.t_ms)
    }

    /// Stores the vehicle's voted plate durably, as [`Self::face`] does.
    pub fn plate(&self, s: PlateSighting) -> Handed {
        let id = self.id("plate", s.track_id, s.t_ms);
        let body = json!({
            "licence_plate": s.text,
            "confidence": s.confidence,
            "time_ms": s.t_ms,
            "source": self.source,
            "captured_at": self.captured_at(s.t_ms),
        });
        self.enqueue(Record::plate(id, body, s.jpeg), s.t_ms)
    }

    fn id(&self, kind: &str, track_id: u64, t_ms: u64) -> String {
        record_id(&[&self.source, kind, &track_id.to_string(), &t_ms.to_string()])
    }

    fn captured_at(&self, t_ms: u64) -> String {
        (self.started + time::Duration::milliseconds(t_ms as i64))
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    fn enqueue(&self, record: Record, t_ms: u64) -> Handed {
        let outbox = &self.forwarder.outbox;
        let kind = record.kind.as_str();
        match self.forwarder.runtime.block_on(outbox.enqueue(record)) {
            Ok(Accepted::New | Accepted::AlreadyQueued) => Handed::Kept,
            Err(e) => {
                tracing::warn!(source = %self.source, t_ms, "{kind} not forwarded: {e}");
                match e {
                    OutboxError::Storage(_) => Handed::NoRoom,
                    _ => Handed::Refused,
                }
            }
        }
    }
}
