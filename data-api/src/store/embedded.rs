//! The default store: SQLite on disk for the records, an in-memory copy of the
//! face vectors for search, and an HNSW index once the set is large.
//!
//! - Durability: SQLite in WAL mode with `synchronous=FULL`. An ingest is
//!   acknowledged only after its transaction is fsynced, because the edge
//!   daemon deletes a record from its outbox on that acknowledgement: with
//!   `NORMAL` a power cut could roll back acknowledged rows. Records are
//!   batched one transaction per request, which keeps the fsync cost per
//!   request, not per record. A kill -9 loses nothing acknowledged either way.
//! - Face search: below `search.exact_below` vectors, exact brute force
//!   (`vector::brute_force`, parallel chunks). At or above it, a background
//!   thread builds an HNSW index (`hnsw_rs`) and keeps it up to date; searches
//!   take HNSW candidates, add an exact scan of the rows not yet indexed, and
//!   re-rank all of them by exact cosine. The index is rebuilt from SQLite on
//!   start (searches stay exact and correct meanwhile).
//! - `hnsw_rs` over `instant-distance`: it inserts incrementally from several
//!   threads and supports filtered search; `instant-distance` builds an
//!   immutable index that would have to be rebuilt on every ingest.
//! - Plate search: all reads are held normalised in memory and scored with
//!   `plate::PlateQuery` (edit distance), which is fast enough for one site
//!   (~100k reads in a few ms).

use std::path::Path;
use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    FaceRecord, FaceSearch, Hit, Ingested, Meta, PlateRecord, PlateSearch, Store, StoreError,
    StoreFuture, StoreStats, finish_hits,
};
use crate::config::{FACE_DIMS, SearchConfig};
use crate::plate;
use crate::vector::{self, Scored};

/// Cosine distance for unit vectors, using our vectorised dot product.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - vector::dot(a, b)).max(0.0)
    }
}

type Index = Hnsw<'static, f32, UnitDot>;

/// Rows handed to the HNSW builder per step, so searches see progress.
const INDEX_BATCH: usize = 20_000;

#[derive(Debug, Clone)]
struct FaceSlot {
    rowid: i64,
    source: String,
    captured_at_ms: i64,
}

#[derive(Default)]
struct FaceIndex {
    /// Row-major unit vectors; slot `i` is `vectors[i*DIMS..(i+1)*DIMS]`.
    vectors: Vec<f32>,
    slots: Vec<FaceSlot>,
    hnsw: Option<Arc<Index>>,
    /// Slots `0..indexed` are in `hnsw`.
    indexed: usize,
}

#[derive(Debug, Clone)]
struct PlateRow {
    rowid: i64,
    canonical: String,
    normalised: String,
    source: String,
    captured_at_ms: i64,
}

struct Inner {
    conn: Mutex<Connection>,
    faces: RwLock<FaceIndex>,
    plates: RwLock<Vec<PlateRow>>,
    cfg: SearchConfig,
    wake_indexer: Mutex<mpsc::Sender<()>>,
}

/// Handle to the embedded store; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS faces (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    vector BLOB NOT NULL,
    pic TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    captured_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS plates (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    lp TEXT NOT NULL,
    lp_canon TEXT NOT NULL,
    lp_norm TEXT NOT NULL,
    confidence REAL,
    pic TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    captured_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plates_norm ON plates(lp_norm);
";

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("sqlite: {e}"))
}

fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_vector(b: &[u8]) -> Option<Vec<f32>> {
    if b.len() != FACE_DIMS * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl EmbeddedStore {
    /// Opens (or creates) `<dir>/wayside.db`, loads vectors and plate reads
    /// into memory and starts the index builder.
    pub fn open(dir: &Path, cfg: SearchConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Internal(format!("create {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("wayside.db")).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;

        let faces = load_faces(&conn)?;
        let plates = load_plates(&conn)?;
        tracing::info!(
            faces = faces.slots.len(),
            plates = plates.len(),
            "embedded store loaded"
        );

        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            faces: RwLock::new(faces),
            plates: RwLock::new(plates),
            cfg,
            wake_indexer: Mutex::new(tx),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("hnsw-indexer".into())
            .spawn(move || run_indexer(weak, rx))
            .map_err(|e| StoreError::Internal(format!("spawn indexer: {e}")))?;
        inner.wake();
        Ok(Self { inner })
    }

    /// Blocking ingest (used by the bench; routes go through `Store`).
    pub fn ingest_faces_blocking(
        &self,
        records: Vec<FaceRecord>,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.inner.ingest_faces(records)
    }

    pub fn search_faces_blocking(&self, q: &FaceSearch) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, false)
    }

    /// The reference: exact brute force over everything, ignoring the index.
    pub fn search_faces_exact(&self, q: &FaceSearch) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, true)
    }

    /// Blocks until the HNSW index covers every vector (bench and tests), or
    /// the timeout passes; returns whether it caught up.
    pub fn wait_indexed(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            {
                let f = self.inner.faces.read();
                if f.slots.len() < self.inner.cfg.exact_below || f.indexed >= f.slots.len() {
                    return true;
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn blocking<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| StoreError::Internal(format!("store task failed: {e}")))?
        })
    }
}

fn load_faces(conn: &Connection) -> Result<FaceIndex, StoreError> {
    let mut idx = FaceIndex::default();
    let mut stmt = conn
        .prepare("SELECT rowid, vector, source, captured_at_ms FROM faces ORDER BY rowid")
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while let Some(row) = rows.next().map_err(db_err)? {
        let rowid: i64 = row.get(0).map_err(db_err)?;
        let blob: Vec<u8> = row.get(1).map_err(db_err)?;
        let Some(v) = blob_to_vector(&blob) else {
            return Err(StoreError::Internal(format!(
                "face row {rowid}: vector blob has {} bytes",
                blob.len()
            )));
        };
        idx.vectors.extend_from_slice(&v);
        idx.slots.push(FaceSlot {
            rowid,
            source: row.get(2).map_err(db_err)?,
            captured_at_ms: row.get(3).map_err(db_err)?,
        });
    }
    Ok(idx)
}

fn load_plates(conn: &Connection) -> Result<Vec<PlateRow>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT rowid, lp_canon, lp_norm, source, captured_at_ms FROM plates ORDER BY rowid",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PlateRow {
                rowid: r.get(0)?,
                canonical: r.get(1)?,
                normalised: r.get(2)?,
                source: r.get(3)?,
                captured_at_ms: r.get(4)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

/// Background thread: indexes new vectors once the set is large enough.
/// Holds only a weak handle, so dropping the store ends it.
fn run_indexer(store: Weak<Inner>, wake: mpsc::Receiver<()>) {
    loop {
        match wake.recv_timeout(Duration::from_millis(500)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = store.upgrade() else { return };
        while inner.index_step() {}
    }
}

impl Inner {
    fn wake(&self) {
        // A send only fails when the indexer has exited, i.e. on shutdown.
        let _ = self.wake_indexer.lock().send(());
    }

    /// Indexes one batch of pending vectors; returns whether there may be more.
    fn index_step(&self) -> bool {
        let (hnsw, start, batch) = {
            let f = self.faces.read();
            let n = f.slots.len();
            if n < self.cfg.exact_below || f.indexed >= n {
                return false;
            }
            let hnsw = match &f.hnsw {
                Some(h) => Arc::clone(h),
                None => Arc::new(Hnsw::new(
                    self.cfg.hnsw_m,
                    (n * 2).max(self.cfg.exact_below * 2),
                    16,
                    self.cfg.hnsw_ef_construction,
                    UnitDot,
                )),
            };
            let end = n.min(f.indexed + INDEX_BATCH);
            let batch: Vec<Vec<f32>> = (f.indexed..end)
                .map(|s| f.vectors[s * FACE_DIMS..(s + 1) * FACE_DIMS].to_vec())
                .collect();
            (hnsw, f.indexed, batch)
        };
        let items: Vec<(&Vec<f32>, usize)> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| (v, start + i))
            .collect();
        hnsw.parallel_insert(&items);
        let mut f = self.faces.write();
        if f.hnsw.is_none() {
            f.hnsw = Some(hnsw);
        }
        f.indexed = start + batch.len();
        tracing::debug!(indexed = f.indexed, total = f.slots.len(), "hnsw progress");
        true
    }

    fn ingest_faces(&self, records: Vec<FaceRecord>) -> Result<Vec<Ingested>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err)?;
        let mut out = Vec::with_capacity(records.len());
        let mut fresh = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO faces (id, vector, pic, time_ms, source, captured_at, captured_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
                )
                .map_err(db_err)?;
            for r in records {
                let m = &r.meta;
                let n = stmt
                    .execute(params![
                        m.id,
                        vector_to_blob(&r.vector),
                        m.pic,
                        m.time_ms as i64,
                        m.source,
                        m.captured_at,
                        m.captured_at_ms
                    ])
                    .map_err(db_err)?;
                out.push(Ingested { created: n == 1 });
                if n == 1 {
                    fresh.push((tx.last_insert_rowid(), r));
                }
            }
        }
        tx.commit().map_err(db_err)?;
        if !fresh.is_empty() {
            let mut f = self.faces.write();
            for (rowid, r) in fresh {
                f.vectors.extend_from_slice(&r.vector);
                f.slots.push(FaceSlot {
                    rowid,
                    source: r.meta.source,
                    captured_at_ms: r.meta.captured_at_ms,
                });
            }
            drop(f);
            self.wake();
        }
        Ok(out)
    }

    fn ingest_plates(&self, records: Vec<PlateRecord>) -> Result<Vec<Ingested>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db_err)?;
        let mut out = Vec::with_capacity(records.len());
        let mut fresh = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO plates (id, lp, lp_canon, lp_norm, confidence, pic, time_ms, source,
                                         captured_at, captured_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO NOTHING",
                )
                .map_err(db_err)?;
            for r in records {
                let m = &r.meta;
                let canonical = plate::canonical(&r.licence_plate);
                let normalised = plate::normalise(&r.licence_plate);
                let n = stmt
                    .execute(params![
                        m.id,
                        r.licence_plate,
                        canonical,
                        normalised,
                        r.confidence,
                        m.pic,
                        m.time_ms as i64,
                        m.source,
                        m.captured_at,
                        m.captured_at_ms
                    ])
                    .map_err(db_err)?;
                out.push(Ingested { created: n == 1 });
                if n == 1 {
                    fresh.push(PlateRow {
                        rowid: tx.last_insert_rowid(),
                        canonical,
                        normalised,
                        source: r.meta.source,
                        captured_at_ms: r.meta.captured_at_ms,
                    });
                }
            }
        }
        tx.commit().map_err(db_err)?;
        self.plates.write().extend(fresh);
        Ok(out)
    }

    /// Ranks slots; `exact` forces brute force over everything.
    fn rank_faces(&self, q: &FaceSearch, exact: bool) -> Vec<(i64, f32)> {
        let f = self.faces.read();
        let n = f.slots.len();
        let k = q.k;
        let keep = |slot: usize| {
            q.filter.is_empty()
                || f.slots
                    .get(slot)
                    .is_some_and(|s| q.filter.accepts(&s.source, s.captured_at_ms))
        };
        let scored = match (&f.hnsw, exact) {
            (Some(h), false) if f.indexed > 0 => {
                let ef = self.cfg.hnsw_ef_search.max(k);
                let filter_fn = |id: &usize| keep(*id);
                let neighbours = if q.filter.is_empty() {
                    h.search(&q.vector, k, ef)
                } else {
                    h.search_filter(&q.vector, k, ef, Some(&filter_fn))
                };
                // Exact re-rank of the candidates, plus an exact scan of the
                // tail the builder has not reached yet.
                let mut cands: Vec<Scored> = neighbours
                    .iter()
                    .filter(|nb| nb.d_id < n && keep(nb.d_id))
                    .filter_map(|nb| {
                        f.vectors
                            .get(nb.d_id * FACE_DIMS..(nb.d_id + 1) * FACE_DIMS)
                            .map(|row| Scored {
                                slot: nb.d_id,
                                score: vector::dot(&q.vector, row),
                            })
                    })
                    .collect();
                let tail_start = f.indexed.min(n);
                cands.extend(vector::brute_force(
                    &q.vector,
                    &f.vectors,
                    FACE_DIMS,
                    tail_start..n,
                    k,
                    keep,
                ));
                cands.sort_unstable_by_key(|s| s.slot);
                cands.dedup_by_key(|s| s.slot);
                let ranked = vector::top_k(cands, k);
                if ranked.len() < k && !q.filter.is_empty() {
                    // A selective filter starves the graph walk: fall back to exact.
                    vector::brute_force(&q.vector, &f.vectors, FACE_DIMS, 0..n, k, keep)
                } else {
                    ranked
                }
            }
            _ => vector::brute_force(&q.vector, &f.vectors, FACE_DIMS, 0..n, k, keep),
        };
        scored
            .into_iter()
            .filter_map(|s| f.slots.get(s.slot).map(|slot| (slot.rowid, s.score)))
            .collect()
    }

    fn search_faces(&self, q: &FaceSearch, exact: bool) -> Result<Vec<Hit>, StoreError> {
        let ranked = self.rank_faces(q, exact);
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, pic, time_ms, source, captured_at, captured_at_ms FROM faces WHERE rowid = ?1",
            )
            .map_err(db_err)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for (rowid, score) in ranked {
            let meta = stmt
                .query_row([rowid], |r| {
                    Ok(Meta {
                        id: r.get(0)?,
                        pic: r.get(1)?,
                        time_ms: r.get::<_, i64>(2)?.max(0) as u64,
                        source: r.get(3)?,
                        captured_at: r.get(4)?,
                        captured_at_ms: r.get(5)?,
                    })
                })
                .optional()
                .map_err(db_err)?;
            if let Some(meta) = meta {
                hits.push(Hit {
                    meta,
                    score,
                    licence_plate: None,
                    confidence: None,
                });
            }
        }
        Ok(finish_hits(hits, q.k, q.min_score))
    }

    fn search_plates(&self, q: &PlateSearch) -> Result<Vec<Hit>, StoreError> {
        let mut scored: Vec<(f32, i64, i64)> = self
            .plates
            .read()
            .iter()
            .filter(|p| q.filter.accepts(&p.source, p.captured_at_ms))
            .filter_map(|p| {
                q.query
                    .score(&p.canonical, &p.normalised)
                    .map(|s| (s, p.captured_at_ms, p.rowid))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        scored.truncate(q.k);
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, pic, time_ms, source, captured_at, captured_at_ms, lp, confidence
                 FROM plates WHERE rowid = ?1",
            )
            .map_err(db_err)?;
        let mut hits = Vec::with_capacity(scored.len());
        for (score, _, rowid) in scored {
            let hit = stmt
                .query_row([rowid], |r| {
                    Ok(Hit {
                        meta: Meta {
                            id: r.get(0)?,
                            pic: r.get(1)?,
                            time_ms: r.get::<_, i64>(2)?.max(0) as u64,
                            source: r.get(3)?,
                            captured_at: r.get(4)?,
                            captured_at_ms: r.get(5)?,
                        },
                        score,
                        licence_plate: Some(r.get(6)?),
                        confidence: r.get::<_, Option<f64>>(7)?.map(|c| c as f32),
                    })
                })
                .optional()
                .map_err(db_err)?;
            hits.extend(hit);
        }
        Ok(finish_hits(hits, q.k, q.min_score))
    }

    fn stats(&self) -> StoreStats {
        let f = self.faces.read();
        StoreStats {
            faces: f.slots.len() as u64,
            plates: self.plates.read().len() as u64,
            faces_indexed: Some(f.indexed as u64),
        }
    }
}

impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn ingest_faces(&self, records: Vec<FaceRecord>) -> StoreFuture<'_, Vec<Ingested>> {
        self.blocking(move |i| i.ingest_faces(records))
    }

    fn ingest_plates(&self, records: Vec<PlateRecord>) -> StoreFuture<'_, Vec<Ingested>> {
        self.blocking(move |i| i.ingest_plates(records))
    }

    fn search_faces(&self, query: FaceSearch) -> StoreFuture<'_, Vec<Hit>> {
        self.blocking(move |i| i.search_faces(&query, false))
    }

    fn search_plates(&self, query: PlateSearch) -> StoreFuture<'_, Vec<Hit>> {
        self.blocking(move |i| i.search_plates(&query))
    }

    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        let stats = self.inner.stats();
        Box::pin(async move { Ok(stats) })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        self.blocking(|i| {
            i.conn
                .lock()
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(db_err)
        })
    }
}
