//! Binary quantization of face vectors, for candidate selection before an
//! exact re-rank (the scheme of Elasticsearch's BBQ and Qdrant's binary
//! quantization).
//!
//! - A stored vector keeps one sign bit per dimension: 64 bytes at 512-d,
//!   64 MB at 1M vectors. Encoding is a pure function of the vector, so
//!   codes are appended on ingest and recomputed on load: no index to build,
//!   persist or rebuild.
//! - The query is *not* reduced to signs (symmetric Hamming distance loses
//!   too much: at 1M clustered vectors it needed ~60k candidates for
//!   recall@10 0.98, against ~8k for this). It is quantized to 4-bit signed
//!   integers `u` (clipped at ±2.5 RMS; zero point 0, so no per-vector
//!   correction is needed) and split into four bit planes. For a code `b` (bits 0/1, meaning signs −/+),
//!   `Σ uᵢ·bᵢ = Σⱼ<3 2ʲ·popcount(planeⱼ & b) − 8·popcount(plane₃ & b)`
//!   (two's complement), and since `Σ uᵢ·(2bᵢ − 1) = 2·Σ uᵢ·bᵢ − Σ uᵢ` with
//!   `Σ uᵢ` fixed per query, ranking by the popcount sum ranks by the dot
//!   product of the query with the sign vector. 32 AND+popcounts per vector.
//! - `count_ones` is one instruction only with the right target features,
//!   which the x86-64 baseline lacks (it compiles to ~15 bit operations), so
//!   the scan is compiled three times and chosen at run time: AVX-512
//!   VPOPCNTDQ (8 words per instruction), POPCNT, portable. ARM's baseline
//!   NEON has a vector popcount, so there the portable build is the fast one.

use rayon::prelude::*;

use crate::config::FACE_DIMS;
use crate::vector::{self, Scored};

/// u64 words per code.
pub const WORDS: usize = FACE_DIMS.div_ceil(64);

/// Sign bits of one vector; bit `i % 64` of word `i / 64` is dimension `i`.
pub type Code = [u64; WORDS];

/// The sign bits of `v` (1 = positive). Dimensions past `v.len()` stay 0.
pub fn encode(v: &[f32]) -> Code {
    let mut code = [0u64; WORDS];
    for (i, x) in v.iter().take(FACE_DIMS).enumerate() {
        if *x > 0.0 {
            code[i / 64] |= 1 << (i % 64);
        }
    }
    code
}

/// A query quantized to 4-bit signed integers, as four bit planes
/// (plane 3 is the two's-complement sign, weight −8).
#[derive(Debug, Clone)]
pub struct Query {
    planes: [Code; 4],
}

/// Query components are clipped at this many RMS: near the best uniform
/// 16-level quantizer for Gaussian-like values, and a single large component
/// cannot flatten all the others to 0 (scaling by the maximum did: a query
/// with one spike then matched half of all codes equally).
const CLIP_RMS: f32 = 2.5;

impl Query {
    pub fn new(q: &[f32]) -> Self {
        // ±CLIP_RMS·rms maps to ±7 of a signed nibble's [-8, 7]; symmetric,
        // so 0 stays exactly 0.
        let rms = (vector::dot(q, q) / q.len().max(1) as f32).sqrt();
        let scale = if rms > 0.0 {
            7.0 / (CLIP_RMS * rms)
        } else {
            0.0
        };
        let mut planes = [[0u64; WORDS]; 4];
        for (i, x) in q.iter().take(FACE_DIMS).enumerate() {
            // Truncation to i8 is the point; the clamp keeps it in range.
            let u = (x * scale).round().clamp(-8.0, 7.0) as i8;
            let bits = u as u8 & 0x0f;
            for (j, plane) in planes.iter_mut().enumerate() {
                if bits >> j & 1 == 1 {
                    plane[i / 64] |= 1 << (i % 64);
                }
            }
        }
        Self { planes }
    }

    /// `Σ uᵢ·bᵢ`: larger means closer (see the module comment).
    #[inline(always)]
    fn score(&self, code: &Code) -> i32 {
        let [p0, p1, p2, p3] = &self.planes;
        let mut s = 0i32;
        // One sum over the words (not one per plane), so the compiler can
        // keep the eight words in one vector register and reduce once.
        for w in 0..WORDS {
            let c = code[w];
            s += (c & p0[w]).count_ones() as i32
                + (((c & p1[w]).count_ones() as i32) << 1)
                + (((c & p2[w]).count_ones() as i32) << 2)
                - (((c & p3[w]).count_ones() as i32) << 3);
        }
        s
    }
}

/// Best first; ties go to the lower slot, which is also the order a scan
/// meets them in, so rejecting a tie at the cut-off agrees with this order.
fn best_first(a: &(i32, u32), b: &(i32, u32)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The `r` best (score, slot) pairs seen, kept in a buffer of up to `2r`
/// that is cut back to `r` when full (amortised O(1) per push, no heap
/// churn). Only scores above the current cut-off enter.
struct Best {
    r: usize,
    floor: i32,
    buf: Vec<(i32, u32)>,
}

impl Best {
    fn new(r: usize) -> Self {
        Self {
            r,
            floor: i32::MIN,
            buf: Vec::with_capacity(2 * r),
        }
    }

    #[inline(always)]
    fn push(&mut self, score: i32, slot: u32) {
        if score > self.floor {
            self.buf.push((score, slot));
            if self.buf.len() >= 2 * self.r {
                self.cut();
                self.floor = self.buf[self.r - 1].0;
            }
        }
    }

    fn cut(&mut self) {
        if self.buf.len() > self.r {
            self.buf.select_nth_unstable_by(self.r - 1, best_first);
            self.buf.truncate(self.r);
        }
    }

    fn finish(mut self) -> Vec<(i32, u32)> {
        self.cut();
        self.buf
    }
}

#[inline(always)]
fn scan_portable<F: Fn(usize) -> bool>(
    q: &Query,
    codes: &[Code],
    start: usize,
    r: usize,
    keep: &F,
) -> Vec<(i32, u32)> {
    let mut best = Best::new(r);
    for (i, code) in codes.iter().enumerate() {
        let slot = start + i;
        if keep(slot) {
            // Slots are < codes.len() ≤ the store's row count, far below u32::MAX.
            best.push(q.score(code), slot as u32);
        }
    }
    best.finish()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn scan_avx512<F: Fn(usize) -> bool>(
    q: &Query,
    codes: &[Code],
    start: usize,
    r: usize,
    keep: &F,
) -> Vec<(i32, u32)> {
    scan_portable(q, codes, start, r, keep)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn scan_popcnt<F: Fn(usize) -> bool>(
    q: &Query,
    codes: &[Code],
    start: usize,
    r: usize,
    keep: &F,
) -> Vec<(i32, u32)> {
    scan_portable(q, codes, start, r, keep)
}

/// Which scan the CPU can run; detected once per search (cached by std).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Popcnt,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Kernel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            return Kernel::Popcnt;
        }
    }
    Kernel::Portable
}

fn scan<F: Fn(usize) -> bool>(
    kernel: Kernel,
    q: &Query,
    codes: &[Code],
    start: usize,
    r: usize,
    keep: &F,
) -> Vec<(i32, u32)> {
    match kernel {
        Kernel::Portable => scan_portable(q, codes, start, r, keep),
        // SAFETY: `best_kernel` chose these only after detecting every
        // feature they enable on this CPU.
        #[cfg(target_arch = "x86_64")]
        Kernel::Popcnt => unsafe { scan_popcnt(q, codes, start, r, keep) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { scan_avx512(q, codes, start, r, keep) },
    }
}

/// Rows per parallel scan piece (8 MB of codes): several pieces per core so
/// rayon can balance when one core is busy with something else, few enough
/// that merging the pieces' candidates stays small next to the scan.
const SCAN_ROWS: usize = 1 << 17;

/// Top `k` of the rows passing `keep`: the `rescore` best by the binary
/// score, re-ranked by exact cosine on `vectors` (row-major, `FACE_DIMS` per
/// row, row `i` has code `codes[i]`). Returned scores are exact.
pub fn search<F>(
    query: &[f32],
    vectors: &[f32],
    codes: &[Code],
    k: usize,
    rescore: usize,
    keep: F,
) -> Vec<Scored>
where
    F: Fn(usize) -> bool + Sync,
{
    let r = rescore.max(k);
    if k == 0 || codes.is_empty() {
        return Vec::new();
    }
    let q = Query::new(query);
    let kernel = best_kernel();
    let mut best: Vec<(i32, u32)> = codes
        .par_chunks(SCAN_ROWS)
        .enumerate()
        .flat_map_iter(|(i, chunk)| scan(kernel, &q, chunk, i * SCAN_ROWS, r, &keep))
        .collect();
    if best.len() > r {
        best.select_nth_unstable_by(r - 1, best_first);
        best.truncate(r);
    }
    // Ascending slots read the vectors front to back.
    let mut cands: Vec<u32> = best.into_iter().map(|(_, s)| s).collect();
    cands.sort_unstable();
    let scored: Vec<Scored> = cands
        .par_chunks(1024)
        .flat_map_iter(|chunk| {
            let local: Vec<Scored> = chunk
                .iter()
                .filter_map(|&s| {
                    let s = s as usize;
                    vectors
                        .get(s * FACE_DIMS..(s + 1) * FACE_DIMS)
                        .map(|row| Scored {
                            slot: s,
                            score: vector::dot(query, row),
                        })
                })
                .collect();
            vector::top_k(local, k)
        })
        .collect();
    vector::top_k(scored, k)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn unit(rng: &mut StdRng) -> Vec<f32> {
        let raw: Vec<f64> = (0..FACE_DIMS).map(|_| rng.random::<f64>() - 0.5).collect();
        vector::validate(&raw, FACE_DIMS).expect("valid vector")
    }

    #[test]
    fn score_is_the_quantized_dot_with_the_bits() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let q = unit(&mut rng);
            let x = unit(&mut rng);
            let code = encode(&x);
            let rms = (vector::dot(&q, &q) / FACE_DIMS as f32).sqrt();
            let scale = 7.0 / (CLIP_RMS * rms);
            let naive: i32 = q
                .iter()
                .zip(&x)
                .filter(|(_, xi)| **xi > 0.0)
                .map(|(qi, _)| (qi * scale).round().clamp(-8.0, 7.0) as i32)
                .sum();
            assert_eq!(Query::new(&q).score(&code), naive);
        }
    }

    #[test]
    fn a_spiky_query_still_ranks_by_the_other_components() {
        // One dominant dimension plus small noise (like the HTTP tests'
        // vectors): the stored copy of the query must score highest.
        let mut rng = StdRng::seed_from_u64(4);
        let spiky = |rng: &mut StdRng, i: usize| {
            let raw: Vec<f64> = (0..FACE_DIMS)
                .map(|d| {
                    if d == i {
                        1.0
                    } else {
                        0.02 * (rng.random::<f64>() - 0.5)
                    }
                })
                .collect();
            vector::validate(&raw, FACE_DIMS).expect("valid")
        };
        let rows: Vec<Vec<f32>> = (0..200).map(|i| spiky(&mut rng, i % 3)).collect();
        let codes: Vec<Code> = rows.iter().map(|r| encode(r)).collect();
        for probe in [0, 100, 199] {
            let q = Query::new(&rows[probe]);
            let best = (0..codes.len())
                .max_by_key(|&s| q.score(&codes[s]))
                .expect("rows");
            assert_eq!(best, probe);
        }
    }

    #[test]
    fn every_kernel_agrees_and_keeps_the_best() {
        let mut rng = StdRng::seed_from_u64(2);
        let codes: Vec<Code> = (0..5000).map(|_| encode(&unit(&mut rng))).collect();
        let q = Query::new(&unit(&mut rng));
        let keep = |s: usize| !s.is_multiple_of(3);
        let mut want: Vec<(i32, u32)> = (0..codes.len())
            .filter(|&s| keep(s))
            .map(|s| (q.score(&codes[s]), s as u32))
            .collect();
        want.sort_unstable_by(best_first);
        want.truncate(100);
        want.sort_unstable();
        let mut kernels = vec![Kernel::Portable, best_kernel()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            kernels.push(Kernel::Popcnt);
        }
        for kernel in kernels {
            let mut got = scan(kernel, &q, &codes, 0, 100, &keep);
            got.sort_unstable();
            assert_eq!(got.len(), 100);
            assert_eq!(got, want, "{kernel:?}");
        }
    }

    #[test]
    fn search_returns_exact_scores_and_finds_itself() {
        let mut rng = StdRng::seed_from_u64(3);
        let rows: Vec<Vec<f32>> = (0..3000).map(|_| unit(&mut rng)).collect();
        let flat: Vec<f32> = rows.concat();
        let codes: Vec<Code> = rows.iter().map(|r| encode(r)).collect();
        for probe in [0, 1234, 2999] {
            let hits = search(&rows[probe], &flat, &codes, 5, 50, |_| true);
            assert_eq!(hits.len(), 5);
            assert_eq!(hits[0].slot, probe);
            assert!((hits[0].score - 1.0).abs() < 1e-5);
            for h in &hits {
                let exact = vector::dot(&rows[probe], &rows[h.slot]);
                assert_eq!(h.score, exact);
            }
        }
        // Rescoring everything is exact brute force.
        let q = unit(&mut rng);
        let all = search(&q, &flat, &codes, 10, 3000, |_| true);
        let exact = vector::brute_force(&q, &flat, FACE_DIMS, 0..3000, 10, |_| true);
        assert_eq!(all, exact);
        // A filter applies before the candidates are chosen.
        let odd = search(&q, &flat, &codes, 10, 50, |s| s % 2 == 1);
        assert_eq!(odd.len(), 10);
        assert!(odd.iter().all(|h| h.slot % 2 == 1));
    }
}
