//! Distance matrix of a random sample of points (`/points/search/matrix/pairs` and
//! `/offsets`): each sampled point with its nearest neighbours among the sample.

use std::collections::BTreeSet;

use qd_core::filter::{Condition, Filter};
use qd_core::PointId;

use crate::collection::Collection;
use crate::error::Result;
use crate::operations::{SearchSettings, ShardKey, WithSelectors};
use crate::query::{Query, QueryRequest, VectorOrId};

/// Default sample size and neighbours per point, as in Qdrant.
pub const DEFAULT_SAMPLE: usize = 10;
pub const DEFAULT_NEIGHBOURS: usize = 3;

/// The sampled ids and, per sampled point, its neighbours as (index into the ids, score), best
/// first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistanceMatrix {
    pub ids: Vec<PointId>,
    pub rows: Vec<Vec<(usize, f32)>>,
}

impl DistanceMatrix {
    /// The matrix in sparse (COO) form over `ids`: row indexes, column indexes, scores.
    pub fn offsets(&self) -> (Vec<usize>, Vec<usize>, Vec<f32>) {
        let (mut rows, mut cols, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for (r, row) in self.rows.iter().enumerate() {
            for &(c, s) in row {
                rows.push(r);
                cols.push(c);
                scores.push(s);
            }
        }
        (rows, cols, scores)
    }

    /// `(a, b, score)` for every neighbour of every sampled point.
    pub fn pairs(&self) -> Vec<(PointId, PointId, f32)> {
        self.rows
            .iter()
            .enumerate()
            .flat_map(|(a, row)| row.iter().map(move |&(b, score)| (a, b, score)))
            .map(|(a, b, score)| (self.ids[a], self.ids[b], score))
            .collect()
    }
}

impl Collection {
    /// Sample up to `sample` points that match `filter` and hold vector `using`, then search each
    /// one's `limit` nearest neighbours among the sample (itself excluded), as a search would
    /// score them.
    pub fn search_matrix(
        &self,
        using: &str,
        filter: Option<Filter>,
        sample: usize,
        limit: usize,
        scope: crate::shard_set::ReadScope<'_>,
    ) -> Result<DistanceMatrix> {
        qd_core::limits::at_most("sample", sample, qd_core::limits::MAX_MATRIX_SAMPLE)?;
        qd_core::limits::at_most("limit", limit, qd_core::limits::MAX_MATRIX_SAMPLE)?;
        self.distance_of(using)?;
        let has = Filter::must(vec![Condition::HasVector(using.to_string())]);
        let among_filter = match filter {
            Some(f) => f.and(has),
            None => has,
        };
        let mut ids = self.all_ids(Some(&among_filter), scope)?;
        crate::query::shuffle(&mut ids);
        ids.truncate(sample);
        ids.sort();
        let among: BTreeSet<PointId> = ids.iter().copied().collect();
        let mut rows = Vec::with_capacity(ids.len());
        for id in &ids {
            let others: BTreeSet<PointId> = among.iter().copied().filter(|o| o != id).collect();
            if others.is_empty() || limit == 0 {
                rows.push(Vec::new());
                continue;
            }
            let req = QueryRequest {
                prefetch: Vec::new(),
                query: Some(Query::Nearest(VectorOrId::Id(*id))),
                using: using.to_string(),
                filter: Some(Filter::must(vec![Condition::HasId(others)])),
                score_threshold: None,
                limit,
                offset: 0,
                with: WithSelectors::default(),
                params: SearchSettings::default(),
                shard_key: scope.keys.map(<[ShardKey]>::to_vec),
                lookup_from: None,
                consistency: scope.consistency,
            };
            let hits = self.query(&req)?;
            rows.push(hits.into_iter().filter_map(|h| ids.binary_search(&h.id).ok().map(|i| (i, h.score))).collect());
        }
        Ok(DistanceMatrix { ids, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_follow_the_rows() {
        let m = DistanceMatrix {
            ids: vec![PointId::Num(1), PointId::Num(2), PointId::Num(3)],
            rows: vec![vec![(1, 0.9)], vec![(0, 0.9), (2, 0.5)], vec![]],
        };
        let pairs = m.pairs();
        assert_eq!(pairs.len(), 3);
        assert_eq!(m.offsets(), (vec![0, 1, 1], vec![1, 0, 2], vec![0.9, 0.9, 0.5]));
        assert_eq!(pairs[1], (PointId::Num(2), PointId::Num(1), 0.9));
    }
}
