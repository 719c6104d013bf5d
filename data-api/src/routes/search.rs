//! `POST /search-face` and `POST /search-licence-plate`: the seed's request
//! and result shapes, its exact error messages, and our additive options
//! (`k`, `min_score`, `source`, `from`/`to`) and result fields.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AppJson, AppState, base_url, format_time, media_link};
use crate::config::{Config, FACE_DIMS};
use crate::error::AppError;
use crate::plate::PlateQuery;
use crate::store::{FaceSearch, Filter, Hit, PlateSearch};
use crate::vector;

/// Options shared by both searches.
#[derive(Debug, Default, Deserialize)]
pub struct SearchOptions {
    pub k: Option<usize>,
    pub min_score: Option<f64>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FaceSearchRequest {
    pub face_vector: Option<Vec<f64>>,
    #[serde(flatten)]
    pub options: SearchOptions,
}

#[derive(Debug, Deserialize)]
pub struct PlateSearchRequest {
    pub licence_plate: Option<String>,
    #[serde(flatten)]
    pub options: SearchOptions,
}

/// Parses an RFC 3339 timestamp into epoch milliseconds; `field` names it in the error.
pub fn parse_timestamp(field: &str, s: &str) -> Result<(OffsetDateTime, i64), AppError> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
        AppError::bad(format!(
            "{field} must be an RFC 3339 timestamp, e.g. 2026-11-24T08:30:00Z"
        ))
    })?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| AppError::bad(format!("{field} is out of range")))?;
    Ok((t, ms))
}

struct Resolved {
    k: usize,
    min_score: Option<f32>,
    filter: Filter,
}

fn resolve(cfg: &Config, o: &SearchOptions) -> Result<Resolved, AppError> {
    let k = match o.k {
        None => cfg.search.default_k,
        Some(0) => return Err(AppError::bad("k must be at least 1")),
        Some(k) => k.min(cfg.search.max_k),
    };
    let min_score = match o.min_score {
        Some(m) if !m.is_finite() => return Err(AppError::bad("min_score must be a number")),
        Some(m) => Some(m as f32),
        None => None,
    };
    let from_ms = o
        .from
        .as_deref()
        .map(|s| parse_timestamp("from", s).map(|t| t.1))
        .transpose()?;
    let to_ms =
        o.to.as_deref()
            .map(|s| parse_timestamp("to", s).map(|t| t.1))
            .transpose()?;
    if let (Some(f), Some(t)) = (from_ms, to_ms)
        && f > t
    {
        return Err(AppError::bad("from must not be after to"));
    }
    let source = o.source.clone().filter(|s| !s.is_empty());
    Ok(Resolved {
        k,
        min_score,
        filter: Filter {
            source,
            from_ms,
            to_ms,
        },
    })
}

/// Rounds to 6 decimals so f32 noise does not leak into the JSON.
fn round6(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}

fn hit_json(base: &str, h: &Hit) -> Value {
    let mut v = json!({
        "pic": media_link(base, &h.meta.pic),
        "time": format_time(h.meta.time_ms),
        "time_ms": h.meta.time_ms,
        "score": round6(h.score),
        "source": h.meta.source,
        "captured_at": h.meta.captured_at,
        "id": h.meta.id,
    });
    if let Some(lp) = &h.licence_plate {
        v["licence_plate"] = json!(lp);
    }
    if let Some(c) = h.confidence {
        v["confidence"] = json!(round6(c));
    }
    v
}

fn results(base: &str, hits: &[Hit]) -> Json<Value> {
    Json(json!({ "results": hits.iter().map(|h| hit_json(base, h)).collect::<Vec<_>>() }))
}

pub async fn search_face(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(req): AppJson<FaceSearchRequest>,
) -> Result<Json<Value>, AppError> {
    let raw = match req.face_vector {
        Some(v) if !v.is_empty() => v,
        _ => return Err(AppError::bad("Face vector is required")),
    };
    let vector = vector::validate(&raw, FACE_DIMS).map_err(|e| AppError::bad(e.to_string()))?;
    let r = resolve(&state.cfg, &req.options)?;
    let hits = state
        .store
        .search_faces(FaceSearch {
            vector,
            k: r.k,
            min_score: r.min_score,
            filter: r.filter,
        })
        .await?;
    Ok(results(&base_url(&state.cfg, &headers), &hits))
}

pub async fn search_licence_plate(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppJson(req): AppJson<PlateSearchRequest>,
) -> Result<Json<Value>, AppError> {
    let text = match req.licence_plate {
        Some(s) if !s.trim().is_empty() => s,
        _ => return Err(AppError::bad("Licence plate is required")),
    };
    if let Some(e) = crate::plate::too_long(&text) {
        return Err(AppError::bad(e));
    }
    let query = PlateQuery::new(&text, state.cfg.search.plate_max_distance)
        .ok_or_else(|| AppError::bad("Licence plate must contain letters or digits"))?;
    let r = resolve(&state.cfg, &req.options)?;
    let hits = state
        .store
        .search_plates(PlateSearch {
            query,
            k: r.k,
            min_score: r.min_score,
            filter: r.filter,
        })
        .await?;
    Ok(results(&base_url(&state.cfg, &headers), &hits))
}
