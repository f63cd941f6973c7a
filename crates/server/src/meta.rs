//! Metadata changes (collections, aliases, payload indexes) for both APIs: applied to the
//! registry directly on a single node, committed through consensus in cluster mode (every
//! peer then applies them to its own registry, this one before the call answers).

use qd_cluster::MetaOp;
use qd_collection::catalog::PayloadIndexSpec;
use qd_collection::AliasAction;
use qd_core::config::{CreateCollection, ShardingMethod};

use crate::api::response::ApiError;
use crate::api::{blocking, AppState};

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// How long a metadata call waits for consensus: the request's `timeout` (seconds), else 30 s.
fn wait_limit(timeout: Option<u64>) -> std::time::Duration {
    std::time::Duration::from_secs(timeout.unwrap_or(30).clamp(1, 3600))
}

pub async fn create_collection(
    state: &AppState,
    name: String,
    body: CreateCollection,
    timeout: Option<u64>,
) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.create(&name, body)?)).await;
    };
    let config = reg.prepare_create(&name, body)?;
    // Custom sharding starts without shards: each shard key brings its own.
    let placement = if config.params.sharding_method == Some(ShardingMethod::Custom) {
        Default::default()
    } else {
        node.place(config.params.shard_number, config.params.replication_factor)?
    };
    let op = MetaOp::CreateCollection { name, config: Box::new(config), created_at: now_rfc3339(), placement };
    Ok(node.propose_within(op, wait_limit(timeout)).await?)
}

/// What `PUT /collections/{name}/shards` (gRPC `CreateShardKey`) asks for.
#[derive(Debug, Clone)]
pub struct NewShardKey {
    pub key: qd_collection::operations::ShardKey,
    pub shards_number: Option<u32>,
    pub replication_factor: Option<u32>,
    /// Peers to place the key's shards on (cluster mode).
    pub placement: Option<Vec<u64>>,
}

/// Create a shard key: through consensus on a cluster, here on a single node (where a
/// replication factor above 1 cannot be met).
pub async fn create_shard_key(
    state: &AppState,
    collection: &str,
    new: NewShardKey,
    timeout: Option<u64>,
) -> Result<(), ApiError> {
    let c = state.registry.get(collection)?;
    let real = c.name().to_string();
    let Some(node) = state.cluster.clone() else {
        if new.replication_factor.is_some_and(|r| r > 1) {
            return Err(ApiError::bad_request("Bad request: replication_factor > 1 needs cluster mode"));
        }
        let reg = state.registry.clone();
        return blocking(move || Ok(reg.create_shard_key(&real, new.key, new.shards_number)?)).await;
    };
    let limit = wait_limit(timeout);
    Ok(node.create_shard_key(&real, new.key, new.shards_number, new.replication_factor, new.placement, limit).await?)
}

/// Delete a shard key and its shards' data.
pub async fn delete_shard_key(
    state: &AppState,
    collection: &str,
    key: qd_collection::operations::ShardKey,
    timeout: Option<u64>,
) -> Result<(), ApiError> {
    let c = state.registry.get(collection)?;
    let real = c.name().to_string();
    let Some(node) = state.cluster.clone() else {
        let reg = state.registry.clone();
        return blocking(move || Ok(reg.delete_shard_key(&real, &key)?)).await;
    };
    Ok(node.delete_shard_key(&real, key, wait_limit(timeout)).await?)
}

/// Delete a collection; `false` when it did not exist.
pub async fn delete_collection(state: &AppState, name: String, timeout: Option<u64>) -> Result<bool, ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.delete(&name)?)).await;
    };
    if !node.state().state.collections.contains_key(&name) {
        return Ok(false);
    }
    node.propose_within(MetaOp::DeleteCollection { name }, wait_limit(timeout)).await?;
    Ok(true)
}

/// `PATCH /collections/{name}`: on a cluster, the updated config is computed here from this
/// peer's current one and agreed as a whole (two PATCHes at once: the later one wins).
pub async fn update_collection(
    state: &AppState,
    name: String,
    body: crate::api::models::UpdateCollectionBody,
) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || crate::api::collections::apply_update(&reg, &name, body)).await;
    };
    let patch = crate::api::collections::ConfigPatch::new(body)?;
    let c = reg.get(&name)?;
    let config = patch.apply(&c.config())?;
    Ok(node.propose(MetaOp::SetConfig { collection: c.name().to_string(), config: Box::new(config) }).await?)
}

/// Add (`Some`) or drop (`None`) a named vector. On a cluster the updated config is agreed and
/// every peer reshapes its own replicas (dropping also removes the vector from every point).
pub async fn set_vector(
    state: &AppState,
    collection: String,
    vector: String,
    spec: Option<qd_collection::NewVector>,
) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.set_vector(&collection, &vector, spec)?)).await;
    };
    let c = reg.get(&collection)?;
    let config = qd_collection::registry::with_vector(&c.config(), &vector, spec.as_ref())?;
    Ok(node.propose(MetaOp::SetConfig { collection: c.name().to_string(), config: Box::new(config) }).await?)
}

pub async fn update_aliases(state: &AppState, actions: Vec<AliasAction>) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    match state.cluster.clone() {
        None => blocking(move || Ok(reg.update_aliases(actions)?)).await,
        Some(node) => Ok(node.propose(MetaOp::UpdateAliases(actions)).await?),
    }
}

/// Create (`Some`) or drop (`None`) a payload index.
pub async fn set_payload_index(
    state: &AppState,
    collection: String,
    field: String,
    spec: Option<PayloadIndexSpec>,
) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.set_payload_index(&collection, &field, spec)?)).await;
    };
    // Resolves aliases and answers 404 for an unknown collection, as on a single node.
    let collection = reg.get(&collection)?.name().to_string();
    Ok(node.propose(MetaOp::SetPayloadIndex { collection, field, spec }).await?)
}

/// One operation of `POST /collections/{name}/cluster` (gRPC's `UpdateCollectionClusterSetup`).
#[derive(Debug, Clone)]
pub enum ClusterOp {
    /// `move_shard` (`sync: false`) or `replicate_shard` (`sync: true`).
    Transfer {
        shard: u32,
        from: u64,
        to: u64,
        sync: bool,
        method: Option<String>,
        to_shard: Option<u32>,
    },
    Abort {
        shard: u32,
        from: u64,
        to: u64,
    },
    Restart {
        shard: u32,
        from: u64,
        to: u64,
        method: Option<String>,
        to_shard: Option<u32>,
    },
    DropReplica {
        shard: u32,
        peer: u64,
    },
    CreateShardKey(NewShardKey),
    DropShardKey(qd_collection::operations::ShardKey),
    /// `replicate_points`: copy the points of shard key `from` passing `filter` into shard key
    /// `to` (promoting a tenant to shards of its own).
    ReplicatePoints {
        from: qd_collection::operations::ShardKey,
        to: qd_collection::operations::ShardKey,
        filter: Option<qd_core::filter::Filter>,
    },
}

fn distributed_mode_disabled() -> ApiError {
    ApiError::bad_request("Bad request: Distributed mode disabled")
}

/// The transfer method a request names (`stream_records` when it names none).
fn transfer_method(
    method: Option<&str>,
    shard: u32,
    to_shard: Option<u32>,
) -> Result<qd_cluster::TransferMethod, ApiError> {
    let method = match method {
        None | Some("stream_records") => qd_cluster::TransferMethod::StreamRecords,
        Some("snapshot") => qd_cluster::TransferMethod::Snapshot,
        Some("wal_delta") => qd_cluster::TransferMethod::WalDelta,
        Some(m @ "resharding_stream_records") => {
            return Err(ApiError::bad_request(format!(
                "Bad request: shard transfer method `{m}` is not supported yet; use `stream_records`, `snapshot` or `wal_delta`"
            )))
        }
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "Bad request: unknown shard transfer method `{m}`; expected stream_records, snapshot or wal_delta"
            )))
        }
    };
    if to_shard.is_some_and(|s| s != shard) {
        return Err(ApiError::bad_request("Bad request: transfers between shards (resharding) are not supported"));
    }
    Ok(method)
}

pub async fn cluster_operation(state: &AppState, collection: &str, op: ClusterOp) -> Result<(), ApiError> {
    let real = state.registry.get(collection)?.name().to_string();
    let node = state.cluster.clone().ok_or_else(distributed_mode_disabled)?;
    match op {
        ClusterOp::Transfer { shard, from, to, sync, method, to_shard } => {
            let method = transfer_method(method.as_deref(), shard, to_shard)?;
            Ok(node.start_transfer(&real, shard, from, to, sync, method).await?)
        }
        ClusterOp::Abort { shard, from, to } => Ok(node.abort_transfer(&real, shard, from, to).await?),
        ClusterOp::Restart { shard, from, to, method, to_shard } => {
            let method = transfer_method(method.as_deref(), shard, to_shard)?;
            Ok(node.restart_transfer(&real, shard, from, to, method).await?)
        }
        ClusterOp::DropReplica { shard, peer } => Ok(node.drop_replica(&real, shard, peer).await?),
        ClusterOp::CreateShardKey(new) => create_shard_key(state, &real, new, None).await,
        ClusterOp::DropShardKey(key) => delete_shard_key(state, &real, key, None).await,
        ClusterOp::ReplicatePoints { from, to, filter } => {
            let c = state.registry.get(&real)?;
            blocking(move || Ok(c.copy_points_between_keys(&from, &to, filter.as_ref()).map(|_| ())?)).await
        }
    }
}

/// Where a collection's shards are (`GET /collections/{name}/cluster`).
pub async fn collection_cluster(
    state: &AppState,
    collection: &str,
) -> Result<qd_cluster::CollectionClusterInfo, ApiError> {
    let c = state.registry.get(collection)?;
    let Some(node) = state.cluster.clone() else {
        let shards = blocking(move || Ok(c.shard_stats())).await?;
        let local_shards: Vec<qd_cluster::LocalShardInfo> = shards
            .into_iter()
            .map(|s| qd_cluster::LocalShardInfo {
                shard_id: s.shard_id,
                shard_key: s.shard_key,
                points_count: s.points_count,
                state: qd_cluster::ReplicaState::Active,
            })
            .collect();
        return Ok(qd_cluster::CollectionClusterInfo {
            peer_id: crate::api::PEER_ID,
            shard_count: local_shards.len(),
            local_shards,
            remote_shards: Vec::new(),
            shard_transfers: Vec::new(),
        });
    };
    let real = c.name().to_string();
    blocking(move || {
        node.collection_info(&real)
            .ok_or_else(|| ApiError::not_found(format!("Not found: Collection `{real}` doesn't exist!")))
    })
    .await
}
