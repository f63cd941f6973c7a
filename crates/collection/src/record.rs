//! The persisted form of a point (one value per point in the shard's `points` table).
//!
//! ```text
//! u8  format (=2; format 1 records, dense only, still decode)
//! u64 version          operation number that last wrote the point (LE)
//! u16 vector count
//!   u16 name length, name bytes (UTF-8), u8 kind, then by kind:
//!     0 dense   u32 dim, dim x f32
//!     1 sparse  u32 n, n x u32 index (ascending), n x f32 value
//!     2 multi   u32 dim, u32 rows, rows x dim x f32
//! rest: payload as JSON bytes (empty = no payload)
//! ```
//! (Format 1 had no kind byte: every vector was `u32 dim, dim x f32`.) All numbers are
//! little-endian. A fixed binary layout keeps vectors cheap to decode on load; payload stays
//! JSON so that any value survives exactly.

use qd_core::vectors::{MultiDenseVector, NamedVectors, SparseVector, Vector};
use qd_core::Payload;

use crate::error::{CollectionError, Result};

const FORMAT: u8 = 2;
const FORMAT_DENSE_ONLY: u8 = 1;
const KIND_DENSE: u8 = 0;
const KIND_SPARSE: u8 = 1;
const KIND_MULTI: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    pub version: u64,
    pub vectors: NamedVectors,
    pub payload: Option<Payload>,
}

fn put_f32s(out: &mut Vec<u8>, xs: &[f32]) {
    for x in xs {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

impl PointRecord {
    pub fn encode(&self) -> Vec<u8> {
        let vec_bytes: usize = self
            .vectors
            .iter()
            .map(|(n, v)| {
                16 + n.len()
                    + match v {
                        Vector::Dense(d) => d.len() * 4,
                        Vector::Sparse(s) => s.len() * 8,
                        Vector::Multi(m) => m.flat().len() * 4,
                    }
            })
            .sum();
        let mut out = Vec::with_capacity(11 + vec_bytes + 64);
        out.push(FORMAT);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.vectors.len() as u16).to_le_bytes());
        for (name, v) in &self.vectors {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            match v {
                Vector::Dense(d) => {
                    out.push(KIND_DENSE);
                    out.extend_from_slice(&(d.len() as u32).to_le_bytes());
                    put_f32s(&mut out, d);
                }
                Vector::Sparse(s) => {
                    out.push(KIND_SPARSE);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    for i in &s.indices {
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                    put_f32s(&mut out, &s.values);
                }
                Vector::Multi(m) => {
                    out.push(KIND_MULTI);
                    out.extend_from_slice(&(m.dim() as u32).to_le_bytes());
                    out.extend_from_slice(&(m.count() as u32).to_le_bytes());
                    put_f32s(&mut out, m.flat());
                }
            }
        }
        if let Some(p) = self.payload.as_ref().filter(|p| !p.is_empty()) {
            // Serialising a Map<String, Value> cannot fail.
            if let Ok(json) = serde_json::to_vec(p) {
                out.extend_from_slice(&json);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_parts(bytes, true)
    }

    /// Version and payload only: vectors are stepped over, not decoded (what reading a payload
    /// kept on disk needs).
    pub fn decode_payload(bytes: &[u8]) -> Result<Self> {
        Self::decode_parts(bytes, false)
    }

    fn decode_parts(bytes: &[u8], with_vectors: bool) -> Result<Self> {
        let mut r = Reader { b: bytes, pos: 0 };
        let format = r.take(1)?[0];
        if format != FORMAT && format != FORMAT_DENSE_ONLY {
            return Err(CollectionError::Corrupt(format!("point record format {format} is unknown")));
        }
        let version = u64::from_le_bytes(r.array()?);
        let n = u16::from_le_bytes(r.array()?);
        let mut vectors = NamedVectors::new();
        for _ in 0..n {
            let len = u16::from_le_bytes(r.array()?) as usize;
            let name = r.take(len)?;
            let kind = if format == FORMAT_DENSE_ONLY { KIND_DENSE } else { r.take(1)?[0] };
            if !with_vectors {
                let floats = match kind {
                    KIND_DENSE => r.u32()? as usize,
                    KIND_SPARSE => {
                        (r.u32()? as usize).checked_mul(2).ok_or_else(|| corrupt("sparse vector too large"))?
                    }
                    KIND_MULTI => {
                        let dim = r.u32()? as usize;
                        dim.checked_mul(r.u32()? as usize).ok_or_else(|| corrupt("multivector too large"))?
                    }
                    other => return Err(corrupt(&format!("vector kind {other} is unknown"))),
                };
                r.take(floats.checked_mul(4).ok_or_else(|| corrupt("vector too large"))?)?;
                continue;
            }
            let name = std::str::from_utf8(name)
                .map_err(|_| CollectionError::Corrupt("vector name is not UTF-8".into()))?
                .to_string();
            let v = match kind {
                KIND_DENSE => {
                    let dim = r.u32()? as usize;
                    Vector::Dense(r.f32s(dim)?)
                }
                KIND_SPARSE => {
                    let n = r.u32()? as usize;
                    let raw = r.take(n.checked_mul(4).ok_or_else(|| corrupt("sparse vector too large"))?)?;
                    let indices: Vec<u32> =
                        raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                    let values = r.f32s(n)?;
                    if !indices.windows(2).all(|w| w[0] < w[1]) {
                        return Err(corrupt("sparse vector indices are not ascending"));
                    }
                    Vector::Sparse(SparseVector { indices, values })
                }
                KIND_MULTI => {
                    let dim = r.u32()? as usize;
                    let rows = r.u32()? as usize;
                    let data = r.f32s(dim.checked_mul(rows).ok_or_else(|| corrupt("multivector too large"))?)?;
                    Vector::Multi(MultiDenseVector::from_flat(dim, data).ok_or_else(|| corrupt("empty multivector"))?)
                }
                other => return Err(corrupt(&format!("vector kind {other} is unknown"))),
            };
            vectors.insert(name, v);
        }
        let rest = &bytes[r.pos..];
        let payload = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice::<Payload>(rest)
                    .map_err(|e| CollectionError::Corrupt(format!("point payload: {e}")))?,
            )
        };
        Ok(PointRecord { version, vectors, payload })
    }
}

fn corrupt(what: &str) -> CollectionError {
    CollectionError::Corrupt(format!("point record: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            CollectionError::Corrupt(format!("point record truncated at byte {} (needed {n} more)", self.pos))
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let raw = self.take(n.checked_mul(4).ok_or_else(|| corrupt("vector too large"))?)?;
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roundtrip_and_truncation() {
        let mut vectors = NamedVectors::new();
        vectors.insert(String::new(), Vector::Dense(vec![1.0, -2.5, 3.25]));
        vectors.insert("img".into(), Vector::Dense(vec![0.5; 7]));
        vectors.insert("text".into(), Vector::Sparse(SparseVector { indices: vec![2, 9], values: vec![0.5, -1.0] }));
        let multi = MultiDenseVector::new(vec![vec![1.0, 2.0], vec![3.0, 4.0]]).expect("multi");
        vectors.insert("colbert".into(), Vector::Multi(multi));
        let payload = json!({"a": 1, "b": [1, 2, {"c": "d"}], "z": null});
        let rec = PointRecord { version: 42, vectors, payload: payload.as_object().cloned() };
        let bytes = rec.encode();
        assert_eq!(PointRecord::decode(&bytes).expect("decode"), rec);
        let payload_only = PointRecord::decode_payload(&bytes).expect("decode payload");
        assert_eq!((payload_only.version, &payload_only.payload), (42, &rec.payload));
        assert!(payload_only.vectors.is_empty());
        for cut in [0, 1, 5, 12, 20] {
            assert!(PointRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let empty = PointRecord { version: 1, vectors: NamedVectors::new(), payload: None };
        assert_eq!(PointRecord::decode(&empty.encode()).expect("decode"), empty);
    }

    #[test]
    fn format_1_records_still_decode() {
        // format 1, version 7, one vector "" of dim 2, payload {"a":1}
        let mut b = vec![1u8];
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1.5f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        b.extend_from_slice(br#"{"a":1}"#);
        let r = PointRecord::decode(&b).expect("decode");
        assert_eq!(r.version, 7);
        assert_eq!(r.vectors.get(""), Some(&Vector::Dense(vec![1.5, -2.0])));
        assert_eq!(r.payload, json!({"a": 1}).as_object().cloned());
        assert_eq!(PointRecord::decode_payload(&b).expect("decode payload").payload, r.payload);
    }
}
