//! Read requests as typed requests: the query API, classic search / recommend (each a query
//! with one step), their groups, and scroll.

use qd_collection::consistency::ReadConsistency;
use qd_collection::operations::{SearchSettings, WithSelectors};
use qd_collection::query::{
    ContextPair, LookupFrom, OrderBy, Prefetch, Query, QueryRequest, RecommendStrategy, VectorOrId,
};
use qd_core::config::QuantizationSearchParams;
use qd_core::json_path::JsonPath;
use qd_core::selectors::PayloadSelector;
use qdrant_client::qdrant as pb;

use super::filter::filter_opt;
use super::values::{payload_selector, point_id, point_ids, shard_keys, timestamp, usize_of, vector_selector};
use super::vectors::{query_vector, vector_or_id};
use super::{invalid, Result};
use crate::ops::{GroupLookup, GroupsRequest, ScrollRequest};

/// `params` of a search; `indexed_only`, `acorn` and `idf` are accepted and not used.
pub fn settings(p: Option<pb::SearchParams>, what: &str) -> Result<SearchSettings> {
    let Some(p) = p else { return Ok(SearchSettings::default()) };
    let quantization = match p.quantization {
        None => None,
        Some(q) => {
            let q = QuantizationSearchParams {
                ignore: q.ignore.unwrap_or(false),
                rescore: q.rescore,
                oversampling: q.oversampling,
            };
            q.validate()
                .map_err(|e| crate::api::response::ApiError::from(e).within(&format!("{what}.params.quantization")))?;
            Some(q)
        }
    };
    Ok(SearchSettings { hnsw_ef: p.hnsw_ef.map(usize_of), exact: p.exact.unwrap_or(false), quantization })
}

fn strategy(s: Option<i32>, what: &str) -> Result<RecommendStrategy> {
    match s.map(pb::RecommendStrategy::try_from) {
        None | Some(Ok(pb::RecommendStrategy::AverageVector)) => Ok(RecommendStrategy::AverageVector),
        Some(Ok(pb::RecommendStrategy::BestScore)) => Ok(RecommendStrategy::BestScore),
        Some(Ok(pb::RecommendStrategy::SumScores)) => Ok(RecommendStrategy::SumScores),
        Some(Err(_)) => Err(invalid(format!("{what}.strategy: unknown recommend strategy"))),
    }
}

pub fn order_by(o: pb::OrderBy, what: &str) -> Result<OrderBy> {
    use pb::start_from::Value as S;
    let key: JsonPath = o.key.parse().map_err(|e| invalid(format!("{what}.key: {e}")))?;
    let descending = match o.direction.map(pb::Direction::try_from) {
        None | Some(Ok(pb::Direction::Asc)) => false,
        Some(Ok(pb::Direction::Desc)) => true,
        Some(Err(_)) => return Err(invalid(format!("{what}.direction: expected Asc or Desc"))),
    };
    let start_from = match o.start_from.and_then(|s| s.value) {
        None => None,
        Some(S::Float(f)) => Some(f),
        Some(S::Integer(i)) => Some(i as f64),
        Some(S::Timestamp(t)) => Some(timestamp(t, &format!("{what}.start_from"))?.timestamp_micros() as f64),
        Some(S::Datetime(s)) => Some(
            qd_core::filter::parse_datetime(&s)
                .map(|d| d.timestamp_micros() as f64)
                .ok_or_else(|| invalid(format!("{what}.start_from: {s:?} is not a datetime")))?,
        ),
    };
    Ok(OrderBy { key, descending, start_from })
}

fn inputs(items: Vec<pb::VectorInput>, what: &str) -> Result<Vec<VectorOrId>> {
    items.into_iter().enumerate().map(|(i, v)| vector_or_id(v, &format!("{what}[{i}]"))).collect()
}

fn context_input(pairs: Vec<pb::ContextInputPair>, what: &str) -> Result<Vec<ContextPair>> {
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let w = format!("{what}[{i}]");
            let side = |v: Option<pb::VectorInput>, name: &str| {
                v.ok_or_else(|| invalid(format!("{w}.{name}: missing")))
                    .and_then(|v| vector_or_id(v, &format!("{w}.{name}")))
            };
            Ok(ContextPair { positive: side(p.positive, "positive")?, negative: side(p.negative, "negative")? })
        })
        .collect()
}

/// An example of the classic discover request: a point id or a vector.
fn example(e: Option<pb::VectorExample>, what: &str) -> Result<VectorOrId> {
    match e.and_then(|e| e.example) {
        Some(pb::vector_example::Example::Id(id)) => Ok(VectorOrId::Id(point_id(Some(id), what)?)),
        Some(pb::vector_example::Example::Vector(v)) => Ok(VectorOrId::Vector(query_vector(v, what)?)),
        None => Err(invalid(format!("{what}: missing"))),
    }
}

/// `read_consistency` of a read (one replica when unset).
pub fn read_consistency(c: Option<pb::ReadConsistency>) -> Result<ReadConsistency> {
    use pb::read_consistency::Value;
    match c.and_then(|c| c.value) {
        None => Ok(ReadConsistency::default()),
        Some(Value::Factor(n)) => ReadConsistency::factor(n).map_err(|e| invalid(format!("read_consistency: {e}"))),
        Some(Value::Type(t)) => match pb::ReadConsistencyType::try_from(t) {
            Ok(pb::ReadConsistencyType::All) => Ok(ReadConsistency::All),
            Ok(pb::ReadConsistencyType::Majority) => Ok(ReadConsistency::Majority),
            Ok(pb::ReadConsistencyType::Quorum) => Ok(ReadConsistency::Quorum),
            Err(_) => Err(invalid(format!("read_consistency: unknown type {t}"))),
        },
    }
}

/// `DiscoverPoints`: a discovery query (a context query without a target).
pub fn discover_points(d: pb::DiscoverPoints) -> Result<QueryRequest> {
    let context = d
        .context
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let w = format!("context[{i}]");
            Ok(ContextPair {
                positive: example(p.positive, &format!("{w}.positive"))?,
                negative: example(p.negative, &format!("{w}.negative"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let query = match d.target.and_then(|t| t.target) {
        Some(pb::target_vector::Target::Single(e)) => Query::Discover { target: example(Some(e), "target")?, context },
        None => Query::Context(context),
    };
    let common = Common {
        using: d.using,
        filter: d.filter,
        score_threshold: None,
        limit: usize_of(d.limit),
        offset: d.offset,
        with_payload: d.with_payload,
        with_vectors: d.with_vectors,
        params: d.params,
        shard_key_selector: d.shard_key_selector,
        lookup_from: d.lookup_from,
        read_consistency: d.read_consistency,
    };
    common.request(Vec::new(), Some(query), "discover")
}

fn unsupported(kind: &str, what: &str) -> crate::api::response::ApiError {
    invalid(format!("{what}.{kind}: this query kind is not supported yet"))
}

/// The `query` of the query API in any of its forms.
pub fn query(q: pb::Query, what: &str) -> Result<Query> {
    use pb::query::Variant;
    Ok(match q.variant {
        Some(Variant::Nearest(v)) => Query::Nearest(vector_or_id(v, &format!("{what}.nearest"))?),
        Some(Variant::Recommend(r)) => Query::Recommend {
            positive: inputs(r.positive, &format!("{what}.recommend.positive"))?,
            negative: inputs(r.negative, &format!("{what}.recommend.negative"))?,
            strategy: strategy(r.strategy, &format!("{what}.recommend"))?,
        },
        Some(Variant::Fusion(f)) => match pb::Fusion::try_from(f) {
            Ok(pb::Fusion::Rrf) => Query::Rrf { k: None, weights: None },
            Ok(pb::Fusion::Dbsf) => Query::Dbsf,
            Err(_) => return Err(invalid(format!("{what}.fusion: expected RRF or DBSF"))),
        },
        Some(Variant::Rrf(r)) => {
            Query::Rrf { k: r.k.map(|k| k as usize), weights: (!r.weights.is_empty()).then_some(r.weights) }
        }
        Some(Variant::OrderBy(o)) => Query::OrderBy(order_by(o, &format!("{what}.order_by"))?),
        Some(Variant::Sample(s)) => match pb::Sample::try_from(s) {
            Ok(pb::Sample::Random) => Query::Sample,
            Err(_) => return Err(invalid(format!("{what}.sample: expected Random"))),
        },
        Some(Variant::NearestWithMmr(n)) => {
            let target = n.nearest.ok_or_else(|| invalid(format!("{what}.nearest: missing")))?;
            let mmr = n.mmr.unwrap_or_default();
            Query::NearestMmr {
                target: vector_or_id(target, &format!("{what}.nearest"))?,
                diversity: mmr.diversity.unwrap_or(0.5),
                candidates_limit: mmr.candidates_limit.map(|c| c as usize),
            }
        }
        Some(Variant::Discover(d)) => {
            let w = format!("{what}.discover");
            let target = d.target.ok_or_else(|| invalid(format!("{w}.target: missing")))?;
            Query::Discover {
                target: vector_or_id(target, &format!("{w}.target"))?,
                context: context_input(d.context.map(|c| c.pairs).unwrap_or_default(), &format!("{w}.context"))?,
            }
        }
        Some(Variant::Context(c)) => Query::Context(context_input(c.pairs, &format!("{what}.context"))?),
        Some(Variant::Formula(f)) => Query::Formula(super::formula::formula(f, &format!("{what}.formula"))?),
        Some(Variant::RelevanceFeedback(r)) => {
            let w = format!("{what}.relevance_feedback");
            let target = r.target.ok_or_else(|| invalid(format!("{w}.target: missing")))?;
            let feedback = r
                .feedback
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let example = item.example.ok_or_else(|| invalid(format!("{w}.feedback[{i}].example: missing")))?;
                    Ok((vector_or_id(example, &format!("{w}.feedback[{i}].example"))?, item.score))
                })
                .collect::<Result<Vec<_>>>()?;
            let Some(pb::feedback_strategy::Variant::Naive(n)) = r.strategy.and_then(|s| s.variant) else {
                return Err(invalid(format!("{w}.strategy: missing (naive is the only strategy)")));
            };
            Query::RelevanceFeedback {
                target: vector_or_id(target, &format!("{w}.target"))?,
                feedback,
                a: n.a,
                b: n.b,
                c: n.c,
            }
        }
        Some(Variant::Text(_)) => return Err(unsupported("text", what)),
        None => return Err(invalid(format!("{what}: empty query"))),
    })
}

/// `lookup_from`; its shard key selector is not used (lookups read every shard).
fn lookup_from(l: Option<pb::LookupLocation>) -> Option<LookupFrom> {
    l.map(|l| LookupFrom { collection: l.collection_name, vector: l.vector_name })
}

fn prefetch(p: pb::PrefetchQuery, what: &str) -> Result<Prefetch> {
    Ok(Prefetch {
        prefetch: prefetches(p.prefetch, &format!("{what}.prefetch"))?,
        query: p.query.map(|q| query(q, &format!("{what}.query"))).transpose()?,
        using: p.using.unwrap_or_default(),
        filter: filter_opt(p.filter, &format!("{what}.filter"))?,
        score_threshold: p.score_threshold,
        limit: p.limit.map(usize_of).unwrap_or(10),
        params: settings(p.params, what)?,
        lookup_from: lookup_from(p.lookup_from),
    })
}

fn prefetches(items: Vec<pb::PrefetchQuery>, what: &str) -> Result<Vec<Prefetch>> {
    items.into_iter().enumerate().map(|(i, p)| prefetch(p, &format!("{what}[{i}]"))).collect()
}

/// The fields every query-shaped message shares, around its own query and prefetches.
struct Common {
    using: Option<String>,
    filter: Option<pb::Filter>,
    score_threshold: Option<f32>,
    limit: usize,
    offset: Option<u64>,
    with_payload: Option<pb::WithPayloadSelector>,
    with_vectors: Option<pb::WithVectorsSelector>,
    params: Option<pb::SearchParams>,
    shard_key_selector: Option<pb::ShardKeySelector>,
    lookup_from: Option<pb::LookupLocation>,
    read_consistency: Option<pb::ReadConsistency>,
}

impl Common {
    /// The typed request; `with_payload` defaults to none, as in Qdrant's search forms.
    fn request(self, prefetch: Vec<Prefetch>, query: Option<Query>, what: &str) -> Result<QueryRequest> {
        Ok(QueryRequest {
            prefetch,
            query,
            using: self.using.unwrap_or_default(),
            filter: filter_opt(self.filter, "filter")?,
            score_threshold: self.score_threshold,
            limit: self.limit,
            offset: self.offset.map(usize_of).unwrap_or(0),
            with: WithSelectors {
                payload: payload_selector(self.with_payload, PayloadSelector::None),
                vector: vector_selector(self.with_vectors),
            },
            params: settings(self.params, what)?,
            shard_key: shard_keys(self.shard_key_selector)?,
            lookup_from: lookup_from(self.lookup_from),
            consistency: read_consistency(self.read_consistency)?,
        })
    }
}

/// `QueryPoints` (the query API).
pub fn query_points(q: pb::QueryPoints) -> Result<QueryRequest> {
    let prefetch = prefetches(q.prefetch, "prefetch")?;
    let query = q.query.map(|v| query(v, "query")).transpose()?;
    let common = Common {
        using: q.using,
        filter: q.filter,
        score_threshold: q.score_threshold,
        limit: q.limit.map(usize_of).unwrap_or(10),
        offset: q.offset,
        with_payload: q.with_payload,
        with_vectors: q.with_vectors,
        params: q.params,
        shard_key_selector: q.shard_key_selector,
        lookup_from: q.lookup_from,
        read_consistency: q.read_consistency,
    };
    common.request(prefetch, query, "query")
}

/// The vector of a classic search: dense `vector`, or sparse with `sparse_indices`.
fn search_vector(vector: Vec<f32>, sparse_indices: Option<pb::SparseIndices>) -> Result<Query> {
    let v = pb::Vector {
        vector: Some(match sparse_indices {
            Some(i) => pb::vector::Vector::Sparse(pb::SparseVector { values: vector, indices: i.data }),
            None => pb::vector::Vector::Dense(pb::DenseVector { data: vector }),
        }),
        ..Default::default()
    };
    Ok(Query::Nearest(VectorOrId::Vector(query_vector(v, "vector")?)))
}

/// `SearchPoints`: a query with one nearest step.
pub fn search_points(s: pb::SearchPoints) -> Result<QueryRequest> {
    let query = search_vector(s.vector, s.sparse_indices)?;
    let common = Common {
        using: s.vector_name,
        filter: s.filter,
        score_threshold: s.score_threshold,
        limit: usize_of(s.limit),
        offset: s.offset,
        with_payload: s.with_payload,
        with_vectors: s.with_vectors,
        params: s.params,
        shard_key_selector: s.shard_key_selector,
        lookup_from: None,
        read_consistency: s.read_consistency,
    };
    common.request(Vec::new(), Some(query), "search")
}

/// Examples of a classic recommend: ids and vectors, ids first.
fn examples(ids: Vec<pb::PointId>, vectors: Vec<pb::Vector>, what: &str) -> Result<Vec<VectorOrId>> {
    let mut out: Vec<VectorOrId> = point_ids(ids, what)?.into_iter().map(VectorOrId::Id).collect();
    for (i, v) in vectors.into_iter().enumerate() {
        out.push(VectorOrId::Vector(query_vector(v, &format!("{what}_vectors[{i}]"))?));
    }
    Ok(out)
}

/// The recommend step of a classic recommend (and of its groups form).
fn recommend_query(
    positive: (Vec<pb::PointId>, Vec<pb::Vector>),
    negative: (Vec<pb::PointId>, Vec<pb::Vector>),
    strategy_value: Option<i32>,
) -> Result<Query> {
    Ok(Query::Recommend {
        positive: examples(positive.0, positive.1, "positive")?,
        negative: examples(negative.0, negative.1, "negative")?,
        strategy: strategy(strategy_value, "recommend")?,
    })
}

/// `RecommendPoints`: a query with one recommend step.
pub fn recommend_points(r: pb::RecommendPoints) -> Result<QueryRequest> {
    let query = recommend_query((r.positive, r.positive_vectors), (r.negative, r.negative_vectors), r.strategy)?;
    let common = Common {
        using: r.using,
        filter: r.filter,
        score_threshold: r.score_threshold,
        limit: usize_of(r.limit),
        offset: r.offset,
        with_payload: r.with_payload,
        with_vectors: r.with_vectors,
        params: r.params,
        shard_key_selector: r.shard_key_selector,
        lookup_from: r.lookup_from,
        read_consistency: r.read_consistency,
    };
    common.request(Vec::new(), Some(query), "recommend")
}

fn with_lookup(l: Option<pb::WithLookup>) -> Option<GroupLookup> {
    l.map(|l| GroupLookup {
        collection: l.collection,
        with: WithSelectors {
            payload: payload_selector(l.with_payload, PayloadSelector::All),
            vector: vector_selector(l.with_vectors),
        },
    })
}

fn groups(
    query: QueryRequest,
    group_by: &str,
    group_size: u64,
    lookup: Option<pb::WithLookup>,
) -> Result<GroupsRequest> {
    let group_by: JsonPath = group_by.parse().map_err(|e| invalid(format!("group_by: {e}")))?;
    // `group_size: 0` is refused by `ops::groups`, with Qdrant's validation wording.
    Ok(GroupsRequest { query, group_by, group_size: usize_of(group_size), lookup: with_lookup(lookup) })
}

pub fn query_groups(q: pb::QueryPointGroups) -> Result<GroupsRequest> {
    let prefetch = prefetches(q.prefetch, "prefetch")?;
    let query = q.query.map(|v| query(v, "query")).transpose()?;
    let common = Common {
        using: q.using,
        filter: q.filter,
        score_threshold: q.score_threshold,
        limit: q.limit.map(usize_of).unwrap_or(10),
        offset: None,
        with_payload: q.with_payload,
        with_vectors: q.with_vectors,
        params: q.params,
        shard_key_selector: q.shard_key_selector,
        lookup_from: q.lookup_from,
        read_consistency: q.read_consistency,
    };
    groups(common.request(prefetch, query, "query")?, &q.group_by, q.group_size.unwrap_or(3), q.with_lookup)
}

pub fn search_groups(s: pb::SearchPointGroups) -> Result<GroupsRequest> {
    let query = search_vector(s.vector, s.sparse_indices)?;
    let common = Common {
        using: s.vector_name,
        filter: s.filter,
        score_threshold: s.score_threshold,
        limit: s.limit as usize,
        offset: None,
        with_payload: s.with_payload,
        with_vectors: s.with_vectors,
        params: s.params,
        shard_key_selector: s.shard_key_selector,
        lookup_from: None,
        read_consistency: s.read_consistency,
    };
    groups(common.request(Vec::new(), Some(query), "search")?, &s.group_by, u64::from(s.group_size), s.with_lookup)
}

pub fn recommend_groups(r: pb::RecommendPointGroups) -> Result<GroupsRequest> {
    let query = recommend_query((r.positive, r.positive_vectors), (r.negative, r.negative_vectors), r.strategy)?;
    let common = Common {
        using: r.using,
        filter: r.filter,
        score_threshold: r.score_threshold,
        limit: r.limit as usize,
        offset: None,
        with_payload: r.with_payload,
        with_vectors: r.with_vectors,
        params: r.params,
        shard_key_selector: r.shard_key_selector,
        lookup_from: r.lookup_from,
        read_consistency: r.read_consistency,
    };
    let req = common.request(Vec::new(), Some(query), "recommend")?;
    groups(req, &r.group_by, u64::from(r.group_size), r.with_lookup)
}

pub fn scroll(s: pb::ScrollPoints) -> Result<ScrollRequest> {
    Ok(ScrollRequest {
        consistency: read_consistency(s.read_consistency)?,
        filter: filter_opt(s.filter, "filter")?,
        offset: s.offset.map(|id| point_id(Some(id), "offset")).transpose()?,
        limit: s.limit.map(|l| l as usize).unwrap_or(10),
        with: WithSelectors {
            payload: payload_selector(s.with_payload, PayloadSelector::All),
            vector: vector_selector(s.with_vectors),
        },
        order_by: s.order_by.map(|o| order_by(o, "order_by")).transpose()?,
        shard_key: shard_keys(s.shard_key_selector)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense_input(v: Vec<f32>) -> pb::VectorInput {
        pb::VectorInput { variant: Some(pb::vector_input::Variant::Dense(pb::DenseVector { data: v })) }
    }

    #[test]
    fn a_query_with_prefetches_and_fusion_converts() {
        let q = pb::QueryPoints {
            collection_name: "c".into(),
            prefetch: vec![pb::PrefetchQuery {
                query: Some(pb::Query { variant: Some(pb::query::Variant::Nearest(dense_input(vec![1.0, 0.0]))) }),
                using: Some("dense".into()),
                limit: Some(50),
                ..Default::default()
            }],
            query: Some(pb::Query { variant: Some(pb::query::Variant::Fusion(pb::Fusion::Dbsf as i32)) }),
            limit: Some(5),
            ..Default::default()
        };
        let r = query_points(q).expect("valid");
        assert_eq!((r.limit, r.prefetch.len(), r.prefetch[0].limit), (5, 1, 50));
        assert!(matches!(r.query, Some(Query::Dbsf)));
        assert_eq!(r.prefetch[0].using, "dense");
    }

    #[test]
    fn a_formula_without_expression_is_refused_by_name() {
        let q = pb::Query { variant: Some(pb::query::Variant::Formula(pb::Formula::default())) };
        let e = query(q, "query").expect_err("refused");
        assert!(e.message.contains("formula"), "{}", e.message);
    }

    #[test]
    fn discover_without_target_is_a_context_query() {
        let pair = pb::ContextExamplePair {
            positive: Some(pb::VectorExample { example: Some(pb::vector_example::Example::Id(1u64.into())) }),
            negative: Some(pb::VectorExample { example: Some(pb::vector_example::Example::Id(2u64.into())) }),
        };
        let d = pb::DiscoverPoints { context: vec![pair], limit: 3, ..Default::default() };
        assert!(matches!(discover_points(d).expect("valid").query, Some(Query::Context(p)) if p.len() == 1));
    }

    #[test]
    fn classic_search_with_sparse_indices_is_a_sparse_query() {
        let s = pb::SearchPoints {
            vector: vec![0.5, 1.0],
            sparse_indices: Some(pb::SparseIndices { data: vec![7, 2] }),
            vector_name: Some("text".into()),
            limit: 3,
            ..Default::default()
        };
        let r = search_points(s).expect("valid");
        let Some(Query::Nearest(VectorOrId::Vector(qd_core::vectors::Vector::Sparse(v)))) = r.query else {
            panic!("sparse nearest expected")
        };
        assert_eq!(v.indices, vec![2, 7]);
    }

    #[test]
    fn order_by_reads_direction_and_datetime_start() {
        let o = pb::OrderBy {
            key: "ts".into(),
            direction: Some(pb::Direction::Desc as i32),
            start_from: Some(pb::StartFrom {
                value: Some(pb::start_from::Value::Datetime("2024-01-01T00:00:00Z".into())),
            }),
        };
        let o = order_by(o, "order_by").expect("valid");
        assert!(o.descending);
        assert_eq!(o.start_from, Some(1_704_067_200_000_000.0));
    }
}
