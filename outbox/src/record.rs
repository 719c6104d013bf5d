//! What goes into the outbox: a face or plate record for the data API's
//! ingest endpoints, with the image to upload first.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::OutboxError;

/// The data API keeps ids up to this many bytes.
pub const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Face,
    Plate,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Face => "face",
            Kind::Plate => "plate",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "face" => Some(Kind::Face),
            "plate" => Some(Kind::Plate),
            _ => None,
        }
    }

    /// The data API's ingest path for this kind.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::Face => "/faces",
            Kind::Plate => "/plates",
        }
    }
}

/// One record to forward.
///
/// `body` is the JSON object for `POST /faces` or `POST /plates` (see
/// shared/API.md, "Ingest"). The outbox sets its `id` from [`Record::id`]
/// and, when `image` is present, its `pic` from the URL `POST /media`
/// answered; without an image, `body` must carry its own `pic`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    /// Chosen by the sender and stable across retries and re-runs, so the
    /// data API stores each sighting once however often it is delivered.
    pub id: String,
    pub body: Value,
    /// JPEG bytes of the face or car crop.
    pub image: Option<Vec<u8>>,
}

impl Record {
    pub fn face(id: impl Into<String>, body: Value, image: Vec<u8>) -> Record {
        Record {
            kind: Kind::Face,
            id: id.into(),
            body,
            image: Some(image),
        }
    }

    pub fn plate(id: impl Into<String>, body: Value, image: Vec<u8>) -> Record {
        Record {
            kind: Kind::Plate,
            id: id.into(),
            body,
            image: Some(image),
        }
    }

    /// Refuses what the data API would refuse for sure, before it is stored:
    /// such a record could only ever be dead-lettered.
    pub(crate) fn check(&self) -> Result<(), OutboxError> {
        let bad = |m: &str| Err(OutboxError::InvalidRecord(format!("{}: {m}", self.id)));
        if self.id.trim().is_empty() {
            return Err(OutboxError::InvalidRecord("id is empty".into()));
        }
        if self.id.len() > MAX_ID_LEN {
            return bad("id is longer than 256 bytes");
        }
        let Some(obj) = self.body.as_object() else {
            return bad("body must be a JSON object");
        };
        if self.image.is_none() && !obj.get("pic").is_some_and(Value::is_string) {
            return bad("no image and no pic in the body");
        }
        if self.image.as_ref().is_some_and(Vec::is_empty) {
            return bad("image is empty");
        }
        Ok(())
    }
}

/// A stable record id from what identifies a sighting, e.g.
/// `record_id(&[source, &time_ms.to_string(), &track_id.to_string()])`:
/// re-processing the same video yields the same ids, so the data API keeps
/// one copy. Hex sha256 of the parts, each length-prefixed (no ambiguity
/// between `["ab", "c"]` and `["a", "bc"]`).
pub fn record_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_stable_and_unambiguous() {
        assert_eq!(record_id(&["cam", "1"]), record_id(&["cam", "1"]));
        assert_ne!(record_id(&["ab", "c"]), record_id(&["a", "bc"]));
        assert_eq!(record_id(&["x"]).len(), 64);
    }

    #[test]
    fn check_refuses_hopeless_records() {
        assert!(Record::plate("a", json!({}), vec![1]).check().is_ok());
        assert!(Record::plate("", json!({}), vec![1]).check().is_err());
        assert!(
            Record::plate("x".repeat(257), json!({}), vec![1])
                .check()
                .is_err()
        );
        assert!(Record::plate("a", json!([1]), vec![1]).check().is_err());
        assert!(Record::plate("a", json!({}), vec![]).check().is_err());
        let mut r = Record::plate("a", json!({}), vec![1]);
        r.image = None;
        assert!(r.check().is_err());
        r.body = json!({"pic": "https://img.example/a.jpg"});
        assert!(r.check().is_ok());
    }
}
