//! Typed operations that both APIs call. REST handlers and gRPC services parse their wire
//! forms into the collection layer's types and then call these functions, so the two cannot
//! drift. Everything here blocks: callers run it on the blocking pool.

use qd_collection::consistency::ReadConsistency;
use qd_collection::groups::PointGroup;
use qd_collection::operations::{Record, ScoredPoint, ShardKey, UpdateOp, UpdateResult, WithSelectors, WriteOrdering};
use qd_collection::query::{LookupFrom, OrderBy, QueryRequest};
use qd_collection::rate_limit::Access;
use qd_collection::shard_set::ReadScope;
use qd_collection::{CollectionError, Registry};
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::PointId;

use crate::api::response::ApiError;

type R<T> = Result<T, ApiError>;

/// Resolve `lookup_from` ids of a request against the other collection (see
/// [`qd_collection::query::resolve_lookups`]).
pub fn resolve_lookups(registry: &Registry, req: &mut QueryRequest) -> R<()> {
    // The lookup reads with the request's consistency, as Qdrant's does.
    let scope = ReadScope { keys: None, consistency: req.consistency };
    let fetch = |lookup: &LookupFrom, vector: &str, id: &PointId| -> qd_collection::error::Result<_> {
        let other = registry.get(&lookup.collection)?;
        let with =
            WithSelectors { payload: PayloadSelector::None, vector: VectorSelector::Names(vec![vector.to_string()]) };
        let rec = other.retrieve(&[*id], &with, scope)?.pop().ok_or_else(|| {
            CollectionError::NotFound(format!("No point with id {id} found in collection {}", lookup.collection))
        })?;
        rec.vector.and_then(|mut m| m.remove(vector)).ok_or_else(|| {
            CollectionError::BadRequest(format!(
                "Wrong input: point {id} of collection {} has no vector named {vector:?}",
                lookup.collection
            ))
        })
    };
    Ok(qd_collection::query::resolve_lookups(req, &fetch)?)
}

/// The searches a query runs: itself and every prefetch at any depth (its read-rate cost).
fn searches(req: &QueryRequest) -> usize {
    1 + req.all_prefetches().len()
}

/// Every `limit` of a query (its own and its prefetches') is at least 1, as Qdrant validates
/// them (422; REST requests are checked while parsed, with their body paths, gRPC ones here).
fn positive_limits(req: &QueryRequest) -> R<()> {
    let zero = |path: &str| ApiError::validation(format!("{path}limit: value 0 invalid, must be 1 or larger"));
    if req.limit == 0 {
        return Err(zero(""));
    }
    match req.all_prefetches().into_iter().find(|(_, p)| p.limit == 0) {
        Some((path, _)) => Err(zero(&format!("{path}."))),
        None => Ok(()),
    }
}

/// Every `order_by` of a query (its own and its prefetches') has a range index.
fn order_indexes(c: &qd_collection::Collection, req: &QueryRequest) -> R<()> {
    use qd_collection::query::Query;
    let levels = std::iter::once(&req.query).chain(req.all_prefetches().into_iter().map(|(_, p)| &p.query));
    for query in levels {
        if let Some(Query::OrderBy(o)) = query {
            c.require_order_index(&o.key)?;
        }
    }
    Ok(())
}

/// One query (search, recommend and the query API are all queries).
pub fn query(registry: &Registry, collection: &str, mut req: QueryRequest) -> R<Vec<ScoredPoint>> {
    positive_limits(&req)?;
    let c = registry.get(collection)?;
    c.check_strict(|s| s.query(&req))?;
    order_indexes(&c, &req)?;
    c.charge(Access::Read, searches(&req))?;
    resolve_lookups(registry, &mut req)?;
    Ok(c.query(&req)?)
}

/// Several queries on one collection, answered in order.
pub fn query_batch(registry: &Registry, collection: &str, reqs: Vec<QueryRequest>) -> R<Vec<Vec<ScoredPoint>>> {
    qd_core::limits::at_most("searches", reqs.len(), qd_core::limits::MAX_BATCH)?;
    for (i, r) in reqs.iter().enumerate() {
        positive_limits(r).map_err(|e| e.within(&format!("searches[{i}]")))?;
    }
    let c = registry.get(collection)?;
    c.check_strict(|s| {
        s.batch(reqs.len())?;
        reqs.iter().try_for_each(|r| s.query(r))
    })?;
    for (i, r) in reqs.iter().enumerate() {
        order_indexes(&c, r).map_err(|e| e.within(&format!("searches[{i}]")))?;
    }
    c.charge(Access::Read, reqs.iter().map(searches).sum())?;
    reqs.into_iter()
        .map(|mut r| {
            resolve_lookups(registry, &mut r)?;
            Ok(c.query(&r)?)
        })
        .collect()
}

/// A distance matrix request (`/points/search/matrix/*`, gRPC `SearchMatrix*`).
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    pub using: String,
    pub filter: Option<Filter>,
    pub sample: usize,
    pub limit: usize,
    pub shard_key: Option<Vec<ShardKey>>,
    pub consistency: ReadConsistency,
}

pub fn search_matrix(
    registry: &Registry,
    collection: &str,
    req: MatrixRequest,
) -> R<qd_collection::matrix::DistanceMatrix> {
    let c = registry.get(collection)?;
    // The matrix runs one search of `limit` per sampled point.
    c.check_strict(|s| {
        s.limit(req.sample.saturating_mul(req.limit))?;
        req.filter.as_ref().map_or(Ok(()), |f| s.filter(f, true))
    })?;
    c.charge(Access::Read, req.sample.saturating_add(1))?;
    let scope = ReadScope { keys: req.shard_key.as_deref(), consistency: req.consistency };
    Ok(c.search_matrix(&req.using, req.filter, req.sample, req.limit, scope)?)
}

/// `with_lookup` of a groups request: each group id is looked up in another collection.
#[derive(Debug, Clone)]
pub struct GroupLookup {
    pub collection: String,
    pub with: WithSelectors,
}

/// A grouped query: the query, the payload key to group by and the group size.
#[derive(Debug, Clone)]
pub struct GroupsRequest {
    pub query: QueryRequest,
    pub group_by: JsonPath,
    pub group_size: usize,
    pub lookup: Option<GroupLookup>,
}

pub fn groups(registry: &Registry, collection: &str, mut g: GroupsRequest) -> R<Vec<PointGroup>> {
    positive_limits(&g.query)?;
    if g.group_size == 0 {
        return Err(ApiError::validation("group_size: value 0 invalid, must be 1 or larger"));
    }
    let c = registry.get(collection)?;
    c.check_strict(|s| s.query(&g.query))?;
    order_indexes(&c, &g.query)?;
    c.charge(Access::Read, searches(&g.query))?;
    let lookup = match &g.lookup {
        Some(l) => Some((registry.get(&l.collection)?, &l.with)),
        None => None,
    };
    resolve_lookups(registry, &mut g.query)?;
    let mut groups = c.query_groups(&g.query, &g.group_by, g.group_size, g.query.limit)?;
    if let Some((other, with)) = lookup {
        for grp in groups.iter_mut() {
            if let Ok(id) = serde_json::from_value::<PointId>(grp.id.clone()) {
                let scope = ReadScope { keys: None, consistency: g.query.consistency };
                grp.lookup = other.retrieve(&[id], with, scope)?.pop();
            }
        }
    }
    Ok(groups)
}

/// Updates applied in order after every one of them was validated: a batch with a bad
/// operation changes nothing.
pub fn update_batch(
    registry: &Registry,
    collection: &str,
    ops: Vec<(UpdateOp, Option<Vec<ShardKey>>)>,
    (wait, ordering): (bool, WriteOrdering),
) -> R<Vec<UpdateResult>> {
    qd_core::limits::at_most("operations", ops.len(), qd_core::limits::MAX_BATCH)?;
    let c = registry.get(collection)?;
    for (i, (op, key)) in ops.iter().enumerate() {
        c.validate_update(op, key.as_deref()).map_err(|e| ApiError::from(e).prefixed(&format!("operations[{i}]")))?;
        c.check_strict(|s| s.update(op, &c.usage()))
            .map_err(|e| ApiError::from(e).prefixed(&format!("operations[{i}]")))?;
    }
    c.charge(Access::Write, ops.iter().map(|(op, _)| write_cost(op)).sum())?;
    ops.into_iter().map(|(op, key)| Ok(c.update_ordered(op, wait, key.as_deref(), ordering)?)).collect()
}

/// One update, with its `wait` and `ordering`.
pub fn update(
    registry: &Registry,
    collection: &str,
    op: UpdateOp,
    (wait, ordering): (bool, WriteOrdering),
    key: Option<&[ShardKey]>,
) -> R<UpdateResult> {
    let c = registry.get(collection)?;
    c.check_strict(|s| s.update(&op, &c.usage()))?;
    c.charge(Access::Write, write_cost(&op))?;
    Ok(c.update_ordered(op, wait, key, ordering)?)
}

/// A write's write-rate cost: the points it names, or one when it selects by filter.
fn write_cost(op: &UpdateOp) -> usize {
    op.explicit_ids().map_or(1, |ids| ids.len().max(1))
}

/// Points by id, in the order given (the read-rate cost is the number of ids).
pub fn retrieve(
    registry: &Registry,
    collection: &str,
    ids: &[PointId],
    with: &WithSelectors,
    scope: ReadScope<'_>,
) -> R<Vec<Record>> {
    let c = registry.get(collection)?;
    c.charge(Access::Read, ids.len().max(1))?;
    Ok(c.retrieve(ids, with, scope)?)
}

/// A page of points: in id order from `offset`, or in payload order with `order_by`.
#[derive(Debug, Clone)]
pub struct ScrollRequest {
    pub filter: Option<Filter>,
    pub offset: Option<PointId>,
    pub limit: usize,
    pub with: WithSelectors,
    pub order_by: Option<OrderBy>,
    pub shard_key: Option<Vec<ShardKey>>,
    pub consistency: ReadConsistency,
}

/// The page and, in id order, the id where the next page starts.
pub fn scroll(registry: &Registry, collection: &str, req: ScrollRequest) -> R<(Vec<Record>, Option<PointId>)> {
    if req.order_by.is_some() && req.offset.is_some() {
        return Err(ApiError::bad_request(
            "Bad request: offset cannot be used together with order_by; use order_by.start_from",
        ));
    }
    qd_core::limits::at_most("limit", req.limit, qd_core::limits::MAX_RESULTS)?;
    if req.limit == 0 {
        return Err(ApiError::validation("limit: value 0 invalid, must be 1 or larger"));
    }
    let c = registry.get(collection)?;
    c.check_strict(|s| {
        s.limit(req.limit)?;
        req.filter.as_ref().map_or(Ok(()), |f| s.filter(f, true))
    })?;
    if let Some(order) = &req.order_by {
        c.require_order_index(&order.key)?;
    }
    c.charge(Access::Read, 1)?;
    let keys = ReadScope { keys: req.shard_key.as_deref(), consistency: req.consistency };
    match &req.order_by {
        Some(order) => Ok((c.scroll_ordered(order, req.filter.as_ref(), req.limit, &req.with, keys)?, None)),
        None => Ok(c.scroll(req.offset, req.filter.as_ref(), req.limit, &req.with, keys)?),
    }
}

/// Points passing a filter (strict mode checks the filter's keys).
pub fn count(registry: &Registry, collection: &str, filter: Option<&Filter>, scope: ReadScope<'_>) -> R<usize> {
    let c = registry.get(collection)?;
    c.check_strict(|s| filter.map_or(Ok(()), |f| s.filter(f, true)))?;
    c.charge(Access::Read, 1)?;
    Ok(c.count(filter, scope)?)
}

/// Value counts of a payload key (strict mode checks the limit and the filter).
pub fn facet(
    registry: &Registry,
    collection: &str,
    key: &JsonPath,
    filter: Option<&Filter>,
    limit: usize,
    scope: ReadScope<'_>,
) -> R<Vec<(serde_json::Value, usize)>> {
    let c = registry.get(collection)?;
    c.check_strict(|s| {
        s.limit(limit)?;
        filter.map_or(Ok(()), |f| s.filter(f, true))
    })?;
    if limit == 0 {
        return Err(ApiError::validation("limit: value 0 invalid, must be 1 or larger"));
    }
    c.require_facet_index(key)?;
    c.charge(Access::Read, 1)?;
    Ok(c.facet(key, filter, limit, scope)?)
}
