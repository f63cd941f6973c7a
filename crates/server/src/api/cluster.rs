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

/// One operation of `POST /collections/{name}/cluster` (an object with exactly one key).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClusterOperation {
    MoveShard(TransferBody),
    ReplicateShard(TransferBody),
    AbortTransfer(AbortBody),
    DropReplica(DropReplicaBody),
    CreateShardingKey(serde::de::IgnoredAny),
    DropShardingKey(serde::de::IgnoredAny),
    RestartTransfer(serde::de::IgnoredAny),
}

fn check_transfer(t: &TransferBody) -> Result<(), ApiError> {
    match t.method.as_deref() {
        None | Some("stream_records") => {}
        Some(m @ ("snapshot" | "wal_delta" | "resharding_stream_records")) => {
            return Err(ApiError::bad_request(format!(
                "Bad request: shard transfer method `{m}` is not supported yet; use `stream_records`"
            )))
        }
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "Bad request: unknown shard transfer method `{m}`; expected stream_records, snapshot or wal_delta"
            )))
        }
    }
    if t.to_shard_id.is_some_and(|s| s != t.shard_id) {
        return Err(ApiError::bad_request("Bad request: transfers between shards (resharding) are not supported"));
    }
    Ok(())
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
    let real = state.registry.get(&name)?.name().to_string();
    let node = state.cluster.clone().ok_or_else(disabled)?;
    match op {
        ClusterOperation::MoveShard(m) => {
            check_transfer(&m)?;
            node.start_transfer(&real, m.shard_id, m.from_peer_id, m.to_peer_id, false).await?
        }
        ClusterOperation::ReplicateShard(m) => {
            check_transfer(&m)?;
            node.start_transfer(&real, m.shard_id, m.from_peer_id, m.to_peer_id, true).await?
        }
        ClusterOperation::AbortTransfer(a) => node.abort_transfer(&real, a.shard_id, a.from_peer_id, a.to_peer_id).await?,
        ClusterOperation::DropReplica(d) => node.drop_replica(&real, d.shard_id, d.peer_id).await?,
        ClusterOperation::CreateShardingKey(_) | ClusterOperation::DropShardingKey(_) => {
            return Err(ApiError::bad_request("Bad request: shard keys are not supported in cluster mode yet"))
        }
        ClusterOperation::RestartTransfer(_) => {
            return Err(ApiError::bad_request("Bad request: restart_transfer is not supported yet"))
        }
    }
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

/// `POST /cluster/recover`: consensus state is recovered from the leader automatically; this
/// only answers whether cluster mode is on.
pub async fn recover(state: State) -> ApiResult {
    let t = Instant::now();
    state.cluster.as_ref().ok_or_else(disabled)?;
    Ok(ok(t, true))
}
