//! Balanced K-means: k-means++ seeding from a seed, then Lloyd iterations whose assignment step
//! respects capacities.
//!
//! Balanced assignment (greedy by distance with capacities): with n = q*k + r (0 <= r < k),
//! visit all (point, cluster) pairs in increasing squared distance (ties by point, then
//! cluster) and give each unassigned point to the cluster if it has fewer than q points, or
//! exactly q while fewer than r clusters have grown to q + 1. A refusal is permanent (sizes
//! only grow; the count of q+1 clusters only grows), so when the pass ends every cluster is
//! full; were a point left over, all k clusters would be full at q + 1 (sum k(q+1) > n) or the
//! r big ones are taken and the rest hold q (sum exactly n): both contradict a leftover point.
//! Hence every point is assigned and every size is q or q + 1 = floor(n/k) or floor(n/k)+1,
//! inside SPEC.md's [floor(n/k) - 1, floor(n/k) + 1].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Points are rows of a flat row-major array of `dim` columns.
pub struct Points<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

impl Points<'_> {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means++: the first centre uniformly, each next one with probability proportional to the
/// squared distance to the nearest chosen centre; if every remaining point coincides with a
/// centre, a uniformly drawn unchosen point.
pub fn kmeanspp(p: &Points, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = p.len();
    let mut chosen = vec![false; n];
    let mut centres = Vec::with_capacity(k * p.dim);
    let first = rng.random_range(0..n);
    chosen[first] = true;
    centres.extend_from_slice(p.row(first));
    let mut d: Vec<f64> = (0..n)
        .map(|i| dist2(p.row(i), p.row(first)) as f64)
        .collect();
    for _ in 1..k {
        let total: f64 = (0..n).filter(|&i| !chosen[i]).map(|i| d[i]).sum();
        let pick = if total > 0.0 {
            let mut x = rng.random::<f64>() * total;
            let mut last = None;
            let mut pick = None;
            for i in (0..n).filter(|&i| !chosen[i] && d[i] > 0.0) {
                last = Some(i);
                x -= d[i];
                if x < 0.0 {
                    pick = Some(i);
                    break;
                }
            }
            pick.or(last).expect("positive mass")
        } else {
            let free: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
            free[rng.random_range(0..free.len())]
        };
        chosen[pick] = true;
        centres.extend_from_slice(p.row(pick));
        for (i, di) in d.iter_mut().enumerate() {
            *di = di.min(dist2(p.row(i), p.row(pick)) as f64);
        }
    }
    centres
}

/// The capacity-respecting assignment described in the module docs.
pub fn balanced_assign(p: &Points, centres: &[f32], k: usize) -> Vec<usize> {
    let n = p.len();
    let (q, r) = (n / k, n % k);
    let mut pairs: Vec<(f32, u32, u32)> = Vec::with_capacity(n * k);
    for i in 0..n {
        for c in 0..k {
            let d = dist2(p.row(i), &centres[c * p.dim..(c + 1) * p.dim]);
            pairs.push((d, i as u32, c as u32));
        }
    }
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut assign = vec![usize::MAX; n];
    let mut size = vec![0usize; k];
    let (mut big, mut left) = (0usize, n);
    for (_, i, c) in pairs {
        let (i, c) = (i as usize, c as usize);
        if assign[i] != usize::MAX {
            continue;
        }
        let take = size[c] < q || (size[c] == q && big < r);
        if take {
            if size[c] == q {
                big += 1;
            }
            size[c] += 1;
            assign[i] = c;
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    debug_assert!(assign.iter().all(|&a| a != usize::MAX));
    assign
}

/// Result of one balanced clustering.
pub struct Clustering {
    pub assign: Vec<usize>,
    pub centres: Vec<f32>,
    pub k: usize,
    pub iterations: usize,
}

/// Balanced K-means of `p` into k = min(k, n) clusters (n >= 1, k >= 1).
pub fn balanced_kmeans(p: &Points, k: usize, max_iter: usize, seed: u64) -> Clustering {
    let n = p.len();
    let k = k.min(n).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = kmeanspp(p, k, &mut rng);
    let mut assign = balanced_assign(p, &centres, k);
    let mut iterations = 1;
    for _ in 1..max_iter.max(1) {
        // Means in f64, in point order: deterministic.
        let mut sum = vec![0f64; k * p.dim];
        let mut count = vec![0usize; k];
        for (i, &c) in assign.iter().enumerate() {
            count[c] += 1;
            for (s, x) in sum[c * p.dim..(c + 1) * p.dim].iter_mut().zip(p.row(i)) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            for j in 0..p.dim {
                centres[c * p.dim + j] = (sum[c * p.dim + j] / count[c] as f64) as f32;
            }
        }
        let next = balanced_assign(p, &centres, k);
        iterations += 1;
        if next == assign {
            break;
        }
        assign = next;
    }
    Clustering {
        assign,
        centres,
        k,
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_points(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|_| rng.random::<f32>()).collect()
    }

    #[test]
    fn sizes_within_bounds_for_many_shapes() {
        for &(n, k) in &[
            (1, 1),
            (1, 4),
            (3, 8),
            (7, 3),
            (10, 10),
            (100, 7),
            (257, 16),
            (500, 256),
            (64, 64),
            (65, 64),
        ] {
            let data = random_points(n, 5, n as u64 * 31 + k as u64);
            let p = Points {
                data: &data,
                dim: 5,
            };
            let c = balanced_kmeans(&p, k, 10, 3);
            let kk = k.min(n);
            assert_eq!(c.k, kk);
            let mut size = vec![0usize; kk];
            c.assign.iter().for_each(|&a| size[a] += 1);
            let q = n / kk;
            for &s in &size {
                assert!(s + 1 >= q && s <= q + 1, "n {n} k {k}: size {s}, q {q}");
                assert!(s == q || s == q + 1, "n {n} k {k}: size {s}");
            }
        }
    }

    #[test]
    fn deterministic_and_sensible() {
        // Two well-separated blobs of 50 each, k = 2: the balanced split is the blob split.
        let mut data = random_points(100, 3, 5);
        data[150..].iter_mut().for_each(|x| *x += 10.0);
        let p = Points {
            data: &data,
            dim: 3,
        };
        let a = balanced_kmeans(&p, 2, 20, 9);
        let b = balanced_kmeans(&p, 2, 20, 9);
        assert_eq!(a.assign, b.assign);
        assert_eq!(a.centres, b.centres);
        assert!(a.assign[..50].iter().all(|&x| x == a.assign[0]));
        assert!(a.assign[50..].iter().all(|&x| x != a.assign[0]));
    }

    #[test]
    fn duplicate_points_still_get_distinct_centres() {
        let data = vec![1.0f32; 12];
        let p = Points {
            data: &data,
            dim: 2,
        };
        let c = balanced_kmeans(&p, 6, 5, 1);
        let mut seen = c.assign.clone();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    }
}
