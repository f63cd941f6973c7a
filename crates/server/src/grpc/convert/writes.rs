//! Write requests as typed [`UpdateOp`]s, one function per operation kind; `update_batch`
//! reuses them for each of its operations.

// Deprecated protobuf fields (`on_disk`, `always_ram`, old operation variants) are what older
// clients still send: they are read here on purpose.
#![allow(deprecated)]

use std::collections::HashMap;

use qd_collection::operations::{PointInsert, PointSelection, ShardKey, UpdateCondition, UpdateMode, UpdateOp};
use qd_core::json_path::JsonPath;
use qdrant_client::qdrant as pb;

use super::filter::filter_opt;
use super::values::{map_of, point_id, point_ids, shard_keys};
use super::vectors::named_for_write;
use super::{invalid, Result};

/// An operation with the shard keys it targets.
pub type Targeted = (UpdateOp, Option<Vec<ShardKey>>);

pub fn selection(s: Option<pb::PointsSelector>, what: &str) -> Result<PointSelection> {
    use pb::points_selector::PointsSelectorOneOf as S;
    match s.and_then(|s| s.points_selector_one_of) {
        Some(S::Points(list)) => Ok(PointSelection::Ids(point_ids(list.ids, what)?)),
        Some(S::Filter(f)) => Ok(PointSelection::Filter(filter_opt(Some(f), what)?.unwrap_or_default())),
        None => Err(invalid(format!("{what}: either point ids or a filter is required"))),
    }
}

/// `update_mode` and `update_filter` of a write.
fn condition(update_filter: Option<pb::Filter>, update_mode: Option<i32>) -> Result<UpdateCondition> {
    let mode = match update_mode.map(pb::UpdateMode::try_from) {
        None | Some(Ok(pb::UpdateMode::Upsert)) => UpdateMode::Upsert,
        Some(Ok(pb::UpdateMode::InsertOnly)) => UpdateMode::InsertOnly,
        Some(Ok(pb::UpdateMode::UpdateOnly)) => UpdateMode::UpdateOnly,
        Some(Err(_)) => return Err(invalid("update_mode: unknown value")),
    };
    Ok(UpdateCondition { mode, filter: filter_opt(update_filter, "update_filter")? })
}

fn payload(fields: HashMap<String, pb::Value>) -> Option<qd_core::Payload> {
    (!fields.is_empty()).then(|| map_of(fields))
}

fn key_path(key: &str, what: &str) -> Result<JsonPath> {
    key.parse().map_err(|e| invalid(format!("{what}: key: {e}")))
}

pub fn upsert(points: Vec<pb::PointStruct>, filter: Option<pb::Filter>, mode: Option<i32>) -> Result<UpdateOp> {
    let condition = condition(filter, mode)?;
    let points = points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let what = format!("points[{i}]");
            Ok(PointInsert {
                id: point_id(p.id, &format!("{what}.id"))?,
                vectors: named_for_write(p.vectors, &format!("{what}.vectors"))?,
                payload: payload(p.payload),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(UpdateOp::with_condition(UpdateOp::Upsert(points), condition))
}

pub fn set_payload(
    fields: HashMap<String, pb::Value>,
    s: Option<pb::PointsSelector>,
    key: Option<String>,
) -> Result<UpdateOp> {
    let selection = selection(s, "points_selector")?;
    let key = key.as_deref().map(|k| key_path(k, "set_payload")).transpose()?;
    Ok(UpdateOp::SetPayload { payload: map_of(fields), selection, key })
}

pub fn overwrite_payload(
    fields: HashMap<String, pb::Value>,
    s: Option<pb::PointsSelector>,
    key: Option<String>,
) -> Result<UpdateOp> {
    if key.is_some() {
        return Err(invalid("`key` is not allowed when overwriting a payload"));
    }
    Ok(UpdateOp::OverwritePayload { payload: map_of(fields), selection: selection(s, "points_selector")? })
}

pub fn delete_payload(keys: Vec<String>, s: Option<pb::PointsSelector>) -> Result<UpdateOp> {
    let keys = keys.iter().map(|k| key_path(k, "delete_payload")).collect::<Result<Vec<_>>>()?;
    Ok(UpdateOp::DeletePayload { keys, selection: selection(s, "points_selector")? })
}

pub fn update_vectors(points: Vec<pb::PointVectors>, filter: Option<pb::Filter>) -> Result<UpdateOp> {
    let condition = condition(filter, None)?;
    let items = points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let what = format!("points[{i}]");
            Ok((point_id(p.id, &format!("{what}.id"))?, named_for_write(p.vectors, &format!("{what}.vectors"))?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(UpdateOp::with_condition(UpdateOp::UpdateVectors(items), condition))
}

pub fn delete_vectors(s: Option<pb::PointsSelector>, names: Option<pb::VectorsSelector>) -> Result<UpdateOp> {
    let names = names.map(|n| n.names).unwrap_or_default();
    if names.is_empty() {
        return Err(invalid("vectors: name at least one vector to delete"));
    }
    Ok(UpdateOp::DeleteVectors { selection: selection(s, "points_selector")?, names })
}

/// One operation of `UpdateBatch`.
pub fn batch_operation(op: pb::PointsUpdateOperation) -> Result<Targeted> {
    use pb::points_update_operation::Operation as O;
    Ok(match op.operation {
        Some(O::Upsert(u)) => (upsert(u.points, u.update_filter, u.update_mode)?, shard_keys(u.shard_key_selector)?),
        Some(O::DeletePoints(d)) => {
            (UpdateOp::Delete(selection(d.points, "points")?), shard_keys(d.shard_key_selector)?)
        }
        Some(O::DeleteDeprecated(s)) => (UpdateOp::Delete(selection(Some(s), "points")?), None),
        Some(O::SetPayload(p)) => {
            (set_payload(p.payload, p.points_selector, p.key)?, shard_keys(p.shard_key_selector)?)
        }
        Some(O::OverwritePayload(p)) => {
            (overwrite_payload(p.payload, p.points_selector, p.key)?, shard_keys(p.shard_key_selector)?)
        }
        Some(O::DeletePayload(p)) => (delete_payload(p.keys, p.points_selector)?, shard_keys(p.shard_key_selector)?),
        Some(O::ClearPayload(c)) => {
            (UpdateOp::ClearPayload(selection(c.points, "points")?), shard_keys(c.shard_key_selector)?)
        }
        Some(O::ClearPayloadDeprecated(s)) => (UpdateOp::ClearPayload(selection(Some(s), "points")?), None),
        Some(O::UpdateVectors(u)) => (update_vectors(u.points, u.update_filter)?, shard_keys(u.shard_key_selector)?),
        Some(O::DeleteVectors(d)) => (delete_vectors(d.points_selector, d.vectors)?, shard_keys(d.shard_key_selector)?),
        None => return Err(invalid("empty operation")),
    })
}

pub fn batch(ops: Vec<pb::PointsUpdateOperation>) -> Result<Vec<Targeted>> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| batch_operation(op).map_err(|e| e.prefixed(&format!("operations[{i}]"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_mode_and_filter_make_a_conditional_write() {
        let op = upsert(Vec::new(), None, Some(pb::UpdateMode::InsertOnly as i32)).expect("valid");
        assert!(matches!(op, UpdateOp::Conditional { condition, .. } if condition.mode == UpdateMode::InsertOnly));
        let op = upsert(Vec::new(), Some(pb::Filter::default()), None).expect("valid");
        assert!(matches!(op, UpdateOp::Conditional { condition, .. } if condition.filter.is_some()));
        assert!(matches!(upsert(Vec::new(), None, Some(pb::UpdateMode::Upsert as i32)), Ok(UpdateOp::Upsert(_))));
        assert!(upsert(Vec::new(), None, Some(99)).is_err());
    }

    #[test]
    fn a_selector_is_required() {
        assert!(selection(None, "points").is_err());
        let ids = pb::PointsSelector {
            points_selector_one_of: Some(pb::points_selector::PointsSelectorOneOf::Points(pb::PointsIdsList {
                ids: vec![pb::PointId::from(3u64)],
            })),
        };
        assert!(matches!(selection(Some(ids), "points"), Ok(PointSelection::Ids(v)) if v.len() == 1));
    }

    #[test]
    fn batch_errors_name_the_operation() {
        let ops = vec![pb::PointsUpdateOperation { operation: None }];
        let e = batch(ops).expect_err("refused");
        assert!(e.message.starts_with("operations[0]"), "{}", e.message);
    }
}
