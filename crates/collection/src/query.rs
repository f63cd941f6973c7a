//! The universal query (`/points/query`): nearest neighbours by vector or by point id,
//! recommendations, fusion of prefetched candidate lists (RRF, DBSF), ordering by a payload
//! field, random sampling. Prefetches run first (recursively), each level's filter is pushed
//! down to its prefetches, and the outer query then re-scores or fuses their candidates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use qd_core::filter::{Condition, Filter};
use qd_core::json_path::JsonPath;
use qd_core::vectors::{SparseVector, Vector};
use qd_core::PointId;
use serde_json::Value;

use crate::collection::{preprocess, stored_as_query, Collection};
use crate::consistency::ReadConsistency;
use crate::error::{CollectionError, Result};
use crate::operations::{Record, ScoredPoint, SearchSettings, ShardQuery, WithSelectors};
use crate::shard_set::{ReadScope, ShardKey};

/// A vector given inline (dense, sparse or multi) or by the id of a stored point.
#[derive(Debug, Clone)]
pub enum VectorOrId {
    Vector(Vector),
    Id(PointId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecommendStrategy {
    AverageVector,
    BestScore,
    SumScores,
}

#[derive(Debug, Clone)]
pub struct OrderBy {
    pub key: JsonPath,
    pub descending: bool,
    /// Start value (numbers, or datetimes as microseconds since the epoch).
    pub start_from: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Query {
    Nearest(VectorOrId),
    Recommend {
        positive: Vec<VectorOrId>,
        negative: Vec<VectorOrId>,
        strategy: RecommendStrategy,
    },
    Rrf {
        k: Option<usize>,
        weights: Option<Vec<f32>>,
    },
    /// Nearest candidates re-ranked by maximal marginal relevance (`diversity` in [0, 1]).
    NearestMmr {
        target: VectorOrId,
        diversity: f32,
        candidates_limit: Option<usize>,
    },
    /// Discovery: points near `target` inside the positive zones of the context pairs.
    Discover {
        target: VectorOrId,
        context: Vec<ContextPair>,
    },
    /// Relevance feedback (naive strategy): the target's similarity weighted by `a`, plus, for
    /// every ordered pair of feedback items whose scores differ by `confidence > 0`,
    /// `confidence^b * c` times (similarity to the better one - similarity to the worse one).
    RelevanceFeedback {
        target: VectorOrId,
        feedback: Vec<(VectorOrId, f32)>,
        a: f32,
        b: f32,
        c: f32,
    },
    /// Context search: points in the positive zones of the pairs, no target.
    Context(Vec<ContextPair>),
    Dbsf,
    OrderBy(OrderBy),
    Sample,
    /// Re-score the union of the prefetches' candidates with an expression.
    Formula(qd_core::formula::Formula),
}

/// A `{positive, negative}` pair of a discovery or context query.
#[derive(Debug, Clone)]
pub struct ContextPair {
    pub positive: VectorOrId,
    pub negative: VectorOrId,
}

/// `lookup_from`: ids in a level's query name points of another collection (and vector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFrom {
    pub collection: String,
    /// Vector name there (default: the level's `using`).
    pub vector: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Prefetch {
    pub prefetch: Vec<Prefetch>,
    pub query: Option<Query>,
    pub using: String,
    pub filter: Option<Filter>,
    pub score_threshold: Option<f32>,
    pub limit: usize,
    pub params: SearchSettings,
    pub lookup_from: Option<LookupFrom>,
}

#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub prefetch: Vec<Prefetch>,
    pub query: Option<Query>,
    pub using: String,
    pub filter: Option<Filter>,
    pub score_threshold: Option<f32>,
    pub limit: usize,
    pub offset: usize,
    pub with: WithSelectors,
    pub params: SearchSettings,
    pub shard_key: Option<Vec<ShardKey>>,
    pub lookup_from: Option<LookupFrom>,
    /// How many replicas of each shard the reads ask (`consistency`).
    pub consistency: ReadConsistency,
}

impl QueryRequest {
    /// The shards the request reads and how.
    pub fn scope(&self) -> ReadScope<'_> {
        ReadScope { keys: self.shard_key.as_deref(), consistency: self.consistency }
    }

    /// Every prefetch at any depth, depth first, with its path in the request
    /// (`prefetch[0].prefetch[1]`): what checks of every level walk.
    pub fn all_prefetches(&self) -> Vec<(String, &Prefetch)> {
        fn walk<'a>(ps: &'a [Prefetch], path: &str, out: &mut Vec<(String, &'a Prefetch)>) {
            for (i, p) in ps.iter().enumerate() {
                let here = format!("{path}[{i}]");
                let inner = format!("{here}.prefetch");
                out.push((here, p));
                walk(&p.prefetch, &inner, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.prefetch, "prefetch", &mut out);
        out
    }
}

/// Replace the ids of every level with a `lookup_from` by the vectors they name in the other
/// collection (`fetch(lookup, vector name, id)`), so that they are ordinary vector examples:
/// scored like vectors and not excluded from the results.
pub fn resolve_lookups(
    req: &mut QueryRequest,
    fetch: &dyn Fn(&LookupFrom, &str, &PointId) -> Result<Vector>,
) -> Result<()> {
    fn level(
        query: Option<&mut Query>,
        using: &str,
        lookup: Option<&LookupFrom>,
        fetch: &dyn Fn(&LookupFrom, &str, &PointId) -> Result<Vector>,
    ) -> Result<()> {
        let (Some(query), Some(lookup)) = (query, lookup) else { return Ok(()) };
        let name = lookup.vector.as_deref().unwrap_or(using);
        let mut swap = |it: &mut VectorOrId| -> Result<()> {
            if let VectorOrId::Id(id) = it {
                *it = VectorOrId::Vector(fetch(lookup, name, id)?);
            }
            Ok(())
        };
        match query {
            Query::Nearest(t) | Query::NearestMmr { target: t, .. } => swap(t)?,
            Query::Recommend { positive, negative, .. } => {
                positive.iter_mut().chain(negative.iter_mut()).try_for_each(&mut swap)?;
            }
            Query::Discover { target, context } => {
                swap(target)?;
                context.iter_mut().try_for_each(|p| swap(&mut p.positive).and_then(|_| swap(&mut p.negative)))?;
            }
            Query::Context(pairs) => {
                pairs.iter_mut().try_for_each(|p| swap(&mut p.positive).and_then(|_| swap(&mut p.negative)))?;
            }
            Query::RelevanceFeedback { target, feedback, .. } => {
                swap(target)?;
                feedback.iter_mut().try_for_each(|(e, _)| swap(e))?;
            }
            _ => {}
        }
        Ok(())
    }
    fn prefetches(ps: &mut [Prefetch], fetch: &dyn Fn(&LookupFrom, &str, &PointId) -> Result<Vector>) -> Result<()> {
        for p in ps {
            level(p.query.as_mut(), &p.using, p.lookup_from.as_ref(), fetch)?;
            prefetches(&mut p.prefetch, fetch)?;
        }
        Ok(())
    }
    level(req.query.as_mut(), &req.using, req.lookup_from.as_ref(), fetch)?;
    prefetches(&mut req.prefetch, fetch)
}

/// RRF's default ranking constant, as in Qdrant.
const DEFAULT_RRF_K: usize = 2;

fn and(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn exclude_ids(filter: Option<Filter>, ids: &BTreeSet<PointId>) -> Option<Filter> {
    if ids.is_empty() {
        return filter;
    }
    and(filter, Some(Filter::must_not(vec![Condition::HasId(ids.clone())])))
}

fn only_ids(filter: Option<Filter>, ids: BTreeSet<PointId>) -> Option<Filter> {
    and(filter, Some(Filter::must(vec![Condition::HasId(ids)])))
}

/// One level of the query tree, with everything a level needs.
struct Level<'a> {
    scope: ReadScope<'a>,
    query: Option<&'a Query>,
    using: &'a str,
    filter: Option<Filter>,
    threshold: Option<f32>,
    limit: usize,
    offset: usize,
    params: SearchSettings,
}

impl Collection {
    /// Run a universal query; the result carries payloads and vectors as `req.with` asks.
    pub fn query(&self, req: &QueryRequest) -> Result<Vec<ScoredPoint>> {
        Self::check_sizes(req)?;
        let level = Level {
            scope: req.scope(),
            query: req.query.as_ref(),
            using: &req.using,
            filter: req.filter.clone(),
            threshold: req.score_threshold,
            limit: req.limit,
            offset: req.offset,
            params: req.params,
        };
        let hits = self.run_level(&level, &req.prefetch, None)?;
        self.attach(hits, &req.with, req.scope())
    }

    /// Checked before any work: result counts and the prefetch tree within the caps of
    /// [`qd_core::limits`] (a huge `limit` would allocate for it; a wide tree multiplies searches).
    fn check_sizes(req: &QueryRequest) -> Result<()> {
        use qd_core::limits::{at_most, MAX_PREFETCHES, MAX_PREFETCH_DEPTH, MAX_RESULTS};
        at_most("limit", req.limit, MAX_RESULTS)?;
        at_most("offset", req.offset, MAX_RESULTS)?;
        let mut stack: Vec<(&[Prefetch], usize)> = vec![(&req.prefetch, 1)];
        while let Some((level, depth)) = stack.pop() {
            if level.is_empty() {
                continue;
            }
            at_most("prefetch", level.len(), MAX_PREFETCHES)?;
            at_most("prefetch depth", depth, MAX_PREFETCH_DEPTH)?;
            for p in level {
                at_most("prefetch.limit", p.limit, MAX_RESULTS)?;
                stack.push((&p.prefetch, depth + 1));
            }
        }
        Ok(())
    }

    /// Scored ids of one level (no payloads yet).
    fn run_level(
        &self,
        level: &Level,
        prefetches: &[Prefetch],
        inherited: Option<&Filter>,
    ) -> Result<Vec<ScoredPoint>> {
        // The request's filter reaches every prefetch merged clause by clause, as in Qdrant.
        let filter = match (inherited.cloned(), level.filter.clone()) {
            (Some(outer), Some(own)) => Some(outer.merge(own)),
            (outer, own) => outer.or(own),
        };
        if prefetches.is_empty() {
            return self.base_query(level, filter);
        }
        let mut sources = Vec::with_capacity(prefetches.len());
        for p in prefetches {
            let sub = Level {
                scope: level.scope,
                query: p.query.as_ref(),
                using: &p.using,
                filter: p.filter.clone(),
                threshold: p.score_threshold,
                limit: p.limit,
                offset: 0,
                params: p.params,
            };
            sources.push(self.run_level(&sub, &p.prefetch, filter.as_ref())?);
        }
        let top = level.limit.saturating_add(level.offset);
        let fused = match level.query {
            Some(Query::Rrf { k, weights }) => {
                Some(rrf(&sources, k.unwrap_or(DEFAULT_RRF_K), weights.as_deref(), top)?)
            }
            Some(Query::Dbsf) => Some(dbsf(&sources, top)),
            Some(Query::Formula(f)) => Some(self.formula(f, &sources, top, level.scope)?),
            _ => None,
        };
        if let Some(mut fused) = fused {
            if let Some(t) = level.threshold {
                fused.retain(|p| p.score >= t);
            }
            return Ok(fused.into_iter().skip(level.offset).collect());
        }
        // Re-score the union of the candidates with this level's query.
        // With no candidates this still resolves the query, so that an id it names that does
        // not exist is refused (404) as in Qdrant, whatever the prefetches found.
        let ids: BTreeSet<PointId> = sources.iter().flatten().map(|p| p.id).collect();
        self.base_query(level, only_ids(filter, ids))
    }

    /// The stored vector `using` of a point (already preprocessed when it was written).
    fn vector_of(&self, id: &PointId, using: &str, scope: ReadScope<'_>) -> Result<Vector> {
        let with = WithSelectors {
            payload: Default::default(),
            vector: qd_core::selectors::VectorSelector::Names(vec![using.to_string()]),
        };
        let rec = self
            .retrieve(&[*id], &with, scope)?
            .pop()
            .ok_or_else(|| CollectionError::NotFound(format!("No point with id {id} found")))?;
        rec.vector.and_then(|mut m| m.remove(using)).ok_or_else(|| {
            CollectionError::BadRequest(format!("Wrong input: point {id} has no vector named {using:?}"))
        })
    }

    /// Resolve examples into preprocessed vectors; ids given are collected to exclude them.
    fn examples(
        &self,
        items: &[VectorOrId],
        using: &str,
        mentioned: &mut BTreeSet<PointId>,
        scope: ReadScope<'_>,
    ) -> Result<Vec<Vector>> {
        self.examples_as(items, using, mentioned, scope, true)
    }

    /// [`Self::examples`]; with `preprocess: false` a vector given in the request stays as
    /// written and ids give their stored vectors (Cosine `uint8` ones as their whole numbers):
    /// what `average_vector` averages, as in Qdrant, before the average itself is preprocessed.
    fn examples_as(
        &self,
        items: &[VectorOrId],
        using: &str,
        mentioned: &mut BTreeSet<PointId>,
        scope: ReadScope<'_>,
        preprocess_given: bool,
    ) -> Result<Vec<Vector>> {
        let prep = self.prep_of(using)?;
        items
            .iter()
            .map(|it| {
                Ok(match it {
                    VectorOrId::Vector(v) => {
                        self.check_vector(using, v)?;
                        let mut v = v.clone();
                        if preprocess_given {
                            preprocess(prep, &mut v);
                        }
                        v
                    }
                    VectorOrId::Id(id) => {
                        mentioned.insert(*id);
                        let mut v = self.vector_of(id, using, scope)?;
                        if preprocess_given {
                            stored_as_query(prep, &mut v);
                        }
                        v
                    }
                })
            })
            .collect()
    }

    /// MMR: `candidates_limit` nearest points (default `limit`), re-ranked by
    /// [`crate::mmr::select`] on the `using` vectors; each keeps its nearest-neighbour score.
    fn mmr_query(
        &self,
        level: &Level,
        filter: Option<Filter>,
        target: &VectorOrId,
        diversity: f32,
        candidates_limit: Option<usize>,
    ) -> Result<Vec<ScoredPoint>> {
        if !(0.0..=1.0).contains(&diversity) {
            return Err(CollectionError::BadRequest(format!("mmr.diversity: {diversity} is not within [0, 1]")));
        }
        let nearest = Query::Nearest(target.clone());
        let candidates_level = Level {
            query: Some(&nearest),
            limit: candidates_limit.unwrap_or(level.limit),
            offset: 0,
            filter: None,
            ..*level
        };
        let candidates = self.base_query(&candidates_level, filter)?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let using = level.using;
        let distance = self.distance_of(using)?;
        let mut query = self.examples(std::slice::from_ref(target), using, &mut BTreeSet::new(), level.scope)?;
        self.idf(using, &mut query, level.scope)?;
        let Some(query) = query.pop() else { return Ok(Vec::new()) };
        let ids: Vec<PointId> = candidates.iter().map(|p| p.id).collect();
        let with = WithSelectors {
            payload: Default::default(),
            vector: qd_core::selectors::VectorSelector::Names(vec![using.to_string()]),
        };
        let prep = self.prep_of(using)?;
        let mut stored: std::collections::HashMap<PointId, Vector> = self
            .retrieve(&ids, &with, level.scope)?
            .into_iter()
            .filter_map(|r| Some((r.id, r.vector?.remove(using)?)))
            .map(|(id, mut v)| {
                stored_as_query(prep, &mut v);
                (id, v)
            })
            .collect();
        let (candidates, vectors): (Vec<ScoredPoint>, Vec<Vector>) =
            candidates.into_iter().filter_map(|p| stored.remove(&p.id).map(|v| (p, v))).unzip();
        let sim = |a: &Vector, b: &Vector| crate::operations::similarity(distance, a, vector_ref(b)).unwrap_or(0.0);
        let relevance: Vec<f32> = vectors.iter().map(|v| sim(&query, v)).collect();
        let picked = crate::mmr::select(
            &relevance,
            &|a, b| sim(&vectors[a], &vectors[b]),
            1.0 - diversity,
            level.limit.saturating_add(level.offset),
        );
        Ok(picked.into_iter().skip(level.offset).map(|i| candidates[i].clone()).collect())
    }

    /// Score every candidate of the prefetches (once, in the order first seen) with a formula
    /// over its prefetch scores and its stored payload; best `top` first.
    fn formula(
        &self,
        f: &qd_core::formula::Formula,
        sources: &[Vec<ScoredPoint>],
        top: usize,
        scope: ReadScope<'_>,
    ) -> Result<Vec<ScoredPoint>> {
        let mut seen = BTreeSet::new();
        let ids: Vec<PointId> = sources.iter().flatten().map(|p| p.id).filter(|id| seen.insert(*id)).collect();
        let with = WithSelectors {
            payload: qd_core::selectors::PayloadSelector::All,
            vector: if f.needs_vectors() {
                qd_core::selectors::VectorSelector::All
            } else {
                qd_core::selectors::VectorSelector::None
            },
        };
        // Text conditions follow the collection's full-text indexes, as in filters.
        let f = &f.with_text_indexes(&self.text_indexes());
        let by_prefetch: Vec<std::collections::HashMap<PointId, f32>> =
            sources.iter().map(|s| s.iter().map(|p| (p.id, p.score)).collect()).collect();
        let mut out = Vec::with_capacity(ids.len());
        let records: HashMap<PointId, Record> =
            self.retrieve(&ids, &with, scope)?.into_iter().map(|r| (r.id, r)).collect();
        // In the order first seen, so that equal scores keep the prefetch order (stable sort).
        for rec in ids.iter().filter_map(|id| records.get(id)) {
            let scores: Vec<Option<f32>> = by_prefetch.iter().map(|m| m.get(&rec.id).copied()).collect();
            let score = f.score(&RecordView(rec), &scores).map_err(CollectionError::BadRequest)?;
            out.push(scored(rec.id, score, None));
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(top);
        Ok(out)
    }

    /// Resolve the pairs of a discovery or context query into preprocessed vectors.
    fn pairs(
        &self,
        pairs: &[ContextPair],
        using: &str,
        mentioned: &mut BTreeSet<PointId>,
        scope: ReadScope<'_>,
    ) -> Result<Vec<(Vector, Vector)>> {
        pairs
            .iter()
            .map(|p| {
                let items = [p.positive.clone(), p.negative.clone()];
                let mut v = self.examples(&items, using, mentioned, scope)?.into_iter();
                match (v.next(), v.next()) {
                    (Some(pos), Some(neg)) => Ok((pos, neg)),
                    _ => Err(CollectionError::BadRequest("a context pair needs a positive and a negative".into())),
                }
            })
            .collect()
    }

    /// A level without prefetches: runs against the collection itself.
    fn base_query(&self, level: &Level, filter: Option<Filter>) -> Result<Vec<ScoredPoint>> {
        let top = level.limit.saturating_add(level.offset);
        let using = level.using;
        let mut mentioned = BTreeSet::new();
        let (shard_query, postprocess) = match level.query {
            None => {
                let (records, _) = self.scroll(None, filter.as_ref(), top, &WithSelectors::default(), level.scope)?;
                return Ok(records.into_iter().skip(level.offset).map(|r| scored(r.id, 1.0, None)).collect());
            }
            Some(Query::OrderBy(order)) => {
                let records =
                    self.scroll_ordered(order, filter.as_ref(), top, &WithSelectors::default(), level.scope)?;
                return Ok(records.into_iter().skip(level.offset).map(|r| scored(r.id, 1.0, r.order_value)).collect());
            }
            Some(Query::Sample) => {
                let mut ids = self.all_ids(filter.as_ref(), level.scope)?;
                shuffle(&mut ids);
                ids.truncate(level.limit);
                return Ok(ids.into_iter().map(|id| scored(id, 1.0, None)).collect());
            }
            Some(Query::Rrf { .. }) | Some(Query::Dbsf) => {
                return Err(CollectionError::BadRequest("Fusion queries need at least one prefetch".into()));
            }
            Some(Query::Formula(_)) => {
                return Err(CollectionError::BadRequest("Cannot perform formula without prefetches".into()));
            }
            Some(Query::NearestMmr { target, diversity, candidates_limit }) => {
                return self.mmr_query(level, filter, target, *diversity, *candidates_limit);
            }
            Some(Query::Nearest(target)) => {
                let v = self.examples(std::slice::from_ref(target), using, &mut mentioned, level.scope)?;
                let Some(v) = v.into_iter().next() else { return Ok(Vec::new()) };
                (ShardQuery::Nearest(v), true)
            }
            Some(Query::Recommend { positive, negative, strategy }) => {
                let given = *strategy != RecommendStrategy::AverageVector;
                let pos = self.examples_as(positive, using, &mut mentioned, level.scope, given)?;
                let neg = self.examples_as(negative, using, &mut mentioned, level.scope, given)?;
                match strategy {
                    RecommendStrategy::AverageVector => {
                        if pos.is_empty() {
                            return Err(CollectionError::BadRequest(
                                "at least one positive example is required for average_vector".into(),
                            ));
                        }
                        let mut v = average_vector(&pos, &neg)?;
                        preprocess(self.prep_of(using)?, &mut v);
                        (ShardQuery::Nearest(v), true)
                    }
                    RecommendStrategy::BestScore | RecommendStrategy::SumScores => {
                        if pos.is_empty() && neg.is_empty() {
                            return Err(CollectionError::BadRequest(
                                "at least one positive or negative example is required".into(),
                            ));
                        }
                        if *strategy == RecommendStrategy::BestScore {
                            (ShardQuery::BestScore { positive: pos, negative: neg }, false)
                        } else {
                            (ShardQuery::SumScores { positive: pos, negative: neg }, false)
                        }
                    }
                }
            }
            Some(Query::Discover { target, context }) => {
                let target = self.examples(std::slice::from_ref(target), using, &mut mentioned, level.scope)?;
                let Some(target) = target.into_iter().next() else { return Ok(Vec::new()) };
                let pairs = self.pairs(context, using, &mut mentioned, level.scope)?;
                (ShardQuery::Discover { target, pairs }, false)
            }
            Some(Query::RelevanceFeedback { target, feedback, a, b, c }) => {
                let target = self.examples(std::slice::from_ref(target), using, &mut mentioned, level.scope)?;
                let Some(target) = target.into_iter().next() else { return Ok(Vec::new()) };
                let items: Vec<VectorOrId> = feedback.iter().map(|(e, _)| e.clone()).collect();
                let vectors = self.examples(&items, using, &mut mentioned, level.scope)?;
                let scored: Vec<(Vector, f32)> = vectors.into_iter().zip(feedback.iter().map(|(_, s)| *s)).collect();
                let mut pairs = Vec::new();
                for (i, (better, sb)) in scored.iter().enumerate() {
                    for (j, (worse, sw)) in scored.iter().enumerate() {
                        let confidence = sb - sw;
                        if i != j && confidence > 0.0 {
                            pairs.push((better.clone(), worse.clone(), confidence.powf(*b) * c));
                        }
                    }
                }
                (ShardQuery::Feedback { target, a: *a, pairs }, false)
            }
            Some(Query::Context(context)) => {
                if context.is_empty() {
                    return Err(CollectionError::BadRequest("a context query needs at least one pair".into()));
                }
                (ShardQuery::Context(self.pairs(context, using, &mut mentioned, level.scope)?), false)
            }
        };
        let mut shard_query = shard_query;
        // IDF scales every sparse vector of the query, examples included (as Qdrant).
        match &mut shard_query {
            ShardQuery::Nearest(v) => self.idf(using, std::slice::from_mut(v), level.scope)?,
            ShardQuery::BestScore { positive, negative } | ShardQuery::SumScores { positive, negative } => {
                self.idf(using, positive, level.scope)?;
                self.idf(using, negative, level.scope)?;
            }
            ShardQuery::Discover { target, pairs } => {
                self.idf(using, std::slice::from_mut(target), level.scope)?;
                for (p, n) in pairs.iter_mut() {
                    self.idf(using, std::slice::from_mut(p), level.scope)?;
                    self.idf(using, std::slice::from_mut(n), level.scope)?;
                }
            }
            ShardQuery::Feedback { target, pairs, .. } => {
                self.idf(using, std::slice::from_mut(target), level.scope)?;
                for (p, n, _) in pairs.iter_mut() {
                    self.idf(using, std::slice::from_mut(p), level.scope)?;
                    self.idf(using, std::slice::from_mut(n), level.scope)?;
                }
            }
            ShardQuery::Context(pairs) => {
                for (p, n) in pairs.iter_mut() {
                    self.idf(using, std::slice::from_mut(p), level.scope)?;
                    self.idf(using, std::slice::from_mut(n), level.scope)?;
                }
            }
        }
        let distance = self.distance_of(using)?;
        // Qdrant keeps a search hit only when its score is strictly better than the threshold;
        // segments keep scores >= the threshold they get, so they get the next float up.
        let threshold =
            level.threshold.map(|t| if postprocess { distance.preprocess_threshold(t) } else { t }).map(f32::next_up);
        let filter = exclude_ids(filter, &mentioned);
        let hits = self.search_points(using, shard_query, filter, top, threshold, &level.params, level.scope)?;
        Ok(hits
            .into_iter()
            .skip(level.offset)
            .map(|h| {
                let mut p = scored(h.id, if postprocess { distance.postprocess(h.score) } else { h.score }, None);
                p.version = h.version;
                p
            })
            .collect())
    }

    fn idf(&self, using: &str, vectors: &mut [Vector], scope: ReadScope<'_>) -> Result<()> {
        for v in vectors {
            if let Vector::Sparse(s) = v {
                self.apply_idf(using, s, scope)?;
            }
        }
        Ok(())
    }

    /// Points in payload-value order (`order_by`), a point once per distinct value it holds.
    pub fn scroll_ordered(
        &self,
        order: &OrderBy,
        filter: Option<&Filter>,
        limit: usize,
        with: &WithSelectors,
        scope: ReadScope<'_>,
    ) -> Result<Vec<Record>> {
        let mut entries = match self.order_entries_by_shard(&order.key, filter, scope)? {
            Some(entries) => entries,
            None => {
                // Custom sharding over several keys: an id may repeat, so payloads are read by id.
                let ids = self.all_ids(filter, scope)?;
                let key_only =
                    WithSelectors { payload: qd_core::selectors::PayloadSelector::All, vector: Default::default() };
                let mut entries: Vec<(f64, PointId)> = Vec::new();
                for rec in self.retrieve(&ids, &key_only, scope)? {
                    let Some(payload) = rec.payload.as_ref() else { continue };
                    let mut seen = Vec::new();
                    for x in order.key.values_flat(payload).into_iter().filter_map(qd_segment::order_value) {
                        if !seen.contains(&x) {
                            seen.push(x);
                            entries.push((x, rec.id));
                        }
                    }
                }
                entries
            }
        };
        if let Some(s) = order.start_from {
            entries.retain(|(x, _)| if order.descending { *x <= s } else { *x >= s });
        }
        // Equal values in id order, whichever the direction; only the first `limit` are sorted.
        let cmp = |a: &(f64, PointId), b: &(f64, PointId)| {
            let by_value = if order.descending { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
            by_value.then(a.1.cmp(&b.1))
        };
        if limit < entries.len() {
            entries.select_nth_unstable_by(limit, cmp);
            entries.truncate(limit);
        }
        entries.sort_by(cmp);
        let wanted: Vec<PointId> = entries.iter().map(|(_, id)| *id).collect();
        let records: HashMap<PointId, Record> =
            self.retrieve(&wanted, with, scope)?.into_iter().map(|r| (r.id, r)).collect();
        Ok(entries
            .into_iter()
            .filter_map(|(x, id)| {
                records.get(&id).map(|r| {
                    let mut r = r.clone();
                    r.order_value = Some(order_value_json(x));
                    r
                })
            })
            .collect())
    }

    /// Attach payloads and vectors to final hits.
    pub(crate) fn attach(
        &self,
        mut hits: Vec<ScoredPoint>,
        with: &WithSelectors,
        scope: ReadScope<'_>,
    ) -> Result<Vec<ScoredPoint>> {
        if with.payload.is_none() && with.vector.is_none() {
            return Ok(hits);
        }
        let ids: Vec<PointId> = hits.iter().map(|h| h.id).collect();
        let records: BTreeMap<PointId, Record> =
            self.retrieve(&ids, with, scope)?.into_iter().map(|r| (r.id, r)).collect();
        for h in hits.iter_mut() {
            if let Some(r) = records.get(&h.id) {
                h.payload = r.payload.clone();
                h.vector = r.vector.clone();
            }
        }
        Ok(hits)
    }
}

/// A retrieved point as a filter condition inside a formula sees it.
struct RecordView<'a>(&'a Record);

impl qd_core::filter::PointView for RecordView<'_> {
    fn id(&self) -> PointId {
        self.0.id
    }
    fn payload(&self) -> Option<&qd_core::Payload> {
        self.0.payload.as_ref()
    }
    fn has_vector(&self, name: &str) -> bool {
        self.0.vector.as_ref().is_some_and(|v| v.contains_key(name))
    }
}

fn scored(id: PointId, score: f32, order_value: Option<Value>) -> ScoredPoint {
    ScoredPoint { id, version: 0, score, payload: None, vector: None, shard_key: None, order_value }
}

/// `avg(pos) + avg(pos) - avg(neg)`, or `avg(pos)` without negatives, for dense or sparse
/// examples (multivectors have no average).
fn average_vector(pos: &[Vector], neg: &[Vector]) -> Result<Vector> {
    let dense = |vs: &[Vector]| {
        vs.iter().map(|v| if let Vector::Dense(d) = v { Some(d.clone()) } else { None }).collect::<Option<Vec<_>>>()
    };
    let sparse = |vs: &[Vector]| {
        vs.iter().map(|v| if let Vector::Sparse(s) = v { Some(s.clone()) } else { None }).collect::<Option<Vec<_>>>()
    };
    if let (Some(p), Some(n)) = (dense(pos), dense(neg)) {
        return Ok(Vector::Dense(average_dense(&p, &n)));
    }
    if let (Some(p), Some(n)) = (sparse(pos), sparse(neg)) {
        return Ok(Vector::Sparse(average_sparse(&p, &n)));
    }
    Err(CollectionError::BadRequest(
        "the average_vector strategy needs dense or sparse examples; use best_score or sum_scores for multivectors"
            .into(),
    ))
}

/// Sparse counterpart of [`average_dense`]: indices are the union, missing values count as 0.
fn average_sparse(pos: &[SparseVector], neg: &[SparseVector]) -> SparseVector {
    let avg = |vs: &[SparseVector]| {
        let mut acc: BTreeMap<u32, f64> = BTreeMap::new();
        for v in vs {
            for (&i, &x) in v.indices.iter().zip(&v.values) {
                *acc.entry(i).or_default() += x as f64;
            }
        }
        let n = vs.len().max(1) as f64;
        acc.into_iter().map(|(i, x)| (i, x / n)).collect::<BTreeMap<u32, f64>>()
    };
    let p = avg(pos);
    let out: BTreeMap<u32, f64> = if neg.is_empty() {
        p
    } else {
        let n = avg(neg);
        let keys: BTreeSet<u32> = p.keys().chain(n.keys()).copied().collect();
        keys.into_iter()
            .map(|i| {
                let (a, b) = (p.get(&i).copied().unwrap_or(0.0), n.get(&i).copied().unwrap_or(0.0));
                (i, a + a - b)
            })
            .collect()
    };
    SparseVector { indices: out.keys().copied().collect(), values: out.values().map(|x| *x as f32).collect() }
}

/// `avg(pos) + avg(pos) - avg(neg)`, or `avg(pos)` without negatives.
fn average_dense(pos: &[Vec<f32>], neg: &[Vec<f32>]) -> Vec<f32> {
    let avg = |vs: &[Vec<f32>]| {
        let dim = vs.first().map(Vec::len).unwrap_or(0);
        let mut out = vec![0.0f32; dim];
        for v in vs {
            for (o, x) in out.iter_mut().zip(v) {
                *o += x;
            }
        }
        out.iter_mut().for_each(|o| *o /= vs.len() as f32);
        out
    };
    let p = avg(pos);
    if neg.is_empty() {
        return p;
    }
    let n = avg(neg);
    p.iter().zip(&n).map(|(p, n)| p + p - n).collect()
}

/// Scores summed per id across fused lists, in first-seen order (ties keep that order).
#[derive(Default)]
struct Fused {
    scores: Vec<(PointId, f64)>,
    index: HashMap<PointId, usize>,
}

impl Fused {
    fn add(&mut self, id: PointId, s: f64) {
        match self.index.get(&id) {
            Some(&i) => self.scores[i].1 += s,
            None => {
                self.index.insert(id, self.scores.len());
                self.scores.push((id, s));
            }
        }
    }

    fn top(mut self, n: usize) -> Vec<ScoredPoint> {
        self.scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        self.scores.into_iter().take(n).map(|(id, s)| scored(id, s as f32, None)).collect()
    }
}

/// Reciprocal rank fusion: each list contributes `w / (rank + k)` (rank from 1, weight scaling
/// the rank as `1 / ((rank)/w + k - 1)`).
fn rrf(sources: &[Vec<ScoredPoint>], k: usize, weights: Option<&[f32]>, top: usize) -> Result<Vec<ScoredPoint>> {
    if let Some(w) = weights {
        if w.len() != sources.len() {
            return Err(CollectionError::BadRequest(format!(
                "rrf.weights has {} entries but there are {} prefetches",
                w.len(),
                sources.len()
            )));
        }
    }
    let mut fused = Fused::default();
    for (si, source) in sources.iter().enumerate() {
        let w = weights.map(|w| w[si] as f64).unwrap_or(1.0);
        for (rank, p) in source.iter().enumerate() {
            let s = if w <= 0.0 { 0.0 } else { 1.0 / ((rank as f64 + 1.0) / w + k as f64 - 1.0) };
            fused.add(p.id, s);
        }
    }
    Ok(fused.top(top))
}

/// Distribution-based score fusion: each list's scores normalised by mean ± 3σ, then summed.
fn dbsf(sources: &[Vec<ScoredPoint>], top: usize) -> Vec<ScoredPoint> {
    let mut fused = Fused::default();
    for source in sources.iter().filter(|s| !s.is_empty()) {
        let n = source.len() as f64;
        let mean = source.iter().map(|p| p.score as f64).sum::<f64>() / n;
        let var = if source.len() > 1 {
            source.iter().map(|p| (p.score as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        for p in source {
            let s = if source.len() == 1 || var == 0.0 {
                0.5
            } else {
                let sd = var.sqrt();
                let (low, high) = (mean - 3.0 * sd, mean + 3.0 * sd);
                (p.score as f64 - low) / (high - low)
            };
            fused.add(p.id, s);
        }
    }
    fused.top(top)
}

/// Numbers order as themselves; RFC 3339 strings as microseconds since the epoch.
fn order_value_json(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// Fisher-Yates with a time-seeded xorshift: sampling needs no cryptographic randomness.
pub(crate) fn shuffle(ids: &mut [PointId]) {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1;
    for i in (1..ids.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ids.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// A stored vector as the scoring functions read it.
fn vector_ref(v: &Vector) -> qd_segment::VectorRef<'_> {
    match v {
        Vector::Dense(d) => qd_segment::VectorRef::Dense(qd_segment::Elems::F32(d)),
        Vector::Multi(m) => qd_segment::VectorRef::Multi(qd_segment::Elems::F32(m.flat())),
        Vector::Sparse(s) => {
            qd_segment::VectorRef::Sparse(qd_segment::SparseRef { indices: &s.indices, values: &s.values })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_prefetches_walk_every_level_with_its_path() {
        let leaf = |limit| Prefetch { limit, ..Default::default() };
        let req = QueryRequest {
            prefetch: vec![Prefetch { prefetch: vec![leaf(1), leaf(2)], limit: 3, ..Default::default() }, leaf(4)],
            ..Default::default()
        };
        let got: Vec<(String, usize)> = req.all_prefetches().into_iter().map(|(p, f)| (p, f.limit)).collect();
        assert_eq!(
            got,
            [
                ("prefetch[0]".to_string(), 3),
                ("prefetch[0].prefetch[0]".to_string(), 1),
                ("prefetch[0].prefetch[1]".to_string(), 2),
                ("prefetch[1]".to_string(), 4),
            ]
        );
        assert!(QueryRequest::default().all_prefetches().is_empty());
    }
}
