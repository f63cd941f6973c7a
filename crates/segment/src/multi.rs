//! Multivectors of a segment (ColBERT-style late interaction): per slot a run of rows of one
//! dimension in a flat array, scored by max-sim.
//!
//! Scoring is [`crate::hnsw::MaxSimScorer`] (exact scans, graph build and graph search alike),
//! rows already preprocessed (Cosine: normalised one by one). An overwrite in an appendable segment appends the new rows and
//! leaves the old ones unused until the segment is compacted.

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

#[cfg(test)]
mod tests {
    use super::*;

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
