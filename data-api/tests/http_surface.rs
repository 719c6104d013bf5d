//! Media, auth, metrics, OpenAPI, and Elasticsearch failure modes (down →
//! 503, silent → 504, both quickly). Backend-independent; embedded store.

mod common;

use std::time::{Duration, Instant};

use common::{config, start_with};
use serde_json::{Value, json};
use wayside_data::config::{BackendKind, FaceQueryMode};

fn jpeg(n: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend((0..n).map(|i| (i % 251) as u8));
    v
}

async fn upload(s: &common::Server, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("x.jpeg"),
    );
    let resp = s
        .client
        .post(format!("{}/media", s.base))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let st = resp.status().as_u16();
    (st, resp.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_content_addressed_with_ranges() {
    let s = start_with("embedded", |d| config(BackendKind::Embedded, d)).await;
    let bytes = jpeg(5000);
    let (st, a) = upload(&s, bytes.clone()).await;
    assert_eq!(st, 200, "{a}");
    let (_, b) = upload(&s, bytes.clone()).await;
    assert_eq!(a["url"], b["url"], "same bytes, same URL");
    let url = a["url"].as_str().expect("url");
    let name = a["name"].as_str().expect("name");
    assert!(name.ends_with(".jpg") && name.len() == 68, "{name}");
    assert!(url.starts_with(&s.base));

    let full = s.client.get(url).send().await.expect("get");
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "image/jpeg");
    assert_eq!(full.bytes().await.expect("bytes").to_vec(), bytes);

    let part = s
        .client
        .get(url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.expect("bytes").to_vec(),
        bytes[10..20].to_vec()
    );

    for bad in ["..%2F..%2Fetc%2Fpasswd", "abc.jpg", &name.to_uppercase()] {
        let r = s
            .client
            .get(format!("{}/media/{bad}", s.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.expect("json");
        assert!(v["error"].is_string());
    }
    let missing = format!("{}/media/{}.jpg", s.base, "0".repeat(64));
    assert_eq!(
        s.client.get(missing).send().await.expect("get").status(),
        404
    );

    // Too large → 413; no file field → 400; not multipart → 415.
    let (st, v) = upload(&s, jpeg(100 * 1024)).await;
    assert_eq!((st, v), (413, json!({"error": "upload too large"})));
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = s
        .client
        .post(format!("{}/media", s.base))
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .post(format!("{}/media", s.base))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_everything_but_healthz() {
    let s = start_with("embedded", |d| {
        let mut c = config(BackendKind::Embedded, d);
        c.auth_tokens = vec!["s3cret-token".into()];
        c
    })
    .await;
    let h = s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(h.status(), 200);
    let r = s
        .client
        .post(format!("{}/search-licence-plate", s.base))
        .json(&json!({"licence_plate": "A"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "missing or invalid bearer token"})
    );
    let r = s
        .client
        .get(format!("{}/metrics", s.base))
        .bearer_auth("wrong-token")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .post(format!("{}/search-licence-plate", s.base))
        .bearer_auth("s3cret-token")
        .json(&json!({"licence_plate": "ABC"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_openapi() {
    let s = start_with("embedded", |d| config(BackendKind::Embedded, d)).await;
    s.post("/search-licence-plate", json!({"licence_plate": "ABC"}))
        .await;
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(text.contains("wayside_data_requests_total{route=\"/search-licence-plate\",method=\"POST\",status=\"200\"} 1"), "{text}");
    assert!(
        text.contains(
            "wayside_data_request_duration_seconds_bucket{route=\"/search-licence-plate\""
        )
    );
    assert!(text.contains("wayside_data_store_records{backend=\"embedded\",kind=\"faces\"} 0"));
    let doc: Value = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/search-face",
        "/search-licence-plate",
        "/faces",
        "/plates",
        "/media",
        "/healthz",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
}

/// ES not listening: JSON 503 with Retry-After, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_down_is_a_quick_503() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let s = start_with("es-down", |d| {
        let mut c = config(BackendKind::Elasticsearch, d);
        c.elasticsearch.url = format!("http://127.0.0.1:{port}");
        c.elasticsearch.timeout_ms = 1000;
        c
    })
    .await;
    let t = Instant::now();
    let r = s
        .client
        .post(format!("{}/search-licence-plate", s.base))
        .json(&json!({"licence_plate": "ABC"}))
        .send()
        .await
        .expect("post");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "search backend unavailable"})
    );
    let h = s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(h.status(), 503);
}

/// ES accepts connections but never answers: JSON 504 within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_silent_is_a_bounded_504() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let s = start_with("es-silent", |d| {
        let mut c = config(BackendKind::Elasticsearch, d);
        c.elasticsearch.url = format!("http://127.0.0.1:{port}");
        c.elasticsearch.timeout_ms = 500;
        c.elasticsearch.face_query = FaceQueryMode::ScriptScore;
        c
    })
    .await;
    let t = Instant::now();
    let r = s
        .client
        .post(format!("{}/search-face", s.base))
        .json(&json!({"face_vector": common::vector(0, 0.0)}))
        .send()
        .await
        .expect("post");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "search backend timed out"})
    );
    hold.abort();
}
