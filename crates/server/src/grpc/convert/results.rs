//! Answers as protobuf messages: points, scored points, groups, update results.

use qd_collection::groups::PointGroup;
use qd_collection::operations::{Record, ScoredPoint, UpdateResult, UpdateStatus};
use qdrant_client::qdrant as pb;
use serde_json::Value;

use super::values::{payload_out, point_id_out, shard_key_out};
use super::vectors::vectors_out;

fn order_value_out(v: Option<&Value>) -> Option<pb::OrderValue> {
    use pb::order_value::Variant;
    let n = v?.as_number()?;
    let variant = match n.as_i64() {
        Some(i) => Variant::Int(i),
        None => Variant::Float(n.as_f64()?),
    };
    Some(pb::OrderValue { variant: Some(variant) })
}

pub fn record(r: Record) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(point_id_out(r.id)),
        payload: payload_out(r.payload),
        vectors: vectors_out(r.vector),
        shard_key: r.shard_key.as_ref().and_then(shard_key_out),
        order_value: order_value_out(r.order_value.as_ref()),
    }
}

pub fn records(rs: Vec<Record>) -> Vec<pb::RetrievedPoint> {
    rs.into_iter().map(record).collect()
}

pub fn scored(p: ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(point_id_out(p.id)),
        payload: payload_out(p.payload),
        score: p.score,
        version: p.version,
        vectors: vectors_out(p.vector),
        shard_key: p.shard_key.as_ref().and_then(shard_key_out),
        order_value: order_value_out(p.order_value.as_ref()),
    }
}

pub fn scored_list(ps: Vec<ScoredPoint>) -> Vec<pb::ScoredPoint> {
    ps.into_iter().map(scored).collect()
}

fn group_id(v: &Value) -> Option<pb::GroupId> {
    use pb::group_id::Kind;
    let kind = match v {
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Kind::UnsignedValue(u),
            (None, Some(i)) => Kind::IntegerValue(i),
            _ => return None,
        },
        _ => return None,
    };
    Some(pb::GroupId { kind: Some(kind) })
}

pub fn groups(gs: Vec<PointGroup>) -> pb::GroupsResult {
    pb::GroupsResult {
        groups: gs
            .into_iter()
            .map(|g| pb::PointGroup { id: group_id(&g.id), hits: scored_list(g.hits), lookup: g.lookup.map(record) })
            .collect(),
    }
}

pub fn update_result(r: UpdateResult) -> pb::UpdateResult {
    let status = match r.status {
        UpdateStatus::Acknowledged => pb::UpdateStatus::Acknowledged,
        UpdateStatus::Completed => pb::UpdateStatus::Completed,
    };
    pb::UpdateResult { operation_id: r.operation_id, status: status as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_ids_keep_their_kind() {
        assert!(matches!(group_id(&json!(5)).and_then(|g| g.kind), Some(pb::group_id::Kind::UnsignedValue(5))));
        assert!(matches!(group_id(&json!(-5)).and_then(|g| g.kind), Some(pb::group_id::Kind::IntegerValue(-5))));
        assert!(matches!(group_id(&json!("a")).and_then(|g| g.kind), Some(pb::group_id::Kind::StringValue(_))));
        assert!(group_id(&json!(true)).is_none());
    }

    #[test]
    fn order_values_are_ints_or_floats() {
        assert!(matches!(
            order_value_out(Some(&json!(3))).and_then(|o| o.variant),
            Some(pb::order_value::Variant::Int(3))
        ));
        assert!(matches!(
            order_value_out(Some(&json!(2.5))).and_then(|o| o.variant),
            Some(pb::order_value::Variant::Float(f)) if f == 2.5
        ));
    }
}
