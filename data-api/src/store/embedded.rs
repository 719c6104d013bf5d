//! The default store: SQLite on disk for the records, and in memory the face
//! vectors plus their binary codes for search.
//!
//! - Durability: SQLite in WAL mode with `synchronous=FULL`. An ingest is
//!   acknowledged only after its transaction is fsynced, because the edge
//!   daemon deletes a record from its outbox on that acknowledgement: with
//!   `NORMAL` a power cut could roll back acknowledged rows. Records are
//!   batched one transaction per request, which keeps the fsync cost per
//!   request, not per record. A kill -9 loses nothing acknowledged either way.
//! - Face search: below `search.exact_below` vectors, exact brute force
//!   (`vector::brute_force`, parallel chunks). At or above it, binary
//!   quantization (`binary`): a scan of one sign bit per dimension picks the
//!   `search.rescore` best candidates, which are re-ranked by exact cosine,
//!   so returned scores are exact. Codes are appended on ingest and derived
//!   from the vectors on load, so there is no index to build or persist: an
//!   HNSW graph (`hnsw_rs`, used before) built at ~350 inserts/s/core here,
//!   i.e. hours for 1M vectors, and still missed a tenth of the top 10.
//! - Plate search: all reads are held normalised in memory and scored with
//!   `plate::PlateQuery` (edit distance), which is fast enough for one site
//!   (~100k reads in a few ms).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    FaceRecord, FaceSearch, Hit, Ingested, Meta, PlateRecord, PlateSearch, Store, StoreError,
    StoreFuture, StoreStats, finish_hits,
};
use crate::binary::{self, Code};
use crate::config::{FACE_DIMS, SearchConfig};
use crate::plate;
use crate::vector;

/// Where versions before binary quantization kept their HNSW dump (up to
/// ~2.5 GB at 1M vectors); removed on open, nothing reads it any more.
const OLD_INDEX_DIR: &str = "hnsw";

/// How a face search ranks: binary candidates with this many exact
/// rescores (exact below `exact_below`), or exact brute force regardless.
#[derive(Debug, Clone, Copy)]
enum Rank {
    Binary(usize),
    Exact,
}

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
    /// `codes[i]` = `binary::encode` of slot `i`.
    codes: Vec<Code>,
    slots: Vec<FaceSlot>,
}

impl FaceIndex {
    fn push(&mut self, rowid: i64, vector: &[f32], source: String, captured_at_ms: i64) {
        self.vectors.extend_from_slice(vector);
        self.codes.push(binary::encode(vector));
        self.slots.push(FaceSlot {
            rowid,
            source,
            captured_at_ms,
        });
    }
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
    // SQLite answers ENOSPC with SQLITE_FULL and rolls the transaction back.
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        StoreError::Full(format!("sqlite: {e}"))
    } else {
        StoreError::Internal(format!("sqlite: {e}"))
    }
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
    /// Opens (or creates) `<dir>/wayside.db` and loads vectors (encoding
    /// their binary codes) and plate reads into memory.
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

        let old = dir.join(OLD_INDEX_DIR);
        if old.is_dir() {
            match std::fs::remove_dir_all(&old) {
                Ok(()) => tracing::info!(path = %old.display(), "removed the unused hnsw dump"),
                Err(e) => {
                    tracing::warn!(path = %old.display(), "removing the unused hnsw dump: {e}")
                }
            }
        }

        let t = std::time::Instant::now();
        let faces = load_faces(&conn)?;
        let plates = load_plates(&conn)?;
        tracing::info!(
            faces = faces.slots.len(),
            plates = plates.len(),
            secs = t.elapsed().as_secs_f64(),
            "embedded store loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                faces: RwLock::new(faces),
                plates: RwLock::new(plates),
                cfg,
            }),
        })
    }

    /// Blocking ingest (used by the bench; routes go through `Store`).
    pub fn ingest_faces_blocking(
        &self,
        records: Vec<FaceRecord>,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.inner.ingest_faces(records)
    }

    pub fn search_faces_blocking(&self, q: &FaceSearch) -> Result<Vec<Hit>, StoreError> {
        self.inner
            .search_faces(q, Rank::Binary(self.inner.cfg.rescore))
    }

    /// Like `search_faces_blocking` with another `rescore` count (the
    /// bench's recall/latency sweep).
    pub fn search_faces_with_rescore(
        &self,
        q: &FaceSearch,
        rescore: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, Rank::Binary(rescore))
    }

    /// The reference: exact brute force over everything.
    pub fn search_faces_exact(&self, q: &FaceSearch) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, Rank::Exact)
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
        idx.push(
            rowid,
            &v,
            row.get(2).map_err(db_err)?,
            row.get(3).map_err(db_err)?,
        );
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

impl Inner {
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
                f.push(rowid, &r.vector, r.meta.source, r.meta.captured_at_ms);
            }
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

    /// Ranks slots by binary candidates + exact rescore, or by brute force
    /// (below `exact_below`, or when asked for the reference).
    fn rank_faces(&self, q: &FaceSearch, how: Rank) -> Vec<(i64, f32)> {
        let f = self.faces.read();
        let n = f.slots.len();
        let filtered = !q.filter.is_empty();
        let keep = |slot: usize| {
            !filtered
                || f.slots
                    .get(slot)
                    .is_some_and(|s| q.filter.accepts(&s.source, s.captured_at_ms))
        };
        let scored = match how {
            Rank::Binary(rescore) if n >= self.cfg.exact_below => {
                binary::search(&q.vector, &f.vectors, &f.codes, q.k, rescore, keep)
            }
            _ => vector::brute_force(&q.vector, &f.vectors, FACE_DIMS, 0..n, q.k, keep),
        };
        scored
            .into_iter()
            .filter_map(|s| f.slots.get(s.slot).map(|slot| (slot.rowid, s.score)))
            .collect()
    }

    fn search_faces(&self, q: &FaceSearch, how: Rank) -> Result<Vec<Hit>, StoreError> {
        let ranked = self.rank_faces(q, how);
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
        StoreStats {
            faces: self.faces.read().slots.len() as u64,
            plates: self.plates.read().len() as u64,
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
        self.blocking(move |i| i.search_faces(&query, Rank::Binary(i.cfg.rescore)))
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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::store::Filter;

    /// Binary search from 100 vectors on, 50 candidates rescored.
    fn cfg() -> SearchConfig {
        SearchConfig {
            exact_below: 100,
            rescore: 50,
            ..SearchConfig::default()
        }
    }

    fn unit(rng: &mut StdRng) -> Vec<f32> {
        let raw: Vec<f64> = (0..FACE_DIMS).map(|_| rng.random::<f64>() - 0.5).collect();
        vector::validate(&raw, FACE_DIMS).expect("valid vector")
    }

    fn records(rng: &mut StdRng, ids: std::ops::Range<usize>) -> Vec<FaceRecord> {
        ids.map(|i| FaceRecord {
            meta: Meta {
                id: format!("f{i}"),
                pic: format!("{i:064x}.jpg"),
                time_ms: i as u64,
                source: if i.is_multiple_of(2) { "even" } else { "odd" }.into(),
                captured_at: "2026-11-24T08:00:00Z".into(),
                captured_at_ms: 0,
            },
            vector: unit(rng),
        })
        .collect()
    }

    fn query(v: Vec<f32>) -> FaceSearch {
        FaceSearch {
            vector: v,
            k: 10,
            min_score: None,
            filter: Filter::default(),
        }
    }

    fn answers(store: &EmbeddedStore, qs: &[FaceSearch]) -> Vec<Vec<(String, f32)>> {
        qs.iter()
            .map(|q| {
                store
                    .search_faces_blocking(q)
                    .expect("search")
                    .into_iter()
                    .map(|h| (h.meta.id, h.score))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn binary_search_finds_stored_vectors_and_survives_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = StdRng::seed_from_u64(7);
        let qs: Vec<FaceSearch> = (0..20).map(|_| query(unit(&mut rng))).collect();
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("open");
        let recs = records(&mut rng, 0..600);
        let probes: Vec<FaceSearch> = [3, 300, 599]
            .iter()
            .map(|&i| query(recs[i].vector.clone()))
            .collect();
        store.ingest_faces_blocking(recs).expect("ingest");
        for (p, want) in probes.iter().zip(["f3", "f300", "f599"]) {
            let hits = store.search_faces_blocking(p).expect("search");
            assert_eq!(hits.len(), 10);
            assert_eq!(hits[0].meta.id, want);
            assert!((hits[0].score - 1.0).abs() < 1e-5);
        }
        let before = answers(&store, &qs);
        drop(store);

        // Codes are derived from the stored vectors: same answers, no build.
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("reopen");
        assert_eq!(answers(&store, &qs), before);
        let fresh = records(&mut rng, 600..650);
        let probe = query(fresh[17].vector.clone());
        store.ingest_faces_blocking(fresh).expect("ingest more");
        let hits = store.search_faces_blocking(&probe).expect("search");
        assert_eq!(hits[0].meta.id, "f617");
    }

    #[test]
    fn rescoring_everything_is_exact_and_filters_apply_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = StdRng::seed_from_u64(8);
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("open");
        store
            .ingest_faces_blocking(records(&mut rng, 0..300))
            .expect("ingest");
        let ids = |hits: Vec<Hit>| hits.into_iter().map(|h| h.meta.id).collect::<Vec<_>>();
        for _ in 0..10 {
            let mut q = query(unit(&mut rng));
            let exact = ids(store.search_faces_exact(&q).expect("exact"));
            let all = ids(store.search_faces_with_rescore(&q, 300).expect("binary"));
            assert_eq!(all, exact);

            // Only "odd" rows compete for the candidates, so a filter never
            // starves the result.
            q.filter.source = Some("odd".into());
            let odd = store.search_faces_blocking(&q).expect("filtered");
            assert_eq!(odd.len(), 10);
            assert!(odd.iter().all(|h| h.meta.source == "odd"));
        }
    }

    #[test]
    fn old_hnsw_dump_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join(OLD_INDEX_DIR);
        std::fs::create_dir_all(&old).expect("mkdir");
        std::fs::write(old.join("faces.json"), b"{}").expect("write");
        drop(EmbeddedStore::open(dir.path(), cfg()).expect("open"));
        assert!(!old.exists());
    }
}
