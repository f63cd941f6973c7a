//! Typed operations and results of the collection layer: what the server parses requests
//! into, and what shards return. Update operations are already validated against the
//! collection config when they get here.

use qd_core::config::QuantizationSearchParams;
use std::collections::BTreeSet;

use qd_core::filter::{Condition, Filter};
use qd_core::json_path::JsonPath;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::vectors::{serialize_named, NamedVectors, Vector};
use qd_core::{Payload, PointId};
use qd_segment::hnsw::{MaxSimScorer, PairScore};
use qd_segment::VectorRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::shard_set::ShardKey;

/// A point to insert or replace (vectors validated and preprocessed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointInsert {
    pub id: PointId,
    pub vectors: NamedVectors,
    pub payload: Option<Payload>,
}

/// Which points an update touches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PointSelection {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// One write. A request's operation is applied atomically per shard: fully or not at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UpdateOp {
    Upsert(Vec<PointInsert>),
    Delete(PointSelection),
    /// Merge `payload` into the points' payloads (at `key` when given).
    SetPayload {
        payload: Payload,
        selection: PointSelection,
        key: Option<JsonPath>,
    },
    OverwritePayload {
        payload: Payload,
        selection: PointSelection,
    },
    DeletePayload {
        keys: Vec<JsonPath>,
        selection: PointSelection,
    },
    ClearPayload(PointSelection),
    /// Replace the given named vectors, keeping the point's others.
    UpdateVectors(Vec<(PointId, NamedVectors)>),
    DeleteVectors {
        selection: PointSelection,
        names: Vec<String>,
    },
    /// An upsert or vector update applied only to the points its condition allows
    /// (`update_mode`, `update_filter`).
    Conditional {
        op: Box<UpdateOp>,
        condition: UpdateCondition,
    },
}

/// Qdrant's write `ordering`: `weak` sends a write to every replica at once (concurrent writes
/// to one point may reach replicas in different orders); `medium` and `strong` pass every write
/// of a shard through one replica's peer, which sends them on one at a time, so every replica
/// applies them in the same order. `medium` picks the first Active replica (by peer id),
/// `strong` always the first replica, and fails while it is not Active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WriteOrdering {
    #[default]
    Weak,
    Medium,
    Strong,
}

/// `update_mode` of an upsert: write every point, only new ones, or only existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UpdateMode {
    #[default]
    Upsert,
    InsertOnly,
    UpdateOnly,
}

/// When an upsert or vector update may write a point: its `update_mode`, and an
/// `update_filter` that an existing point must match (new points are not filtered).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateCondition {
    pub mode: UpdateMode,
    pub filter: Option<Filter>,
}

/// A stored point as filters see it.
struct RecordView<'a> {
    id: PointId,
    record: &'a crate::record::PointRecord,
}

impl qd_core::filter::PointView for RecordView<'_> {
    fn id(&self) -> PointId {
        self.id
    }
    fn payload(&self) -> Option<&Payload> {
        self.record.payload.as_ref()
    }
    fn has_vector(&self, name: &str) -> bool {
        self.record.vectors.contains_key(name)
    }
}

impl UpdateCondition {
    /// Whether the condition lets every write through.
    pub fn is_plain(&self) -> bool {
        self.mode == UpdateMode::Upsert && self.filter.is_none()
    }

    /// Whether point `id`, currently `existing` (`None`: not stored), may be written.
    pub fn allows(&self, id: PointId, existing: Option<&crate::record::PointRecord>) -> bool {
        match existing {
            None => self.mode != UpdateMode::UpdateOnly,
            Some(_) if self.mode == UpdateMode::InsertOnly => false,
            Some(record) => self.filter.as_ref().is_none_or(|f| f.check(&RecordView { id, record })),
        }
    }
}

impl UpdateOp {
    /// `op` under `condition`, or `op` itself when the condition lets everything through.
    pub fn with_condition(op: UpdateOp, condition: UpdateCondition) -> UpdateOp {
        if condition.is_plain() {
            op
        } else {
            UpdateOp::Conditional { op: Box::new(op), condition }
        }
    }

    /// Point ids an operation names explicitly (used to route it to shards).
    pub fn explicit_ids(&self) -> Option<Vec<PointId>> {
        let sel_ids = |s: &PointSelection| match s {
            PointSelection::Ids(ids) => Some(ids.clone()),
            PointSelection::Filter(_) => None,
        };
        match self {
            UpdateOp::Upsert(points) => Some(points.iter().map(|p| p.id).collect()),
            UpdateOp::Delete(s) | UpdateOp::ClearPayload(s) => sel_ids(s),
            UpdateOp::SetPayload { selection, .. }
            | UpdateOp::OverwritePayload { selection, .. }
            | UpdateOp::DeletePayload { selection, .. }
            | UpdateOp::DeleteVectors { selection, .. } => sel_ids(selection),
            UpdateOp::UpdateVectors(v) => Some(v.iter().map(|(id, _)| *id).collect()),
            UpdateOp::Conditional { op, .. } => op.explicit_ids(),
        }
    }

    /// Whether this write replaces its points whole whatever they held (an upsert, a delete
    /// by id), rather than having an effect that depends on what they hold (by filter, a
    /// partial update by id, a conditional write). A copy of a shard skips points replaced
    /// live, and replays the other kind over what it copies.
    pub fn replaces_points(&self) -> bool {
        matches!(self, UpdateOp::Upsert(_) | UpdateOp::Delete(PointSelection::Ids(_)))
    }

    /// The points this write replaces whole (see [`UpdateOp::replaces_points`]).
    pub fn replaced_points(&self) -> Option<Vec<PointId>> {
        self.replaces_points().then(|| self.explicit_ids()).flatten()
    }

    /// The ids a conditional upsert may create points at (insert-only, or an upsert with a
    /// filter, which writes absent points); `None` for any other write.
    pub fn may_create_points(&self) -> Option<Vec<PointId>> {
        match self {
            UpdateOp::Conditional { op, condition } if condition.mode != UpdateMode::UpdateOnly => match &**op {
                UpdateOp::Upsert(points) => Some(points.iter().map(|p| p.id).collect()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The part of this operation that concerns only the given ids (same kind of operation).
    /// A filter selection is kept as it is.
    pub fn restrict_to(&self, keep: &dyn Fn(&PointId) -> bool) -> UpdateOp {
        self.map_selections(&|f| f.clone(), keep)
    }

    /// This operation limited to the points in `ids`: listed ids outside it are dropped and a
    /// filter selection also requires the point to be one of them. Replaying a filter-selected
    /// write over a copied batch of points uses it.
    pub fn within_ids(&self, ids: &BTreeSet<PointId>) -> UpdateOp {
        self.map_selections(
            &|f| Filter::must(vec![Condition::HasId(ids.clone()), Condition::Filter(f.clone())]),
            &|id| ids.contains(id),
        )
    }

    /// This operation without the points in `ids`: listed ids in it are dropped and a filter
    /// selection also requires the point not to be one of them. A write that arrives after a
    /// copied batch already holding it is applied only to the points outside that batch.
    pub fn outside_ids(&self, ids: &BTreeSet<PointId>) -> UpdateOp {
        self.map_selections(
            &|f| Filter {
                must: vec![Condition::Filter(f.clone())],
                ..Filter::must_not(vec![Condition::HasId(ids.clone())])
            },
            &|id| !ids.contains(id),
        )
    }

    /// This operation with every filter it holds (filter selections, the condition of a
    /// conditional update) replaced by what `map` gives, where it gives one.
    pub fn map_filters(self, map: &dyn Fn(&Filter) -> Option<Filter>) -> UpdateOp {
        let sel = |s: PointSelection| match s {
            PointSelection::Filter(f) => PointSelection::Filter(map(&f).unwrap_or(f)),
            ids => ids,
        };
        match self {
            UpdateOp::Delete(s) => UpdateOp::Delete(sel(s)),
            UpdateOp::ClearPayload(s) => UpdateOp::ClearPayload(sel(s)),
            UpdateOp::SetPayload { payload, selection, key } => {
                UpdateOp::SetPayload { payload, selection: sel(selection), key }
            }
            UpdateOp::OverwritePayload { payload, selection } => {
                UpdateOp::OverwritePayload { payload, selection: sel(selection) }
            }
            UpdateOp::DeletePayload { keys, selection } => UpdateOp::DeletePayload { keys, selection: sel(selection) },
            UpdateOp::DeleteVectors { selection, names } => {
                UpdateOp::DeleteVectors { selection: sel(selection), names }
            }
            UpdateOp::Conditional { op, condition: UpdateCondition { mode, filter } } => UpdateOp::Conditional {
                op: Box::new(op.map_filters(map)),
                condition: UpdateCondition { mode, filter: filter.map(|f| map(&f).unwrap_or(f)) },
            },
            UpdateOp::Upsert(_) | UpdateOp::UpdateVectors(_) => self,
        }
    }

    fn map_selections(&self, filter: &dyn Fn(&Filter) -> Filter, keep: &dyn Fn(&PointId) -> bool) -> UpdateOp {
        let sel = |s: &PointSelection| match s {
            PointSelection::Ids(ids) => PointSelection::Ids(ids.iter().copied().filter(|i| keep(i)).collect()),
            PointSelection::Filter(f) => PointSelection::Filter(filter(f)),
        };
        match self {
            UpdateOp::Upsert(points) => UpdateOp::Upsert(points.iter().filter(|p| keep(&p.id)).cloned().collect()),
            UpdateOp::Delete(s) => UpdateOp::Delete(sel(s)),
            UpdateOp::ClearPayload(s) => UpdateOp::ClearPayload(sel(s)),
            UpdateOp::SetPayload { payload, selection, key } => {
                UpdateOp::SetPayload { payload: payload.clone(), selection: sel(selection), key: key.clone() }
            }
            UpdateOp::OverwritePayload { payload, selection } => {
                UpdateOp::OverwritePayload { payload: payload.clone(), selection: sel(selection) }
            }
            UpdateOp::DeletePayload { keys, selection } => {
                UpdateOp::DeletePayload { keys: keys.clone(), selection: sel(selection) }
            }
            UpdateOp::DeleteVectors { selection, names } => {
                UpdateOp::DeleteVectors { selection: sel(selection), names: names.clone() }
            }
            UpdateOp::UpdateVectors(v) => {
                UpdateOp::UpdateVectors(v.iter().filter(|(id, _)| keep(id)).cloned().collect())
            }
            UpdateOp::Conditional { op, condition } => {
                UpdateOp::Conditional { op: Box::new(op.map_selections(filter, keep)), condition: condition.clone() }
            }
        }
    }
}

/// `status` of an update result, as Qdrant names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    /// Accepted into the queue (wait=false).
    Acknowledged,
    /// Durable and visible to searches (wait=true).
    Completed,
}

impl UpdateStatus {
    /// The status reported to a writer that asked to `wait` or not.
    pub fn for_wait(wait: bool) -> Self {
        if wait {
            UpdateStatus::Completed
        } else {
            UpdateStatus::Acknowledged
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResult {
    pub operation_id: Option<u64>,
    pub status: UpdateStatus,
}

/// How a shard scores a stored vector. Vectors here are preprocessed and of the kind of the
/// vector they are compared with (dense, sparse or multi).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardQuery {
    /// Similarity to one vector (internal score).
    Nearest(Vector),
    /// Recommendation by the best score against examples: the best positive similarity if it
    /// beats the best negative one (squashed to (0.5, 1)), else minus the squashed best negative.
    BestScore { positive: Vec<Vector>, negative: Vec<Vector> },
    /// Recommendation by the sum of positive similarities minus the sum of negative ones.
    SumScores { positive: Vec<Vector>, negative: Vec<Vector> },
    /// Discovery: per pair +1 when closer to the positive, -1 when closer to the negative
    /// (0 on a tie), plus the squashed similarity to the target (in (0, 1)).
    Discover { target: Vector, pairs: Vec<(Vector, Vector)> },
    /// Naive relevance feedback: `a * sim(target)` plus `weight * (sim(better) - sim(worse))`
    /// per weighted pair.
    Feedback { target: Vector, a: f32, pairs: Vec<(Vector, Vector, f32)> },
    /// Context: per pair `fast_sigmoid(min(pos - neg - EPSILON, 0))`, summed (0 is best).
    Context(Vec<(Vector, Vector)>),
}

/// Internal similarity of a query vector and a stored one of the same kind: the metric for
/// dense, the dot product over shared indices for sparse (`None` when none is shared, as
/// Qdrant does not score such points), max-sim for multivectors.
pub fn similarity(distance: qd_core::Distance, query: &Vector, stored: VectorRef<'_>) -> Option<f32> {
    match (query, stored) {
        (Vector::Dense(q), VectorRef::Dense(v)) => Some(v.with_f32(|v| distance.score(q, v))),
        (Vector::Sparse(q), VectorRef::Sparse(v)) => {
            let (score, any) = v.dot(q);
            any.then_some(score)
        }
        (Vector::Multi(q), VectorRef::Multi(rows)) => {
            Some(rows.with_f32(|rows| MaxSimScorer::new(distance, q.dim()).score(q.flat(), rows)))
        }
        _ => None,
    }
}

/// `x / (1 + |x|)`: maps any score into (-1, 1), keeping order.
fn fast_sigmoid(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    x / (1.0 + x.abs())
}

/// `0.5 * (fast_sigmoid(x) + 1)`: maps any score into (0, 1), keeping order.
fn scaled_fast_sigmoid(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    0.5 * (fast_sigmoid(x) + 1.0)
}

impl ShardQuery {
    /// Score of a stored vector, larger is better (`None`: not a hit). An example sharing no
    /// index with a sparse vector counts as similarity 0 in recommendations.
    pub fn score(&self, distance: qd_core::Distance, v: VectorRef<'_>) -> Option<f32> {
        let sim = |e: &Vector| similarity(distance, e, v).unwrap_or(0.0);
        let best = |examples: &[Vector]| examples.iter().map(sim).fold(f32::NEG_INFINITY, f32::max);
        match self {
            ShardQuery::Nearest(q) => similarity(distance, q, v),
            ShardQuery::BestScore { positive, negative } => {
                let (pos, neg) = (best(positive), best(negative));
                Some(if pos > neg { scaled_fast_sigmoid(pos) } else { -scaled_fast_sigmoid(neg) })
            }
            ShardQuery::SumScores { positive, negative } => {
                Some(positive.iter().map(sim).sum::<f32>() - negative.iter().map(sim).sum::<f32>())
            }
            ShardQuery::Discover { target, pairs } => {
                let rank: i32 = pairs
                    .iter()
                    .map(|(p, n)| match sim(p).partial_cmp(&sim(n)) {
                        Some(std::cmp::Ordering::Greater) => 1,
                        Some(std::cmp::Ordering::Equal) => 0,
                        _ => -1,
                    })
                    .sum();
                Some(rank as f32 + scaled_fast_sigmoid(sim(target)))
            }
            ShardQuery::Feedback { target, a, pairs } => {
                Some(a * sim(target) + pairs.iter().map(|(p, n, w)| w * (sim(p) - sim(n))).sum::<f32>())
            }
            ShardQuery::Context(pairs) => {
                Some(pairs.iter().map(|(p, n)| fast_sigmoid((sim(p) - sim(n) - f32::EPSILON).min(0.0))).sum())
            }
        }
    }
}

/// `params` of a search: how to trade speed for accuracy. One value carried from the request
/// down to the segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    /// Beam width of the graph search (default: the vector's `ef_construct`).
    pub hnsw_ef: Option<usize>,
    /// Score every candidate instead of walking a graph.
    pub exact: bool,
    /// `params.quantization` (`None`: defaults).
    pub quantization: Option<QuantizationSearchParams>,
}

/// A search inside one shard; `threshold` is compared with the score [`ShardQuery::score`] gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSearch {
    pub vector_name: String,
    pub query: ShardQuery,
    pub filter: Option<Filter>,
    /// How many hits the shard must return (offset + limit of the request).
    pub top: usize,
    pub threshold: Option<f32>,
    pub settings: SearchSettings,
}

/// A hit before payloads and vectors are attached; `score` is internal (larger is better).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShardHit {
    pub id: PointId,
    pub version: u64,
    pub score: f32,
}

/// A point as returned by retrieve and scroll (Qdrant's `Record`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: PointId,
    pub payload: Option<Payload>,
    #[serde(serialize_with = "serialize_named")]
    pub vector: Option<NamedVectors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_value: Option<Value>,
}

/// A search hit as returned to users (Qdrant's `ScoredPoint`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredPoint {
    pub id: PointId,
    pub version: u64,
    pub score: f32,
    pub payload: Option<Payload>,
    #[serde(serialize_with = "serialize_named")]
    pub vector: Option<NamedVectors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_value: Option<Value>,
}

/// What to attach to returned points.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WithSelectors {
    pub payload: PayloadSelector,
    pub vector: VectorSelector,
}

impl WithSelectors {
    /// The whole record: every vector and the whole payload.
    pub fn whole() -> Self {
        WithSelectors { payload: PayloadSelector::All, vector: VectorSelector::All }
    }
}

/// Figures one shard reports for collection info and monitoring.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardStats {
    pub shard_id: u32,
    pub points_count: usize,
    pub indexed_vectors_count: usize,
    pub segments_count: usize,
    pub ram_vectors_bytes: usize,
    /// Bytes of stored vectors wherever they live (RAM or memory-mapped files): what strict
    /// mode's `max_collection_vector_size_bytes` caps.
    #[serde(default)]
    pub vector_data_bytes: usize,
    /// Bytes of payloads held in RAM (none for indexed segments under `on_disk_payload`).
    pub ram_payload_bytes: usize,
    /// Bytes of stored payloads wherever they live (estimated from their JSON size): what
    /// strict mode's `max_collection_payload_size_bytes` caps.
    #[serde(default)]
    pub payload_data_bytes: usize,
    pub ram_index_bytes: usize,
    /// Live points holding each named vector (counters kept on write, no scan).
    #[serde(default)]
    pub vectors_count: std::collections::BTreeMap<String, usize>,
    /// Shard key owning this shard (custom sharding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<serde_json::Value>,
    pub disk_bytes: u64,
    pub last_operation_id: u64,
    /// An optimization is running or waiting (collection status yellow).
    pub optimizing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PointRecord;

    fn record(payload: serde_json::Value) -> PointRecord {
        PointRecord { version: 1, vectors: NamedVectors::new(), payload: payload.as_object().cloned() }
    }

    #[test]
    fn feedback_and_context_scores_follow_their_formulas() {
        use qd_core::Distance;
        let v = |x: f32, y: f32| Vector::Dense(vec![x, y]);
        let stored = [1.0f32, 0.0];
        let at = VectorRef::Dense(qd_segment::Elems::F32(&stored));
        // Dot: sim(target) = 2, sim(better) = 1, sim(worse) = 0.
        let q = ShardQuery::Feedback { target: v(2.0, 0.0), a: 0.5, pairs: vec![(v(1.0, 0.0), v(0.0, 1.0), 3.0)] };
        assert_eq!(q.score(Distance::Dot, at), Some(0.5 * 2.0 + 3.0 * (1.0 - 0.0)));
        // Inside the positive zone a context pair scores 0; outside, fast_sigmoid of the gap.
        let inside = ShardQuery::Context(vec![(v(1.0, 0.0), v(0.0, 1.0))]);
        assert_eq!(inside.score(Distance::Dot, at), Some(0.0));
        let outside = ShardQuery::Context(vec![(v(0.0, 1.0), v(1.0, 0.0))]);
        let gap = -1.0 - f32::EPSILON;
        assert_eq!(outside.score(Distance::Dot, at), Some(gap / (1.0 + gap.abs())));
    }

    #[test]
    fn within_ids_narrows_listed_ids_and_filters_to_the_batch() {
        let batch: BTreeSet<PointId> = [PointId::Num(1), PointId::Num(2)].into();
        let by_ids = UpdateOp::Delete(PointSelection::Ids(vec![PointId::Num(2), PointId::Num(3)]));
        assert!(
            matches!(by_ids.within_ids(&batch), UpdateOp::Delete(PointSelection::Ids(ids)) if ids == vec![PointId::Num(2)])
        );
        let f = Filter::must(vec![Condition::HasId([PointId::Num(3)].into())]);
        let by_filter = UpdateOp::ClearPayload(PointSelection::Filter(f.clone()));
        match by_filter.within_ids(&batch) {
            UpdateOp::ClearPayload(PointSelection::Filter(g)) => {
                assert_eq!(g, Filter::must(vec![Condition::HasId(batch.clone()), Condition::Filter(f)]))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(by_filter.explicit_ids().is_none() && by_ids.explicit_ids().is_some());
    }

    #[test]
    fn only_upserts_and_deletes_by_id_replace_points() {
        let id = PointId::Num(1);
        let upsert = UpdateOp::Upsert(vec![PointInsert { id, vectors: NamedVectors::new(), payload: None }]);
        assert_eq!(upsert.replaced_points(), Some(vec![id]));
        assert_eq!(UpdateOp::Delete(PointSelection::Ids(vec![id])).replaced_points(), Some(vec![id]));
        assert_eq!(UpdateOp::ClearPayload(PointSelection::Ids(vec![id])).replaced_points(), None);
        assert_eq!(UpdateOp::Delete(PointSelection::Filter(Filter::default())).replaced_points(), None);
        let insert_only = UpdateCondition { mode: UpdateMode::InsertOnly, filter: None };
        let update_only = UpdateCondition { mode: UpdateMode::UpdateOnly, filter: None };
        assert_eq!(UpdateOp::with_condition(upsert.clone(), update_only).may_create_points(), None);
        assert_eq!(upsert.may_create_points(), None, "plain upserts replace points instead");
        let conditional = UpdateOp::with_condition(upsert, insert_only);
        assert_eq!(conditional.replaced_points(), None);
        assert_eq!(conditional.may_create_points(), Some(vec![id]));
    }

    #[test]
    fn outside_ids_leaves_the_batch_out() {
        let batch: BTreeSet<PointId> = [PointId::Num(1), PointId::Num(2)].into();
        let by_ids = UpdateOp::Delete(PointSelection::Ids(vec![PointId::Num(2), PointId::Num(3)]));
        assert!(
            matches!(by_ids.outside_ids(&batch), UpdateOp::Delete(PointSelection::Ids(ids)) if ids == vec![PointId::Num(3)])
        );
        let f = Filter::must(vec![Condition::HasId([PointId::Num(3)].into())]);
        match UpdateOp::ClearPayload(PointSelection::Filter(f.clone())).outside_ids(&batch) {
            UpdateOp::ClearPayload(PointSelection::Filter(g)) => {
                assert_eq!(g.must, vec![Condition::Filter(f)]);
                assert_eq!(g.must_not, vec![Condition::HasId(batch)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn update_modes_decide_by_existence() {
        let id = PointId::Num(1);
        let existing = record(serde_json::json!({"a": 1}));
        let cond = |mode| UpdateCondition { mode, filter: None };
        assert!(cond(UpdateMode::Upsert).allows(id, None) && cond(UpdateMode::Upsert).allows(id, Some(&existing)));
        assert!(cond(UpdateMode::InsertOnly).allows(id, None));
        assert!(!cond(UpdateMode::InsertOnly).allows(id, Some(&existing)));
        assert!(!cond(UpdateMode::UpdateOnly).allows(id, None));
        assert!(cond(UpdateMode::UpdateOnly).allows(id, Some(&existing)));
    }

    #[test]
    fn the_update_filter_applies_to_existing_points_only() {
        let id = PointId::Num(1);
        let filter: Filter =
            serde_json::from_value(serde_json::json!({"must": [{"key": "a", "match": {"value": 1}}]})).expect("filter");
        let cond = UpdateCondition { mode: UpdateMode::Upsert, filter: Some(filter) };
        assert!(cond.allows(id, Some(&record(serde_json::json!({"a": 1})))));
        assert!(!cond.allows(id, Some(&record(serde_json::json!({"a": 2})))));
        assert!(cond.allows(id, None), "a new point is not filtered");
        assert!(!cond.is_plain() && UpdateCondition::default().is_plain());
    }
}
