//! Recovering a snapshot on a peer of a cluster (`PUT /collections/{name}/snapshots/recover`,
//! its shard form and the uploads): as in Qdrant, a snapshot holds one peer's replicas, and each
//! peer recovers its own. The snapshot's shards replace this peer's replicas of them; its
//! `priority` then says which copy the other replicas of each shard follow.
//!
//! Each shard goes through consensus around the swap: its replica here is made Dead first (out
//! of service, and reserved so no ordinary recovery copies into it meanwhile), the files are
//! swapped, and `PromoteReplica` makes it Active again, with the others Dead for `snapshot`. A
//! failure on the way leaves it Dead, so it recovers from the other replicas as any Dead one.
//! With `replica` and another Active replica, the snapshot would only be overwritten: the
//! replica is just made Dead, and copies that one.
//!
//! A collection the cluster does not know yet is created through consensus first, with the
//! snapshot's config and payload indexes and a fresh placement that puts a replica of every
//! shard on this peer. As in Qdrant, the default `replica` priority then leaves it empty where
//! other replicas exist (they are Active and empty): recover a new collection with `snapshot`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use qd_collection::shard::ShardId;
use qd_collection::{CollectionError, Result, StagedSnapshot};
use qd_core::config::ShardingMethod;

use crate::node::{meta_error, ClusterNode};
use crate::state::{MetaOp, ReplicaState};

/// Which data wins after a recovery where a shard has other replicas (Qdrant's
/// `SnapshotPriority`; `replica` is its default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotPriority {
    /// The snapshot is restored here; nothing else changes.
    NoSync,
    /// The snapshot is the truth: the other replicas copy from this one.
    Snapshot,
    /// The other replicas are the truth: where one is Active, this replica copies from it.
    #[default]
    Replica,
}

/// What to recover: the whole snapshot, or its one shard as shard `into` of the collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverTarget {
    Collection,
    Shard(ShardId),
}

/// How long the consensus steps of a recovery may wait.
const CONSENSUS_WAIT: Duration = Duration::from_secs(30);

impl ClusterNode {
    /// Recover `collection` (or one shard of it) on this peer from the snapshot file at `path`
    /// (verified against `checksum` when given). Returns the shards whose replica here was
    /// replaced.
    pub async fn recover_snapshot(
        self: &Arc<Self>,
        collection: &str,
        target: RecoverTarget,
        path: &Path,
        checksum: Option<&str>,
        priority: SnapshotPriority,
    ) -> Result<Vec<ShardId>> {
        let staged = self.stage(path, checksum).await?;
        if !self.state().state.collections.contains_key(collection) {
            if target != RecoverTarget::Collection {
                return Err(meta_error(crate::state::not_found(collection)));
            }
            self.create_from_snapshot(collection, &staged).await?;
        }
        let pairs = self.shards_to_install(collection, target, &staged)?;
        // Held until every shard is done: no ordinary recovery copies into these replicas
        // meanwhile; released, a replica left Dead recovers as usual.
        let mut reserved = Vec::with_capacity(pairs.len());
        for &(_, into) in &pairs {
            reserved.push(self.reserve_recovery(collection, into).ok_or_else(|| {
                CollectionError::BadRequest(format!(
                    "Bad request: shard {into} of collection `{collection}` is being recovered; try again when it is Active"
                ))
            })?);
        }
        for &(from, into) in &pairs {
            self.recover_shard(collection, &staged, from, into, priority).await?;
        }
        Ok(pairs.into_iter().map(|(_, into)| into).collect())
    }

    /// Replace this peer's replica of shard `into` with shard `from` of the snapshot, in step
    /// with consensus as the module docs say.
    async fn recover_shard(
        &self,
        collection: &str,
        staged: &Arc<StagedSnapshot>,
        from: ShardId,
        into: ShardId,
        priority: SnapshotPriority,
    ) -> Result<()> {
        let me = self.peer_id();
        let replicas = self.shared().replicas(collection, into);
        let other_active = replicas.iter().any(|(p, s)| *p != me && *s == ReplicaState::Active);
        let mine = replicas.iter().find(|(p, _)| *p == me).map(|(_, s)| *s);
        let dead =
            MetaOp::SetReplicaState { collection: collection.into(), shard: into, peer: me, state: ReplicaState::Dead };
        if priority == SnapshotPriority::Replica && other_active {
            tracing::info!(
                collection,
                shard = into,
                "another replica is Active: this one copies it (priority replica)"
            );
            return match mine {
                Some(ReplicaState::Dead) => Ok(()),
                _ => self.propose_within(dead, CONSENSUS_WAIT).await,
            };
        }
        let set = self.replica_set(collection, into).ok_or_else(|| {
            CollectionError::NotFound(format!("shard {into} of `{collection}` is not loaded on peer {me}"))
        })?;
        if mine != Some(ReplicaState::Dead) {
            self.propose_within(dead, CONSENSUS_WAIT).await?;
        }
        let staged = staged.clone();
        tokio::task::spawn_blocking(move || set.install_staged(&staged, from))
            .await
            .map_err(|e| CollectionError::Internal(format!("snapshot recovery stopped: {e}")))??;
        let demote_others = priority == SnapshotPriority::Snapshot;
        let op = MetaOp::PromoteReplica { collection: collection.into(), shard: into, peer: me, demote_others };
        self.propose_within(op, CONSENSUS_WAIT).await?;
        tracing::info!(collection, shard = into, ?priority, "replica recovered from a snapshot");
        Ok(())
    }

    /// Unpack and check the snapshot into scratch files (off the async threads).
    async fn stage(&self, path: &Path, checksum: Option<&str>) -> Result<Arc<StagedSnapshot>> {
        let (layout, path, checksum) =
            (self.registry().layout().clone(), path.to_path_buf(), checksum.map(String::from));
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)
                .map_err(|e| CollectionError::NotFound(format!("Not found: snapshot file {}: {e}", path.display())))?;
            let total = file.metadata().ok().map(|m| m.len());
            StagedSnapshot::stage(&layout, &mut std::io::BufReader::new(file), total, checksum.as_deref()).map(Arc::new)
        })
        .await
        .map_err(|e| CollectionError::Internal(format!("snapshot recovery stopped: {e}")))?
    }

    /// Create `collection` through consensus with the snapshot's config and payload indexes,
    /// placed afresh with a replica of every shard on this peer. Another peer recovering its
    /// own snapshot of it at the same moment may create it first: that is no error.
    async fn create_from_snapshot(&self, collection: &str, staged: &StagedSnapshot) -> Result<()> {
        let config = staged.config().clone();
        if config.params.sharding_method == Some(ShardingMethod::Custom) {
            return Err(CollectionError::BadRequest(format!(
                "Bad request: collection `{collection}` uses custom sharding: create it and its shard keys before \
                 recovering its snapshot in a cluster"
            )));
        }
        let me = self.peer_id();
        let mut placement = self.place(config.params.shard_number, config.params.replication_factor)?;
        for peers in placement.values_mut() {
            if !peers.contains(&me) {
                if let Some(last) = peers.last_mut() {
                    *last = me;
                }
            }
        }
        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let op =
            MetaOp::CreateCollection { name: collection.to_string(), config: Box::new(config), created_at, placement };
        match self.propose_within(op, CONSENSUS_WAIT).await {
            Ok(()) | Err(CollectionError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        for (field, spec) in staged.payload_schema() {
            let op = MetaOp::SetPayloadIndex { collection: collection.to_string(), field, spec: Some(spec) };
            self.propose_within(op, CONSENSUS_WAIT).await?;
        }
        Ok(())
    }

    /// (shard of the snapshot, shard of the collection) pairs to install on this peer, after
    /// checking that the snapshot fits the collection; nothing is installed when it does not.
    fn shards_to_install(
        &self,
        collection: &str,
        target: RecoverTarget,
        staged: &StagedSnapshot,
    ) -> Result<Vec<(ShardId, ShardId)>> {
        let machine = self.state();
        let meta =
            machine.state.collections.get(collection).ok_or_else(|| meta_error(crate::state::not_found(collection)))?;
        let (ours, theirs) = (&meta.config.params, &staged.config().params);
        if ours.vectors != theirs.vectors || ours.sparse_vectors != theirs.sparse_vectors {
            return Err(CollectionError::BadRequest(format!(
                "Bad request: the snapshot's vectors config does not match collection `{collection}`"
            )));
        }
        let me = self.peer_id();
        let pairs: Vec<(ShardId, ShardId)> = match target {
            RecoverTarget::Shard(into) => match staged.shard_ids() {
                [one] => vec![(*one, into)],
                ids => {
                    return Err(CollectionError::BadRequest(format!(
                        "Bad request: a shard snapshot must hold exactly one shard, this one holds {}",
                        ids.len()
                    )))
                }
            },
            RecoverTarget::Collection => {
                if let Some(s) = staged.shard_ids().iter().find(|s| !meta.shards.contains_key(s)) {
                    return Err(CollectionError::BadRequest(format!(
                        "Bad request: the snapshot holds shard {s}, which collection `{collection}` does not have"
                    )));
                }
                let (mine, elsewhere): (Vec<ShardId>, Vec<ShardId>) =
                    staged.shard_ids().iter().partition(|s| meta.replicas(**s).iter().any(|(p, _)| *p == me));
                if !elsewhere.is_empty() {
                    tracing::warn!(collection, shards = ?elsewhere, "snapshot shards without a replica on this peer are left out");
                }
                mine.into_iter().map(|s| (s, s)).collect()
            }
        };
        for &(_, into) in &pairs {
            if !meta.shards.contains_key(&into) {
                return Err(CollectionError::NotFound(format!(
                    "Shard {into} of collection `{collection}` does not exist"
                )));
            }
            if !meta.replicas(into).iter().any(|(p, _)| *p == me) {
                return Err(CollectionError::BadRequest(format!(
                    "Bad request: shard {into} of collection `{collection}` has no replica on peer {me}"
                )));
            }
            if meta.transfers.iter().any(|t| t.shard_id == into) {
                return Err(CollectionError::BadRequest(format!(
                    "Bad request: shard {into} of collection `{collection}` is being copied; wait for the transfer or \
                     abort it first"
                )));
            }
        }
        Ok(pairs)
    }
}
