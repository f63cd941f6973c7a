//! `/points/query` (+ batch) and `/points/recommend` (+ batch): JSON forms parsed by hand into
//! the collection's query types, so every error names the field that is wrong.

use std::time::Instant;

use axum::extract::Path;
use qd_collection::operations::{SearchSettings, WithSelectors};
use qd_collection::query::{
    ContextPair, LookupFrom, OrderBy, Prefetch, Query, QueryRequest, RecommendStrategy, VectorOrId,
};
use qd_core::config::QuantizationSearchParams;
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::vectors::{kind, VectorItem};
use qd_core::PointId;
use serde_json::{json, Map, Value};

use super::inference::{self, Side};
use super::models::TimeoutParam;
use super::response::{ok, ApiError, ApiResult, Body, Params};
use super::{blocking, State};
use crate::ops::{self, GroupLookup, GroupsRequest};

type R<T> = Result<T, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("Bad request: {}", msg.into()))
}

/// Fields of an object, refusing any not in `allowed`.
fn object<'a>(v: &'a Value, what: &str, allowed: &[&str]) -> R<&'a Map<String, Value>> {
    let o = v.as_object().ok_or_else(|| bad(format!("{what}: expected an object, got {}", kind(v))))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{what}: unknown field `{k}`")));
    }
    Ok(o)
}

fn get<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn usize_field(o: &Map<String, Value>, key: &str, what: &str) -> R<Option<usize>> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(format!("{what}.{key}: expected a non-negative integer"))),
    }
}

/// A count that must be at least 1 (`limit`, `group_size`): 0 is Qdrant's 422 validation
/// error, named by the field's path in the body.
fn positive_field(o: &Map<String, Value>, key: &str, what: &str) -> R<Option<usize>> {
    let v = usize_field(o, key, what)?;
    if v == Some(0) {
        return Err(ApiError::validation(format!("{}: value 0 invalid, must be 1 or larger", body_path(what, key))));
    }
    Ok(v)
}

/// The path of `key` in the request body: `what` without its leading request name
/// (`query request.prefetch[0]` → `prefetch[0].limit`).
fn body_path(what: &str, key: &str) -> String {
    let inner = match what.find(" request") {
        Some(i) => what[i + " request".len()..].trim_start_matches('.'),
        None => what,
    };
    if inner.is_empty() {
        key.to_string()
    } else {
        format!("{inner}.{key}")
    }
}

fn f32_field(o: &Map<String, Value>, key: &str, what: &str) -> R<Option<f32>> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(|n| Some(n as f32)).ok_or_else(|| bad(format!("{what}.{key}: expected a number"))),
    }
}

fn string_field(o: &Map<String, Value>, key: &str, what: &str) -> R<Option<String>> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => {
            v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| bad(format!("{what}.{key}: expected a string")))
        }
    }
}

fn filter_field(o: &Map<String, Value>, key: &str, what: &str) -> R<Option<Filter>> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => Filter::from_json_at(v, &format!("{what}.{key}")).map(Some).map_err(ApiError::from),
    }
}

fn vector_or_id(v: &Value, what: &str) -> R<VectorOrId> {
    match v {
        Value::Number(_) | Value::String(_) => {
            serde_json::from_value::<PointId>(v.clone()).map(VectorOrId::Id).map_err(|e| bad(format!("{what}: {e}")))
        }
        Value::Array(_) | Value::Object(_) => {
            let item = VectorItem::from_json(v.clone()).map_err(|e| bad(format!("{what}: {e}")))?;
            inference::resolve(item, Side::Query, what).map(VectorOrId::Vector)
        }
        other => Err(bad(format!("{what}: expected a vector or a point id, got {}", kind(other)))),
    }
}

fn examples(v: Option<&Value>, what: &str) -> R<Vec<VectorOrId>> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, x)| vector_or_id(x, &format!("{what}[{i}]"))).collect()
        }
        Some(other) => Err(bad(format!("{what}: expected a list, got {}", kind(other)))),
    }
}

/// `{"target", "feedback": [{"example", "score"}], "strategy": {"naive": {"a", "b", "c"}}}`.
fn relevance_feedback(v: &Value, what: &str) -> R<Query> {
    let o = object(v, what, &["target", "feedback", "strategy"])?;
    let target = get(o, "target").ok_or_else(|| bad(format!("{what}.target: missing")))?;
    let target = vector_or_id(target, &format!("{what}.target"))?;
    let items = match get(o, "feedback") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => return Err(bad(format!("{what}.feedback: expected a list, got {}", kind(other)))),
    };
    let feedback = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let w = format!("{what}.feedback[{i}]");
            let io = object(item, &w, &["example", "score"])?;
            let example = get(io, "example").ok_or_else(|| bad(format!("{w}.example: missing")))?;
            let score = f32_field(io, "score", &w)?.ok_or_else(|| bad(format!("{w}.score: missing")))?;
            Ok((vector_or_id(example, &format!("{w}.example"))?, score))
        })
        .collect::<R<Vec<_>>>()?;
    let sw = format!("{what}.strategy");
    let strategy = get(o, "strategy").ok_or_else(|| bad(format!("{sw}: missing")))?;
    let so = object(strategy, &sw, &["naive"])?;
    let nw = format!("{sw}.naive");
    let naive = get(so, "naive").ok_or_else(|| bad(format!("{nw}: missing (the only strategy)")))?;
    let n = object(naive, &nw, &["a", "b", "c"])?;
    let coef = |k: &str| f32_field(n, k, &nw)?.ok_or_else(|| bad(format!("{nw}.{k}: missing")));
    Ok(Query::RelevanceFeedback { target, feedback, a: coef("a")?, b: coef("b")?, c: coef("c")? })
}

/// `context`: a list of `{"positive": .., "negative": ..}` pairs (or one pair); absent is none.
fn context_pairs(v: Option<&Value>, what: &str) -> R<Vec<ContextPair>> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        Some(other) => return Err(bad(format!("{what}: expected a list of pairs, got {}", kind(other)))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let w = format!("{what}[{i}]");
            let o = object(p, &w, &["positive", "negative"])?;
            let side = |name: &str| {
                let v = get(o, name).ok_or_else(|| bad(format!("{w}.{name}: missing")))?;
                vector_or_id(v, &format!("{w}.{name}"))
            };
            Ok(ContextPair { positive: side("positive")?, negative: side("negative")? })
        })
        .collect()
}

fn strategy(v: Option<&Value>, what: &str) -> R<RecommendStrategy> {
    match v.and_then(Value::as_str) {
        None => Ok(RecommendStrategy::AverageVector),
        Some("average_vector") => Ok(RecommendStrategy::AverageVector),
        Some("best_score") => Ok(RecommendStrategy::BestScore),
        Some("sum_scores") => Ok(RecommendStrategy::SumScores),
        Some(s) => {
            Err(bad(format!("{what}: unknown strategy {s:?}, expected average_vector, best_score or sum_scores")))
        }
    }
}

pub fn order_by(v: &Value, what: &str) -> R<OrderBy> {
    let (key, direction, start) = match v {
        Value::String(k) => (k.clone(), None, None),
        Value::Object(_) => {
            let o = object(v, what, &["key", "direction", "start_from"])?;
            let key = string_field(o, "key", what)?.ok_or_else(|| bad(format!("{what}.key: missing")))?;
            (key, string_field(o, "direction", what)?, get(o, "start_from").cloned())
        }
        other => return Err(bad(format!("{what}: expected a key or an object, got {}", kind(other)))),
    };
    let key: JsonPath = key.parse().map_err(|e| bad(format!("{what}.key: {e}")))?;
    let descending = match direction.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => return Err(bad(format!("{what}.direction: expected asc or desc, got {d:?}"))),
    };
    let start_from = match start {
        None => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => Some(
            qd_core::filter::parse_datetime(&s)
                .map(|d| d.timestamp_micros() as f64)
                .ok_or_else(|| bad(format!("{what}.start_from: {s:?} is not a number or a datetime")))?,
        ),
        Some(other) => {
            return Err(bad(format!("{what}.start_from: expected a number or a datetime, got {}", kind(&other))))
        }
    };
    Ok(OrderBy { key, descending, start_from })
}

/// The `query` field in any of its forms.
fn parse_query(v: &Value, what: &str) -> R<Query> {
    match v {
        Value::Array(_) | Value::Number(_) | Value::String(_) => Ok(Query::Nearest(vector_or_id(v, what)?)),
        Value::Object(o) => {
            if let Some(n) = o.get("nearest") {
                object(v, what, &["nearest", "mmr"])?;
                let target = vector_or_id(n, &format!("{what}.nearest"))?;
                let Some(mmr) = get(o, "mmr") else { return Ok(Query::Nearest(target)) };
                let w = format!("{what}.mmr");
                let m = object(mmr, &w, &["diversity", "candidates_limit"])?;
                return Ok(Query::NearestMmr {
                    target,
                    diversity: f32_field(m, "diversity", &w)?.unwrap_or(0.5),
                    candidates_limit: usize_field(m, "candidates_limit", &w)?,
                });
            }
            if let Some(r) = o.get("recommend") {
                object(v, what, &["recommend"])?;
                let w = format!("{what}.recommend");
                let ro = object(r, &w, &["positive", "negative", "strategy"])?;
                return Ok(Query::Recommend {
                    positive: examples(get(ro, "positive"), &format!("{w}.positive"))?,
                    negative: examples(get(ro, "negative"), &format!("{w}.negative"))?,
                    strategy: strategy(get(ro, "strategy"), &format!("{w}.strategy"))?,
                });
            }
            if let Some(f) = o.get("fusion") {
                object(v, what, &["fusion"])?;
                return match f.as_str() {
                    Some("rrf") => Ok(Query::Rrf { k: None, weights: None }),
                    Some("dbsf") => Ok(Query::Dbsf),
                    _ => Err(bad(format!("{what}.fusion: expected \"rrf\" or \"dbsf\""))),
                };
            }
            if let Some(r) = o.get("rrf") {
                object(v, what, &["rrf"])?;
                let w = format!("{what}.rrf");
                let ro = object(r, &w, &["k", "weights"])?;
                let weights = match get(ro, "weights") {
                    None => None,
                    Some(Value::Array(a)) => Some(
                        a.iter()
                            .map(|x| {
                                x.as_f64()
                                    .map(|f| f as f32)
                                    .ok_or_else(|| bad(format!("{w}.weights: expected numbers")))
                            })
                            .collect::<R<Vec<f32>>>()?,
                    ),
                    Some(_) => return Err(bad(format!("{w}.weights: expected a list of numbers"))),
                };
                return Ok(Query::Rrf { k: usize_field(ro, "k", &w)?, weights });
            }
            if let Some(ob) = o.get("order_by") {
                object(v, what, &["order_by"])?;
                return Ok(Query::OrderBy(order_by(ob, &format!("{what}.order_by"))?));
            }
            if let Some(s) = o.get("sample") {
                object(v, what, &["sample"])?;
                return match s.as_str() {
                    Some("random") => Ok(Query::Sample),
                    _ => Err(bad(format!("{what}.sample: expected \"random\""))),
                };
            }
            // A sparse vector or a document given directly as the query.
            if o.contains_key("indices")
                || o.contains_key("text")
                || o.contains_key("image")
                || o.contains_key("object")
            {
                return Ok(Query::Nearest(vector_or_id(v, what)?));
            }
            if let Some(d) = o.get("discover") {
                object(v, what, &["discover"])?;
                let w = format!("{what}.discover");
                let d = object(d, &w, &["target", "context"])?;
                let target = get(d, "target").ok_or_else(|| bad(format!("{w}.target: missing")))?;
                return Ok(Query::Discover {
                    target: vector_or_id(target, &format!("{w}.target"))?,
                    context: context_pairs(get(d, "context"), &format!("{w}.context"))?,
                });
            }
            if let Some(c) = o.get("context") {
                object(v, what, &["context"])?;
                return Ok(Query::Context(context_pairs(Some(c), &format!("{what}.context"))?));
            }
            if let Some(r) = o.get("relevance_feedback") {
                object(v, what, &["relevance_feedback"])?;
                return relevance_feedback(r, &format!("{what}.relevance_feedback"));
            }
            if o.contains_key("formula") {
                return qd_core::formula::Formula::from_json(v, what).map(Query::Formula).map_err(|e| bad(e.message));
            }
            Err(bad(format!(
                "{what}: expected a vector, a point id, or one of nearest, recommend, fusion, rrf, order_by, sample"
            )))
        }
        other => Err(bad(format!("{what}: expected a query, got {}", kind(other)))),
    }
}

fn params(o: &Map<String, Value>, what: &str) -> R<SearchSettings> {
    match get(o, "params") {
        None => Ok(SearchSettings::default()),
        Some(p) => {
            let w = format!("{what}.params");
            let po = object(p, &w, &["hnsw_ef", "exact", "quantization", "indexed_only", "acorn"])?;
            let exact = match get(po, "exact") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad(format!("{w}.exact: expected a boolean"))),
            };
            let quantization = match get(po, "quantization") {
                None => None,
                Some(q) => {
                    let q: QuantizationSearchParams =
                        serde_json::from_value(q.clone()).map_err(|e| bad(format!("{w}.quantization: {e}")))?;
                    q.validate().map_err(|e| ApiError::from(e).within(&body_path(&w, "quantization")))?;
                    Some(q)
                }
            };
            Ok(SearchSettings { hnsw_ef: usize_field(po, "hnsw_ef", &w)?, exact, quantization })
        }
    }
}

fn prefetches(v: Option<&Value>, what: &str) -> R<Vec<Prefetch>> {
    let items: Vec<&Value> = match v {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        Some(other) => return Err(bad(format!("{what}: expected an object or a list, got {}", kind(other)))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let w = format!("{what}[{i}]");
            let o = object(
                p,
                &w,
                &["prefetch", "query", "using", "filter", "params", "score_threshold", "limit", "lookup_from"],
            )?;
            let params = params(o, &w)?;
            Ok(Prefetch {
                prefetch: prefetches(get(o, "prefetch"), &format!("{w}.prefetch"))?,
                query: get(o, "query").map(|q| parse_query(q, &format!("{w}.query"))).transpose()?,
                using: string_field(o, "using", &w)?.unwrap_or_default(),
                filter: filter_field(o, "filter", &w)?,
                score_threshold: f32_field(o, "score_threshold", &w)?,
                limit: positive_field(o, "limit", &w)?.unwrap_or(10),
                params,
                lookup_from: lookup_from(o, &w)?,
            })
        })
        .collect()
}

fn selectors(o: &Map<String, Value>, what: &str, default_payload: PayloadSelector) -> R<WithSelectors> {
    let payload = match get(o, "with_payload") {
        None => default_payload,
        Some(v) => PayloadSelector::from_json(v).map_err(|e| bad(format!("{what}.{e}")))?,
    };
    let vector = match get(o, "with_vector").or_else(|| get(o, "with_vectors")) {
        None => VectorSelector::None,
        Some(v) => VectorSelector::from_json(v).map_err(|e| bad(format!("{what}.{e}")))?,
    };
    Ok(WithSelectors { payload, vector })
}

/// `lookup_from: {"collection": ..., "vector": ...}`.
fn lookup_from(o: &Map<String, Value>, what: &str) -> R<Option<LookupFrom>> {
    let Some(v) = get(o, "lookup_from") else { return Ok(None) };
    let w = format!("{what}.lookup_from");
    let lo = object(v, &w, &["collection", "vector"])?;
    let collection = string_field(lo, "collection", &w)?.ok_or_else(|| bad(format!("{w}.collection: missing")))?;
    Ok(Some(LookupFrom { collection, vector: string_field(lo, "vector", &w)? }))
}

pub fn parse_query_request(v: &Value, what: &str) -> R<QueryRequest> {
    let o = object(
        v,
        what,
        &[
            "prefetch",
            "query",
            "using",
            "filter",
            "params",
            "score_threshold",
            "limit",
            "offset",
            "with_vector",
            "with_payload",
            "lookup_from",
            "shard_key",
        ],
    )?;
    let prefetch = prefetches(get(o, "prefetch"), &format!("{what}.prefetch"))?;
    let query = get(o, "query").map(|q| parse_query(q, &format!("{what}.query"))).transpose()?;
    let limit = positive_field(o, "limit", what)?.unwrap_or(10);
    request(o, what, prefetch, query, limit)
}

/// The fields every query-shaped request shares, around its own `prefetch`, `query`, `limit`.
fn request(
    o: &Map<String, Value>,
    what: &str,
    prefetch: Vec<Prefetch>,
    query: Option<Query>,
    limit: usize,
) -> R<QueryRequest> {
    let params = params(o, what)?;
    Ok(QueryRequest {
        prefetch,
        query,
        using: string_field(o, "using", what)?.unwrap_or_default(),
        filter: filter_field(o, "filter", what)?,
        score_threshold: f32_field(o, "score_threshold", what)?,
        limit,
        offset: usize_field(o, "offset", what)?.unwrap_or(0),
        with: selectors(o, what, PayloadSelector::None)?,
        params,
        shard_key: super::points::shard_keys(get(o, "shard_key").cloned())?,
        lookup_from: lookup_from(o, what)?,
        consistency: Default::default(),
    })
}

/// `/points/recommend` body -> a query with a recommend clause.
pub fn parse_recommend_request(v: &Value, what: &str) -> R<QueryRequest> {
    let o = object(
        v,
        what,
        &[
            "positive",
            "negative",
            "strategy",
            "filter",
            "params",
            "limit",
            "offset",
            "with_payload",
            "with_vector",
            "score_threshold",
            "using",
            "lookup_from",
            "shard_key",
        ],
    )?;
    let limit = positive_field(o, "limit", what)?.ok_or_else(|| bad(format!("{what}.limit: missing field")))?;
    let query = Query::Recommend {
        positive: examples(get(o, "positive"), &format!("{what}.positive"))?,
        negative: examples(get(o, "negative"), &format!("{what}.negative"))?,
        strategy: strategy(get(o, "strategy"), &format!("{what}.strategy"))?,
    };
    request(o, what, Vec::new(), Some(query), limit)
}

/// `/points/discover` body -> a discovery query (a context query without `target`).
pub fn parse_discover_request(v: &Value, what: &str) -> R<QueryRequest> {
    let o = object(
        v,
        what,
        &[
            "target",
            "context",
            "filter",
            "params",
            "limit",
            "offset",
            "with_payload",
            "with_vector",
            "using",
            "lookup_from",
            "shard_key",
        ],
    )?;
    let limit = positive_field(o, "limit", what)?.ok_or_else(|| bad(format!("{what}.limit: missing field")))?;
    let context = context_pairs(get(o, "context"), &format!("{what}.context"))?;
    let query = match get(o, "target") {
        Some(t) => Query::Discover { target: vector_or_id(t, &format!("{what}.target"))?, context },
        None => Query::Context(context),
    };
    request(o, what, Vec::new(), Some(query), limit)
}

/// `{"searches": [...]}` of a batch endpoint, each item parsed with `parse`.
fn batch(body: &Value, parse: fn(&Value, &str) -> R<QueryRequest>) -> R<Vec<QueryRequest>> {
    let o = object(body, "body", &["searches"])?;
    let items = o.get("searches").and_then(Value::as_array).ok_or_else(|| bad("searches: expected a list"))?;
    items.iter().enumerate().map(|(i, v)| parse(v, &format!("searches[{i}]"))).collect()
}

/// `req` reading with the `consistency` of the request's parameters.
pub(crate) fn consistent(mut req: QueryRequest, p: &TimeoutParam) -> R<QueryRequest> {
    req.consistency = p.read_consistency()?;
    Ok(req)
}

/// Every request of a batch reading with the `consistency` of the batch's parameters.
pub(crate) fn consistent_all(mut reqs: Vec<QueryRequest>, p: &TimeoutParam) -> R<Vec<QueryRequest>> {
    let c = p.read_consistency()?;
    reqs.iter_mut().for_each(|r| r.consistency = c);
    Ok(reqs)
}

/// Run one parsed query on the blocking pool.
async fn run_query(state: State, name: String, req: QueryRequest) -> R<Vec<qd_collection::operations::ScoredPoint>> {
    let reg = state.registry.clone();
    blocking(move || ops::query(&reg, &name, req)).await
}

pub async fn query(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let points = run_query(state, name, consistent(parse_query_request(&body, "query request")?, &p)?).await?;
    Ok(ok(t, json!({ "points": points })))
}

pub async fn query_batch(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let reqs = consistent_all(batch(&body, parse_query_request)?, &p)?;
    let reg = state.registry.clone();
    let lists = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
    let results: Vec<Value> = lists.into_iter().map(|points| json!({ "points": points })).collect();
    Ok(ok(t, results))
}

pub async fn recommend(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let points = run_query(state, name, consistent(parse_recommend_request(&body, "recommend request")?, &p)?).await?;
    Ok(ok(t, points))
}

pub async fn discover(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let points = run_query(state, name, consistent(parse_discover_request(&body, "discover request")?, &p)?).await?;
    Ok(ok(t, points))
}

pub async fn discover_batch(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let reqs = consistent_all(batch(&body, parse_discover_request)?, &p)?;
    let reg = state.registry.clone();
    let results = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
    Ok(ok(t, results))
}

pub async fn recommend_batch(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let reqs = consistent_all(batch(&body, parse_recommend_request)?, &p)?;
    let reg = state.registry.clone();
    let results = blocking(move || ops::query_batch(&reg, &name, reqs)).await?;
    Ok(ok(t, results))
}

/// `group_by`, `group_size`, `limit`, `with_lookup` of a groups request; the rest is a query.
fn parse_groups(v: &Value, what: &str, recommend_shape: bool) -> R<GroupsRequest> {
    let Value::Object(o) = v else { return Err(bad(format!("{what}: expected an object"))) };
    let mut rest = o.clone();
    let group_by = rest
        .remove("group_by")
        .and_then(|g| g.as_str().map(str::to_string))
        .ok_or_else(|| bad(format!("{what}.group_by: missing or not a string")))?;
    let group_by: JsonPath = group_by.parse().map_err(|e| bad(format!("{what}.group_by: {e}")))?;
    let group_size = match rest.remove("group_size").filter(|v| !v.is_null()) {
        None => 3,
        Some(g) if g.as_u64() == Some(0) => {
            return Err(ApiError::validation(format!(
                "{}: value 0 invalid, must be 1 or larger",
                body_path(what, "group_size")
            )))
        }
        Some(g) => g.as_u64().ok_or_else(|| bad(format!("{what}.group_size: expected a positive integer")))? as usize,
    };
    let lookup = match rest.remove("with_lookup").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::String(c)) => Some(GroupLookup {
            collection: c,
            with: WithSelectors { payload: PayloadSelector::All, vector: VectorSelector::None },
        }),
        Some(Value::Object(l)) => {
            let c = l
                .get("collection")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{what}.with_lookup.collection: missing")))?;
            let p = match l.get("with_payload").filter(|v| !v.is_null()) {
                None => PayloadSelector::All,
                Some(v) => PayloadSelector::from_json(v).map_err(|e| bad(format!("{what}.with_lookup.{e}")))?,
            };
            let vs = match l.get("with_vectors").or_else(|| l.get("with_vector")).filter(|v| !v.is_null()) {
                None => VectorSelector::None,
                Some(v) => VectorSelector::from_json(v).map_err(|e| bad(format!("{what}.with_lookup.{e}")))?,
            };
            Some(GroupLookup { collection: c.to_string(), with: WithSelectors { payload: p, vector: vs } })
        }
        Some(_) => return Err(bad(format!("{what}.with_lookup: expected a collection name or an object"))),
    };
    let rest = Value::Object(rest);
    let query = if recommend_shape {
        if rest.get("vector").is_some() {
            let mut r = rest.clone();
            let q = r.as_object_mut().and_then(|m| m.remove("vector")).unwrap_or(Value::Null);
            let named = match q {
                Value::Object(ref m) if m.contains_key("name") => {
                    let name = m.get("name").cloned().unwrap_or(Value::Null);
                    let vec = m.get("vector").cloned().unwrap_or(Value::Null);
                    if let Some(obj) = r.as_object_mut() {
                        obj.insert("using".into(), name);
                    }
                    vec
                }
                other => other,
            };
            if let Some(obj) = r.as_object_mut() {
                obj.insert("query".into(), named);
            }
            parse_query_request(&r, what)?
        } else {
            parse_recommend_request(&rest, what)?
        }
    } else {
        parse_query_request(&rest, what)?
    };
    Ok(GroupsRequest { query, group_by, group_size, lookup })
}

async fn run_groups(state: State, name: String, g: GroupsRequest) -> R<Value> {
    let reg = state.registry.clone();
    let groups = blocking(move || ops::groups(&reg, &name, g)).await?;
    Ok(json!({ "groups": groups }))
}

pub async fn query_groups(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let mut g = parse_groups(&body, "query groups request", false)?;
    g.query.consistency = p.read_consistency()?;
    Ok(ok(t, run_groups(state, name, g).await?))
}

/// `/points/search/groups` (`vector` + `group_by`) and `/points/recommend/groups`
/// (`positive`/`negative` + `group_by`): the classic request shapes.
pub async fn classic_groups(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<Value>,
) -> ApiResult {
    let t = Instant::now();
    let mut g = parse_groups(&body, "groups request", true)?;
    g.query.consistency = p.read_consistency()?;
    Ok(ok(t, run_groups(state, name, g).await?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn zero_limits_are_validation_errors_named_by_body_path() {
        assert_eq!(body_path("query request", "limit"), "limit");
        assert_eq!(body_path("query request.prefetch[0]", "limit"), "prefetch[0].limit");
        assert_eq!(body_path("searches[2]", "limit"), "searches[2].limit");
        let e = parse_query_request(&json!({"query": [1.0], "limit": 0}), "query request").expect_err("zero");
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.message, "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]");
        let e = parse_query_request(
            &json!({"prefetch": {"query": [1.0], "limit": 0}, "query": {"fusion": "rrf"}}),
            "query request",
        )
        .expect_err("zero");
        assert!(e.message.contains("[prefetch[0].limit: value 0"), "{}", e.message);
        assert!(parse_query_request(&json!({"query": [1.0], "limit": 1}), "query request").is_ok());
        let e = parse_query_request(
            &json!({"query": [1.0], "params": {"quantization": {"oversampling": 0.5}}}),
            "query request",
        )
        .expect_err("below 1");
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.message,
            "Validation error in JSON body: [params.quantization.oversampling: value 0.5 invalid, must be 1.0 or larger]"
        );
    }
}
