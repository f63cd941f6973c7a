//! Request bodies of the REST API, in Qdrant's shapes. Unknown fields are refused so that a
//! typo is reported instead of silently ignored.

use std::collections::BTreeMap;

use qd_collection::consistency::ReadConsistency;
use qd_core::filter::Filter;
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::vectors::{VectorInput, VectorItem};
use qd_core::{Payload, PointId};
use serde::Deserialize;
use serde_json::Value;

fn default_true() -> bool {
    true
}

/// `?wait=&ordering=&timeout=` of update endpoints.
#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize, Default)]
pub struct UpdateParams {
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default)]
    pub ordering: Option<String>,
    #[serde(default)]
    pub timeout: Option<u64>,
}

impl UpdateParams {
    pub fn check(&self) -> Result<bool, String> {
        if let Some(o) = &self.ordering {
            if !matches!(o.as_str(), "weak" | "medium" | "strong") {
                return Err(format!("ordering: unknown value {o:?}, expected weak, medium or strong"));
            }
        }
        Ok(self.wait.unwrap_or(false))
    }

    /// The `ordering` (checked by [`check`](Self::check); weak when absent).
    pub fn ordering(&self) -> qd_collection::operations::WriteOrdering {
        use qd_collection::operations::WriteOrdering;
        match self.ordering.as_deref() {
            Some("medium") => WriteOrdering::Medium,
            Some("strong") => WriteOrdering::Strong,
            _ => WriteOrdering::Weak,
        }
    }
}

#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize, Default)]
pub struct TimeoutParam {
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Read consistency: a number of replicas, `majority`, `quorum` or `all`.
    #[serde(default)]
    pub consistency: Option<String>,
}

impl TimeoutParam {
    /// The read consistency asked for (one replica when none); 400 naming a bad value.
    pub fn read_consistency(&self) -> Result<ReadConsistency, super::response::ApiError> {
        match self.consistency.as_deref() {
            None => Ok(ReadConsistency::default()),
            Some(s) => ReadConsistency::parse(s)
                .map_err(|e| super::response::ApiError::bad_request(format!("Bad request: consistency: {e}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointStruct {
    pub id: PointId,
    pub vector: VectorInput,
    #[serde(default)]
    pub payload: Option<Payload>,
}

/// Named vectors of one point as given (documents not embedded yet).
pub type NamedItems = BTreeMap<String, VectorItem>;

/// `vectors` of the batch form: a list of vectors, or per name a list of vectors.
#[derive(Debug)]
pub struct BatchVectors(pub Vec<NamedItems>);

impl<'de> Deserialize<'de> for BatchVectors {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    VectorInput::from_json(v)
                        .map(VectorInput::into_named)
                        .map_err(|e| D::Error::custom(format!("[{i}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(BatchVectors),
            Value::Object(map) => {
                let mut out: Vec<NamedItems> = Vec::new();
                for (name, list) in map {
                    let Value::Array(items) = list else {
                        return Err(D::Error::custom(format!("{name}: expected a list of vectors")));
                    };
                    if out.is_empty() {
                        out.resize(items.len(), NamedItems::new());
                    } else if out.len() != items.len() {
                        return Err(D::Error::custom(format!(
                            "{name}: has {} vectors, other names have {}",
                            items.len(),
                            out.len()
                        )));
                    }
                    for (i, v) in items.into_iter().enumerate() {
                        let item =
                            VectorItem::from_json(v).map_err(|e| D::Error::custom(format!("{name}[{i}]: {e}")))?;
                        out[i].insert(name.clone(), item);
                    }
                }
                Ok(BatchVectors(out))
            }
            _ => Err(D::Error::custom("expected a list of vectors or an object of named vector lists")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub ids: Vec<PointId>,
    pub vectors: BatchVectors,
    #[serde(default)]
    pub payloads: Option<Vec<Option<Payload>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    #[serde(default)]
    pub points: Option<Vec<PointStruct>>,
    #[serde(default)]
    pub batch: Option<Batch>,
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub update_filter: Option<Filter>,
    #[serde(default)]
    pub update_mode: Option<UpdateModeBody>,
}

/// `update_mode` of an upsert, in Qdrant's spelling.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateModeBody {
    Upsert,
    InsertOnly,
    UpdateOnly,
}

impl From<UpdateModeBody> for qd_collection::operations::UpdateMode {
    fn from(m: UpdateModeBody) -> Self {
        match m {
            UpdateModeBody::Upsert => qd_collection::operations::UpdateMode::Upsert,
            UpdateModeBody::InsertOnly => qd_collection::operations::UpdateMode::InsertOnly,
            UpdateModeBody::UpdateOnly => qd_collection::operations::UpdateMode::UpdateOnly,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRequest {
    pub ids: Vec<PointId>,
    #[serde(default)]
    pub with_payload: Option<PayloadSelector>,
    #[serde(default)]
    pub with_vector: Option<VectorSelector>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

/// Points chosen by ids or by a filter (delete, payload and vector operations).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PointsSelectorBody {
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPayloadBody {
    pub payload: Payload,
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePayloadBody {
    pub keys: Vec<String>,
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointVectors {
    pub id: PointId,
    pub vector: VectorInput,
}

#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVectorsBody {
    pub points: Vec<PointVectors>,
    #[serde(default)]
    pub shard_key: Option<Value>,
    #[serde(default)]
    pub update_filter: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteVectorsBody {
    pub vector: Vec<String>,
    #[serde(default)]
    pub points: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchParamsBody {
    #[serde(default)]
    pub hnsw_ef: Option<usize>,
    #[serde(default)]
    pub exact: bool,
    #[serde(default)]
    pub quantization: Option<qd_core::config::QuantizationSearchParams>,
    #[serde(default)]
    pub indexed_only: bool,
    #[serde(default)]
    pub acorn: Option<Value>,
}

/// `vector` of a search: a plain list or `{"name": ..., "vector": ...}` (a dense list, a
/// multivector or a sparse vector: Qdrant's `NamedVector` and `NamedSparseVector`).
#[derive(Debug)]
pub struct NamedQueryVector {
    pub name: String,
    pub vector: VectorItem,
}

impl<'de> Deserialize<'de> for NamedQueryVector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            v @ Value::Array(_) => VectorItem::from_json(v)
                .map(|vector| NamedQueryVector { name: String::new(), vector })
                .map_err(D::Error::custom),
            Value::Object(mut o) => {
                let name = o
                    .remove("name")
                    .and_then(|n| n.as_str().map(str::to_string))
                    .ok_or_else(|| D::Error::custom("named vector needs a string `name`"))?;
                let v = o.remove("vector").ok_or_else(|| D::Error::custom("named vector needs `vector`"))?;
                if let Some(k) = o.keys().next() {
                    return Err(D::Error::custom(format!("unknown field `{k}` in named vector")));
                }
                VectorItem::from_json(v)
                    .map(|vector| NamedQueryVector { name, vector })
                    .map_err(|e| D::Error::custom(format!("vector: {e}")))
            }
            _ => Err(D::Error::custom("expected a list of numbers or {\"name\": ..., \"vector\": [...]}")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub vector: NamedQueryVector,
    #[serde(default)]
    pub filter: Option<Filter>,
    pub limit: usize,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub with_payload: Option<PayloadSelector>,
    #[serde(default)]
    pub with_vector: Option<VectorSelector>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub params: Option<SearchParamsBody>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBatchBody {
    pub searches: Vec<SearchBody>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScrollBody {
    #[serde(default)]
    pub offset: Option<PointId>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub with_payload: Option<PayloadSelector>,
    #[serde(default)]
    pub with_vector: Option<VectorSelector>,
    #[serde(default)]
    pub order_by: Option<Value>,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CountBody {
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default = "default_true")]
    pub exact: bool,
    #[serde(default)]
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasOperations {
    pub actions: Vec<AliasActionBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAliasBody {
    pub collection_name: String,
    pub alias_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAliasBody {
    pub alias_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameAliasBody {
    pub old_alias_name: String,
    pub new_alias_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[allow(clippy::enum_variant_names)] // the variant names are Qdrant's JSON keys
pub enum AliasActionBody {
    CreateAlias(CreateAliasBody),
    DeleteAlias(DeleteAliasBody),
    RenameAlias(RenameAliasBody),
}

/// Body of `PATCH /collections/{name}`.
#[allow(dead_code)] // some fields are accepted for compatibility and not acted on
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollectionBody {
    #[serde(default)]
    pub vectors: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub optimizers_config: Option<qd_core::config::OptimizersConfigDiff>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub hnsw_config: Option<qd_core::config::HnswConfigDiff>,
    #[serde(default)]
    pub quantization_config: Option<Value>,
    #[serde(default)]
    pub sparse_vectors: Option<BTreeMap<String, qd_core::config::SparseVectorParams>>,
    /// Fields given replace the stored ones; the others are kept.
    #[serde(default)]
    pub strict_mode_config: Option<qd_core::strict_mode::StrictModeConfig>,
    /// Merged into the stored metadata key by key; a key set to `null` is removed.
    #[serde(default)]
    pub metadata: Option<qd_core::Payload>,
}

/// Body of `PUT /collections/{name}/vectors/{vector}` (Qdrant's `VectorNameConfig`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum VectorNameConfig {
    Dense(DenseVectorConfig),
    Sparse(SparseVectorConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseVectorConfig {
    pub size: u64,
    pub distance: qd_core::Distance,
    #[serde(default)]
    pub multivector_config: Option<qd_core::config::MultiVectorConfig>,
    #[serde(default)]
    pub datatype: Option<qd_core::config::Datatype>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVectorConfig {
    #[serde(default)]
    pub modifier: Option<qd_core::config::Modifier>,
    #[serde(default)]
    pub datatype: Option<qd_core::config::Datatype>,
}
