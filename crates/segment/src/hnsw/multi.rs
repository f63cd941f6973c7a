//! How two stored points are scored, and multivectors (ColBERT-style late interaction).
//!
//! The graph code is generic over [`PairScore`]: a dense graph scores two vectors with the
//! metric's kernel ([`Scorer`]); a multivector graph scores two multivectors (row-major
//! `rows * dim` slices) with max-sim ([`MaxSimScorer`]):
//! `score(Q, P) = sum over rows q of Q of max over rows p of P of sim(q, p)`, where `sim` is
//! the metric's internal score. Max-sim is asymmetric; the build uses it as Qdrant does, with
//! the point being inserted (or whose links are being pruned) in the query position.

use qd_core::distance::Scorer;
use qd_core::Distance;

/// Scores two stored items (larger is better): the pairwise score the graph is built with and
/// searched under. Implemented by [`Scorer`] (one dense vector per point) and by
/// [`MaxSimScorer`] (one multivector per point).
pub trait PairScore: Copy + Send + Sync {
    fn score(&self, a: &[f32], b: &[f32]) -> f32;
}

impl PairScore for Scorer {
    /// Forwards to the kernel; inlined so a dense build compiles to what it did before the
    /// graph code became generic.
    #[inline(always)]
    fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        Scorer::score(self, a, b)
    }
}

/// Max-sim of two row-major multivectors of `dim`-wide rows, each row pair scored by `inner`:
/// `sum over rows q of a of max over rows p of b of inner(q, p)`. A trailing partial row is
/// ignored; `a` without rows scores 0, and a row of `a` against `b` without rows scores
/// `-inf` (Qdrant stores no empty multivectors, so this only keeps the function total).
#[derive(Clone, Copy, Debug)]
pub struct MaxSimScorer {
    /// Score of one row pair (for Cosine, rows must be normalised one by one).
    pub inner: Scorer,
    /// Row width.
    pub dim: usize,
}

impl MaxSimScorer {
    pub fn new(distance: Distance, dim: usize) -> Self {
        MaxSimScorer { inner: distance.scorer(), dim }
    }
}

impl PairScore for MaxSimScorer {
    #[inline]
    fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        if self.dim == 0 {
            return 0.0;
        }
        let mut sum = 0.0f32;
        for q in a.chunks_exact(self.dim) {
            let mut best = f32::NEG_INFINITY;
            for p in b.chunks_exact(self.dim) {
                best = best.max(self.inner.score(q, p));
            }
            sum += best;
        }
        sum
    }
}
