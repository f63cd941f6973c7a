//! Multivectors of a segment (ColBERT-style late interaction): per slot a run of rows of one
//! dimension in a flat array, scored by max-sim.
//!
//! max-sim(Q, P) = sum over rows q of Q of (max over rows p of P of sim(q, p)), where `sim` is
//! the metric's internal score (larger is better), rows already preprocessed (Cosine:
//! normalised one by one). An overwrite in an appendable segment appends the new rows and
//! leaves the old ones unused until the segment is compacted.

use qd_core::distance::Scorer;
use qd_core::vectors::MultiDenseVector;
use qd_core::Distance;

use crate::hnsw::VectorSource;

#[derive(Debug, Clone)]
pub struct MultiColumn {
    pub distance: Distance,
    dim: usize,
    /// Per slot: first row and row count (0 = no vector).
    slots: Vec<(u32, u32)>,
    rows: Vec<f32>,
}

impl MultiColumn {
    pub fn new(dim: usize, distance: Distance) -> Self {
        MultiColumn { distance, dim, slots: Vec::new(), rows: Vec::new() }
    }

    /// Dimension of each row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn ensure_len(&mut self, slots: usize) {
        if self.slots.len() < slots {
            self.slots.resize(slots, (0, 0));
        }
    }

    pub(crate) fn set(&mut self, offset: u32, v: Option<&MultiDenseVector>) {
        self.ensure_len(offset as usize + 1);
        let o = offset as usize;
        match v.filter(|v| v.dim() == self.dim) {
            Some(v) => {
                let start = (self.rows.len() / self.dim) as u32;
                self.rows.extend_from_slice(v.flat());
                self.slots[o] = (start, v.count() as u32);
            }
            None => self.slots[o] = (0, 0),
        }
    }

    /// The rows of a slot, flat (`None` if the slot has no vector).
    pub fn get(&self, offset: u32) -> Option<&[f32]> {
        let &(start, count) = self.slots.get(offset as usize)?;
        if count == 0 {
            return None;
        }
        let s = start as usize * self.dim;
        self.rows.get(s..s + count as usize * self.dim)
    }

    pub fn get_owned(&self, offset: u32) -> Option<MultiDenseVector> {
        self.get(offset).and_then(|rows| MultiDenseVector::from_flat(self.dim, rows.to_vec()))
    }

    pub fn ram_bytes(&self) -> usize {
        self.slots.capacity() * 8 + self.rows.capacity() * 4
    }

    /// Bytes of stored rows (what the optimizer's size thresholds count).
    pub fn stored_bytes(&self) -> usize {
        self.rows.len() * 4
    }
}

impl VectorSource for MultiColumn {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.slots.len()
    }
    /// The slot's rows (empty for a slot without a vector).
    fn vector(&self, offset: u32) -> &[f32] {
        self.get(offset).unwrap_or(&[])
    }
}

/// Scores offsets of a multivector column against one query by max-sim (for graph search).
pub struct MaxSimQuery<'a> {
    pub col: &'a MultiColumn,
    pub scorer: Scorer,
    /// Flat, preprocessed query rows.
    pub query: &'a [f32],
}

impl crate::hnsw::OffsetScorer for MaxSimQuery<'_> {
    fn score(&self, offset: u32) -> f32 {
        max_sim(&self.scorer, self.col.dim, self.query, self.col.vector(offset))
    }
}

/// max-sim of a query (flat rows) against stored rows, both of dimension `dim`. A side without
/// rows scores minus infinity (it can never be a hit).
pub fn max_sim(scorer: &Scorer, dim: usize, query: &[f32], stored: &[f32]) -> f32 {
    if dim == 0 || query.is_empty() || stored.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mut sum = 0.0f32;
    for q in query.chunks_exact(dim) {
        let mut best = f32::NEG_INFINITY;
        for p in stored.chunks_exact(dim) {
            best = best.max(scorer.score(q, p));
        }
        sum += best;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_sim_is_sum_of_row_maxima() {
        let scorer = Distance::Dot.scorer();
        let q = [1.0, 0.0, 0.0, 1.0];
        let p = [0.5, 0.5, 2.0, 0.0, 0.0, 3.0];
        // row q0: max(0.5, 2.0, 0.0) = 2.0; row q1: max(0.5, 0.0, 3.0) = 3.0
        assert_eq!(max_sim(&scorer, 2, &q, &p), 5.0);
        assert_eq!(max_sim(&scorer, 2, &q, &[]), f32::NEG_INFINITY);
    }

    #[test]
    fn slots_overwrite_and_clear() {
        let mut c = MultiColumn::new(2, Distance::Dot);
        let a = MultiDenseVector::new(vec![vec![1.0, 2.0], vec![3.0, 4.0]]).expect("a");
        let b = MultiDenseVector::new(vec![vec![5.0, 6.0]]).expect("b");
        c.set(1, Some(&a));
        assert_eq!(c.get(0), None);
        assert_eq!(c.get(1), Some(&[1.0, 2.0, 3.0, 4.0][..]));
        c.set(1, Some(&b));
        assert_eq!(c.get_owned(1), Some(b));
        c.set(1, None);
        assert_eq!(c.get(1), None);
    }
}
