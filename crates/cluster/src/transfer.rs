//! Serving shard calls from peers, and recovering a replica that missed writes by streaming
//! the records of an Active replica into it (Qdrant's `stream_records` transfer).
//!
//! Recovery keeps writes that arrive during the transfer: the replica is first made Partial
//! (every peer then sends it new writes, and a write routed before that is refused by the
//! replicas as stale and sent again), the ids those writes touch are remembered, streamed
//! records of remembered ids are skipped, since the live write is newer, and live writes that
//! chose their points by filter are replayed over each streamed batch. Points the source no
//! longer has are deleted at the end. Only then is the replica Active again; one that missed a
//! write meanwhile was marked Dead and copies again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use qd_collection::operations::{Record, WithSelectors};
use qd_collection::shard::{Shard, ShardId};
use qd_collection::{CollectionError, Result};
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::PointId;

use crate::node::ClusterNode;
use crate::p2p::{PeerReply, PeerRequest, ShardCall, ShardReply, WireError};
use crate::replica_set::ReplicaSet;
use crate::state::{MetaOp, PeerId, ReplicaState};

/// Points per streamed batch.
const BATCH: usize = 2048;
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Run a peer's call on this peer's replica of the shard.
pub fn serve_call(set: &ReplicaSet, call: ShardCall) -> std::result::Result<ShardReply, WireError> {
    match call {
        ShardCall::Update { op, wait, version } => Ok(ShardReply::Updated(set.apply_routed(op, wait, version)?)),
        read => Ok(serve_read(set, read)?),
    }
}

fn serve_read(set: &ReplicaSet, call: ShardCall) -> Result<ShardReply> {
    let local =
        set.ensure_local()?.ok_or_else(|| CollectionError::NotFound("no local replica of this shard".into()))?;
    Ok(match call {
        ShardCall::Update { .. } => return Err(CollectionError::Internal("a write is not a read".into())),
        ShardCall::Search(req) => ShardReply::Hits(local.search(&req)?),
        ShardCall::Retrieve { ids, with } => {
            ShardReply::Records(local.retrieve(&ids, &with)?.into_iter().map(Into::into).collect())
        }
        ShardCall::ScrollIds { from, filter, limit } => {
            ShardReply::Ids(local.scroll_ids(from, filter.as_ref(), limit)?)
        }
        ShardCall::Count { filter } => ShardReply::Count(local.count(filter.as_ref())?),
        ShardCall::OrderEntries { key, filter } => {
            ShardReply::OrderEntries(local.order_entries(&key, filter.as_ref())?)
        }
        ShardCall::Facet { key, filter } => ShardReply::Facet(local.facet(&key, filter.as_ref())?),
        ShardCall::SparseDf { vector, indices } => {
            let (df, n) = local.sparse_df(&vector, &indices)?;
            ShardReply::SparseDf(df, n)
        }
        ShardCall::Stats => ShardReply::Stats(local.stats()),
    })
}

async fn call_source(
    node: &ClusterNode,
    source: PeerId,
    collection: &str,
    shard: ShardId,
    call: ShardCall,
) -> Result<ShardReply> {
    let uri = node
        .shared()
        .uri_of(source)
        .ok_or_else(|| CollectionError::Unavailable(format!("peer {source} is not in the cluster")))?;
    let request = PeerRequest::Shard { collection: collection.to_string(), shard, call };
    match node.shared().clients.call(&uri, request, CALL_TIMEOUT).await? {
        PeerReply::Shard(reply) => Ok(reply),
        other => Err(CollectionError::Internal(format!("unexpected answer {other:?}"))),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| CollectionError::Internal(e.to_string()))?
}

/// Bring this peer's replica of `collection`/`shard` up to date from the Active replica on
/// `source`: a Dead replica's recovery, or (`transfer`) the copy a shard transfer started.
/// Returns the number of points streamed.
pub async fn recover(
    node: &Arc<ClusterNode>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
    transfer: bool,
) -> Result<usize> {
    let set = node
        .replica_set(collection, shard)
        .ok_or_else(|| CollectionError::NotFound(format!("shard {shard} of `{collection}` is not loaded here")))?;
    let opener = set.clone();
    let local = blocking(move || opener.ensure_local())
        .await?
        .ok_or_else(|| CollectionError::NotFound(format!("shard {shard} of `{collection}` has no local replica")))?;
    set.begin_tracking();
    let streamed = stream(node, &set, &local, collection, shard, source, transfer).await?;
    let me = node.peer_id();
    if transfer {
        node.commit_op(MetaOp::FinishTransfer { collection: collection.into(), shard, from: source, to: me }).await?;
    } else {
        node.commit_replica_state(collection, shard, ReplicaState::Active).await?;
    }
    set.end_tracking();
    Ok(streamed)
}

async fn stream(
    node: &Arc<ClusterNode>,
    set: &Arc<ReplicaSet>,
    local: &Arc<dyn Shard>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
    transfer: bool,
) -> Result<usize> {
    let index = if node.shared().replicas(collection, shard).contains(&(node.peer_id(), ReplicaState::Partial)) {
        // A transfer's start (or an earlier try) made this replica Partial already.
        node.applied_index()
    } else {
        // Dead: it takes writes again from here on.
        node.commit_replica_state(collection, shard, ReplicaState::Partial).await?
    };
    // Every peer that can write must route writes here before the stream starts, or a write
    // applied on the source after the stream read that point would be missed.
    node.wait_peers_applied(index).await;
    let with = WithSelectors { payload: PayloadSelector::All, vector: VectorSelector::All };
    let mut seen: HashSet<PointId> = HashSet::new();
    let mut from = None;
    loop {
        if transfer && !node.transfer_running(collection, shard, source) {
            return Err(CollectionError::Unavailable("the transfer was aborted".into()));
        }
        let ids = match call_source(
            node,
            source,
            collection,
            shard,
            ShardCall::ScrollIds { from, filter: None, limit: BATCH + 1 },
        )
        .await?
        {
            ShardReply::Ids(ids) => ids,
            _ => return Err(CollectionError::Internal("mismatched reply to a scroll".into())),
        };
        let (page, next) = if ids.len() > BATCH { (&ids[..BATCH], Some(ids[BATCH])) } else { (&ids[..], None) };
        if !page.is_empty() {
            let call = ShardCall::Retrieve { ids: page.to_vec(), with: with.clone() };
            let records: Vec<Record> = match call_source(node, source, collection, shard, call).await? {
                ShardReply::Records(r) => r.into_iter().map(Into::into).collect(),
                _ => return Err(CollectionError::Internal("mismatched reply to a retrieve".into())),
            };
            seen.extend(page.iter().copied());
            let (set2, local2) = (set.clone(), local.clone());
            blocking(move || set2.apply_copied(&*local2, records)).await?;
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    // Points the source does not have (deleted while this replica was behind) go too.
    let (set2, local2) = (set.clone(), local.clone());
    let seen_count = seen.len();
    blocking(move || set2.delete_uncopied(&*local2, &seen)).await?;
    Ok(seen_count)
}
