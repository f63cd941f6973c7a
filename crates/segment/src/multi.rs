//! Multivectors of a segment (ColBERT-style late interaction): per slot a run of rows of one
//! dimension in a flat array, scored by max-sim.
//!
//! Scoring is [`crate::hnsw::MaxSimScorer`] (exact scans, graph build and graph search alike),
//! rows already preprocessed (Cosine: normalised one by one; Cosine `uint8` rows are held as
//! their whole numbers and read normalised, see [`crate::elements`]). An overwrite in an appendable
//! segment appends the new rows and leaves the old ones unused until the segment is compacted.
//! A sealed segment's column may instead be served from a memory-mapped file (`on_disk: true`,
//! see [`crate::multi_file`]).

use std::sync::Arc;

use qd_core::vectors::MultiDenseVector;
use qd_core::Distance;

use crate::elements::{row_to_store, ElemVec, ElementType, Elems};
use crate::hnsw::VectorSource;
use crate::multi_file::MappedMulti;

#[derive(Debug, Clone)]
pub struct MultiColumn {
    pub distance: Distance,
    dim: usize,
    element: ElementType,
    store: Rows,
}

/// Where a column's rows live.
#[derive(Debug, Clone)]
enum Rows {
    /// Per slot: first row and row count (0 = no vector); the rows, flat.
    Heap {
        slots: Vec<(u32, u32)>,
        rows: ElemVec,
    },
    Mapped(Arc<MappedMulti>),
}

impl MultiColumn {
    pub fn new(dim: usize, distance: Distance) -> Self {
        Self::with_element(dim, distance, ElementType::F32)
    }

    /// An empty column holding row components as `element` on the heap.
    pub fn with_element(dim: usize, distance: Distance, element: ElementType) -> Self {
        MultiColumn { distance, dim, element, store: Rows::Heap { slots: Vec::new(), rows: ElemVec::new(element) } }
    }

    /// How row components are held, on the heap or in a mapped file.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// Dimension of each row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        match &self.store {
            Rows::Heap { slots, .. } => slots.len(),
            Rows::Mapped(m) => m.slots(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn ensure_len(&mut self, len: usize) {
        if let Rows::Heap { slots, .. } = &mut self.store {
            if slots.len() < len {
                slots.resize(len, (0, 0));
            }
        }
    }

    /// Write one slot. A mapped column is immutable (its file was written from the very
    /// records a restore replays), so writes to it are ignored.
    pub(crate) fn set(&mut self, offset: u32, v: Option<&MultiDenseVector>) {
        self.ensure_len(offset as usize + 1);
        let dim = self.dim;
        let Rows::Heap { slots, rows } = &mut self.store else { return };
        let o = offset as usize;
        match v.filter(|v| v.dim() == dim) {
            Some(v) => {
                let start = (rows.len() / dim) as u32;
                let (kind, distance) = (rows.kind(), self.distance);
                v.flat().chunks(dim.max(1)).for_each(|r| rows.extend(&row_to_store(kind, distance, r)));
                slots[o] = (start, v.count() as u32);
            }
            None => slots[o] = (0, 0),
        }
    }

    /// The rows of a slot, flat, as scoring reads them (`None` if the slot has no vector).
    pub fn get(&self, offset: u32) -> Option<Elems<'_>> {
        let rows = match &self.store {
            Rows::Heap { slots, rows } => {
                let &(start, count) = slots.get(offset as usize)?;
                if count == 0 {
                    return None;
                }
                let s = start as usize * self.dim;
                rows.as_elems().get(s, s + count as usize * self.dim)
            }
            Rows::Mapped(m) => m.get(offset),
        };
        rows.map(|r| r.scored_as(self.distance, self.dim))
    }

    /// The slot's multivector as stored (what a read returns).
    pub fn get_owned(&self, offset: u32) -> Option<MultiDenseVector> {
        self.get(offset).and_then(|rows| MultiDenseVector::from_flat(self.dim, rows.stored().to_vec()))
    }

    /// Gives back reserved heap space beyond the stored rows.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Rows::Heap { slots, rows } = &mut self.store {
            slots.shrink_to_fit();
            rows.shrink_to_fit();
        }
    }

    /// Heap bytes (none for a mapped column).
    pub fn ram_bytes(&self) -> usize {
        match &self.store {
            Rows::Heap { slots, rows } => slots.capacity() * 8 + rows.capacity_bytes(),
            Rows::Mapped(_) => 0,
        }
    }

    /// Bytes of stored rows (what the optimizer's size thresholds count).
    pub fn stored_bytes(&self) -> usize {
        match &self.store {
            Rows::Heap { rows, .. } => rows.byte_len(),
            Rows::Mapped(m) => m.rows() * self.dim * self.element.size(),
        }
    }

    /// The mapping the rows are served from, if any.
    pub fn mapping(&self) -> Option<&Arc<MappedMulti>> {
        match &self.store {
            Rows::Mapped(m) => Some(m),
            Rows::Heap { .. } => None,
        }
    }

    /// Bytes of the mapped file, 0 for a heap column.
    pub fn mapped_bytes(&self) -> usize {
        self.mapping().map_or(0, |m| m.file_bytes())
    }

    /// Serve the rows from `m`; refused (false) unless it has this column's shape.
    pub(crate) fn map(&mut self, m: Arc<MappedMulti>) -> bool {
        if m.slots() != self.len() || m.dim() != self.dim || m.element() != self.element {
            return false;
        }
        self.store = Rows::Mapped(m);
        true
    }

    /// A heap copy of the column in its storage type, each slot's rows packed after the
    /// previous one's.
    pub fn to_heap(&self) -> MultiColumn {
        let mut slots = Vec::with_capacity(self.len());
        let mut rows = ElemVec::new(self.element);
        for o in 0..self.len() as u32 {
            match self.get(o) {
                Some(r) => {
                    slots.push(((rows.len() / self.dim) as u32, (r.len() / self.dim) as u32));
                    rows.append(r);
                }
                None => slots.push((0, 0)),
            }
        }
        rows.shrink_to_fit();
        MultiColumn { distance: self.distance, dim: self.dim, element: self.element, store: Rows::Heap { slots, rows } }
    }
}

impl VectorSource for MultiColumn {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        MultiColumn::len(self)
    }
    /// The slot's rows (empty for a slot without a vector).
    fn vector(&self, offset: u32) -> Elems<'_> {
        self.get(offset).unwrap_or(Elems::F32(&[]))
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
        assert_eq!(c.get(1), Some(Elems::F32(&[1.0, 2.0, 3.0, 4.0])));
        c.set(1, Some(&b));
        assert_eq!(c.get_owned(1), Some(b));
        c.set(1, None);
        assert_eq!(c.get(1), None);
    }
}
