//! Small dense/sparse linear algebra for the offline embedders: a CSR-like sparse matrix and a
//! randomized truncated SVD (Halko, Martinsson & Tropp 2011: Gaussian sketch, a few power
//! iterations with re-orthonormalisation, then the exact eigendecomposition of the small
//! projected Gram matrix by cyclic Jacobi). Everything runs in f64 in a fixed order, so the
//! same seed gives the same bits.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sparse rows: `rows[i]` = (column, value) pairs, columns `< n_cols`.
#[derive(Debug, Clone, Default)]
pub struct SparseRows {
    pub n_cols: usize,
    pub rows: Vec<Vec<(u32, f64)>>,
}

/// Row-major dense matrix.
#[derive(Debug, Clone)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Dense {
    pub fn zeros(rows: usize, cols: usize) -> Dense {
        Dense {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }
    #[inline]
    pub fn at_mut(&mut self, r: usize, c: usize) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }
}

impl SparseRows {
    /// A * M (n_rows x M.cols), M is n_cols x k.
    pub fn mul(&self, m: &Dense) -> Dense {
        let mut out = Dense::zeros(self.rows.len(), m.cols);
        for (i, row) in self.rows.iter().enumerate() {
            let o = &mut out.data[i * m.cols..(i + 1) * m.cols];
            for &(c, v) in row {
                let src = &m.data[c as usize * m.cols..(c as usize + 1) * m.cols];
                for (a, b) in o.iter_mut().zip(src) {
                    *a += v * b;
                }
            }
        }
        out
    }

    /// A^T * M (n_cols x M.cols), M is n_rows x k.
    pub fn tmul(&self, m: &Dense) -> Dense {
        let mut out = Dense::zeros(self.n_cols, m.cols);
        for (i, row) in self.rows.iter().enumerate() {
            let src = &m.data[i * m.cols..(i + 1) * m.cols];
            for &(c, v) in row {
                let o = &mut out.data[c as usize * m.cols..(c as usize + 1) * m.cols];
                for (a, b) in o.iter_mut().zip(src) {
                    *a += v * b;
                }
            }
        }
        out
    }
}

/// Standard normal by Box-Muller (rand_distr is not a dependency of this crate).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Orthonormalise the columns in place (modified Gram-Schmidt, twice for stability). Columns
/// that become numerically zero (rank deficiency) are set to zero and stay out of the basis.
pub fn orthonormalize(m: &mut Dense) {
    for _pass in 0..2 {
        for j in 0..m.cols {
            for p in 0..j {
                let dot: f64 = (0..m.rows).map(|r| m.at(r, j) * m.at(r, p)).sum();
                for r in 0..m.rows {
                    let v = m.at(r, p);
                    *m.at_mut(r, j) -= dot * v;
                }
            }
            let norm: f64 = (0..m.rows).map(|r| m.at(r, j).powi(2)).sum::<f64>().sqrt();
            let scale = if norm > 1e-10 { 1.0 / norm } else { 0.0 };
            for r in 0..m.rows {
                *m.at_mut(r, j) *= scale;
            }
        }
    }
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi: (eigenvalues descending,
/// eigenvectors as columns in the same order).
pub fn sym_eigen(a: &Dense) -> (Vec<f64>, Dense) {
    let n = a.rows;
    let mut a = a.clone();
    let mut v = Dense::zeros(n, n);
    for i in 0..n {
        *v.at_mut(i, i) = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a.at(i, j).powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| a.at(i, i).powi(2)).sum();
        if off <= 1e-24 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a.at(p, q);
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a.at(q, q) - a.at(p, p)) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a.at(k, p), a.at(k, q));
                    *a.at_mut(k, p) = c * akp - s * akq;
                    *a.at_mut(k, q) = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a.at(p, k), a.at(q, k));
                    *a.at_mut(p, k) = c * apk - s * aqk;
                    *a.at_mut(q, k) = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v.at(k, p), v.at(k, q));
                    *v.at_mut(k, p) = c * vkp - s * vkq;
                    *v.at_mut(k, q) = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| a.at(y, y).total_cmp(&a.at(x, x)).then(x.cmp(&y)));
    let vals = order.iter().map(|&i| a.at(i, i)).collect();
    let mut vecs = Dense::zeros(n, n);
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            *vecs.at_mut(k, new) = v.at(k, old);
        }
    }
    (vals, vecs)
}

/// The rank-`k` LSA embedding U_k S_k (= A V_k) of the rows of `a`, by randomized SVD with
/// `oversample` extra sketch columns and `power_iters` power iterations. Returns
/// (rows x k' embedding, singular values), k' = min(k, rows, cols); at least one column.
pub fn truncated_svd(
    a: &SparseRows,
    k: usize,
    oversample: usize,
    power_iters: usize,
    seed: u64,
) -> (Dense, Vec<f64>) {
    let n = a.rows.len();
    let k = k.min(n).min(a.n_cols).max(1);
    let r = (k + oversample).min(n).min(a.n_cols).max(k);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut omega = Dense::zeros(a.n_cols, r);
    omega.data.iter_mut().for_each(|x| *x = gaussian(&mut rng));
    let mut q = a.mul(&omega);
    orthonormalize(&mut q);
    for _ in 0..power_iters {
        let mut z = a.tmul(&q);
        orthonormalize(&mut z);
        q = a.mul(&z);
        orthonormalize(&mut q);
    }
    // B^T = A^T Q (cols x r); G = B B^T = (A^T Q)^T (A^T Q) (r x r).
    let bt = a.tmul(&q);
    let mut g = Dense::zeros(r, r);
    for i in 0..r {
        for j in i..r {
            let s: f64 = (0..bt.rows).map(|row| bt.at(row, i) * bt.at(row, j)).sum();
            *g.at_mut(i, j) = s;
            *g.at_mut(j, i) = s;
        }
    }
    let (vals, w) = sym_eigen(&g);
    let sing: Vec<f64> = vals.iter().take(k).map(|&l| l.max(0.0).sqrt()).collect();
    // U_k S_k = Q W_k S_k.
    let mut emb = Dense::zeros(n, k);
    for i in 0..n {
        for (c, sc) in sing.iter().enumerate() {
            let s: f64 = (0..r).map(|j| q.at(i, j) * w.at(j, c)).sum();
            *emb.at_mut(i, c) = s * sc;
        }
    }
    (emb, sing)
}

/// Scale each row to unit l2 norm (zero rows stay zero).
pub fn l2_normalize_rows(rows: &mut [Vec<f32>]) {
    for r in rows {
        let n = r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
        }
    }
}

pub fn dense_to_rows(d: &Dense) -> Vec<Vec<f32>> {
    (0..d.rows)
        .map(|i| (0..d.cols).map(|c| d.at(i, c) as f32).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises() {
        let mut a = Dense::zeros(3, 3);
        a.data = vec![4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 1.0];
        let (vals, v) = sym_eigen(&a);
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        for (c, val) in vals.iter().enumerate() {
            for r in 0..3 {
                let av: f64 = (0..3).map(|k| a.at(r, k) * v.at(k, c)).sum();
                assert!((av - val * v.at(r, c)).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn svd_recovers_a_low_rank_matrix() {
        // Rank-2 matrix: rows are mixes of two column patterns.
        let rows: Vec<Vec<(u32, f64)>> = (0..20)
            .map(|i| {
                let (a, b) = ((i % 5) as f64 + 1.0, (i % 3) as f64);
                (0..8u32)
                    .map(|c| {
                        (
                            c,
                            if c < 4 { a } else { b } + if c % 2 == 0 { b } else { 0.0 },
                        )
                    })
                    .collect()
            })
            .collect();
        let m = SparseRows { n_cols: 8, rows };
        let (emb, sing) = truncated_svd(&m, 4, 4, 3, 7);
        assert!(sing[2] < 1e-6 * sing[0], "{sing:?}");
        // Gram matrices agree: emb emb^T = A A^T.
        for i in 0..20 {
            for j in 0..20 {
                let e: f64 = (0..emb.cols).map(|c| emb.at(i, c) * emb.at(j, c)).sum();
                let a: f64 = m.rows[i]
                    .iter()
                    .zip(&m.rows[j])
                    .map(|(x, y)| x.1 * y.1)
                    .sum();
                assert!((e - a).abs() < 1e-6 * a.abs().max(1.0), "{i} {j} {e} {a}");
            }
        }
    }
}
