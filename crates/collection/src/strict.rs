//! Strict mode (`strict_mode_config` with `enabled: true`): requests beyond a collection's
//! limits are refused before any work, with Qdrant's "<problem>. Help: <what to do>" message as a
//! 400. Checked here: `max_query_limit` (every level of a query, scroll, facet), `search_max_hnsw_ef`,
//! `search_allow_exact`, `search_max_oversampling`, `search_max_batchsize`, `unindexed_filtering_retrieve`
//! and `unindexed_filtering_update` (every key a filter reads needs a payload index),
//! `filter_max_conditions`, `condition_max_size`, `upsert_max_batchsize`, `max_points_count`,
//! `max_payload_index_count`, `max_timeout`, `max_collection_vector_size_bytes`,
//! `max_collection_payload_size_bytes`, `multivector_config.*.max_vectors` and
//! `sparse_config.*.max_length`. The rate limits are buckets kept per collection
//! ([`crate::rate_limit`]); `max_resident_memory_percent` (deprecated in Qdrant) is stored only.

use std::collections::BTreeSet;

use qd_core::filter::{AnyVariants, Condition, FieldCheck, Filter, Match};
use qd_core::strict_mode::StrictModeConfig;

use crate::error::{CollectionError, Result};
use crate::operations::{PointSelection, SearchSettings, UpdateOp};
use crate::query::QueryRequest;

/// What a collection holds now, for the caps on writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub points: usize,
    /// Bytes of stored vectors, in RAM or on disk (the `vector_data_bytes` of its shards).
    pub vector_bytes: usize,
    /// Bytes of stored payloads.
    pub payload_bytes: usize,
}

fn refuse(problem: impl Into<String>, help: impl Into<String>) -> CollectionError {
    CollectionError::BadRequest(format!("{}. Help: {}", problem.into(), help.into()))
}

/// The limits of one enabled strict mode, with the indexed payload keys (as paths display).
pub struct Strict<'a> {
    cfg: &'a StrictModeConfig,
    indexed: BTreeSet<String>,
}

impl<'a> Strict<'a> {
    /// `None` unless strict mode is enabled.
    pub fn new(cfg: &'a StrictModeConfig, indexed_fields: impl IntoIterator<Item = String>) -> Option<Self> {
        let indexed = indexed_fields
            .into_iter()
            .map(|f| f.parse::<qd_core::json_path::JsonPath>().map(|p| p.to_string()).unwrap_or(f))
            .collect();
        (cfg.enabled == Some(true)).then_some(Strict { cfg, indexed })
    }

    fn at_most(&self, what: &str, value: u64, max: Option<u64>) -> Result<()> {
        match max {
            Some(m) if value > m => Err(refuse(
                format!("Limit exceeded {value} > {m} for \"{what}\""),
                format!("Reduce the \"{what}\" parameter to or below {m}."),
            )),
            _ => Ok(()),
        }
    }

    /// A request's `timeout` (seconds) against `max_timeout`.
    pub fn timeout(&self, secs: Option<u64>) -> Result<()> {
        secs.map_or(Ok(()), |t| self.at_most("timeout", t, self.cfg.max_timeout))
    }

    /// A `limit` against `max_query_limit`.
    pub fn limit(&self, limit: usize) -> Result<()> {
        self.at_most("limit", limit as u64, self.cfg.max_query_limit)
    }

    /// The number of searches of one batch request.
    pub fn batch(&self, n: usize) -> Result<()> {
        self.at_most("batch size", n as u64, self.cfg.search_max_batchsize)
    }

    fn params(&self, p: &SearchSettings) -> Result<()> {
        if let Some(ef) = p.hnsw_ef {
            self.at_most("hnsw_ef", ef as u64, self.cfg.search_max_hnsw_ef)?;
        }
        if p.exact && self.cfg.search_allow_exact == Some(false) {
            return Err(refuse("Exact search disabled!", "Set exact=false in your request."));
        }
        if let (Some(max), Some(o)) = (self.cfg.search_max_oversampling, p.quantization.and_then(|q| q.oversampling)) {
            if o > max {
                return Err(refuse(
                    format!("Limit exceeded {o} > {max} for \"oversampling\""),
                    format!("Reduce the \"oversampling\" parameter to or below {max}."),
                ));
            }
        }
        Ok(())
    }

    /// A filter of a read (`retrieve`) or of a write.
    pub fn filter(&self, f: &Filter, retrieve: bool) -> Result<()> {
        let need_index = if retrieve {
            self.cfg.unindexed_filtering_retrieve == Some(false)
        } else {
            self.cfg.unindexed_filtering_update == Some(false)
        };
        if need_index {
            // Keys inside `nested` come absolute (`key[].field`), as payload indexes name them.
            if let Some(key) = f.keys().into_iter().map(|k| k.to_string()).find(|k| !self.indexed.contains(k)) {
                return Err(refuse(
                    format!("Index required but not found for \"{key}\""),
                    "Create an index for this key or use a different filter.",
                ));
            }
        }
        let conditions = f.conditions();
        for c in &conditions {
            if let Condition::Field(fc) = c {
                let size = match &fc.check {
                    FieldCheck::Match(Match::Any(v) | Match::Except(v)) => match v {
                        AnyVariants::Keywords(k) => k.len(),
                        AnyVariants::Integers(i) => i.len(),
                    },
                    _ => 0,
                };
                self.at_most("condition size", size as u64, self.cfg.condition_max_size)?;
            }
        }
        self.at_most("filter conditions", conditions.len() as u64, self.cfg.filter_max_conditions)
    }

    /// Every level of a query: limits, search params and filters.
    pub fn query(&self, req: &QueryRequest) -> Result<()> {
        self.limit(req.limit)?;
        self.params(&req.params)?;
        if let Some(f) = &req.filter {
            self.filter(f, true)?;
        }
        for (_, p) in req.all_prefetches() {
            self.limit(p.limit)?;
            self.params(&p.params)?;
            if let Some(f) = &p.filter {
                self.filter(f, true)?;
            }
        }
        Ok(())
    }

    /// A write: batch size, the collection's caps (`usage` now), vector sizes, filters that
    /// select.
    pub fn update(&self, op: &UpdateOp, usage: &Usage) -> Result<()> {
        match op {
            UpdateOp::Upsert(list) => {
                self.at_most("upsert batch size", list.len() as u64, self.cfg.upsert_max_batchsize)?;
                if let Some(max) = self.cfg.max_points_count {
                    if (usage.points + list.len()) as u64 > max {
                        return Err(refuse(
                            format!("Max points count limit of {max} reached"),
                            "Delete some points or increase max_points_count.",
                        ));
                    }
                }
                self.storage(usage, true, list.iter().any(|p| p.payload.is_some()))?;
                list.iter().try_for_each(|p| self.vectors(&p.vectors))
            }
            UpdateOp::UpdateVectors(list) => {
                self.storage(usage, true, false)?;
                list.iter().try_for_each(|(_, v)| self.vectors(v))
            }
            UpdateOp::SetPayload { selection, .. } | UpdateOp::OverwritePayload { selection, .. } => {
                self.storage(usage, false, true)?;
                match selection {
                    PointSelection::Filter(f) => self.filter(f, false),
                    PointSelection::Ids(_) => Ok(()),
                }
            }
            UpdateOp::Delete(s)
            | UpdateOp::DeletePayload { selection: s, .. }
            | UpdateOp::ClearPayload(s)
            | UpdateOp::DeleteVectors { selection: s, .. } => match s {
                PointSelection::Filter(f) => self.filter(f, false),
                PointSelection::Ids(_) => Ok(()),
            },
            UpdateOp::Conditional { op, condition } => {
                if let Some(f) = &condition.filter {
                    self.filter(f, false)?;
                }
                self.update(op, usage)
            }
        }
    }

    /// Writes that add vectors or payload stop once the collection's storage of them has
    /// reached its cap (deletes always pass).
    fn storage(&self, usage: &Usage, vectors: bool, payload: bool) -> Result<()> {
        if let Some(max) =
            self.cfg.max_collection_vector_size_bytes.filter(|m| vectors && usage.vector_bytes as u64 >= *m)
        {
            return Err(refuse(
                format!("Max vector storage size limit of {max} bytes reached"),
                "Delete some points or vectors, or increase max_collection_vector_size_bytes.",
            ));
        }
        if let Some(max) =
            self.cfg.max_collection_payload_size_bytes.filter(|m| payload && usage.payload_bytes as u64 >= *m)
        {
            return Err(refuse(
                format!("Max payload storage size limit of {max} bytes reached"),
                "Delete some points or payloads, or increase max_collection_payload_size_bytes.",
            ));
        }
        Ok(())
    }

    /// Multivector and sparse vector sizes of one point's vectors.
    pub fn vectors(&self, vectors: &qd_core::vectors::NamedVectors) -> Result<()> {
        use qd_core::vectors::Vector;
        for (name, v) in vectors {
            match v {
                Vector::Multi(m) => {
                    let max =
                        self.cfg.multivector_config.as_ref().and_then(|c| c.get(name)).and_then(|c| c.max_vectors);
                    self.at_most(&format!("{name}: max_vectors"), m.count() as u64, max)?;
                }
                Vector::Sparse(sv) => {
                    let max = self.cfg.sparse_config.as_ref().and_then(|c| c.get(name)).and_then(|c| c.max_length);
                    self.at_most(&format!("{name}: max_length"), sv.len() as u64, max)?;
                }
                Vector::Dense(_) => {}
            }
        }
        Ok(())
    }

    /// Creating one more payload index when `existing` are there.
    pub fn new_index(&self, existing: usize) -> Result<()> {
        match self.cfg.max_payload_index_count {
            Some(max) if existing as u64 >= max => Err(refuse(
                format!("Max payload index count of {max} reached"),
                "Delete some payload indexes or increase max_payload_index_count.",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(v: serde_json::Value) -> StrictModeConfig {
        serde_json::from_value(v).expect("config")
    }

    fn filter(v: serde_json::Value) -> Filter {
        Filter::from_json(&v).expect("filter")
    }

    #[test]
    fn disabled_checks_nothing() {
        let c = cfg(json!({"enabled": false, "max_query_limit": 1}));
        assert!(Strict::new(&c, vec![]).is_none());
    }

    #[test]
    fn limits_params_and_filters() {
        let c = cfg(
            json!({"enabled": true, "max_query_limit": 10, "search_max_hnsw_ef": 64, "search_allow_exact": false,
                            "unindexed_filtering_retrieve": false, "filter_max_conditions": 3, "condition_max_size": 2}),
        );
        let s = Strict::new(&c, vec!["city".to_string(), "tags[].name".to_string()]).expect("enabled");
        assert!(s.limit(10).is_ok());
        let e = s.limit(11).expect_err("over");
        assert!(
            matches!(&e, CollectionError::BadRequest(m) if m.starts_with("Limit exceeded 11 > 10 for \"limit\". Help:")),
            "{e}"
        );
        assert!(s.params(&SearchSettings { hnsw_ef: Some(128), ..Default::default() }).is_err());
        assert!(s.params(&SearchSettings { exact: true, ..Default::default() }).is_err());
        assert!(s.filter(&filter(json!({"must": [{"key": "city", "match": {"value": "x"}}]})), true).is_ok());
        assert!(s.filter(&filter(json!({"must": [{"key": "price", "range": {"gt": 1}}]})), true).is_err());
        assert!(
            s.filter(&filter(json!({"must": [{"key": "price", "range": {"gt": 1}}]})), false).is_ok(),
            "updates may"
        );
        assert!(s.filter(&filter(json!({"must": [{"nested": {"key": "tags", "filter": {"must": [{"key": "name", "match": {"value": "a"}}]}}}]})), true).is_ok());
        assert!(s
            .filter(&filter(json!({"must": [{"key": "city", "match": {"any": ["a", "b", "c"]}}]})), true)
            .is_err());
        let four = json!({"must": [{"has_id": [1]}, {"has_id": [2]}], "should": [{"has_id": [3]}, {"has_id": [4]}]});
        assert!(s.filter(&filter(four), true).is_err());
    }

    #[test]
    fn writes() {
        let c = cfg(
            json!({"enabled": true, "upsert_max_batchsize": 2, "max_points_count": 5, "unindexed_filtering_update": false,
                            "max_payload_index_count": 1}),
        );
        let s = Strict::new(&c, vec![]).expect("enabled");
        let p = |i: u64| crate::operations::PointInsert {
            id: qd_core::PointId::Num(i),
            vectors: Default::default(),
            payload: None,
        };
        let points = |n| Usage { points: n, ..Default::default() };
        assert!(s.update(&UpdateOp::Upsert(vec![p(1), p(2)]), &points(0)).is_ok());
        assert!(s.update(&UpdateOp::Upsert(vec![p(1), p(2), p(3)]), &points(0)).is_err());
        assert!(s.update(&UpdateOp::Upsert(vec![p(1)]), &points(5)).is_err());
        let by_filter =
            UpdateOp::Delete(PointSelection::Filter(filter(json!({"must": [{"key": "x", "match": {"value": 1}}]}))));
        assert!(s.update(&by_filter, &points(0)).is_err());
        assert!(s.new_index(0).is_ok());
        assert!(s.new_index(1).is_err());
    }

    #[test]
    fn storage_caps_timeouts_and_vector_sizes() {
        let c = cfg(json!({"enabled": true, "max_collection_vector_size_bytes": 100,
                           "max_collection_payload_size_bytes": 50, "max_timeout": 5,
                           "multivector_config": {"m": {"max_vectors": 2}}, "sparse_config": {"s": {"max_length": 3}}}));
        let s = Strict::new(&c, vec![]).expect("enabled");
        assert!(s.timeout(Some(5)).is_ok() && s.timeout(None).is_ok());
        let e = s.timeout(Some(6)).expect_err("over");
        assert!(e.to_string().contains("Limit exceeded 6 > 5 for \"timeout\""), "{e}");
        let with_payload = crate::operations::PointInsert {
            id: qd_core::PointId::Num(1),
            vectors: Default::default(),
            payload: Some(Default::default()),
        };
        let upsert = UpdateOp::Upsert(vec![with_payload]);
        assert!(s.update(&upsert, &Usage { vector_bytes: 99, payload_bytes: 49, points: 0 }).is_ok());
        let e = s.update(&upsert, &Usage { vector_bytes: 100, ..Default::default() }).expect_err("full");
        assert!(e.to_string().contains("Max vector storage size limit of 100 bytes reached"), "{e}");
        assert!(s.update(&upsert, &Usage { payload_bytes: 50, ..Default::default() }).is_err());
        let delete = UpdateOp::Delete(PointSelection::Ids(vec![qd_core::PointId::Num(1)]));
        assert!(s.update(&delete, &Usage { vector_bytes: 1000, payload_bytes: 1000, points: 0 }).is_ok());
        use qd_core::vectors::{MultiDenseVector, SparseVector, Vector};
        let multi = |rows: usize| Vector::Multi(MultiDenseVector::from_flat(2, vec![0.5; 2 * rows]).expect("rows"));
        let sparse = |n: u32| Vector::Sparse(SparseVector { indices: (0..n).collect(), values: vec![1.0; n as usize] });
        let named = |name: &str, v: Vector| std::iter::once((name.to_string(), v)).collect();
        assert!(s.vectors(&named("m", multi(2))).is_ok());
        assert!(s.vectors(&named("m", multi(3))).is_err());
        assert!(s.vectors(&named("other", multi(3))).is_ok());
        assert!(s.vectors(&named("s", sparse(3))).is_ok());
        let e = s.vectors(&named("s", sparse(4))).expect_err("long");
        assert!(e.to_string().contains("for \"s: max_length\""), "{e}");
    }
}
