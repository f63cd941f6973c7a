//! Collection configuration. Requests are turned into Qdrant's REST JSON shape and parsed by
//! the same serde types and validation the REST API uses, so a config is accepted or refused
//! with the same message on both APIs; answers are built from the typed config.

// Deprecated protobuf fields (`on_disk`, `always_ram`, old operation variants) are what older
// clients still send: they are read here on purpose.
#![allow(deprecated)]

use qd_core::config::{
    CollectionConfig, Datatype, HnswConfig, Modifier, OptimizersConfig, QuantizationConfig, SparseVectorParams,
    VectorParams, VectorsConfig, WalConfig,
};
use qd_core::Distance;
use qdrant_client::qdrant as pb;
use serde_json::{json, Map, Value};

use super::values::{fields_of, map_of};
use super::{invalid, Result};

/// An object of the present fields only.
fn obj<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect())
}

fn enum_name<E: TryFrom<i32>>(v: i32, what: &str, name: impl Fn(E) -> Option<&'static str>) -> Result<Value> {
    E::try_from(v)
        .ok()
        .and_then(name)
        .map(|s| Value::String(s.to_string()))
        .ok_or_else(|| invalid(format!("{what}: unknown value {v}")))
}

fn distance(d: i32) -> Result<Value> {
    enum_name(d, "distance", |d: pb::Distance| match d {
        pb::Distance::Cosine => Some("Cosine"),
        pb::Distance::Euclid => Some("Euclid"),
        pb::Distance::Dot => Some("Dot"),
        pb::Distance::Manhattan => Some("Manhattan"),
        pb::Distance::UnknownDistance => None,
    })
}

fn datatype(d: i32) -> Result<Value> {
    enum_name(d, "datatype", |d: pb::Datatype| match d {
        pb::Datatype::Default | pb::Datatype::Float32 => Some("float32"),
        pb::Datatype::Uint8 => Some("uint8"),
        pb::Datatype::Float16 => Some("float16"),
        _ => None,
    })
}

fn hnsw_json(h: pb::HnswConfigDiff) -> Value {
    obj([
        ("m", h.m.map(Value::from)),
        ("ef_construct", h.ef_construct.map(Value::from)),
        ("full_scan_threshold", h.full_scan_threshold.map(Value::from)),
        ("max_indexing_threads", h.max_indexing_threads.map(Value::from)),
        ("on_disk", h.on_disk.map(Value::from)),
        ("payload_m", h.payload_m.map(Value::from)),
    ])
}

fn scalar_json(s: pb::ScalarQuantization) -> Result<Value> {
    if pb::QuantizationType::try_from(s.r#type) != Ok(pb::QuantizationType::Int8) {
        return Err(invalid("quantization_config.scalar.type: only int8 is supported"));
    }
    Ok(json!({ "scalar": obj([
        ("type", Some(json!("int8"))),
        ("quantile", s.quantile.map(|q| json!(q))),
        ("always_ram", s.always_ram.map(Value::from)),
    ]) }))
}

fn binary_json(b: pb::BinaryQuantization) -> Result<Value> {
    use pb::binary_quantization_query_encoding::{Setting, Variant};
    let encoding = match b.encoding.map(pb::BinaryQuantizationEncoding::try_from) {
        None => None,
        Some(Ok(pb::BinaryQuantizationEncoding::OneBit)) => Some(json!("one_bit")),
        Some(Ok(pb::BinaryQuantizationEncoding::TwoBits)) => Some(json!("two_bits")),
        Some(Ok(pb::BinaryQuantizationEncoding::OneAndHalfBits)) => Some(json!("one_and_half_bits")),
        Some(Err(_)) => return Err(invalid("quantization_config.binary.encoding: unknown value")),
    };
    let query_encoding = match b.query_encoding.and_then(|q| q.variant) {
        None => None,
        Some(Variant::Setting(s)) => Some(json!(match Setting::try_from(s) {
            Ok(Setting::Default) => "default",
            Ok(Setting::Binary) => "binary",
            Ok(Setting::Scalar4Bits) => "scalar4bits",
            Ok(Setting::Scalar8Bits) => "scalar8bits",
            Err(_) => return Err(invalid("quantization_config.binary.query_encoding: unknown value")),
        })),
    };
    Ok(json!({ "binary": obj([
        ("always_ram", b.always_ram.map(Value::from)),
        ("encoding", encoding),
        ("query_encoding", query_encoding),
    ]) }))
}

fn quantization_json(q: pb::QuantizationConfig) -> Result<Value> {
    use pb::quantization_config::Quantization as Q;
    match q.quantization {
        Some(Q::Scalar(s)) => scalar_json(s),
        Some(Q::Binary(b)) => binary_json(b),
        Some(Q::Product(_)) => Ok(json!({ "product": {} })),
        Some(Q::Turboquant(_)) => Err(invalid("quantization_config: turbo quantization is not supported")),
        None => Ok(Value::Null),
    }
}

fn vector_params_json(p: pb::VectorParams) -> Result<Value> {
    let multivector = match p.multivector_config {
        None => None,
        Some(m) if m.comparator == pb::MultiVectorComparator::MaxSim as i32 => Some(json!({ "comparator": "max_sim" })),
        Some(_) => return Err(invalid("multivector_config.comparator: unknown value")),
    };
    Ok(obj([
        ("size", Some(Value::from(p.size))),
        ("distance", Some(distance(p.distance)?)),
        ("hnsw_config", p.hnsw_config.map(hnsw_json)),
        ("quantization_config", p.quantization_config.map(quantization_json).transpose()?),
        ("on_disk", p.on_disk.map(Value::from)),
        ("datatype", p.datatype.map(datatype).transpose()?),
        ("multivector_config", multivector),
    ]))
}

fn vectors_json(v: pb::VectorsConfig) -> Result<Option<Value>> {
    use pb::vectors_config::Config;
    Ok(match v.config {
        None => None,
        Some(Config::Params(p)) => Some(vector_params_json(p)?),
        Some(Config::ParamsMap(m)) => Some(Value::Object(
            m.map.into_iter().map(|(k, p)| Ok((k, vector_params_json(p)?))).collect::<Result<Map<_, _>>>()?,
        )),
    })
}

fn sparse_json(s: pb::SparseVectorConfig) -> Result<Value> {
    let mut out = Map::new();
    for (name, p) in s.map {
        let index = p.index.map(|i| -> Result<Value> {
            Ok(obj([
                ("full_scan_threshold", i.full_scan_threshold.map(Value::from)),
                ("on_disk", i.on_disk.map(Value::from)),
                ("datatype", i.datatype.map(datatype).transpose()?),
            ]))
        });
        let modifier = match p.modifier.map(pb::Modifier::try_from) {
            None => None,
            Some(Ok(pb::Modifier::None)) => Some(json!("none")),
            Some(Ok(pb::Modifier::Idf)) => Some(json!("idf")),
            Some(Err(_)) => return Err(invalid(format!("sparse_vectors.{name}.modifier: unknown value"))),
        };
        out.insert(name, obj([("index", index.transpose()?), ("modifier", modifier)]));
    }
    Ok(Value::Object(out))
}

fn optimizers_json(o: pb::OptimizersConfigDiff) -> Value {
    use pb::max_optimization_threads::Variant;
    let threads = match o.max_optimization_threads.and_then(|t| t.variant) {
        Some(Variant::Value(n)) => Some(Value::from(n)),
        Some(Variant::Setting(_)) => None, // "auto"
        None => o.deprecated_max_optimization_threads.map(Value::from),
    };
    obj([
        ("deleted_threshold", o.deleted_threshold.map(|d| json!(d))),
        ("vacuum_min_vector_number", o.vacuum_min_vector_number.map(Value::from)),
        ("default_segment_number", o.default_segment_number.map(Value::from)),
        ("max_segment_size", o.max_segment_size.map(Value::from)),
        ("memmap_threshold", o.memmap_threshold.map(Value::from)),
        ("indexing_threshold", o.indexing_threshold.map(Value::from)),
        ("flush_interval_sec", o.flush_interval_sec.map(Value::from)),
        ("max_optimization_threads", threads),
    ])
}

fn wal_json(w: pb::WalConfigDiff) -> Value {
    obj([
        ("wal_capacity_mb", w.wal_capacity_mb.map(Value::from)),
        ("wal_segments_ahead", w.wal_segments_ahead.map(Value::from)),
    ])
}

/// Strict mode settings as Qdrant's JSON object (stored; enforcement is separate).
pub fn strict_mode_json(s: pb::StrictModeConfig) -> Value {
    obj([
        ("enabled", s.enabled.map(Value::from)),
        ("max_query_limit", s.max_query_limit.map(Value::from)),
        ("max_timeout", s.max_timeout.map(Value::from)),
        ("unindexed_filtering_retrieve", s.unindexed_filtering_retrieve.map(Value::from)),
        ("unindexed_filtering_update", s.unindexed_filtering_update.map(Value::from)),
        ("search_max_hnsw_ef", s.search_max_hnsw_ef.map(Value::from)),
        ("search_allow_exact", s.search_allow_exact.map(Value::from)),
        ("search_max_oversampling", s.search_max_oversampling.map(|v| json!(v))),
        ("upsert_max_batchsize", s.upsert_max_batchsize.map(Value::from)),
        ("search_max_batchsize", s.search_max_batchsize.map(Value::from)),
        ("max_collection_vector_size_bytes", s.max_collection_vector_size_bytes.map(Value::from)),
        ("read_rate_limit", s.read_rate_limit.map(Value::from)),
        ("write_rate_limit", s.write_rate_limit.map(Value::from)),
        ("max_collection_payload_size_bytes", s.max_collection_payload_size_bytes.map(Value::from)),
        ("filter_max_conditions", s.filter_max_conditions.map(Value::from)),
        ("condition_max_size", s.condition_max_size.map(Value::from)),
        ("max_points_count", s.max_points_count.map(Value::from)),
        ("max_payload_index_count", s.max_payload_index_count.map(Value::from)),
        ("max_resident_memory_percent", s.max_resident_memory_percent.map(Value::from)),
        (
            "multivector_config",
            s.multivector_config.map(|m| {
                m.multivector_config
                    .into_iter()
                    .map(|(name, v)| (name, obj([("max_vectors", v.max_vectors.map(Value::from))])))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            }),
        ),
        (
            "sparse_config",
            s.sparse_config.map(|m| {
                m.sparse_config
                    .into_iter()
                    .map(|(name, v)| (name, obj([("max_length", v.max_length.map(Value::from))])))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            }),
        ),
    ])
}

/// `CreateCollection` as the REST body of `PUT /collections/{name}`.
pub fn create_json(c: pb::CreateCollection) -> Result<Value> {
    let sharding = match c.sharding_method.map(pb::ShardingMethod::try_from) {
        None => None,
        Some(Ok(pb::ShardingMethod::Auto)) => Some(json!("auto")),
        Some(Ok(pb::ShardingMethod::Custom)) => Some(json!("custom")),
        Some(Err(_)) => return Err(invalid("sharding_method: unknown value")),
    };
    Ok(obj([
        ("vectors", c.vectors_config.map(vectors_json).transpose()?.flatten()),
        ("shard_number", c.shard_number.map(Value::from)),
        ("sharding_method", sharding),
        ("replication_factor", c.replication_factor.map(Value::from)),
        ("write_consistency_factor", c.write_consistency_factor.map(Value::from)),
        ("on_disk_payload", c.on_disk_payload.map(Value::from)),
        ("hnsw_config", c.hnsw_config.map(hnsw_json)),
        ("wal_config", c.wal_config.map(wal_json)),
        ("optimizers_config", c.optimizers_config.map(optimizers_json)),
        ("quantization_config", c.quantization_config.map(quantization_json).transpose()?),
        ("sparse_vectors", c.sparse_vectors_config.map(sparse_json).transpose()?),
        ("strict_mode_config", c.strict_mode_config.map(strict_mode_json)),
        ("metadata", (!c.metadata.is_empty()).then(|| Value::Object(map_of(c.metadata)))),
    ]))
}

/// `UpdateCollection` as the REST body of `PATCH /collections/{name}`.
pub fn update_json(u: pb::UpdateCollection) -> Result<Value> {
    let quantization = quantization_diff_json(u.quantization_config)?;
    let vectors = match u.vectors_config.and_then(|v| v.config) {
        None => None,
        Some(pb::vectors_config_diff::Config::Params(p)) => Some(json!({ "": vector_diff_json(p)? })),
        Some(pb::vectors_config_diff::Config::ParamsMap(m)) => Some(Value::Object(
            m.map.into_iter().map(|(k, p)| Ok((k, vector_diff_json(p)?))).collect::<Result<Map<_, _>>>()?,
        )),
    };
    let params = u.params.map(|p| {
        obj([
            ("replication_factor", p.replication_factor.map(Value::from)),
            ("write_consistency_factor", p.write_consistency_factor.map(Value::from)),
            ("on_disk_payload", p.on_disk_payload.map(Value::from)),
            ("read_fan_out_factor", p.read_fan_out_factor.map(Value::from)),
        ])
    });
    Ok(obj([
        ("optimizers_config", u.optimizers_config.map(optimizers_json)),
        ("params", params),
        ("hnsw_config", u.hnsw_config.map(hnsw_json)),
        ("vectors", vectors),
        ("quantization_config", quantization),
        ("sparse_vectors", u.sparse_vectors_config.map(sparse_json).transpose()?),
        ("strict_mode_config", u.strict_mode_config.map(strict_mode_json)),
        ("metadata", (!u.metadata.is_empty()).then(|| Value::Object(map_of(u.metadata)))),
    ]))
}

/// A quantization change of PATCH: a config, `"Disabled"`, or nothing.
fn quantization_diff_json(q: Option<pb::QuantizationConfigDiff>) -> Result<Option<Value>> {
    use pb::quantization_config_diff::Quantization as Q;
    Ok(match q.and_then(|q| q.quantization) {
        None => None,
        Some(Q::Disabled(_)) => Some(json!("Disabled")),
        Some(Q::Scalar(s)) => Some(scalar_json(s)?),
        Some(Q::Binary(b)) => Some(binary_json(b)?),
        Some(Q::Product(_)) => Some(json!({ "product": {} })),
        Some(Q::Turboquant(_)) => return Err(invalid("quantization_config: turbo quantization is not supported")),
    })
}

fn vector_diff_json(p: pb::VectorParamsDiff) -> Result<Value> {
    let quantization = quantization_diff_json(p.quantization_config)?;
    Ok(obj([
        ("hnsw_config", p.hnsw_config.map(hnsw_json)),
        ("quantization_config", quantization),
        ("on_disk", p.on_disk.map(Value::from)),
    ]))
}

/// The vector a `CreateVectorName` request adds to a live collection.
pub fn new_vector(c: Option<pb::create_vector_name_request::VectorConfig>) -> Result<qd_collection::NewVector> {
    use pb::create_vector_name_request::VectorConfig as C;
    let json = match c {
        Some(C::DenseConfig(d)) => {
            let p = pb::VectorParams {
                size: d.size,
                distance: d.distance,
                datatype: d.datatype,
                multivector_config: d.multivector_config,
                ..Default::default()
            };
            return Ok(qd_collection::NewVector::Dense(parse(vector_params_json(p)?, "vector_config")?));
        }
        Some(C::SparseConfig(s)) => {
            let mut m = Map::new();
            if let Some(dt) = s.datatype {
                m.insert("index".into(), json!({ "datatype": datatype(dt)? }));
            }
            match s.modifier.map(pb::Modifier::try_from) {
                None | Some(Ok(pb::Modifier::None)) => {}
                Some(Ok(pb::Modifier::Idf)) => {
                    m.insert("modifier".into(), json!("idf"));
                }
                Some(Err(_)) => return Err(invalid("vector_config.modifier: unknown value")),
            }
            Value::Object(m)
        }
        None => return Err(invalid("vector_config: missing (dense or sparse)")),
    };
    Ok(qd_collection::NewVector::Sparse(parse(json, "vector_config")?))
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| invalid(format!("{what}: {e}")))
}

// ---- answers -------------------------------------------------------------------------------

fn u64_of(n: usize) -> u64 {
    n as u64
}

fn distance_out(d: Distance) -> i32 {
    (match d {
        Distance::Cosine => pb::Distance::Cosine,
        Distance::Euclid => pb::Distance::Euclid,
        Distance::Dot => pb::Distance::Dot,
        Distance::Manhattan => pb::Distance::Manhattan,
    }) as i32
}

fn datatype_out(d: Datatype) -> i32 {
    (match d {
        Datatype::Float32 => pb::Datatype::Float32,
        Datatype::Uint8 => pb::Datatype::Uint8,
        Datatype::Float16 => pb::Datatype::Float16,
    }) as i32
}

pub fn hnsw_diff_out(h: &qd_core::config::HnswConfigDiff) -> pb::HnswConfigDiff {
    pb::HnswConfigDiff {
        m: h.m.map(u64_of),
        ef_construct: h.ef_construct.map(u64_of),
        full_scan_threshold: h.full_scan_threshold.map(u64_of),
        max_indexing_threads: h.max_indexing_threads.map(u64_of),
        on_disk: h.on_disk,
        payload_m: h.payload_m.map(u64_of),
        ..Default::default()
    }
}

fn hnsw_out(h: &HnswConfig) -> pb::HnswConfigDiff {
    pb::HnswConfigDiff {
        m: Some(u64_of(h.m)),
        ef_construct: Some(u64_of(h.ef_construct)),
        full_scan_threshold: Some(u64_of(h.full_scan_threshold)),
        max_indexing_threads: Some(u64_of(h.max_indexing_threads)),
        on_disk: h.on_disk,
        payload_m: h.payload_m.map(u64_of),
        ..Default::default()
    }
}

fn quantization_out(q: &QuantizationConfig) -> pb::QuantizationConfig {
    use pb::quantization_config::Quantization as Q;
    let quantization = match q {
        QuantizationConfig::Scalar(s) => Q::Scalar(pb::ScalarQuantization {
            r#type: pb::QuantizationType::Int8 as i32,
            quantile: s.quantile.map(|q| q as f32),
            always_ram: s.always_ram,
            ..Default::default()
        }),
        QuantizationConfig::Binary(b) => Q::Binary(pb::BinaryQuantization {
            always_ram: b.always_ram,
            encoding: b.encoding.as_ref().map(|_| pb::BinaryQuantizationEncoding::OneBit as i32),
            query_encoding: b.query_encoding.as_deref().map(|e| pb::BinaryQuantizationQueryEncoding {
                variant: Some(pb::binary_quantization_query_encoding::Variant::Setting(match e {
                    "binary" => pb::binary_quantization_query_encoding::Setting::Binary as i32,
                    _ => pb::binary_quantization_query_encoding::Setting::Default as i32,
                })),
            }),
            ..Default::default()
        }),
    };
    pb::QuantizationConfig { quantization: Some(quantization) }
}

fn vector_params_out(p: &VectorParams) -> pb::VectorParams {
    pb::VectorParams {
        size: p.size,
        distance: distance_out(p.distance),
        hnsw_config: p.hnsw_config.as_ref().map(hnsw_diff_out),
        quantization_config: p.quantization_config.as_ref().map(quantization_out),
        on_disk: p.on_disk,
        datatype: p.datatype.map(datatype_out),
        multivector_config: p
            .multivector_config
            .as_ref()
            .map(|_| pb::MultiVectorConfig { comparator: pb::MultiVectorComparator::MaxSim as i32 }),
        ..Default::default()
    }
}

fn vectors_out(v: &VectorsConfig) -> pb::VectorsConfig {
    use pb::vectors_config::Config;
    let config = match v {
        VectorsConfig::Single(p) => Config::Params(vector_params_out(p)),
        VectorsConfig::Multi(m) => Config::ParamsMap(pb::VectorParamsMap {
            map: m.iter().map(|(k, p)| (k.clone(), vector_params_out(p))).collect(),
        }),
    };
    pb::VectorsConfig { config: Some(config) }
}

fn sparse_out(m: &std::collections::BTreeMap<String, SparseVectorParams>) -> pb::SparseVectorConfig {
    pb::SparseVectorConfig {
        map: m
            .iter()
            .map(|(k, p)| {
                let index = p.index.as_ref().map(|i| pb::SparseIndexConfig {
                    full_scan_threshold: i.full_scan_threshold,
                    on_disk: i.on_disk,
                    datatype: i.datatype.map(datatype_out),
                    ..Default::default()
                });
                let modifier = p.modifier.map(|m| match m {
                    Modifier::Idf => pb::Modifier::Idf as i32,
                    Modifier::None => pb::Modifier::None as i32,
                });
                (k.clone(), pb::SparseVectorParams { index, modifier })
            })
            .collect(),
    }
}

fn optimizers_out(o: &OptimizersConfig) -> pb::OptimizersConfigDiff {
    pb::OptimizersConfigDiff {
        deleted_threshold: Some(o.deleted_threshold),
        vacuum_min_vector_number: Some(u64_of(o.vacuum_min_vector_number)),
        default_segment_number: Some(u64_of(o.default_segment_number)),
        max_segment_size: o.max_segment_size.map(u64_of),
        memmap_threshold: o.memmap_threshold.map(u64_of),
        indexing_threshold: o.indexing_threshold.map(u64_of),
        flush_interval_sec: Some(o.flush_interval_sec),
        max_optimization_threads: o.max_optimization_threads.map(|n| pb::MaxOptimizationThreads {
            variant: Some(pb::max_optimization_threads::Variant::Value(u64_of(n))),
        }),
        ..Default::default()
    }
}

fn wal_out(w: &WalConfig) -> pb::WalConfigDiff {
    pb::WalConfigDiff {
        wal_capacity_mb: Some(u64_of(w.wal_capacity_mb)),
        wal_segments_ahead: Some(u64_of(w.wal_segments_ahead)),
        ..Default::default()
    }
}

pub fn config_out(c: &CollectionConfig) -> pb::CollectionConfig {
    let p = &c.params;
    pb::CollectionConfig {
        params: Some(pb::CollectionParams {
            shard_number: p.shard_number,
            on_disk_payload: p.on_disk_payload,
            vectors_config: Some(vectors_out(&p.vectors)),
            replication_factor: Some(p.replication_factor),
            write_consistency_factor: Some(p.write_consistency_factor),
            sharding_method: p.sharding_method.map(|m| match m {
                qd_core::config::ShardingMethod::Auto => pb::ShardingMethod::Auto as i32,
                qd_core::config::ShardingMethod::Custom => pb::ShardingMethod::Custom as i32,
            }),
            sparse_vectors_config: p.sparse_vectors.as_ref().map(sparse_out),
            ..Default::default()
        }),
        hnsw_config: Some(hnsw_out(&c.hnsw_config)),
        optimizer_config: Some(optimizers_out(&c.optimizer_config)),
        wal_config: Some(wal_out(&c.wal_config)),
        quantization_config: c.quantization_config.as_ref().map(quantization_out),
        strict_mode_config: Some(strict_mode_out(&c.strict_mode_config)),
        metadata: c.metadata.as_ref().map(fields_of).unwrap_or_default(),
    }
}

fn strict_mode_out(s: &qd_core::strict_mode::StrictModeConfig) -> pb::StrictModeConfig {
    let u32_of = |v: Option<u64>| v.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    pb::StrictModeConfig {
        enabled: s.enabled,
        max_query_limit: u32_of(s.max_query_limit),
        max_timeout: u32_of(s.max_timeout),
        unindexed_filtering_retrieve: s.unindexed_filtering_retrieve,
        unindexed_filtering_update: s.unindexed_filtering_update,
        search_max_hnsw_ef: u32_of(s.search_max_hnsw_ef),
        search_allow_exact: s.search_allow_exact,
        search_max_oversampling: s.search_max_oversampling.map(|o| o as f32),
        upsert_max_batchsize: s.upsert_max_batchsize,
        search_max_batchsize: s.search_max_batchsize,
        max_collection_vector_size_bytes: s.max_collection_vector_size_bytes,
        read_rate_limit: u32_of(s.read_rate_limit),
        write_rate_limit: u32_of(s.write_rate_limit),
        max_collection_payload_size_bytes: s.max_collection_payload_size_bytes,
        filter_max_conditions: s.filter_max_conditions,
        condition_max_size: s.condition_max_size,
        max_points_count: s.max_points_count,
        max_payload_index_count: s.max_payload_index_count,
        max_resident_memory_percent: u32_of(s.max_resident_memory_percent),
        multivector_config: s.multivector_config.as_ref().map(|m| pb::StrictModeMultivectorConfig {
            multivector_config: m
                .iter()
                .map(|(name, v)| (name.clone(), pb::StrictModeMultivector { max_vectors: v.max_vectors }))
                .collect(),
        }),
        sparse_config: s.sparse_config.as_ref().map(|m| pb::StrictModeSparseConfig {
            sparse_config: m
                .iter()
                .map(|(name, v)| (name.clone(), pb::StrictModeSparse { max_length: v.max_length }))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_named_dense_and_sparse_collection_becomes_the_rest_body() {
        let c = pb::CreateCollection {
            collection_name: "c".into(),
            vectors_config: Some(pb::VectorsConfig {
                config: Some(pb::vectors_config::Config::ParamsMap(pb::VectorParamsMap {
                    map: HashMap::from([(
                        "dense".to_string(),
                        pb::VectorParams { size: 4, distance: pb::Distance::Cosine as i32, ..Default::default() },
                    )]),
                })),
            }),
            sparse_vectors_config: Some(pb::SparseVectorConfig {
                map: HashMap::from([(
                    "text".to_string(),
                    pb::SparseVectorParams { index: None, modifier: Some(pb::Modifier::Idf as i32) },
                )]),
            }),
            ..Default::default()
        };
        let body = create_json(c).expect("valid");
        assert_eq!(body["vectors"]["dense"], json!({"size": 4, "distance": "Cosine"}));
        assert_eq!(body["sparse_vectors"]["text"], json!({"modifier": "idf"}));
        let parsed: qd_core::config::CreateCollection = serde_json::from_value(body).expect("parses as REST does");
        assert!(parsed.vectors.is_some());
    }

    #[test]
    fn unknown_distance_is_refused() {
        let p = pb::VectorParams { size: 4, distance: 0, ..Default::default() };
        assert!(vector_params_json(p).is_err());
    }
}
