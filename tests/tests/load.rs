//! Load, bounded: 20 uploads at once against a daemon with 2 job slots, and
//! 200 searches at once against the data API (20 000 faces, 2 000 plates)
//! and through the daemon. What must hold: every answer is a result or a
//! 503 with `Retry-After`; every upload is done once its client has waited
//! as told, and the same clip gives the same counts every time; every
//! search finds what it should; memory stays bounded. The latencies are
//! printed (docs/RELIABILITY.md), not asserted: they measure the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use wayside_e2e::{Daemon, DataApi, media, post_video};

const UPLOADS: usize = 20;
const SEARCHES: usize = 200;
const FACES: usize = 20_000;
const PLATES: usize = 2_000;

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_uploads_at_once_wait_their_turn_and_all_finish() {
    let d = Arc::new(Daemon::start("max_jobs = 2\n").await);
    let clip = Arc::new(std::fs::read(media("otvision-cars-truck.mp4")).unwrap());
    // The reference: the same upload alone, on an idle daemon.
    let t0 = Instant::now();
    post_video(&d, &media("otvision-cars-truck.mp4"), 1000).await;
    let alone = t0.elapsed();
    let started = Instant::now();
    let tasks: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let (d, clip) = (d.clone(), clip.clone());
            tokio::spawn(async move {
                let c = Client::new();
                let (t0, mut refused) = (Instant::now(), 0u32);
                loop {
                    let form = Form::new()
                        .text("interval", "1000")
                        .part("video", Part::bytes(clip.to_vec()).file_name("cars.mp4"));
                    let res = c
                        .post(d.url("/video"))
                        .multipart(form)
                        .send()
                        .await
                        .unwrap();
                    match res.status().as_u16() {
                        200 => {
                            let body: Value = res.json().await.unwrap();
                            return (t0.elapsed(), refused, body);
                        }
                        503 => {
                            let wait: u64 = res.headers()["retry-after"]
                                .to_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            let body: Value = res.json().await.unwrap();
                            assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
                            refused += 1;
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                        }
                        other => panic!("{other}: {}", res.text().await.unwrap()),
                    }
                }
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    let wall = started.elapsed();
    let refusals: u32 = done.iter().map(|(_, r, _)| r).sum();
    let first = &done[0].2;
    for (_, _, body) in &done {
        for k in ["vehicle_count", "vehicles_per_interval", "people_count"] {
            assert_eq!(body[k], first[k], "{k}: the same clip, other counts");
        }
    }
    assert!(refusals > 0, "20 uploads on 2 slots and none waited?");
    let (p50, p99) = percentiles(done.iter().map(|(t, _, _)| *t).collect());
    let rss = d.peak_rss_mib();
    eprintln!(
        "uploads: one alone {alone:.1?}; {UPLOADS} at once, 2 slots: all done in {wall:.1?} \
         ({:.2}x {UPLOADS} x alone / 2 slots); per upload p50 {p50:.1?} p99 {p99:.1?} (retries \
         included); {refusals} refusals (503 + Retry-After); daemon peak RSS {rss} MiB",
        wall.as_secs_f64() / (alone.as_secs_f64() * UPLOADS as f64 / 2.0)
    );
    assert!(rss < 1024, "daemon peak RSS {rss} MiB with 2 jobs");
}

/// A unit vector from `seed`: xorshift, deterministic.
fn vector(seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f64> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.into_iter().map(|a| a / norm).collect()
}

fn plate(i: usize) -> String {
    format!("苏E{:05}", i)
}

/// `SEARCHES` requests at once from `make(i)`; (p50, p99, bodies).
async fn at_once(
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> (Duration, Duration, Vec<String>) {
    let tasks: Vec<_> = (0..SEARCHES)
        .map(|i| {
            let req = make(i);
            tokio::spawn(async move {
                let t0 = Instant::now();
                let res = req.send().await.unwrap();
                let status = res.status();
                let text = res.text().await.unwrap();
                assert_eq!(status, 200, "{text:.300}");
                (t0.elapsed(), text)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut bodies = Vec::new();
    for t in tasks {
        let (took, body) = t.await.unwrap();
        times.push(took);
        bodies.push(body);
    }
    let (p50, p99) = percentiles(times);
    (p50, p99, bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_searches_at_once_are_all_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let c = Client::new();
    let t0 = Instant::now();
    // 200 vectors a batch: ~2 MB of JSON, under the 4 MB body limit.
    for start in (0..FACES).step_by(200) {
        let batch = (start..start + 200)
            .map(|i| {
                json!({"id": format!("f{i}"), "face_vector": vector(i as u64),
                       "pic": format!("http://cam.example/{i}.jpg"), "time_ms": i, "source": "load"})
            })
            .collect();
        api.ingest("faces", &Value::Array(batch), None).await;
    }
    let plates = (0..PLATES)
        .map(|i| {
            json!({"id": format!("p{i}"), "licence_plate": plate(i),
                   "pic": format!("http://cam.example/p{i}.jpg"), "time_ms": i, "source": "load"})
        })
        .collect::<Vec<_>>();
    for batch in plates.chunks(500) {
        api.ingest("plates", &Value::Array(batch.to_vec()), None)
            .await;
    }
    let ingest = t0.elapsed();
    let d = Daemon::start(&format!("[data_api]\nurl = \"{}\"\n", api.base)).await;

    // Each face query is a stored vector: it must come back first.
    let stride = FACES / SEARCHES;
    let base = api.base.clone();
    let face_search = |i: usize| {
        c.post(format!("{base}/search-face"))
            .json(&json!({"face_vector": vector((i * stride) as u64), "k": 10}))
    };
    // The reference: the same searches one at a time.
    let mut alone = Vec::new();
    for i in 0..20 {
        let t0 = Instant::now();
        assert_eq!(face_search(i).send().await.unwrap().status(), 200);
        alone.push(t0.elapsed());
    }
    let (alone50, _) = percentiles(alone);
    let t0 = Instant::now();
    let (f50, f99, bodies) = at_once(face_search).await;
    let burst = t0.elapsed();
    for (i, body) in bodies.iter().enumerate() {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["results"][0]["id"],
            format!("f{}", i * stride),
            "{body:.300}"
        );
    }
    let (p50, p99, bodies) = at_once(|i| {
        c.post(d.url("/licence-plate"))
            .json(&json!({"licence_plate": plate(i * 7)}))
    })
    .await;
    for (i, body) in bodies.iter().enumerate() {
        let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first["licence_plate"], plate(i * 7), "{body:.300}");
    }
    let (api_rss, daemon_rss) = (api.peak_rss_mib(), d.peak_rss_mib());
    eprintln!(
        "searches: {FACES} faces + {PLATES} plates ingested in {ingest:.1?}; /search-face one at \
         a time p50 {alone50:.1?}; {SEARCHES} at once: all answered in {burst:.1?} ({:.2}x the time \
         of {SEARCHES} one at a time), p50 {f50:.1?} p99 {f99:.1?}; /licence-plate via the daemon \
         p50 {p50:.1?} p99 {p99:.1?}; peak RSS data API {api_rss} MiB, daemon {daemon_rss} MiB",
        burst.as_secs_f64() / (alone50.as_secs_f64() * SEARCHES as f64)
    );
    assert!(api_rss < 512, "data API peak RSS {api_rss} MiB");
}
