//! `qdrant.Points`: writes, reads, searches and the query API. Each method converts its
//! message (`convert`), runs the shared operation (`crate::ops`) on the blocking pool and
//! converts the answer back.

use std::sync::Arc;
use std::time::Instant;

use qd_collection::operations::{ShardKey, UpdateOp, WithSelectors};
use qd_collection::shard_set::ReadScope;
use qd_core::selectors::PayloadSelector;
use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::points_server::Points;
use tonic::{Request, Response, Status};

use super::convert::filter::filter_opt;
use super::convert::values::{payload_selector, point_id_out, point_ids, shard_keys, usize_of, vector_selector};
use super::convert::{index, invalid, query as q, results, writes, Result};
use super::{blocking, elapsed, Reply};
use crate::api::AppState;
use crate::ops;

pub struct PointsService {
    state: Arc<AppState>,
}

impl PointsService {
    pub fn new(state: Arc<AppState>) -> Self {
        PointsService { state }
    }

    /// Strict mode's `max_timeout` against a request's `timeout` (as REST checks `?timeout=`).
    fn max_timeout(&self, r: &impl Timed) -> std::result::Result<(), Status> {
        let Some(t) = r.timeout() else { return Ok(()) };
        match self.state.registry.get(r.collection()) {
            Ok(c) => Ok(c.check_strict(|s| s.timeout(Some(t))).map_err(crate::api::response::ApiError::from)?),
            // An unknown collection is answered by the call itself.
            Err(_) => Ok(()),
        }
    }

    /// Apply one update and answer with Qdrant's `PointsOperationResponse`.
    async fn apply(
        &self,
        collection: String,
        (wait, ordering): (Option<bool>, Option<pb::WriteOrdering>),
        op: Result<UpdateOp>,
        keys: Result<Option<Vec<ShardKey>>>,
    ) -> Reply<pb::PointsOperationResponse> {
        let t = Instant::now();
        let (op, keys, ordering) = (op?, keys?, write_ordering(ordering)?);
        let reg = self.state.registry.clone();
        let wait = wait.unwrap_or(false);
        let result = blocking(move || ops::update(&reg, &collection, op, (wait, ordering), keys.as_deref())).await?;
        Ok(Response::new(operation_response(t, results::update_result(result))))
    }

    /// The distance matrix a `SearchMatrixPoints` asks for.
    async fn matrix(
        &self,
        r: pb::SearchMatrixPoints,
    ) -> std::result::Result<qd_collection::matrix::DistanceMatrix, Status> {
        self.max_timeout(&r)?;
        let req = ops::MatrixRequest {
            using: r.using.unwrap_or_default(),
            filter: filter_opt(r.filter, "filter")?,
            sample: r.sample.map(usize_of).unwrap_or(qd_collection::matrix::DEFAULT_SAMPLE),
            limit: r.limit.map(usize_of).unwrap_or(qd_collection::matrix::DEFAULT_NEIGHBOURS),
            shard_key: shard_keys(r.shard_key_selector)?,
            consistency: q::read_consistency(r.read_consistency)?,
        };
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        blocking(move || ops::search_matrix(&reg, &name, req)).await
    }

    /// Declare or drop a payload index (answers like an update).
    async fn set_index(
        &self,
        collection: String,
        field: String,
        wait: Option<bool>,
        spec: Option<qd_collection::catalog::PayloadIndexSpec>,
    ) -> Reply<pb::PointsOperationResponse> {
        let t = Instant::now();
        if spec.is_some() {
            field
                .parse::<qd_core::json_path::JsonPath>()
                .map_err(|e| Status::invalid_argument(format!("Bad request: field_name: {e}")))?;
        }
        crate::meta::set_payload_index(&self.state, collection, field, spec).await?;
        Ok(Response::new(operation_response(t, completed(wait))))
    }
}

fn completed(wait: Option<bool>) -> pb::UpdateResult {
    let status = if wait.unwrap_or(false) { pb::UpdateStatus::Completed } else { pb::UpdateStatus::Acknowledged };
    pb::UpdateResult { operation_id: Some(0), status: status as i32 }
}

fn operation_response(t: Instant, result: pb::UpdateResult) -> pb::PointsOperationResponse {
    pb::PointsOperationResponse { result: Some(result), time: elapsed(t), usage: None }
}

/// Classic batches answer one list per request.
fn batch_results(lists: Vec<Vec<qd_collection::operations::ScoredPoint>>) -> Vec<pb::BatchResult> {
    lists.into_iter().map(|l| pb::BatchResult { result: results::scored_list(l) }).collect()
}

#[tonic::async_trait]
impl Points for PointsService {
    async fn upsert(&self, request: Request<pb::UpsertPoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::upsert(r.points, r.update_filter, r.update_mode);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn delete(&self, request: Request<pb::DeletePoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::selection(r.points, "points").map(UpdateOp::Delete);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn get(&self, request: Request<pb::GetPoints>) -> Reply<pb::GetResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let ids = point_ids(r.ids, "ids")?;
        let keys = shard_keys(r.shard_key_selector)?;
        let with = WithSelectors {
            payload: payload_selector(r.with_payload, PayloadSelector::All),
            vector: vector_selector(r.with_vectors),
        };
        let reg = self.state.registry.clone();
        let name = r.collection_name;
        let consistency = super::convert::query::read_consistency(r.read_consistency)?;
        let records = blocking(move || {
            crate::ops::retrieve(&reg, &name, &ids, &with, ReadScope { keys: keys.as_deref(), consistency })
        })
        .await?;
        Ok(Response::new(pb::GetResponse { result: results::records(records), time: elapsed(t), usage: None }))
    }

    async fn update_vectors(&self, request: Request<pb::UpdatePointVectors>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::update_vectors(r.points, r.update_filter);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn delete_vectors(&self, request: Request<pb::DeletePointVectors>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::delete_vectors(r.points_selector, r.vectors);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn set_payload(&self, request: Request<pb::SetPayloadPoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::set_payload(r.payload, r.points_selector, r.key);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn overwrite_payload(&self, request: Request<pb::SetPayloadPoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::overwrite_payload(r.payload, r.points_selector, r.key);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn delete_payload(&self, request: Request<pb::DeletePayloadPoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::delete_payload(r.keys, r.points_selector);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn clear_payload(&self, request: Request<pb::ClearPayloadPoints>) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let op = writes::selection(r.points, "points").map(UpdateOp::ClearPayload);
        self.apply(r.collection_name, (r.wait, r.ordering), op, shard_keys(r.shard_key_selector)).await
    }

    async fn create_field_index(
        &self,
        request: Request<pb::CreateFieldIndexCollection>,
    ) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let spec = index::spec(r.field_type, r.field_index_params)?;
        self.set_index(r.collection_name, r.field_name, r.wait, Some(spec)).await
    }

    async fn delete_field_index(
        &self,
        request: Request<pb::DeleteFieldIndexCollection>,
    ) -> Reply<pb::PointsOperationResponse> {
        let r = request.into_inner();
        self.max_timeout(&r)?;
        self.set_index(r.collection_name, r.field_name, r.wait, None).await
    }

    async fn create_vector_name(
        &self,
        request: Request<pb::CreateVectorNameRequest>,
    ) -> Reply<pb::PointsOperationResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let spec = super::convert::config::new_vector(r.vector_config)?;
        crate::meta::set_vector(&self.state, r.collection_name, r.vector_name, Some(spec)).await?;
        Ok(Response::new(operation_response(t, completed(r.wait))))
    }

    async fn delete_vector_name(
        &self,
        request: Request<pb::DeleteVectorNameRequest>,
    ) -> Reply<pb::PointsOperationResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        crate::meta::set_vector(&self.state, r.collection_name, r.vector_name, None).await?;
        Ok(Response::new(operation_response(t, completed(r.wait))))
    }

    async fn search(&self, request: Request<pb::SearchPoints>) -> Reply<pb::SearchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let req = q::search_points(r)?;
        let reg = self.state.registry.clone();
        let hits = blocking(move || ops::query(&reg, &name, req)).await?;
        Ok(Response::new(pb::SearchResponse { result: results::scored_list(hits), time: elapsed(t), usage: None }))
    }

    async fn search_batch(&self, request: Request<pb::SearchBatchPoints>) -> Reply<pb::SearchBatchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let mut reqs = r.search_points.into_iter().map(q::search_points).collect::<Result<Vec<_>>>()?;
        batch_consistency(&mut reqs, r.read_consistency)?;
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let lists = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
        Ok(Response::new(pb::SearchBatchResponse { result: batch_results(lists), time: elapsed(t), usage: None }))
    }

    async fn search_groups(&self, request: Request<pb::SearchPointGroups>) -> Reply<pb::SearchGroupsResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let g = q::search_groups(r)?;
        let reg = self.state.registry.clone();
        let groups = blocking(move || ops::groups(&reg, &name, g)).await?;
        Ok(Response::new(pb::SearchGroupsResponse {
            result: Some(results::groups(groups)),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn scroll(&self, request: Request<pb::ScrollPoints>) -> Reply<pb::ScrollResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let req = q::scroll(r)?;
        let reg = self.state.registry.clone();
        let (points, next) = blocking(move || ops::scroll(&reg, &name, req)).await?;
        Ok(Response::new(pb::ScrollResponse {
            next_page_offset: next.map(point_id_out),
            result: results::records(points),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn recommend(&self, request: Request<pb::RecommendPoints>) -> Reply<pb::RecommendResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let req = q::recommend_points(r)?;
        let reg = self.state.registry.clone();
        let hits = blocking(move || ops::query(&reg, &name, req)).await?;
        Ok(Response::new(pb::RecommendResponse { result: results::scored_list(hits), time: elapsed(t), usage: None }))
    }

    async fn recommend_batch(&self, request: Request<pb::RecommendBatchPoints>) -> Reply<pb::RecommendBatchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let mut reqs = r.recommend_points.into_iter().map(q::recommend_points).collect::<Result<Vec<_>>>()?;
        batch_consistency(&mut reqs, r.read_consistency)?;
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let lists = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
        Ok(Response::new(pb::RecommendBatchResponse { result: batch_results(lists), time: elapsed(t), usage: None }))
    }

    async fn recommend_groups(&self, request: Request<pb::RecommendPointGroups>) -> Reply<pb::RecommendGroupsResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let g = q::recommend_groups(r)?;
        let reg = self.state.registry.clone();
        let groups = blocking(move || ops::groups(&reg, &name, g)).await?;
        Ok(Response::new(pb::RecommendGroupsResponse {
            result: Some(results::groups(groups)),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn discover(&self, request: Request<pb::DiscoverPoints>) -> Reply<pb::DiscoverResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let req = q::discover_points(r)?;
        let reg = self.state.registry.clone();
        let hits = blocking(move || ops::query(&reg, &name, req)).await?;
        Ok(Response::new(pb::DiscoverResponse { result: results::scored_list(hits), time: elapsed(t), usage: None }))
    }

    async fn discover_batch(&self, request: Request<pb::DiscoverBatchPoints>) -> Reply<pb::DiscoverBatchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let mut reqs = r.discover_points.into_iter().map(q::discover_points).collect::<Result<Vec<_>>>()?;
        batch_consistency(&mut reqs, r.read_consistency)?;
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let lists = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
        Ok(Response::new(pb::DiscoverBatchResponse { result: batch_results(lists), time: elapsed(t), usage: None }))
    }

    async fn count(&self, request: Request<pb::CountPoints>) -> Reply<pb::CountResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let filter = filter_opt(r.filter, "filter")?;
        let keys = shard_keys(r.shard_key_selector)?;
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let consistency = super::convert::query::read_consistency(r.read_consistency)?;
        let n = blocking(move || {
            crate::ops::count(&reg, &name, filter.as_ref(), ReadScope { keys: keys.as_deref(), consistency })
        })
        .await?;
        Ok(Response::new(pb::CountResponse {
            result: Some(pb::CountResult { count: n as u64 }),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn update_batch(&self, request: Request<pb::UpdateBatchPoints>) -> Reply<pb::UpdateBatchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let ops_list = writes::batch(r.operations)?;
        let (reg, name, wait) = (self.state.registry.clone(), r.collection_name, r.wait.unwrap_or(false));
        let ordering = write_ordering(r.ordering)?;
        let done = blocking(move || ops::update_batch(&reg, &name, ops_list, (wait, ordering))).await?;
        Ok(Response::new(pb::UpdateBatchResponse {
            result: done.into_iter().map(results::update_result).collect(),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn query(&self, request: Request<pb::QueryPoints>) -> Reply<pb::QueryResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let req = q::query_points(r)?;
        let reg = self.state.registry.clone();
        let hits = blocking(move || ops::query(&reg, &name, req)).await?;
        Ok(Response::new(pb::QueryResponse { result: results::scored_list(hits), time: elapsed(t), usage: None }))
    }

    async fn query_batch(&self, request: Request<pb::QueryBatchPoints>) -> Reply<pb::QueryBatchResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let mut reqs = r.query_points.into_iter().map(q::query_points).collect::<Result<Vec<_>>>()?;
        batch_consistency(&mut reqs, r.read_consistency)?;
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let lists = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
        Ok(Response::new(pb::QueryBatchResponse { result: batch_results(lists), time: elapsed(t), usage: None }))
    }

    async fn query_groups(&self, request: Request<pb::QueryPointGroups>) -> Reply<pb::QueryGroupsResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let name = r.collection_name.clone();
        let g = q::query_groups(r)?;
        let reg = self.state.registry.clone();
        let groups = blocking(move || ops::groups(&reg, &name, g)).await?;
        Ok(Response::new(pb::QueryGroupsResponse {
            result: Some(results::groups(groups)),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn facet(&self, request: Request<pb::FacetCounts>) -> Reply<pb::FacetResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        self.max_timeout(&r)?;
        let key: qd_core::json_path::JsonPath =
            r.key.parse().map_err(|e| Status::invalid_argument(format!("Bad request: key: {e}")))?;
        let filter = filter_opt(r.filter, "filter")?;
        let keys = shard_keys(r.shard_key_selector)?;
        let limit = r.limit.map(|l| l as usize).unwrap_or(10);
        let (reg, name) = (self.state.registry.clone(), r.collection_name);
        let consistency = super::convert::query::read_consistency(r.read_consistency)?;
        let hits = blocking(move || {
            crate::ops::facet(
                &reg,
                &name,
                &key,
                filter.as_ref(),
                limit,
                ReadScope { keys: keys.as_deref(), consistency },
            )
        })
        .await?;
        let hits = hits
            .into_iter()
            .filter_map(|(value, count)| Some(pb::FacetHit { value: Some(facet_value(&value)?), count: count as u64 }))
            .collect();
        Ok(Response::new(pb::FacetResponse { hits, time: elapsed(t), usage: None }))
    }

    async fn search_matrix_pairs(
        &self,
        request: Request<pb::SearchMatrixPoints>,
    ) -> Reply<pb::SearchMatrixPairsResponse> {
        let t = Instant::now();
        let m = self.matrix(request.into_inner()).await?;
        let pairs = m
            .pairs()
            .into_iter()
            .map(|(a, b, score)| pb::SearchMatrixPair { a: Some(point_id_out(a)), b: Some(point_id_out(b)), score })
            .collect();
        Ok(Response::new(pb::SearchMatrixPairsResponse {
            result: Some(pb::SearchMatrixPairs { pairs }),
            time: elapsed(t),
            usage: None,
        }))
    }

    async fn search_matrix_offsets(
        &self,
        request: Request<pb::SearchMatrixPoints>,
    ) -> Reply<pb::SearchMatrixOffsetsResponse> {
        let t = Instant::now();
        let m = self.matrix(request.into_inner()).await?;
        let (rows, cols, scores) = m.offsets();
        let out = pb::SearchMatrixOffsets {
            offsets_row: rows.into_iter().map(|r| r as u64).collect(),
            offsets_col: cols.into_iter().map(|c| c as u64).collect(),
            scores,
            ids: m.ids.into_iter().map(point_id_out).collect(),
        };
        Ok(Response::new(pb::SearchMatrixOffsetsResponse { result: Some(out), time: elapsed(t), usage: None }))
    }
}

fn facet_value(v: &serde_json::Value) -> Option<pb::FacetValue> {
    use pb::facet_value::Variant;
    let variant = match v {
        serde_json::Value::String(s) => Variant::StringValue(s.clone()),
        serde_json::Value::Bool(b) => Variant::BoolValue(*b),
        serde_json::Value::Number(n) => Variant::IntegerValue(n.as_i64()?),
        _ => return None,
    };
    Some(pb::FacetValue { variant: Some(variant) })
}

/// A request's `ordering` (weak when absent).
fn write_ordering(o: Option<pb::WriteOrdering>) -> Result<qd_collection::operations::WriteOrdering> {
    use qd_collection::operations::WriteOrdering;
    match o.map(|o| pb::WriteOrderingType::try_from(o.r#type)) {
        None | Some(Ok(pb::WriteOrderingType::Weak)) => Ok(WriteOrdering::Weak),
        Some(Ok(pb::WriteOrderingType::Medium)) => Ok(WriteOrdering::Medium),
        Some(Ok(pb::WriteOrderingType::Strong)) => Ok(WriteOrdering::Strong),
        Some(Err(e)) => Err(invalid(format!("ordering: {e}"))),
    }
}

/// A request with a collection and a `timeout` (seconds).
trait Timed {
    fn collection(&self) -> &str;
    fn timeout(&self) -> Option<u64>;
}

macro_rules! timed {
    ($($t:ident),* $(,)?) => {$(
        impl Timed for pb::$t {
            fn collection(&self) -> &str {
                &self.collection_name
            }
            fn timeout(&self) -> Option<u64> {
                self.timeout
            }
        }
    )*};
}

timed!(
    ClearPayloadPoints,
    CountPoints,
    CreateFieldIndexCollection,
    CreateVectorNameRequest,
    DeleteFieldIndexCollection,
    DeletePayloadPoints,
    DeletePointVectors,
    DeletePoints,
    DeleteVectorNameRequest,
    DiscoverBatchPoints,
    DiscoverPoints,
    FacetCounts,
    GetPoints,
    QueryBatchPoints,
    QueryPointGroups,
    QueryPoints,
    RecommendBatchPoints,
    RecommendPointGroups,
    RecommendPoints,
    ScrollPoints,
    SearchBatchPoints,
    SearchMatrixPoints,
    SearchPointGroups,
    SearchPoints,
    SetPayloadPoints,
    UpdateBatchPoints,
    UpdatePointVectors,
    UpsertPoints,
);

/// A batch's `read_consistency` applies to each of its requests (as in Qdrant, the batch's
/// setting is the one used).
fn batch_consistency(
    reqs: &mut [qd_collection::query::QueryRequest],
    consistency: Option<pb::ReadConsistency>,
) -> Result<()> {
    if consistency.is_some() {
        let c = q::read_consistency(consistency)?;
        reqs.iter_mut().for_each(|r| r.consistency = c);
    }
    Ok(())
}
