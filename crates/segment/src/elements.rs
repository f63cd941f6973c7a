//! Vector components in their storage type (a vector's `datatype`): float32, float16 or uint8.
//!
//! Values arrive already given the type's values (the collection rounds stored and query
//! vectors as Qdrant does, see `qd_core::config::Datatype`), so storing them in 2 or 1 bytes
//! loses nothing: reading a component back gives the very float32 that was written, and every
//! score equals the one computed from float32 storage.
//!
//! Scoring decodes a stored vector into float32 (a thread-local buffer, see
//! [`Elems::with_f32`]) and runs the usual SIMD kernel on it: the memory of a column shrinks
//! 2× or 4×, and a score costs one decode more.
//!
//! `uint8` with Cosine keeps the whole numbers as written, as Qdrant does (they are what a
//! read returns); the column reads such rows for scoring as [`Elems::U8Unit`], which decodes
//! each row to its unit vector, the very float32 values the collection's Cosine normalisation
//! gives. Points written before (held as unit-length float32) are scaled back to bytes by
//! [`cosine_bytes`] when loaded.

use std::cell::RefCell;

/// How a column stores components.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ElementType {
    #[default]
    F32,
    F16,
    U8,
}

impl ElementType {
    /// The storage of a vector declared with `datatype`.
    pub fn for_datatype(datatype: Option<qd_core::config::Datatype>) -> Self {
        use qd_core::config::Datatype;
        match datatype {
            Some(Datatype::Float16) => ElementType::F16,
            Some(Datatype::Uint8) => ElementType::U8,
            _ => ElementType::F32,
        }
    }

    /// The type's number in file headers (0 is float32, what files of the first format hold).
    pub fn code(self) -> u8 {
        match self {
            ElementType::F32 => 0,
            ElementType::F16 => 1,
            ElementType::U8 => 2,
        }
    }

    /// Bytes per component.
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F16 => 2,
            ElementType::U8 => 1,
        }
    }
}

/// Stored components, borrowed: one vector, or a multivector's rows back to back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elems<'a> {
    F32(&'a [f32]),
    /// Half-precision bit patterns.
    F16(&'a [u16]),
    U8(&'a [u8]),
    /// Bytes of a Cosine column: rows of the given width, each read as its unit vector.
    U8Unit(&'a [u8], usize),
}

impl<'a> Elems<'a> {
    pub fn len(&self) -> usize {
        match self {
            Elems::F32(s) => s.len(),
            Elems::F16(s) => s.len(),
            Elems::U8(s) | Elems::U8Unit(s, _) => s.len(),
        }
    }

    /// The components as stored (what a read of the vector returns): [`Elems::U8Unit`] rows
    /// as their whole numbers, every other kind as it is.
    pub fn stored(self) -> Elems<'a> {
        match self {
            Elems::U8Unit(s, _) => Elems::U8(s),
            other => other,
        }
    }

    /// These components as a column of `distance` reads them for scoring: the bytes of a
    /// Cosine column as [`Elems::U8Unit`] rows of `dim`, anything else as it is.
    pub fn scored_as(self, distance: qd_core::Distance, dim: usize) -> Elems<'a> {
        match self {
            Elems::U8(s) if distance == qd_core::Distance::Cosine => Elems::U8Unit(s, dim),
            other => other,
        }
    }

    /// How the components are stored.
    pub fn kind(self) -> ElementType {
        match self {
            Elems::F32(_) => ElementType::F32,
            Elems::F16(_) => ElementType::F16,
            Elems::U8(_) | Elems::U8Unit(..) => ElementType::U8,
        }
    }

    /// An owned copy of the stored components, in their type.
    pub fn to_owned_elems(self) -> ElemVec {
        match self.stored() {
            Elems::F32(s) => ElemVec::F32(s.to_vec()),
            Elems::F16(s) => ElemVec::F16(s.to_vec()),
            Elems::U8(s) | Elems::U8Unit(s, _) => ElemVec::U8(s.to_vec()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Components `start..end` (callers pass in-range bounds; out of range panics like slicing;
    /// [`Elems::U8Unit`] bounds fall on row boundaries).
    pub fn slice(self, start: usize, end: usize) -> Elems<'a> {
        match self {
            Elems::F32(s) => Elems::F32(&s[start..end]),
            Elems::F16(s) => Elems::F16(&s[start..end]),
            Elems::U8(s) => Elems::U8(&s[start..end]),
            Elems::U8Unit(s, dim) => Elems::U8Unit(&s[start..end], dim),
        }
    }

    /// Components `start..end`, `None` when out of range.
    pub fn get(self, start: usize, end: usize) -> Option<Elems<'a>> {
        (start <= end && end <= self.len()).then(|| self.slice(start, end))
    }

    /// The float32 slice when the components are float32.
    pub fn as_f32(self) -> Option<&'a [f32]> {
        match self {
            Elems::F32(s) => Some(s),
            _ => None,
        }
    }

    /// Address of the first component, for prefetching.
    pub fn as_ptr(self) -> *const u8 {
        match self {
            Elems::F32(s) => s.as_ptr().cast(),
            Elems::F16(s) => s.as_ptr().cast(),
            Elems::U8(s) | Elems::U8Unit(s, _) => s.as_ptr(),
        }
    }

    /// Bytes the components take.
    pub fn byte_len(self) -> usize {
        match self {
            Elems::F32(s) => s.len() * 4,
            Elems::F16(s) => s.len() * 2,
            Elems::U8(s) | Elems::U8Unit(s, _) => s.len(),
        }
    }

    /// Writes the components as float32 into `out` (same length); [`Elems::U8Unit`] rows
    /// normalised one by one.
    pub fn decode_into(self, out: &mut [f32]) {
        match self {
            Elems::F32(s) => out.copy_from_slice(s),
            Elems::F16(s) => decode_f16(s, out),
            Elems::U8(s) => decode_u8(s, out),
            Elems::U8Unit(s, dim) => {
                decode_u8(s, out);
                out.chunks_mut(dim.max(1)).for_each(|row| qd_core::Distance::Cosine.preprocess(row));
            }
        }
    }

    pub fn to_vec(self) -> Vec<f32> {
        match self {
            Elems::F32(s) => s.to_vec(),
            other => {
                let mut v = vec![0.0; other.len()];
                other.decode_into(&mut v);
                v
            }
        }
    }

    /// Runs `f` on the components as float32: float32 storage is passed as is, other types are
    /// decoded into a per-thread buffer (a fresh one if `f` itself decodes again).
    #[inline]
    pub fn with_f32<R>(self, f: impl FnOnce(&[f32]) -> R) -> R {
        if let Elems::F32(s) = self {
            return f(s);
        }
        thread_local! {
            static BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let n = self.len();
        BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.len() < n {
                    buf.resize(n, 0.0);
                }
                self.decode_into(&mut buf[..n]);
                f(&buf[..n])
            }
            Err(_) => f(&self.to_vec()),
        })
    }
}

/// Owned components of rows of one width, in one storage type.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemVec {
    F32(Vec<f32>),
    F16(Vec<u16>),
    U8(Vec<u8>),
}

impl ElemVec {
    pub fn new(kind: ElementType) -> Self {
        match kind {
            ElementType::F32 => ElemVec::F32(Vec::new()),
            ElementType::F16 => ElemVec::F16(Vec::new()),
            ElementType::U8 => ElemVec::U8(Vec::new()),
        }
    }

    /// `values` encoded as `kind`.
    pub fn from_f32(kind: ElementType, values: &[f32]) -> Self {
        let mut v = ElemVec::new(kind);
        v.extend(values);
        v
    }

    pub fn kind(&self) -> ElementType {
        match self {
            ElemVec::F32(_) => ElementType::F32,
            ElemVec::F16(_) => ElementType::F16,
            ElemVec::U8(_) => ElementType::U8,
        }
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.as_elems().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_elems(&self) -> Elems<'_> {
        match self {
            ElemVec::F32(v) => Elems::F32(v),
            ElemVec::F16(v) => Elems::F16(v),
            ElemVec::U8(v) => Elems::U8(v),
        }
    }

    /// Appends `values`, encoded.
    pub fn extend(&mut self, values: &[f32]) {
        match self {
            ElemVec::F32(v) => v.extend_from_slice(values),
            ElemVec::F16(v) => v.extend(values.iter().map(|&x| f32_to_f16(x))),
            ElemVec::U8(v) => v.extend(values.iter().map(|&x| x as u8)),
        }
    }

    /// Appends the stored components of `e`: copied as they are when of this type, encoded
    /// from float32 otherwise.
    pub fn append(&mut self, e: Elems<'_>) {
        match (self, e.stored()) {
            (ElemVec::F32(v), Elems::F32(s)) => v.extend_from_slice(s),
            (ElemVec::F16(v), Elems::F16(s)) => v.extend_from_slice(s),
            (ElemVec::U8(v), Elems::U8(s)) => v.extend_from_slice(s),
            (this, other) => other.with_f32(|x| this.extend(x)),
        }
    }

    /// Overwrites components `start..start + values.len()` (in range), encoded.
    pub fn write(&mut self, start: usize, values: &[f32]) {
        let end = start + values.len();
        match self {
            ElemVec::F32(v) => v[start..end].copy_from_slice(values),
            ElemVec::F16(v) => v[start..end].iter_mut().zip(values).for_each(|(o, &x)| *o = f32_to_f16(x)),
            ElemVec::U8(v) => v[start..end].iter_mut().zip(values).for_each(|(o, &x)| *o = x as u8),
        }
    }

    /// Sets components `start..start + len` (in range) to zero.
    pub fn zero(&mut self, start: usize, len: usize) {
        match self {
            ElemVec::F32(v) => v[start..start + len].fill(0.0),
            ElemVec::F16(v) => v[start..start + len].fill(0),
            ElemVec::U8(v) => v[start..start + len].fill(0),
        }
    }

    /// Grows or shrinks to `len` components, new ones zero.
    pub fn resize(&mut self, len: usize) {
        match self {
            ElemVec::F32(v) => v.resize(len, 0.0),
            ElemVec::F16(v) => v.resize(len, 0),
            ElemVec::U8(v) => v.resize(len, 0),
        }
    }

    /// Gives back reserved space beyond the stored components.
    /// Give back the room reserved beyond the components held, by moving them to an
    /// allocation of their exact size: an allocator may keep a block shrunk in place at its
    /// old size (mimalloc does when at least half of it stays in use), and for a column grown
    /// by doubling that is up to half its memory.
    pub fn shrink_to_fit(&mut self) {
        fn exact<T: Copy>(v: &mut Vec<T>) {
            if v.capacity() > v.len() {
                let mut fresh = Vec::with_capacity(v.len());
                fresh.extend_from_slice(v);
                *v = fresh;
            }
        }
        match self {
            ElemVec::F32(v) => exact(v),
            ElemVec::F16(v) => exact(v),
            ElemVec::U8(v) => exact(v),
        }
    }

    /// Heap bytes reserved.
    pub fn capacity_bytes(&self) -> usize {
        match self {
            ElemVec::F32(v) => v.capacity() * 4,
            ElemVec::F16(v) => v.capacity() * 2,
            ElemVec::U8(v) => v.capacity(),
        }
    }

    /// Bytes the stored components take.
    pub fn byte_len(&self) -> usize {
        self.as_elems().byte_len()
    }
}

/// A row as a column of `kind` under `distance` stores it: Cosine `uint8` rows through
/// [`cosine_bytes`], every other row as given (the column's encoding does the rest).
pub fn row_to_store(kind: ElementType, distance: qd_core::Distance, row: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    match (kind, distance) {
        (ElementType::U8, qd_core::Distance::Cosine) => cosine_bytes(row),
        _ => std::borrow::Cow::Borrowed(row),
    }
}

/// A Cosine `uint8` row as the whole numbers to store: rows are whole numbers in 0..=255
/// already, except those written before such columns held bytes (unit-length float32, cast
/// and then normalised), which are scaled so that their largest component is 255 and rounded:
/// the same direction up to rounding, so the same Cosine scores up to rounding.
pub fn cosine_bytes(row: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if row.iter().all(|&x| (0.0..=255.0).contains(&x) && x.fract() == 0.0) {
        return std::borrow::Cow::Borrowed(row);
    }
    let top = row.iter().fold(0.0f32, |m, &x| if x.is_finite() { m.max(x) } else { m });
    let scale = if top > 0.0 { 255.0 / top } else { 0.0 };
    std::borrow::Cow::Owned(row.iter().map(|&x| (x * scale).round().clamp(0.0, 255.0)).collect())
}

/// Half-precision bits of `x` rounded as the collection rounds (`qd_core::config::half_precision`:
/// to nearest, ties to even, saturating at ±65504), which leaves values it already rounded as
/// they are.
pub fn f32_to_f16(x: f32) -> u16 {
    let x = qd_core::config::half_precision(x);
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let a = x.abs();
    if a.is_nan() {
        return sign | 0x7e00;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 6.103_515_6e-5 {
        // Subnormal half: a multiple of 2^-24 below 2^-14.
        return sign | ((a * 16_777_216.0) as u16);
    }
    let exp = ((a.to_bits() >> 23) as i32) - 127 + 15;
    let man = (a.to_bits() >> 13) & 0x3ff;
    sign | ((exp as u16) << 10) | man as u16
}

/// Decodes half-precision bits into `out` (the shorter length): with the CPU's conversion
/// instruction where it has one (x86 F16C, 8 values per instruction), else [`f16_to_f32`].
/// Both give the exact value of every finite half.
fn decode_f16(src: &[u16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU features the function needs were detected just above.
            unsafe { decode_f16_f16c(src, out) };
            return;
        }
    }
    out.iter_mut().zip(src).for_each(|(o, &h)| *o = f16_to_f32(h));
}

/// Widens bytes into `out` (the shorter length), 8 per instruction with AVX2.
fn decode_u8(src: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU feature the function needs was detected just above.
            unsafe { decode_u8_avx2(src, out) };
            return;
        }
    }
    out.iter_mut().zip(src).for_each(|(o, &b)| *o = b as f32);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_u8_avx2(src: &[u8], out: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm256_cvtepi32_ps, _mm256_cvtepu8_epi32, _mm256_storeu_ps, _mm_loadl_epi64};
    let n = src.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` keeps the 8-byte load and the 32-byte store inside both slices;
        // both intrinsics accept unaligned addresses.
        unsafe {
            let b = _mm_loadl_epi64(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)));
        }
        i += 8;
    }
    for j in i..n {
        out[j] = src[j] as f32;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn decode_f16_f16c(src: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};
    let n = src.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` keeps the 16-byte load and the 32-byte store inside both slices;
        // both intrinsics accept unaligned addresses.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
        i += 8;
    }
    for j in i..n {
        out[j] = f16_to_f32(src[j]);
    }
}

/// The float32 value of half-precision bits `h` (exact; infinities and NaN map to large finite
/// values, which stored vectors never hold). Branch-free, so decoding a row vectorises: the
/// exponent and mantissa are moved into float32 position and scaled by 2^112, which re-biases
/// normal numbers and turns subnormal ones into their value.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let magnitude = f32::from_bits(((h & 0x7fff) as u32) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(magnitude.to_bits() | (((h & 0x8000) as u32) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qd_core::Distance;

    #[test]
    fn every_finite_half_round_trips() {
        for h in 0..=u16::MAX {
            if h & 0x7c00 == 0x7c00 {
                continue; // infinities and NaN
            }
            let x = f16_to_f32(h);
            assert_eq!(qd_core::config::half_precision(x), x, "{h:#06x} decodes to a half value");
            let back = f32_to_f16(x);
            // Both zeros decode to a zero of their sign.
            assert_eq!(back, h, "{h:#06x} -> {x} -> {back:#06x}");
        }
    }

    #[test]
    fn hardware_and_software_decoding_agree() {
        let halves: Vec<u16> = (0..=u16::MAX).filter(|h| h & 0x7c00 != 0x7c00).collect();
        let mut fast = vec![0.0f32; halves.len()];
        decode_f16(&halves, &mut fast);
        let slow: Vec<f32> = halves.iter().map(|&h| f16_to_f32(h)).collect();
        assert!(fast.iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits()));
        let bytes: Vec<u8> = (0..=255u8).chain(0..=254).collect();
        let mut fast = vec![0.0f32; bytes.len()];
        decode_u8(&bytes, &mut fast);
        assert!(fast.iter().zip(&bytes).all(|(&a, &b)| a == b as f32));
    }

    #[test]
    fn rounded_values_are_stored_exactly() {
        let mut values: Vec<f32> = (0..2000).map(|i| ((i as f32) * 0.37).sin() * 300.0).collect();
        values.extend([0.0, -0.0, 65504.0, -65504.0, 6.0e-8, 1e-6, 0.1]);
        for x in values.iter_mut() {
            *x = qd_core::config::half_precision(*x);
        }
        let stored = ElemVec::from_f32(ElementType::F16, &values);
        assert_eq!(stored.as_elems().to_vec(), values);
        let bytes: Vec<f32> = (0..=255).map(|b| b as f32).collect();
        let stored = ElemVec::from_f32(ElementType::U8, &bytes);
        assert_eq!(stored.as_elems().to_vec(), bytes);
        assert_eq!(stored.byte_len(), 256);
        // Values from before the collection rounded (older points) get the type's values.
        let raw = [0.1f32, -1.0e-7, 70000.0, 1.000_3];
        let stored = ElemVec::from_f32(ElementType::F16, &raw);
        let want: Vec<f32> = raw.iter().map(|&x| qd_core::config::half_precision(x)).collect();
        assert_eq!(stored.as_elems().to_vec(), want);
    }

    #[test]
    fn with_f32_decodes_and_nests() {
        let a = ElemVec::from_f32(ElementType::F16, &[1.0, 2.0, 3.0]);
        let b = ElemVec::from_f32(ElementType::U8, &[4.0, 5.0]);
        let sum = a.as_elems().with_f32(|x| {
            let inner = b.as_elems().with_f32(|y| y.iter().sum::<f32>());
            x.iter().sum::<f32>() + inner
        });
        assert_eq!(sum, 15.0);
        let mut v = ElemVec::from_f32(ElementType::U8, &[1.0, 2.0, 3.0]);
        v.write(1, &[9.0, 8.0]);
        assert_eq!(v.as_elems().to_vec(), vec![1.0, 9.0, 8.0]);
        assert_eq!(v.as_elems().slice(1, 3).to_vec(), vec![9.0, 8.0]);
        assert_eq!(v.as_elems().get(2, 4), None);
    }

    #[test]
    fn element_type_follows_datatype_and_metric() {
        use qd_core::config::Datatype;
        assert_eq!(ElementType::for_datatype(None), ElementType::F32);
        assert_eq!(ElementType::for_datatype(Some(Datatype::Float32)), ElementType::F32);
        assert_eq!(ElementType::for_datatype(Some(Datatype::Float16)), ElementType::F16);
        assert_eq!(ElementType::for_datatype(Some(Datatype::Uint8)), ElementType::U8);
        let codes: Vec<u8> = [ElementType::F32, ElementType::F16, ElementType::U8].map(ElementType::code).to_vec();
        assert_eq!(codes, vec![0, 1, 2]);
    }

    #[test]
    fn cosine_bytes_read_as_the_unit_vectors_normalisation_gives() {
        let rows = [[3.0f32, 0.0, 4.0], [0.0, 0.0, 0.0], [255.0, 1.0, 17.0]];
        let flat: Vec<f32> = rows.concat();
        let stored = ElemVec::from_f32(ElementType::U8, &flat);
        let unit = match stored.as_elems() {
            Elems::U8(b) => Elems::U8Unit(b, 3),
            other => panic!("bytes expected, got {other:?}"),
        };
        let mut want = flat.clone();
        want.chunks_mut(3).for_each(|r| Distance::Cosine.preprocess(r));
        assert_eq!(unit.to_vec(), want);
        assert_eq!(unit.slice(3, 9).to_vec(), want[3..]);
        assert_eq!(unit.with_f32(|v| v.to_vec()), want);
        // What a read returns: the whole numbers.
        assert_eq!(unit.stored().to_vec(), flat);
        assert_eq!(unit.to_owned_elems(), stored);
    }

    #[test]
    fn cosine_bytes_keep_whole_numbers_and_scale_unit_rows_back() {
        let whole = [0.0f32, 3.0, 255.0];
        assert!(matches!(cosine_bytes(&whole), std::borrow::Cow::Borrowed(_)));
        // A row written before bytes storage: [3, 0, 4] normalised.
        let old = [0.6f32, 0.0, 0.8];
        assert_eq!(cosine_bytes(&old).to_vec(), vec![191.0, 0.0, 255.0]);
        let mut back = cosine_bytes(&old).to_vec();
        Distance::Cosine.preprocess(&mut back);
        assert!(back.iter().zip(&old).all(|(a, b)| (a - b).abs() < 3e-3));
        assert_eq!(cosine_bytes(&[0.5f32, 0.0]).to_vec(), vec![255.0, 0.0]);
        assert_eq!(cosine_bytes(&[-0.5f32, 0.0]).to_vec(), vec![0.0, 0.0]);
    }
}
