//! The segments of one shard: one appendable segment that takes every write, and sealed
//! segments (immutable data, tombstones only, an HNSW index once the optimizer built it).
//!
//! Invariant: a point is live in at most one segment. A write to a point that lives in a
//! sealed segment tombstones it there and puts the new record into the appendable segment
//! (copy on write), so sealed data never changes under an index.

use qd_core::filter::Filter;
use qd_core::vectors::Vector;
use qd_core::PointId;
use qd_segment::{PayloadIndexDef, SearchParams, Segment, SegmentHit};

use super::effects::{Effects, PointSource};
use crate::error::CollectionError;
use crate::operations::ShardQuery;
use crate::record::PointRecord;

/// Vector columns a shard's segments hold.
pub type ColumnSpec = Vec<qd_segment::ColumnSpec>;

pub struct ShardState {
    pub columns: ColumnSpec,
    pub appendable: Segment,
    pub sealed: Vec<Segment>,
    /// Next segment id to hand out (ids are unique within the shard, also across restarts).
    pub next_segment_id: u64,
    /// The payload indexes the appendable segment keeps (those the schema declares).
    payload_indexes: Vec<PayloadIndexDef>,
}

impl ShardState {
    pub fn new(columns: ColumnSpec, next_segment_id: u64) -> Self {
        let appendable = Segment::new(next_segment_id, &columns);
        ShardState {
            columns,
            appendable,
            sealed: Vec::new(),
            next_segment_id: next_segment_id + 1,
            payload_indexes: Vec::new(),
        }
    }

    pub fn new_appendable(&mut self) -> Segment {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        let mut s = Segment::new(id, &self.columns);
        s.set_payload_indexes(&self.payload_indexes);
        s
    }

    /// Whether the appendable segment keeps other payload indexes than `defs`.
    pub fn payload_indexes_differ(&self, defs: &[PayloadIndexDef]) -> bool {
        !qd_segment::same_defs(&self.payload_indexes, defs)
    }

    /// Have the appendable segment (and those after it) keep the payload indexes `defs`.
    pub fn set_payload_indexes(&mut self, defs: &[PayloadIndexDef]) {
        self.appendable.set_payload_indexes(defs);
        self.payload_indexes = defs.to_vec();
    }

    /// Catch the appendable segment's payload indexes up with its writes, a step at a time
    /// until about `budget` payloads were read (a step reads at most a chunk's worth); returns
    /// whether more is left.
    pub fn index_appendable_payloads(&mut self, budget: usize) -> bool {
        match self.appendable.index_payloads(budget) {
            Ok(more) => more,
            Err(e) => {
                // Appendable payloads are in RAM; searches check unindexed slots on them anyway.
                tracing::warn!(error = %e, "appendable payload index not built");
                false
            }
        }
    }

    /// Change the vector columns (a named vector was added or dropped).
    pub fn set_columns(&mut self, columns: ColumnSpec) {
        self.appendable.set_columns(&columns);
        for s in self.sealed.iter_mut() {
            s.set_columns(&columns);
        }
        self.columns = columns;
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        std::iter::once(&self.appendable).chain(self.sealed.iter())
    }

    /// The segment a live point is in.
    pub fn find(&self, id: &PointId) -> Option<&Segment> {
        self.segments().find(|s| s.contains(id))
    }

    pub fn len(&self) -> usize {
        self.segments().map(Segment::len).sum()
    }

    /// Apply committed effects.
    pub fn apply(&mut self, effects: &Effects) {
        for (pid, rec) in effects {
            for s in self.sealed.iter_mut() {
                s.delete(pid);
            }
            match rec {
                Some(r) => {
                    self.appendable.upsert(*pid, r.version, &r.vectors, r.payload.clone());
                }
                None => {
                    self.appendable.delete(pid);
                }
            }
        }
        // The payload indexes follow the writes: their new slots are indexed here; rebuilds
        // and larger arrears (an index declared on a full segment) are left to the optimizer,
        // which works on them between writes.
        if let Err(e) = self.appendable.index_new_payloads() {
            tracing::warn!(error = %e, "appendable payload index not built");
        }
    }

    /// Live ids in ascending order from `from`, passing the filter, at most `limit`.
    pub fn scroll(&self, from: Option<&PointId>, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let mut ids: Vec<PointId> = self.segments().flat_map(|s| s.scroll(from, filter, limit)).collect();
        ids.sort();
        ids.truncate(limit);
        ids
    }

    /// `(order value, id)` entries of every segment (a point lives in one segment).
    pub fn order_entries(&self, key: &qd_core::json_path::JsonPath, filter: Option<&Filter>) -> Vec<(f64, PointId)> {
        self.segments().flat_map(|s| s.order_entries(key, filter)).collect()
    }

    /// Facet counts of every segment, merged (a point lives in one segment).
    pub fn facet(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
    ) -> Vec<(serde_json::Value, usize)> {
        merge_facets(self.segments().map(|s| s.facet(key, filter)))
    }

    pub fn count(&self, filter: Option<&Filter>) -> usize {
        self.segments().map(|s| s.count(filter)).sum()
    }

    /// Document frequency of each of `indices` in sparse vector `vector`, and the number of
    /// live points holding that vector (the statistics of IDF).
    pub fn sparse_df(&self, vector: &str, indices: &[u32]) -> (Vec<usize>, usize) {
        let mut df = vec![0usize; indices.len()];
        let mut n = 0;
        for s in self.segments() {
            let (d, with) = s.sparse_df(vector, indices);
            df.iter_mut().zip(d).for_each(|(a, b)| *a += b);
            n += with;
        }
        (df, n)
    }

    /// Top `top` over all segments; nearest queries may use a graph or an inverted index,
    /// others scan.
    pub fn search(
        &self,
        vector: &str,
        query: &ShardQuery,
        top: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
        params: &SearchParams,
    ) -> Vec<SegmentHit> {
        let floor = qd_segment::ScoreFloor::default();
        let one = |s: &Segment| -> Vec<SegmentHit> {
            let Some(distance) = s.distance(vector) else { return Vec::new() };
            match query {
                ShardQuery::Nearest(Vector::Dense(q)) => s.search_nearest(vector, q, top, filter, threshold, params),
                ShardQuery::Nearest(Vector::Multi(q)) => s.search_multi(vector, q, top, filter, threshold, params),
                ShardQuery::Nearest(Vector::Sparse(q)) => {
                    s.search_sparse(vector, q, top, filter, threshold, params.full_scan_points, Some(&floor))
                }
                other => s.search_scored(vector, &|v| other.score(distance, v), top, filter, threshold),
            }
        };
        // Segments are searched in parallel (like Qdrant), so that one request can use the
        // cores even when the collection has a single shard.
        let segments: Vec<&Segment> = self.segments().filter(|s| !s.is_empty()).collect();
        let mut hits: Vec<SegmentHit> = if segments.len() > 1 {
            use rayon::prelude::*;
            segments.par_iter().flat_map_iter(|s| one(s)).collect()
        } else {
            segments.into_iter().flat_map(one).collect()
        };
        qd_segment::sort_hits(&mut hits);
        hits.truncate(top);
        hits
    }
}

impl PointSource for ShardState {
    fn record(&self, id: &PointId, with_payload: bool) -> crate::error::Result<Option<PointRecord>> {
        let Some((s, version)) = self.find(id).and_then(|s| Some((s, s.version(id)?))) else { return Ok(None) };
        let payload =
            if with_payload { s.try_payload(id).map_err(|e| CollectionError::Internal(e.to_string()))? } else { None };
        Ok(Some(PointRecord { version, vectors: s.vectors(id), payload: payload.map(std::borrow::Cow::into_owned) }))
    }
    fn select(&self, filter: &Filter) -> Vec<PointId> {
        self.scroll(None, Some(filter), usize::MAX)
    }
}

/// Sum facet counts of disjoint sets of points, by value as facets tell them apart.
pub fn merge_facets(parts: impl Iterator<Item = Vec<(serde_json::Value, usize)>>) -> Vec<(serde_json::Value, usize)> {
    let mut counts: std::collections::BTreeMap<(u8, String), (serde_json::Value, usize)> = Default::default();
    for (v, n) in parts.flatten() {
        if let Some(k) = qd_segment::facet_key(&v) {
            counts.entry(k).or_insert_with(|| (v, 0)).1 += n;
        }
    }
    counts.into_values().collect()
}
