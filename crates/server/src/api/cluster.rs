//! Cluster endpoints: `GET /cluster`, `GET/POST /collections/{name}/cluster`,
//! `DELETE /cluster/peer/{peer_id}`, `POST /cluster/recover`. On a single node they answer as
//! Qdrant does with distributed mode off.

use std::time::Instant;

use axum::extract::Path;
use serde_json::json;

use super::response::{ok, ApiError, ApiResult, Params};
use super::{blocking, State};

fn disabled() -> ApiError {
    ApiError::bad_request("Bad request: Distributed mode disabled")
}

/// `GET /cluster`.
pub async fn status(state: State) -> ApiResult {
    let t = Instant::now();
    let Some(node) = &state.cluster else {
        return Ok(ok(t, json!({ "status": "disabled" })));
    };
    let s = node.status();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    Ok(ok(
        t,
        json!({
            "status": "enabled",
            "peer_id": s.peer_id,
            "peers": s.peers,
            "raft_info": s.raft_info,
            "consensus_thread_status": { "consensus_thread_status": "working", "last_update": now },
            "message_send_failures": {},
        }),
    ))
}

/// `GET /collections/{name}/cluster`: shards on this peer and on others, with their states.
pub async fn collection(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    let c = state.registry.get(&name)?;
    let Some(node) = state.cluster.clone() else {
        let shards = blocking(move || Ok(c.shard_stats())).await?;
        let local: Vec<_> = shards
            .iter()
            .map(|s| {
                let mut v = json!({ "shard_id": s.shard_id, "points_count": s.points_count, "state": "Active" });
                if let Some(k) = &s.shard_key {
                    v["shard_key"] = k.clone();
                }
                v
            })
            .collect();
        return Ok(ok(
            t,
            json!({
                "peer_id": super::PEER_ID,
                "shard_count": local.len(),
                "local_shards": local,
                "remote_shards": [],
                "shard_transfers": [],
            }),
        ));
    };
    let real = c.name().to_string();
    let info = blocking(move || {
        node.collection_info(&real)
            .ok_or_else(|| ApiError::not_found(format!("Not found: Collection `{real}` doesn't exist!")))
    })
    .await?;
    Ok(ok(t, info))
}

/// `POST /collections/{name}/cluster`: shard moves, replication, transfers, dropping replicas.
pub async fn update_collection(state: State, Path(name): Path<String>) -> ApiResult {
    state.registry.get(&name)?;
    match state.cluster {
        None => Err(disabled()),
        Some(_) => Err(ApiError::bad_request(
            "Bad request: shard transfer operations are not supported in cluster mode yet",
        )),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovePeerParams {
    #[serde(default)]
    pub force: bool,
    /// Accepted; a removal waits for consensus at most 30 s.
    #[allow(dead_code)]
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `DELETE /cluster/peer/{peer_id}?force=`.
pub async fn remove_peer(state: State, Path(peer): Path<u64>, Params(p): Params<RemovePeerParams>) -> ApiResult {
    let t = Instant::now();
    let node = state.cluster.clone().ok_or_else(disabled)?;
    node.remove_peer(peer, p.force).await?;
    Ok(ok(t, true))
}

/// `POST /cluster/recover`: consensus state is recovered from the leader automatically; this
/// only answers whether cluster mode is on.
pub async fn recover(state: State) -> ApiResult {
    let t = Instant::now();
    state.cluster.as_ref().ok_or_else(disabled)?;
    Ok(ok(t, true))
}
