//! One sparse vector of a sealed segment in a file of its own, memory-mapped (`index.on_disk:
//! true`): the forward store (each slot's indices and values) and the inverted index (posting
//! lists) are paged in by the kernel on demand, so neither needs to fit in the process heap.
//! Only the presence flags (a byte per slot) and the per-dimension table stay in RAM.
//!
//! The file (see [`crate::sectioned`] for the header) has magic `QDSPRS01` and counts
//! (slots, forward non-zeros, dimensions, postings); its sections:
//! ```text
//! slots bytes: 1 if the slot has this vector, else 0
//! slots u64: where the slot's vector starts in the forward arrays
//! slots u32: how many non-zeros it has
//! forward u32 indices, then forward f32 values
//! dimensions x (u32 dim, u32 len, u64 start, f32 max, f32 min), by dim
//! postings u32 slot offsets, then postings f32 values
//! ```
//! Written once (temp file, fsync, rename, directory fsync) before the segment's index is
//! committed, never changed, and checked when opened as [`crate::mapped`] files are: owner,
//! shape, checksum, and every range inside the file's bounds. A file that fails is not used
//! (the vectors and index are then served from RAM until the optimizer writes it again).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use crate::mapped::{invalid, pad64, FileOwner};
use crate::sectioned::{self, u32_at, u64_at, HEADER};
use crate::sparse::{InvertedIndex, Posting, SparseColumn, SparseRef};

const MAGIC: &[u8; 8] = b"QDSPRS01";
const DIM_ENTRY: usize = 24;

/// Where each section starts, from the counts in the header.
#[derive(Debug, Clone, Copy)]
struct Layout {
    slots: usize,
    forward: usize,
    dims: usize,
    postings: usize,
    starts_at: usize,
    lens_at: usize,
    indices_at: usize,
    values_at: usize,
    dims_at: usize,
    offsets_at: usize,
    posting_values_at: usize,
    end: usize,
}

impl Layout {
    fn new([slots, forward, dims, postings]: [usize; 4]) -> Self {
        let starts_at = HEADER + pad64(slots);
        let lens_at = starts_at + pad64(slots * 8);
        let indices_at = lens_at + pad64(slots * 4);
        let values_at = indices_at + pad64(forward * 4);
        let dims_at = values_at + pad64(forward * 4);
        let offsets_at = dims_at + pad64(dims * DIM_ENTRY);
        let posting_values_at = offsets_at + pad64(postings * 4);
        let end = posting_values_at + pad64(postings * 4);
        Layout {
            slots,
            forward,
            dims,
            postings,
            starts_at,
            lens_at,
            indices_at,
            values_at,
            dims_at,
            offsets_at,
            posting_values_at,
            end,
        }
    }
}

/// Write `column` and its inverted index `index` (built over the same slots) to `path` durably.
pub fn write(path: &Path, owner: FileOwner, column: &SparseColumn, index: &InvertedIndex) -> io::Result<()> {
    let slots = column.len();
    if index.slots() != slots {
        return Err(invalid(path, format!("index over {} slots for a column of {slots}", index.slots())));
    }
    let vectors: Vec<Option<SparseRef<'_>>> = (0..slots as u32).map(|o| column.get(o)).collect();
    let forward: usize = vectors.iter().flatten().map(|v| v.indices.len()).sum();
    let lists = index.lists();
    let postings: usize = lists.iter().map(|l| l.2.len()).sum();
    let counts = [slots, forward, lists.len(), postings];
    let layout = Layout::new(counts);
    sectioned::write(path, MAGIC, owner, counts.map(|n| n as u64), layout.end, |s| {
        s.section(&vectors.iter().map(|v| v.is_some() as u8).collect::<Vec<u8>>(), |b| [b])?;
        let mut starts = Vec::with_capacity(slots);
        let mut at = 0u64;
        for v in &vectors {
            starts.push(at);
            at += v.map_or(0, |v| v.indices.len() as u64);
        }
        s.section(&starts, u64::to_le_bytes)?;
        let lens: Vec<u32> = vectors.iter().map(|v| v.map_or(0, |v| v.indices.len() as u32)).collect();
        s.section(&lens, u32::to_le_bytes)?;
        for v in vectors.iter().flatten() {
            s.append(v.indices, u32::to_le_bytes)?;
        }
        s.pad()?;
        for v in vectors.iter().flatten() {
            s.append(v.values, f32::to_le_bytes)?;
        }
        s.pad()?;
        let mut at = 0u64;
        for (dim, p, offsets, _) in &lists {
            let mut e = Vec::with_capacity(DIM_ENTRY);
            e.extend_from_slice(&dim.to_le_bytes());
            e.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            e.extend_from_slice(&at.to_le_bytes());
            e.extend_from_slice(&p.max.to_le_bytes());
            e.extend_from_slice(&p.min.to_le_bytes());
            s.put(&e)?;
            at += offsets.len() as u64;
        }
        s.pad()?;
        for (_, _, offsets, _) in &lists {
            s.append(offsets, u32::to_le_bytes)?;
        }
        s.pad()?;
        for (_, _, _, values) in &lists {
            s.append(values, f32::to_le_bytes)?;
        }
        s.pad()
    })
}

/// A read-only mapping of one sparse vector's forward store and inverted index.
pub struct MappedSparse {
    map: memmap2::Mmap,
    layout: Layout,
    dims: HashMap<u32, Posting>,
}

impl std::fmt::Debug for MappedSparse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSparse").field("slots", &self.layout.slots).field("dims", &self.layout.dims).finish()
    }
}

impl MappedSparse {
    /// Map the file written for `owner` with `slots` slots; any mismatch or damage is an
    /// error. Reads the whole file once (checksum and bounds).
    pub fn open(path: &Path, owner: FileOwner, slots: usize) -> io::Result<MappedSparse> {
        let (map, counts) = sectioned::open(path, MAGIC, owner, slots, |c| Some(Layout::new(c).end))?;
        let mut m = MappedSparse { map, layout: Layout::new(counts), dims: HashMap::new() };
        m.check_bounds().map_err(|e| invalid(path, e))?;
        Ok(m)
    }

    /// Check every range the file describes against its arrays, and read the dimension table.
    fn check_bounds(&mut self) -> Result<(), String> {
        let l = self.layout;
        let (starts, lens) = (self.starts(), self.lens());
        for o in 0..l.slots {
            if starts[o].checked_add(lens[o] as u64).is_none_or(|e| e > l.forward as u64) {
                return Err(format!("slot {o}'s vector lies beyond the forward store"));
            }
        }
        let mut dims = HashMap::with_capacity(l.dims);
        for i in 0..l.dims {
            let at = l.dims_at + i * DIM_ENTRY;
            let b = &self.map[..];
            let (dim, len, start) = (u32_at(b, at), u32_at(b, at + 4), u64_at(b, at + 8));
            let (max, min) = (f32::from_bits(u32_at(b, at + 16)), f32::from_bits(u32_at(b, at + 20)));
            if start.checked_add(len as u64).is_none_or(|e| e > l.postings as u64) {
                return Err(format!("dimension {dim}'s postings lie beyond the file's"));
            }
            dims.insert(dim, Posting { start, len, max, min });
        }
        if let Some(o) = self.posting_offsets().iter().find(|&&o| o as usize >= l.slots) {
            return Err(format!("a posting points at slot {o} of {}", l.slots));
        }
        self.dims = dims;
        Ok(())
    }

    fn starts(&self) -> &[u64] {
        sectioned::slice(&self.map, self.layout.starts_at, self.layout.slots)
    }

    fn lens(&self) -> &[u32] {
        sectioned::slice(&self.map, self.layout.lens_at, self.layout.slots)
    }

    pub fn slots(&self) -> usize {
        self.layout.slots
    }

    /// Presence flag per slot.
    pub fn present(&self) -> Vec<bool> {
        self.map[HEADER..HEADER + self.layout.slots].iter().map(|&b| b != 0).collect()
    }

    /// Slot `offset`'s vector (empty where the slot has none).
    pub fn forward(&self, offset: u32) -> SparseRef<'_> {
        let o = offset as usize;
        let (start, len) = (self.starts()[o] as usize, self.lens()[o] as usize);
        let indices: &[u32] = sectioned::slice(&self.map, self.layout.indices_at, self.layout.forward);
        let values: &[f32] = sectioned::slice(&self.map, self.layout.values_at, self.layout.forward);
        SparseRef { indices: &indices[start..start + len], values: &values[start..start + len] }
    }

    /// Non-zeros in the forward store.
    pub fn forward_len(&self) -> usize {
        self.layout.forward
    }

    pub(crate) fn dims(&self) -> HashMap<u32, Posting> {
        self.dims.clone()
    }

    pub(crate) fn posting_offsets(&self) -> &[u32] {
        sectioned::slice(&self.map, self.layout.offsets_at, self.layout.postings)
    }

    pub(crate) fn posting_values(&self) -> &[f32] {
        sectioned::slice(&self.map, self.layout.posting_values_at, self.layout.postings)
    }

    /// Bytes of the file (what the mapping may page in).
    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qd_core::vectors::SparseVector;
    use std::sync::Arc;

    fn column() -> SparseColumn {
        let mut c = SparseColumn::default();
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for o in 0..200u32 {
            if o % 13 == 0 {
                c.set(o, None);
                continue;
            }
            let mut pairs: Vec<(u32, f32)> =
                (0..next() % 9).map(|_| (next() % 40, (next() % 50) as f32 - 10.0)).collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            let v = SparseVector::new(pairs.iter().map(|p| p.0).collect(), pairs.iter().map(|p| p.1).collect());
            c.set(o, Some(&v.expect("valid")));
        }
        // An overwrite leaves an unused range behind; the file packs it away.
        c.set(5, Some(&SparseVector::new(vec![1, 2], vec![0.5, 0.25]).expect("valid")));
        c
    }

    /// The test column and its index written to a file in a fresh directory (kept alive by
    /// the returned handle).
    fn written() -> (tempfile::TempDir, std::path::PathBuf, SparseColumn, InvertedIndex, FileOwner) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.spv");
        let col = column();
        let ix = InvertedIndex::build(&col);
        let owner = FileOwner { segment: 3, members_digest: 0x1234 };
        write(&path, owner, &col, &ix).expect("write");
        (dir, path, col, ix, owner)
    }

    fn hits(ix: &InvertedIndex, q: &SparseVector) -> Vec<(u32, f32)> {
        let mut got = Vec::new();
        ix.search(q, || None, |o, s| got.push((o, s)));
        got
    }

    #[test]
    fn round_trip_serves_the_same_vectors_and_scores() {
        let (_dir, path, col, ix, owner) = written();
        let m = Arc::new(MappedSparse::open(&path, owner, col.len()).expect("open"));
        assert_eq!(
            m.forward_len(),
            (0..col.len() as u32).filter_map(|o| col.get(o)).map(|v| v.indices.len()).sum::<usize>()
        );
        let mut mapped_col = col.to_heap();
        assert!(mapped_col.map(m.clone()));
        assert!(mapped_col.mapping().is_some());
        assert_eq!(mapped_col.ram_bytes(), mapped_col.len());
        for o in 0..col.len() as u32 {
            assert_eq!(mapped_col.get(o).map(SparseRef::to_owned), col.get(o).map(SparseRef::to_owned), "slot {o}");
        }
        let mapped_ix = InvertedIndex::mapped(m);
        assert!(mapped_ix.is_mapped() && mapped_ix.ram_bytes() < ix.ram_bytes());
        for q in [vec![(1, 0.5), (7, 2.0), (33, 1.0)], vec![(0, -1.0), (39, 3.0)], vec![(1000, 1.0)]] {
            let q = SparseVector::new(q.iter().map(|p| p.0).collect(), q.iter().map(|p| p.1).collect()).expect("q");
            assert_eq!(hits(&mapped_ix, &q), hits(&ix, &q));
        }
        // Back to the heap: the same answers, and the index's own encoding is unchanged.
        assert_eq!(mapped_ix.to_heap().to_bytes(), ix.to_bytes());
        // A column of another length refuses the mapping.
        let mut short = SparseColumn::default();
        short.set(3, None);
        assert!(!short.map(Arc::new(MappedSparse::open(&path, owner, col.len()).expect("open"))));
    }

    #[test]
    fn refuses_foreign_damaged_or_truncated_files() {
        let (_dir, path, col, ix, owner) = written();
        assert!(MappedSparse::open(&path, FileOwner { segment: 4, ..owner }, col.len()).is_err());
        assert!(MappedSparse::open(&path, FileOwner { members_digest: 1, ..owner }, col.len()).is_err());
        assert!(MappedSparse::open(&path, owner, col.len() + 1).is_err());
        let bytes = std::fs::read(&path).expect("read");
        for at in [HEADER + 3, bytes.len() / 2, bytes.len() - 70] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            std::fs::write(&path, &flipped).expect("write");
            assert!(MappedSparse::open(&path, owner, col.len()).is_err(), "flip at {at}");
        }
        std::fs::write(&path, &bytes[..bytes.len() - 64]).expect("write");
        assert!(MappedSparse::open(&path, owner, col.len()).is_err());
        std::fs::write(&path, &bytes[..10]).expect("write");
        assert!(MappedSparse::open(&path, owner, col.len()).is_err());
        // An index over other slots is refused at write time.
        let mut other = col.to_heap();
        other.set(col.len() as u32 + 5, None);
        assert!(write(&path, owner, &other, &ix).is_err());
    }
}
