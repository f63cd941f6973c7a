//! Vectors of a sealed segment in a file of their own, memory-mapped (`on_disk: true`): the
//! kernel pages them in on demand and may drop them under memory pressure, so a collection's
//! vectors need not fit in the process heap.
//!
//! ```text
//! offset 0   "QDVECS01"                         magic and format version
//!        8   u64 segment id                     which segment the file belongs to
//!       16   u32 dim, u32 members digest (CRC-32 of the segment's ids and versions)
//!       24   u64 slots                          vectors stored (one per segment slot)
//!       32   u32 crc32 of the presence bytes and the vector data
//!       36   u32 crc32 of bytes 0..36
//!       40   zero padding up to 64
//!       64   slots bytes: 1 if the slot has this vector, else 0
//!            zero padding up to a multiple of 64
//!            slots * dim little-endian f32
//! ```
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

use crate::elements::Elems;
use crate::hnsw::persist::Crc32;

const MAGIC: &[u8; 8] = b"QDVECS01";
const HEADER: usize = 64;

pub(crate) fn pad64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// A read-only mapping of one vector column.
pub struct MappedVectors {
    map: memmap2::Mmap,
    dim: usize,
    slots: usize,
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

fn header(owner: FileOwner, dim: usize, slots: usize, data_crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&owner.segment.to_le_bytes());
    h[16..20].copy_from_slice(&(dim as u32).to_le_bytes());
    h[20..24].copy_from_slice(&owner.members_digest.to_le_bytes());
    h[24..32].copy_from_slice(&(slots as u64).to_le_bytes());
    h[32..36].copy_from_slice(&data_crc.to_le_bytes());
    let mut c = Crc32::new();
    c.update(&h[..36]);
    h[36..40].copy_from_slice(&c.finish().to_le_bytes());
    h
}

fn data_crc(present: &[bool], vectors: Elems<'_>) -> u32 {
    let mut c = Crc32::new();
    c.update(&present.iter().map(|&p| p as u8).collect::<Vec<u8>>());
    f32_blocks(vectors).for_each(|block| c.update(&block));
    c.finish()
}

/// `vectors` as little-endian float32 bytes, 65,536 components per block: components of
/// another type are widened a block at a time, never all at once.
fn f32_blocks(vectors: Elems<'_>) -> impl Iterator<Item = Vec<u8>> + '_ {
    const BLOCK: usize = 1 << 16;
    (0..vectors.len()).step_by(BLOCK).map(move |start| {
        let block = vectors.slice(start, (start + BLOCK).min(vectors.len()));
        block.to_vec().iter().flat_map(|x| x.to_le_bytes()).collect()
    })
}

/// The file format is little-endian, like every target this server is built for.
pub(crate) fn check_endian(path: &Path) -> io::Result<()> {
    if cfg!(target_endian = "big") {
        return Err(invalid(path, "memory-mapped vectors need a little-endian CPU"));
    }
    Ok(())
}

/// Write the column (`present.len()` slots of `dim` components) to `path` durably, as float32.
pub fn write(path: &Path, owner: FileOwner, dim: usize, present: &[bool], vectors: Elems<'_>) -> io::Result<()> {
    check_endian(path)?;
    if vectors.len() != present.len() * dim {
        return Err(invalid(path, "vector data does not match the slot count"));
    }
    write_durably(path, |w| {
        w.write_all(&header(owner, dim, present.len(), data_crc(present, vectors)))?;
        let mut flags: Vec<u8> = present.iter().map(|&p| p as u8).collect();
        flags.resize(pad64(present.len()), 0);
        w.write_all(&flags)?;
        f32_blocks(vectors).try_for_each(|block| w.write_all(&block))
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
    /// Map the file written for `owner` with `slots` vectors of `dim`; any mismatch or damage
    /// is an error. Reads the whole file once (checksum).
    pub fn open(path: &Path, owner: FileOwner, dim: usize, slots: usize) -> io::Result<MappedVectors> {
        check_endian(path)?;
        let file = File::open(path)?;
        // SAFETY: the file is private to this shard and never modified after it was written
        // (written to a temp name, synced, renamed); the mapping is read-only.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let data_at = HEADER + pad64(slots);
        let want = data_at + slots * dim * 4;
        if map.len() != want {
            return Err(invalid(path, format!("size {} where {want} was expected", map.len())));
        }
        let stored = &map[..HEADER];
        let mut c = Crc32::new();
        c.update(&stored[..36]);
        if &stored[..8] != MAGIC || stored[36..40] != c.finish().to_le_bytes() {
            return Err(invalid(path, "not a vector file of this format, or a damaged header"));
        }
        let crc = u32::from_le_bytes([stored[32], stored[33], stored[34], stored[35]]);
        if stored[..40] != header(owner, dim, slots, crc)[..40] {
            return Err(invalid(path, "written for another segment or shape"));
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
        Ok(MappedVectors { map, dim, slots, data_at })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Presence flag per slot.
    pub fn present(&self) -> Vec<bool> {
        self.map[HEADER..HEADER + self.slots].iter().map(|&b| b != 0).collect()
    }

    /// All vectors, contiguous.
    pub fn data(&self) -> &[f32] {
        let bytes = &self.map[self.data_at..];
        // SAFETY: `open` checked the length (slots * dim * 4 bytes) and the alignment of the
        // mapping (page-aligned, and `data_at` is a multiple of 64); f32 has no invalid bit
        // patterns. Little-endian targets only (x86-64, arm64), like the file format.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.slots * self.dim) }
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
        write(&path, owner, 4, &present, Elems::F32(&data)).expect("write");
        let m = MappedVectors::open(&path, owner, 4, 3).expect("open");
        assert_eq!(m.data(), data.as_slice());
        assert_eq!(m.present(), present);
        // Another segment id, member digest, dim or slot count: refused.
        assert!(MappedVectors::open(&path, FileOwner { segment: 8, ..owner }, 4, 3).is_err());
        assert!(MappedVectors::open(&path, FileOwner { members_digest: 1, ..owner }, 4, 3).is_err());
        assert!(MappedVectors::open(&path, owner, 3, 4).is_err());
        assert!(MappedVectors::open(&path, owner, 4, 2).is_err());
        // A flipped data byte: refused by the checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(MappedVectors::open(&path, owner, 4, 3).is_err());
        // Truncated: refused.
        std::fs::write(&path, &bytes[..bytes.len() - 4]).expect("write");
        assert!(MappedVectors::open(&path, owner, 4, 3).is_err());
        // Mismatched input is refused at write time.
        assert!(write(&path, owner, 4, &present, Elems::F32(&data[..8])).is_err());
    }
}
