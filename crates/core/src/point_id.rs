//! Point ids: unsigned 64-bit integers or UUIDs, exactly as Qdrant accepts them.
//!
//! Ordering puts every numeric id before every UUID; the key encoding preserves that order
//! byte-wise so that a sorted key-value scan yields points in id order.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A point id: `42` or `"550e8400-e29b-41d4-a716-446655440000"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Uuid(Uuid),
}

const TAG_NUM: u8 = 0;
const TAG_UUID: u8 = 1;

impl PointId {
    /// Order-preserving binary key: tag byte, then big-endian u64 or the 16 UUID bytes.
    pub fn to_key(&self) -> Vec<u8> {
        match self {
            PointId::Num(n) => {
                let mut k = Vec::with_capacity(9);
                k.push(TAG_NUM);
                k.extend_from_slice(&n.to_be_bytes());
                k
            }
            PointId::Uuid(u) => {
                let mut k = Vec::with_capacity(17);
                k.push(TAG_UUID);
                k.extend_from_slice(u.as_bytes());
                k
            }
        }
    }

    /// Inverse of [`PointId::to_key`]; `None` for bytes that are not a valid key.
    pub fn from_key(key: &[u8]) -> Option<PointId> {
        match (key.first(), key.len()) {
            (Some(&TAG_NUM), 9) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&key[1..9]);
                Some(PointId::Num(u64::from_be_bytes(b)))
            }
            (Some(&TAG_UUID), 17) => Uuid::from_slice(&key[1..17]).ok().map(PointId::Uuid),
            _ => None,
        }
    }

    /// A stable 64-bit hash used for shard routing: must never change between versions,
    /// since it decides which shard holds a point on disk.
    pub fn stable_hash(&self) -> u64 {
        // FNV-1a over the key bytes: simple, stable, well spread for sequential ids.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_key() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> Self {
        PointId::Num(n)
    }
}

impl FromStr for PointId {
    type Err = String;
    /// Strings are UUIDs (any form `uuid` parses, written back hyphenated); plain digits are
    /// accepted too since path segments like `/points/42` arrive as strings.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<u64>() {
            return Ok(PointId::Num(n));
        }
        Uuid::parse_str(s)
            .map(PointId::Uuid)
            .map_err(|_| format!("Unable to parse point id {s:?}: expected an unsigned integer or a UUID"))
    }
}

impl Serialize for PointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PointId::Num(n) => s.serialize_u64(*n),
            PointId::Uuid(u) => s.serialize_str(&u.hyphenated().to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PointId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a point id: an unsigned integer or a UUID string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PointId, E> {
                Ok(PointId::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PointId, E> {
                u64::try_from(v)
                    .map(PointId::Num)
                    .map_err(|_| E::custom(format!("point id {v} is negative: ids are unsigned integers or UUIDs")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PointId, E> {
                Err(E::custom(format!("point id {v} is not an integer: ids are unsigned integers or UUIDs")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PointId, E> {
                Uuid::parse_str(v).map(PointId::Uuid).map_err(|_| {
                    E::custom(format!("point id {v:?} is not a valid UUID: ids are unsigned integers or UUIDs"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_roundtrip_and_order() {
        let ids = [
            PointId::Num(0),
            PointId::Num(1),
            PointId::Num(256),
            PointId::Num(u64::MAX),
            PointId::Uuid(Uuid::nil()),
            PointId::Uuid(Uuid::from_u128(5)),
        ];
        for w in ids.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].to_key() < w[1].to_key());
        }
        for id in ids {
            assert_eq!(PointId::from_key(&id.to_key()), Some(id));
        }
        assert_eq!(PointId::from_key(&[9, 9]), None);
    }

    #[test]
    fn json_forms() {
        let a: PointId = serde_json::from_str("7").expect("num");
        assert_eq!(a, PointId::Num(7));
        let u: PointId = serde_json::from_str("\"550e8400-e29b-41d4-a716-446655440000\"").expect("uuid");
        assert_eq!(serde_json::to_string(&u).expect("ser"), "\"550e8400-e29b-41d4-a716-446655440000\"");
        assert!(serde_json::from_str::<PointId>("-1").is_err());
        assert!(serde_json::from_str::<PointId>("1.5").is_err());
        assert!(serde_json::from_str::<PointId>("\"abc\"").is_err());
    }
}
