//! Versioned, CRC-32-checked binary form of a graph, streamed in chunks.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic "QDHNSWGR" | version u32 | m u32 | m0 u32 | max_level u32 | entry u32
//! | ef_construct u32 | max_threads u32 | seed u64 | n u64 | upper_len u64 | extra_len u64
//! | has_extra u32 | levels [u8; n] | level0 [u32; n*(m0+1)] | upper [u32; upper_len]
//! | extra_start [u32; n+1 if has_extra] | extra [u32; extra_len] | tags_len u64
//! | group_tags [u64; tags_len] | crc32 u32
//! ```
//! Version 1, written before groups-only graphs existed, ends after `extra` (no tags).
//! The CRC (IEEE, reflected 0xEDB88320) covers every byte before it. After the CRC matches,
//! the structure is still validated (counts within capacity, ids in range, ...), so even a
//! crafted input cannot make a later search panic.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;

use super::links::{Links, MAX_LEVEL};
use super::visited::ScratchPool;
use super::HnswGraph;

const MAGIC: [u8; 8] = *b"QDHNSWGR";
const VERSION: u32 = 2;
/// Elements per read/write chunk.
const CHUNK: usize = 16 * 1024;
/// Sanity cap on `m0` (a larger value is certainly corruption).
const MAX_M0: u32 = 1 << 16;

/// Why a serialized graph could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("I/O error reading HNSW graph: {0}")]
    Io(#[from] io::Error),
    #[error("HNSW graph data is truncated")]
    Truncated,
    #[error("not an HNSW graph file (bad magic)")]
    BadMagic,
    #[error("unsupported HNSW graph format version {0}")]
    UnsupportedVersion(u32),
    #[error("HNSW graph checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("corrupt HNSW graph: {0}")]
    Corrupt(&'static str),
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE), slicing-by-8.

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            t[j][i] = (t[j - 1][i] >> 8) ^ t[0][(t[j - 1][i] & 0xFF) as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// Incremental CRC-32.
#[derive(Clone, Copy)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub fn new() -> Self {
        Crc32(!0)
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        let t = &CRC_TABLES;
        let mut c = self.0;
        while bytes.len() >= 8 {
            let lo = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) ^ c;
            let hi = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
            bytes = &bytes[8..];
        }
        for &b in bytes {
            c = t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn finish(&self) -> u32 {
        !self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Writing.

struct Out<'a> {
    w: &'a mut dyn Write,
    crc: Crc32,
    buf: Vec<u8>,
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK * 4 {
            self.flush()?;
        }
        Ok(())
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u32s(&mut self, vals: impl Iterator<Item = u32>) -> io::Result<()> {
        for v in vals {
            self.buf.extend_from_slice(&v.to_le_bytes());
            if self.buf.len() >= CHUNK * 4 {
                self.flush()?;
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

pub(crate) fn write_graph(g: &HnswGraph, w: &mut dyn Write) -> io::Result<()> {
    let l = &g.links;
    let mut o = Out { w, crc: Crc32::new(), buf: Vec::with_capacity(CHUNK * 4 + 64) };
    o.bytes(&MAGIC)?;
    o.u32(VERSION)?;
    o.u32(l.m as u32)?;
    o.u32(l.m0 as u32)?;
    o.u32(l.max_level as u32)?;
    o.u32(g.entry)?;
    o.u32(g.ef_construct.min(u32::MAX as usize) as u32)?;
    o.u32(g.max_threads.min(u32::MAX as usize) as u32)?;
    o.u64(g.seed)?;
    o.u64(l.len() as u64)?;
    o.u64(l.upper.len() as u64)?;
    o.u64(g.extra.len() as u64)?;
    let has_extra = !g.extra_start.is_empty();
    o.u32(has_extra as u32)?;
    for chunk in l.levels.chunks(CHUNK * 4) {
        o.bytes(chunk)?;
    }
    o.u32s(l.level0.iter().map(|a| a.load(Relaxed)))?;
    o.u32s(l.upper.iter().map(|a| a.load(Relaxed)))?;
    if has_extra {
        o.u32s(g.extra_start.iter().copied())?;
    }
    o.u32s(g.extra.iter().copied())?;
    o.u64(g.group_tags.len() as u64)?;
    for &t in &g.group_tags {
        o.u64(t)?;
    }
    o.flush()?;
    let crc = o.crc.finish();
    o.w.write_all(&crc.to_le_bytes())?;
    o.w.flush()
}

// ---------------------------------------------------------------------------------------------
// Reading.

struct In<'a> {
    r: &'a mut dyn Read,
    crc: Crc32,
    buf: Vec<u8>,
}

fn eof(e: io::Error) -> GraphError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        GraphError::Truncated
    } else {
        GraphError::Io(e)
    }
}

impl In<'_> {
    fn exact(&mut self, len: usize) -> Result<&[u8], GraphError> {
        self.buf.resize(len, 0);
        self.r.read_exact(&mut self.buf).map_err(eof)?;
        self.crc.update(&self.buf);
        Ok(&self.buf)
    }
    fn u32(&mut self) -> Result<u32, GraphError> {
        let b = self.exact(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, GraphError> {
        let b = self.exact(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// Reads `count` bytes in chunks, so a bogus huge count fails at end of input instead of
    /// allocating it up front.
    fn bytes_vec(&mut self, count: usize) -> Result<Vec<u8>, GraphError> {
        let mut out = Vec::new();
        while out.len() < count {
            let take = (count - out.len()).min(CHUNK * 4);
            out.reserve(take);
            let b = self.exact(take)?;
            out.extend_from_slice(b);
        }
        out.shrink_to_fit();
        Ok(out)
    }
    fn u32_vec(&mut self, count: usize) -> Result<Vec<u32>, GraphError> {
        let mut out = Vec::new();
        while out.len() < count {
            let take = (count - out.len()).min(CHUNK);
            out.reserve(take);
            let b = self.exact(take * 4)?;
            out.extend(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        out.shrink_to_fit();
        Ok(out)
    }
}

fn corrupt(cond: bool, what: &'static str) -> Result<(), GraphError> {
    if cond {
        Err(GraphError::Corrupt(what))
    } else {
        Ok(())
    }
}

fn to_usize(v: u64, what: &'static str) -> Result<usize, GraphError> {
    usize::try_from(v).map_err(|_| GraphError::Corrupt(what))
}

pub(crate) fn read_graph(r: &mut dyn Read) -> Result<HnswGraph, GraphError> {
    let mut i = In { r, crc: Crc32::new(), buf: Vec::new() };
    if i.exact(8)? != MAGIC {
        return Err(GraphError::BadMagic);
    }
    let version = i.u32()?;
    if version != VERSION && version != 1 {
        return Err(GraphError::UnsupportedVersion(version));
    }
    let m = i.u32()?;
    let m0 = i.u32()?;
    let max_level = i.u32()?;
    let entry = i.u32()?;
    let ef_construct = i.u32()?;
    let max_threads = i.u32()?;
    let seed = i.u64()?;
    let n = i.u64()?;
    let upper_len = i.u64()?;
    let extra_len = i.u64()?;
    let has_extra = i.u32()?;
    // Sizes are only bounded here (reads are chunked, so a bogus size ends in `Truncated`);
    // everything else is validated after the checksum.
    corrupt(n > u32::MAX as u64 || upper_len > u32::MAX as u64 || extra_len > u32::MAX as u64, "sizes")?;
    corrupt(m0 > MAX_M0, "link capacities")?;
    let n = to_usize(n, "node count")?;
    let (m, m0) = (m as usize, m0 as usize);
    let level0_len = n.checked_mul(m0 + 1).ok_or(GraphError::Corrupt("node count"))?;

    let levels = i.bytes_vec(n)?;
    let level0 = i.u32_vec(level0_len)?;
    let upper = i.u32_vec(to_usize(upper_len, "upper size")?)?;
    let extra_start = if has_extra != 0 { i.u32_vec(n + 1)? } else { Vec::new() };
    let extra = i.u32_vec(to_usize(extra_len, "extra size")?)?;
    let mut group_tags = Vec::new();
    if version >= 2 {
        let tags_len = i.u64()?;
        corrupt(tags_len > u32::MAX as u64, "sizes")?;
        for _ in 0..tags_len {
            group_tags.push(i.u64()?);
        }
    }
    let computed = i.crc.finish();
    let mut tail = [0u8; 4];
    i.r.read_exact(&mut tail).map_err(eof)?;
    let stored = u32::from_le_bytes(tail);
    if stored != computed {
        return Err(GraphError::Checksum { stored, computed });
    }

    // Structure checks: everything a search relies on.
    // `m = m0 = 0`: a groups-only graph (every link a group link, every node on level 0).
    let groups_only = m == 0 && m0 == 0;
    corrupt(!groups_only && (m < 2 || m0 < m), "link capacities")?;
    corrupt(groups_only && levels.iter().any(|&l| l != 0), "node level")?;
    corrupt(max_level as usize > MAX_LEVEL, "max level")?;
    corrupt(has_extra > 1, "extra flag")?;
    if levels.iter().any(|&l| l as usize > MAX_LEVEL) {
        return Err(GraphError::Corrupt("node level"));
    }
    let check_blocks = |slots: &[u32], width: usize| -> Result<(), GraphError> {
        for block in slots.chunks_exact(width) {
            let cnt = block[0] as usize;
            corrupt(cnt >= width, "link count")?;
            corrupt(block[1..1 + cnt].iter().any(|&id| id as usize >= n), "link target")?;
        }
        Ok(())
    };
    check_blocks(&level0, m0 + 1)?;
    check_blocks(&upper, m + 1)?;
    let links = Links::from_slots(m, m0, levels, level0, upper).ok_or(GraphError::Corrupt("upper size"))?;
    corrupt(n > 0 && links.max_level != max_level as usize, "max level")?;
    corrupt(n > 0 && (entry as usize >= n || links.level_of(entry) != links.max_level), "entry point")?;
    if has_extra == 1 {
        corrupt(extra_start.first() != Some(&0), "extra offsets")?;
        corrupt(extra_start.windows(2).any(|w| w[0] > w[1]), "extra offsets")?;
        corrupt(extra_start.last().copied() != Some(extra.len() as u32), "extra offsets")?;
    } else {
        corrupt(!extra.is_empty(), "extra offsets")?;
    }
    corrupt(extra.iter().any(|&id| id as usize >= n), "extra link target")?;
    corrupt(group_tags.windows(2).any(|w| w[0] >= w[1]), "group tags")?;

    Ok(HnswGraph {
        links,
        entry,
        ef_construct: ef_construct as usize,
        max_threads: max_threads as usize,
        seed,
        extra_start,
        extra,
        group_tags,
        pool: ScratchPool::new(n),
    })
}
