//! Sparse vectors of a segment: the forward store (one sparse vector per slot) and, for sealed
//! segments, an inverted index (one posting list of `(offset, value)` per dimension).
//!
//! Scores are exact dot products over the indices a stored vector shares with the query, as in
//! Qdrant; a point sharing no index with the query is not a hit. The inverted index only makes
//! finding those points cheaper: it accumulates each query dimension's postings into a per-slot
//! score array, so the work is the total length of the query's posting lists, not the segment.

use std::cell::RefCell;
use std::collections::HashMap;

use qd_core::vectors::SparseVector;

/// Forward store: per slot a range of the flat `indices`/`values` arrays (`len == 0`: none).
/// An overwrite in an appendable segment appends and leaves the old range unused until the
/// segment is compacted.
#[derive(Debug, Clone, Default)]
pub struct SparseColumn {
    slots: Vec<(u64, u32)>,
    present: Vec<bool>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// A stored sparse vector, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SparseRef<'a> {
    pub indices: &'a [u32],
    pub values: &'a [f32],
}

impl SparseRef<'_> {
    pub fn to_owned(self) -> SparseVector {
        SparseVector { indices: self.indices.to_vec(), values: self.values.to_vec() }
    }

    /// Dot product with `q` over shared indices, and whether any index is shared.
    pub fn dot(&self, q: &SparseVector) -> (f32, bool) {
        let (mut i, mut j, mut sum, mut any) = (0, 0, 0.0f32, false);
        while i < self.indices.len() && j < q.indices.len() {
            match self.indices[i].cmp(&q.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * q.values[j];
                    any = true;
                    i += 1;
                    j += 1;
                }
            }
        }
        (sum, any)
    }

    pub fn contains(&self, index: u32) -> bool {
        self.indices.binary_search(&index).is_ok()
    }
}

impl SparseColumn {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn ensure_len(&mut self, slots: usize) {
        if self.slots.len() < slots {
            self.slots.resize(slots, (0, 0));
            self.present.resize(slots, false);
        }
    }

    /// Write one slot. `None`: the slot has no sparse vector; `Some(empty)` is a present,
    /// empty vector (as in Qdrant), which scores against nothing.
    pub(crate) fn set(&mut self, offset: u32, v: Option<&SparseVector>) {
        self.ensure_len(offset as usize + 1);
        let o = offset as usize;
        match v {
            Some(v) => {
                let start = self.indices.len() as u64;
                self.indices.extend_from_slice(&v.indices);
                self.values.extend_from_slice(&v.values);
                self.slots[o] = (start, v.indices.len() as u32);
                self.present[o] = true;
            }
            None => {
                self.slots[o] = (0, 0);
                self.present[o] = false;
            }
        }
    }

    pub fn get(&self, offset: u32) -> Option<SparseRef<'_>> {
        let o = offset as usize;
        if !self.present.get(o).copied().unwrap_or(false) {
            return None;
        }
        let (start, len) = self.slots[o];
        let (s, e) = (start as usize, start as usize + len as usize);
        Some(SparseRef { indices: &self.indices[s..e], values: &self.values[s..e] })
    }

    /// Stored non-zeros (including ranges left behind by overwrites).
    pub fn stored_values(&self) -> usize {
        self.indices.len()
    }

    pub fn ram_bytes(&self) -> usize {
        self.slots.capacity() * 12 + self.present.capacity() + self.indices.capacity() * 4 + self.values.capacity() * 4
    }
}

/// Posting lists of a sealed segment's sparse column (CSR): the postings of dimension
/// `dims[i]` are `offsets/values[starts[i]..starts[i + 1]]`, in offset order.
#[derive(Debug, Clone, Default)]
pub struct InvertedIndex {
    slots: usize,
    dims: HashMap<u32, (u64, u32)>,
    offsets: Vec<u32>,
    values: Vec<f32>,
}

thread_local! {
    /// Per-thread score accumulator reused across searches: (scores, touched flags).
    static ACCUMULATOR: RefCell<(Vec<f32>, Vec<bool>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl InvertedIndex {
    /// Build from every slot of `column` (dead slots included: search skips them).
    pub fn build(column: &SparseColumn) -> Self {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for o in 0..column.len() as u32 {
            if let Some(v) = column.get(o) {
                for &i in v.indices {
                    *counts.entry(i).or_default() += 1;
                }
            }
        }
        let mut dims: HashMap<u32, (u64, u32)> = HashMap::with_capacity(counts.len());
        let mut keys: Vec<u32> = counts.keys().copied().collect();
        keys.sort_unstable();
        let mut pos = 0u64;
        for k in keys {
            let n = counts[&k];
            dims.insert(k, (pos, 0));
            pos += n as u64;
        }
        let mut offsets = vec![0u32; pos as usize];
        let mut values = vec![0f32; pos as usize];
        for o in 0..column.len() as u32 {
            if let Some(v) = column.get(o) {
                for (&i, &x) in v.indices.iter().zip(v.values) {
                    if let Some((start, filled)) = dims.get_mut(&i) {
                        let at = (*start + *filled as u64) as usize;
                        offsets[at] = o;
                        values[at] = x;
                        *filled += 1;
                    }
                }
            }
        }
        InvertedIndex { slots: column.len(), dims, offsets, values }
    }

    /// Number of slots the index was built over.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn postings(&self, dim: u32) -> (&[u32], &[f32]) {
        match self.dims.get(&dim) {
            Some(&(start, len)) => {
                let (s, e) = (start as usize, start as usize + len as usize);
                (&self.offsets[s..e], &self.values[s..e])
            }
            None => (&[], &[]),
        }
    }

    /// Offsets whose vector holds `dim` (dead ones included).
    pub fn posting_offsets(&self, dim: u32) -> &[u32] {
        self.postings(dim).0
    }

    /// Call `f(offset, score)` for every slot sharing at least one index with `query`, with
    /// its exact dot product, in offset order.
    pub fn for_each_score(&self, query: &SparseVector, mut f: impl FnMut(u32, f32)) {
        ACCUMULATOR.with(|acc| {
            let mut acc = acc.borrow_mut();
            let (scores, touched) = &mut *acc;
            if scores.len() < self.slots {
                scores.resize(self.slots, 0.0);
                touched.resize(self.slots, false);
            }
            let mut hit: Vec<u32> = Vec::new();
            for (&dim, &w) in query.indices.iter().zip(&query.values) {
                let (offs, vals) = self.postings(dim);
                for (&o, &x) in offs.iter().zip(vals) {
                    let oi = o as usize;
                    if !touched[oi] {
                        touched[oi] = true;
                        hit.push(o);
                    }
                    scores[oi] += w * x;
                }
            }
            hit.sort_unstable();
            for o in hit {
                let oi = o as usize;
                f(o, scores[oi]);
                scores[oi] = 0.0;
                touched[oi] = false;
            }
        });
    }

    pub fn ram_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.values.capacity() * 4 + self.dims.capacity() * 16
    }

    /// Serialise: magic, version, slots, dim count, per dim (dim, len), then postings; CRC-32
    /// of everything before it at the end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut dims: Vec<(u32, (u64, u32))> = self.dims.iter().map(|(k, v)| (*k, *v)).collect();
        dims.sort_unstable_by_key(|d| d.0);
        let mut out = Vec::with_capacity(32 + dims.len() * 8 + self.offsets.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(self.slots as u64).to_le_bytes());
        out.extend_from_slice(&(dims.len() as u64).to_le_bytes());
        for (dim, (_, len)) in &dims {
            out.extend_from_slice(&dim.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        for (_, (start, len)) in &dims {
            let (s, e) = (*start as usize, *start as usize + *len as usize);
            for o in &self.offsets[s..e] {
                out.extend_from_slice(&o.to_le_bytes());
            }
            for v in &self.values[s..e] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut crc = crate::hnsw::persist::Crc32::new();
        crc.update(&out);
        out.extend_from_slice(&crc.finish().to_le_bytes());
        out
    }

    /// Read back what [`InvertedIndex::to_bytes`] wrote; any damage is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < 28 || &b[..8] != MAGIC {
            return Err("not a sparse index (bad magic or truncated)".into());
        }
        let (body, tail) = b.split_at(b.len() - 4);
        let mut crc = crate::hnsw::persist::Crc32::new();
        crc.update(body);
        if crc.finish().to_le_bytes() != tail {
            return Err("sparse index checksum mismatch".into());
        }
        let u32_at = |p: usize| body.get(p..p + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        let u64_at = |p: usize| {
            body.get(p..p + 8).map(|s| {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_le_bytes(a)
            })
        };
        let trunc = || "sparse index truncated".to_string();
        if u32_at(8) != Some(1) {
            return Err("sparse index version is unknown".into());
        }
        let slots = u64_at(12).ok_or_else(trunc)? as usize;
        let ndims = u64_at(20).ok_or_else(trunc)? as usize;
        let mut pos = 28;
        let mut dims = HashMap::with_capacity(ndims.min(body.len() / 8));
        let mut order = Vec::with_capacity(ndims.min(body.len() / 8));
        let mut total = 0u64;
        for _ in 0..ndims {
            let dim = u32_at(pos).ok_or_else(trunc)?;
            let len = u32_at(pos + 4).ok_or_else(trunc)?;
            dims.insert(dim, (total, len));
            order.push(len);
            total += len as u64;
            pos += 8;
        }
        if body.len() != pos + total as usize * 8 {
            return Err("sparse index length does not match its posting counts".into());
        }
        let mut offsets = Vec::with_capacity(total as usize);
        let mut values = Vec::with_capacity(total as usize);
        for len in order {
            for _ in 0..len {
                let o = u32_at(pos).ok_or_else(trunc)?;
                if o as usize >= slots {
                    return Err(format!("sparse index posting {o} beyond {slots} slots"));
                }
                offsets.push(o);
                pos += 4;
            }
            for _ in 0..len {
                values.push(f32::from_bits(u32_at(pos).ok_or_else(trunc)?));
                pos += 4;
            }
        }
        Ok(InvertedIndex { slots, dims, offsets, values })
    }
}

const MAGIC: &[u8; 8] = b"QDSPIX01";

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(pairs: &[(u32, f32)]) -> SparseVector {
        SparseVector::new(pairs.iter().map(|p| p.0).collect(), pairs.iter().map(|p| p.1).collect()).expect("valid")
    }

    fn column(vs: &[Option<SparseVector>]) -> SparseColumn {
        let mut c = SparseColumn::default();
        for (o, v) in vs.iter().enumerate() {
            c.set(o as u32, v.as_ref());
        }
        c
    }

    #[test]
    fn index_scores_equal_forward_dot_products() {
        // Deterministic pseudo-random vectors over a small vocabulary.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let vs: Vec<Option<SparseVector>> = (0..300)
            .map(|i| {
                if i % 17 == 0 {
                    return None;
                }
                let mut pairs: Vec<(u32, f32)> =
                    (0..(next() % 12)).map(|_| (next() % 50, (next() % 100) as f32 / 10.0)).collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                Some(sv(&pairs))
            })
            .collect();
        let col = column(&vs);
        let ix = InvertedIndex::build(&col);
        let ix2 = InvertedIndex::from_bytes(&ix.to_bytes()).expect("round trip");
        let q = sv(&[(1, 0.5), (7, 2.0), (33, 1.0), (49, -1.0)]);
        for index in [&ix, &ix2] {
            let mut got = Vec::new();
            index.for_each_score(&q, |o, s| got.push((o, s)));
            let want: Vec<(u32, f32)> = (0..vs.len() as u32)
                .filter_map(|o| {
                    col.get(o).and_then(|v| {
                        let (s, any) = v.dot(&q);
                        any.then_some((o, s))
                    })
                })
                .collect();
            assert_eq!(got.len(), want.len());
            for ((o1, s1), (o2, s2)) in got.iter().zip(&want) {
                assert_eq!(o1, o2);
                assert!((s1 - s2).abs() < 1e-4, "{s1} vs {s2}");
            }
        }
        // The accumulator is clean for the next search.
        let mut n = 0;
        ix.for_each_score(&sv(&[(1000, 1.0)]), |_, _| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let col = column(&[Some(sv(&[(1, 1.0), (2, 2.0)])), Some(sv(&[(2, 3.0)]))]);
        let bytes = InvertedIndex::build(&col).to_bytes();
        for cut in [0, 10, 30, bytes.len() - 1] {
            assert!(InvertedIndex::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(InvertedIndex::from_bytes(&flipped).is_err());
    }

    #[test]
    fn overwrite_and_remove() {
        let mut c = SparseColumn::default();
        c.set(0, Some(&sv(&[(1, 1.0)])));
        c.set(0, Some(&sv(&[(2, 5.0)])));
        assert_eq!(c.get(0).map(|v| v.to_owned()), Some(sv(&[(2, 5.0)])));
        c.set(0, None);
        assert!(c.get(0).is_none());
        c.set(3, Some(&SparseVector::default()));
        assert!(c.get(3).is_some_and(|v| v.indices.is_empty()), "an empty sparse vector is present");
    }
}
