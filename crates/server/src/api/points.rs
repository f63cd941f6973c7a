//! Point endpoints: upsert, retrieve, delete, payload and vector updates, scroll, count, search.

use std::time::Instant;

use axum::extract::Path;
use qd_collection::operations::SearchSettings;
use qd_collection::operations::ShardKey;
use qd_collection::operations::{PointInsert, PointSelection, UpdateCondition, UpdateOp, WithSelectors};
use qd_collection::query::{Query, QueryRequest, VectorOrId};
use qd_collection::shard_set::ReadScope;
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::PointId;
use serde_json::{json, Value};

use super::inference::{self, Side};
use super::models::*;
use super::response::{ok, ApiError, ApiResult, Body, Params};
use super::{blocking, State};
use crate::ops;

fn selection(points: Option<Vec<PointId>>, filter: Option<Filter>) -> Result<PointSelection, ApiError> {
    match (points, filter) {
        (Some(ids), None) => Ok(PointSelection::Ids(ids)),
        (None, Some(f)) => {
            f.validate()?;
            Ok(PointSelection::Filter(f))
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request("Bad request: give either `points` or `filter`, not both")),
        (None, None) => Err(ApiError::bad_request("Bad request: either `points` or `filter` is required")),
    }
}

fn parse_path(key: &str) -> Result<JsonPath, ApiError> {
    key.parse::<JsonPath>().map_err(|e| ApiError::bad_request(format!("Bad request: key: {e}")))
}

/// Apply an update and answer with Qdrant's `UpdateResult`.
async fn apply(state: State, name: String, params: UpdateParams, op: UpdateOp, key: Option<Value>) -> ApiResult {
    let t = Instant::now();
    let wait = params.check().map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    let ordering = params.ordering();
    let key = shard_keys(key)?;
    let reg = state.registry.clone();
    let result = blocking(move || ops::update(&reg, &name, op, (wait, ordering), key.as_deref())).await?;
    Ok(ok(t, result))
}

/// `shard_key`: one key (string or integer) or a list of keys.
pub fn shard_keys(v: Option<Value>) -> Result<Option<Vec<ShardKey>>, ApiError> {
    let parse_one = |v: &Value| {
        ShardKey::from_json(v)
            .ok_or_else(|| ApiError::bad_request("Bad request: shard_key: expected a string or an integer"))
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items.iter().map(parse_one).collect::<Result<Vec<_>, _>>().map(Some),
        Some(one) => Ok(Some(vec![parse_one(&one)?])),
    }
}

/// `update_mode` and `update_filter` of a write (the filter validated).
fn condition(mode: Option<UpdateModeBody>, filter: Option<Filter>) -> Result<UpdateCondition, ApiError> {
    if let Some(f) = &filter {
        f.validate()?;
    }
    Ok(UpdateCondition { mode: mode.map(Into::into).unwrap_or_default(), filter })
}

fn upsert_op(body: UpsertBody) -> Result<UpdateOp, ApiError> {
    let condition = condition(body.update_mode, body.update_filter)?;
    let points = match (body.points, body.batch) {
        (Some(points), None) => points
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let vectors =
                    inference::resolve_named(p.vector.into_named(), Side::Document, &format!("points[{i}].vector"))?;
                Ok(PointInsert { id: p.id, vectors, payload: p.payload })
            })
            .collect::<Result<Vec<_>, ApiError>>()?,
        (None, Some(batch)) => {
            let n = batch.ids.len();
            if batch.vectors.0.len() != n {
                return Err(ApiError::bad_request(format!(
                    "Bad request: batch has {n} ids but {} vectors",
                    batch.vectors.0.len()
                )));
            }
            let payloads = match batch.payloads {
                Some(p) if p.len() != n => {
                    return Err(ApiError::bad_request(format!(
                        "Bad request: batch has {n} ids but {} payloads",
                        p.len()
                    )));
                }
                Some(p) => p,
                None => vec![None; n],
            };
            batch
                .ids
                .into_iter()
                .zip(batch.vectors.0)
                .zip(payloads)
                .enumerate()
                .map(|(i, ((id, vectors), payload))| {
                    let vectors = inference::resolve_named(vectors, Side::Document, &format!("batch.vectors[{i}]"))?;
                    Ok(PointInsert { id, vectors, payload })
                })
                .collect::<Result<Vec<_>, ApiError>>()?
        }
        _ => return Err(ApiError::bad_request("Bad request: give exactly one of `points` or `batch`")),
    };
    Ok(UpdateOp::with_condition(UpdateOp::Upsert(points), condition))
}

fn delete_op(body: PointsSelectorBody) -> Result<UpdateOp, ApiError> {
    Ok(UpdateOp::Delete(selection(body.points, body.filter)?))
}

fn set_payload_op(body: SetPayloadBody) -> Result<UpdateOp, ApiError> {
    let selection = selection(body.points, body.filter)?;
    let key = body.key.as_deref().map(parse_path).transpose()?;
    Ok(UpdateOp::SetPayload { payload: body.payload, selection, key })
}

fn overwrite_payload_op(body: SetPayloadBody) -> Result<UpdateOp, ApiError> {
    let selection = selection(body.points, body.filter)?;
    if body.key.is_some() {
        return Err(ApiError::bad_request("Bad request: `key` is not allowed when overwriting a payload"));
    }
    Ok(UpdateOp::OverwritePayload { payload: body.payload, selection })
}

fn delete_payload_op(body: DeletePayloadBody) -> Result<UpdateOp, ApiError> {
    let selection = selection(body.points, body.filter)?;
    let keys = body.keys.iter().map(|k| parse_path(k)).collect::<Result<Vec<_>, _>>()?;
    Ok(UpdateOp::DeletePayload { keys, selection })
}

fn clear_payload_op(body: PointsSelectorBody) -> Result<UpdateOp, ApiError> {
    Ok(UpdateOp::ClearPayload(selection(body.points, body.filter)?))
}

fn update_vectors_op(body: UpdateVectorsBody) -> Result<UpdateOp, ApiError> {
    let condition = condition(None, body.update_filter)?;
    let items = body
        .points
        .into_iter()
        .enumerate()
        .map(|(i, pv)| {
            inference::resolve_named(pv.vector.into_named(), Side::Document, &format!("points[{i}].vector"))
                .map(|v| (pv.id, v))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(UpdateOp::with_condition(UpdateOp::UpdateVectors(items), condition))
}

fn delete_vectors_op(body: DeleteVectorsBody) -> Result<UpdateOp, ApiError> {
    let selection = selection(body.points, body.filter)?;
    Ok(UpdateOp::DeleteVectors { selection, names: body.vector })
}

/// One handler per update endpoint: parse the body into an operation, then apply it.
macro_rules! update_handler {
    ($name:ident, $body:ty, $make:ident) => {
        pub async fn $name(
            state: State,
            Path(name): Path<String>,
            Params(p): Params<UpdateParams>,
            Body(body): Body<$body>,
        ) -> ApiResult {
            let key = body.shard_key.clone();
            apply(state, name, p, $make(body)?, key).await
        }
    };
}

update_handler!(upsert, UpsertBody, upsert_op);
update_handler!(delete, PointsSelectorBody, delete_op);
update_handler!(set_payload, SetPayloadBody, set_payload_op);
update_handler!(overwrite_payload, SetPayloadBody, overwrite_payload_op);
update_handler!(delete_payload, DeletePayloadBody, delete_payload_op);
update_handler!(clear_payload, PointsSelectorBody, clear_payload_op);
update_handler!(update_vectors, UpdateVectorsBody, update_vectors_op);
update_handler!(delete_vectors, DeleteVectorsBody, delete_vectors_op);

/// One operation of `/points/batch`, in Qdrant's tagged form.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchOperation {
    Upsert(UpsertBody),
    Delete(PointsSelectorBody),
    SetPayload(SetPayloadBody),
    OverwritePayload(SetPayloadBody),
    DeletePayload(DeletePayloadBody),
    ClearPayload(PointsSelectorBody),
    UpdateVectors(UpdateVectorsBody),
    DeleteVectors(DeleteVectorsBody),
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub operations: Vec<BatchOperation>,
}

/// `POST /points/batch`: every operation is parsed and validated before the first is applied;
/// then they are applied in order.
pub async fn batch(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<BatchBody>,
) -> ApiResult {
    let t = Instant::now();
    let wait = p.check().map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    let mut ops = Vec::with_capacity(body.operations.len());
    for (i, op) in body.operations.into_iter().enumerate() {
        let (key, parsed) = match op {
            BatchOperation::Upsert(b) => (b.shard_key.clone(), upsert_op(b)),
            BatchOperation::Delete(b) => (b.shard_key.clone(), delete_op(b)),
            BatchOperation::SetPayload(b) => (b.shard_key.clone(), set_payload_op(b)),
            BatchOperation::OverwritePayload(b) => (b.shard_key.clone(), overwrite_payload_op(b)),
            BatchOperation::DeletePayload(b) => (b.shard_key.clone(), delete_payload_op(b)),
            BatchOperation::ClearPayload(b) => (b.shard_key.clone(), clear_payload_op(b)),
            BatchOperation::UpdateVectors(b) => (b.shard_key.clone(), update_vectors_op(b)),
            BatchOperation::DeleteVectors(b) => (b.shard_key.clone(), delete_vectors_op(b)),
        };
        let parsed = parsed.map_err(|e| ApiError {
            retry_after: None,
            status: e.status,
            message: format!("operations[{i}]: {}", e.message),
        })?;
        ops.push((parsed, shard_keys(key)?));
    }
    let reg = state.registry.clone();
    let ordering = p.ordering();
    let results = blocking(move || ops::update_batch(&reg, &name, ops, (wait, ordering))).await?;
    Ok(ok(t, results))
}

pub async fn retrieve(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<PointRequest>,
) -> ApiResult {
    let t = Instant::now();
    let keys = shard_keys(body.shard_key)?;
    let with = WithSelectors {
        payload: body.with_payload.unwrap_or(PayloadSelector::All),
        vector: body.with_vector.unwrap_or(VectorSelector::None),
    };
    let reg = state.registry.clone();
    let consistency = p.read_consistency()?;
    let records = blocking(move || {
        crate::ops::retrieve(&reg, &name, &body.ids, &with, ReadScope { keys: keys.as_deref(), consistency })
    })
    .await?;
    Ok(ok(t, records))
}

pub async fn get_one(
    state: State,
    Path((name, id)): Path<(String, String)>,
    Params(p): Params<TimeoutParam>,
) -> ApiResult {
    let t = Instant::now();
    let scope = ReadScope { keys: None, consistency: p.read_consistency()? };
    let id: PointId = id.parse().map_err(|e: String| ApiError::bad_request(format!("Bad request: {e}")))?;
    let reg = state.registry.clone();
    let with = WithSelectors::whole();
    let mut records = blocking(move || crate::ops::retrieve(&reg, &name, &[id], &with, scope)).await?;
    match records.pop() {
        Some(r) => Ok(ok(t, r)),
        None => Err(ApiError::not_found(format!("Not found: Point with id {id} does not exists!"))),
    }
}

pub async fn scroll(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<ScrollBody>,
) -> ApiResult {
    let t = Instant::now();
    let keys = shard_keys(body.shard_key.clone())?;
    let order_by = match body.order_by.as_ref().filter(|v| !v.is_null()) {
        Some(v) => Some(super::query::order_by(v, "order_by")?),
        None => None,
    };
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    if body.limit == Some(0) {
        return Err(ApiError::validation("limit: value 0 invalid, must be 1 or larger"));
    }
    let req = ops::ScrollRequest {
        filter: body.filter,
        offset: body.offset,
        limit: body.limit.unwrap_or(10),
        with: WithSelectors {
            payload: body.with_payload.unwrap_or(PayloadSelector::All),
            vector: body.with_vector.unwrap_or(VectorSelector::None),
        },
        order_by,
        shard_key: keys,
        consistency: p.read_consistency()?,
    };
    let reg = state.registry.clone();
    let (points, next) = blocking(move || ops::scroll(&reg, &name, req)).await?;
    Ok(ok(t, json!({ "points": points, "next_page_offset": next })))
}

pub async fn count(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<CountBody>,
) -> ApiResult {
    let t = Instant::now();
    let keys = shard_keys(body.shard_key.clone())?;
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let reg = state.registry.clone();
    let consistency = p.read_consistency()?;
    let n = blocking(move || {
        crate::ops::count(&reg, &name, body.filter.as_ref(), ReadScope { keys: keys.as_deref(), consistency })
    })
    .await?;
    Ok(ok(t, json!({ "count": n })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixBody {
    #[serde(default)]
    pub sample: Option<usize>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

fn matrix_request(body: MatrixBody, p: &TimeoutParam) -> Result<ops::MatrixRequest, ApiError> {
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    Ok(ops::MatrixRequest {
        using: body.using.unwrap_or_default(),
        filter: body.filter,
        sample: body.sample.unwrap_or(qd_collection::matrix::DEFAULT_SAMPLE),
        limit: body.limit.unwrap_or(qd_collection::matrix::DEFAULT_NEIGHBOURS),
        shard_key: shard_keys(body.shard_key)?,
        consistency: p.read_consistency()?,
    })
}

/// `POST /points/search/matrix/pairs`: `{"pairs": [{"a", "b", "score"}]}`.
pub async fn matrix_pairs(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<MatrixBody>,
) -> ApiResult {
    let t = Instant::now();
    let req = matrix_request(body, &p)?;
    let reg = state.registry.clone();
    let m = blocking(move || ops::search_matrix(&reg, &name, req)).await?;
    let pairs: Vec<Value> =
        m.pairs().into_iter().map(|(a, b, score)| json!({"a": a, "b": b, "score": score})).collect();
    Ok(ok(t, json!({ "pairs": pairs })))
}

/// `POST /points/search/matrix/offsets`: the matrix in sparse (COO) form over `ids`.
pub async fn matrix_offsets(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<MatrixBody>,
) -> ApiResult {
    let t = Instant::now();
    let req = matrix_request(body, &p)?;
    let reg = state.registry.clone();
    let m = blocking(move || ops::search_matrix(&reg, &name, req)).await?;
    let (rows, cols, scores) = m.offsets();
    Ok(ok(t, json!({ "offsets_row": rows, "offsets_col": cols, "scores": scores, "ids": m.ids })))
}

/// A classic search is a query with one nearest step.
fn search_request(body: SearchBody) -> Result<QueryRequest, ApiError> {
    let shard_key = shard_keys(body.shard_key.clone())?;
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let params = body.params.unwrap_or_default();
    if let Some(q) = &params.quantization {
        q.validate().map_err(|e| ApiError::from(e).within("params.quantization"))?;
    }
    if body.limit == 0 {
        return Err(ApiError::validation("limit: value 0 invalid, must be 1 or larger"));
    }
    let vector = inference::resolve(body.vector.vector, Side::Query, "vector")?;
    Ok(QueryRequest {
        prefetch: Vec::new(),
        query: Some(Query::Nearest(VectorOrId::Vector(vector))),
        using: body.vector.name,
        filter: body.filter,
        score_threshold: body.score_threshold,
        limit: body.limit,
        offset: body.offset.unwrap_or(0),
        with: WithSelectors {
            payload: body.with_payload.unwrap_or_default(),
            vector: body.with_vector.unwrap_or_default(),
        },
        params: SearchSettings { hnsw_ef: params.hnsw_ef, exact: params.exact, quantization: params.quantization },
        shard_key,
        lookup_from: None,
        consistency: Default::default(),
    })
}

pub async fn search(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<SearchBody>,
) -> ApiResult {
    let t = Instant::now();
    let req = super::query::consistent(search_request(body)?, &p)?;
    let reg = state.registry.clone();
    let hits = blocking(move || ops::query(&reg, &name, req)).await?;
    Ok(ok(t, hits))
}

pub async fn search_batch(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<SearchBatchBody>,
) -> ApiResult {
    let t = Instant::now();
    let reqs = body.searches.into_iter().map(search_request).collect::<Result<Vec<_>, _>>()?;
    let reqs = super::query::consistent_all(reqs, &p)?;
    let reg = state.registry.clone();
    let hits = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
    Ok(ok(t, hits))
}
