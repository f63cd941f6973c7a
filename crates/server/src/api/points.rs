//! Point endpoints: upsert, retrieve, delete, payload and vector updates, scroll, count, search.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Path;
use qd_collection::operations::{PointInsert, PointSelection, UpdateOp, WithSelectors};
use qd_collection::{Collection, SearchRequest};
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::PointId;
use serde_json::json;

use super::models::*;
use super::response::{ok, ApiError, ApiResult, Body, Params};
use super::{blocking, State};

fn collection(state: &State, name: &str) -> Result<Arc<Collection>, ApiError> {
    Ok(state.registry.get(name)?)
}

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

fn reject_shard_key(shard_key: &Option<serde_json::Value>) -> Result<(), ApiError> {
    if shard_key.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("Bad request: shard_key: custom sharding is not supported yet"));
    }
    Ok(())
}

fn parse_path(key: &str) -> Result<JsonPath, ApiError> {
    key.parse::<JsonPath>().map_err(|e| ApiError::bad_request(format!("Bad request: key {key:?}: {e}")))
}

/// Apply an update and answer with Qdrant's `UpdateResult`.
async fn apply(state: State, name: String, params: UpdateParams, op: UpdateOp) -> ApiResult {
    let t = Instant::now();
    let wait = params.check().map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    let c = collection(&state, &name)?;
    let result = blocking(move || Ok(c.update(op, wait)?)).await?;
    Ok(ok(t, result))
}

pub async fn upsert(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<UpsertBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    if body.update_filter.is_some() {
        return Err(ApiError::bad_request("Bad request: update_filter is not supported yet"));
    }
    let points = match (body.points, body.batch) {
        (Some(points), None) => points
            .into_iter()
            .map(|p| PointInsert { id: p.id, vectors: p.vector.into_named(), payload: p.payload })
            .collect(),
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
                .map(|((id, vectors), payload)| PointInsert { id, vectors, payload })
                .collect()
        }
        _ => return Err(ApiError::bad_request("Bad request: give exactly one of `points` or `batch`")),
    };
    apply(state, name, p, UpdateOp::Upsert(points)).await
}

pub async fn delete(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<PointsSelectorBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let sel = selection(body.points, body.filter)?;
    apply(state, name, p, UpdateOp::Delete(sel)).await
}

pub async fn set_payload(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<SetPayloadBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let selection = selection(body.points, body.filter)?;
    let key = body.key.as_deref().map(parse_path).transpose()?;
    apply(state, name, p, UpdateOp::SetPayload { payload: body.payload, selection, key }).await
}

pub async fn overwrite_payload(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<SetPayloadBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let selection = selection(body.points, body.filter)?;
    if body.key.is_some() {
        return Err(ApiError::bad_request("Bad request: `key` is not allowed when overwriting a payload"));
    }
    apply(state, name, p, UpdateOp::OverwritePayload { payload: body.payload, selection }).await
}

pub async fn delete_payload(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<DeletePayloadBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let selection = selection(body.points, body.filter)?;
    let keys = body.keys.iter().map(|k| parse_path(k)).collect::<Result<Vec<_>, _>>()?;
    apply(state, name, p, UpdateOp::DeletePayload { keys, selection }).await
}

pub async fn clear_payload(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<PointsSelectorBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let sel = selection(body.points, body.filter)?;
    apply(state, name, p, UpdateOp::ClearPayload(sel)).await
}

pub async fn update_vectors(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<UpdateVectorsBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let items = body.points.into_iter().map(|pv| (pv.id, pv.vector.into_named())).collect();
    apply(state, name, p, UpdateOp::UpdateVectors(items)).await
}

pub async fn delete_vectors(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<UpdateParams>,
    Body(body): Body<DeleteVectorsBody>,
) -> ApiResult {
    reject_shard_key(&body.shard_key)?;
    let selection = selection(body.points, body.filter)?;
    apply(state, name, p, UpdateOp::DeleteVectors { selection, names: body.vector }).await
}

pub async fn retrieve(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<PointRequest>,
) -> ApiResult {
    let t = Instant::now();
    reject_shard_key(&body.shard_key)?;
    let with = WithSelectors {
        payload: body.with_payload.unwrap_or(PayloadSelector::All),
        vector: body.with_vector.unwrap_or(VectorSelector::None),
    };
    let c = collection(&state, &name)?;
    let records = blocking(move || Ok(c.retrieve(&body.ids, &with)?)).await?;
    Ok(ok(t, records))
}

pub async fn get_one(state: State, Path((name, id)): Path<(String, String)>) -> ApiResult {
    let t = Instant::now();
    let id: PointId = id.parse().map_err(|e: String| ApiError::bad_request(format!("Bad request: {e}")))?;
    let c = collection(&state, &name)?;
    let with = WithSelectors { payload: PayloadSelector::All, vector: VectorSelector::All };
    let mut records = blocking(move || Ok(c.retrieve(&[id], &with)?)).await?;
    match records.pop() {
        Some(r) => Ok(ok(t, r)),
        None => Err(ApiError::not_found(format!("Not found: Point with id {id} does not exists!"))),
    }
}

pub async fn scroll(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<ScrollBody>,
) -> ApiResult {
    let t = Instant::now();
    reject_shard_key(&body.shard_key)?;
    let order = match body.order_by.as_ref().filter(|v| !v.is_null()) {
        Some(v) => Some(super::query::order_by(v, "order_by")?),
        None => None,
    };
    if order.is_some() && body.offset.is_some() {
        return Err(ApiError::bad_request(
            "Bad request: offset cannot be used together with order_by; use order_by.start_from",
        ));
    }
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let limit = body.limit.unwrap_or(10);
    let with = WithSelectors {
        payload: body.with_payload.unwrap_or(PayloadSelector::All),
        vector: body.with_vector.unwrap_or(VectorSelector::None),
    };
    let c = collection(&state, &name)?;
    let (points, next) = blocking(move || match order {
        Some(order) => Ok((c.scroll_ordered(&order, body.filter.as_ref(), limit, &with)?, None)),
        None => Ok(c.scroll(body.offset, body.filter.as_ref(), limit, &with)?),
    })
    .await?;
    Ok(ok(t, json!({ "points": points, "next_page_offset": next })))
}

pub async fn count(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<CountBody>,
) -> ApiResult {
    let t = Instant::now();
    reject_shard_key(&body.shard_key)?;
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let c = collection(&state, &name)?;
    let n = blocking(move || Ok(c.count(body.filter.as_ref())?)).await?;
    Ok(ok(t, json!({ "count": n })))
}

fn search_request(body: SearchBody) -> Result<SearchRequest, ApiError> {
    reject_shard_key(&body.shard_key)?;
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let params = body.params.unwrap_or_default();
    Ok(SearchRequest {
        vector_name: body.vector.name,
        vector: body.vector.vector,
        filter: body.filter,
        limit: body.limit,
        offset: body.offset.unwrap_or(0),
        score_threshold: body.score_threshold,
        with: WithSelectors {
            payload: body.with_payload.unwrap_or_default(),
            vector: body.with_vector.unwrap_or_default(),
        },
        hnsw_ef: params.hnsw_ef,
        exact: params.exact,
    })
}

pub async fn search(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<SearchBody>,
) -> ApiResult {
    let t = Instant::now();
    let req = search_request(body)?;
    let c = collection(&state, &name)?;
    let hits = blocking(move || Ok(c.search(&req)?)).await?;
    Ok(ok(t, hits))
}

pub async fn search_batch(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<SearchBatchBody>,
) -> ApiResult {
    let t = Instant::now();
    let reqs = body.searches.into_iter().map(search_request).collect::<Result<Vec<_>, _>>()?;
    let c = collection(&state, &name)?;
    let hits = blocking(move || reqs.iter().map(|r| Ok(c.search(r)?)).collect::<Result<Vec<_>, ApiError>>()).await?;
    Ok(ok(t, hits))
}
