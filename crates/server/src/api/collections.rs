//! Collection endpoints: list, create, info, update, delete, exists, aliases.

use std::time::Instant;

use axum::extract::Path;
use qd_collection::{AliasAction, CollectionError};
use qd_core::config::{CreateCollection, QuantizationConfig};
use serde_json::json;

use super::jwt::Access;
use super::models::{AliasActionBody, AliasOperations, TimeoutParam, UpdateCollectionBody};
use super::response::{ok, ApiError, ApiResult, Body, Params};
use super::{blocking, State};

/// Every collection, or those a collection-scoped token may see.
pub async fn list(state: State, access: Option<axum::Extension<Access>>) -> ApiResult {
    let t = Instant::now();
    let visible = |n: &String| access.as_ref().is_none_or(|a| a.to_collection(n).is_some());
    let names: Vec<_> = state.registry.list().into_iter().filter(visible).map(|n| json!({ "name": n })).collect();
    Ok(ok(t, json!({ "collections": names })))
}

pub async fn info(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    let info = blocking(move || Ok(reg.info(&name)?)).await?;
    Ok(ok(t, info))
}

pub async fn exists(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    Ok(ok(t, json!({ "exists": state.registry.exists(&name) })))
}

pub async fn create(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<CreateCollection>,
) -> ApiResult {
    let t = Instant::now();
    crate::meta::create_collection(&state, name, body, p.timeout).await?;
    Ok(ok(t, true))
}

pub async fn delete(state: State, Path(name): Path<String>, Params(p): Params<TimeoutParam>) -> ApiResult {
    let t = Instant::now();
    let existed = crate::meta::delete_collection(&state, name, p.timeout).await?;
    Ok(ok(t, existed))
}

/// `PATCH /collections/{name}`: optimizer, HNSW, per-vector and quantization params, strict
/// mode (fields merged) and metadata (keys merged).
pub async fn update(
    state: State,
    Path(name): Path<String>,
    _p: Params<TimeoutParam>,
    Body(body): Body<UpdateCollectionBody>,
) -> ApiResult {
    let t = Instant::now();
    crate::meta::update_collection(&state, name, body).await?;
    Ok(ok(t, true))
}

/// Apply a collection update (the PATCH body; gRPC's `UpdateCollection` arrives in the same
/// shape) on this node. Blocks.
pub fn apply_update(reg: &qd_collection::Registry, name: &str, body: UpdateCollectionBody) -> Result<(), ApiError> {
    let patch = ConfigPatch::new(body)?;
    reg.update_config(name, |cfg| patch.apply(cfg))?;
    Ok(())
}

/// A checked PATCH body: turns a collection's config into the updated one.
pub struct ConfigPatch {
    body: UpdateCollectionBody,
    /// `Some(None)`: quantization turned off ("Disabled").
    quantization: Option<Option<QuantizationConfig>>,
}

impl ConfigPatch {
    pub fn new(body: UpdateCollectionBody) -> Result<ConfigPatch, ApiError> {
        if let Some(o) = &body.optimizers_config {
            o.validate()?;
        }
        if let Some(h) = &body.hnsw_config {
            h.validate()?;
        }
        if let Some(s) = &body.strict_mode_config {
            s.validate()?;
        }
        let quantization = match &body.quantization_config {
            None => None,
            Some(q) => Some(QuantizationConfig::from_json(q, "quantization_config")?),
        };
        Ok(ConfigPatch { body, quantization })
    }

    pub fn apply(
        &self,
        cfg: &qd_core::config::CollectionConfig,
    ) -> Result<qd_core::config::CollectionConfig, CollectionError> {
        let (body, quantization) = (&self.body, &self.quantization);
        let mut cfg = cfg.clone();
        if let Some(o) = &body.optimizers_config {
            cfg.optimizer_config = o.apply(&cfg.optimizer_config);
        }
        if let Some(h) = &body.hnsw_config {
            cfg.hnsw_config = h.apply(&cfg.hnsw_config);
        }
        if let Some(q) = &quantization {
            cfg.quantization_config = q.clone();
        }
        if let Some(s) = &body.strict_mode_config {
            cfg.strict_mode_config = cfg.strict_mode_config.apply(s);
        }
        if let Some(m) = &body.metadata {
            cfg.merge_metadata(m);
        }
        if let Some(params) = &body.params {
            if let Some(v) = params.get("on_disk_payload").and_then(|v| v.as_bool()) {
                cfg.params.on_disk_payload = v;
            }
            if let Some(v) = params.get("replication_factor").and_then(|v| v.as_u64()) {
                cfg.params.replication_factor = v as u32;
            }
            if let Some(v) = params.get("write_consistency_factor").and_then(|v| v.as_u64()) {
                cfg.params.write_consistency_factor = v as u32;
            }
        }
        if let Some(sparse) = &body.sparse_vectors {
            for (vname, diff) in sparse {
                let params = cfg.params.sparse_vectors.as_mut().and_then(|s| s.get_mut(vname)).ok_or_else(|| {
                    CollectionError::BadRequest(format!("Wrong input: Not existing vector name error: {vname}"))
                })?;
                params.patch(diff);
            }
        }
        if let Some(vectors) = &body.vectors {
            for (vname, diff) in vectors {
                let params = cfg.params.vectors.get_mut(vname).ok_or_else(|| {
                    CollectionError::BadRequest(format!("Wrong input: Not existing vector name error: {vname}"))
                })?;
                if let Some(h) = diff.get("hnsw_config").filter(|v| !v.is_null()) {
                    let h: qd_core::config::HnswConfigDiff = serde_json::from_value(h.clone())
                        .map_err(|e| CollectionError::BadRequest(format!("vectors.{vname}.hnsw_config: {e}")))?;
                    h.validate()?;
                    params.hnsw_config = Some(h);
                }
                if let Some(d) = diff.get("on_disk").and_then(|v| v.as_bool()) {
                    params.on_disk = Some(d);
                }
                // null = unchanged (as in Qdrant); "Disabled" removes the per-vector config.
                if let Some(q) = diff.get("quantization_config").filter(|q| !q.is_null()) {
                    params.quantization_config =
                        QuantizationConfig::from_json(q, &format!("vectors.{vname}.quantization_config"))?;
                }
            }
        }
        Ok(cfg)
    }
}

pub async fn all_aliases(state: State, access: Option<axum::Extension<Access>>) -> ApiResult {
    let t = Instant::now();
    let visible = |c: &String| access.as_ref().is_none_or(|a| a.to_collection(c).is_some());
    let aliases: Vec<_> = state
        .registry
        .aliases()
        .into_iter()
        .filter(|(_, c)| visible(c))
        .map(|(a, c)| json!({ "alias_name": a, "collection_name": c }))
        .collect();
    Ok(ok(t, json!({ "aliases": aliases })))
}

pub async fn collection_aliases(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    if !state.registry.exists(&name) {
        return Err(CollectionError::NotFound(format!("Collection `{name}` doesn't exist!")).into());
    }
    let aliases: Vec<_> = state
        .registry
        .aliases()
        .into_iter()
        .filter(|(_, c)| *c == name)
        .map(|(a, c)| json!({ "alias_name": a, "collection_name": c }))
        .collect();
    Ok(ok(t, json!({ "aliases": aliases })))
}

pub async fn update_aliases(state: State, _p: Params<TimeoutParam>, Body(body): Body<AliasOperations>) -> ApiResult {
    let t = Instant::now();
    let actions = body
        .actions
        .into_iter()
        .map(|a| match a {
            AliasActionBody::CreateAlias(c) => {
                AliasAction::Create { alias: c.alias_name, collection: c.collection_name }
            }
            AliasActionBody::DeleteAlias(d) => AliasAction::Delete { alias: d.alias_name },
            AliasActionBody::RenameAlias(r) => AliasAction::Rename { old: r.old_alias_name, new: r.new_alias_name },
        })
        .collect();
    crate::meta::update_aliases(&state, actions).await?;
    Ok(ok(t, true))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexBody {
    pub field_name: String,
    #[serde(default)]
    pub field_schema: Option<serde_json::Value>,
}

/// `PUT /collections/{name}/index`: declare a payload index.
pub async fn create_index(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<super::models::UpdateParams>,
    Body(body): Body<CreateIndexBody>,
) -> ApiResult {
    let t = Instant::now();
    let wait = p.check().map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    let schema = body
        .field_schema
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("Bad request: field_schema: missing (e.g. \"keyword\")"))?;
    let spec = qd_collection::catalog::PayloadIndexSpec::from_json(schema)
        .map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    body.field_name
        .parse::<qd_core::json_path::JsonPath>()
        .map_err(|e| ApiError::bad_request(format!("Bad request: field_name: {e}")))?;
    crate::meta::set_payload_index(&state, name, body.field_name, Some(spec)).await?;
    Ok(ok(t, json!({ "operation_id": 0, "status": if wait { "completed" } else { "acknowledged" } })))
}

/// `DELETE /collections/{name}/index/{field}`.
pub async fn delete_index(
    state: State,
    Path((name, field)): Path<(String, String)>,
    Params(p): Params<super::models::UpdateParams>,
) -> ApiResult {
    let t = Instant::now();
    let wait = p.check().map_err(|e| ApiError::bad_request(format!("Bad request: {e}")))?;
    crate::meta::set_payload_index(&state, name, field, None).await?;
    Ok(ok(t, json!({ "operation_id": 0, "status": if wait { "completed" } else { "acknowledged" } })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacetBody {
    pub key: String,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub filter: Option<qd_core::filter::Filter>,
    #[serde(default)]
    pub exact: Option<bool>,
    #[serde(default)]
    pub shard_key: Option<serde_json::Value>,
}

/// `POST /collections/{name}/facet`: counts of values of a payload field.
pub async fn facet(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<FacetBody>,
) -> ApiResult {
    let t = Instant::now();
    let key: qd_core::json_path::JsonPath =
        body.key.parse().map_err(|e| ApiError::bad_request(format!("Bad request: key: {e}")))?;
    if let Some(f) = &body.filter {
        f.validate()?;
    }
    let _ = body.exact;
    let keys = super::points::shard_keys(body.shard_key.clone())?;
    let limit = body.limit.unwrap_or(10);
    let reg = state.registry.clone();
    let consistency = p.read_consistency()?;
    let hits = blocking(move || {
        let scope = qd_collection::shard_set::ReadScope { keys: keys.as_deref(), consistency };
        crate::ops::facet(&reg, &name, &key, body.filter.as_ref(), limit, scope)
    })
    .await?;
    let hits: Vec<_> = hits.into_iter().map(|(value, count)| json!({ "value": value, "count": count })).collect();
    Ok(ok(t, json!({ "hits": hits })))
}

/// `GET /collections/{name}/optimizations`: running and recently finished optimizations.
pub async fn optimizations(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    let c = state.registry.get(&name)?;
    Ok(ok(t, c.optimizations()))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // initial_state is accepted for compatibility
pub struct CreateShardKeyBody {
    pub shard_key: serde_json::Value,
    #[serde(default)]
    pub shards_number: Option<u32>,
    #[serde(default)]
    pub replication_factor: Option<u32>,
    /// Peer ids to place the key's shards on (cluster mode; ignored on a single node).
    #[serde(default)]
    pub placement: Option<Vec<u64>>,
    #[serde(default)]
    pub initial_state: Option<serde_json::Value>,
}

impl CreateShardKeyBody {
    pub fn into_new_key(self) -> Result<crate::meta::NewShardKey, ApiError> {
        Ok(crate::meta::NewShardKey {
            key: one_shard_key(&self.shard_key)?,
            shards_number: self.shards_number,
            replication_factor: self.replication_factor,
            placement: self.placement,
        })
    }
}

pub fn one_shard_key(v: &serde_json::Value) -> Result<qd_collection::operations::ShardKey, ApiError> {
    qd_collection::operations::ShardKey::from_json(v)
        .ok_or_else(|| ApiError::bad_request("Bad request: shard_key: expected a string or an unsigned integer"))
}

/// `PUT /collections/{name}/shards`: create a shard key (custom sharding).
pub async fn create_shard_key(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<CreateShardKeyBody>,
) -> ApiResult {
    let t = Instant::now();
    crate::meta::create_shard_key(&state, &name, body.into_new_key()?, p.timeout).await?;
    Ok(ok(t, true))
}

/// `GET /collections/{name}/shards`: the shard keys (`null` unless sharding is custom).
pub async fn list_shard_keys(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    let c = state.registry.get(&name)?;
    let keys = c.shard_keys().map(|keys| keys.iter().map(|k| json!({ "key": k.to_json() })).collect::<Vec<_>>());
    Ok(ok(t, json!({ "shard_keys": keys })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteShardKeyBody {
    pub shard_key: serde_json::Value,
}

/// `POST /collections/{name}/shards/delete`.
pub async fn delete_shard_key(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<TimeoutParam>,
    Body(body): Body<DeleteShardKeyBody>,
) -> ApiResult {
    let t = Instant::now();
    crate::meta::delete_shard_key(&state, &name, one_shard_key(&body.shard_key)?, p.timeout).await?;
    Ok(ok(t, true))
}

/// `PUT /collections/{name}/vectors/{vector}`: add a named vector to a live collection.
pub async fn create_vector(
    state: State,
    Path((name, vector)): Path<(String, String)>,
    _p: Params<super::models::UpdateParams>,
    Body(body): Body<super::models::VectorNameConfig>,
) -> ApiResult {
    let t = Instant::now();
    let spec = match body {
        super::models::VectorNameConfig::Dense(d) => qd_collection::NewVector::Dense(qd_core::config::VectorParams {
            size: d.size,
            distance: d.distance,
            hnsw_config: None,
            quantization_config: None,
            on_disk: None,
            datatype: d.datatype,
            multivector_config: d.multivector_config,
        }),
        super::models::VectorNameConfig::Sparse(s) => {
            qd_collection::NewVector::Sparse(qd_core::config::SparseVectorParams {
                index: s
                    .datatype
                    .map(|dt| qd_core::config::SparseIndexParams { datatype: Some(dt), ..Default::default() }),
                modifier: s.modifier,
            })
        }
    };
    crate::meta::set_vector(&state, name, vector, Some(spec)).await?;
    Ok(ok(t, true))
}

/// `DELETE /collections/{name}/vectors/{vector}`: drop a named vector and its data.
pub async fn delete_vector(
    state: State,
    Path((name, vector)): Path<(String, String)>,
    _p: Params<super::models::UpdateParams>,
) -> ApiResult {
    let t = Instant::now();
    crate::meta::set_vector(&state, name, vector, None).await?;
    Ok(ok(t, true))
}
