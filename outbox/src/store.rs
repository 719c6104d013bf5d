//! The queue on disk: one SQLite table in `<dir>/outbox.db`, owned by one
//! thread (see `db.rs`). Synchronous code, unit-tested without a runtime.
//!
//! - Images are stored as blobs in the same row as their record, not as
//!   files beside the database: one transaction makes a record and its image
//!   durable together, so a crash can leave neither a record without its
//!   image nor an orphan file to sweep, and one fsync covers both. Crops are
//!   tens of kB, where SQLite reads and writes blobs as fast as the
//!   filesystem does.
//! - WAL with `synchronous=FULL`: `enqueue` answering "accepted" lets the
//!   pipeline forget the record, so the commit must survive a power cut,
//!   which is how roadside boxes usually stop. (`NORMAL` in WAL mode
//!   survives a process crash but may lose the last commits on power loss.)
//!   The cost, one fsync per commit, is amortised by committing concurrent
//!   enqueues together.
//! - `locking_mode=EXCLUSIVE`: a second process opening the same outbox
//!   fails instead of forwarding the same queue twice.
//! - Order of acceptance is the rowid (`seq`): rows are only ever appended.
//! - The bound counts every row, pending or dead-lettered. Past it, the
//!   oldest dead letter goes first, then the oldest pending record.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::OutboxError;
use crate::metrics::Counters;
use crate::record::Kind;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    image BLOB,
    pic_url TEXT,
    size INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    accepted_ms INTEGER NOT NULL,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS records_state_seq ON records (state, seq);
";

const PENDING: &str = "pending";
const DEAD: &str = "dead";

/// A record ready to store: body serialised once, on the caller's task.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub kind: Kind,
    pub id: String,
    pub body: String,
    pub image: Option<Vec<u8>>,
}

impl Prepared {
    pub fn size(&self) -> u64 {
        (self.body.len() + self.image.as_ref().map_or(0, Vec::len)) as u64
    }
}

/// What `enqueue` answers once the record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; it will be delivered.
    New,
    /// A record of this kind and id is already in the outbox; nothing changed.
    AlreadyQueued,
}

/// The oldest pending record, as the forwarder needs it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub seq: i64,
    pub kind: Kind,
    pub id: String,
    pub body: String,
    pub image: Option<Vec<u8>>,
    pub pic_url: Option<String>,
    pub attempts: u32,
}

/// A record the data API refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub kind: Kind,
    pub id: String,
    pub attempts: u32,
    pub error: String,
}

pub(crate) struct Store {
    conn: Connection,
    max_records: u64,
    max_bytes: u64,
    counters: Arc<Counters>,
    pending: u64,
    dead: u64,
    bytes: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    pub fn open(
        dir: &Path,
        max_records: u64,
        max_bytes: u64,
        counters: Arc<Counters>,
    ) -> Result<Store, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|source| OutboxError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(dir.join("outbox.db"))?;
        // Only this thread uses the file; waiting would only delay the
        // "locked by another process" error.
        conn.busy_timeout(std::time::Duration::from_millis(200))?;
        // Exclusive before the first access, so WAL needs no shared memory
        // and the lock is held from here on.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Keep the WAL file from staying at its high-water mark after a burst.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        conn.execute_batch(SCHEMA)?;
        let mut store = Store {
            conn,
            max_records,
            max_bytes,
            counters,
            pending: 0,
            dead: 0,
            bytes: 0,
        };
        store.recount()?;
        Ok(store)
    }

    fn recount(&mut self) -> Result<(), rusqlite::Error> {
        let (mut pending, mut dead, mut bytes) = (0u64, 0u64, 0u64);
        let mut stmt = self.conn.prepare(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM records GROUP BY state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, n, size) = row?;
            let (n, size) = (n.max(0) as u64, size.max(0) as u64);
            if state == DEAD {
                dead += n;
            } else {
                pending += n;
            }
            bytes += size;
        }
        drop(stmt);
        (self.pending, self.dead, self.bytes) = (pending, dead, bytes);
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        Counters::set(&self.counters.pending, self.pending);
        Counters::set(&self.counters.dead_letters, self.dead);
        Counters::set(&self.counters.bytes, self.bytes);
    }

    /// Stores `records` in one transaction (one fsync), dropping the oldest
    /// rows past the bound. Per-record answers, in order.
    pub fn insert(
        &mut self,
        records: &[Prepared],
    ) -> Result<Vec<Result<Accepted, OutboxError>>, rusqlite::Error> {
        let (mut pending, mut dead, mut bytes) = (self.pending, self.dead, self.bytes);
        let mut answers = Vec::with_capacity(records.len());
        let mut dropped: Vec<(String, String, u64)> = Vec::new();
        let mut new = 0u64;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (kind, id, body, image, size, accepted_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kind, id) DO NOTHING",
            )?;
            let mut oldest = tx.prepare_cached(
                "SELECT seq, kind, id, size FROM records WHERE state = ?1 ORDER BY seq LIMIT 1",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
            let at = now_ms();
            for r in records {
                let size = r.size();
                if size > self.max_bytes {
                    answers.push(Err(OutboxError::TooLarge {
                        id: r.id.clone(),
                        size,
                        max: self.max_bytes,
                    }));
                    continue;
                }
                let n = insert.execute(params![
                    r.kind.as_str(),
                    r.id,
                    r.body,
                    r.image,
                    size as i64,
                    at
                ])?;
                if n == 0 {
                    answers.push(Ok(Accepted::AlreadyQueued));
                    continue;
                }
                answers.push(Ok(Accepted::New));
                new += 1;
                pending += 1;
                bytes += size;
                // The row just inserted fits on its own, so this stops
                // before reaching it.
                while pending + dead > self.max_records || bytes > self.max_bytes {
                    let state = if dead > 0 { DEAD } else { PENDING };
                    let victim = oldest
                        .query_row([state], |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, i64>(3)?.max(0) as u64,
                            ))
                        })
                        .optional()?;
                    let Some((seq, kind, id, size)) = victim else {
                        break;
                    };
                    delete.execute([seq])?;
                    bytes -= size;
                    if state == DEAD {
                        dead -= 1;
                        tracing::info!(kind, id, "outbox full: dead letter removed");
                    } else {
                        pending -= 1;
                        dropped.push((kind, id, size));
                    }
                }
            }
        }
        tx.commit()?;
        for (kind, id, size) in &dropped {
            tracing::warn!(
                kind,
                id,
                size,
                max_records = self.max_records,
                max_bytes = self.max_bytes,
                "outbox full: oldest pending record dropped unsent"
            );
        }
        (self.pending, self.dead, self.bytes) = (pending, dead, bytes);
        Counters::add(&self.counters.accepted, new);
        Counters::add(&self.counters.dropped, dropped.len() as u64);
        self.publish();
        Ok(answers)
    }

    pub fn next_pending(&self) -> Result<Option<Row>, rusqlite::Error> {
        self.conn
            .prepare_cached(
                "SELECT seq, kind, id, body, image, pic_url, attempts FROM records
                 WHERE state = 'pending' ORDER BY seq LIMIT 1",
            )?
            .query_row([], |r| {
                let kind: String = r.get(1)?;
                Ok(Row {
                    seq: r.get(0)?,
                    // Only this module writes `kind`, from `Kind::as_str`.
                    kind: Kind::parse(&kind).unwrap_or(Kind::Face),
                    id: r.get(2)?,
                    body: r.get(3)?,
                    image: r.get(4)?,
                    pic_url: r.get(5)?,
                    attempts: r.get(6)?,
                })
            })
            .optional()
    }

    /// Remembers the uploaded image's URL, so a retry (or a restart) posts
    /// the record without uploading again.
    pub fn set_pic_url(&self, seq: i64, url: &str) -> Result<(), rusqlite::Error> {
        self.conn
            .prepare_cached("UPDATE records SET pic_url = ?2 WHERE seq = ?1")?
            .execute(params![seq, url])?;
        Ok(())
    }

    /// Counts a failed attempt; returns the attempts so far.
    pub fn record_failure(&self, seq: i64, error: &str) -> Result<u32, rusqlite::Error> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE records SET attempts = attempts + 1, last_error = ?2
                 WHERE seq = ?1 RETURNING attempts",
            )?
            .query_row(params![seq, error], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Removes a delivered record. False when it was no longer there
    /// (dropped for space while in flight: counted as dropped, not here).
    pub fn delivered(&mut self, seq: i64) -> Result<bool, rusqlite::Error> {
        let size: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM records WHERE seq = ?1 AND state = 'pending' RETURNING size",
            )?
            .query_row([seq], |r| r.get(0))
            .optional()?;
        let Some(size) = size else { return Ok(false) };
        self.pending -= 1;
        self.bytes -= size.max(0) as u64;
        Counters::add(&self.counters.delivered, 1);
        self.publish();
        Ok(true)
    }

    /// Sets a refused record aside; it stays (counted in the bound) until
    /// requeued or pushed out by newer records.
    pub fn dead_letter(&mut self, seq: i64, error: &str) -> Result<bool, rusqlite::Error> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE records SET state = 'dead', attempts = attempts + 1, last_error = ?2
                 WHERE seq = ?1 AND state = 'pending'",
            )?
            .execute(params![seq, error])?;
        if n == 0 {
            return Ok(false);
        }
        self.pending -= 1;
        self.dead += 1;
        Counters::add(&self.counters.dead_lettered, 1);
        self.publish();
        Ok(true)
    }

    /// Dead letters, oldest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, rusqlite::Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, id, attempts, COALESCE(last_error, '') FROM records
             WHERE state = 'dead' ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            let kind: String = r.get(0)?;
            Ok(DeadLetter {
                kind: Kind::parse(&kind).unwrap_or(Kind::Face),
                id: r.get(1)?,
                attempts: r.get(2)?,
                error: r.get(3)?,
            })
        })?;
        rows.collect()
    }

    /// Puts every dead letter back in the queue, at its original place in
    /// the order of acceptance (e.g. after fixing the data API's config).
    pub fn requeue_dead(&mut self) -> Result<u64, rusqlite::Error> {
        let n = self.conn.execute(
            "UPDATE records SET state = 'pending', attempts = 0 WHERE state = 'dead'",
            [],
        )? as u64;
        self.pending += n;
        self.dead -= n.min(self.dead);
        self.publish();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, image_len: usize) -> Prepared {
        Prepared {
            kind: Kind::Plate,
            id: id.into(),
            body: "{}".into(),
            image: Some(vec![0xAB; image_len]),
        }
    }

    fn open(dir: &Path, max_records: u64, max_bytes: u64) -> (Store, Arc<Counters>) {
        let c = Arc::new(Counters::default());
        (
            Store::open(dir, max_records, max_bytes, c.clone()).expect("open"),
            c,
        )
    }

    fn pending_ids(s: &mut Store) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(r) = s.next_pending().expect("next") {
            out.push(r.id.clone());
            assert!(s.delivered(r.seq).expect("delivered"));
        }
        out
    }

    #[test]
    fn fifo_idempotent_and_persistent() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (mut s, c) = open(dir.path(), 100, 1 << 20);
            let a = s
                .insert(&[rec("a", 10), rec("b", 10), rec("a", 10)])
                .expect("insert");
            assert_eq!(a[0].as_ref().ok(), Some(&Accepted::New));
            assert_eq!(a[2].as_ref().ok(), Some(&Accepted::AlreadyQueued));
            s.insert(&[rec("c", 10)]).expect("insert");
            let head = s.next_pending().expect("next").expect("a row");
            s.set_pic_url(head.seq, "http://x/media/a.jpg")
                .expect("url");
            assert_eq!(s.record_failure(head.seq, "refused").expect("fail"), 1);
            let m = c.snapshot();
            assert_eq!((m.accepted, m.pending, m.bytes), (3, 3, 36));
        }
        let (mut s, c) = open(dir.path(), 100, 1 << 20);
        assert_eq!(c.snapshot().pending, 3);
        let head = s.next_pending().expect("next").expect("a row");
        assert_eq!(head.pic_url.as_deref(), Some("http://x/media/a.jpg"));
        assert_eq!(head.attempts, 1);
        assert_eq!(pending_ids(&mut s), ["a", "b", "c"]);
        let m = c.snapshot();
        assert_eq!((m.delivered, m.pending, m.bytes), (3, 0, 0));
    }

    #[test]
    fn bound_by_records_drops_oldest_pending() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut s, c) = open(dir.path(), 3, 1 << 20);
        for id in ["1", "2", "3", "4", "5"] {
            s.insert(&[rec(id, 10)]).expect("insert");
        }
        let m = c.snapshot();
        assert_eq!((m.accepted, m.dropped, m.pending), (5, 2, 3));
        assert_eq!(pending_ids(&mut s), ["3", "4", "5"]);
    }

    #[test]
    fn bound_by_bytes_prefers_dead_letters_and_refuses_giants() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut s, c) = open(dir.path(), 100, 1000);
        s.insert(&[rec("old", 300), rec("bad", 300), rec("mid", 300)])
            .expect("insert");
        let old = s.next_pending().expect("next").expect("row");
        assert_eq!(old.id, "old");
        // Deliver "old", dead-letter "bad".
        assert!(s.delivered(old.seq).expect("delivered"));
        let bad = s.next_pending().expect("next").expect("row");
        assert!(s.dead_letter(bad.seq, "400 nope").expect("dead"));
        s.insert(&[rec("new1", 300)]).expect("insert");
        // 3 × 302 bytes fit; the fourth pushes out the dead letter first.
        s.insert(&[rec("new2", 300)]).expect("insert");
        let m = c.snapshot();
        assert_eq!((m.dropped, m.dead_letters, m.pending), (0, 0, 3));
        assert!(s.dead_letters(10).expect("dl").is_empty());
        s.insert(&[rec("new3", 300)]).expect("insert");
        assert_eq!(c.snapshot().dropped, 1);
        let giant = s.insert(&[rec("giant", 2000)]).expect("insert");
        assert!(matches!(giant[0], Err(OutboxError::TooLarge { .. })));
        assert_eq!(pending_ids(&mut s), ["new1", "new2", "new3"]);
    }

    #[test]
    fn dead_letters_are_kept_and_requeued_in_place() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut s, c) = open(dir.path(), 100, 1 << 20);
        s.insert(&[rec("a", 1), rec("b", 1)]).expect("insert");
        let a = s.next_pending().expect("next").expect("row");
        assert!(s.dead_letter(a.seq, "HTTP 400: bad").expect("dead"));
        assert_eq!(
            s.dead_letters(10).expect("dl"),
            [DeadLetter {
                kind: Kind::Plate,
                id: "a".into(),
                attempts: 1,
                error: "HTTP 400: bad".into()
            }]
        );
        assert_eq!(s.next_pending().expect("next").expect("row").id, "b");
        assert_eq!(s.requeue_dead().expect("requeue"), 1);
        let m = c.snapshot();
        assert_eq!((m.dead_lettered, m.dead_letters, m.pending), (1, 0, 2));
        assert_eq!(pending_ids(&mut s), ["a", "b"]);
    }

    #[test]
    fn a_second_process_cannot_open_the_same_outbox() {
        let dir = tempfile::tempdir().expect("tmp");
        let (_s, _) = open(dir.path(), 100, 1 << 20);
        let c = Arc::new(Counters::default());
        assert!(Store::open(dir.path(), 100, 1 << 20, c).is_err());
    }
}
