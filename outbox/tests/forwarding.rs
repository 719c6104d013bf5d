//! The outbox against the real `wayside-data` binary: delivery, an outage,
//! a 503 from the data API, the bound, dead letters and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{config, face, ids, jpeg, plate, plate_id, stored, wait_until};
use serde_json::json;
use wayside_e2e::{DataApi, free_port};
use wayside_outbox::{Accepted, Kind, Outbox, OutboxError, Record};

const LIMIT: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_each_record_once_in_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let api = DataApi::start(
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &["--auth-token", "s3cret-token"],
    );
    let mut cfg = config(&tmp.path().join("outbox"));
    cfg.auth_token = Some("s3cret-token".into());
    let (outbox, forwarder) = Outbox::open(cfg, &api.base).expect("open");

    // Sequential enqueues: each one is its own fsynced commit.
    let n = 120;
    let mut latencies = Vec::new();
    let start = Instant::now();
    for i in 0..n {
        let record = if i % 4 == 3 { face(i) } else { plate(i) };
        let t = Instant::now();
        assert_eq!(
            outbox.enqueue(record).await.expect("enqueue"),
            Accepted::New
        );
        latencies.push(t.elapsed());
    }
    // Enqueueing an id still queued (or just delivered) is harmless.
    let again = outbox.enqueue(plate(n - 2)).await.expect("enqueue again");
    wait_until("all delivered", LIMIT, || {
        outbox.metrics().pending == 0 && outbox.metrics().delivered >= n as u64
    })
    .await;
    let elapsed = start.elapsed();

    let m = outbox.metrics();
    let extra = u64::from(again == Accepted::New);
    assert_eq!(m.accepted, n as u64 + extra, "{m:?}");
    assert_eq!(m.delivered, m.accepted, "{m:?}");
    assert_eq!((m.dropped, m.dead_lettered, m.retried), (0, 0, 0), "{m:?}");
    assert_eq!(m.uploads, m.accepted, "one upload per record: {m:?}");
    assert_eq!((m.pending, m.bytes), (0, 0));

    // Each record exactly once, in the order accepted.
    let plates = stored(&api.data_dir, "plates");
    let faces = stored(&api.data_dir, "faces");
    let want_plates: Vec<String> = (0..n).filter(|i| i % 4 != 3).map(plate_id).collect();
    let want_faces: Vec<String> = (0..n)
        .filter(|i| i % 4 == 3)
        .map(|i| format!("f{i:05}"))
        .collect();
    assert_eq!(ids(&plates), want_plates);
    assert_eq!(ids(&faces), want_faces);

    // `pic` is the uploaded image, served back byte for byte.
    let http = reqwest::Client::new();
    for (i, (_, pic)) in [(0, &plates[0]), (5, &plates[4])] {
        // plates[4] is p00005: every fourth record is a face.
        let body = http
            .get(pic)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("get pic")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(body.as_ref(), jpeg(i).as_slice(), "{pic}");
    }
    // And the data API finds the plate.
    let found: serde_json::Value = http
        .post(format!("{}/search-licence-plate", api.base))
        .bearer_auth("s3cret-token")
        .json(&json!({"licence_plate": "OB00005"}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert_eq!(found["results"][0]["id"], "p00005", "{found}");

    latencies.sort();
    eprintln!(
        "figures: {n} sequential enqueues: p50 {:?}, p99 {:?}, max {:?}; \
         enqueue-to-all-delivered {:.1} records/s ({elapsed:?})",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        n as f64 / elapsed.as_secs_f64(),
    );
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Nothing listens: records stay pending, only the enqueue path is timed.
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut cfg = config(tmp.path());
    cfg.retry_min_ms = 1_000;
    cfg.retry_max_ms = 1_000;
    let (outbox, forwarder) = Outbox::open(cfg, &url).expect("open");
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..50 {
                    let at = Instant::now();
                    outbox.enqueue(plate(t * 1000 + i)).await.expect("enqueue");
                    lat.push(at.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("task"));
    }
    let elapsed = start.elapsed();
    assert_eq!(outbox.metrics().pending, 400);
    latencies.sort();
    eprintln!(
        "figures: 8 producers x 50 enqueues: {:.0} records/s, p50 {:?}, p99 {:?}",
        400.0 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_loses_nothing_and_backs_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (outbox, forwarder) = Outbox::open(
        config(&tmp.path().join("outbox")),
        &format!("http://{listen}"),
    )
    .expect("open");

    // 1. Nothing listens: connection refused.
    for i in 0..10 {
        outbox.enqueue(plate(i)).await.expect("enqueue");
    }
    wait_until("retries while down", LIMIT, || {
        outbox.metrics().retried >= 3
    })
    .await;
    let m = outbox.metrics();
    assert_eq!((m.delivered, m.pending), (0, 10), "{m:?}");

    // 2. The data API is up but its store is not (Elasticsearch backend at a
    //    closed port): media uploads work, ingest answers 503.
    let es = format!("http://127.0.0.1:{}", free_port());
    let data = tmp.path().join("data");
    let api = DataApi::start(
        &data,
        &listen,
        &["--backend", "elasticsearch", "--es-url", &es],
    );
    let before = outbox.metrics().retried;
    wait_until("503 retries", LIMIT, || {
        outbox.metrics().retried >= before + 2
    })
    .await;
    let m = outbox.metrics();
    assert_eq!(m.delivered, 0, "{m:?}");
    // The image was uploaded once; retries reuse the stored URL.
    assert_eq!(m.uploads, 1, "{m:?}");
    let status_503 = api
        .metric("wayside_data_requests_total{route=\"/plates\",method=\"POST\",status=\"503\"}")
        .await;
    assert!(status_503 >= 2, "503s seen by the data API: {status_503}");
    drop(api);

    // 3. Back with a working store: everything arrives, once, in order.
    let _api = DataApi::start(&data, &listen, &[]);
    wait_until("delivered after the outage", LIMIT, || {
        outbox.metrics().delivered == 10
    })
    .await;
    let m = outbox.metrics();
    assert!(m.retried > 3, "back-off attempts: {m:?}");
    assert_eq!((m.pending, m.dropped, m.dead_lettered), (0, 0, 0), "{m:?}");
    assert_eq!(
        ids(&stored(&data, "plates")),
        (0..10).map(plate_id).collect::<Vec<_>>()
    );
    eprintln!("figures: outage test: {m:?}");
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_drops_the_oldest_and_counts_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cfg = config(&tmp.path().join("outbox"));
    cfg.max_records = 5;
    let (outbox, forwarder) = Outbox::open(cfg, &format!("http://{listen}")).expect("open");
    for i in 0..8 {
        assert_eq!(
            outbox.enqueue(plate(i)).await.expect("enqueue"),
            Accepted::New
        );
    }
    let m = outbox.metrics();
    assert_eq!((m.accepted, m.dropped, m.pending), (8, 3, 5), "{m:?}");

    let api = DataApi::start(&tmp.path().join("data"), &listen, &[]);
    wait_until("the kept five delivered", LIMIT, || {
        outbox.metrics().pending == 0
    })
    .await;
    assert_eq!(outbox.metrics().delivered, 5);
    assert_eq!(
        ids(&stored(&api.data_dir, "plates")),
        (3..8).map(plate_id).collect::<Vec<_>>()
    );
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_is_dead_lettered_without_blocking() {
    let tmp = tempfile::tempdir().expect("tmp");
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let (outbox, forwarder) =
        Outbox::open(config(&tmp.path().join("outbox")), &api.base).expect("open");
    // Confidence out of range and a 3-d face vector: the data API says 400.
    let bad_plate = Record::plate(
        "bad-plate",
        json!({"licence_plate": "ZZ999", "time_ms": 1, "confidence": 5.0}),
        jpeg(7),
    );
    let bad_face = Record::face(
        "bad-face",
        json!({"face_vector": [1.0, 0.0, 0.0], "time_ms": 1}),
        jpeg(8),
    );
    for r in [plate(0), bad_plate, bad_face, plate(1)] {
        outbox.enqueue(r).await.expect("enqueue");
    }
    wait_until("queue drained", LIMIT, || outbox.metrics().pending == 0).await;
    let m = outbox.metrics();
    assert_eq!(
        (m.delivered, m.dead_lettered, m.retried),
        (2, 2, 0),
        "{m:?}"
    );
    assert_eq!(
        ids(&stored(&api.data_dir, "plates")),
        [plate_id(0), plate_id(1)]
    );
    let dead = outbox.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0].kind, dead[0].id.as_str()),
        (Kind::Plate, "bad-plate")
    );
    assert!(
        dead[0].error.starts_with("/plates: HTTP 400"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        (dead[1].kind, dead[1].id.as_str()),
        (Kind::Face, "bad-face")
    );

    // Requeued, they are refused again (nothing was fixed) and stay kept.
    assert_eq!(outbox.requeue_dead_letters().await.expect("requeue"), 2);
    wait_until("dead again", LIMIT, || outbox.metrics().dead_lettered == 4).await;
    let dead = outbox.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.iter().map(|d| d.attempts).collect::<Vec<_>>(), [1, 1]);
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_keeps_pending_for_next_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let dir = tmp.path().join("outbox");
    let (outbox, forwarder) = Outbox::open(config(&dir), &url).expect("open");
    for i in 0..3 {
        outbox.enqueue(plate(i)).await.expect("enqueue");
    }
    outbox.shutdown();
    assert!(matches!(
        outbox.enqueue(plate(9)).await,
        Err(OutboxError::Closed)
    ));
    tokio::time::timeout(Duration::from_secs(10), forwarder)
        .await
        .expect("forwarder stops promptly")
        .expect("forwarder");
    drop(outbox);

    let api = DataApi::start(&tmp.path().join("data"), &listen, &[]);
    let (outbox, forwarder) = Outbox::open(config(&dir), &url).expect("reopen");
    assert_eq!(outbox.metrics().pending, 3);
    wait_until("delivered after restart", LIMIT, || {
        outbox.metrics().delivered == 3
    })
    .await;
    assert_eq!(
        ids(&stored(&api.data_dir, "plates")),
        (0..3).map(plate_id).collect::<Vec<_>>()
    );
    outbox.shutdown();
    forwarder.await.expect("forwarder");
}
