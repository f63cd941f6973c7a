//! An in-memory segment: the points of one shard (or part of it) laid out for search.
//!
//! Points get dense internal offsets; vectors of each name live in one contiguous array
//! (`offset * dim`), payloads in a parallel vector. The segment is appendable: an upsert of a
//! known id overwrites its slot in place, a delete tombstones the slot. Ids are kept in a
//! `BTreeMap` so that scrolling in id order needs no sort.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use qd_core::filter::{Filter, PointView};
use qd_core::vectors::NamedVectors;
use qd_core::{Distance, Payload, PointId};

/// One named vector column: contiguous storage plus a presence flag per slot.
#[derive(Debug, Clone)]
pub struct VectorColumn {
    pub dim: usize,
    pub distance: Distance,
    data: Vec<f32>,
    present: Vec<bool>,
}

impl VectorColumn {
    pub fn new(dim: usize, distance: Distance) -> Self {
        VectorColumn { dim, distance, data: Vec::new(), present: Vec::new() }
    }

    fn ensure_len(&mut self, slots: usize) {
        if self.present.len() < slots {
            self.present.resize(slots, false);
            self.data.resize(slots * self.dim, 0.0);
        }
    }

    fn set(&mut self, offset: u32, v: Option<&[f32]>) {
        let o = offset as usize;
        self.ensure_len(o + 1);
        match v {
            Some(v) if v.len() == self.dim => {
                self.data[o * self.dim..(o + 1) * self.dim].copy_from_slice(v);
                self.present[o] = true;
            }
            _ => {
                self.data[o * self.dim..(o + 1) * self.dim].iter_mut().for_each(|x| *x = 0.0);
                self.present[o] = false;
            }
        }
    }

    pub fn get(&self, offset: u32) -> Option<&[f32]> {
        let o = offset as usize;
        if self.present.get(o).copied().unwrap_or(false) {
            Some(&self.data[o * self.dim..(o + 1) * self.dim])
        } else {
            None
        }
    }

    pub fn ram_bytes(&self) -> usize {
        self.data.capacity() * 4 + self.present.capacity()
    }
}

/// A scored hit inside one segment; `score` is the internal (larger-is-better) score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentHit {
    pub id: PointId,
    pub offset: u32,
    pub score: f32,
}

/// Orders hits by score, ties broken by id (smaller id ranks first) so results are deterministic.
#[derive(PartialEq)]
struct HeapHit(SegmentHit);
impl Eq for HeapHit {}
impl PartialOrd for HeapHit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapHit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.score.total_cmp(&other.0.score).then_with(|| other.0.id.cmp(&self.0.id))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Segment {
    ids: BTreeMap<PointId, u32>,
    offsets: Vec<PointId>,
    versions: Vec<u64>,
    deleted: Vec<bool>,
    payloads: Vec<Option<Payload>>,
    vectors: BTreeMap<String, VectorColumn>,
}

/// A point of a segment seen through the filter's eyes.
pub struct SegmentPoint<'a> {
    seg: &'a Segment,
    offset: u32,
}

impl PointView for SegmentPoint<'_> {
    fn id(&self) -> PointId {
        self.seg.offsets[self.offset as usize]
    }
    fn payload(&self) -> Option<&Payload> {
        self.seg.payloads[self.offset as usize].as_ref()
    }
    fn has_vector(&self, name: &str) -> bool {
        self.seg.vectors.get(name).and_then(|c| c.get(self.offset)).is_some()
    }
}

impl Segment {
    /// A segment with one column per configured vector `(name, dim, distance)`.
    pub fn new<'a>(columns: impl IntoIterator<Item = (&'a str, usize, Distance)>) -> Self {
        let vectors = columns.into_iter().map(|(n, dim, d)| (n.to_string(), VectorColumn::new(dim, d))).collect();
        Segment { vectors, ..Default::default() }
    }

    /// Live (not deleted) points.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: &PointId) -> bool {
        self.ids.contains_key(id)
    }

    pub fn version(&self, id: &PointId) -> Option<u64> {
        self.ids.get(id).map(|&o| self.versions[o as usize])
    }

    /// Insert or overwrite a point. Vectors must be validated and preprocessed already.
    pub fn upsert(&mut self, id: PointId, version: u64, vectors: &NamedVectors, payload: Option<Payload>) {
        let offset = match self.ids.get(&id) {
            Some(&o) => o,
            None => {
                let o = self.offsets.len() as u32;
                self.offsets.push(id);
                self.versions.push(0);
                self.deleted.push(false);
                self.payloads.push(None);
                self.ids.insert(id, o);
                o
            }
        };
        let o = offset as usize;
        self.versions[o] = version;
        self.deleted[o] = false;
        self.payloads[o] = payload.filter(|p| !p.is_empty());
        for (name, col) in self.vectors.iter_mut() {
            col.set(offset, vectors.get(name).map(Vec::as_slice));
        }
    }

    pub fn delete(&mut self, id: &PointId) -> bool {
        match self.ids.remove(id) {
            Some(o) => {
                let o = o as usize;
                self.deleted[o] = true;
                self.payloads[o] = None;
                true
            }
            None => false,
        }
    }

    pub fn payload(&self, id: &PointId) -> Option<&Payload> {
        self.ids.get(id).and_then(|&o| self.payloads[o as usize].as_ref())
    }

    /// All vectors of a point, by name.
    pub fn vectors(&self, id: &PointId) -> NamedVectors {
        let mut out = NamedVectors::new();
        if let Some(&o) = self.ids.get(id) {
            for (name, col) in &self.vectors {
                if let Some(v) = col.get(o) {
                    out.insert(name.clone(), v.to_vec());
                }
            }
        }
        out
    }

    pub fn point_view(&self, id: &PointId) -> Option<SegmentPoint<'_>> {
        self.ids.get(id).map(|&offset| SegmentPoint { seg: self, offset })
    }

    fn matches(&self, offset: u32, filter: Option<&Filter>) -> bool {
        !self.deleted[offset as usize] && filter.is_none_or(|f| f.check(&SegmentPoint { seg: self, offset }))
    }

    /// Ids in ascending order starting at `from` (inclusive), passing the filter, at most `limit`.
    pub fn scroll(&self, from: Option<&PointId>, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let iter: Box<dyn Iterator<Item = (&PointId, &u32)>> = match from {
            Some(f) => Box::new(self.ids.range(f..)),
            None => Box::new(self.ids.iter()),
        };
        iter.filter(|(_, &o)| self.matches(o, filter)).take(limit).map(|(id, _)| *id).collect()
    }

    /// Number of live points passing the filter.
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        match filter {
            None => self.len(),
            Some(_) => self.ids.values().filter(|&&o| self.matches(o, filter)).count(),
        }
    }

    /// Exact top-`k` by internal score for the named vector; points without that vector are
    /// skipped. `threshold` is an internal score: hits below it are dropped.
    pub fn search_exact(
        &self,
        vector: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
    ) -> Vec<SegmentHit> {
        let Some(distance) = self.vectors.get(vector).map(|c| c.distance) else { return Vec::new() };
        self.search_scored(vector, &|v| distance.score(query, v), k, filter, threshold)
    }

    /// Exact top-`k` under any scoring function of the stored vector (larger is better); used
    /// for plain nearest search and for recommendation scores.
    pub fn search_scored(
        &self,
        vector: &str,
        scorer: &dyn Fn(&[f32]) -> f32,
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
    ) -> Vec<SegmentHit> {
        let Some(col) = self.vectors.get(vector) else { return Vec::new() };
        if k == 0 {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Reverse<HeapHit>> = BinaryHeap::with_capacity(k + 1);
        for (id, &offset) in &self.ids {
            let Some(v) = col.get(offset) else { continue };
            if !self.matches(offset, filter) {
                continue;
            }
            let score = scorer(v);
            if threshold.is_some_and(|t| score < t) {
                continue;
            }
            let hit = HeapHit(SegmentHit { id: *id, offset, score });
            if heap.len() < k {
                heap.push(Reverse(hit));
            } else if heap.peek().is_some_and(|Reverse(worst)| hit > *worst) {
                heap.pop();
                heap.push(Reverse(hit));
            }
        }
        let mut out: Vec<SegmentHit> = heap.into_iter().map(|Reverse(h)| h.0).collect();
        sort_hits(&mut out);
        out
    }

    pub fn distance(&self, vector: &str) -> Option<Distance> {
        self.vectors.get(vector).map(|c| c.distance)
    }

    /// Bytes of RAM held by vectors and by payloads (the latter estimated from JSON size).
    pub fn ram_usage(&self) -> (usize, usize) {
        let vectors = self.vectors.values().map(VectorColumn::ram_bytes).sum();
        let payload =
            self.payloads.iter().flatten().map(|p| serde_json::to_string(p).map(|s| s.len()).unwrap_or(0)).sum();
        (vectors, payload)
    }

    pub fn vector_names(&self) -> impl Iterator<Item = &str> {
        self.vectors.keys().map(String::as_str)
    }

    /// Live points that have the named vector.
    pub fn vector_count(&self, name: &str) -> usize {
        self.vectors.get(name).map(|c| self.ids.values().filter(|&&o| c.get(o).is_some()).count()).unwrap_or(0)
    }
}

/// Sort best first: score descending, then id ascending.
pub fn sort_hits(hits: &mut [SegmentHit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(v: &[f32]) -> NamedVectors {
        NamedVectors::from([(String::new(), v.to_vec())])
    }

    #[test]
    fn upsert_overwrite_delete_search() {
        let mut s = Segment::new([("", 2, Distance::Dot)]);
        s.upsert(PointId::Num(1), 1, &vecs(&[1.0, 0.0]), None);
        s.upsert(PointId::Num(2), 2, &vecs(&[0.0, 1.0]), None);
        s.upsert(PointId::Num(3), 3, &vecs(&[0.5, 0.5]), None);
        assert_eq!(s.len(), 3);
        let hits = s.search_exact("", &[1.0, 0.0], 2, None, None);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![PointId::Num(1), PointId::Num(3)]);
        s.upsert(PointId::Num(1), 4, &vecs(&[0.0, 0.1]), None);
        assert_eq!(s.version(&PointId::Num(1)), Some(4));
        assert!(s.delete(&PointId::Num(3)));
        assert!(!s.delete(&PointId::Num(3)));
        let hits = s.search_exact("", &[1.0, 0.0], 3, None, None);
        assert_eq!(hits.len(), 2);
        assert_eq!(s.scroll(None, None, 10), vec![PointId::Num(1), PointId::Num(2)]);
        assert_eq!(s.scroll(Some(&PointId::Num(2)), None, 10), vec![PointId::Num(2)]);
        let th = s.search_exact("", &[0.0, 1.0], 3, None, Some(0.5));
        assert_eq!(th.len(), 1);
    }
}
