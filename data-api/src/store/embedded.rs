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
//!   re-rank all of them by exact cosine, so returned scores are exact.
//! - The graph is persisted (`hnsw_rs` dump) under `<data_dir>/hnsw/` once the
//!   builder has caught up and the index has grown by a tenth since the last
//!   dump; a small manifest, replaced atomically, names the dump and the
//!   rows it covers. On start the indexer reloads it (searches stay exact
//!   meanwhile) and indexes only the rows added after it; a missing, stale or
//!   unreadable dump means a rebuild from SQLite, never a wrong answer. At 1M
//!   vectors a rebuild takes tens of minutes on a 2-core box, a reload seconds.
//! - `hnsw_rs` over `instant-distance`: it inserts incrementally from several
//!   threads and supports filtered search; `instant-distance` builds an
//!   immutable index that would have to be rebuilt on every ingest.
//! - Plate search: all reads are held normalised in memory and scored with
//!   `plate::PlateQuery` (edit distance), which is fast enough for one site
//!   (~100k reads in a few ms).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak, mpsc};
use std::time::{Duration, Instant};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

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

/// Directory (under the data dir) holding the persisted graph.
const INDEX_DIR: &str = "hnsw";
/// Names the current dump; replaced atomically after the dump is fsynced.
const MANIFEST: &str = "faces.json";
/// A new dump is written once the index has grown by this fraction since the
/// last one: a full dump at 1M vectors writes ~2.5 GB, so not on every batch;
/// after a crash at most this fraction is re-indexed.
const DUMP_GROWTH_DIV: usize = 10;
/// After a failed dump (disk full, permissions), wait this long before trying
/// again rather than rewriting gigabytes every wake-up.
const DUMP_RETRY: Duration = Duration::from_secs(600);

/// What `<data_dir>/hnsw/faces.json` records about the dump it names.
#[derive(Debug, Serialize, Deserialize)]
struct IndexManifest {
    /// `hnsw_rs` basename: files `<basename>.hnsw.graph` / `.hnsw.data`.
    basename: String,
    /// Slots `0..points` are in the dump.
    points: usize,
    /// Rowid of slot `points - 1`: proves the slots still mean the same rows.
    last_rowid: i64,
    dims: usize,
    m: usize,
}

/// Progress of the HNSW index, for tests, the bench and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStatus {
    /// Face vectors held.
    pub vectors: usize,
    /// Vectors in the in-memory graph.
    pub indexed: usize,
    /// Vectors covered by the dump on disk.
    pub persisted: usize,
    /// Vectors reloaded from disk at start (0 = built in this process).
    pub restored: usize,
}

/// How a face search ranks: through the index with this `ef_search` (exact
/// while no index is built), or exact brute force over everything.
#[derive(Debug, Clone, Copy)]
enum Rank {
    Index(usize),
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
    dir: PathBuf,
    persisted: AtomicUsize,
    restored: AtomicUsize,
    dump_failed_at: Mutex<Option<Instant>>,
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
            dir: dir.to_path_buf(),
            persisted: AtomicUsize::new(0),
            restored: AtomicUsize::new(0),
            dump_failed_at: Mutex::new(None),
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
        self.inner
            .search_faces(q, Rank::Index(self.inner.cfg.hnsw_ef_search))
    }

    /// Like `search_faces_blocking` with another HNSW `ef_search` (the
    /// bench's recall/latency sweep over one built index).
    pub fn search_faces_with_ef(&self, q: &FaceSearch, ef: usize) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, Rank::Index(ef))
    }

    /// The reference: exact brute force over everything, ignoring the index.
    pub fn search_faces_exact(&self, q: &FaceSearch) -> Result<Vec<Hit>, StoreError> {
        self.inner.search_faces(q, Rank::Exact)
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

    /// Index progress: in memory, on disk, reloaded at start.
    pub fn index_status(&self) -> IndexStatus {
        let f = self.inner.faces.read();
        IndexStatus {
            vectors: f.slots.len(),
            indexed: f.indexed,
            persisted: self.inner.persisted.load(Ordering::Acquire),
            restored: self.inner.restored.load(Ordering::Acquire),
        }
    }

    /// Blocks until the dump on disk covers the whole index (bench and
    /// tests), or the timeout passes; returns whether it did.
    pub fn wait_persisted(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.index_status();
            if s.vectors < self.inner.cfg.exact_below
                || (s.indexed >= s.vectors && s.persisted >= s.indexed)
            {
                return true;
            }
            if Instant::now() >= deadline {
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

/// Background thread: reloads the persisted graph, then indexes new vectors
/// once the set is large enough and persists the graph as it grows.
/// Holds only a weak handle, so dropping the store ends it.
fn run_indexer(store: Weak<Inner>, wake: mpsc::Receiver<()>) {
    if let Some(inner) = store.upgrade() {
        inner.restore_index();
    }
    loop {
        match wake.recv_timeout(Duration::from_millis(500)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = store.upgrade() else { return };
        while inner.index_step() {}
        inner.persist_if_due();
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// fsyncs a file or directory.
fn sync_path(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("fsync", path, e))
}

impl Inner {
    /// Reloads the dumped graph if its manifest still matches the rows and
    /// the configuration; otherwise leaves the index to be rebuilt.
    fn restore_index(&self) {
        let dir = self.dir.join(INDEX_DIR);
        let manifest_path = dir.join(MANIFEST);
        let Ok(text) = std::fs::read_to_string(&manifest_path) else {
            return; // no dump yet
        };
        let t = Instant::now();
        match self.load_dump(&dir, &text) {
            Ok((hnsw, points)) => {
                let mut f = self.faces.write();
                if f.hnsw.is_none() && f.indexed == 0 {
                    f.hnsw = Some(Arc::new(hnsw));
                    f.indexed = points;
                    self.persisted.store(points, Ordering::Release);
                    self.restored.store(points, Ordering::Release);
                    tracing::info!(
                        points,
                        secs = t.elapsed().as_secs_f64(),
                        "hnsw index reloaded"
                    );
                }
            }
            Err(e) => tracing::warn!("hnsw dump not used, rebuilding the index: {e}"),
        }
    }

    fn load_dump(&self, dir: &Path, manifest: &str) -> Result<(Index, usize), String> {
        let m: IndexManifest =
            serde_json::from_str(manifest).map_err(|e| format!("manifest: {e}"))?;
        if m.dims != FACE_DIMS || m.m != self.cfg.hnsw_m {
            return Err(format!(
                "dump has dims {} M {}, configured {} / {}",
                m.dims, m.m, FACE_DIMS, self.cfg.hnsw_m
            ));
        }
        {
            let f = self.faces.read();
            let last = m.points.checked_sub(1).and_then(|i| f.slots.get(i));
            if last.is_none_or(|s| s.rowid != m.last_rowid) {
                return Err(format!(
                    "dump covers {} rows ending at rowid {}, which the database does not match",
                    m.points, m.last_rowid
                ));
            }
        }
        // `load_hnsw` ties the graph's lifetime to the loader (for mmap
        // reloads); we reload into memory, so the loader is leaked (a few
        // hundred bytes, once per start) to give the graph a 'static lifetime.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &m.basename)));
        // hnsw_rs asserts on malformed files: a damaged dump must cost a
        // rebuild, not the process.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let io = io; // moved in, so the graph may borrow it for 'static
            io.load_hnsw::<f32, UnitDot>()
        }))
        .map_err(|_| "reading the dump panicked".to_string())?
        .map_err(|e| format!("reading the dump: {e}"))?;
        if loaded.get_nb_point() != m.points {
            return Err(format!(
                "dump holds {} points, manifest says {}",
                loaded.get_nb_point(),
                m.points
            ));
        }
        Ok((loaded, m.points))
    }

    /// Dumps the graph when it has grown enough since the last dump.
    fn persist_if_due(&self) {
        let (hnsw, points, last_rowid) = {
            let f = self.faces.read();
            match (
                &f.hnsw,
                f.indexed.checked_sub(1).and_then(|i| f.slots.get(i)),
            ) {
                (Some(h), Some(last)) => (Arc::clone(h), f.indexed, last.rowid),
                _ => return,
            }
        };
        let saved = self.persisted.load(Ordering::Acquire);
        if points <= saved || points - saved < (saved / DUMP_GROWTH_DIV).max(1) {
            return;
        }
        if self
            .dump_failed_at
            .lock()
            .is_some_and(|t| t.elapsed() < DUMP_RETRY)
        {
            return;
        }
        let t = Instant::now();
        // Only this thread inserts, so the graph holds exactly `points` now.
        match self.dump(&hnsw, points, last_rowid) {
            Ok(()) => {
                self.persisted.store(points, Ordering::Release);
                tracing::info!(
                    points,
                    secs = t.elapsed().as_secs_f64(),
                    "hnsw index persisted"
                );
            }
            Err(e) => {
                *self.dump_failed_at.lock() = Some(Instant::now());
                tracing::warn!("persisting the hnsw index failed (retry in 10 min): {e}");
            }
        }
    }

    /// Writes the dump, fsyncs it, then atomically points the manifest at it
    /// and removes older dumps. A crash at any step leaves the previous
    /// manifest and its files intact.
    fn dump(&self, hnsw: &Index, points: usize, last_rowid: i64) -> Result<(), String> {
        let dir = self.dir.join(INDEX_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let basename = hnsw
            .file_dump(&dir, &format!("faces-{points}-{stamp}"))
            .map_err(|e| format!("hnsw dump: {e}"))?;
        let keep = [
            format!("{basename}.hnsw.graph"),
            format!("{basename}.hnsw.data"),
        ];
        for name in &keep {
            sync_path(&dir.join(name))?;
        }
        let manifest = IndexManifest {
            basename,
            points,
            last_rowid,
            dims: FACE_DIMS,
            m: self.cfg.hnsw_m,
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| format!("manifest: {e}"))?;
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, json).map_err(|e| io_err("write", &tmp, e))?;
        sync_path(&tmp)?;
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &path, e))?;
        sync_path(&dir)?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != MANIFEST && !keep.contains(&name) {
                    // Best effort: a leftover old dump only costs disk space.
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

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

    /// Ranks slots with the index (when built) or by brute force.
    fn rank_faces(&self, q: &FaceSearch, how: Rank) -> Vec<(i64, f32)> {
        let f = self.faces.read();
        let n = f.slots.len();
        let k = q.k;
        let keep = |slot: usize| {
            q.filter.is_empty()
                || f.slots
                    .get(slot)
                    .is_some_and(|s| q.filter.accepts(&s.source, s.captured_at_ms))
        };
        let scored = match (&f.hnsw, how) {
            (Some(h), Rank::Index(ef)) if f.indexed > 0 => {
                let ef = ef.max(k);
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
        self.blocking(move |i| i.search_faces(&query, Rank::Index(i.cfg.hnsw_ef_search)))
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

    fn cfg() -> SearchConfig {
        SearchConfig {
            exact_below: 100,
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
                source: "cam".into(),
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

    const WAIT: Duration = Duration::from_secs(120);

    #[test]
    fn index_survives_restart_and_answers_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = StdRng::seed_from_u64(7);
        let qs: Vec<FaceSearch> = (0..20).map(|_| query(unit(&mut rng))).collect();

        let store = EmbeddedStore::open(dir.path(), cfg()).expect("open");
        store
            .ingest_faces_blocking(records(&mut rng, 0..600))
            .expect("ingest");
        assert!(store.wait_indexed(WAIT) && store.wait_persisted(WAIT));
        let status = store.index_status();
        assert_eq!(
            (status.indexed, status.persisted, status.restored),
            (600, 600, 0)
        );
        let before = answers(&store, &qs);
        drop(store);

        let store = EmbeddedStore::open(dir.path(), cfg()).expect("reopen");
        assert!(store.wait_indexed(WAIT));
        let status = store.index_status();
        assert_eq!(
            (status.indexed, status.restored),
            (600, 600),
            "graph reloaded, not rebuilt"
        );
        assert_eq!(answers(&store, &qs), before);

        // The reloaded graph keeps growing with new rows.
        let fresh = records(&mut rng, 600..650);
        let probe = query(fresh[17].vector.clone());
        store.ingest_faces_blocking(fresh).expect("ingest more");
        assert!(store.wait_indexed(WAIT));
        assert_eq!(store.index_status().indexed, 650);
        let hits = store.search_faces_blocking(&probe).expect("search");
        assert_eq!(hits[0].meta.id, "f617");
        assert!((hits[0].score - 1.0).abs() < 1e-5);
    }

    #[test]
    fn damaged_or_stale_dump_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = StdRng::seed_from_u64(8);
        let qs: Vec<FaceSearch> = (0..10).map(|_| query(unit(&mut rng))).collect();
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("open");
        store
            .ingest_faces_blocking(records(&mut rng, 0..300))
            .expect("ingest");
        assert!(store.wait_indexed(WAIT) && store.wait_persisted(WAIT));
        let exact: Vec<Vec<String>> = qs
            .iter()
            .map(|q| {
                let hits = store.search_faces_exact(q).expect("exact");
                hits.into_iter().map(|h| h.meta.id).collect()
            })
            .collect();
        drop(store);

        // Truncate the graph file: the reload fails and the index is rebuilt.
        let index_dir = dir.path().join(INDEX_DIR);
        for e in std::fs::read_dir(&index_dir).expect("index dir").flatten() {
            if e.path().to_string_lossy().ends_with(".hnsw.graph") {
                std::fs::write(e.path(), b"not a graph").expect("damage");
            }
        }
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("reopen");
        assert!(store.wait_indexed(WAIT));
        let status = store.index_status();
        assert_eq!((status.indexed, status.restored), (300, 0));
        for (q, want) in qs.iter().zip(&exact) {
            let got: Vec<String> = store
                .search_faces_blocking(q)
                .expect("search")
                .into_iter()
                .map(|h| h.meta.id)
                .collect();
            // 300 vectors at ef_search 128: the index visits everything.
            assert_eq!(&got, want);
        }
        assert!(store.wait_persisted(WAIT), "a fresh dump replaces it");
        drop(store);

        // A manifest naming rows the database does not have is ignored.
        let manifest = index_dir.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let mut m: IndexManifest = serde_json::from_str(&text).expect("parse");
        m.last_rowid += 1;
        std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("write");
        let store = EmbeddedStore::open(dir.path(), cfg()).expect("reopen");
        assert!(store.wait_indexed(WAIT));
        assert_eq!(store.index_status().restored, 0);
    }
}
