//! Grouped queries (`/points/query/groups`, `/points/search/groups`) and facet counts.

use std::collections::{BTreeMap, HashSet};

use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::selectors::PayloadSelector;
use serde::Serialize;
use serde_json::Value;

use crate::collection::Collection;
use crate::error::Result;
use crate::operations::{ScoredPoint, WithSelectors};
use crate::query::QueryRequest;

/// One group of hits sharing a payload value.
#[derive(Debug, Clone, Serialize)]
pub struct PointGroup {
    pub id: Value,
    pub hits: Vec<ScoredPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<crate::operations::Record>,
}

/// A value that can name a group: strings and integers (not booleans, not floats).
fn group_id(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) => Some(v.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
        _ => None,
    }
}

/// Distinct group ids of a point in payload order; `None` if any value cannot be a group id
/// (such a point joins no group at all).
fn group_ids(payload: &qd_core::Payload, key: &JsonPath) -> Option<Vec<Value>> {
    let values = key.values_flat(payload);
    if values.is_empty() {
        return None;
    }
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        let g = group_id(v)?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Some(out)
}

impl Collection {
    /// Best `limit` groups by their best hit, at most `group_size` hits each. Candidates are
    /// fetched in growing rounds until the groups are full or the collection is exhausted.
    pub fn query_groups(
        &self,
        req: &QueryRequest,
        group_by: &JsonPath,
        group_size: usize,
        limit: usize,
    ) -> Result<Vec<PointGroup>> {
        let total = self.count(None, req.scope())?;
        let mut fetch = limit.saturating_mul(group_size).saturating_mul(2).max(16);
        loop {
            let mut round = req.clone();
            round.limit = fetch;
            round.offset = 0;
            round.with = WithSelectors { payload: PayloadSelector::All, vector: req.with.vector.clone() };
            for p in round.prefetch.iter_mut() {
                p.limit = p.limit.max(fetch);
            }
            let hits = self.query(&round)?;
            let exhausted = hits.len() < fetch || fetch >= total;
            let mut groups: Vec<PointGroup> = Vec::new();
            let mut index: BTreeMap<String, usize> = BTreeMap::new();
            for mut hit in hits {
                let Some(ids) = hit.payload.as_ref().and_then(|p| group_ids(p, group_by)) else { continue };
                hit.payload = req.with.payload.apply(hit.payload.as_ref());
                for g in ids {
                    let k = g.to_string();
                    let i = *index.entry(k).or_insert_with(|| {
                        groups.push(PointGroup { id: g.clone(), hits: Vec::new(), lookup: None });
                        groups.len() - 1
                    });
                    if groups[i].hits.len() < group_size {
                        groups[i].hits.push(hit.clone());
                    }
                }
            }
            let full = groups.len() >= limit && groups.iter().take(limit).all(|g| g.hits.len() >= group_size);
            if full || exhausted {
                groups.truncate(limit);
                return Ok(groups);
            }
            fetch = fetch.saturating_mul(4).min(total.max(1));
        }
    }

    /// Counts of distinct values at `key` among points passing the filter (each point counts
    /// once per value), by count descending then value ascending.
    pub fn facet(
        &self,
        key: &JsonPath,
        filter: Option<&Filter>,
        limit: usize,
        keys: crate::shard_set::ReadScope<'_>,
    ) -> Result<Vec<(Value, usize)>> {
        // Each shard counts from its segments (payload indexes where they hold every value);
        // with custom sharding across several keys an id may repeat, so ids are read instead.
        if let Some(counts) = self.facet_by_shard(key, filter, keys)? {
            let mut hits: Vec<((u8, String), (Value, usize))> =
                counts.into_iter().filter_map(|(v, n)| qd_segment::facet_key(&v).map(|k| (k, (v, n)))).collect();
            hits.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then_with(|| a.0.cmp(&b.0)));
            return Ok(hits.into_iter().take(limit).map(|(_, v)| v).collect());
        }
        let ids = self.all_ids(filter, keys)?;
        let with = WithSelectors { payload: PayloadSelector::All, vector: Default::default() };
        // Type tag keeps `true` and `1` apart and orders mixed types deterministically.
        let mut counts: BTreeMap<(u8, String), (Value, usize)> = BTreeMap::new();
        for chunk in ids.chunks(1024) {
            for rec in self.retrieve(chunk, &with, keys)? {
                let Some(p) = rec.payload.as_ref() else { continue };
                let mut seen = HashSet::new();
                for v in key.values_flat(p) {
                    let tag = match v {
                        Value::Bool(_) => 0,
                        Value::Number(n) if n.is_i64() || n.is_u64() => 1,
                        Value::String(_) => 2,
                        _ => continue,
                    };
                    let sort_key = match v {
                        // Shift into unsigned range so that string order is numeric order.
                        Value::Number(n) => {
                            format!("{:020}", n.as_i64().unwrap_or(i64::MAX) as i128 - i64::MIN as i128)
                        }
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if seen.insert((tag, sort_key.clone())) {
                        counts.entry((tag, sort_key)).or_insert_with(|| (v.clone(), 0)).1 += 1;
                    }
                }
            }
        }
        let mut hits: Vec<((u8, String), (Value, usize))> = counts.into_iter().collect();
        hits.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then_with(|| a.0.cmp(&b.0)));
        Ok(hits.into_iter().take(limit).map(|(_, v)| v).collect())
    }
}
