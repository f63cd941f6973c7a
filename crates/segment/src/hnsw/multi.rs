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

use super::VectorSource;

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

/// In-memory multivector store: point `i` holds rows `starts[i]..starts[i + 1]` of `data`
/// (row-major, `dim` floats per row), a variable number of rows per point. As a
/// [`VectorSource`], `vector(i)` is the point's `rows * dim` floats and `dim()` the row width.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiVectors {
    pub dim: usize,
    /// `len + 1` row indexes, starting at 0.
    starts: Vec<usize>,
    data: Vec<f32>,
}

impl MultiVectors {
    pub fn new(dim: usize) -> Self {
        MultiVectors { dim, starts: vec![0], data: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one point from its row-major rows (a trailing partial row is dropped); returns
    /// its offset.
    pub fn push(&mut self, rows: &[f32]) -> u32 {
        let offset = self.len() as u32;
        let whole = rows.len().checked_div(self.dim).unwrap_or(0);
        self.data.extend_from_slice(&rows[..whole * self.dim]);
        self.starts.push(self.starts.last().copied().unwrap_or(0) + whole);
        offset
    }

    /// The rows of point `offset` (row-major), `None` when out of range.
    pub fn get(&self, offset: u32) -> Option<&[f32]> {
        let i = offset as usize;
        let (&a, &b) = (self.starts.get(i)?, self.starts.get(i + 1)?);
        self.data.get(a * self.dim..b * self.dim)
    }

    pub fn memory_bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<f32>() + self.starts.capacity() * std::mem::size_of::<usize>()
    }
}

impl VectorSource for MultiVectors {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        MultiVectors::len(self)
    }
    /// Empty when `offset` is out of range (the graph only asks for offsets below `len`).
    fn vector(&self, offset: u32) -> &[f32] {
        self.get(offset).unwrap_or(&[])
    }
}
