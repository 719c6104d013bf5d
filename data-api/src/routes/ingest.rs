//! `POST /faces` and `POST /plates`: ingest one record (a JSON object) or a
//! batch (a JSON array, one transaction / one bulk request). The sender picks
//! `id`; a retry of an id already stored answers `created: false` and changes
//! nothing (first write wins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::search::parse_timestamp;
use super::{AppJson, AppState};
use crate::config::{Config, FACE_DIMS};
use crate::error::AppError;
use crate::store::{FaceRecord, Ingested, Meta, PlateRecord};
use crate::vector;

#[derive(Debug, Deserialize)]
pub struct FaceIn {
    pub id: Option<String>,
    pub face_vector: Option<Vec<f64>>,
    pub pic: Option<String>,
    pub time_ms: Option<u64>,
    pub source: Option<String>,
    pub captured_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PlateIn {
    pub id: Option<String>,
    pub licence_plate: Option<String>,
    pub pic: Option<String>,
    pub time_ms: Option<u64>,
    pub source: Option<String>,
    pub captured_at: Option<String>,
    pub confidence: Option<f64>,
}

const MAX_ID_LEN: usize = 256;

fn required(value: Option<String>, msg: &str) -> Result<String, AppError> {
    match value {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(AppError::bad(msg)),
    }
}

fn meta(
    id: Option<String>,
    pic: Option<String>,
    time_ms: Option<u64>,
    source: Option<String>,
    captured_at: Option<String>,
) -> Result<Meta, AppError> {
    let id = required(id, "id is required")?;
    if id.len() > MAX_ID_LEN {
        return Err(AppError::bad(format!(
            "id must be at most {MAX_ID_LEN} bytes"
        )));
    }
    let pic = required(pic, "pic is required")?;
    let time_ms = time_ms.ok_or_else(|| AppError::bad("time_ms is required"))?;
    let (at, captured_at_ms) = match captured_at.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => parse_timestamp("captured_at", s)?,
        None => {
            let now = OffsetDateTime::now_utc();
            let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            (now, ms)
        }
    };
    // In UTC a time at the edge of RFC 3339's years can leave them
    // ("9999-12-31T23:59:59-01:00"): `to_offset` panicked on year 10000 and
    // year -1 failed to format, both 500s (found by the `ingest` fuzz target).
    let captured_at = at
        .checked_to_offset(time::UtcOffset::UTC)
        .and_then(|utc| utc.format(&Rfc3339).ok())
        .ok_or_else(|| AppError::bad("captured_at is out of range (years 0000 to 9999 in UTC)"))?;
    Ok(Meta {
        id,
        pic,
        time_ms,
        source: source.unwrap_or_default(),
        captured_at,
        captured_at_ms,
    })
}

fn face_record(f: FaceIn) -> Result<FaceRecord, AppError> {
    let raw = match f.face_vector {
        Some(v) if !v.is_empty() => v,
        _ => return Err(AppError::bad("Face vector is required")),
    };
    let vector = vector::validate(&raw, FACE_DIMS).map_err(|e| AppError::bad(e.to_string()))?;
    Ok(FaceRecord {
        meta: meta(f.id, f.pic, f.time_ms, f.source, f.captured_at)?,
        vector,
    })
}

fn plate_record(p: PlateIn) -> Result<PlateRecord, AppError> {
    let licence_plate = required(p.licence_plate, "Licence plate is required")?;
    if let Some(e) = crate::plate::too_long(&licence_plate) {
        return Err(AppError::bad(e));
    }
    if crate::plate::canonical(&licence_plate).is_empty() {
        return Err(AppError::bad(
            "Licence plate must contain letters or digits",
        ));
    }
    let confidence = match p.confidence {
        Some(c) if !(0.0..=1.0).contains(&c) => {
            return Err(AppError::bad("confidence must be between 0 and 1"));
        }
        c => c.map(|c| c as f32),
    };
    Ok(PlateRecord {
        meta: meta(p.id, p.pic, p.time_ms, p.source, p.captured_at)?,
        licence_plate,
        confidence,
    })
}

/// Splits a body into records: an object is one, an array is a batch.
/// Returns whether it was a batch.
fn parse_records<T, R>(
    cfg: &Config,
    body: Value,
    convert: fn(T) -> Result<R, AppError>,
) -> Result<(Vec<R>, bool), AppError>
where
    T: DeserializeOwned,
{
    let (items, batch) = match body {
        Value::Array(items) => (items, true),
        obj @ Value::Object(_) => (vec![obj], false),
        _ => {
            return Err(AppError::bad(
                "body must be a JSON object or an array of objects",
            ));
        }
    };
    if items.is_empty() {
        return Err(AppError::bad("batch must not be empty"));
    }
    if items.len() > cfg.limits.max_batch {
        return Err(AppError::PayloadTooLarge(format!(
            "batch has {} records; the limit is {}",
            items.len(),
            cfg.limits.max_batch
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let parsed = serde_json::from_value::<T>(item)
            .map_err(|e| AppError::bad(format!("invalid record: {e}")))
            .and_then(convert);
        match parsed {
            Ok(r) => out.push(r),
            Err(AppError::BadRequest(m)) if batch => {
                return Err(AppError::bad(format!("record {i}: {m}")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, batch))
}

/// A `POST /faces` body as validated records (and whether it was a batch):
/// what the handler stores, without the store. Public for the fuzz target.
pub fn parse_faces(cfg: &Config, body: Value) -> Result<(Vec<FaceRecord>, bool), AppError> {
    parse_records(cfg, body, face_record)
}

/// A `POST /plates` body as validated records (and whether it was a batch).
pub fn parse_plates(cfg: &Config, body: Value) -> Result<(Vec<PlateRecord>, bool), AppError> {
    parse_records(cfg, body, plate_record)
}

fn answer(ids: Vec<String>, outcome: Vec<Ingested>, batch: bool) -> (StatusCode, Json<Value>) {
    if !batch {
        let created = outcome.first().is_some_and(|o| o.created);
        let id = ids.into_iter().next().unwrap_or_default();
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return (status, Json(json!({"id": id, "created": created})));
    }
    let created = outcome.iter().filter(|o| o.created).count();
    let results: Vec<Value> = ids
        .into_iter()
        .zip(&outcome)
        .map(|(id, o)| json!({"id": id, "created": o.created}))
        .collect();
    (
        StatusCode::OK,
        Json(json!({"results": results, "created": created})),
    )
}

pub async fn ingest_faces(
    State(state): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let (records, batch) = parse_faces(&state.cfg, body)?;
    let ids = records.iter().map(|r| r.meta.id.clone()).collect();
    let outcome = state.store.ingest_faces(records).await?;
    Ok(answer(ids, outcome, batch))
}

pub async fn ingest_plates(
    State(state): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let (records, batch) = parse_plates(&state.cfg, body)?;
    let ids = records.iter().map(|r| r.meta.id.clone()).collect();
    let outcome = state.store.ingest_plates(records).await?;
    Ok(answer(ids, outcome, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate_at(captured_at: &str) -> Value {
        json!({"id": "p", "licence_plate": "AB123", "pic": "x", "time_ms": 1, "captured_at": captured_at})
    }

    /// Regression (fuzzing): times that leave RFC 3339's years in UTC were
    /// a panic and a 500; they are a 400 naming the field.
    #[test]
    fn captured_at_out_of_range_in_utc_is_a_bad_request() {
        let cfg = Config::default();
        for at in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            match parse_plates(&cfg, plate_at(at)) {
                Err(AppError::BadRequest(m)) => assert!(m.contains("captured_at"), "{m}"),
                other => panic!("{at}: {other:?}"),
            }
        }
        let (records, _) =
            parse_plates(&cfg, plate_at("9999-12-31T23:59:59+01:00")).expect("in range");
        assert_eq!(records[0].meta.captured_at, "9999-12-31T22:59:59Z");
    }
}
