//! The storage seam: the records the API ingests, the queries it asks, and the
//! `Store` trait both backends implement (`embedded`: SQLite + in-memory
//! vector index; `elastic`: Elasticsearch). Routes only see `dyn Store`.

pub mod elastic;
pub mod embedded;
pub mod media;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::plate::PlateQuery;

/// A boxed future, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, 5xx): 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within the configured bound: 504.
    #[error("store timed out")]
    Timeout,
    /// The disk under the store is full: 507. Nothing was written; the
    /// sender's retry succeeds once space is back.
    #[error("store is full: {0}")]
    Full(String),
    /// Anything else (corrupt row, our own bug): 500.
    #[error("store failure: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Fields every record carries besides its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Sender-chosen id; a retried delivery reuses it.
    pub id: String,
    pub pic: String,
    pub time_ms: u64,
    pub source: String,
    /// RFC 3339, as normalised by the ingest route.
    pub captured_at: String,
    pub captured_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct FaceRecord {
    pub meta: Meta,
    /// Unit length, `FACE_DIMS` long.
    pub vector: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct PlateRecord {
    pub meta: Meta,
    /// As read by OCR.
    pub licence_plate: String,
    pub confidence: Option<f32>,
}

/// Restrictions shared by both searches.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source: Option<String>,
    /// Inclusive bounds on `captured_at`, epoch milliseconds.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.from_ms.is_none() && self.to_ms.is_none()
    }

    pub fn accepts(&self, source: &str, captured_at_ms: i64) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.from_ms.is_none_or(|f| captured_at_ms >= f)
            && self.to_ms.is_none_or(|t| captured_at_ms <= t)
    }
}

#[derive(Debug, Clone)]
pub struct FaceSearch {
    pub vector: Vec<f32>,
    pub k: usize,
    pub min_score: Option<f32>,
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub struct PlateSearch {
    pub query: PlateQuery,
    pub k: usize,
    pub min_score: Option<f32>,
    pub filter: Filter,
}

/// One search result, best first; `score` is cosine similarity for faces and
/// the `plate::PlateQuery::score` for plates.
#[derive(Debug, Clone)]
pub struct Hit {
    pub meta: Meta,
    pub score: f32,
    pub licence_plate: Option<String>,
    pub confidence: Option<f32>,
}

/// Whether an ingested record was new or a retry of one already stored
/// (first write wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ingested {
    pub created: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub faces: u64,
    pub plates: u64,
}

pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> &'static str;
    fn ingest_faces(&self, records: Vec<FaceRecord>) -> StoreFuture<'_, Vec<Ingested>>;
    fn ingest_plates(&self, records: Vec<PlateRecord>) -> StoreFuture<'_, Vec<Ingested>>;
    fn search_faces(&self, query: FaceSearch) -> StoreFuture<'_, Vec<Hit>>;
    fn search_plates(&self, query: PlateSearch) -> StoreFuture<'_, Vec<Hit>>;
    fn stats(&self) -> StoreFuture<'_, StoreStats>;
    /// Cheap reachability check for `/healthz`.
    fn health(&self) -> StoreFuture<'_, ()>;
}

/// Sorts best first (newest capture breaks ties), applies `min_score`, keeps `k`.
pub fn finish_hits(mut hits: Vec<Hit>, k: usize, min_score: Option<f32>) -> Vec<Hit> {
    if let Some(m) = min_score {
        hits.retain(|h| h.score >= m);
    }
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.meta.captured_at_ms.cmp(&a.meta.captured_at_ms))
            .then(a.meta.id.cmp(&b.meta.id))
    });
    hits.truncate(k);
    hits
}
