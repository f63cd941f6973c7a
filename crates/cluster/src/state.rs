//! The replicated cluster metadata (the Raft state machine's data) and the operations that
//! change it. Applying an operation is a pure function of the state, so every peer that applies
//! the same log reaches the same state; an operation that cannot apply (a collection that
//! already exists, an unknown replica) changes nothing and answers its error.

use std::collections::BTreeMap;

use qd_collection::catalog::PayloadIndexSpec;
use qd_collection::shard::ShardId;
use qd_collection::shard_set::{ShardKey, ShardKeyEntry};
use qd_collection::AliasAction;
use qd_core::config::CollectionConfig;
use serde::{Deserialize, Serialize};

/// A peer's id: random at first start, kept in the consensus database.
pub type PeerId = u64;

/// State of one replica of a shard, with Qdrant's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Up to date: takes writes and serves reads.
    Active,
    /// Missed writes (its peer failed one): neither reads nor writes until recovered.
    Dead,
    /// Receiving a transfer: takes writes, serves no reads.
    Partial,
    /// Being created.
    Initializing,
    /// Takes writes, serves no reads.
    Listener,
    /// Recovering from a snapshot transfer.
    Recovery,
}

impl ReplicaState {
    /// Whether updates are sent to a replica in this state.
    pub fn takes_writes(self) -> bool {
        matches!(self, ReplicaState::Active | ReplicaState::Partial | ReplicaState::Listener)
    }

    /// Whether reads may be served by a replica in this state.
    pub fn serves_reads(self) -> bool {
        self == ReplicaState::Active
    }
}

/// How a shard transfer copies the shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMethod {
    /// Points are streamed in batches from the source replica.
    StreamRecords,
    /// The source's shard snapshot is copied and installed, then the writes the new replica
    /// received meanwhile are applied again over it.
    Snapshot,
    /// Only what the receiving replica misses is copied: both sides digest their records page
    /// by page and the source sends the points whose digests differ (Qdrant's `wal_delta`,
    /// which also copies only the difference; here it is found by content, not from a log).
    /// Recovering a Dead replica uses it too.
    WalDelta,
}

/// A shard copy in progress, with Qdrant's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTransfer {
    pub shard_id: ShardId,
    pub from: PeerId,
    pub to: PeerId,
    /// `true`: a replication (the source keeps its replica); `false`: a move.
    pub sync: bool,
    pub method: TransferMethod,
}

/// A collection as the cluster knows it: its config and where each shard's replicas are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CollectionMeta {
    pub config: CollectionConfig,
    pub created_at: String,
    /// Shard id -> peer -> replica state.
    pub shards: BTreeMap<ShardId, BTreeMap<PeerId, ReplicaState>>,
    #[serde(default)]
    pub payload_schema: BTreeMap<String, PayloadIndexSpec>,
    #[serde(default)]
    pub transfers: Vec<ShardTransfer>,
    /// Shard id -> how many times its replicas or transfers changed. A write carries the
    /// version its coordinator routed it by; a replica that applied a newer one refuses it,
    /// so no write can miss a replica that consensus added while it was in flight.
    #[serde(default)]
    pub versions: BTreeMap<ShardId, u64>,
    /// Custom sharding: each shard key and the shards it owns.
    #[serde(default)]
    pub shard_keys: Vec<ShardKeyEntry>,
}

impl CollectionMeta {
    /// The transfer of `shard` into `to`, if one runs.
    pub fn transfer_to(&self, shard: ShardId, to: PeerId) -> Option<&ShardTransfer> {
        self.transfers.iter().find(|t| t.shard_id == shard && t.to == to)
    }

    /// The routing version of `shard` (0 until its replicas first change).
    pub fn version(&self, shard: ShardId) -> u64 {
        self.versions.get(&shard).copied().unwrap_or(0)
    }

    /// The id a new shard gets: above every shard this collection ever had (a stale routing
    /// version must never match a new shard).
    pub fn next_shard_id(&self) -> ShardId {
        self.shards.keys().chain(self.versions.keys()).max().map_or(0, |m| m + 1)
    }

    fn bump(&mut self, shard: ShardId) {
        *self.versions.entry(shard).or_insert(0) += 1;
    }

    /// Replicas of `shard` with their states (empty for an unknown shard).
    pub fn replicas(&self, shard: ShardId) -> Vec<(PeerId, ReplicaState)> {
        self.shards.get(&shard).map(|r| r.iter().map(|(p, s)| (*p, *s)).collect()).unwrap_or_default()
    }
}

/// Everything consensus agrees on besides membership (peers and their URIs live in Raft's
/// membership config).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub collections: BTreeMap<String, CollectionMeta>,
    pub aliases: BTreeMap<String, String>,
}

/// A metadata change proposed to consensus.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MetaOp {
    CreateCollection {
        name: String,
        config: Box<CollectionConfig>,
        created_at: String,
        /// Shard id -> the peers holding its replicas.
        placement: BTreeMap<ShardId, Vec<PeerId>>,
    },
    DeleteCollection {
        name: String,
    },
    /// A collection's updated parameters (PATCH).
    SetConfig {
        collection: String,
        config: Box<CollectionConfig>,
    },
    SetReplicaState {
        collection: String,
        shard: ShardId,
        peer: PeerId,
        state: ReplicaState,
    },
    /// Create (`Some`) or drop (`None`) a payload index.
    SetPayloadIndex {
        collection: String,
        field: String,
        spec: Option<PayloadIndexSpec>,
    },
    UpdateAliases(Vec<AliasAction>),
    /// Drop every replica a removed peer held.
    ForgetPeer {
        peer: PeerId,
    },
    /// Begin copying a shard to a peer: it gets a Partial replica.
    StartTransfer {
        collection: String,
        transfer: ShardTransfer,
    },
    /// The copy is complete: the new replica becomes Active (and, for a move, the source's
    /// replica goes).
    FinishTransfer {
        collection: String,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
    },
    /// Run a copy again by `method`: the receiver is made Dead, so the copy in progress cannot
    /// finish, and its peer copies again by the new method.
    RestartTransfer {
        collection: String,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
        method: TransferMethod,
    },
    /// Cancel a copy: its Partial replica goes.
    AbortTransfer {
        collection: String,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
    },
    /// Remove one replica of a shard (never the last).
    DropReplica {
        collection: String,
        shard: ShardId,
        peer: PeerId,
    },
    /// Add a shard key to a custom-sharded collection, with its new shards placed.
    CreateShardKey {
        collection: String,
        key: ShardKey,
        /// New shard id -> the peers holding its replicas.
        placement: BTreeMap<ShardId, Vec<PeerId>>,
    },
    /// Remove a shard key and its shards.
    DeleteShardKey {
        collection: String,
        key: ShardKey,
    },
    /// The replica on `peer` was recovered from a snapshot: it becomes Active (from any
    /// state), and with `demote_others` (priority `snapshot`) every other replica becomes Dead,
    /// so they copy from it. Refused while a transfer of the shard runs.
    PromoteReplica {
        collection: String,
        shard: ShardId,
        peer: PeerId,
        demote_others: bool,
    },
}

/// Why an operation did not apply, classified as the API reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaError {
    BadRequest(String),
    NotFound(String),
    AlreadyExists(String),
}

/// The answer of one applied log entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaResult {
    /// `Some` when the operation was refused (the state did not change).
    pub error: Option<MetaError>,
}

pub(crate) fn not_found(name: &str) -> MetaError {
    MetaError::NotFound(format!("Collection `{name}` doesn't exist!"))
}

impl ClusterState {
    /// Apply one operation; on error the state is unchanged.
    pub fn apply(&mut self, op: &MetaOp) -> Result<(), MetaError> {
        match op {
            MetaOp::CreateCollection { name, config, created_at, placement } => {
                if self.collections.contains_key(name) {
                    return Err(MetaError::AlreadyExists(format!("Wrong input: Collection `{name}` already exists!")));
                }
                if self.aliases.contains_key(name) {
                    return Err(MetaError::AlreadyExists(format!("Wrong input: Alias `{name}` already exists!")));
                }
                let shards = placement
                    .iter()
                    .map(|(sid, peers)| (*sid, peers.iter().map(|p| (*p, ReplicaState::Active)).collect()))
                    .collect();
                self.collections.insert(
                    name.clone(),
                    CollectionMeta {
                        config: (**config).clone(),
                        created_at: created_at.clone(),
                        shards,
                        payload_schema: BTreeMap::new(),
                        transfers: Vec::new(),
                        versions: BTreeMap::new(),
                        shard_keys: Vec::new(),
                    },
                );
                Ok(())
            }
            MetaOp::DeleteCollection { name } => {
                if self.collections.remove(name).is_none() {
                    return Err(not_found(name));
                }
                self.aliases.retain(|_, c| c != name);
                Ok(())
            }
            MetaOp::SetConfig { collection, config } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                if config.params.shard_number != meta.config.params.shard_number {
                    return Err(MetaError::BadRequest("Bad request: shard_number cannot change".into()));
                }
                meta.config = (**config).clone();
                Ok(())
            }
            MetaOp::SetReplicaState { collection, shard, peer, state } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let replica = meta
                    .shards
                    .get_mut(shard)
                    .and_then(|r| r.get_mut(peer))
                    .ok_or_else(|| MetaError::NotFound(format!("Shard {shard} has no replica on peer {peer}")))?;
                // Only a completed recovery (Partial) makes a replica Active: one marked Dead
                // meanwhile missed a write and must recover again.
                if *state == ReplicaState::Active && !matches!(*replica, ReplicaState::Partial | ReplicaState::Active) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: replica of shard {shard} on peer {peer} is {:?}, not Partial: it cannot become Active",
                        *replica
                    )));
                }
                *replica = *state;
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::PromoteReplica { collection, shard, peer, demote_others } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                if meta.transfers.iter().any(|t| t.shard_id == *shard) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: a transfer of shard {shard} is running; wait for it or abort it first"
                    )));
                }
                let replicas = meta
                    .shards
                    .get_mut(shard)
                    .filter(|r| r.contains_key(peer))
                    .ok_or_else(|| MetaError::NotFound(format!("Shard {shard} has no replica on peer {peer}")))?;
                for (p, state) in replicas.iter_mut() {
                    if p == peer {
                        *state = ReplicaState::Active;
                    } else if *demote_others {
                        *state = ReplicaState::Dead;
                    }
                }
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::SetPayloadIndex { collection, field, spec } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                match spec {
                    Some(s) => {
                        meta.payload_schema.insert(field.clone(), s.clone());
                    }
                    None => {
                        meta.payload_schema.remove(field);
                    }
                }
                Ok(())
            }
            MetaOp::UpdateAliases(actions) => {
                let mut aliases = self.aliases.clone();
                for action in actions {
                    apply_alias(&mut aliases, &self.collections, action)?;
                }
                self.aliases = aliases;
                Ok(())
            }
            MetaOp::ForgetPeer { peer } => {
                for meta in self.collections.values_mut() {
                    let mut changed: Vec<ShardId> = Vec::new();
                    for (sid, replicas) in meta.shards.iter_mut() {
                        if replicas.remove(peer).is_some() {
                            changed.push(*sid);
                        }
                    }
                    changed
                        .extend(meta.transfers.iter().filter(|t| t.from == *peer || t.to == *peer).map(|t| t.shard_id));
                    meta.transfers.retain(|t| t.from != *peer && t.to != *peer);
                    for sid in changed {
                        meta.bump(sid);
                    }
                }
                Ok(())
            }
            MetaOp::StartTransfer { collection, transfer } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let t = transfer;
                let replicas = meta.shards.get_mut(&t.shard_id).ok_or_else(|| no_shard(collection, t.shard_id))?;
                if t.from == t.to {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: cannot transfer shard to itself, \"to_peer_id\" must be different than {} in \"from_peer_id\"",
                        t.from
                    )));
                }
                if replicas.get(&t.from) != Some(&ReplicaState::Active) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: Shard {} on peer {} is not an active replica to transfer from",
                        t.shard_id, t.from
                    )));
                }
                if replicas.contains_key(&t.to) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: Shard {} is already on peer {}",
                        t.shard_id, t.to
                    )));
                }
                if meta.transfers.iter().any(|x| x.shard_id == t.shard_id) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: Shard {} of {collection} is already being transferred",
                        t.shard_id
                    )));
                }
                replicas.insert(t.to, ReplicaState::Partial);
                meta.transfers.push(t.clone());
                meta.bump(t.shard_id);
                Ok(())
            }
            MetaOp::FinishTransfer { collection, shard, from, to } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let at = find_transfer(meta, collection, *shard, *from, *to)?;
                let target = meta.shards.get(shard).and_then(|r| r.get(to)).copied();
                if target != Some(ReplicaState::Partial) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: the receiving replica of shard {shard} on peer {to} is {target:?}, not Partial: \
                         the copy must run again"
                    )));
                }
                let t = meta.transfers.remove(at);
                if let Some(replicas) = meta.shards.get_mut(shard) {
                    replicas.insert(*to, ReplicaState::Active);
                    if !t.sync {
                        replicas.remove(from);
                    }
                }
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::RestartTransfer { collection, shard, from, to, method } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let at = find_transfer(meta, collection, *shard, *from, *to)?;
                meta.transfers[at].method = *method;
                if let Some(receiver) = meta.shards.get_mut(shard).and_then(|r| r.get_mut(to)) {
                    *receiver = ReplicaState::Dead;
                }
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::AbortTransfer { collection, shard, from, to } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let at = find_transfer(meta, collection, *shard, *from, *to)?;
                meta.transfers.remove(at);
                if let Some(replicas) = meta.shards.get_mut(shard) {
                    replicas.remove(to);
                }
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::DropReplica { collection, shard, peer } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let replicas = meta.shards.get_mut(shard).ok_or_else(|| no_shard(collection, *shard))?;
                if !replicas.contains_key(peer) {
                    return Err(MetaError::NotFound(format!(
                        "Not found: Shard {shard} of {collection} has no replica on peer {peer}"
                    )));
                }
                let others_active = replicas.iter().any(|(p, s)| p != peer && *s == ReplicaState::Active);
                if !others_active {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: Shard {shard} of {collection} has no other active replica: the last one cannot be dropped"
                    )));
                }
                replicas.remove(peer);
                meta.transfers.retain(|t| !(t.shard_id == *shard && (t.from == *peer || t.to == *peer)));
                meta.bump(*shard);
                Ok(())
            }
            MetaOp::CreateShardKey { collection, key, placement } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                if meta.config.params.sharding_method != Some(qd_core::config::ShardingMethod::Custom) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: collection `{collection}` does not use sharding_method: custom"
                    )));
                }
                if meta.shard_keys.iter().any(|e| &e.key == key) {
                    return Err(MetaError::AlreadyExists(format!("Bad request: Shard key {key} already exists")));
                }
                let first = meta.next_shard_id();
                if placement.is_empty() || placement.keys().any(|sid| *sid < first) {
                    return Err(MetaError::BadRequest(format!(
                        "Bad request: the shards of shard key {key} must be new (from shard id {first})"
                    )));
                }
                for (sid, peers) in placement {
                    meta.shards.insert(*sid, peers.iter().map(|p| (*p, ReplicaState::Active)).collect());
                    meta.bump(*sid);
                }
                meta.shard_keys.push(ShardKeyEntry { key: key.clone(), shards: placement.keys().copied().collect() });
                Ok(())
            }
            MetaOp::DeleteShardKey { collection, key } => {
                let meta = self.collections.get_mut(collection).ok_or_else(|| not_found(collection))?;
                let at = meta
                    .shard_keys
                    .iter()
                    .position(|e| &e.key == key)
                    .ok_or_else(|| MetaError::NotFound(format!("Not found: Shard key {key} does not exist")))?;
                let entry = meta.shard_keys.remove(at);
                for sid in entry.shards {
                    meta.shards.remove(&sid);
                    meta.transfers.retain(|t| t.shard_id != sid);
                    meta.bump(sid);
                }
                Ok(())
            }
        }
    }

    /// Whether `peer` holds a replica of any shard (removing it then needs `force`).
    pub fn holds_replicas(&self, peer: PeerId) -> bool {
        self.collections.values().any(|c| c.shards.values().any(|r| r.contains_key(&peer)))
    }

    /// How many replicas each peer holds, for placing new shards on the least loaded peers.
    pub fn load(&self) -> BTreeMap<PeerId, usize> {
        let mut load = BTreeMap::new();
        for meta in self.collections.values() {
            for replicas in meta.shards.values() {
                for p in replicas.keys() {
                    *load.entry(*p).or_insert(0) += 1;
                }
            }
        }
        load
    }
}

fn no_shard(collection: &str, shard: ShardId) -> MetaError {
    MetaError::BadRequest(format!("Bad request: Shard {shard} of {collection} does not exist"))
}

fn find_transfer(
    meta: &CollectionMeta,
    collection: &str,
    shard: ShardId,
    from: PeerId,
    to: PeerId,
) -> Result<usize, MetaError> {
    meta.transfers.iter().position(|t| t.shard_id == shard && t.from == from && t.to == to).ok_or_else(|| {
        MetaError::NotFound(format!(
            "Not found: Shard transfer {from} -> {to} for collection {collection}:{shard} does not exist"
        ))
    })
}

fn apply_alias(
    aliases: &mut BTreeMap<String, String>,
    collections: &BTreeMap<String, CollectionMeta>,
    action: &AliasAction,
) -> Result<(), MetaError> {
    match action {
        AliasAction::Create { alias, collection } => {
            if !collections.contains_key(collection) {
                return Err(not_found(collection));
            }
            if collections.contains_key(alias) {
                return Err(MetaError::AlreadyExists(format!("Wrong input: Collection `{alias}` already exists!")));
            }
            aliases.insert(alias.clone(), collection.clone());
        }
        AliasAction::Delete { alias } => {
            if aliases.remove(alias).is_none() {
                return Err(MetaError::NotFound(format!("Alias `{alias}` doesn't exist!")));
            }
        }
        AliasAction::Rename { old, new } => {
            let target =
                aliases.remove(old).ok_or_else(|| MetaError::NotFound(format!("Alias `{old}` doesn't exist!")))?;
            aliases.insert(new.clone(), target);
        }
    }
    Ok(())
}

/// Place `shard_number` shards with `replication_factor` replicas each over `peers`: every
/// shard on distinct peers, each next replica on the peer holding the fewest replicas so far
/// (counting `load`, what peers already hold), ties broken by peer id. As in Qdrant, a
/// replication factor above the number of peers places one replica per peer (the config keeps
/// the requested factor).
pub fn place_shards(
    shard_number: u32,
    replication_factor: u32,
    peers: &[PeerId],
    load: &BTreeMap<PeerId, usize>,
) -> Result<BTreeMap<ShardId, Vec<PeerId>>, MetaError> {
    if peers.is_empty() {
        return Err(MetaError::BadRequest("no peers to place shards on".into()));
    }
    let mut load: BTreeMap<PeerId, usize> = peers.iter().map(|p| (*p, load.get(p).copied().unwrap_or(0))).collect();
    let mut placement = BTreeMap::new();
    for sid in 0..shard_number {
        let mut chosen: Vec<PeerId> = Vec::new();
        for _ in 0..(replication_factor.max(1) as usize).min(peers.len()) {
            let next = load
                .iter()
                .filter(|(p, _)| !chosen.contains(p))
                .min_by_key(|(p, n)| (**n, **p))
                .map(|(p, _)| *p)
                .ok_or_else(|| MetaError::BadRequest("not enough peers".into()))?;
            *load.entry(next).or_insert(0) += 1;
            chosen.push(next);
        }
        placement.insert(sid, chosen);
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CollectionConfig {
        let create: qd_core::config::CreateCollection =
            serde_json::from_value(serde_json::json!({"vectors": {"size": 4, "distance": "Dot"}})).expect("parses");
        create.into_config(&Default::default()).expect("valid")
    }

    fn create(name: &str, placement: BTreeMap<ShardId, Vec<PeerId>>) -> MetaOp {
        MetaOp::CreateCollection { name: name.into(), config: Box::new(config()), created_at: "t".into(), placement }
    }

    #[test]
    fn placement_spreads_replicas_evenly_on_distinct_peers() {
        let p = place_shards(6, 2, &[1, 2, 3], &BTreeMap::new()).expect("fits");
        let mut per_peer = BTreeMap::new();
        for peers in p.values() {
            assert_eq!(peers.len(), 2);
            assert_ne!(peers[0], peers[1]);
            for peer in peers {
                *per_peer.entry(*peer).or_insert(0) += 1;
            }
        }
        assert_eq!(per_peer.values().copied().collect::<Vec<_>>(), vec![4, 4, 4]);
    }

    #[test]
    fn placement_prefers_less_loaded_peers_and_caps_replicas_at_peer_count() {
        let load = BTreeMap::from([(1, 5), (2, 0), (3, 1)]);
        let p = place_shards(1, 1, &[1, 2, 3], &load).expect("fits");
        assert_eq!(p[&0], vec![2]);
        let p = place_shards(1, 4, &[1, 2, 3], &BTreeMap::new()).expect("capped");
        assert_eq!(p[&0], vec![1, 2, 3]);
    }

    #[test]
    fn a_promoted_replica_is_the_only_active_one() {
        let mut s = ClusterState::default();
        s.apply(&create("a", BTreeMap::from([(0, vec![1, 2, 3]), (1, vec![1, 2])]))).expect("created");
        let promote =
            |peer, demote_others| MetaOp::PromoteReplica { collection: "a".into(), shard: 0, peer, demote_others };
        let dead = |peer| MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer, state: ReplicaState::Dead };
        use ReplicaState::{Active, Dead};
        // Alone: a Dead replica becomes Active, the others stay as they are.
        s.apply(&dead(3)).expect("dead");
        s.apply(&promote(3, false)).expect("activated");
        assert_eq!(s.collections["a"].replicas(0), vec![(1, Active), (2, Active), (3, Active)]);
        s.apply(&dead(2)).expect("dead");
        let before = s.collections["a"].version(0);
        s.apply(&promote(2, true)).expect("promoted");
        assert_eq!(s.collections["a"].replicas(0), vec![(1, Dead), (2, Active), (3, Dead)]);
        assert_eq!(s.collections["a"].replicas(1), vec![(1, Active), (2, Active)], "other shards untouched");
        assert!(s.collections["a"].version(0) > before, "writes routed before are refused");
        assert!(matches!(s.apply(&promote(9, true)), Err(MetaError::NotFound(_))));
        let transfer = ShardTransfer { shard_id: 0, from: 2, to: 1, sync: true, method: TransferMethod::StreamRecords };
        s.collections.get_mut("a").expect("a").transfers.push(transfer);
        assert!(matches!(s.apply(&promote(1, true)), Err(MetaError::BadRequest(_))));
        assert_eq!(s.collections["a"].replicas(0), vec![(1, Dead), (2, Active), (3, Dead)]);
    }

    #[test]
    fn apply_is_all_or_nothing() {
        let mut s = ClusterState::default();
        s.apply(&create("a", BTreeMap::from([(0, vec![1, 2])]))).expect("created");
        assert!(matches!(s.apply(&create("a", BTreeMap::new())), Err(MetaError::AlreadyExists(_))));
        s.apply(&MetaOp::UpdateAliases(vec![AliasAction::Create { alias: "x".into(), collection: "a".into() }]))
            .expect("alias");
        // The second action fails, so the first is not applied either.
        let bad = MetaOp::UpdateAliases(vec![
            AliasAction::Create { alias: "y".into(), collection: "a".into() },
            AliasAction::Delete { alias: "missing".into() },
        ]);
        assert!(matches!(s.apply(&bad), Err(MetaError::NotFound(_))));
        assert!(!s.aliases.contains_key("y"));
        s.apply(&MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer: 2, state: ReplicaState::Dead })
            .expect("state");
        assert_eq!(s.collections["a"].replicas(0), vec![(1, ReplicaState::Active), (2, ReplicaState::Dead)]);
        assert!(s
            .apply(&MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer: 9, state: ReplicaState::Dead })
            .is_err());
        let mut changed = config();
        changed.params.write_consistency_factor = 2;
        s.apply(&MetaOp::SetConfig { collection: "a".into(), config: Box::new(changed.clone()) }).expect("patched");
        assert_eq!(s.collections["a"].config, changed);
        changed.params.shard_number = 9;
        assert!(s.apply(&MetaOp::SetConfig { collection: "a".into(), config: Box::new(changed) }).is_err());
        s.apply(&MetaOp::DeleteCollection { name: "a".into() }).expect("deleted");
        assert!(s.aliases.is_empty(), "aliases of a deleted collection go with it");
    }

    fn transfer(shard: ShardId, from: PeerId, to: PeerId, sync: bool) -> MetaOp {
        MetaOp::StartTransfer {
            collection: "a".into(),
            transfer: ShardTransfer { shard_id: shard, from, to, sync, method: TransferMethod::StreamRecords },
        }
    }

    #[test]
    fn moves_replications_aborts_and_drops() {
        let mut s = ClusterState::default();
        s.apply(&create("a", BTreeMap::from([(0, vec![1]), (1, vec![2])]))).expect("created");
        assert!(matches!(s.apply(&transfer(0, 1, 1, true)), Err(MetaError::BadRequest(m)) if m.contains("itself")));
        assert!(matches!(s.apply(&transfer(0, 2, 3, true)), Err(MetaError::BadRequest(_))), "2 holds no replica of 0");
        assert!(
            matches!(s.apply(&transfer(7, 1, 3, true)), Err(MetaError::BadRequest(m)) if m.contains("does not exist"))
        );
        // A move: Partial while copying, then the target is Active and the source gone.
        s.apply(&transfer(0, 1, 3, false)).expect("move starts");
        assert_eq!(s.collections["a"].replicas(0), vec![(1, ReplicaState::Active), (3, ReplicaState::Partial)]);
        assert!(s.apply(&transfer(0, 1, 2, true)).is_err(), "one transfer per shard at a time");
        // A restart changes the method and makes the receiver copy again.
        let restart = |method| MetaOp::RestartTransfer { collection: "a".into(), shard: 0, from: 1, to: 3, method };
        s.apply(&restart(TransferMethod::Snapshot)).expect("restarted");
        assert_eq!(s.collections["a"].transfers[0].method, TransferMethod::Snapshot);
        assert_eq!(s.collections["a"].replicas(0), vec![(1, ReplicaState::Active), (3, ReplicaState::Dead)]);
        let wrong = MetaOp::RestartTransfer {
            collection: "a".into(),
            shard: 0,
            from: 2,
            to: 3,
            method: TransferMethod::StreamRecords,
        };
        assert!(matches!(s.apply(&wrong), Err(MetaError::NotFound(_))));
        s.apply(&MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer: 3, state: ReplicaState::Partial })
            .expect("copying again");
        // A receiving replica that missed a write cannot finish: its copy runs again.
        let dead = MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer: 3, state: ReplicaState::Dead };
        s.apply(&dead).expect("missed a write");
        let finish = MetaOp::FinishTransfer { collection: "a".into(), shard: 0, from: 1, to: 3 };
        assert!(matches!(s.apply(&finish), Err(MetaError::BadRequest(_))));
        s.apply(&MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer: 3, state: ReplicaState::Partial })
            .expect("copy again");
        let finish = MetaOp::FinishTransfer { collection: "a".into(), shard: 0, from: 1, to: 3 };
        s.apply(&finish).expect("finished");
        assert_eq!(s.collections["a"].replicas(0), vec![(3, ReplicaState::Active)]);
        assert!(matches!(s.apply(&finish), Err(MetaError::NotFound(_))), "finished once");
        // A replication, aborted: the partial replica goes, the source stays.
        s.apply(&transfer(1, 2, 1, true)).expect("replication starts");
        s.apply(&MetaOp::AbortTransfer { collection: "a".into(), shard: 1, from: 2, to: 1 }).expect("aborted");
        assert_eq!(s.collections["a"].replicas(1), vec![(2, ReplicaState::Active)]);
        assert!(s.collections["a"].transfers.is_empty());
        // The last replica cannot be dropped; a second one can.
        let drop = MetaOp::DropReplica { collection: "a".into(), shard: 1, peer: 2 };
        assert!(matches!(s.apply(&drop), Err(MetaError::BadRequest(_))));
        s.apply(&transfer(1, 2, 1, true)).expect("replication starts");
        s.apply(&MetaOp::FinishTransfer { collection: "a".into(), shard: 1, from: 2, to: 1 }).expect("done");
        s.apply(&drop).expect("dropped");
        assert_eq!(s.collections["a"].replicas(1), vec![(1, ReplicaState::Active)]);
    }

    #[test]
    fn every_replica_change_bumps_the_shards_routing_version() {
        let mut s = ClusterState::default();
        s.apply(&create("a", BTreeMap::from([(0, vec![1]), (1, vec![2])]))).expect("created");
        let v = |s: &ClusterState, shard| s.collections["a"].version(shard);
        assert_eq!((v(&s, 0), v(&s, 1)), (0, 0));
        s.apply(&transfer(0, 1, 3, true)).expect("starts");
        assert_eq!((v(&s, 0), v(&s, 1)), (1, 0), "only the transferred shard changes");
        s.apply(&MetaOp::FinishTransfer { collection: "a".into(), shard: 0, from: 1, to: 3 }).expect("finished");
        let set = |peer, state| MetaOp::SetReplicaState { collection: "a".into(), shard: 0, peer, state };
        s.apply(&set(3, ReplicaState::Dead)).expect("dead");
        assert_eq!(v(&s, 0), 3);
        // A Dead replica becomes Active only through Partial (a recovery).
        assert!(matches!(s.apply(&set(3, ReplicaState::Active)), Err(MetaError::BadRequest(_))));
        s.apply(&set(3, ReplicaState::Partial)).expect("recovering");
        s.apply(&set(3, ReplicaState::Dead)).expect("missed a write while recovering");
        s.apply(&set(3, ReplicaState::Partial)).expect("recovering again");
        s.apply(&set(3, ReplicaState::Active)).expect("recovered");
        assert_eq!(v(&s, 0), 7);
        // Refused operations change nothing.
        assert!(s.apply(&transfer(0, 2, 4, true)).is_err());
        assert_eq!(v(&s, 0), 7);
        s.apply(&MetaOp::DropReplica { collection: "a".into(), shard: 0, peer: 3 }).expect("dropped");
        s.apply(&MetaOp::ForgetPeer { peer: 2 }).expect("forgotten");
        assert_eq!((v(&s, 0), v(&s, 1)), (8, 1));
        s.apply(&MetaOp::SetPayloadIndex { collection: "a".into(), field: "f".into(), spec: None }).expect("index");
        assert_eq!((v(&s, 0), v(&s, 1)), (8, 1), "metadata that does not route writes leaves versions alone");
    }

    #[test]
    fn shard_keys_own_new_shards_and_take_them_away() {
        let mut s = ClusterState::default();
        let mut custom = config();
        custom.params.sharding_method = Some(qd_core::config::ShardingMethod::Custom);
        let op = MetaOp::CreateCollection {
            name: "c".into(),
            config: Box::new(custom),
            created_at: "t".into(),
            placement: BTreeMap::new(),
        };
        s.apply(&op).expect("created");
        let key = |k: &str| ShardKey::Keyword(k.into());
        let create = |k: &str, placement: BTreeMap<ShardId, Vec<PeerId>>| MetaOp::CreateShardKey {
            collection: "c".into(),
            key: key(k),
            placement,
        };
        s.apply(&create("a", BTreeMap::from([(0, vec![1, 2]), (1, vec![2, 3])]))).expect("key a");
        assert_eq!(s.collections["c"].next_shard_id(), 2);
        assert!(matches!(s.apply(&create("a", BTreeMap::from([(2, vec![1])]))), Err(MetaError::AlreadyExists(_))));
        assert!(matches!(s.apply(&create("b", BTreeMap::from([(1, vec![1])]))), Err(MetaError::BadRequest(_))));
        s.apply(&create("b", BTreeMap::from([(2, vec![3])]))).expect("key b");
        assert_eq!(s.collections["c"].replicas(1), vec![(2, ReplicaState::Active), (3, ReplicaState::Active)]);
        let delete = MetaOp::DeleteShardKey { collection: "c".into(), key: key("a") };
        s.apply(&delete).expect("deleted");
        assert!(matches!(s.apply(&delete), Err(MetaError::NotFound(_))));
        let meta = &s.collections["c"];
        assert_eq!(meta.shards.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(meta.shard_keys, vec![ShardKeyEntry { key: key("b"), shards: vec![2] }]);
        assert_eq!(meta.next_shard_id(), 3, "ids of deleted shards are not reused");
        // Automatic sharding has no keys.
        s.apply(&create("x", BTreeMap::new())).expect_err("no placement");
        s.apply(&MetaOp::CreateCollection {
            name: "auto".into(),
            config: Box::new(config()),
            created_at: "t".into(),
            placement: BTreeMap::from([(0, vec![1])]),
        })
        .expect("auto");
        let op = MetaOp::CreateShardKey {
            collection: "auto".into(),
            key: key("a"),
            placement: BTreeMap::from([(1, vec![1])]),
        };
        assert!(matches!(s.apply(&op), Err(MetaError::BadRequest(m)) if m.contains("custom")));
    }

    #[test]
    fn replicas_held_and_forgotten() {
        let mut s = ClusterState::default();
        s.apply(&create("a", BTreeMap::from([(0, vec![1]), (1, vec![1, 2])]))).expect("created");
        assert!(s.holds_replicas(1) && s.holds_replicas(2));
        assert!(!s.holds_replicas(3));
        s.apply(&MetaOp::ForgetPeer { peer: 2 }).expect("forget");
        assert_eq!(s.collections["a"].replicas(1), vec![(1, ReplicaState::Active)]);
        assert!(!s.holds_replicas(2));
    }
}
