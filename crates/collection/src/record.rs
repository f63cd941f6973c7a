//! The persisted form of a point (one value per point in the shard's `points` table).
//!
//! ```text
//! u8  format (=1)
//! u64 version          operation number that last wrote the point (LE)
//! u16 vector count
//!   u16 name length, name bytes (UTF-8), u32 dim, dim x f32 (LE)
//! rest: payload as JSON bytes (empty = no payload)
//! ```
//! A fixed binary layout keeps vectors cheap to decode on load; payload stays JSON so that any
//! value survives exactly.

use qd_core::vectors::NamedVectors;
use qd_core::Payload;

use crate::error::{CollectionError, Result};

const FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    pub version: u64,
    pub vectors: NamedVectors,
    pub payload: Option<Payload>,
}

impl PointRecord {
    pub fn encode(&self) -> Vec<u8> {
        let vec_bytes: usize = self.vectors.iter().map(|(n, v)| 6 + n.len() + v.len() * 4).sum();
        let mut out = Vec::with_capacity(11 + vec_bytes + 64);
        out.push(FORMAT);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.vectors.len() as u16).to_le_bytes());
        for (name, v) in &self.vectors {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
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
        let mut r = Reader { b: bytes, pos: 0 };
        let format = r.take(1)?[0];
        if format != FORMAT {
            return Err(CollectionError::Corrupt(format!("point record format {format} is unknown")));
        }
        let version = u64::from_le_bytes(r.array()?);
        let n = u16::from_le_bytes(r.array()?);
        let mut vectors = NamedVectors::new();
        for _ in 0..n {
            let len = u16::from_le_bytes(r.array()?) as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| CollectionError::Corrupt("vector name is not UTF-8".into()))?
                .to_string();
            let dim = u32::from_le_bytes(r.array()?) as usize;
            let raw = r.take(dim.checked_mul(4).ok_or_else(|| CollectionError::Corrupt("vector too large".into()))?)?;
            let v = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
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
        vectors.insert(String::new(), vec![1.0, -2.5, 3.25]);
        vectors.insert("img".into(), vec![0.5; 7]);
        let payload = json!({"a": 1, "b": [1, 2, {"c": "d"}], "z": null});
        let rec = PointRecord { version: 42, vectors, payload: payload.as_object().cloned() };
        let bytes = rec.encode();
        assert_eq!(PointRecord::decode(&bytes).expect("decode"), rec);
        for cut in [0, 1, 5, 12, 20] {
            assert!(PointRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let empty = PointRecord { version: 1, vectors: NamedVectors::new(), payload: None };
        assert_eq!(PointRecord::decode(&empty.encode()).expect("decode"), empty);
    }
}
