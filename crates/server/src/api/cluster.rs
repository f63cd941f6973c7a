//! Cluster endpoints: `GET /cluster`, `GET/POST /collections/{name}/cluster`,
//! `DELETE /cluster/peer/{peer_id}`, `POST /cluster/recover`. On a single node they answer as
//! Qdrant does with distributed mode off.

use std::time::Instant;

use axum::extract::Path;
use serde_json::json;

use super::response::{ok, ApiError, ApiResult, Params};
use super::State;
use crate::meta::ClusterOp;

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
            "message_send_failures": s.message_send_failures,
        }),
    ))
}

/// `GET /collections/{name}/cluster`: shards on this peer and on others, with their states.
pub async fn collection(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    Ok(ok(t, crate::meta::collection_cluster(&state, &name).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub shard_id: u32,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
    #[serde(default)]
    pub method: Option<String>,
    /// Resharding only; refused when it names another shard.
    #[serde(default)]
    pub to_shard_id: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    pub shard_id: u32,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropReplicaBody {
    pub shard_id: u32,
    pub peer_id: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    pub shard_id: u32,
    pub from_peer_id: u64,
    pub to_peer_id: u64,
    pub method: String,
    #[serde(default)]
    pub to_shard_id: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatePointsBody {
    pub from_shard_key: serde_json::Value,
    pub to_shard_key: serde_json::Value,
    #[serde(default)]
    pub filter: Option<qd_core::filter::Filter>,
}

/// One operation of `POST /collections/{name}/cluster` (an object with exactly one key).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClusterOperation {
    MoveShard(TransferBody),
    ReplicateShard(TransferBody),
    AbortTransfer(AbortBody),
    DropReplica(DropReplicaBody),
    CreateShardingKey(super::collections::CreateShardKeyBody),
    DropShardingKey(super::collections::DeleteShardKeyBody),
    RestartTransfer(RestartBody),
    ReplicatePoints(ReplicatePointsBody),
}

/// `POST /collections/{name}/cluster`: move or replicate a shard, abort a transfer, drop a
/// replica.
pub async fn update_collection(
    state: State,
    Path(name): Path<String>,
    _p: Params<super::models::TimeoutParam>,
    super::response::Body(op): super::response::Body<ClusterOperation>,
) -> ApiResult {
    let t = Instant::now();
    let op = match op {
        ClusterOperation::MoveShard(m) => ClusterOp::Transfer {
            shard: m.shard_id,
            from: m.from_peer_id,
            to: m.to_peer_id,
            sync: false,
            method: m.method,
            to_shard: m.to_shard_id,
        },
        ClusterOperation::ReplicateShard(m) => ClusterOp::Transfer {
            shard: m.shard_id,
            from: m.from_peer_id,
            to: m.to_peer_id,
            sync: true,
            method: m.method,
            to_shard: m.to_shard_id,
        },
        ClusterOperation::AbortTransfer(a) => {
            ClusterOp::Abort { shard: a.shard_id, from: a.from_peer_id, to: a.to_peer_id }
        }
        ClusterOperation::DropReplica(d) => ClusterOp::DropReplica { shard: d.shard_id, peer: d.peer_id },
        ClusterOperation::CreateShardingKey(body) => ClusterOp::CreateShardKey(body.into_new_key()?),
        ClusterOperation::DropShardingKey(body) => {
            ClusterOp::DropShardKey(super::collections::one_shard_key(&body.shard_key)?)
        }
        ClusterOperation::RestartTransfer(r) => {
            let (shard, from, to, to_shard) = (r.shard_id, r.from_peer_id, r.to_peer_id, r.to_shard_id);
            ClusterOp::Restart { shard, from, to, method: Some(r.method), to_shard }
        }
        ClusterOperation::ReplicatePoints(r) => ClusterOp::ReplicatePoints {
            from: super::collections::one_shard_key(&r.from_shard_key)?,
            to: super::collections::one_shard_key(&r.to_shard_key)?,
            filter: r.filter,
        },
    };
    crate::meta::cluster_operation(&state, &name, op).await?;
    Ok(ok(t, true))
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

/// `POST /cluster/recover`: this peer catches up with the leader and applies the agreed state
/// to its collections again ([`qd_cluster::ClusterNode::synchronize`]); 503 without a leader.
pub async fn recover(state: State) -> ApiResult {
    let t = Instant::now();
    let node = state.cluster.clone().ok_or_else(disabled)?;
    node.synchronize().await?;
    Ok(ok(t, true))
}
