//! Scalar (int8) quantization of a sealed segment's vectors, for fast approximate scoring.
//!
//! Every component of every vector is mapped to one byte: `x ≈ lo + alpha * c` with
//! `c = round((clamp(x, lo, hi) - lo) / alpha)`, `alpha = (hi - lo) / 255`, where `lo` and `hi`
//! bound the given quantile of the values (Qdrant's `quantile`: 0.99 ignores the 1% most extreme
//! values, which are clamped). One range is shared by all dimensions.
//!
//! The query is quantized the same way, so scoring is an integer kernel over two byte arrays
//! plus per-vector correction terms computed at build time (internal scores, larger is better):
//!
//! - Dot / Cosine: `q·x ≈ alpha² Σ cq·cx + [lo·alpha Σ cq + d·lo²] + lo·alpha Σ cx`
//! - Euclid: `-|q-x|² ≈ 2 alpha² Σ cq·cx - alpha² Σ cq² - alpha² Σ cx²` (`lo` cancels)
//! - Manhattan: `-|q-x|₁ ≈ -alpha Σ |cq - cx|`
//!
//! Binary quantization (`{"binary": {}}`) keeps one bit per component instead: its sign
//! (`x > 0`), packed into 64-bit words. Queries are encoded the same way and scored by the
//! Hamming distance `h` between the bit strings: Dot / Cosine `(d - 2h) / d` (the fraction of
//! agreeing signs, in [-1, 1]), Euclid and Manhattan `-h`. It suits centred embeddings (signs
//! carry information) of a few hundred dimensions or more, with oversampling and rescoring.
//!
//! Quantized scores only pick candidates; searches rescore them with the original vectors
//! unless told not to (`params.quantization.rescore: false`).
//!
//! Multivectors (`multi_*` constructors) quantize every row the same way; `groups` then says
//! which rows form each point, and a multivector query scores a point by max-sim over the
//! codes: the sum over query rows of the best quantized row score ([`MultiQuantizedQuery`]).
//!
//! Stored forms (little-endian), CRC-32 over all bytes before it at the end:
//! - scalar: `magic "QDSQUANT" | version u32 | distance u8 | dim u32 | n u64 | lo f32 |
//!   alpha f32 | codes [u8; n*dim] | corr [f32; n] | crc32 u32`;
//! - binary: `magic "QDBQUANT" | version u32 | distance u8 | dim u32 | n u64 |
//!   bits [u8; n * 8 * ceil(dim/64)] | crc32 u32`;
//! - multivector rows: version 2 of either, `n` counting rows, with `groups [u32; points + 1]`
//!   (point `i` holds rows `groups[i]..groups[i+1]`) before the CRC.

use qd_core::Distance;
use rayon::prelude::*;

use crate::elements::Elems;
use crate::hnsw::persist::Crc32;
use crate::hnsw::visited::prefetch_ptr;
use crate::hnsw::{OffsetScorer, VectorSource};
use crate::multi::MultiColumn;

const MAGIC: [u8; 8] = *b"QDSQUANT";
const BINARY_MAGIC: [u8; 8] = *b"QDBQUANT";
const VERSION: u32 = 1;
/// Version of the stored form that carries multivector row groups.
const VERSION_MULTI: u32 = 2;
/// At most this many values are sampled to find the quantile range.
const SAMPLE_VALUES: usize = 1 << 20;

/// Int8 codes (or sign bits) of one vector column plus what is needed to score them.
#[derive(Clone)]
pub struct QuantizedVectors {
    distance: Distance,
    dim: usize,
    len: usize,
    /// One bit per component (binary quantization) instead of one byte.
    binary: bool,
    lo: f32,
    alpha: f32,
    /// `stride()` bytes per vector.
    codes: Vec<u8>,
    /// Scalar only: per-vector correction term.
    corr: Vec<f32>,
    /// Multivectors only: point `i`'s rows are `groups[i]..groups[i + 1]` (empty for one vector
    /// per point).
    groups: Vec<u32>,
}

impl std::fmt::Debug for QuantizedVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedVectors")
            .field("distance", &self.distance)
            .field("dim", &self.dim)
            .field("len", &self.len)
            .field("binary", &self.binary)
            .field("lo", &self.lo)
            .field("alpha", &self.alpha)
            .finish()
    }
}

/// Why stored quantized vectors could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QuantizedError {
    #[error("quantized vectors are truncated")]
    Truncated,
    #[error("not quantized vectors (bad magic)")]
    BadMagic,
    #[error("unsupported quantized vectors format version {0}")]
    UnsupportedVersion(u32),
    #[error("quantized vectors checksum mismatch")]
    Checksum,
    #[error("corrupt quantized vectors: {0}")]
    Corrupt(&'static str),
}

#[inline]
fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
    // Chunked so the compiler vectorises with 32-bit lanes; 255*255*65536 fits in u32.
    let mut acc = [0u32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as u32 * y[i] as u32;
        }
    }
    let tail: u32 = ra.iter().zip(rb).map(|(&x, &y)| x as u32 * y as u32).sum();
    acc.iter().sum::<u32>() + tail
}

/// Number of differing bits (both slices a multiple of 8 bytes long).
#[inline]
fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let (ca, _) = a.as_chunks::<8>();
    let (cb, _) = b.as_chunks::<8>();
    ca.iter().zip(cb).map(|(x, y)| (u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y)).count_ones()).sum()
}

/// Sign bits of `v` into `out` (zeroed, `stride` bytes): bit `i` is set when `v[i] > 0`.
fn encode_bits(v: &[f32], out: &mut [u8]) {
    out.iter_mut().for_each(|b| *b = 0);
    for (i, &x) in v.iter().enumerate() {
        if x > 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
}

#[inline]
fn l1_u8(a: &[u8], b: &[u8]) -> u32 {
    let mut acc = [0u32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..16 {
            acc[i] += x[i].abs_diff(y[i]) as u32;
        }
    }
    let tail: u32 = ra.iter().zip(rb).map(|(&x, &y)| x.abs_diff(y) as u32).sum();
    acc.iter().sum::<u32>() + tail
}

fn distance_code(d: Distance) -> u8 {
    match d {
        Distance::Cosine => 0,
        Distance::Euclid => 1,
        Distance::Dot => 2,
        Distance::Manhattan => 3,
    }
}

fn distance_from(c: u8) -> Option<Distance> {
    Some(match c {
        0 => Distance::Cosine,
        1 => Distance::Euclid,
        2 => Distance::Dot,
        3 => Distance::Manhattan,
        _ => return None,
    })
}

/// `(lo, hi)` covering the central `quantile` of a deterministic sample of `src`'s values.
fn value_range(src: &dyn VectorSource, quantile: f32) -> (f32, f32) {
    let (n, dim) = (src.len(), src.dim());
    if n == 0 || dim == 0 {
        return (0.0, 0.0);
    }
    let want = (SAMPLE_VALUES / dim).clamp(1, n);
    let step = n / want;
    let mut values: Vec<f32> = Vec::with_capacity(want * dim);
    for i in 0..want {
        values.extend(src.vector((i * step) as u32).to_vec().into_iter().filter(|x| x.is_finite()));
    }
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let q = quantile.clamp(0.5, 1.0) as f64;
    let last = values.len() - 1;
    let lo_i = (((1.0 - q) / 2.0) * last as f64).floor() as usize;
    let hi_i = ((((1.0 + q) / 2.0) * last as f64).ceil() as usize).min(last);
    let lo = *values.select_nth_unstable_by(lo_i, f32::total_cmp).1;
    let hi = *values.select_nth_unstable_by(hi_i, f32::total_cmp).1;
    (lo, hi.max(lo))
}

impl QuantizedVectors {
    /// Quantize every vector of `src` (preprocessed like the index: Cosine normalised).
    /// `quantile` (0.5..=1.0) picks the value range; values outside it are clamped.
    pub fn build(src: &dyn VectorSource, distance: Distance, quantile: f32) -> Self {
        let (len, dim) = (src.len(), src.dim());
        let (lo, hi) = value_range(src, quantile);
        let alpha = if hi - lo > f32::EPSILON * lo.abs().max(1.0) { (hi - lo) / 255.0 } else { 1.0 };
        let mut qv = QuantizedVectors {
            distance,
            dim,
            len,
            binary: false,
            lo,
            alpha,
            codes: vec![0; len * dim],
            corr: vec![0.0; len],
            groups: Vec::new(),
        };
        if dim > 0 {
            let (lo, alpha) = (qv.lo, qv.alpha);
            let QuantizedVectors { codes, corr, .. } = &mut qv;
            codes.par_chunks_mut(dim).zip(corr.par_iter_mut()).enumerate().for_each(|(i, (c, k))| {
                src.vector(i as u32).with_f32(|v| encode_into(v, lo, alpha, c));
                *k = correction(distance, lo, alpha, dim, c);
            });
        }
        qv
    }

    /// Binary quantization: the sign bit of every component of every vector of `src`.
    pub fn build_binary(src: &dyn VectorSource, distance: Distance) -> Self {
        let (len, dim) = (src.len(), src.dim());
        let mut qv = QuantizedVectors {
            distance,
            dim,
            len,
            binary: true,
            lo: 0.0,
            alpha: 1.0,
            codes: Vec::new(),
            corr: Vec::new(),
            groups: Vec::new(),
        };
        let stride = qv.stride();
        qv.codes = vec![0; len * stride];
        if stride > 0 {
            qv.codes
                .par_chunks_mut(stride)
                .enumerate()
                .for_each(|(i, c)| src.vector(i as u32).with_f32(|v| encode_bits(v, c)));
        }
        qv
    }

    /// [`QuantizedVectors::build`] over the rows of every point of a multivector column.
    pub fn build_multi(col: &MultiColumn, quantile: f32) -> Self {
        let groups = RowSource::groups(col);
        let rows = RowSource { col, groups: &groups, dim: col.dim().max(1) };
        let built = Self::build(&rows, col.distance, quantile);
        QuantizedVectors { groups, ..built }
    }

    /// [`QuantizedVectors::build_binary`] over the rows of every point of a multivector column.
    pub fn build_multi_binary(col: &MultiColumn) -> Self {
        let groups = RowSource::groups(col);
        let rows = RowSource { col, groups: &groups, dim: col.dim().max(1) };
        let built = Self::build_binary(&rows, col.distance);
        QuantizedVectors { groups, ..built }
    }

    /// Whether these are sign bits (binary quantization) rather than int8 codes.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// Whether these quantize multivector rows (scored with [`QuantizedVectors::query_multi`]).
    pub fn is_multi(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Bytes per vector: `dim` codes, or the sign bits padded to whole 64-bit words.
    fn stride(&self) -> usize {
        if self.binary {
            self.dim.div_ceil(64) * 8
        } else {
            self.dim
        }
    }

    /// Number of points covered (of vectors, or of multivectors).
    pub fn len(&self) -> usize {
        if self.is_multi() {
            self.groups.len() - 1
        } else {
            self.len
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn distance(&self) -> Distance {
        self.distance
    }

    /// Bytes of RAM held by codes and correction terms.
    pub fn ram_bytes(&self) -> usize {
        self.codes.capacity() + self.corr.capacity() * 4 + self.groups.capacity() * 4
    }

    /// The step between codes (an upper bound on twice the per-component rounding error).
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// `(lo, hi)` of the value range codes cover.
    pub fn range(&self) -> (f32, f32) {
        (self.lo, self.lo + 255.0 * self.alpha)
    }

    fn codes_of(&self, offset: u32) -> &[u8] {
        let stride = self.stride();
        let s = offset as usize * stride;
        &self.codes[s..s + stride]
    }

    /// The value of component `i` of vector `offset` as the codes represent it (binary: ±1).
    pub fn decode(&self, offset: u32) -> Vec<f32> {
        let c = self.codes_of(offset);
        if self.binary {
            return (0..self.dim).map(|i| if c[i / 8] >> (i % 8) & 1 == 1 { 1.0 } else { -1.0 }).collect();
        }
        c.iter().map(|&c| self.lo + self.alpha * c as f32).collect()
    }

    /// A scorer of `query` (preprocessed like the stored vectors) against every offset.
    pub fn query(&self, query: &[f32]) -> QuantizedQuery<'_> {
        if self.binary {
            let mut codes = vec![0u8; self.stride()];
            encode_bits(query, &mut codes);
            return QuantizedQuery { qv: self, codes, corr: 0.0 };
        }
        let mut codes = vec![0u8; self.dim];
        if query.len() == self.dim {
            encode_into(query, self.lo, self.alpha, &mut codes);
        }
        let sum: f32 = codes.iter().map(|&c| c as f32).sum();
        let sq: f32 = codes.iter().map(|&c| (c as f32) * (c as f32)).sum();
        let corr = match self.distance {
            Distance::Cosine | Distance::Dot => self.lo * self.alpha * sum + self.dim as f32 * self.lo * self.lo,
            Distance::Euclid => -self.alpha * self.alpha * sq,
            Distance::Manhattan => 0.0,
        };
        QuantizedQuery { qv: self, codes, corr }
    }

    /// A scorer of a multivector query (`rows`, row-major, each row preprocessed like the
    /// stored ones) against every point, by max-sim over the codes.
    pub fn query_multi(&self, rows: &[f32]) -> MultiQuantizedQuery<'_> {
        let queries = rows.chunks_exact(self.dim.max(1)).map(|r| self.query(r)).collect();
        MultiQuantizedQuery { qv: self, queries }
    }

    /// Versioned, CRC-32-checked bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48 + self.codes.len() + self.corr.len() * 4 + self.groups.len() * 4);
        b.extend_from_slice(if self.binary { &BINARY_MAGIC } else { &MAGIC });
        b.extend_from_slice(&if self.is_multi() { VERSION_MULTI } else { VERSION }.to_le_bytes());
        b.push(distance_code(self.distance));
        b.extend_from_slice(&(self.dim as u32).to_le_bytes());
        b.extend_from_slice(&(self.len as u64).to_le_bytes());
        if !self.binary {
            b.extend_from_slice(&self.lo.to_le_bytes());
            b.extend_from_slice(&self.alpha.to_le_bytes());
        }
        b.extend_from_slice(&self.codes);
        for c in &self.corr {
            b.extend_from_slice(&c.to_le_bytes());
        }
        for g in &self.groups {
            b.extend_from_slice(&g.to_le_bytes());
        }
        let mut crc = Crc32::new();
        crc.update(&b);
        b.extend_from_slice(&crc.finish().to_le_bytes());
        b
    }

    /// Reads what [`QuantizedVectors::to_bytes`] wrote.
    pub fn from_bytes(b: &[u8]) -> Result<Self, QuantizedError> {
        if b.len() >= 8 && b[..8] == BINARY_MAGIC {
            let (distance, dim, len, at, groups) =
                read_checked(b, &BINARY_MAGIC, 0, |len, dim| len.checked_mul(dim.div_ceil(64) * 8))?;
            let codes = b[at..at + len * dim.div_ceil(64) * 8].to_vec();
            return Ok(QuantizedVectors {
                distance,
                dim,
                len,
                binary: true,
                lo: 0.0,
                alpha: 1.0,
                codes,
                corr: Vec::new(),
                groups,
            });
        }
        let body = |len: usize, dim: usize| len.checked_mul(dim)?.checked_add(len.checked_mul(4)?);
        let (distance, dim, len, at, groups) = read_checked(b, &MAGIC, 8, body)?;
        let f32_at = |p: usize| f32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
        let (lo, alpha) = (f32_at(25), f32_at(29));
        if !lo.is_finite() || !alpha.is_finite() || alpha <= 0.0 {
            return Err(QuantizedError::Corrupt("range"));
        }
        let codes_len = len * dim;
        let codes = b[at..at + codes_len].to_vec();
        let corr = b[at + codes_len..at + codes_len + len * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(QuantizedVectors { distance, dim, len, binary: false, lo, alpha, codes, corr, groups })
    }
}

/// The rows of a multivector column, one item per row: row `r` belongs to the point `p` with
/// `groups[p] <= r < groups[p + 1]` (found by binary search, so nothing per row is held).
struct RowSource<'a> {
    col: &'a MultiColumn,
    groups: &'a [u32],
    dim: usize,
}

impl<'a> RowSource<'a> {
    /// Row groups of `col`: point `p` holds rows `groups[p]..groups[p + 1]`.
    fn groups(col: &MultiColumn) -> Vec<u32> {
        let dim = col.dim().max(1);
        let mut groups = Vec::with_capacity(col.len() + 1);
        groups.push(0u32);
        let mut rows = 0u32;
        for o in 0..col.len() as u32 {
            rows += col.get(o).map_or(0, |r| (r.len() / dim) as u32);
            groups.push(rows);
        }
        groups
    }
}

impl VectorSource for RowSource<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.groups.last().copied().unwrap_or(0) as usize
    }
    /// Row `offset` (empty when out of range, which callers never ask for).
    fn vector(&self, offset: u32) -> Elems<'_> {
        let p = self.groups.partition_point(|&g| g <= offset).saturating_sub(1);
        let row = (offset - self.groups[p]) as usize;
        match self.col.get(p as u32) {
            Some(rows) => rows.get(row * self.dim, (row + 1) * self.dim).unwrap_or(Elems::F32(&[])),
            None => Elems::F32(&[]),
        }
    }
}

/// Checks what both stored forms share: `magic`, version, the size (`extra` header bytes after
/// the common 25, then `body(len, dim)` bytes, then the CRC) and the CRC. Returns the distance,
/// dim, vector count and where the body starts.
#[allow(clippy::type_complexity)]
fn read_checked(
    b: &[u8],
    magic: &[u8; 8],
    extra: usize,
    body: impl Fn(usize, usize) -> Option<usize>,
) -> Result<(Distance, usize, usize, usize, Vec<u32>), QuantizedError> {
    let header = 8 + 4 + 1 + 4 + 8 + extra;
    if b.len() < header + 4 {
        return Err(QuantizedError::Truncated);
    }
    if &b[..8] != magic {
        return Err(QuantizedError::BadMagic);
    }
    let u32_at = |p: usize| u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
    let version = u32_at(8);
    if version != VERSION && version != VERSION_MULTI {
        return Err(QuantizedError::UnsupportedVersion(version));
    }
    let distance = distance_from(b[12]).ok_or(QuantizedError::Corrupt("unknown distance"))?;
    let dim = u32_at(13) as usize;
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&b[17..25]);
    let len = usize::try_from(u64::from_le_bytes(n8)).map_err(|_| QuantizedError::Corrupt("length"))?;
    let fixed = body(len, dim).and_then(|x| x.checked_add(header + 4)).ok_or(QuantizedError::Corrupt("length"))?;
    if b.len() < fixed {
        return Err(QuantizedError::Truncated);
    }
    // Version 2 carries the row groups between the codes and the CRC.
    let tail = b.len() - fixed;
    if (version == VERSION && tail != 0) || (version == VERSION_MULTI && (tail < 4 || !tail.is_multiple_of(4))) {
        return Err(QuantizedError::Corrupt("trailing bytes"));
    }
    let mut crc = Crc32::new();
    crc.update(&b[..b.len() - 4]);
    if crc.finish() != u32_at(b.len() - 4) {
        return Err(QuantizedError::Checksum);
    }
    let at = fixed - 4;
    let groups: Vec<u32> = (0..tail / 4).map(|i| u32_at(at + i * 4)).collect();
    let ordered = groups.first() == Some(&0) && groups.windows(2).all(|w| w[0] <= w[1]);
    if !groups.is_empty() && (!ordered || groups.last().copied() != Some(len as u32)) {
        return Err(QuantizedError::Corrupt("row groups"));
    }
    Ok((distance, dim, len, header, groups))
}

fn encode_into(v: &[f32], lo: f32, alpha: f32, out: &mut [u8]) {
    let hi = lo + 255.0 * alpha;
    for (o, &x) in out.iter_mut().zip(v) {
        // `as u8` saturates and maps NaN to 0.
        *o = ((x.clamp(lo, hi) - lo) / alpha).round() as u8;
    }
}

fn correction(distance: Distance, lo: f32, alpha: f32, _dim: usize, codes: &[u8]) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => lo * alpha * codes.iter().map(|&c| c as f32).sum::<f32>(),
        Distance::Euclid => -alpha * alpha * codes.iter().map(|&c| (c as f32) * (c as f32)).sum::<f32>(),
        Distance::Manhattan => 0.0,
    }
}

/// A query quantized against one [`QuantizedVectors`]; scores offsets approximately.
pub struct QuantizedQuery<'a> {
    qv: &'a QuantizedVectors,
    codes: Vec<u8>,
    corr: f32,
}

impl OffsetScorer for QuantizedQuery<'_> {
    #[inline]
    fn score(&self, offset: u32) -> f32 {
        let qv = self.qv;
        let c = qv.codes_of(offset);
        if qv.binary {
            let h = hamming(&self.codes, c) as f32;
            return match qv.distance {
                Distance::Cosine | Distance::Dot => (qv.dim as f32 - 2.0 * h) / qv.dim.max(1) as f32,
                Distance::Euclid | Distance::Manhattan => -h,
            };
        }
        match qv.distance {
            Distance::Cosine | Distance::Dot => {
                qv.alpha * qv.alpha * dot_u8(&self.codes, c) as f32 + self.corr + qv.corr[offset as usize]
            }
            Distance::Euclid => {
                2.0 * qv.alpha * qv.alpha * dot_u8(&self.codes, c) as f32 + self.corr + qv.corr[offset as usize]
            }
            Distance::Manhattan => -qv.alpha * l1_u8(&self.codes, c) as f32,
        }
    }

    #[inline(always)]
    fn prefetch(&self, offset: u32) {
        let stride = self.qv.stride();
        let s = offset as usize * stride;
        if let Some(c) = self.qv.codes.get(s..s + stride) {
            let p = c.as_ptr();
            let mut off = 0;
            while off < c.len().min(512) {
                prefetch_ptr(p.wrapping_add(off));
                off += 64;
            }
        }
    }
}

/// A multivector query quantized against multivector rows: one [`QuantizedQuery`] per query
/// row; a point scores the sum over them of its best row (max-sim over the codes).
pub struct MultiQuantizedQuery<'a> {
    qv: &'a QuantizedVectors,
    queries: Vec<QuantizedQuery<'a>>,
}

impl OffsetScorer for MultiQuantizedQuery<'_> {
    fn score(&self, offset: u32) -> f32 {
        let g = &self.qv.groups;
        let (Some(&a), Some(&b)) = (g.get(offset as usize), g.get(offset as usize + 1)) else {
            return f32::NEG_INFINITY;
        };
        if a == b {
            return f32::NEG_INFINITY;
        }
        self.queries.iter().map(|q| (a..b).map(|r| q.score(r)).fold(f32::NEG_INFINITY, f32::max)).sum()
    }

    #[inline(always)]
    fn prefetch(&self, offset: u32) {
        if let (Some(&a), Some(q)) = (self.qv.groups.get(offset as usize), self.queries.first()) {
            q.prefetch(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::DenseVectors;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, dim: usize, seed: u64) -> DenseVectors {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = DenseVectors::new(dim);
        v.data = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        v
    }

    #[test]
    fn error_bounds_per_metric() {
        let (n, dim) = (300, 37);
        let src = random(n, dim, 7);
        let queries = random(20, dim, 8);
        for distance in [Distance::Dot, Distance::Euclid, Distance::Manhattan] {
            let qv = QuantizedVectors::build(&src, distance, 1.0);
            let a = qv.alpha();
            assert!(a > 0.0 && a < 2.0 / 255.0 + 1e-6, "alpha {a}");
            for qi in 0..20u32 {
                let q = queries.row(qi);
                let s = qv.query(q);
                for o in 0..n as u32 {
                    let x = src.row(o);
                    let exact = distance.score(q, x);
                    let approx = s.score(o);
                    // Each component of q and x is off by at most alpha/2.
                    let bound = match distance {
                        Distance::Dot | Distance::Cosine => {
                            let l1q: f32 = q.iter().map(|v| v.abs()).sum();
                            let l1x: f32 = x.iter().map(|v| v.abs()).sum();
                            a / 2.0 * (l1q + l1x) + dim as f32 * a * a / 4.0
                        }
                        Distance::Euclid => {
                            let l1d: f32 = q.iter().zip(x).map(|(p, r)| (p - r).abs()).sum();
                            2.0 * a * l1d + dim as f32 * a * a
                        }
                        Distance::Manhattan => dim as f32 * a,
                    };
                    assert!(
                        (exact - approx).abs() <= bound * 1.01 + 1e-4,
                        "{distance:?}: exact {exact} approx {approx} bound {bound}"
                    );
                }
            }
            // Decoded values are within alpha/2 of the originals.
            for o in 0..n as u32 {
                for (d, x) in qv.decode(o).iter().zip(src.row(o)) {
                    assert!((d - x).abs() <= a / 2.0 + 1e-6);
                }
            }
        }
    }

    #[test]
    fn quantile_clamps_outliers() {
        let mut src = random(1000, 16, 3);
        src.data[5] = 1000.0;
        src.data[77] = -1000.0;
        let full = QuantizedVectors::build(&src, Distance::Dot, 1.0);
        assert_eq!(full.range().0, -1000.0);
        let q = QuantizedVectors::build(&src, Distance::Dot, 0.99);
        let (lo, hi) = q.range();
        assert!(lo > -1.0 && hi < 1.01, "range {lo}..{hi}");
    }

    #[test]
    fn bytes_round_trip_and_corruption() {
        let src = random(50, 9, 11);
        let qv = QuantizedVectors::build(&src, Distance::Euclid, 0.95);
        let bytes = qv.to_bytes();
        let back = QuantizedVectors::from_bytes(&bytes).expect("read");
        assert_eq!(back.to_bytes(), bytes);
        let q = src.row(3);
        assert_eq!(back.query(q).score(7), qv.query(q).score(7));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(QuantizedVectors::from_bytes(&bad), Err(QuantizedError::Checksum)));
        assert!(QuantizedVectors::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(QuantizedVectors::from_bytes(b"nonsense").is_err());
    }

    #[test]
    fn binary_codes_scores_and_bytes() {
        let (n, dim) = (200, 100);
        let src = random(n, dim, 21);
        let qv = QuantizedVectors::build_binary(&src, Distance::Cosine);
        assert!(qv.is_binary());
        assert_eq!(qv.ram_bytes(), n * 16, "100 bits padded to two 64-bit words per vector");
        for o in [0u32, 17, 199] {
            let signs: Vec<f32> = src.row(o).iter().map(|&x| if x > 0.0 { 1.0 } else { -1.0 }).collect();
            assert_eq!(qv.decode(o), signs);
        }
        // A vector scores 1 against itself; sign agreement decides the rest.
        let q = src.row(5);
        let s = qv.query(q);
        assert_eq!(s.score(5), 1.0);
        let agree = |o: u32| src.row(o).iter().zip(q).filter(|(a, b)| (**a > 0.0) == (**b > 0.0)).count();
        for o in 0..n as u32 {
            let want = (2 * agree(o)) as f32 / dim as f32 - 1.0;
            assert!((s.score(o) - want).abs() < 1e-6, "{o}: {} vs {want}", s.score(o));
        }
        let e = QuantizedVectors::build_binary(&src, Distance::Euclid);
        assert_eq!(e.query(q).score(5), 0.0);
        assert!(e.query(q).score(6) < 0.0);
        // Stored and read back; damage is detected.
        let bytes = qv.to_bytes();
        let back = QuantizedVectors::from_bytes(&bytes).expect("read");
        assert!(back.is_binary());
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.query(q).score(9), s.score(9));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(QuantizedVectors::from_bytes(&bad), Err(QuantizedError::Checksum)));
        assert!(QuantizedVectors::from_bytes(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn multivector_rows_score_by_max_sim_and_persist() {
        use crate::hnsw::{MaxSimScorer, PairScore};
        use qd_core::vectors::MultiDenseVector;
        let dim = 12;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut col = MultiColumn::new(dim, Distance::Dot);
        let mut row = || (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<f32>>();
        for o in 0..120u32 {
            if o % 10 == 3 {
                continue; // slots without a vector
            }
            let rows: Vec<Vec<f32>> = (0..1 + o % 4).map(|_| row()).collect();
            col.set(o, Some(&MultiDenseVector::new(rows).expect("rows")));
        }
        col.set(120, None);
        let exact = MaxSimScorer::new(Distance::Dot, dim);
        let query: Vec<f32> = (0..3).flat_map(|_| row()).collect();
        for binary in [false, true] {
            let qv = if binary {
                QuantizedVectors::build_multi_binary(&col)
            } else {
                QuantizedVectors::build_multi(&col, 1.0)
            };
            assert!(qv.is_multi() && qv.is_binary() == binary);
            assert_eq!(qv.len(), col.len());
            let s = qv.query_multi(&query);
            assert_eq!(s.score(3), f32::NEG_INFINITY, "a slot without a vector scores nothing");
            assert_eq!(s.score(500), f32::NEG_INFINITY);
            if !binary {
                // Each row score is off by at most a / 2 * (|q|_1 + |x|_1) + dim a^2 / 4 (see
                // error_bounds_per_metric); with rows in [-1, 1] that is under 2 * dim * a per row.
                let bound = 3.0 * 2.0 * dim as f32 * qv.alpha();
                for o in (0..120u32).filter(|o| o % 10 != 3) {
                    let want = col.get(o).expect("rows").with_f32(|r| exact.score(&query, r));
                    assert!((s.score(o) - want).abs() <= bound, "{o}: {} vs {want}", s.score(o));
                }
            }
            // Stored and read back with the groups; damage to them is refused.
            let bytes = qv.to_bytes();
            let back = QuantizedVectors::from_bytes(&bytes).expect("read");
            assert!(back.is_multi());
            assert_eq!(back.to_bytes(), bytes);
            assert_eq!(back.query_multi(&query).score(7), s.score(7));
            let mut bad = bytes.clone();
            let at = bytes.len() - 8;
            bad[at] ^= 0x40;
            assert!(QuantizedVectors::from_bytes(&bad).is_err());
            assert!(QuantizedVectors::from_bytes(&bytes[..bytes.len() - 4]).is_err());
        }
        // A column without points writes what it reads back.
        let empty = QuantizedVectors::build_multi(&MultiColumn::new(dim, Distance::Dot), 1.0);
        let back = QuantizedVectors::from_bytes(&empty.to_bytes()).expect("empty multivector codes");
        assert!(back.is_multi() && back.is_empty());
    }

    #[test]
    fn constant_values_do_not_divide_by_zero() {
        let mut src = DenseVectors::new(4);
        src.data = vec![0.5; 40];
        let qv = QuantizedVectors::build(&src, Distance::Dot, 1.0);
        let s = qv.query(&[0.5; 4]);
        assert!((s.score(3) - 1.0).abs() < 1e-3, "{}", s.score(3));
    }
}
