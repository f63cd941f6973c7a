//! The catalog: which collections exist, where their files are, their configs, and aliases.
//! Stored in its own backend database at the storage root; every change is one synced batch,
//! which makes create / delete / restore / alias changes atomic.

use std::collections::BTreeMap;
use std::sync::Arc;

use qd_core::config::CollectionConfig;
use qd_storage::{KvStore, ScanControl, Table, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::error::{CollectionError, Result};

const COLLECTION_PREFIX: &str = "collection/";
const ALIAS_PREFIX: &str = "alias/";

/// One collection as the catalog records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub name: String,
    /// Directory id under `collections/` (see the storage layout).
    pub dir: String,
    pub config: CollectionConfig,
    pub created_at: String,
    /// Payload indexes (`PUT /collections/{name}/index`): field -> schema.
    #[serde(default)]
    pub payload_schema: BTreeMap<String, PayloadIndexSpec>,
    /// Custom sharding: shard keys and the shards each owns.
    #[serde(default)]
    pub shard_keys: Vec<crate::shard_set::ShardKeyEntry>,
}

/// A payload index as declared by the user: its type and optional parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PayloadIndexSpec {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

/// Field types Qdrant accepts for payload indexes.
pub const PAYLOAD_INDEX_TYPES: [&str; 8] = ["keyword", "integer", "float", "bool", "geo", "text", "datetime", "uuid"];

impl PayloadIndexSpec {
    /// Parse `field_schema`: `"keyword"` or `{"type": "keyword", ...params}`.
    pub fn from_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let (ty, params) = match v {
            serde_json::Value::String(s) => (s.clone(), None),
            serde_json::Value::Object(o) => {
                let ty = o
                    .get("type")
                    .and_then(|t| t.as_str())
                    .ok_or("field_schema: an object schema needs a string `type`")?
                    .to_string();
                (ty, Some(v.clone()))
            }
            _ => return Err("field_schema: expected a type name or an object with `type`".into()),
        };
        if !PAYLOAD_INDEX_TYPES.contains(&ty.as_str()) {
            return Err(format!(
                "field_schema: unknown type {ty:?}, expected one of {}",
                PAYLOAD_INDEX_TYPES.join(", ")
            ));
        }
        let spec = PayloadIndexSpec { data_type: ty, params };
        if spec.data_type == "text" {
            spec.text_params()?;
        }
        Ok(spec)
    }

    /// A boolean option of the index's params (`lookup`, `range`, ...); true when not given.
    pub fn flag(&self, name: &str) -> bool {
        self.params.as_ref().and_then(|p| p.get(name)).and_then(serde_json::Value::as_bool).unwrap_or(true)
    }

    /// Whether the field is declared a tenant (`is_tenant: true` on a keyword or uuid index):
    /// segments built by merges keep each tenant's points together.
    pub fn is_tenant(&self) -> bool {
        matches!(self.data_type.as_str(), "keyword" | "uuid")
            && self.params.as_ref().and_then(|p| p.get("is_tenant")).and_then(serde_json::Value::as_bool) == Some(true)
    }

    /// The settings of a `text` index (defaults for a bare `"text"`), or why they are invalid.
    pub fn text_params(&self) -> std::result::Result<qd_inference::TextIndexParams, String> {
        let schema = self.params.clone().unwrap_or_else(|| serde_json::Value::String(self.data_type.clone()));
        qd_inference::TextIndexParams::from_schema(&schema).map_err(|e| e.to_string())
    }
}

pub struct Catalog {
    store: Arc<dyn KvStore>,
}

/// A change to apply atomically with others.
pub enum CatalogChange {
    PutCollection(Box<CatalogEntry>),
    DeleteCollection(String),
    PutAlias { alias: String, collection: String },
    DeleteAlias(String),
}

impl Catalog {
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Catalog { store }
    }

    pub fn collections(&self) -> Result<Vec<std::result::Result<CatalogEntry, (String, String)>>> {
        let mut out = Vec::new();
        self.store.scan(Table::Meta, COLLECTION_PREFIX.as_bytes(), None, &mut |k, v| {
            let name = String::from_utf8_lossy(&k[COLLECTION_PREFIX.len()..]).to_string();
            out.push(
                serde_json::from_slice::<CatalogEntry>(v).map_err(|e| (name, format!("catalog entry unreadable: {e}"))),
            );
            ScanControl::Continue
        })?;
        Ok(out)
    }

    pub fn aliases(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        self.store.scan(Table::Meta, ALIAS_PREFIX.as_bytes(), None, &mut |k, v| {
            out.insert(
                String::from_utf8_lossy(&k[ALIAS_PREFIX.len()..]).to_string(),
                String::from_utf8_lossy(v).to_string(),
            );
            ScanControl::Continue
        })?;
        Ok(out)
    }

    pub fn apply(&self, changes: Vec<CatalogChange>) -> Result<()> {
        let mut b = WriteBatch::new();
        for c in changes {
            match c {
                CatalogChange::PutCollection(e) => {
                    let json =
                        serde_json::to_vec(&e).map_err(|e| CollectionError::Internal(format!("serialising: {e}")))?;
                    b.put(Table::Meta, format!("{COLLECTION_PREFIX}{}", e.name).into_bytes(), json);
                }
                CatalogChange::DeleteCollection(name) => {
                    b.delete(Table::Meta, format!("{COLLECTION_PREFIX}{name}").into_bytes());
                }
                CatalogChange::PutAlias { alias, collection } => {
                    b.put(Table::Meta, format!("{ALIAS_PREFIX}{alias}").into_bytes(), collection.into_bytes());
                }
                CatalogChange::DeleteAlias(alias) => {
                    b.delete(Table::Meta, format!("{ALIAS_PREFIX}{alias}").into_bytes());
                }
            }
        }
        self.store.write(b, true)?;
        Ok(())
    }
}
