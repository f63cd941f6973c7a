//! `qdrant.Collections`: create, inspect, update and delete collections, aliases, shard keys.

use std::sync::Arc;
use std::time::Instant;

use crate::meta::ClusterOp;

use qd_collection::{AliasAction, CollectionInfo};
use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::collections_server::Collections;
use tonic::{Request, Response, Status};

use super::convert::config::{config_out, create_json, update_json};
use super::convert::values::{shard_key, shard_key_out};
use super::convert::{invalid, Result};
use super::{blocking, elapsed, Reply};
use crate::api::response::parse_json;
use crate::api::AppState;

pub struct CollectionsService {
    state: Arc<AppState>,
}

impl CollectionsService {
    pub fn new(state: Arc<AppState>) -> Self {
        CollectionsService { state }
    }

    /// This node's shards of a collection with their figures and keys.
    async fn shards(
        &self,
        collection: String,
    ) -> std::result::Result<Vec<qd_collection::operations::ShardStats>, Status> {
        let reg = self.state.registry.clone();
        blocking(move || Ok(reg.get(&collection)?.shard_stats())).await
    }
}

fn replica_state_out(s: qd_cluster::ReplicaState) -> i32 {
    use qd_cluster::ReplicaState as R;
    (match s {
        R::Active => pb::ReplicaState::Active,
        R::Dead => pb::ReplicaState::Dead,
        R::Partial => pb::ReplicaState::Partial,
        R::Initializing => pb::ReplicaState::Initializing,
        R::Listener => pb::ReplicaState::Listener,
        R::Recovery => pb::ReplicaState::Recovery,
    }) as i32
}

fn status_out(s: &str) -> i32 {
    (match s {
        "green" => pb::CollectionStatus::Green,
        "yellow" => pb::CollectionStatus::Yellow,
        "red" => pb::CollectionStatus::Red,
        "grey" => pb::CollectionStatus::Grey,
        _ => pb::CollectionStatus::UnknownCollectionStatus,
    }) as i32
}

fn schema_type(t: &str) -> i32 {
    (match t {
        "keyword" => pb::PayloadSchemaType::Keyword,
        "integer" => pb::PayloadSchemaType::Integer,
        "float" => pb::PayloadSchemaType::Float,
        "geo" => pb::PayloadSchemaType::Geo,
        "text" => pb::PayloadSchemaType::Text,
        "bool" => pb::PayloadSchemaType::Bool,
        "datetime" => pb::PayloadSchemaType::Datetime,
        "uuid" => pb::PayloadSchemaType::Uuid,
        _ => pb::PayloadSchemaType::UnknownType,
    }) as i32
}

fn created_at(s: &str) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 })
}

/// Collection info as the protobuf message (the REST answer's fields).
pub fn info_out(i: CollectionInfo) -> pb::CollectionInfo {
    let optimizer_status = match i.optimizer_status.get("error").and_then(|e| e.as_str()) {
        Some(e) => pb::OptimizerStatus { ok: false, error: e.to_string() },
        None => pb::OptimizerStatus { ok: true, error: String::new() },
    };
    let payload_schema = i
        .payload_schema
        .iter()
        .map(|(field, v)| {
            let info = pb::PayloadSchemaInfo {
                data_type: schema_type(v.get("data_type").and_then(|t| t.as_str()).unwrap_or("")),
                params: None,
                points: v.get("points").and_then(|p| p.as_u64()),
            };
            (field.clone(), info)
        })
        .collect();
    let warnings = i
        .warnings
        .iter()
        .map(|w| pb::CollectionWarning {
            message: w.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string(),
        })
        .collect();
    let config = config_out(&i.config);
    pb::CollectionInfo {
        status: status_out(i.status),
        optimizer_status: Some(optimizer_status),
        segments_count: i.segments_count as u64,
        config: Some(config),
        payload_schema,
        points_count: Some(i.points_count as u64),
        indexed_vectors_count: Some(i.indexed_vectors_count as u64),
        warnings,
        update_queue: None,
        created_at: created_at(&i.created_at),
    }
}

/// A request converted to the REST body's JSON and parsed as REST parses it.
fn parse_body<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    let bytes = serde_json::to_vec(&v).map_err(|e| invalid(e.to_string()))?;
    parse_json(&bytes)
}

#[tonic::async_trait]
impl Collections for CollectionsService {
    async fn get(&self, request: Request<pb::GetCollectionInfoRequest>) -> Reply<pb::GetCollectionInfoResponse> {
        let t = Instant::now();
        let name = request.into_inner().collection_name;
        let reg = self.state.registry.clone();
        let info = blocking(move || Ok(reg.info(&name)?)).await?;
        Ok(Response::new(pb::GetCollectionInfoResponse { result: Some(info_out(info)), time: elapsed(t) }))
    }

    async fn list(&self, request: Request<pb::ListCollectionsRequest>) -> Reply<pb::ListCollectionsResponse> {
        let t = Instant::now();
        let visible = visible_to(&request);
        let collections = self
            .state
            .registry
            .list()
            .into_iter()
            .filter(|name| visible(name))
            .map(|name| pb::CollectionDescription { name })
            .collect();
        Ok(Response::new(pb::ListCollectionsResponse { collections, time: elapsed(t) }))
    }

    async fn create(&self, request: Request<pb::CreateCollection>) -> Reply<pb::CollectionOperationResponse> {
        let t = Instant::now();
        let req = request.into_inner();
        let (name, timeout) = (req.collection_name.clone(), req.timeout);
        let body: qd_core::config::CreateCollection = parse_body(create_json(req)?)?;
        crate::meta::create_collection(&self.state, name, body, timeout).await?;
        Ok(Response::new(pb::CollectionOperationResponse { result: true, time: elapsed(t) }))
    }

    async fn update(&self, request: Request<pb::UpdateCollection>) -> Reply<pb::CollectionOperationResponse> {
        let t = Instant::now();
        let req = request.into_inner();
        let name = req.collection_name.clone();
        let body: crate::api::models::UpdateCollectionBody = parse_body(update_json(req)?)?;
        crate::meta::update_collection(&self.state, name, body).await?;
        Ok(Response::new(pb::CollectionOperationResponse { result: true, time: elapsed(t) }))
    }

    async fn delete(&self, request: Request<pb::DeleteCollection>) -> Reply<pb::CollectionOperationResponse> {
        let t = Instant::now();
        let req = request.into_inner();
        let existed = crate::meta::delete_collection(&self.state, req.collection_name, req.timeout).await?;
        Ok(Response::new(pb::CollectionOperationResponse { result: existed, time: elapsed(t) }))
    }

    async fn update_aliases(&self, request: Request<pb::ChangeAliases>) -> Reply<pb::CollectionOperationResponse> {
        use pb::alias_operations::Action;
        let t = Instant::now();
        let actions = request
            .into_inner()
            .actions
            .into_iter()
            .map(|a| match a.action {
                Some(Action::CreateAlias(c)) => {
                    Ok(AliasAction::Create { alias: c.alias_name, collection: c.collection_name })
                }
                Some(Action::DeleteAlias(d)) => Ok(AliasAction::Delete { alias: d.alias_name }),
                Some(Action::RenameAlias(r)) => {
                    Ok(AliasAction::Rename { old: r.old_alias_name, new: r.new_alias_name })
                }
                None => Err(invalid("actions: empty alias operation")),
            })
            .collect::<Result<Vec<_>>>()?;
        crate::meta::update_aliases(&self.state, actions).await?;
        Ok(Response::new(pb::CollectionOperationResponse { result: true, time: elapsed(t) }))
    }

    async fn list_collection_aliases(
        &self,
        request: Request<pb::ListCollectionAliasesRequest>,
    ) -> Reply<pb::ListAliasesResponse> {
        let t = Instant::now();
        let name = request.into_inner().collection_name;
        if !self.state.registry.exists(&name) {
            return Err(Status::not_found(format!("Not found: Collection `{name}` doesn't exist!")));
        }
        let aliases = self
            .state
            .registry
            .aliases()
            .into_iter()
            .filter(|(_, c)| *c == name)
            .map(|(alias_name, collection_name)| pb::AliasDescription { alias_name, collection_name })
            .collect();
        Ok(Response::new(pb::ListAliasesResponse { aliases, time: elapsed(t) }))
    }

    async fn list_aliases(&self, request: Request<pb::ListAliasesRequest>) -> Reply<pb::ListAliasesResponse> {
        let t = Instant::now();
        let visible = visible_to(&request);
        let aliases = self
            .state
            .registry
            .aliases()
            .into_iter()
            .filter(|(_, collection)| visible(collection))
            .map(|(alias_name, collection_name)| pb::AliasDescription { alias_name, collection_name })
            .collect();
        Ok(Response::new(pb::ListAliasesResponse { aliases, time: elapsed(t) }))
    }

    async fn collection_cluster_info(
        &self,
        request: Request<pb::CollectionClusterInfoRequest>,
    ) -> Reply<pb::CollectionClusterInfoResponse> {
        let t = Instant::now();
        let info = crate::meta::collection_cluster(&self.state, &request.into_inner().collection_name).await?;
        let local_shards = info
            .local_shards
            .iter()
            .map(|s| pb::LocalShardInfo {
                shard_id: s.shard_id,
                points_count: s.points_count as u64,
                state: replica_state_out(s.state),
                shard_key: s.shard_key.as_ref().and_then(shard_key_out),
            })
            .collect();
        let remote_shards = info
            .remote_shards
            .iter()
            .map(|s| pb::RemoteShardInfo {
                shard_id: s.shard_id,
                peer_id: s.peer_id,
                state: replica_state_out(s.state),
                shard_key: None,
            })
            .collect();
        let shard_transfers = info
            .shard_transfers
            .iter()
            .map(|t| pb::ShardTransferInfo {
                shard_id: t.shard_id,
                to_shard_id: None,
                from: t.from,
                to: t.to,
                sync: t.sync,
            })
            .collect();
        Ok(Response::new(pb::CollectionClusterInfoResponse {
            peer_id: info.peer_id,
            shard_count: info.shard_count as u64,
            local_shards,
            remote_shards,
            shard_transfers,
            resharding_operations: Vec::new(),
            time: elapsed(t),
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<pb::CollectionExistsRequest>,
    ) -> Reply<pb::CollectionExistsResponse> {
        let t = Instant::now();
        let exists = self.state.registry.exists(&request.into_inner().collection_name);
        Ok(Response::new(pb::CollectionExistsResponse {
            result: Some(pb::CollectionExists { exists }),
            time: elapsed(t),
        }))
    }

    async fn update_collection_cluster_setup(
        &self,
        request: Request<pb::UpdateCollectionClusterSetupRequest>,
    ) -> Reply<pb::UpdateCollectionClusterSetupResponse> {
        use pb::update_collection_cluster_setup_request::Operation;
        let t = Instant::now();
        let req = request.into_inner();
        let method = |m: Option<i32>| {
            m.map(|m| match pb::ShardTransferMethod::try_from(m) {
                Ok(pb::ShardTransferMethod::StreamRecords) => "stream_records".to_string(),
                Ok(pb::ShardTransferMethod::Snapshot) => "snapshot".to_string(),
                Ok(pb::ShardTransferMethod::WalDelta) => "wal_delta".to_string(),
                Ok(pb::ShardTransferMethod::ReshardingStreamRecords) => "resharding_stream_records".to_string(),
                Err(_) => format!("#{m}"),
            })
        };
        let op = match req.operation {
            None => return Err(Status::invalid_argument("Bad request: operation: missing")),
            Some(Operation::MoveShard(m)) => ClusterOp::Transfer {
                shard: m.shard_id,
                from: m.from_peer_id,
                to: m.to_peer_id,
                sync: false,
                method: method(m.method),
                to_shard: m.to_shard_id,
            },
            Some(Operation::ReplicateShard(m)) => ClusterOp::Transfer {
                shard: m.shard_id,
                from: m.from_peer_id,
                to: m.to_peer_id,
                sync: true,
                method: method(m.method),
                to_shard: m.to_shard_id,
            },
            Some(Operation::AbortTransfer(a)) => {
                ClusterOp::Abort { shard: a.shard_id, from: a.from_peer_id, to: a.to_peer_id }
            }
            Some(Operation::DropReplica(r)) => ClusterOp::DropReplica { shard: r.shard_id, peer: r.peer_id },
            Some(Operation::CreateShardKey(body)) => ClusterOp::CreateShardKey(new_shard_key(body)?),
            Some(Operation::DeleteShardKey(body)) => {
                ClusterOp::DropShardKey(shard_key(body.shard_key.unwrap_or_default(), "shard_key")?)
            }
            Some(Operation::RestartTransfer(r)) => ClusterOp::Restart {
                shard: r.shard_id,
                from: r.from_peer_id,
                to: r.to_peer_id,
                method: method(Some(r.method)),
                to_shard: r.to_shard_id,
            },
            Some(Operation::ReplicatePoints(r)) => ClusterOp::ReplicatePoints {
                from: shard_key(
                    r.from_shard_key.ok_or_else(|| invalid("from_shard_key is required"))?,
                    "from_shard_key",
                )?,
                to: shard_key(r.to_shard_key.ok_or_else(|| invalid("to_shard_key is required"))?, "to_shard_key")?,
                filter: super::convert::filter::filter_opt(r.filter, "filter")?,
            },
        };
        crate::meta::cluster_operation(&self.state, &req.collection_name, op).await?;
        Ok(Response::new(pb::UpdateCollectionClusterSetupResponse { result: true, time: elapsed(t) }))
    }

    async fn create_shard_key(&self, request: Request<pb::CreateShardKeyRequest>) -> Reply<pb::CreateShardKeyResponse> {
        let t = Instant::now();
        let req = request.into_inner();
        let body = req.request.ok_or_else(|| Status::invalid_argument("Bad request: request: missing"))?;
        crate::meta::create_shard_key(&self.state, &req.collection_name, new_shard_key(body)?, req.timeout).await?;
        Ok(Response::new(pb::CreateShardKeyResponse { result: true, time: elapsed(t) }))
    }

    async fn delete_shard_key(&self, request: Request<pb::DeleteShardKeyRequest>) -> Reply<pb::DeleteShardKeyResponse> {
        let t = Instant::now();
        let req = request.into_inner();
        let body = req.request.ok_or_else(|| Status::invalid_argument("Bad request: request: missing"))?;
        let key = shard_key(body.shard_key.unwrap_or_default(), "shard_key")?;
        crate::meta::delete_shard_key(&self.state, &req.collection_name, key, req.timeout).await?;
        Ok(Response::new(pb::DeleteShardKeyResponse { result: true, time: elapsed(t) }))
    }

    async fn list_shard_keys(&self, request: Request<pb::ListShardKeysRequest>) -> Reply<pb::ListShardKeysResponse> {
        let t = Instant::now();
        let shards = self.shards(request.into_inner().collection_name).await?;
        let mut keys: Vec<serde_json::Value> = Vec::new();
        for k in shards.into_iter().filter_map(|s| s.shard_key) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let shard_keys = keys.iter().map(|k| pb::ShardKeyDescription { key: shard_key_out(k) }).collect();
        Ok(Response::new(pb::ListShardKeysResponse { shard_keys, time: elapsed(t) }))
    }
}

/// A gRPC `CreateShardKey` as the shared metadata call takes it (an empty placement means
/// every peer).
fn new_shard_key(body: pb::CreateShardKey) -> Result<crate::meta::NewShardKey> {
    Ok(crate::meta::NewShardKey {
        key: shard_key(body.shard_key.unwrap_or_default(), "shard_key")?,
        shards_number: body.shards_number,
        replication_factor: body.replication_factor,
        placement: (!body.placement.is_empty()).then_some(body.placement),
    })
}

/// Which collections the caller may see in lists: all, or a collection-limited token's own
/// (the edge puts the caller's access in the request).
fn visible_to<T>(request: &Request<T>) -> impl Fn(&String) -> bool {
    let access = request.extensions().get::<crate::api::jwt::Access>().cloned();
    move |name| access.as_ref().is_none_or(|a| a.to_collection(name).is_some())
}
