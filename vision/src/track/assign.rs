//! Linear assignment of detections to tracks with a cost ceiling, on top of
//! the `lapjv` solver (what ByteTrack's `lap.lapjv(extend_cost=True,
//! cost_limit=..)` does).
//!
//! `lapjv` wants a square matrix, so the `rows × cols` costs are embedded in a
//! `(rows + cols)²` matrix whose extra "stay unmatched" cells cost half the
//! ceiling: pairing a row with a column is then only worth it when its cost is
//! below the ceiling. Costs are rounded to multiples of 2⁻¹² so that every sum
//! the solver forms is exact in `f64`; Jonker–Volgenant ports are known to
//! loop forever on rounding noise between nearly equal costs.

/// A cost that can never be matched (different kinds, no overlap...).
pub const FORBIDDEN: f32 = 2.0;

const QUANTUM: f64 = 4096.0;

/// Result of one assignment: `(row, col)` pairs and what was left over, each
/// in ascending order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// Dense row-major cost matrix.
#[derive(Debug, Clone)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    costs: Vec<f32>,
}

impl CostMatrix {
    /// Builds `rows × cols` costs from `cost(row, col)`. Non-finite costs
    /// become [`FORBIDDEN`].
    pub fn from_fn(rows: usize, cols: usize, mut cost: impl FnMut(usize, usize) -> f32) -> Self {
        let mut costs = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                let v = cost(r, c);
                costs.push(if v.is_finite() { v } else { FORBIDDEN });
            }
        }
        Self { rows, cols, costs }
    }

    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.costs[row * self.cols + col]
    }
}

/// Minimum-total-cost matching that only keeps pairs with cost `<= limit`.
pub fn assign(costs: &CostMatrix, limit: f32) -> Assignment {
    let (rows, cols) = (costs.rows, costs.cols);
    if rows == 0 || cols == 0 {
        return Assignment {
            matches: Vec::new(),
            unmatched_rows: (0..rows).collect(),
            unmatched_cols: (0..cols).collect(),
        };
    }
    let quantise = |v: f32| (f64::from(v) * QUANTUM).round() / QUANTUM;
    let limit_q = quantise(limit.clamp(0.0, FORBIDDEN));
    let n = rows + cols;
    let mut square = vec![0.0f64; n * n];
    for (i, row) in square.chunks_exact_mut(n).enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = match (i < rows, j < cols) {
                (true, true) => quantise(costs.get(i, j).clamp(0.0, FORBIDDEN)),
                (false, false) => 0.0,
                _ => limit_q / 2.0,
            };
        }
    }
    let solved = lapjv::Matrix::from_shape_vec((n, n), square)
        .ok()
        .and_then(|m| lapjv::lapjv(&m).ok());
    let row_to_col = match solved {
        Some((row_to_col, _)) => row_to_col,
        // Neither can happen for a square, finite matrix; fall back to the
        // greedy matcher rather than dropping every track if it ever does.
        None => return greedy(costs, limit),
    };
    let mut matched_cols = vec![false; cols];
    let mut out = Assignment::default();
    for (r, &c) in row_to_col.iter().enumerate().take(rows) {
        if c < cols && costs.get(r, c) <= limit {
            out.matches.push((r, c));
            matched_cols[c] = true;
        } else {
            out.unmatched_rows.push(r);
        }
    }
    out.unmatched_cols = (0..cols).filter(|&c| !matched_cols[c]).collect();
    out
}

/// Cheapest-pair-first matching: the fallback, and the reference the tests
/// compare the optimal matcher against.
fn greedy(costs: &CostMatrix, limit: f32) -> Assignment {
    let mut pairs: Vec<(f32, usize, usize)> = (0..costs.rows)
        .flat_map(|r| (0..costs.cols).map(move |c| (r, c)))
        .map(|(r, c)| (costs.get(r, c), r, c))
        .filter(|&(v, _, _)| v <= limit)
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut row_used = vec![false; costs.rows];
    let mut col_used = vec![false; costs.cols];
    let mut out = Assignment::default();
    for (_, r, c) in pairs {
        if !row_used[r] && !col_used[c] {
            row_used[r] = true;
            col_used[c] = true;
            out.matches.push((r, c));
        }
    }
    out.matches.sort_unstable();
    out.unmatched_rows = (0..costs.rows).filter(|&r| !row_used[r]).collect();
    out.unmatched_cols = (0..costs.cols).filter(|&c| !col_used[c]).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matrix(rows: &[&[f32]]) -> CostMatrix {
        CostMatrix::from_fn(rows.len(), rows.first().map_or(0, |r| r.len()), |r, c| {
            rows[r][c]
        })
    }

    #[test]
    fn picks_the_globally_cheapest_pairing() {
        // Greedy would take (0,0)=0.1 and then be forced into (1,1)=0.9 > limit;
        // the optimum is (0,1) + (1,0).
        let m = matrix(&[&[0.1, 0.2], &[0.3, 0.9]]);
        let a = assign(&m, 0.8);
        assert_eq!(a.matches, vec![(0, 1), (1, 0)]);
        assert!(a.unmatched_rows.is_empty() && a.unmatched_cols.is_empty());
    }

    #[test]
    fn respects_the_ceiling_and_rectangular_shapes() {
        let m = matrix(&[&[0.9, 0.3, FORBIDDEN]]);
        let a = assign(&m, 0.8);
        assert_eq!(a.matches, vec![(0, 1)]);
        assert_eq!(a.unmatched_cols, vec![0, 2]);
        let none = assign(&matrix(&[&[0.95], &[0.85]]), 0.8);
        assert!(none.matches.is_empty());
        assert_eq!(none.unmatched_rows, vec![0, 1]);
        let empty = assign(&CostMatrix::from_fn(0, 3, |_, _| 0.0), 0.8);
        assert_eq!(empty.unmatched_cols, vec![0, 1, 2]);
    }

    #[test]
    fn nan_is_forbidden() {
        let a = assign(&matrix(&[&[f32::NAN]]), 0.8);
        assert!(a.matches.is_empty());
    }

    proptest! {
        /// The solver never does worse than greedy on total matched cost
        /// (counting each unmatched row and column at half the ceiling), every
        /// index appears exactly once, and no pair exceeds the ceiling.
        #[test]
        fn optimal_and_well_formed(
            rows in 0usize..6, cols in 0usize..6,
            seed in proptest::collection::vec(0.0f32..1.0, 36),
        ) {
            let m = CostMatrix::from_fn(rows, cols, |r, c| seed[r * 6 + c]);
            let limit = 0.8;
            let total = |a: &Assignment| -> f32 {
                a.matches.iter().map(|&(r, c)| m.get(r, c)).sum::<f32>()
                    + (a.unmatched_rows.len() + a.unmatched_cols.len()) as f32 * limit / 2.0
            };
            let a = assign(&m, limit);
            prop_assert_eq!(a.matches.len() + a.unmatched_rows.len(), rows);
            prop_assert_eq!(a.matches.len() + a.unmatched_cols.len(), cols);
            for &(r, c) in &a.matches {
                prop_assert!(m.get(r, c) <= limit);
            }
            let g = greedy(&m, limit);
            prop_assert!(total(&a) <= total(&g) + 1e-3);
        }
    }
}
