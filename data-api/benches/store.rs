//! Embedded-store benchmark: ingest rate, face search p50/p99 with the HNSW
//! index and with exact brute force (the reference, same run), and recall@10
//! of the index against exact.
//!
//! `cargo bench -p wayside-data --bench store`
//! Env: `WAYSIDE_BENCH_SIZES` (default "10000,100000"), `WAYSIDE_BENCH_QUERIES`
//! (default 200), `WAYSIDE_BENCH_DATA` = "clustered" (default: identities with
//! several noisy sightings each, like real face embeddings) or "uniform"
//! (random directions: the worst case for any graph index).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wayside_data::config::{FACE_DIMS, SearchConfig};
use wayside_data::store::embedded::EmbeddedStore;
use wayside_data::store::{FaceRecord, FaceSearch, Filter, Meta};
use wayside_data::vector;

fn gaussian(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn random_unit(rng: &mut StdRng) -> Vec<f64> {
    (0..FACE_DIMS).map(|_| gaussian(rng)).collect()
}

/// Per-dimension noise giving cos(sample, identity) ≈ 0.75.
const NOISE: f64 = 0.039;

struct Data {
    centers: Vec<Vec<f64>>,
    clustered: bool,
}

impl Data {
    fn sample(&self, rng: &mut StdRng) -> Vec<f32> {
        let raw = if self.clustered {
            let c = &self.centers[rng.random_range(0..self.centers.len())];
            c.iter().map(|x| x + NOISE * gaussian(rng)).collect()
        } else {
            random_unit(rng)
        };
        vector::validate(&raw, FACE_DIMS).expect("finite vector")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let sizes: Vec<usize> = std::env::var("WAYSIDE_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let queries: usize = std::env::var("WAYSIDE_BENCH_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let clustered = std::env::var("WAYSIDE_BENCH_DATA").map_or(true, |d| d != "uniform");
    let cfg = SearchConfig {
        exact_below: 1000,
        ..SearchConfig::default()
    };
    println!(
        "data={} queries={queries} k=10 hnsw M={} ef_construction={} ef_search={} threads={}",
        if clustered { "clustered" } else { "uniform" },
        cfg.hnsw_m,
        cfg.hnsw_ef_construction,
        cfg.hnsw_ef_search,
        rayon::current_num_threads()
    );
    println!(
        "| vectors | ingest rec/s | index build s | ANN p50 ms | ANN p99 ms | exact p50 ms | exact p99 ms | recall@10 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let mut rng = StdRng::seed_from_u64(42);
        let data = Data {
            centers: (0..(n / 5).max(1)).map(|_| random_unit(&mut rng)).collect(),
            clustered,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path(), cfg.clone()).expect("open store");

        let t = Instant::now();
        for b in 0..n.div_ceil(1000) {
            let batch: Vec<FaceRecord> = (b * 1000..((b + 1) * 1000).min(n))
                .map(|i| FaceRecord {
                    meta: Meta {
                        id: format!("f{i}"),
                        pic: format!("{:064x}.jpg", i),
                        time_ms: i as u64,
                        source: "bench".into(),
                        captured_at: "2026-11-24T08:00:00Z".into(),
                        captured_at_ms: 0,
                    },
                    vector: data.sample(&mut rng),
                })
                .collect();
            store.ingest_faces_blocking(batch).expect("ingest");
        }
        let ingest = t.elapsed();
        let ingest_rate = n as f64 / ingest.as_secs_f64();
        let t = Instant::now();
        assert!(store.wait_indexed(Duration::from_secs(3600)), "index build");
        let build = t.elapsed() + ingest; // the builder runs during ingest too

        let mut ann_t = Vec::with_capacity(queries);
        let mut exact_t = Vec::with_capacity(queries);
        let mut recall = 0.0;
        for _ in 0..queries {
            let q = FaceSearch {
                vector: data.sample(&mut rng),
                k: 10,
                min_score: None,
                filter: Filter::default(),
            };
            let t = Instant::now();
            let ann = store.search_faces_blocking(&q).expect("ann");
            ann_t.push(t.elapsed());
            let t = Instant::now();
            let exact = store.search_faces_exact(&q).expect("exact");
            exact_t.push(t.elapsed());
            let hit = ann
                .iter()
                .filter(|a| exact.iter().any(|e| e.meta.id == a.meta.id))
                .count();
            recall += hit as f64 / exact.len().max(1) as f64;
        }
        ann_t.sort();
        exact_t.sort();
        println!(
            "| {n} | {ingest_rate:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} |",
            build.as_secs_f64(),
            percentile(&ann_t, 0.5),
            percentile(&ann_t, 0.99),
            percentile(&exact_t, 0.5),
            percentile(&exact_t, 0.99),
            recall / queries as f64
        );
    }
}
