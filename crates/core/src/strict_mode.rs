//! Strict mode settings of a collection, in Qdrant's shape (`StrictModeConfig`, Qdrant 1.19).
//!
//! Stored with the collection config and reported under `config.strict_mode_config`; the
//! collection layer enforces most limits (`qd_collection::strict`, docs/compatibility.md). Every
//! field is optional, as in Qdrant: the same type is the create body, the PATCH diff (`apply`) and
//! the stored value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Limits that protect a collection from expensive requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictModeConfig {
    /// Whether strict mode is enabled for the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Max `limit` of every API that has no max limit of its own (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_query_limit: Option<u64>,
    /// Max `timeout` parameter in seconds (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout: Option<u64>,
    /// Allow unindexed fields in retrieval filters (e.g. search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_retrieve: Option<bool>,
    /// Allow unindexed fields in filtered updates (e.g. delete by filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_update: Option<bool>,
    /// Max `hnsw_ef` allowed in search parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_hnsw_ef: Option<u64>,
    /// Whether `exact` search is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_allow_exact: Option<bool>,
    /// Max quantization `oversampling` allowed in search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_oversampling: Option<f64>,
    /// Max number of points in one upsert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_max_batchsize: Option<u64>,
    /// Max number of searches in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_batchsize: Option<u64>,
    /// Max size of the collection's vector storage in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collection_vector_size_bytes: Option<u64>,
    /// Max read operations per minute per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_rate_limit: Option<u64>,
    /// Max write operations per minute per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate_limit: Option<u64>,
    /// Max size of the collection's payload storage in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collection_payload_size_bytes: Option<u64>,
    /// Max number of points in the collection (estimated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points_count: Option<u64>,
    /// Max number of conditions in one filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_max_conditions: Option<u64>,
    /// Max size of one condition (e.g. values of `match.any`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_max_size: Option<u64>,
    /// Per multivector: max number of vectors in one multivector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector_config: Option<BTreeMap<String, StrictModeMultivector>>,
    /// Per sparse vector: max number of non-zero elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_config: Option<BTreeMap<String, StrictModeSparse>>,
    /// Max number of payload indexes in the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_index_count: Option<u64>,
    /// Deprecated in Qdrant: refuse memory-consuming updates above this share of RAM (1-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resident_memory_percent: Option<u64>,
}

/// Strict mode limits of one multivector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictModeMultivector {
    /// Max number of vectors in a multivector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vectors: Option<u64>,
}

/// Strict mode limits of one sparse vector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictModeSparse {
    /// Max length (non-zero elements) of a sparse vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
}

impl StrictModeConfig {
    /// What a collection created without strict mode reports (as Qdrant: `{"enabled": false}`).
    pub fn disabled() -> Self {
        StrictModeConfig { enabled: Some(false), ..Default::default() }
    }

    /// Check the ranges Qdrant checks; the message names the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let at_least_one = [
            ("max_query_limit", self.max_query_limit),
            ("max_timeout", self.max_timeout),
            ("read_rate_limit", self.read_rate_limit),
            ("write_rate_limit", self.write_rate_limit),
            ("max_points_count", self.max_points_count),
        ];
        for (name, value) in at_least_one {
            if value == Some(0) {
                return Err(ValidationError::at_least(&format!("strict_mode_config.{name}"), 0, 1));
            }
        }
        if self.max_resident_memory_percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(ValidationError::new(
                "strict_mode_config.max_resident_memory_percent: value must be between 1 and 100",
            ));
        }
        if self.search_max_oversampling.is_some_and(|o| !o.is_finite() || o < 0.0) {
            return Err(ValidationError::new(
                "strict_mode_config.search_max_oversampling: value must be a non-negative number",
            ));
        }
        Ok(())
    }

    /// This config with every field that `diff` sets replaced (PATCH and create: fields the
    /// diff leaves out or sets to null are kept; maps such as `sparse_config` are replaced
    /// whole, as Qdrant merges only top-level fields).
    pub fn apply(&self, diff: &StrictModeConfig) -> StrictModeConfig {
        let d = diff.clone();
        let b = self.clone();
        StrictModeConfig {
            enabled: d.enabled.or(b.enabled),
            max_query_limit: d.max_query_limit.or(b.max_query_limit),
            max_timeout: d.max_timeout.or(b.max_timeout),
            unindexed_filtering_retrieve: d.unindexed_filtering_retrieve.or(b.unindexed_filtering_retrieve),
            unindexed_filtering_update: d.unindexed_filtering_update.or(b.unindexed_filtering_update),
            search_max_hnsw_ef: d.search_max_hnsw_ef.or(b.search_max_hnsw_ef),
            search_allow_exact: d.search_allow_exact.or(b.search_allow_exact),
            search_max_oversampling: d.search_max_oversampling.or(b.search_max_oversampling),
            upsert_max_batchsize: d.upsert_max_batchsize.or(b.upsert_max_batchsize),
            search_max_batchsize: d.search_max_batchsize.or(b.search_max_batchsize),
            max_collection_vector_size_bytes: d.max_collection_vector_size_bytes.or(b.max_collection_vector_size_bytes),
            read_rate_limit: d.read_rate_limit.or(b.read_rate_limit),
            write_rate_limit: d.write_rate_limit.or(b.write_rate_limit),
            max_collection_payload_size_bytes: d
                .max_collection_payload_size_bytes
                .or(b.max_collection_payload_size_bytes),
            max_points_count: d.max_points_count.or(b.max_points_count),
            filter_max_conditions: d.filter_max_conditions.or(b.filter_max_conditions),
            condition_max_size: d.condition_max_size.or(b.condition_max_size),
            multivector_config: d.multivector_config.or(b.multivector_config),
            sparse_config: d.sparse_config.or(b.sparse_config),
            max_payload_index_count: d.max_payload_index_count.or(b.max_payload_index_count),
            max_resident_memory_percent: d.max_resident_memory_percent.or(b.max_resident_memory_percent),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Result<StrictModeConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn apply_keeps_what_the_diff_leaves_out() {
        let base = StrictModeConfig::disabled()
            .apply(&parse(json!({"max_query_limit": 10, "sparse_config": {"s": {"max_length": 5}}})).expect("p"));
        let diff = parse(json!({"enabled": true, "max_timeout": 3, "max_query_limit": null})).expect("diff");
        let got = base.apply(&diff);
        let want = json!({"enabled": true, "max_query_limit": 10, "max_timeout": 3, "sparse_config": {"s": {"max_length": 5}}});
        assert_eq!(serde_json::to_value(&got).expect("json"), want);
        let replaced = got.apply(&parse(json!({"sparse_config": {"t": {}}})).expect("diff"));
        assert_eq!(
            serde_json::to_value(&replaced.sparse_config).expect("json"),
            json!({"t": {}}),
            "maps replaced whole"
        );
    }

    #[test]
    fn every_qdrant_field_round_trips() {
        let all = json!({
            "enabled": true, "max_query_limit": 1, "max_timeout": 2, "unindexed_filtering_retrieve": false,
            "unindexed_filtering_update": true, "search_max_hnsw_ef": 3, "search_allow_exact": false,
            "search_max_oversampling": 1.5, "upsert_max_batchsize": 4, "search_max_batchsize": 5,
            "max_collection_vector_size_bytes": 6, "read_rate_limit": 7, "write_rate_limit": 8,
            "max_collection_payload_size_bytes": 9, "max_points_count": 10, "filter_max_conditions": 11,
            "condition_max_size": 12, "multivector_config": {"m": {"max_vectors": 13}},
            "sparse_config": {"s": {"max_length": 14}}, "max_payload_index_count": 15, "max_resident_memory_percent": 16
        });
        let c = parse(all.clone()).expect("parse");
        assert!(c.validate().is_ok());
        assert_eq!(serde_json::to_value(&c).expect("json"), all);
        assert_eq!(serde_json::to_value(StrictModeConfig::disabled()).expect("json"), json!({"enabled": false}));
    }

    #[test]
    fn refuses_unknown_fields_and_bad_ranges() {
        let e = parse(json!({"enabled": true, "max_query_limt": 3})).expect_err("typo");
        assert!(e.contains("unknown field `max_query_limt`"), "{e}");
        assert!(parse(json!({"sparse_config": {"s": {"max_len": 1}}})).is_err());
        assert!(parse(json!({"max_query_limit": -1})).is_err());
        for (bad, field) in [
            (json!({"max_query_limit": 0}), "max_query_limit"),
            (json!({"max_timeout": 0}), "max_timeout"),
            (json!({"max_resident_memory_percent": 101}), "max_resident_memory_percent"),
            (json!({"search_max_oversampling": -1.0}), "search_max_oversampling"),
        ] {
            let e = parse(bad).expect("parse").validate().expect_err("out of range");
            assert!(e.message.starts_with(&format!("strict_mode_config.{field}: ")), "{e}");
        }
    }
}
