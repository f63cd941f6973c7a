//! One multivector of a sealed segment in a file of its own, memory-mapped (`on_disk: true`):
//! every slot's rows are paged in by the kernel on demand, so they need not fit in the heap.
//!
//! The file (see [`crate::sectioned`] for the header) has magic `QDMULT01` and counts (slots,
//! rows, dim, element type: 0 float32, 1 float16, 2 uint8); its sections:
//! ```text
//! slots x (u32 first row, u32 row count)       count 0: the slot has no multivector
//! rows x dim components of the element type    (Cosine uint8 rows as their whole numbers)
//! ```
//! Written once (temp file, fsync, rename, directory fsync) before the segment's index is
//! committed, never changed, and checked when opened: owner, shape, checksum, and every slot's
//! rows inside the file. A file that fails is not used (the rows then stay in RAM until the
//! optimizer writes it again).

use std::io;
use std::path::Path;

use crate::elements::{ElementType, Elems};
use crate::mapped::{invalid, FileOwner};
use crate::multi::MultiColumn;
use crate::sectioned::{self, HEADER};

const MAGIC: &[u8; 8] = b"QDMULT01";

/// Byte where the rows start, and the file's size, for `slots` slots and `rows` rows of `dim`
/// components of `size` bytes.
fn layout(slots: usize, rows: usize, dim: usize, size: usize) -> Option<(usize, usize)> {
    let padded = |n: usize| n.checked_add(63).map(|n| n / 64 * 64);
    let rows_at = HEADER.checked_add(padded(slots.checked_mul(8)?)?)?;
    let end = rows_at.checked_add(padded(rows.checked_mul(dim)?.checked_mul(size)?)?)?;
    Some((rows_at, end))
}

fn element_of(code: usize) -> Option<ElementType> {
    [ElementType::F32, ElementType::F16, ElementType::U8].into_iter().find(|e| e.code() as usize == code)
}

/// Write `column`'s rows, packed slot after slot, to `path` durably.
pub fn write(path: &Path, owner: FileOwner, column: &MultiColumn) -> io::Result<()> {
    let (slots, dim) = (column.len(), column.dim());
    let mut ranges = Vec::with_capacity(slots * 2);
    let mut rows = 0usize;
    for o in 0..slots as u32 {
        let n = column.get(o).map_or(0, |r| r.len() / dim.max(1));
        ranges.extend_from_slice(&[if n == 0 { 0 } else { rows as u32 }, n as u32]);
        rows += n;
    }
    if u32::try_from(rows).is_err() {
        return Err(invalid(path, "too many rows for one segment"));
    }
    let element = column.element();
    let (_, end) = layout(slots, rows, dim, element.size()).ok_or_else(|| invalid(path, "layout overflows"))?;
    let counts = [slots as u64, rows as u64, dim as u64, element.code() as u64];
    sectioned::write(path, MAGIC, owner, counts, end, |s| {
        s.section(&ranges, u32::to_le_bytes)?;
        for o in 0..slots as u32 {
            match column.get(o).map(Elems::stored) {
                None => Ok(()),
                Some(Elems::F32(r)) => s.append(r, f32::to_le_bytes),
                Some(Elems::F16(r)) => s.append(r, u16::to_le_bytes),
                Some(Elems::U8(r) | Elems::U8Unit(r, _)) => s.append(r, |b| [b]),
            }?;
        }
        s.pad()
    })
}

/// A read-only mapping of one multivector column's rows.
pub struct MappedMulti {
    map: memmap2::Mmap,
    slots: usize,
    rows: usize,
    dim: usize,
    element: ElementType,
    rows_at: usize,
}

impl std::fmt::Debug for MappedMulti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedMulti").field("slots", &self.slots).field("rows", &self.rows).finish()
    }
}

impl MappedMulti {
    /// Map the file written for `owner` with `slots` slots of rows of `dim` components held
    /// as `element`; any mismatch or damage is an error. Reads the whole file once (checksum
    /// and bounds).
    pub fn open(
        path: &Path,
        owner: FileOwner,
        dim: usize,
        slots: usize,
        element: ElementType,
    ) -> io::Result<MappedMulti> {
        let (map, [_, rows, file_dim, code]) = sectioned::open(path, MAGIC, owner, slots, |[s, r, d, e]| {
            (d == dim).then(|| element_of(e).and_then(|e| layout(s, r, d, e.size()))).flatten().map(|l| l.1)
        })?;
        if file_dim != dim || element_of(code) != Some(element) {
            return Err(invalid(
                path,
                format!("rows of {file_dim} × type {code} where {dim} × {element:?} were expected"),
            ));
        }
        let (rows_at, _) = layout(slots, rows, dim, element.size()).ok_or_else(|| invalid(path, "layout overflows"))?;
        let m = MappedMulti { map, slots, rows, dim, element, rows_at };
        if let Some(o) = (0..slots).find(|&o| {
            let (first, n) = m.range(o);
            first.checked_add(n).is_none_or(|e| e > rows)
        }) {
            return Err(invalid(path, format!("slot {o}'s rows lie beyond the file's")));
        }
        Ok(m)
    }

    fn range(&self, o: usize) -> (usize, usize) {
        let r: &[u32] = sectioned::slice(&self.map, HEADER, self.slots * 2);
        (r[o * 2] as usize, r[o * 2 + 1] as usize)
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How row components are stored in the file.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// Slot `offset`'s rows, flat, as stored (`None` where the slot has none).
    pub fn get(&self, offset: u32) -> Option<Elems<'_>> {
        if offset as usize >= self.slots {
            return None;
        }
        let (first, n) = self.range(offset as usize);
        if n == 0 {
            return None;
        }
        let len = self.rows * self.dim;
        let all = match self.element {
            ElementType::F32 => Elems::F32(sectioned::slice(&self.map, self.rows_at, len)),
            ElementType::F16 => Elems::F16(sectioned::slice(&self.map, self.rows_at, len)),
            ElementType::U8 => Elems::U8(sectioned::slice(&self.map, self.rows_at, len)),
        };
        all.get(first * self.dim, (first + n) * self.dim)
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the file (what the mapping may page in).
    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qd_core::vectors::MultiDenseVector;
    use qd_core::Distance;
    use std::sync::Arc;

    fn column() -> MultiColumn {
        let mut c = MultiColumn::new(3, Distance::Dot);
        for o in 0..50u32 {
            if o % 7 == 0 {
                c.set(o, None);
                continue;
            }
            let rows: Vec<Vec<f32>> = (0..1 + o % 4).map(|r| vec![o as f32, r as f32, -0.5]).collect();
            c.set(o, Some(&MultiDenseVector::new(rows).expect("valid")));
        }
        // An overwrite leaves unused rows behind; the file packs them away.
        c.set(3, Some(&MultiDenseVector::new(vec![vec![9.0, 9.0, 9.0]]).expect("valid")));
        c
    }

    /// The test column written to a file in a fresh directory (kept alive by the handle).
    fn written() -> (tempfile::TempDir, std::path::PathBuf, MultiColumn, FileOwner) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.mvc");
        let col = column();
        let owner = FileOwner { segment: 9, members_digest: 0x77 };
        write(&path, owner, &col).expect("write");
        (dir, path, col, owner)
    }

    #[test]
    fn round_trip_serves_the_same_rows() {
        let (_dir, path, col, owner) = written();
        let m = MappedMulti::open(&path, owner, 3, col.len(), ElementType::F32).expect("open");
        assert!(m.rows() < col.stored_bytes() / 12, "overwritten rows are not copied");
        let mut mapped = col.to_heap();
        assert!(mapped.map(Arc::new(m)));
        assert!(mapped.mapping().is_some() && mapped.ram_bytes() == 0);
        for o in 0..col.len() as u32 {
            assert_eq!(mapped.get(o), col.get(o), "slot {o}");
        }
        assert_eq!(mapped.to_heap().get_owned(3), col.get_owned(3));
        // Another dim or slot count refuses the file or the mapping.
        assert!(MappedMulti::open(&path, owner, 4, col.len(), ElementType::F32).is_err());
        assert!(MappedMulti::open(&path, owner, 3, col.len() + 1, ElementType::F32).is_err());
        let mut short = MultiColumn::new(3, Distance::Dot);
        short.set(2, None);
        assert!(!short.map(Arc::new(MappedMulti::open(&path, owner, 3, col.len(), ElementType::F32).expect("open"))));
    }

    #[test]
    fn refuses_foreign_damaged_or_truncated_files() {
        let (_dir, path, col, owner) = written();
        assert!(MappedMulti::open(&path, FileOwner { segment: 10, ..owner }, 3, col.len(), ElementType::F32).is_err());
        assert!(
            MappedMulti::open(&path, FileOwner { members_digest: 1, ..owner }, 3, col.len(), ElementType::F32).is_err()
        );
        let bytes = std::fs::read(&path).expect("read");
        for at in [5, 30, HEADER + 1, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            std::fs::write(&path, &flipped).expect("write");
            assert!(MappedMulti::open(&path, owner, 3, col.len(), ElementType::F32).is_err(), "flip at {at}");
        }
        std::fs::write(&path, &bytes[..bytes.len() - 64]).expect("write");
        assert!(MappedMulti::open(&path, owner, 3, col.len(), ElementType::F32).is_err());
    }

    #[test]
    fn rows_are_held_in_the_columns_type() {
        let dir = tempfile::tempdir().expect("tmp");
        let owner = FileOwner { segment: 4, members_digest: 8 };
        let rows = MultiDenseVector::new(vec![vec![3.0, 0.0, 4.0], vec![255.0, 1.0, 0.0]]).expect("valid");
        for (element, distance) in
            [(ElementType::F16, Distance::Dot), (ElementType::U8, Distance::Dot), (ElementType::U8, Distance::Cosine)]
        {
            let mut col = MultiColumn::with_element(3, distance, element);
            col.set(0, None);
            col.set(1, Some(&rows));
            let path = dir.path().join(format!("{element:?}-{distance:?}.mvc"));
            write(&path, owner, &col).expect("write");
            let m = MappedMulti::open(&path, owner, 3, 2, element).expect("open");
            assert_eq!(m.get(1).map(Elems::to_vec), Some(rows.flat().to_vec()), "stored values, {distance:?}");
            assert!(MappedMulti::open(&path, owner, 3, 2, ElementType::F32).is_err());
            let mut mapped = col.to_heap();
            assert!(mapped.map(Arc::new(m)));
            assert_eq!(mapped.get(1), col.get(1), "the column's view, {distance:?}");
            assert_eq!(mapped.get_owned(1).as_ref(), Some(&rows));
        }
    }
}
