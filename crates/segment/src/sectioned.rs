//! Files of one sealed segment made of a checked header and 64-byte aligned sections of plain
//! numbers, served straight from a read-only memory map (sparse vectors, multivectors).
//!
//! ```text
//! offset 0   8-byte magic                       kind of file and format version
//!        8   u64 segment id                     which segment the file belongs to
//!       16   u32 members digest                 CRC-32 of the segment's ids and versions
//!       20   u32 crc32 of everything after the header
//!       24   4 x u64 counts                     the first is the segment's slot count; the
//!                                               others size the kind's sections
//!       56   u32 crc32 of bytes 0..56
//!       60   zero padding up to 64
//! ```
//! Each section is padded with zeros to a multiple of 64 bytes, so with a page-aligned mapping
//! every array is aligned for its element type.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::hnsw::persist::Crc32;
use crate::mapped::{check_endian, invalid, pad64, write_durably, FileOwner};

pub(crate) const HEADER: usize = 64;

fn header(magic: &[u8; 8], owner: FileOwner, counts: [u64; 4], data_crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(magic);
    h[8..16].copy_from_slice(&owner.segment.to_le_bytes());
    h[16..20].copy_from_slice(&owner.members_digest.to_le_bytes());
    h[20..24].copy_from_slice(&data_crc.to_le_bytes());
    for (i, n) in counts.into_iter().enumerate() {
        h[24 + i * 8..32 + i * 8].copy_from_slice(&n.to_le_bytes());
    }
    let mut c = Crc32::new();
    c.update(&h[..56]);
    h[56..60].copy_from_slice(&c.finish().to_le_bytes());
    h
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes the sections after the header, checksumming what passes through.
pub(crate) struct SectionWriter<'a, W: Write> {
    w: &'a mut W,
    crc: Crc32,
    written: usize,
}

impl<W: Write> SectionWriter<'_, W> {
    pub(crate) fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.written += bytes.len();
        self.w.write_all(bytes)
    }

    /// Write `items` as little-endian bytes, in chunks, then pad to 64.
    pub(crate) fn section<T: Copy, const N: usize>(
        &mut self,
        items: &[T],
        bytes: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        self.append(items, bytes)?;
        self.pad()
    }

    /// Write `items` as little-endian bytes, in chunks, without padding (a section made of
    /// several slices ends with [`SectionWriter::pad`]).
    pub(crate) fn append<T: Copy, const N: usize>(
        &mut self,
        items: &[T],
        bytes: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        for chunk in items.chunks(1 << 14) {
            let b: Vec<u8> = chunk.iter().flat_map(|&x| bytes(x)).collect();
            self.put(&b)?;
        }
        Ok(())
    }

    pub(crate) fn pad(&mut self) -> io::Result<()> {
        let zeros = vec![0u8; pad64(self.written) - self.written];
        self.put(&zeros)
    }
}

/// Write a file of `magic` for `owner` durably: `fill` writes the sections, which must end at
/// byte `end` of the file (the size [`open`] will expect from `counts`).
pub(crate) fn write(
    path: &Path,
    magic: &[u8; 8],
    owner: FileOwner,
    counts: [u64; 4],
    end: usize,
    fill: impl FnOnce(&mut SectionWriter<'_, BufWriter<File>>) -> io::Result<()>,
) -> io::Result<()> {
    check_endian(path)?;
    write_durably(path, |w| {
        w.write_all(&[0u8; HEADER])?;
        let mut s = SectionWriter { w: &mut *w, crc: Crc32::new(), written: 0 };
        fill(&mut s)?;
        if HEADER + s.written != end {
            return Err(invalid(path, format!("wrote {} bytes where the layout says {end}", HEADER + s.written)));
        }
        let crc = s.crc.finish();
        w.seek(SeekFrom::Start(0))?;
        w.write_all(&header(magic, owner, counts, crc))
    })
}

/// Map a file of `magic` written for `owner` over `slots` slots: `end_of` gives the file size
/// its counts call for (`None`: counts that cannot be right). Checks the header, the size, the
/// checksum over the whole file (reading it once) and the mapping's alignment.
pub(crate) fn open(
    path: &Path,
    magic: &[u8; 8],
    owner: FileOwner,
    slots: usize,
    end_of: impl Fn([usize; 4]) -> Option<usize>,
) -> io::Result<(memmap2::Mmap, [usize; 4])> {
    check_endian(path)?;
    let file = File::open(path)?;
    // SAFETY: the file is private to this shard and never modified after it was written
    // (written to a temp name, synced, renamed); the mapping is read-only.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    if map.len() < HEADER {
        return Err(invalid(path, "truncated file"));
    }
    let h = &map[..HEADER];
    let mut c = Crc32::new();
    c.update(&h[..56]);
    if &h[..8] != magic || h[56..60] != c.finish().to_le_bytes() {
        return Err(invalid(path, "not a file of this kind and format, or a damaged header"));
    }
    let raw: [u64; 4] = std::array::from_fn(|i| u64_at(h, 24 + i * 8));
    let data_crc = u32_at(h, 20);
    if h[..56] != header(magic, owner, [slots as u64, raw[1], raw[2], raw[3]], data_crc)[..56] {
        return Err(invalid(path, "written for another segment or shape"));
    }
    // Counts beyond the file's size cannot be right (and would overflow the layout).
    let counts: [usize; 4] = std::array::from_fn(|i| usize::try_from(raw[i]).unwrap_or(usize::MAX));
    if counts.iter().any(|&n| n > map.len()) {
        return Err(invalid(path, "counts exceed the file's size"));
    }
    let end = end_of(counts).ok_or_else(|| invalid(path, "counts that do not fit together"))?;
    if map.len() != end {
        return Err(invalid(path, format!("size {} where {end} was expected", map.len())));
    }
    let mut c = Crc32::new();
    c.update(&map[HEADER..]);
    if c.finish() != data_crc {
        return Err(invalid(path, "data checksum mismatch"));
    }
    if map.as_ptr().align_offset(std::mem::align_of::<u64>()) != 0 {
        return Err(invalid(path, "mapping is not aligned"));
    }
    Ok((map, counts))
}

/// Plain numbers a section may hold: every bit pattern is a valid value.
pub(crate) trait Plain: Copy + private::Sealed {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}
impl Plain for f32 {}

mod private {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
    impl Sealed for f32 {}
}

/// `n` items of a plain numeric type at byte `at` of a mapping [`open`] checked.
pub(crate) fn slice<T: Plain>(map: &memmap2::Mmap, at: usize, n: usize) -> &[T] {
    let bytes = &map[at..at + n * std::mem::size_of::<T>()];
    assert_eq!(bytes.as_ptr().align_offset(std::mem::align_of::<T>()), 0, "section misaligned");
    // SAFETY: the range is in bounds (the slice above checks it) and aligned for T (asserted).
    // T is u8, u16, u32, u64 or f32 (`Plain` is sealed): no invalid bit patterns. Little-endian targets
    // only, like the file formats.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), n) }
}
