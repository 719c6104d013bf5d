//! Embedded-store benchmark: ingest rate, face search p50/p99 with binary
//! codes + exact rescore and with exact brute force (the reference, same
//! run, same queries), recall@10 of the former against exact, and the time
//! to reopen the store (load + encode, no index to rebuild).
//!
//! `cargo bench -p wayside-data --bench store`
//! Env: `WAYSIDE_BENCH_SIZES` (default "10000,100000"), `WAYSIDE_BENCH_QUERIES`
//! (default 200), `WAYSIDE_BENCH_DATA` = "clustered" (default: identities with
//! several noisy sightings each, like real face embeddings) or "uniform"
//! (random directions: no structure for any index to exploit),
//! `WAYSIDE_BENCH_RESCORE` (comma-separated `rescore` counts to sweep;
//! default: the configured one), `WAYSIDE_BENCH_EXACT_BELOW` (default 1000;
//! above the size every search is exact).
//!
//! Besides recall@10 against exact, "identity recall" is reported for the
//! clustered data: of the query identity's own sightings (at most 10), the
//! fraction the search returned. In this data set ranks past the sightings
//! are near-ties among unrelated vectors (cos ≈ 0.2), so recall@10 mostly
//! measures how well the index finds random noise; identity recall measures
//! whether it finds the person.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wayside_data::config::{FACE_DIMS, SearchConfig};
use wayside_data::store::embedded::EmbeddedStore;
use wayside_data::store::{FaceRecord, FaceSearch, Filter, Hit, Meta};
use wayside_data::vector;

fn gaussian(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniformly random direction, unit length (so `NOISE` below means what
/// it says; unnormalised centres of length ~√512 made sightings cos ≈ 0.999).
fn random_unit(rng: &mut StdRng) -> Vec<f64> {
    let g: Vec<f64> = (0..FACE_DIMS).map(|_| gaussian(rng)).collect();
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    g.into_iter().map(|x| x / norm).collect()
}

/// Per-dimension noise giving cos(sample, identity) ≈ 0.75.
const NOISE: f64 = 0.039;

struct Data {
    centers: Vec<Vec<f64>>,
    clustered: bool,
}

impl Data {
    /// A unit vector and its identity (`u32::MAX` for uniform data).
    fn sample(&self, rng: &mut StdRng) -> (Vec<f32>, u32) {
        let (raw, who) = if self.clustered {
            let who = rng.random_range(0..self.centers.len());
            let c = &self.centers[who];
            let raw: Vec<f64> = c.iter().map(|x| x + NOISE * gaussian(rng)).collect();
            (raw, who as u32)
        } else {
            (random_unit(rng), u32::MAX)
        };
        (
            vector::validate(&raw, FACE_DIMS).expect("finite vector"),
            who,
        )
    }
}

/// Record index from the bench's ids (`f{i}`).
fn record(h: &Hit) -> usize {
    h.meta.id[1..].parse().expect("bench id")
}

fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.meta.id.clone()).collect()
}

struct Sweep {
    rescore: usize,
    times: Vec<Duration>,
    recall: f64,
    identity_recall: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn main() {
    let sizes: Vec<usize> = std::env::var("WAYSIDE_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let queries = env_usize("WAYSIDE_BENCH_QUERIES").unwrap_or(200);
    let clustered = std::env::var("WAYSIDE_BENCH_DATA").map_or(true, |d| d != "uniform");
    let mut cfg = SearchConfig {
        exact_below: 1000,
        ..SearchConfig::default()
    };
    cfg.exact_below = env_usize("WAYSIDE_BENCH_EXACT_BELOW").unwrap_or(cfg.exact_below);
    let rescores: Vec<usize> = std::env::var("WAYSIDE_BENCH_RESCORE")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![cfg.rescore]);
    println!(
        "data={} queries={queries} k=10 exact_below={} rescore={rescores:?} threads={}",
        if clustered { "clustered" } else { "uniform" },
        cfg.exact_below,
        rayon::current_num_threads()
    );
    for n in sizes {
        let mut rng = StdRng::seed_from_u64(42);
        let data = Data {
            centers: (0..(n / 5).max(1)).map(|_| random_unit(&mut rng)).collect(),
            clustered,
        };
        let mut identity = Vec::with_capacity(n);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path(), cfg.clone()).expect("open store");

        let t = Instant::now();
        for b in 0..n.div_ceil(1000) {
            let batch: Vec<FaceRecord> = (b * 1000..((b + 1) * 1000).min(n))
                .map(|i| {
                    let (vector, who) = data.sample(&mut rng);
                    identity.push(who);
                    FaceRecord {
                        meta: Meta {
                            id: format!("f{i}"),
                            pic: format!("{:064x}.jpg", i),
                            time_ms: i as u64,
                            source: "bench".into(),
                            captured_at: "2026-11-24T08:00:00Z".into(),
                            captured_at_ms: 0,
                        },
                        vector,
                    }
                })
                .collect();
            store.ingest_faces_blocking(batch).expect("ingest");
        }
        // Includes encoding the codes: there is no separate index build.
        let ingest_rate = n as f64 / t.elapsed().as_secs_f64();
        println!("n={n}: ingest {ingest_rate:.0} rec/s (searchable on acknowledgement)");

        // Sightings per identity, for identity recall.
        let mut sightings = vec![0usize; if clustered { data.centers.len() } else { 0 }];
        for &who in &identity {
            if let Some(c) = sightings.get_mut(who as usize) {
                *c += 1;
            }
        }
        let identity_hits = |hits: &[Hit], who: u32| -> Option<f64> {
            let total = (*sightings.get(who as usize)?).min(10);
            if total == 0 {
                return None;
            }
            let found = hits.iter().filter(|h| identity[record(h)] == who).count();
            Some(found as f64 / total as f64)
        };

        let qs: Vec<(FaceSearch, u32)> = (0..queries)
            .map(|_| {
                let (vector, who) = data.sample(&mut rng);
                let q = FaceSearch {
                    vector,
                    k: 10,
                    min_score: None,
                    filter: Filter::default(),
                };
                (q, who)
            })
            .collect();
        let mut exact_t = Vec::with_capacity(queries);
        let mut exact_ids = Vec::with_capacity(queries);
        let mut exact_identity = (0.0, 0usize);
        for (q, who) in &qs {
            let t = Instant::now();
            let exact = store.search_faces_exact(q).expect("exact");
            exact_t.push(t.elapsed());
            if let Some(r) = identity_hits(&exact, *who) {
                exact_identity.0 += r;
                exact_identity.1 += 1;
            }
            exact_ids.push(exact.iter().map(record).collect::<Vec<_>>());
        }
        exact_t.sort();

        let mut sweep = Vec::new();
        for &rescore in &rescores {
            let mut s = Sweep {
                rescore,
                times: Vec::with_capacity(queries),
                recall: 0.0,
                identity_recall: 0.0,
            };
            let mut identity_n = 0usize;
            for ((q, who), exact) in qs.iter().zip(&exact_ids) {
                let t = Instant::now();
                let ann = store.search_faces_with_rescore(q, rescore).expect("ann");
                s.times.push(t.elapsed());
                let hit = ann.iter().filter(|a| exact.contains(&record(a))).count();
                s.recall += hit as f64 / exact.len().max(1) as f64;
                if let Some(r) = identity_hits(&ann, *who) {
                    s.identity_recall += r;
                    identity_n += 1;
                }
            }
            s.times.sort();
            s.recall /= queries as f64;
            s.identity_recall /= identity_n.max(1) as f64;
            sweep.push(s);
        }

        // Restart: reopen the same data dir; codes are re-encoded from the
        // vectors on load, and answers are exactly as before.
        let before: Vec<Vec<String>> = qs
            .iter()
            .map(|(q, _)| ids(&store.search_faces_blocking(q).expect("ann")))
            .collect();
        drop(store);
        let t = Instant::now();
        let store = EmbeddedStore::open(dir.path(), cfg.clone()).expect("reopen store");
        let reload = t.elapsed();
        let same = qs
            .iter()
            .zip(&before)
            .filter(|((q, _), b)| ids(&store.search_faces_blocking(q).expect("ann")) == **b)
            .count();
        println!(
            "restart: searchable after {:.1} s; same answers for {same}/{queries} queries",
            reload.as_secs_f64(),
        );
        println!(
            "exact: p50 {:.2} ms, p99 {:.2} ms, identity recall {:.4}",
            percentile(&exact_t, 0.5),
            percentile(&exact_t, 0.99),
            exact_identity.0 / exact_identity.1.max(1) as f64
        );
        println!(
            "| vectors | rescore | ANN p50 ms | ANN p99 ms | exact p50 ms | exact p99 ms | recall@10 | identity recall |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for s in &sweep {
            println!(
                "| {n} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.4} |",
                s.rescore,
                percentile(&s.times, 0.5),
                percentile(&s.times, 0.99),
                percentile(&exact_t, 0.5),
                percentile(&exact_t, 0.99),
                s.recall,
                s.identity_recall
            );
        }
    }
}
