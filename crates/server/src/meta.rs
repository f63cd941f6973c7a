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

/// Refuse a change that cluster mode does not replicate yet (rather than applying it on one
/// peer only).
pub fn single_node_only(state: &AppState, what: &str) -> Result<(), ApiError> {
    match state.cluster {
        Some(_) => Err(ApiError::bad_request(format!("Bad request: {what} is not supported in cluster mode yet"))),
        None => Ok(()),
    }
}

pub async fn create_collection(state: &AppState, name: String, body: CreateCollection) -> Result<(), ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.create(&name, body)?)).await;
    };
    let config = reg.prepare_create(&name, body)?;
    if config.params.sharding_method == Some(ShardingMethod::Custom) {
        return Err(ApiError::bad_request("Bad request: custom sharding is not supported in cluster mode yet"));
    }
    let placement = node.place(config.params.shard_number, config.params.replication_factor)?;
    let op = MetaOp::CreateCollection { name, config: Box::new(config), created_at: now_rfc3339(), placement };
    Ok(node.propose(op).await?)
}

/// Delete a collection; `false` when it did not exist.
pub async fn delete_collection(state: &AppState, name: String) -> Result<bool, ApiError> {
    let reg = state.registry.clone();
    let Some(node) = state.cluster.clone() else {
        return blocking(move || Ok(reg.delete(&name)?)).await;
    };
    if !node.state().state.collections.contains_key(&name) {
        return Ok(false);
    }
    node.propose(MetaOp::DeleteCollection { name }).await?;
    Ok(true)
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
