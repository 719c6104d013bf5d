//! Face vectors: validation of client input, normalisation, and the exact
//! (brute-force) cosine kernels used by the embedded store and its re-ranking.
//!
//! Vectors are stored unit-length, so cosine similarity is a dot product.
//! The dot product runs over 16 independent lanes, which LLVM turns into SIMD
//! without `unsafe` or target-specific code (the box may be ARM).

use rayon::prelude::*;

/// Why a face vector was refused (all map to 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    #[error("Face vector must have {expected} numbers, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("Face vector must contain only finite numbers (index {index})")]
    NotFinite { index: usize },
    #[error("Face vector must not be all zeros")]
    Zero,
}

/// Checks length and finiteness (as f32: 1e39 is finite in JSON's f64 but
/// infinite as f32), then scales to unit length.
///
/// The norm is summed in f64: in f32 the squares of numbers above ~1.8e19
/// overflow and those below ~1e-19 vanish or lose their precision, which
/// refused such vectors as all zeros or scaled them to the wrong length
/// (found by the `vector` fuzz target).
pub fn validate(raw: &[f64], dims: usize) -> Result<Vec<f32>, VectorError> {
    if raw.len() != dims {
        return Err(VectorError::WrongLength {
            expected: dims,
            got: raw.len(),
        });
    }
    let mut v = Vec::with_capacity(dims);
    for (index, &x) in raw.iter().enumerate() {
        let f = x as f32;
        if !f.is_finite() {
            return Err(VectorError::NotFinite { index });
        }
        v.push(f);
    }
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Err(VectorError::Zero);
    }
    v.iter_mut()
        .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    Ok(v)
}

const LANES: usize = 16;

/// Dot product with 16 independent accumulators (auto-vectorised).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// One scored slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub slot: usize,
    pub score: f32,
}

/// Sorts best first (ties by slot, newest first, for a stable order).
pub fn sort_best_first(v: &mut [Scored]) {
    v.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(b.slot.cmp(&a.slot)));
}

/// Keeps the `k` best of `v`, sorted best first.
pub fn top_k(mut v: Vec<Scored>, k: usize) -> Vec<Scored> {
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, |a, b| {
            b.score.total_cmp(&a.score).then(b.slot.cmp(&a.slot))
        });
        v.truncate(k);
    }
    if k == 0 {
        v.clear();
    }
    sort_best_first(&mut v);
    v
}

/// Rows per parallel chunk: large enough to amortise scheduling, small enough
/// that both cores get work at 10k rows.
const CHUNK_ROWS: usize = 4096;

/// Exact top-k over `vectors` (row-major, `dims` per row) for rows
/// `start..end` that pass `keep`. Chunks run in parallel; each keeps its own
/// top-k, then the partial results are merged.
pub fn brute_force<F>(
    query: &[f32],
    vectors: &[f32],
    dims: usize,
    range: std::ops::Range<usize>,
    k: usize,
    keep: F,
) -> Vec<Scored>
where
    F: Fn(usize) -> bool + Sync,
{
    if k == 0 || range.is_empty() || dims == 0 {
        return Vec::new();
    }
    let starts: Vec<usize> = range.clone().step_by(CHUNK_ROWS).collect();
    let partial: Vec<Scored> = starts
        .par_iter()
        .flat_map_iter(|&s| {
            let e = (s + CHUNK_ROWS).min(range.end);
            let mut local = Vec::with_capacity(e - s);
            for slot in s..e {
                if !keep(slot) {
                    continue;
                }
                if let Some(row) = vectors.get(slot * dims..(slot + 1) * dims) {
                    local.push(Scored {
                        slot,
                        score: dot(query, row),
                    });
                }
            }
            top_k(local, k)
        })
        .collect();
    top_k(partial, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_input() {
        assert_eq!(
            validate(&[1.0; 3], 4),
            Err(VectorError::WrongLength {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            validate(&[1.0, 1e39, 0.0], 3),
            Err(VectorError::NotFinite { index: 1 })
        );
        assert_eq!(validate(&[0.0; 3], 3), Err(VectorError::Zero));
    }

    #[test]
    fn validate_normalises() {
        let v = validate(&[3.0, 4.0], 2).expect("valid");
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    /// Regression (fuzzing): squares that overflow or underflow f32 refused
    /// valid vectors as all zeros, or scaled them away from unit length.
    #[test]
    fn validate_normalises_huge_and_tiny_numbers() {
        for scale in [1e30, 1e20, 1e-20, 1e-30] {
            let v = validate(&[3.0 * scale, 4.0 * scale], 2).expect("valid");
            assert!(
                (v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6,
                "{scale}: {v:?}"
            );
        }
        let v = validate(&[3.5e-43; 4], 4).expect("subnormal");
        assert!(v.iter().all(|x| (x - 0.5).abs() < 1e-6), "{v:?}");
    }

    #[test]
    fn dot_matches_naive_for_odd_lengths() {
        for n in [1, 15, 16, 17, 512, 515] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-3, "n={n}");
        }
    }

    #[test]
    fn brute_force_finds_best_and_filters() {
        let dims = 4;
        let rows: Vec<Vec<f64>> = (0..10_000)
            .map(|i| vec![(i as f64).sin(), (i as f64).cos(), 0.5, (i % 7) as f64])
            .collect();
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| validate(r, dims).expect("row"))
            .collect();
        let q = validate(&rows[1234], dims).expect("q");
        let hits = brute_force(&q, &flat, dims, 0..10_000, 5, |_| true);
        assert_eq!(hits.len(), 5);
        let best = (0..10_000)
            .map(|i| dot(&q, &flat[i * dims..(i + 1) * dims]))
            .fold(f32::MIN, f32::max);
        assert!((hits[0].score - best).abs() < 1e-6);
        assert!(hits[0].score > 0.999);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        let odd = brute_force(&q, &flat, dims, 0..10_000, 5, |s| s % 2 == 1);
        assert!(odd.iter().all(|h| h.slot % 2 == 1));
    }

    #[test]
    fn top_k_keeps_best() {
        let v = (0..100)
            .map(|i| Scored {
                slot: i,
                score: (i as f32 * 0.7).sin(),
            })
            .collect();
        let t = top_k(v, 3);
        assert_eq!(t.len(), 3);
        assert!(t.windows(2).all(|w| w[0].score >= w[1].score));
    }
}
