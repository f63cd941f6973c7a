//! Scalars shared by every message: JSON values and payloads, point ids, shard keys,
//! `with_payload` / `with_vectors` selectors, timestamps.

use std::collections::HashMap;

use qd_collection::operations::ShardKey;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::{Payload, PointId};
use qdrant_client::qdrant as pb;
use serde_json::{Map, Number, Value};

use super::{invalid, Result};

/// A protobuf `Value` as JSON; a missing kind is `null`.
pub fn json_of(v: pb::Value) -> Value {
    use pb::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::DoubleValue(d)) => Number::from_f64(d).map(Value::Number).unwrap_or(Value::Null),
        Some(Kind::IntegerValue(i)) => Value::from(i),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StructValue(s)) => Value::Object(map_of(s.fields)),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(json_of).collect()),
    }
}

/// Protobuf struct fields as a JSON object (keys sorted, as protobuf maps have no order).
pub fn map_of(fields: HashMap<String, pb::Value>) -> Map<String, Value> {
    let mut entries: Vec<_> = fields.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (k, json_of(v))).collect()
}

/// JSON as a protobuf `Value`: integers that fit i64 stay integers, others become doubles.
pub fn value_of(v: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(pb::ListValue { values: items.iter().map(value_of).collect() }),
        Value::Object(m) => Kind::StructValue(pb::Struct { fields: fields_of(m) }),
    };
    pb::Value { kind: Some(kind) }
}

/// A JSON object as protobuf map fields (a payload, a struct value).
pub fn fields_of(m: &Map<String, Value>) -> HashMap<String, pb::Value> {
    m.iter().map(|(k, v)| (k.clone(), value_of(v))).collect()
}

/// A payload as protobuf fields; no payload is an empty map, as Qdrant sends it.
pub fn payload_out(p: Option<Payload>) -> HashMap<String, pb::Value> {
    p.as_ref().map(fields_of).unwrap_or_default()
}

pub fn point_id(id: Option<pb::PointId>, what: &str) -> Result<PointId> {
    use pb::point_id::PointIdOptions;
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(PointId::Num(n)),
        Some(PointIdOptions::Uuid(s)) => s
            .parse::<uuid::Uuid>()
            .map(PointId::Uuid)
            .map_err(|_| invalid(format!("{what}: {s:?} is not a valid UUID"))),
        None => Err(invalid(format!("{what}: missing point id"))),
    }
}

pub fn point_ids(ids: Vec<pb::PointId>, what: &str) -> Result<Vec<PointId>> {
    ids.into_iter().enumerate().map(|(i, id)| point_id(Some(id), &format!("{what}[{i}]"))).collect()
}

pub fn point_id_out(id: PointId) -> pb::PointId {
    use pb::point_id::PointIdOptions;
    let options = match id {
        PointId::Num(n) => PointIdOptions::Num(n),
        PointId::Uuid(u) => PointIdOptions::Uuid(u.to_string()),
    };
    pb::PointId { point_id_options: Some(options) }
}

pub fn shard_key(k: pb::ShardKey, what: &str) -> Result<ShardKey> {
    use pb::shard_key::Key;
    match k.key {
        Some(Key::Keyword(s)) => Ok(ShardKey::Keyword(s)),
        Some(Key::Number(n)) => Ok(ShardKey::Number(n)),
        None => Err(invalid(format!("{what}: empty shard key"))),
    }
}

/// A shard key selector: the keys to read or write (the fallback key is not supported yet).
pub fn shard_keys(s: Option<pb::ShardKeySelector>) -> Result<Option<Vec<ShardKey>>> {
    let Some(s) = s else { return Ok(None) };
    if s.fallback.is_some() {
        return Err(invalid("shard_key_selector.fallback is not supported"));
    }
    let keys = s.shard_keys.into_iter().map(|k| shard_key(k, "shard_key_selector")).collect::<Result<Vec<_>>>()?;
    Ok(Some(keys))
}

pub fn shard_key_out(k: &Value) -> Option<pb::ShardKey> {
    use pb::shard_key::Key;
    let key = match k {
        Value::String(s) => Key::Keyword(s.clone()),
        Value::Number(n) => Key::Number(n.as_u64()?),
        _ => return None,
    };
    Some(pb::ShardKey { key: Some(key) })
}

/// `with_payload`; `default` applies when the selector is absent.
pub fn payload_selector(s: Option<pb::WithPayloadSelector>, default: PayloadSelector) -> PayloadSelector {
    use pb::with_payload_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options) {
        None => default,
        Some(SelectorOptions::Enable(true)) => PayloadSelector::All,
        Some(SelectorOptions::Enable(false)) => PayloadSelector::None,
        Some(SelectorOptions::Include(i)) => PayloadSelector::Include(i.fields),
        Some(SelectorOptions::Exclude(e)) => PayloadSelector::Exclude(e.fields),
    }
}

/// `with_vectors`; absent means none, as in Qdrant.
pub fn vector_selector(s: Option<pb::WithVectorsSelector>) -> VectorSelector {
    use pb::with_vectors_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options) {
        None | Some(SelectorOptions::Enable(false)) => VectorSelector::None,
        Some(SelectorOptions::Enable(true)) => VectorSelector::All,
        Some(SelectorOptions::Include(v)) => VectorSelector::Names(v.names),
    }
}

/// A protobuf timestamp as UTC time.
pub fn timestamp(t: prost_types::Timestamp, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(t.nanos).map_err(|_| invalid(format!("{what}: negative nanos")))?;
    chrono::DateTime::from_timestamp(t.seconds, nanos).ok_or_else(|| invalid(format!("{what}: timestamp out of range")))
}

/// A u64 count from a request as usize (saturating on 32-bit targets).
pub fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_protobuf_values() {
        let v = json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -7}, "big": u64::MAX});
        let back = Value::Object(map_of(fields_of(v.as_object().expect("object"))));
        assert_eq!(back["a"], json!(1));
        assert_eq!(back["b"], json!([true, null, "x", 2.5]));
        assert_eq!(back["c"], json!({"d": -7}));
        assert_eq!(back["big"], json!(u64::MAX as f64));
    }

    #[test]
    fn point_ids_parse_and_reject_bad_uuids() {
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let id = point_id(Some(point_id_out(PointId::Uuid(uuid.parse().expect("uuid")))), "id").expect("ok");
        assert_eq!(id.to_string(), uuid);
        let bad = pb::PointId { point_id_options: Some(pb::point_id::PointIdOptions::Uuid("nope".into())) };
        assert!(point_id(Some(bad), "id").is_err());
        assert!(point_id(None, "id").is_err());
    }

    #[test]
    fn selectors_default_as_qdrant() {
        assert_eq!(payload_selector(None, PayloadSelector::All), PayloadSelector::All);
        assert_eq!(vector_selector(None), VectorSelector::None);
        let inc = pb::WithPayloadSelector {
            selector_options: Some(pb::with_payload_selector::SelectorOptions::Include(pb::PayloadIncludeSelector {
                fields: vec!["a".into()],
            })),
        };
        assert_eq!(payload_selector(Some(inc), PayloadSelector::None), PayloadSelector::Include(vec!["a".into()]));
    }
}
