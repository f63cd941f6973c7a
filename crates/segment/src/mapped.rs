//! Vectors of a sealed segment in a file of their own, memory-mapped (`on_disk: true`): the
//! kernel pages them in on demand and may drop them under memory pressure, so a collection's
//! vectors need not fit in the process heap.
//!
//! ```text
//! offset 0   "QDVECS02"                         magic and format version
//!        8   u64 segment id                     which segment the file belongs to
//!       16   u32 dim, u32 members digest (CRC-32 of the segment's ids and versions)
//!       24   u64 slots                          vectors stored (one per segment slot)
//!       32   u32 crc32 of the presence bytes and the vector data
//!       36   u8 element type (0 float32, 1 float16, 2 uint8), 3 zero bytes
//!       40   u32 crc32 of bytes 0..40
//!       44   zero padding up to 64
//!       64   slots bytes: 1 if the slot has this vector, else 0
//!            zero padding up to a multiple of 64
//!            slots * dim little-endian components of the element type
//! ```
//! Files of the first format (`QDVECS01`: the header's checksum at 36, float32 components) are
//! still read for float32 columns; for a column of another type they are refused, and so
//! written again in its type.
//! The file is written once (temp file, fsync, rename, directory fsync) before the segment's
//! index is committed, and never changed: sealed data is immutable. Opening checks the header
//! against what the shard expects (segment id, shape and a digest of the points and versions
//! the segment holds, so a file left by a crash for an id that was handed out again is not
//! taken for the new segment's) and the checksum over the data, so a stale, foreign,
//! truncated or damaged file is refused (the caller then keeps the vectors in RAM).
//!
//! Once mapped, the file must stay intact: an I/O error or a truncation by another process
//! while it is mapped stops the process (SIGBUS), as with any memory-mapped storage.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::elements::{ElementType, Elems};
use crate::hnsw::persist::Crc32;

const MAGIC: &[u8; 8] = b"QDVECS02";
const MAGIC_V1: &[u8; 8] = b"QDVECS01";
const HEADER: usize = 64;

pub(crate) fn pad64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// A read-only mapping of one vector column.
pub struct MappedVectors {
    map: memmap2::Mmap,
    dim: usize,
    slots: usize,
    element: ElementType,
    data_at: usize,
}

impl std::fmt::Debug for MappedVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedVectors").field("dim", &self.dim).field("slots", &self.slots).finish()
    }
}

pub(crate) fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

/// Identity of the segment a file belongs to: its id and the digest of its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOwner {
    pub segment: u64,
    pub members_digest: u32,
}

fn header(owner: FileOwner, dim: usize, slots: usize, element: ElementType, data_crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&owner.segment.to_le_bytes());
    h[16..20].copy_from_slice(&(dim as u32).to_le_bytes());
    h[20..24].copy_from_slice(&owner.members_digest.to_le_bytes());
    h[24..32].copy_from_slice(&(slots as u64).to_le_bytes());
    h[32..36].copy_from_slice(&data_crc.to_le_bytes());
    h[36] = element.code();
    let mut c = Crc32::new();
    c.update(&h[..40]);
    h[40..44].copy_from_slice(&c.finish().to_le_bytes());
    h
}

/// The header a first-format file (float32, checksum at 36) holds for the same column.
fn header_v1(owner: FileOwner, dim: usize, slots: usize, data_crc: u32) -> [u8; HEADER] {
    let mut h = header(owner, dim, slots, ElementType::F32, data_crc);
    h[..8].copy_from_slice(MAGIC_V1);
    h[36..].fill(0);
    let mut c = Crc32::new();
    c.update(&h[..36]);
    h[36..40].copy_from_slice(&c.finish().to_le_bytes());
    h
}

/// The components' little-endian bytes, 65,536 components per block.
fn blocks(vectors: Elems<'_>) -> impl Iterator<Item = Vec<u8>> + '_ {
    const BLOCK: usize = 1 << 16;
    let vectors = vectors.stored();
    (0..vectors.len()).step_by(BLOCK).map(move |start| match vectors.slice(start, (start + BLOCK).min(vectors.len())) {
        Elems::F32(s) => s.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Elems::F16(s) => s.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Elems::U8(s) | Elems::U8Unit(s, _) => s.to_vec(),
    })
}

fn data_crc(present: &[bool], vectors: Elems<'_>) -> u32 {
    let mut c = Crc32::new();
    c.update(&present.iter().map(|&p| p as u8).collect::<Vec<u8>>());
    blocks(vectors).for_each(|block| c.update(&block));
    c.finish()
}

/// The file format is little-endian, like every target this server is built for.
pub(crate) fn check_endian(path: &Path) -> io::Result<()> {
    if cfg!(target_endian = "big") {
        return Err(invalid(path, "memory-mapped vectors need a little-endian CPU"));
    }
    Ok(())
}

/// Write the column (`present.len()` slots of `dim` components) to `path` durably, in the
/// components' storage type.
pub fn write(path: &Path, owner: FileOwner, dim: usize, present: &[bool], vectors: Elems<'_>) -> io::Result<()> {
    check_endian(path)?;
    if vectors.len() != present.len() * dim {
        return Err(invalid(path, "vector data does not match the slot count"));
    }
    let element = vectors.kind();
    write_durably(path, |w| {
        w.write_all(&header(owner, dim, present.len(), element, data_crc(present, vectors)))?;
        let mut flags: Vec<u8> = present.iter().map(|&p| p as u8).collect();
        flags.resize(pad64(present.len()), 0);
        w.write_all(&flags)?;
        blocks(vectors).try_for_each(|block| w.write_all(&block))
    })
}

/// Write a file that readers see whole or not at all: `fill` writes it under a temp name
/// (`<path>.tmp`), which is synced and renamed into place, then the directory is synced.
pub(crate) fn write_durably(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let file = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl MappedVectors {
    /// Map the file written for `owner` with `slots` vectors of `dim` held as `element`; any
    /// mismatch or damage is an error. Reads the whole file once (checksum).
    pub fn open(
        path: &Path,
        owner: FileOwner,
        dim: usize,
        slots: usize,
        element: ElementType,
    ) -> io::Result<MappedVectors> {
        check_endian(path)?;
        let file = File::open(path)?;
        // SAFETY: the file is private to this shard and never modified after it was written
        // (written to a temp name, synced, renamed); the mapping is read-only.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        if map.len() < HEADER {
            return Err(invalid(path, "truncated file"));
        }
        let stored = &map[..HEADER];
        let crc = u32::from_le_bytes([stored[32], stored[33], stored[34], stored[35]]);
        let expected = match &stored[..8] {
            m if m == MAGIC => header(owner, dim, slots, element, crc),
            m if m == MAGIC_V1 && element == ElementType::F32 => header_v1(owner, dim, slots, crc),
            m if m == MAGIC_V1 => return Err(invalid(path, "float32 vectors for a column of another type")),
            _ => return Err(invalid(path, "not a vector file of this format")),
        };
        if stored != expected {
            let mut c = Crc32::new();
            let sum_at = if &stored[..8] == MAGIC { 40 } else { 36 };
            c.update(&stored[..sum_at]);
            return Err(invalid(
                path,
                match stored[sum_at..sum_at + 4] == c.finish().to_le_bytes() {
                    true => "written for another segment, shape or type",
                    false => "damaged header",
                },
            ));
        }
        let data_at = HEADER + pad64(slots);
        let want = data_at + slots * dim * element.size();
        if map.len() != want {
            return Err(invalid(path, format!("size {} where {want} was expected", map.len())));
        }
        let mut c = Crc32::new();
        c.update(&map[HEADER..HEADER + slots]);
        c.update(&map[data_at..]);
        if c.finish() != crc {
            return Err(invalid(path, "vector data checksum mismatch"));
        }
        if map.as_ptr().align_offset(std::mem::align_of::<f32>()) != 0 {
            return Err(invalid(path, "mapping is not aligned for f32"));
        }
        Ok(MappedVectors { map, dim, slots, element, data_at })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// How the components are stored in the file.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// Presence flag per slot.
    pub fn present(&self) -> Vec<bool> {
        self.map[HEADER..HEADER + self.slots].iter().map(|&b| b != 0).collect()
    }

    /// All vectors, contiguous, as stored.
    pub fn data(&self) -> Elems<'_> {
        let bytes = &self.map[self.data_at..];
        let n = self.slots * self.dim;
        // SAFETY: `open` checked the length (slots * dim components of the element type) and
        // the alignment of the mapping (page-aligned, and `data_at` is a multiple of 64); f32,
        // u16 and u8 have no invalid bit patterns. Little-endian targets only (x86-64, arm64),
        // like the file format.
        unsafe {
            match self.element {
                ElementType::F32 => Elems::F32(std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), n)),
                ElementType::F16 => Elems::F16(std::slice::from_raw_parts(bytes.as_ptr().cast::<u16>(), n)),
                ElementType::U8 => Elems::U8(&bytes[..n]),
            }
        }
    }

    /// Bytes of the file (what the mapping may page in).
    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.vec");
        let present = vec![true, false, true];
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let owner = FileOwner { segment: 7, members_digest: 0xabcd };
        let f32s = ElementType::F32;
        write(&path, owner, 4, &present, Elems::F32(&data)).expect("write");
        let m = MappedVectors::open(&path, owner, 4, 3, f32s).expect("open");
        assert_eq!(m.data(), Elems::F32(&data));
        assert_eq!(m.present(), present);
        // Another segment id, member digest, dim, slot count or type: refused.
        assert!(MappedVectors::open(&path, FileOwner { segment: 8, ..owner }, 4, 3, f32s).is_err());
        assert!(MappedVectors::open(&path, FileOwner { members_digest: 1, ..owner }, 4, 3, f32s).is_err());
        assert!(MappedVectors::open(&path, owner, 3, 4, f32s).is_err());
        assert!(MappedVectors::open(&path, owner, 4, 2, f32s).is_err());
        assert!(MappedVectors::open(&path, owner, 4, 3, ElementType::F16).is_err());
        // A flipped data byte: refused by the checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(MappedVectors::open(&path, owner, 4, 3, f32s).is_err());
        // Truncated: refused.
        std::fs::write(&path, &bytes[..bytes.len() - 4]).expect("write");
        assert!(MappedVectors::open(&path, owner, 4, 3, f32s).is_err());
        // Mismatched input is refused at write time.
        assert!(write(&path, owner, 4, &present, Elems::F32(&data[..8])).is_err());
    }

    #[test]
    fn files_hold_the_columns_type() {
        let dir = tempfile::tempdir().expect("tmp");
        let owner = FileOwner { segment: 3, members_digest: 5 };
        let present = vec![true, true, false, true];
        let values: Vec<f32> = (0..16).map(|i| (i * 13 % 256) as f32).collect();
        for element in [ElementType::F16, ElementType::U8] {
            let path = dir.path().join(format!("{element:?}.vec"));
            let stored = crate::elements::ElemVec::from_f32(element, &values);
            write(&path, owner, 4, &present, stored.as_elems()).expect("write");
            let size = std::fs::metadata(&path).expect("size").len() as usize;
            assert_eq!(size, HEADER + 64 + 16 * element.size());
            let m = MappedVectors::open(&path, owner, 4, 4, element).expect("open");
            assert_eq!(m.data(), stored.as_elems());
            assert_eq!(m.data().to_vec(), values);
            assert!(MappedVectors::open(&path, owner, 4, 4, ElementType::F32).is_err());
        }
        // A Cosine column's rows are written as their whole numbers.
        let bytes: Vec<u8> = values.iter().map(|&x| x as u8).collect();
        let path = dir.path().join("unit.vec");
        write(&path, owner, 4, &present, Elems::U8Unit(&bytes, 4)).expect("write");
        let m = MappedVectors::open(&path, owner, 4, 4, ElementType::U8).expect("open");
        assert_eq!(m.data(), Elems::U8(&bytes));
    }

    #[test]
    fn first_format_files_serve_float32_columns_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("old.vec");
        let owner = FileOwner { segment: 1, members_digest: 2 };
        let data = [0.5f32, -1.0, 2.0, 8.0];
        // A file of the first format, byte by byte: magic, segment 1, dim 2, digest 2, 2 slots,
        // data checksum, header checksum over bytes 0..36, padding, presence, padding, data.
        let mut file = b"QDVECS01".to_vec();
        file.extend(1u64.to_le_bytes());
        file.extend(2u32.to_le_bytes());
        file.extend(2u32.to_le_bytes());
        file.extend(2u64.to_le_bytes());
        let mut c = Crc32::new();
        c.update(&[1, 1]);
        c.update(&data.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        file.extend(c.finish().to_le_bytes());
        let mut c = Crc32::new();
        c.update(&file[..36]);
        file.extend(c.finish().to_le_bytes());
        file.resize(HEADER, 0);
        file.extend([1u8, 1]);
        file.resize(HEADER + 64, 0);
        file.extend(data.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::write(&path, &file).expect("write");
        let m = MappedVectors::open(&path, owner, 2, 2, ElementType::F32).expect("open");
        assert_eq!(m.data(), Elems::F32(&data));
        assert!(MappedVectors::open(&path, owner, 2, 2, ElementType::U8).is_err());
        assert!(MappedVectors::open(&path, FileOwner { segment: 9, ..owner }, 2, 2, ElementType::F32).is_err());
    }
}
