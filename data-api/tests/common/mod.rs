//! Test harness: runs the real HTTP server (in-process, on 127.0.0.1:0) for
//! every backend available — embedded always, Elasticsearch when
//! `WAYSIDE_ES_URL` is set (each server gets its own index prefix).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use wayside_data::config::{BackendKind, Config};

pub struct Server {
    pub name: &'static str,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh config for `backend` with its own data dir (and ES index prefix).
pub fn config(backend: BackendKind, dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        backend,
        ..Config::default()
    };
    cfg.limits.json_body_bytes = 64 * 1024;
    cfg.limits.media_body_bytes = 64 * 1024;
    if let Ok(url) = std::env::var("WAYSIDE_ES_URL") {
        cfg.elasticsearch.url = url;
    }
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    cfg.elasticsearch.index_prefix = format!("wayside-test-{}-{n}", std::process::id());
    cfg
}

pub async fn start_with(
    name: &'static str,
    cfg_fn: impl FnOnce(&std::path::Path) -> Config,
) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_fn(dir.path());
    let router = wayside_data::build(cfg).expect("build app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = wayside_data::serve(listener, router, None, std::future::pending()).await;
    });
    Server {
        name,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client"),
        _dir: dir,
        task,
    }
}

/// Says once per test binary, past libtest's output capture (which only
/// catches the print macros), that the Elasticsearch runs were skipped.
fn note_es_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = std::io::stderr()
            .write_all(b"skipped: WAYSIDE_ES_URL not set (Elasticsearch backend not tested)\n");
    });
}

/// One server per available backend.
pub async fn servers() -> Vec<Server> {
    let mut out = vec![start_with("embedded", |d| config(BackendKind::Embedded, d)).await];
    if std::env::var("WAYSIDE_ES_URL").is_ok() {
        out.push(
            start_with("elasticsearch-knn", |d| {
                config(BackendKind::Elasticsearch, d)
            })
            .await,
        );
        out.push(
            start_with("elasticsearch-script-score", |d| {
                let mut c = config(BackendKind::Elasticsearch, d);
                c.elasticsearch.face_query = wayside_data::config::FaceQueryMode::ScriptScore;
                c
            })
            .await,
        );
    } else {
        note_es_skipped();
    }
    out
}

impl Server {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: not JSON: {text}", self.name));
        (status, v)
    }

    pub async fn raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: not JSON: {text}", self.name));
        (status, v)
    }
}

/// A unit-ish 512-d vector near axis `axis`, with a little deterministic noise.
pub fn vector(axis: usize, noise: f64) -> Vec<f64> {
    (0..512)
        .map(|i| {
            let base = if i == axis % 512 { 1.0 } else { 0.0 };
            base + noise * (((i * 7919 + axis * 104_729) % 1000) as f64 / 1000.0 - 0.5)
        })
        .collect()
}

pub fn face(id: &str, v: Vec<f64>, time_ms: u64, source: &str, at: &str) -> Value {
    json!({"id": id, "face_vector": v, "pic": format!("{}.jpg", "a".repeat(64)),
           "time_ms": time_ms, "source": source, "captured_at": at})
}

pub fn plate(id: &str, lp: &str, source: &str, at: &str) -> Value {
    json!({"id": id, "licence_plate": lp, "pic": "https://img.example/car.jpg",
           "time_ms": 61_000, "source": source, "captured_at": at, "confidence": 0.9})
}

pub fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
