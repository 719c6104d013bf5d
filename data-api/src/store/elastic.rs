//! Elasticsearch backend (official `elasticsearch` crate, ES 8 API).
//!
//! - Layout: `<prefix>-faces` (`face` dense_vector 512/cosine/indexed, plus
//!   `pic`, `time`, `time_ms`, `source`, `captured_at`) and `<prefix>-plates`
//!   (`lp` text with an n-gram analyzer, `lp_norm` keyword of the
//!   confusion-normalised plate with an n-gram sub-field, `lp_canon` keyword,
//!   same metadata). Index templates and the indices are created on first use
//!   and retried until they succeed, so the service starts while ES is down.
//! - Ingest: one bulk request per API request, `create` with the sender's id as
//!   `_id`, so a retry answers 409 per item, reported as `created: false`.
//! - Faces: kNN with `num_candidates` (score → cosine = 2s − 1), or the seed's
//!   exact `script_score` `cosineSimilarity(params.query_vector, 'face') + 1.0`
//!   (cosine = s − 1), chosen by `elasticsearch.face_query`.
//! - Plates: ES retrieves candidates (term on `lp_canon`/`lp_norm` boosted,
//!   fuzzy on `lp_norm`, n-gram matches), then `plate::PlateQuery::score`
//!   re-ranks them, so both backends rank plates the same way.
//! - Every call is bounded by `elasticsearch.timeout_ms`: a refused connection
//!   is `Unavailable` (503), no answer in time is `Timeout` (504).

use std::future::Future;
use std::time::Duration;

use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{IndicesCreateParts, IndicesPutIndexTemplateParts};
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, CountParts, Elasticsearch, SearchParts};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{
    FaceRecord, FaceSearch, Filter, Hit, Ingested, Meta, PlateRecord, PlateSearch, Store,
    StoreError, StoreFuture, StoreStats, finish_hits,
};
use crate::config::{ElasticConfig, FACE_DIMS, FaceQueryMode};
use crate::plate;
use crate::routes::format_time;

/// The seed's script, kept byte for byte.
pub const SEED_SCRIPT: &str = "cosineSimilarity(params.query_vector, 'face') + 1.0";

pub struct ElasticStore {
    client: Elasticsearch,
    cfg: ElasticConfig,
    faces_index: String,
    plates_index: String,
    timeout: Duration,
    ready: OnceCell<()>,
}

fn metadata_properties() -> Value {
    json!({
        "id": {"type": "keyword"},
        "pic": {"type": "keyword", "index": false},
        "time": {"type": "keyword", "index": false},
        "time_ms": {"type": "long"},
        "source": {"type": "keyword"},
        "captured_at": {"type": "date"},
        "captured_at_ms": {"type": "long"}
    })
}

fn face_mappings() -> Value {
    let mut props = metadata_properties();
    props["face"] = json!({
        "type": "dense_vector", "dims": FACE_DIMS, "index": true, "similarity": "cosine"
    });
    json!({ "properties": props })
}

fn plate_settings() -> Value {
    json!({
        "analysis": {
            "tokenizer": {
                "lp_ngram": {
                    "type": "ngram", "min_gram": 2, "max_gram": 3,
                    "token_chars": ["letter", "digit"]
                }
            },
            "analyzer": {
                "lp_ngram": {"type": "custom", "tokenizer": "lp_ngram", "filter": ["lowercase"]}
            }
        }
    })
}

fn plate_mappings() -> Value {
    let mut props = metadata_properties();
    props["lp"] = json!({"type": "text", "analyzer": "lp_ngram"});
    props["lp_norm"] = json!({
        "type": "keyword",
        "fields": {"ngram": {"type": "text", "analyzer": "lp_ngram"}}
    });
    props["lp_canon"] = json!({"type": "keyword"});
    props["confidence"] = json!({"type": "float"});
    json!({ "properties": props })
}

fn filter_clauses(f: &Filter) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(s) = &f.source {
        out.push(json!({"term": {"source": s}}));
    }
    if f.from_ms.is_some() || f.to_ms.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(v) = f.from_ms {
            range.insert("gte".into(), json!(v));
        }
        if let Some(v) = f.to_ms {
            range.insert("lte".into(), json!(v));
        }
        out.push(json!({"range": {"captured_at_ms": range}}));
    }
    out
}

fn meta_doc(m: &Meta) -> serde_json::Map<String, Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!(m.id));
    doc.insert("pic".into(), json!(m.pic));
    doc.insert("time".into(), json!(format_time(m.time_ms)));
    doc.insert("time_ms".into(), json!(m.time_ms));
    doc.insert("source".into(), json!(m.source));
    doc.insert("captured_at".into(), json!(m.captured_at));
    doc.insert("captured_at_ms".into(), json!(m.captured_at_ms));
    doc
}

fn meta_from_source(src: &Value) -> Option<Meta> {
    Some(Meta {
        id: src.get("id")?.as_str()?.to_string(),
        pic: src.get("pic")?.as_str()?.to_string(),
        time_ms: src.get("time_ms")?.as_u64()?,
        source: src
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        captured_at: src
            .get("captured_at")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        captured_at_ms: src
            .get("captured_at_ms")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
}

fn hits_of(body: &Value) -> &[Value] {
    body.pointer("/hits/hits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

impl ElasticStore {
    /// Builds the client; does not contact ES (that happens on first use).
    pub fn new(cfg: ElasticConfig) -> Result<Self, StoreError> {
        let url = Url::parse(&cfg.url)
            .map_err(|e| StoreError::Internal(format!("elasticsearch.url: {e}")))?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(timeout)
            .disable_proxy();
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.auth(Credentials::Basic(u.clone(), p.clone()));
        }
        let transport = builder
            .build()
            .map_err(|e| StoreError::Internal(format!("elasticsearch transport: {e}")))?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            faces_index: format!("{}-faces", cfg.index_prefix),
            plates_index: format!("{}-plates", cfg.index_prefix),
            cfg,
            timeout,
            ready: OnceCell::new(),
        })
    }

    pub fn faces_index(&self) -> &str {
        &self.faces_index
    }

    pub fn plates_index(&self) -> &str {
        &self.plates_index
    }

    /// Sends a request within the time bound and classifies failures.
    async fn call<F>(&self, what: &str, fut: F) -> Result<Response, StoreError>
    where
        F: Future<Output = Result<Response, elasticsearch::Error>>,
    {
        // The transport has its own timeout; this outer one also covers
        // connection set-up and anything the transport does not bound.
        match tokio::time::timeout(self.timeout + Duration::from_millis(250), fut).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("{what}: {e}"))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a JSON body within the time bound; non-2xx statuses become errors
    /// (5xx → unavailable, others → internal) unless listed in `accept`.
    async fn body(&self, what: &str, resp: Response, accept: &[u16]) -> Result<Value, StoreError> {
        let status = resp.status_code().as_u16();
        let text = match tokio::time::timeout(self.timeout, resp.text()).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("{what}: {e}"))),
            Ok(Ok(t)) => t,
        };
        if (200..300).contains(&status) || accept.contains(&status) {
            return serde_json::from_str(&text)
                .or_else(|_| Ok(json!({ "status": status, "text": text })));
        }
        let detail = format!("{what}: HTTP {status}: {}", truncate(&text, 500));
        if status >= 500 || status == 429 {
            Err(StoreError::Unavailable(detail))
        } else {
            Err(StoreError::Internal(detail))
        }
    }

    /// Creates templates and indices once; retried on the next call if ES was
    /// not reachable.
    async fn ensure_ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| async {
                self.create_index(&self.faces_index, face_mappings(), json!({}))
                    .await?;
                self.create_index(&self.plates_index, plate_mappings(), plate_settings())
                    .await?;
                tracing::info!(faces = %self.faces_index, plates = %self.plates_index, "elasticsearch indices ready");
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn create_index(
        &self,
        index: &str,
        mappings: Value,
        settings: Value,
    ) -> Result<(), StoreError> {
        let template_name = format!("{index}-template");
        let template = json!({
            "index_patterns": [index],
            "priority": 500,
            "template": {"settings": settings, "mappings": mappings}
        });
        let resp = self
            .call(
                "put index template",
                self.client
                    .indices()
                    .put_index_template(IndicesPutIndexTemplateParts::Name(&template_name))
                    .body(template)
                    .send(),
            )
            .await?;
        if let Err(e) = self.body("put index template", resp, &[]).await {
            // Old or emulated servers may lack templates; the explicit index
            // creation below still sets the mappings.
            if matches!(e, StoreError::Internal(_)) {
                tracing::warn!(error = %e, "index template not accepted; creating index directly");
            } else {
                return Err(e);
            }
        }
        let resp = self
            .call(
                "create index",
                self.client
                    .indices()
                    .create(IndicesCreateParts::Index(index))
                    .body(json!({"settings": settings, "mappings": mappings}))
                    .send(),
            )
            .await?;
        let body = self.body("create index", resp, &[400]).await?;
        if body.get("error").is_some() {
            let kind = body
                .pointer("/error/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kind != "resource_already_exists_exception" {
                return Err(StoreError::Internal(format!(
                    "create index {index}: {}",
                    truncate(&body.to_string(), 500)
                )));
            }
        }
        Ok(())
    }

    async fn bulk_create(
        &self,
        index: &str,
        docs: Vec<(String, Value)>,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.ensure_ready().await?;
        let n = docs.len();
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(n * 2);
        for (id, doc) in docs {
            body.push(json!({"create": {"_id": id}}).into());
            body.push(doc.into());
        }
        let refresh = if self.cfg.refresh_on_ingest {
            Refresh::WaitFor
        } else {
            Refresh::False
        };
        let resp = self
            .call(
                "bulk",
                self.client
                    .bulk(BulkParts::Index(index))
                    .refresh(refresh)
                    .body(body)
                    .send(),
            )
            .await?;
        let body = self.body("bulk", resp, &[]).await?;
        let items = body
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| StoreError::Internal("bulk: no items in response".into()))?;
        if items.len() != n {
            return Err(StoreError::Internal(format!(
                "bulk: {} items for {n} documents",
                items.len()
            )));
        }
        items
            .iter()
            .map(|item| {
                let status = item
                    .pointer("/create/status")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                match status {
                    200 | 201 => Ok(Ingested { created: true }),
                    409 => Ok(Ingested { created: false }),
                    s if s >= 500 || s == 429 => Err(StoreError::Unavailable(format!(
                        "bulk item: {}",
                        truncate(&item.to_string(), 300)
                    ))),
                    _ => Err(StoreError::Internal(format!(
                        "bulk item: {}",
                        truncate(&item.to_string(), 300)
                    ))),
                }
            })
            .collect()
    }

    async fn search(&self, index: &str, query: Value) -> Result<Value, StoreError> {
        self.ensure_ready().await?;
        let indices = [index];
        let resp = self
            .call(
                "search",
                self.client
                    .search(SearchParts::Index(&indices))
                    .body(query)
                    .send(),
            )
            .await?;
        self.body("search", resp, &[]).await
    }

    async fn count(&self, index: &str) -> Result<u64, StoreError> {
        self.ensure_ready().await?;
        let indices = [index];
        let resp = self
            .call(
                "count",
                self.client.count(CountParts::Index(&indices)).send(),
            )
            .await?;
        let body = self.body("count", resp, &[]).await?;
        Ok(body.get("count").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Builds the face query of the configured mode; public for inspection in tests.
    pub fn face_query(&self, q: &FaceSearch) -> Value {
        let filters = filter_clauses(&q.filter);
        match self.cfg.face_query {
            FaceQueryMode::Knn => {
                let mut knn = json!({
                    "field": "face",
                    "query_vector": q.vector,
                    "k": q.k,
                    "num_candidates": self.cfg.num_candidates.max(q.k),
                });
                if !filters.is_empty() {
                    knn["filter"] = json!(filters);
                }
                json!({"size": q.k, "knn": knn, "_source": {"excludes": ["face"]}})
            }
            FaceQueryMode::ScriptScore => {
                let inner = if filters.is_empty() {
                    json!({"match_all": {}})
                } else {
                    json!({"bool": {"filter": filters}})
                };
                json!({
                    "size": q.k,
                    "query": {"script_score": {
                        "query": inner,
                        "script": {"source": SEED_SCRIPT, "params": {"query_vector": q.vector}}
                    }},
                    "_source": {"excludes": ["face"]}
                })
            }
        }
    }

    async fn search_faces_impl(&self, q: FaceSearch) -> Result<Vec<Hit>, StoreError> {
        let body = self.search(&self.faces_index, self.face_query(&q)).await?;
        let mode = self.cfg.face_query;
        let hits = hits_of(&body)
            .iter()
            .filter_map(|h| {
                let es_score = h.get("_score")?.as_f64()? as f32;
                let score = match mode {
                    FaceQueryMode::Knn => 2.0 * es_score - 1.0,
                    FaceQueryMode::ScriptScore => es_score - 1.0,
                };
                Some(Hit {
                    meta: meta_from_source(h.get("_source")?)?,
                    score,
                    licence_plate: None,
                    confidence: None,
                })
            })
            .collect();
        Ok(finish_hits(hits, q.k, q.min_score))
    }

    async fn search_plates_impl(&self, q: PlateSearch) -> Result<Vec<Hit>, StoreError> {
        let pq = &q.query;
        let mut should = vec![
            json!({"term": {"lp_canon": {"value": pq.canonical, "boost": 20.0}}}),
            json!({"term": {"lp_norm": {"value": pq.normalised, "boost": 10.0}}}),
            json!({"match": {"lp": {"query": pq.canonical}}}),
            json!({"match": {"lp_norm.ngram": {"query": pq.normalised}}}),
        ];
        if pq.max_distance > 0 {
            should.push(json!({"fuzzy": {"lp_norm": {
                "value": pq.normalised, "fuzziness": pq.max_distance.min(2), "boost": 5.0
            }}}));
        }
        let query = json!({
            "size": (q.k * 5).max(50),
            "query": {"bool": {
                "should": should,
                "minimum_should_match": 1,
                "filter": filter_clauses(&q.filter)
            }}
        });
        let body = self.search(&self.plates_index, query).await?;
        let hits = hits_of(&body)
            .iter()
            .filter_map(|h| {
                let src = h.get("_source")?;
                let lp = src.get("lp")?.as_str()?;
                let canon = src
                    .get("lp_canon")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| plate::canonical(lp));
                let norm = src
                    .get("lp_norm")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| plate::normalise(lp));
                let score = pq.score(&canon, &norm)?;
                Some(Hit {
                    meta: meta_from_source(src)?,
                    score,
                    licence_plate: Some(lp.to_string()),
                    confidence: src
                        .get("confidence")
                        .and_then(Value::as_f64)
                        .map(|c| c as f32),
                })
            })
            .collect();
        Ok(finish_hits(hits, q.k, q.min_score))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Store for ElasticStore {
    fn backend(&self) -> &'static str {
        "elasticsearch"
    }

    fn ingest_faces(&self, records: Vec<FaceRecord>) -> StoreFuture<'_, Vec<Ingested>> {
        Box::pin(async move {
            let docs = records
                .into_iter()
                .map(|r| {
                    let mut doc = meta_doc(&r.meta);
                    doc.insert("face".into(), json!(r.vector));
                    (r.meta.id, Value::Object(doc))
                })
                .collect();
            self.bulk_create(&self.faces_index, docs).await
        })
    }

    fn ingest_plates(&self, records: Vec<PlateRecord>) -> StoreFuture<'_, Vec<Ingested>> {
        Box::pin(async move {
            let docs = records
                .into_iter()
                .map(|r| {
                    let mut doc = meta_doc(&r.meta);
                    doc.insert("lp".into(), json!(r.licence_plate));
                    doc.insert("lp_canon".into(), json!(plate::canonical(&r.licence_plate)));
                    doc.insert("lp_norm".into(), json!(plate::normalise(&r.licence_plate)));
                    if let Some(c) = r.confidence {
                        doc.insert("confidence".into(), json!(c));
                    }
                    (r.meta.id, Value::Object(doc))
                })
                .collect();
            self.bulk_create(&self.plates_index, docs).await
        })
    }

    fn search_faces(&self, query: FaceSearch) -> StoreFuture<'_, Vec<Hit>> {
        Box::pin(self.search_faces_impl(query))
    }

    fn search_plates(&self, query: PlateSearch) -> StoreFuture<'_, Vec<Hit>> {
        Box::pin(self.search_plates_impl(query))
    }

    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        Box::pin(async move {
            Ok(StoreStats {
                faces: self.count(&self.faces_index).await?,
                plates: self.count(&self.plates_index).await?,
            })
        })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let resp = self.call("ping", self.client.ping().send()).await?;
            self.body("ping", resp, &[]).await.map(|_| ())
        })
    }
}
