//! Collection configuration in Qdrant's shapes.
//!
//! Full configs (every field resolved, what `GET /collections/{name}` shows and what is
//! persisted) are separate from `*Diff` types (every field optional) used by create and
//! `PATCH` bodies: `Diff::apply(base)` gives the new full config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::distance::Distance;
use crate::error::ValidationError;
use crate::strict_mode::StrictModeConfig;
use crate::Payload;

/// Name of the unnamed (default) vector, as Qdrant uses internally.
pub const DEFAULT_VECTOR_NAME: &str = "";

/// Element type of stored vectors. Stored and query vectors take the type's values, as in
/// Qdrant (`uint8`: each component cast to 0..=255, fractions dropped; `float16`: rounded to
/// half precision), so answers and returned vectors are Qdrant's. Segments hold the components
/// in 2 or 1 bytes (`qd_segment::elements`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    Float32,
    Uint8,
    Float16,
}

impl Datatype {
    /// Give every component this type's value.
    pub fn round(self, v: &mut [f32]) {
        match self {
            Datatype::Float32 => {}
            // Rust's cast saturates (negatives to 0, above 255 to 255) and drops the fraction,
            // as Qdrant's conversion does.
            Datatype::Uint8 => v.iter_mut().for_each(|x| *x = *x as u8 as f32),
            Datatype::Float16 => v.iter_mut().for_each(|x| *x = half_precision(*x)),
        }
    }
}

/// `x` rounded to the nearest half-precision value (ties to even). Beyond half precision's
/// largest value (65504) it saturates there instead of becoming infinite, so no score turns
/// non-finite.
pub fn half_precision(x: f32) -> f32 {
    const MAX: f32 = 65504.0;
    const MIN_NORMAL: f32 = 6.103_515_6e-5; // 2^-14
    const SUBNORMAL_STEP: f32 = 5.960_464_5e-8; // 2^-24
    if !x.is_finite() {
        return x;
    }
    let a = x.abs();
    let r = if a >= 65520.0 {
        MAX
    } else if a < MIN_NORMAL {
        (a / SUBNORMAL_STEP).round_ties_even() * SUBNORMAL_STEP
    } else {
        // Keep 10 of float32's 23 mantissa bits, rounding the 13 dropped ones to even.
        let bits = a.to_bits();
        f32::from_bits((bits + 0x0FFF + ((bits >> 13) & 1)) & !0x1FFF).min(MAX)
    };
    r.copysign(x)
}

/// Parameters of one dense vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorParams {
    /// Dimension of the vector.
    pub size: u64,
    /// Similarity metric.
    pub distance: Distance,
    /// Per-vector HNSW overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfigDiff>,
    /// Per-vector quantization overrides (takes precedence over the collection-wide one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<QuantizationConfig>,
    /// Keep vectors memory-mapped rather than in RAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
    /// Present for multivectors (ColBERT-style late interaction): several vectors per point,
    /// scored by max-sim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector_config: Option<MultiVectorConfig>,
}

/// How the vectors of a multivector are compared (Qdrant knows only `max_sim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiVectorComparator {
    MaxSim,
}

/// `multivector_config` of a dense vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiVectorConfig {
    pub comparator: MultiVectorComparator,
}

/// How query weights of a sparse vector are adjusted (`idf`: by inverse document frequency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modifier {
    #[default]
    None,
    Idf,
}

/// `index` of a sparse vector's params.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseIndexParams {
    /// Below this many candidate points a filtered sparse search scores them one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<u64>,
    /// Keep the inverted index on disk rather than in RAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// Element type of stored values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
}

/// Parameters of one sparse vector (`sparse_vectors.{name}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVectorParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<SparseIndexParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<Modifier>,
}

impl SparseVectorParams {
    pub fn idf(&self) -> bool {
        self.modifier == Some(Modifier::Idf)
    }

    /// Apply a PATCH: given fields replace the current ones.
    pub fn patch(&mut self, diff: &SparseVectorParams) {
        if let Some(d) = diff.index {
            let mut ix = self.index.unwrap_or_default();
            ix.full_scan_threshold = d.full_scan_threshold.or(ix.full_scan_threshold);
            ix.on_disk = d.on_disk.or(ix.on_disk);
            ix.datatype = d.datatype.or(ix.datatype);
            self.index = Some(ix);
        }
        if diff.modifier.is_some() {
            self.modifier = diff.modifier;
        }
    }
}

/// Largest accepted number of sparse vector names and dense vector names in one collection.
pub const MAX_VECTOR_NAMES: usize = 64;

/// Maximum accepted vector dimension (Qdrant's limit).
pub const MAX_VECTOR_SIZE: u64 = 65_536;

impl VectorParams {
    pub fn validate(&self, name: &str) -> Result<(), ValidationError> {
        let what = if name.is_empty() { "vectors".to_string() } else { format!("vectors.{name}") };
        if self.size == 0 || self.size > MAX_VECTOR_SIZE {
            return Err(ValidationError::rule(format!(
                "{what}.size: value {} invalid, must be from 1 to {MAX_VECTOR_SIZE}",
                self.size
            )));
        }
        if let Some(h) = &self.hnsw_config {
            h.validate()?;
        }
        Ok(())
    }
}

/// Element type of scalar-quantized codes (Qdrant's `ScalarType`; only `int8` exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    #[default]
    Int8,
}

/// `{"scalar": {...}}` of a quantization config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarQuantizationConfig {
    #[serde(rename = "type")]
    pub kind: ScalarType,
    /// Fraction of values (0.5..=1.0) the code range covers; the rest are clamped. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// Keep quantized codes in RAM (they always are here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
}

impl ScalarQuantizationConfig {
    /// The effective quantile (default 1.0: the full value range).
    pub fn quantile(&self) -> f32 {
        self.quantile.unwrap_or(1.0) as f32
    }
}

/// `{"binary": {...}}` of a quantization config: one bit per component (its sign).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryQuantizationConfig {
    /// Keep the bits in RAM (they always are here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    /// Only `one_bit` is implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// How queries are encoded: `default` / `binary` (one bit) are implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_encoding: Option<String>,
}

/// Qdrant's `quantization_config`. Serialised as `{"scalar": {...}}` or `{"binary": {...}}`.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantizationConfig {
    Scalar(ScalarQuantizationConfig),
    Binary(BinaryQuantizationConfig),
}

impl QuantizationConfig {
    /// Parse and validate a `quantization_config` value; `null` and `"Disabled"` give `None`.
    /// `what` prefixes error messages (the field path).
    pub fn from_json(v: &Value, what: &str) -> Result<Option<Self>, ValidationError> {
        let bad = |m: String| ValidationError::new(format!("{what}: {m}"));
        match v {
            Value::Null => return Ok(None),
            Value::String(s) if s == "Disabled" => return Ok(None),
            _ => {}
        }
        let o =
            v.as_object().ok_or_else(|| bad("expected an object like {\"scalar\": {\"type\": \"int8\"}}".into()))?;
        if o.len() != 1 {
            return Err(bad("expected exactly one of scalar, product, binary".into()));
        }
        if let Some(s) = o.get("scalar") {
            let cfg: ScalarQuantizationConfig =
                serde_json::from_value(s.clone()).map_err(|e| ValidationError::new(format!("{what}.scalar: {e}")))?;
            if let Some(q) = cfg.quantile {
                if !(0.5..=1.0).contains(&q) {
                    return Err(ValidationError::rule(format!(
                        "{what}.scalar.quantile: value {q} invalid, must be from 0.5 to 1.0"
                    )));
                }
            }
            return Ok(Some(QuantizationConfig::Scalar(cfg)));
        }
        if let Some(b) = o.get("binary") {
            let cfg: BinaryQuantizationConfig =
                serde_json::from_value(b.clone()).map_err(|e| ValidationError::new(format!("{what}.binary: {e}")))?;
            if let Some(e) = cfg.encoding.as_deref().filter(|e| *e != "one_bit") {
                return Err(ValidationError::new(format!(
                    "{what}.binary.encoding: {e:?} is not supported (only \"one_bit\")"
                )));
            }
            if let Some(e) = cfg.query_encoding.as_deref().filter(|e| !matches!(*e, "default" | "binary")) {
                return Err(ValidationError::new(format!(
                    "{what}.binary.query_encoding: {e:?} is not supported (only \"default\" or \"binary\")"
                )));
            }
            return Ok(Some(QuantizationConfig::Binary(cfg)));
        }
        if o.contains_key("product") {
            return Err(bad("product quantization is not supported yet (use scalar int8 or binary)".into()));
        }
        Err(bad("expected exactly one of scalar, product, binary".into()))
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn scalar(&self) -> Option<&ScalarQuantizationConfig> {
        match self {
            QuantizationConfig::Scalar(s) => Some(s),
            QuantizationConfig::Binary(_) => None,
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, QuantizationConfig::Binary(_))
    }
}

impl Serialize for QuantizationConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            QuantizationConfig::Scalar(c) => m.serialize_entry("scalar", c)?,
            QuantizationConfig::Binary(c) => m.serialize_entry("binary", c)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for QuantizationConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        QuantizationConfig::from_json(&v, "quantization_config")
            .map_err(|e| D::Error::custom(e.to_string()))?
            .ok_or_else(|| D::Error::custom("quantization_config: expected a quantization config"))
    }
}

/// `params.quantization` of a search request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationSearchParams {
    /// Search the original vectors only.
    #[serde(default)]
    pub ignore: bool,
    /// Re-score the quantized candidates with the original vectors (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<bool>,
    /// Candidates fetched = ceil(limit * oversampling) before rescoring (default 1, minimum 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversampling: Option<f64>,
}

impl QuantizationSearchParams {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(o) = self.oversampling {
            if !(o >= 1.0 && o.is_finite()) {
                return Err(ValidationError::at_least("oversampling", o, "1.0"));
            }
        }
        Ok(())
    }

    pub fn rescore(&self) -> bool {
        self.rescore.unwrap_or(true)
    }

    pub fn oversampling(&self) -> f64 {
        self.oversampling.unwrap_or(1.0).max(1.0)
    }
}

/// `vectors` in a collection config: one unnamed vector or a map of named vectors.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // parsed once per collection; boxing buys nothing
pub enum VectorsConfig {
    Single(VectorParams),
    Multi(BTreeMap<String, VectorParams>),
}

impl VectorsConfig {
    /// (name, params) pairs; the unnamed vector is called [`DEFAULT_VECTOR_NAME`].
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&str, &VectorParams)> + '_> {
        match self {
            VectorsConfig::Single(p) => Box::new(std::iter::once((DEFAULT_VECTOR_NAME, p))),
            VectorsConfig::Multi(m) => Box::new(m.iter().map(|(k, v)| (k.as_str(), v))),
        }
    }

    pub fn get(&self, name: &str) -> Option<&VectorParams> {
        match self {
            VectorsConfig::Single(p) if name == DEFAULT_VECTOR_NAME => Some(p),
            VectorsConfig::Single(_) => None,
            VectorsConfig::Multi(m) => m.get(name),
        }
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut VectorParams> {
        match self {
            VectorsConfig::Single(p) if name == DEFAULT_VECTOR_NAME => Some(p),
            VectorsConfig::Single(_) => None,
            VectorsConfig::Multi(m) => m.get_mut(name),
        }
    }

    /// A map may name a vector `""`: that is the unnamed vector, reached by plain
    /// `"vector": [..]` writes and queries without `using` (frameworks such as LangChain create
    /// `{"": {...}}` beside sparse vectors), as in Qdrant.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.iter().try_for_each(|(n, p)| p.validate(n))
    }
}

impl Serialize for VectorsConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VectorsConfig::Single(p) => p.serialize(s),
            VectorsConfig::Multi(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for VectorsConfig {
    /// An object with a `size` key is one unnamed vector; any other object is a map of names.
    /// Decided by hand rather than `untagged` so errors name the offending field.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        let obj = v.as_object().ok_or_else(|| D::Error::custom("vectors: expected an object"))?;
        if obj.contains_key("size") || obj.contains_key("distance") {
            serde_json::from_value(v).map(VectorsConfig::Single).map_err(D::Error::custom)
        } else {
            serde_json::from_value(v).map(VectorsConfig::Multi).map_err(D::Error::custom)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardingMethod {
    #[default]
    Auto,
    Custom,
}

/// The `params` part of a collection config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionParams {
    pub vectors: VectorsConfig,
    pub shard_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding_method: Option<ShardingMethod>,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_payload: bool,
    /// Sparse vectors by name (absent when the collection has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
}

impl CollectionParams {
    /// Sparse vector params by name.
    pub fn sparse(&self, name: &str) -> Option<&SparseVectorParams> {
        self.sparse_vectors.as_ref().and_then(|s| s.get(name))
    }

    /// Every sparse vector, by name.
    pub fn sparse_iter(&self) -> impl Iterator<Item = (&str, &SparseVectorParams)> {
        self.sparse_vectors.iter().flatten().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether `name` is taken by a dense or a sparse vector.
    pub fn has_vector(&self, name: &str) -> bool {
        self.vectors.get(name).is_some() || self.sparse(name).is_some()
    }

    /// Names must be unique across dense and sparse vectors; sparse names must not be empty.
    pub fn validate_names(&self) -> Result<(), ValidationError> {
        for (name, _) in self.sparse_iter() {
            if name.is_empty() {
                return Err(ValidationError::new("sparse_vectors: vector names must not be empty"));
            }
            if self.vectors.get(name).is_some() {
                return Err(ValidationError::new(format!(
                    "sparse_vectors.{name}: the name is already used by a dense vector"
                )));
            }
        }
        let total = self.vectors.iter().count() + self.sparse_iter().count();
        if total > MAX_VECTOR_NAMES {
            return Err(ValidationError::new(format!(
                "vectors: at most {MAX_VECTOR_NAMES} vectors per collection, got {total}"
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HnswConfig {
    /// Edges per node in the graph (layer 0 gets twice as many).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construct: usize,
    /// In KiB of vector data: below it a segment is searched exactly.
    pub full_scan_threshold: usize,
    /// 0 = use all cores.
    pub max_indexing_threads: usize,
    #[serde(default)]
    pub on_disk: Option<bool>,
    /// Extra links per payload-index value; `None` = use `m`.
    #[serde(default)]
    pub payload_m: Option<usize>,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construct: 100,
            full_scan_threshold: 10_000,
            max_indexing_threads: 0,
            on_disk: Some(false),
            payload_m: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswConfigDiff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construct: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_indexing_threads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_m: Option<usize>,
}

impl HnswConfigDiff {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(e) = self.ef_construct.filter(|e| *e < 4) {
            return Err(ValidationError::at_least("hnsw_config.ef_construct", e, 4));
        }
        if self.m.is_some_and(|m| m > 0 && m < 2) {
            return Err(ValidationError::new("hnsw_config.m: value must be 0 (no graph) or at least 2"));
        }
        if let Some(t) = self.full_scan_threshold.filter(|t| *t < 10) {
            return Err(ValidationError::at_least("hnsw_config.full_scan_threshold", t, 10));
        }
        Ok(())
    }

    pub fn apply(&self, base: &HnswConfig) -> HnswConfig {
        HnswConfig {
            m: self.m.unwrap_or(base.m),
            ef_construct: self.ef_construct.unwrap_or(base.ef_construct),
            full_scan_threshold: self.full_scan_threshold.unwrap_or(base.full_scan_threshold),
            max_indexing_threads: self.max_indexing_threads.unwrap_or(base.max_indexing_threads),
            on_disk: self.on_disk.or(base.on_disk),
            payload_m: self.payload_m.or(base.payload_m),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizersConfig {
    /// Fraction of deleted points in a segment that triggers a vacuum.
    pub deleted_threshold: f64,
    /// Segments smaller than this are never vacuumed.
    pub vacuum_min_vector_number: usize,
    /// Target number of segments; 0 = pick from the number of cores.
    pub default_segment_number: usize,
    /// In KiB; `None` = automatic.
    pub max_segment_size: Option<usize>,
    pub memmap_threshold: Option<usize>,
    /// In KiB of vector data: an appendable segment larger than this gets an HNSW index.
    pub indexing_threshold: Option<usize>,
    pub flush_interval_sec: u64,
    pub max_optimization_threads: Option<usize>,
}

impl Default for OptimizersConfig {
    fn default() -> Self {
        OptimizersConfig {
            deleted_threshold: 0.2,
            vacuum_min_vector_number: 1000,
            default_segment_number: 0,
            max_segment_size: None,
            memmap_threshold: None,
            indexing_threshold: Some(20_000),
            flush_interval_sec: 5,
            max_optimization_threads: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizersConfigDiff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuum_min_vector_number: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_segment_number: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_segment_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memmap_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexing_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_optimization_threads: Option<usize>,
    /// Deprecated in Qdrant; accepted and ignored.
    #[serde(default, skip_serializing)]
    pub memmap_threshold_kb: Option<usize>,
}

impl OptimizersConfigDiff {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(t) = self.deleted_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(ValidationError::new("optimizers_config.deleted_threshold: value must be between 0 and 1"));
            }
        }
        Ok(())
    }

    pub fn apply(&self, base: &OptimizersConfig) -> OptimizersConfig {
        OptimizersConfig {
            deleted_threshold: self.deleted_threshold.unwrap_or(base.deleted_threshold),
            vacuum_min_vector_number: self.vacuum_min_vector_number.unwrap_or(base.vacuum_min_vector_number),
            default_segment_number: self.default_segment_number.unwrap_or(base.default_segment_number),
            max_segment_size: self.max_segment_size.or(base.max_segment_size),
            memmap_threshold: self.memmap_threshold.or(base.memmap_threshold),
            indexing_threshold: self.indexing_threshold.or(base.indexing_threshold),
            flush_interval_sec: self.flush_interval_sec.unwrap_or(base.flush_interval_sec),
            max_optimization_threads: self.max_optimization_threads.or(base.max_optimization_threads),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalConfig {
    pub wal_capacity_mb: usize,
    pub wal_segments_ahead: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig { wal_capacity_mb: 32, wal_segments_ahead: 0 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfigDiff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_capacity_mb: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_segments_ahead: Option<usize>,
}

impl WalConfigDiff {
    pub fn apply(&self, base: &WalConfig) -> WalConfig {
        WalConfig {
            wal_capacity_mb: self.wal_capacity_mb.unwrap_or(base.wal_capacity_mb),
            wal_segments_ahead: self.wal_segments_ahead.unwrap_or(base.wal_segments_ahead),
        }
    }
}

/// Everything `GET /collections/{name}` reports under `config`, and what is persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    pub params: CollectionParams,
    pub hnsw_config: HnswConfig,
    pub optimizer_config: OptimizersConfig,
    pub wal_config: WalConfig,
    #[serde(default)]
    pub quantization_config: Option<QuantizationConfig>,
    /// Stored and reported, not enforced yet; catalogs written before it existed read as
    /// disabled.
    #[serde(default = "StrictModeConfig::disabled")]
    pub strict_mode_config: StrictModeConfig,
    /// The application's own JSON object (absent from catalogs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Payload>,
}

impl CollectionConfig {
    /// HNSW settings of one vector: collection-wide ones with the vector's overrides applied.
    pub fn hnsw_for(&self, vector: &str) -> HnswConfig {
        match self.params.vectors.get(vector).and_then(|p| p.hnsw_config.as_ref()) {
            Some(diff) => diff.apply(&self.hnsw_config),
            None => self.hnsw_config.clone(),
        }
    }

    /// PATCH `metadata`: merged key by key into the stored object, a `null` removing its key
    /// (Qdrant's merge, the same as `set_payload`'s).
    pub fn merge_metadata(&mut self, diff: &Payload) {
        crate::json_path::merge_payload(self.metadata.get_or_insert_with(Payload::new), diff);
    }

    /// Quantization of one vector: its own config if it has one, else the collection-wide one.
    pub fn quantization_for(&self, vector: &str) -> Option<&QuantizationConfig> {
        self.params
            .vectors
            .get(vector)
            .and_then(|p| p.quantization_config.as_ref())
            .or(self.quantization_config.as_ref())
    }
}

/// Body of `PUT /collections/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    pub vectors: Option<VectorsConfig>,
    #[serde(default)]
    pub shard_number: Option<u32>,
    #[serde(default)]
    pub sharding_method: Option<ShardingMethod>,
    #[serde(default)]
    pub replication_factor: Option<u32>,
    #[serde(default)]
    pub write_consistency_factor: Option<u32>,
    #[serde(default)]
    pub on_disk_payload: Option<bool>,
    #[serde(default)]
    pub hnsw_config: Option<HnswConfigDiff>,
    #[serde(default)]
    pub wal_config: Option<WalConfigDiff>,
    #[serde(default)]
    pub optimizers_config: Option<OptimizersConfigDiff>,
    #[serde(default)]
    pub quantization_config: Option<Value>,
    /// Sparse vectors by name.
    #[serde(default)]
    pub sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
    #[serde(default)]
    pub init_from: Option<Value>,
    /// Applied over `{"enabled": false}`.
    #[serde(default)]
    pub strict_mode_config: Option<StrictModeConfig>,
    /// Any JSON object, stored as given.
    #[serde(default)]
    pub metadata: Option<Payload>,
}

/// Server-wide defaults a new collection starts from (from the `storage` section of the config).
#[derive(Clone, Debug, Default)]
pub struct CollectionDefaults {
    pub hnsw: HnswConfig,
    pub optimizers: OptimizersConfig,
    pub wal: WalConfig,
}

impl CreateCollection {
    /// Validate and resolve into a full config.
    pub fn into_config(self, defaults: &CollectionDefaults) -> Result<CollectionConfig, ValidationError> {
        let sparse_vectors = self.sparse_vectors.filter(|s| !s.is_empty());
        let vectors = match self.vectors {
            Some(v) => v,
            // A collection of sparse vectors only has no dense vectors at all.
            None if sparse_vectors.is_some() => VectorsConfig::Multi(BTreeMap::new()),
            None => {
                return Err(ValidationError::new(
                    "vectors: missing field; give {\"size\": N, \"distance\": \"Cosine\"} or sparse_vectors",
                ))
            }
        };
        vectors.validate()?;
        if self.init_from.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ValidationError::new("init_from: not supported; use snapshots to copy a collection"));
        }
        let shard_number = self.shard_number.unwrap_or(1);
        if shard_number == 0 {
            return Err(ValidationError::at_least("shard_number", 0, 1));
        }
        let replication_factor = self.replication_factor.unwrap_or(1);
        if replication_factor == 0 {
            return Err(ValidationError::at_least("replication_factor", 0, 1));
        }
        let write_consistency_factor = self.write_consistency_factor.unwrap_or(1);
        if write_consistency_factor == 0 {
            return Err(ValidationError::at_least("write_consistency_factor", 0, 1));
        }
        if let Some(h) = &self.hnsw_config {
            h.validate()?;
        }
        if let Some(o) = &self.optimizers_config {
            o.validate()?;
        }
        let quantization_config = match &self.quantization_config {
            None => None,
            Some(v) => QuantizationConfig::from_json(v, "quantization_config")?,
        };
        let strict_mode_config = match &self.strict_mode_config {
            Some(s) => {
                s.validate()?;
                StrictModeConfig::disabled().apply(s)
            }
            None => StrictModeConfig::disabled(),
        };
        let config = CollectionConfig {
            params: CollectionParams {
                vectors,
                shard_number,
                sharding_method: self.sharding_method,
                replication_factor,
                write_consistency_factor,
                on_disk_payload: self.on_disk_payload.unwrap_or(true),
                sparse_vectors,
            },
            hnsw_config: self.hnsw_config.unwrap_or_default().apply(&defaults.hnsw),
            optimizer_config: self.optimizers_config.unwrap_or_default().apply(&defaults.optimizers),
            wal_config: self.wal_config.unwrap_or_default().apply(&defaults.wal),
            quantization_config,
            strict_mode_config,
            metadata: self.metadata,
        };
        config.params.validate_names()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_round_as_qdrant_stores() {
        let mut v = [1.7, -3.2, 300.0, 0.333, 255.6, 20.5];
        Datatype::Uint8.round(&mut v);
        assert_eq!(v, [1.0, 0.0, 255.0, 0.0, 255.0, 20.0]);
        // Values Qdrant's engine returns for float16 storage.
        let mut v = [1.7, -3.2, 300.0, 0.3333333, 30.9, 255.6, 0.005664825];
        Datatype::Float16.round(&mut v);
        assert_eq!(v, [1.7001953, -3.1992188, 300.0, 0.33325195, 30.90625, 255.625, 0.005_664_825_4]);
        // Ties to even, subnormals, saturation.
        assert_eq!(half_precision(1.0 + 1.0 / 2048.0), 1.0);
        assert_eq!(half_precision(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0);
        assert_eq!(half_precision(3.0e-8), 5.960_464_5e-8);
        assert_eq!(half_precision(1.0e-8), 0.0);
        assert_eq!(half_precision(-1.0e6), -65504.0);
        assert_eq!(half_precision(65519.0), 65504.0);
        let mut same = [0.1f32, -7.25];
        Datatype::Float32.round(&mut same);
        assert_eq!(same, [0.1, -7.25]);
    }

    #[test]
    fn single_and_named_vectors() {
        let c: CreateCollection =
            serde_json::from_str(r#"{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2}"#).expect("parse");
        let cfg = c.into_config(&CollectionDefaults::default()).expect("valid");
        assert_eq!(cfg.params.shard_number, 2);
        assert_eq!(cfg.params.vectors.get("").map(|p| p.size), Some(4));

        let c: CreateCollection = serde_json::from_str(
            r#"{"vectors": {"image": {"size": 8, "distance": "Euclid"}, "text": {"size": 3, "distance": "Cosine"}}}"#,
        )
        .expect("parse");
        let cfg = c.into_config(&CollectionDefaults::default()).expect("valid");
        assert_eq!(cfg.params.vectors.get("text").map(|p| p.distance), Some(Distance::Cosine));
        assert!(cfg.params.vectors.get("").is_none());
    }

    #[test]
    fn rejects_bad_configs() {
        let bad = [
            r#"{"vectors": {"size": 0, "distance": "Dot"}}"#,
            r#"{"vectors": {"size": 4}}"#,
            r#"{"vectors": {"size": 4, "distance": "Hamming"}}"#,
            r#"{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 0}"#,
            r#"{"vectors": {"size": 4, "distance": "Dot"}, "bogus": 1}"#,
            r#"{}"#,
        ];
        for b in bad {
            let r = serde_json::from_str::<CreateCollection>(b)
                .map_err(|e| e.to_string())
                .and_then(|c| c.into_config(&CollectionDefaults::default()).map_err(|e| e.to_string()));
            assert!(r.is_err(), "{b} should be rejected");
        }
    }

    #[test]
    fn quantization_config_parse_and_validate() {
        let v = serde_json::json!({"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}});
        let q = QuantizationConfig::from_json(&v, "quantization_config").expect("valid").expect("some");
        assert_eq!(q.scalar().map(|s| s.quantile()), Some(0.99));
        assert_eq!(q.to_json(), v, "same JSON shape back");
        assert_eq!(QuantizationConfig::from_json(&Value::Null, "q").expect("null"), None);
        assert_eq!(QuantizationConfig::from_json(&serde_json::json!("Disabled"), "q").expect("disabled"), None);
        for bad in [
            serde_json::json!({"scalar": {"type": "int8", "quantile": 0.4}}),
            serde_json::json!({"scalar": {"type": "int8", "quantile": 1.5}}),
            serde_json::json!({"scalar": {"type": "int4"}}),
            serde_json::json!({"scalar": {"quantile": 0.9}}),
            serde_json::json!({"binary": {"encoding": "two_bits"}}),
            serde_json::json!({"binary": {"query_encoding": "scalar8bits"}}),
            serde_json::json!({"binary": {"bits": 1}}),
            serde_json::json!({"product": {"compression": "x4"}}),
            serde_json::json!({"scalar": {"type": "int8"}, "binary": {}}),
            serde_json::json!("Enabled"),
        ] {
            assert!(QuantizationConfig::from_json(&bad, "q").is_err(), "{bad} should be rejected");
        }
        let e = QuantizationConfig::from_json(&serde_json::json!({"product": {}}), "quantization_config");
        assert!(e.is_err_and(|e| e.message.contains("product quantization is not supported")));
        let v = serde_json::json!({"binary": {"always_ram": true, "encoding": "one_bit", "query_encoding": "default"}});
        let b = QuantizationConfig::from_json(&v, "q").expect("valid").expect("some");
        assert!(b.is_binary() && b.scalar().is_none());
        assert_eq!(b.to_json(), v, "same JSON shape back");

        // Per-vector config wins over the collection-wide one.
        let c: CreateCollection = serde_json::from_value(serde_json::json!({
            "vectors": {"a": {"size": 4, "distance": "Dot", "quantization_config": {"scalar": {"type": "int8"}}},
                        "b": {"size": 4, "distance": "Dot"}},
            "quantization_config": {"scalar": {"type": "int8", "quantile": 0.9}}
        }))
        .expect("parse");
        let cfg = c.into_config(&CollectionDefaults::default()).expect("valid");
        assert_eq!(cfg.quantization_for("a").and_then(|q| q.scalar()).map(|s| s.quantile()), Some(1.0));
        assert_eq!(cfg.quantization_for("b").and_then(|q| q.scalar()).map(|s| s.quantile()), Some(0.9));

        let p: QuantizationSearchParams = serde_json::from_value(serde_json::json!({"oversampling": 2.5})).expect("p");
        assert!(p.validate().is_ok() && p.rescore() && !p.ignore && p.oversampling() == 2.5);
        let p: QuantizationSearchParams = serde_json::from_value(serde_json::json!({"oversampling": 0.5})).expect("p");
        assert!(p.validate().is_err());
    }

    #[test]
    fn strict_mode_and_metadata_on_create_and_in_old_configs() {
        let c: CreateCollection = serde_json::from_value(serde_json::json!({
            "vectors": {"size": 2, "distance": "Dot"},
            "strict_mode_config": {"max_query_limit": 5}, "metadata": {"owner": "me"}
        }))
        .expect("parse");
        let cfg = c.into_config(&CollectionDefaults::default()).expect("valid");
        let v = serde_json::to_value(&cfg).expect("json");
        assert_eq!(v["strict_mode_config"], serde_json::json!({"enabled": false, "max_query_limit": 5}));
        assert_eq!(v["metadata"], serde_json::json!({"owner": "me"}));

        // A config persisted before these fields existed still loads.
        let mut old = v;
        let obj = old.as_object_mut().expect("object");
        obj.remove("strict_mode_config");
        obj.remove("metadata");
        let back: CollectionConfig = serde_json::from_value(old).expect("old config loads");
        assert_eq!((&back.strict_mode_config, &back.metadata), (&StrictModeConfig::disabled(), &None));

        // PATCH merges metadata key by key; null removes a key; a first PATCH creates it.
        let mut patched = back;
        let diff = |v: Value| v.as_object().cloned().expect("object");
        patched.merge_metadata(&diff(serde_json::json!({"a": {"x": 1}, "b": 2})));
        patched.merge_metadata(&diff(serde_json::json!({"a": {"y": 1}, "b": null, "c": null})));
        assert_eq!(patched.metadata.map(Value::Object), Some(serde_json::json!({"a": {"y": 1}})));

        for bad in [serde_json::json!({"metadata": "x"}), serde_json::json!({"strict_mode_config": {"nope": 1}})] {
            let mut body = serde_json::json!({"vectors": {"size": 2, "distance": "Dot"}});
            body.as_object_mut().expect("object").extend(bad.as_object().expect("object").clone());
            assert!(serde_json::from_value::<CreateCollection>(body).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn diff_apply() {
        let base = HnswConfig::default();
        let d = HnswConfigDiff { m: Some(32), ..Default::default() };
        let r = d.apply(&base);
        assert_eq!((r.m, r.ef_construct), (32, 100));
    }
}
