//! Test harness: the real `wayside-data` binary on 127.0.0.1 with its own
//! data dir (`wayside_e2e::DataApi`, the harness the end-to-end tests use),
//! read access to its SQLite store, and the records the tests send.
//!
//! The worker example is the one `cargo test` builds.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use wayside_outbox::{OutboxConfig, Record};

/// The `outbox_worker` example, which `cargo test` builds beside the tests.
/// (Building it from here with a nested `cargo build` would wait forever on
/// the artifact directory lock the running `cargo test` holds.)
pub fn worker_binary() -> PathBuf {
    wayside_e2e::example("outbox_worker")
}

/// `(id, pic)` of every row of `table` (`plates` or `faces`) in the data
/// API's store, in insertion order.
pub fn stored(data_dir: &Path, table: &str) -> Vec<(String, String)> {
    let path = data_dir.join("wayside.db");
    if !path.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the data API's store");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    let mut stmt = conn
        .prepare(&format!("SELECT id, pic FROM {table} ORDER BY rowid"))
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

pub fn ids(rows: &[(String, String)]) -> Vec<String> {
    rows.iter().map(|(id, _)| id.clone()).collect()
}

/// Fast retries so the tests do not wait for production back-off.
pub fn config(dir: &Path) -> OutboxConfig {
    OutboxConfig {
        dir: dir.to_path_buf(),
        retry_min_ms: 20,
        retry_max_ms: 300,
        request_timeout_ms: 5_000,
        connect_timeout_ms: 1_000,
        ..OutboxConfig::default()
    }
}

/// Distinct bytes per `n` that the data API sniffs as JPEG.
pub fn jpeg(n: usize) -> Vec<u8> {
    let mut b = b"\xFF\xD8\xFF\xE0outbox-test".to_vec();
    b.extend_from_slice(n.to_string().as_bytes());
    b.extend(std::iter::repeat_n(0x5A, 2_000));
    b
}

pub fn plate_id(n: usize) -> String {
    format!("p{n:05}")
}

pub fn plate(n: usize) -> Record {
    Record::plate(
        plate_id(n),
        json!({"licence_plate": format!("OB{n:05}"), "time_ms": n as u64 * 40,
               "source": "outbox-test", "captured_at": "2026-11-25T08:00:00Z",
               "confidence": 0.9}),
        jpeg(n),
    )
}

pub fn face(n: usize) -> Record {
    let vector: Vec<f64> = (0..512)
        .map(|i| if i == n % 512 { 1.0 } else { 0.01 })
        .collect();
    Record::face(
        format!("f{n:05}"),
        json!({"face_vector": vector, "time_ms": n as u64 * 40, "source": "outbox-test"}),
        jpeg(100_000 + n),
    )
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
