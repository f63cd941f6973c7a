//! Serving shard calls from peers, and recovering a replica that missed writes by streaming
//! the records of an Active replica into it (Qdrant's `stream_records` transfer).
//!
//! A delta copy (`wal_delta`, and the recovery of a Dead replica) first compares digests of
//! the records on both sides, page by page, and fetches only the points that differ, so a
//! replica that was away briefly receives what it missed rather than the whole shard.
//!
//! Recovery keeps writes that arrive during the transfer: the replica is first made Partial
//! (every peer then sends it new writes, and a write routed before that is refused by the
//! replicas as stale and sent again), the ids those writes touch are remembered, streamed
//! records of remembered ids are skipped, since the live write is newer, and live writes that
//! chose their points by filter are replayed over each streamed batch that does not hold them
//! yet: the source says with each batch which such writes it had applied before reading it
//! ([`crate::copied_writes`]). Points the source no longer has are deleted at the end. Only
//! then is the replica Active again; one that missed a write meanwhile was marked Dead and
//! copies again.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use qd_collection::operations::{Record, WithSelectors};
use qd_collection::shard::{Shard, ShardId};
use qd_collection::snapshot::{no_progress, snapshot_shard_fenced};
use qd_collection::{CollectionError, Registry, Result};
use qd_core::PointId;

use crate::copied_writes::OpCursor;
use crate::node::ClusterNode;
use crate::p2p::{PeerReply, PeerRequest, ShardCall, ShardReply, WireError, WireRecord, UNDECODABLE};
use crate::replica_set::ReplicaSet;
use crate::state::{MetaOp, PeerId, ReplicaState, TransferMethod};

/// Points per streamed batch.
const BATCH: usize = 2048;
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes per read of a transfer snapshot.
const SNAPSHOT_CHUNK: u64 = 8 << 20;

/// Run a peer's call on this peer's replica of the shard.
pub fn serve_call(
    registry: &Registry,
    collection: &str,
    set: &ReplicaSet,
    call: ShardCall,
) -> std::result::Result<ShardReply, WireError> {
    match call {
        ShardCall::Update { op, wait, version, op_id } => {
            Ok(ShardReply::Updated(set.apply_routed(op, wait, version, op_id)?))
        }
        ShardCall::CopyBatch { ids, after, window_ms } => {
            let (records, since) = set.read_for_copy(&ids, after, Duration::from_millis(window_ms))?;
            Ok(ShardReply::CopiedBatch {
                records: records.into_iter().map(Into::into).collect(),
                held: since.ids,
                cursor: since.cursor,
                complete: since.complete,
            })
        }
        ShardCall::UpdateOrdered { op, wait } => Ok(ShardReply::Updated(set.lead_write(op, wait)?)),
        ShardCall::SnapshotCreate => {
            let name = format!("transfer-{:016x}.snapshot", rand::random::<u64>());
            let path = transfer_file(registry, &name)?;
            // The writes the snapshot holds: those applied when its moment was taken.
            let mut held = Vec::new();
            let made = std::fs::File::create(&path).map_err(|e| io_error(&path, e)).and_then(|file| {
                let c = registry.get(collection)?;
                let fence = || {
                    let (guard, ids) = set.fence_writes();
                    held = ids;
                    guard
                };
                snapshot_shard_fenced(&c, set.id(), std::io::BufWriter::new(file), &path, &mut no_progress, fence)
            });
            match made {
                Ok((_, size, sha256)) => Ok(ShardReply::SnapshotCreated { name, size, sha256, held }),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(e.into())
                }
            }
        }
        ShardCall::SnapshotRead { name, offset, len } => {
            let path = transfer_file(registry, &name)?;
            let io = |e| WireError::from(io_error(&path, e));
            let mut file = std::fs::File::open(&path).map_err(io)?;
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut bytes = Vec::new();
            file.take(len.min(SNAPSHOT_CHUNK)).read_to_end(&mut bytes).map_err(io)?;
            Ok(ShardReply::Bytes(bytes))
        }
        ShardCall::SnapshotDrop { name } => {
            let path = transfer_file(registry, &name)?;
            let _ = std::fs::remove_file(&path);
            Ok(ShardReply::Done)
        }
        read => Ok(serve_read(set, read)?),
    }
}

/// Where the source keeps a transfer snapshot named `name` (names are ours: anything else is
/// refused, so a peer cannot reach other files).
fn transfer_file(registry: &Registry, name: &str) -> Result<PathBuf> {
    let ours = name.starts_with("transfer-")
        && name.ends_with(".snapshot")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ours {
        return Err(CollectionError::BadRequest(format!("`{name}` is not a transfer snapshot")));
    }
    transfers_dir(registry).map(|dir| dir.join(name))
}

/// The scratch folder of transfer snapshots, sent and received, created when missing.
fn transfers_dir(registry: &Registry) -> Result<PathBuf> {
    let dir = registry.layout().tmp_dir().join("transfers");
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    Ok(dir)
}

fn io_error(path: &Path, e: std::io::Error) -> CollectionError {
    CollectionError::Storage(qd_storage::StorageError::io(path, e))
}

fn serve_read(set: &ReplicaSet, call: ShardCall) -> Result<ShardReply> {
    let local =
        set.ensure_local()?.ok_or_else(|| CollectionError::NotFound("no local replica of this shard".into()))?;
    Ok(match call {
        ShardCall::Update { .. }
        | ShardCall::UpdateOrdered { .. }
        | ShardCall::CopyBatch { .. }
        | ShardCall::SnapshotCreate
        | ShardCall::SnapshotRead { .. }
        | ShardCall::SnapshotDrop { .. } => return Err(CollectionError::Internal("not a read".into())),
        ShardCall::Search(req) => ShardReply::Hits(local.search(&req)?),
        ShardCall::Retrieve { ids, with } => {
            ShardReply::Records(local.retrieve(&ids, &with)?.into_iter().map(Into::into).collect())
        }
        ShardCall::ScrollIds { from, filter, limit } => {
            ShardReply::Ids(local.scroll_ids(from, filter.as_ref(), limit)?)
        }
        ShardCall::Digests { from, limit } => {
            let ids = local.scroll_ids(from, None, limit)?;
            let found: HashMap<PointId, u64> = digests(&*local, &ids)?.into_iter().collect();
            ShardReply::Digests(ids.into_iter().map(|id| (id, found.get(&id).copied())).collect())
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
/// `source`: a Dead replica's recovery (records streamed), or the copy a shard transfer
/// started, by its `method`. Returns the number of points copied.
pub async fn recover(
    node: &Arc<ClusterNode>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
    method: Option<TransferMethod>,
) -> Result<usize> {
    let set = node
        .replica_set(collection, shard)
        .ok_or_else(|| CollectionError::NotFound(format!("shard {shard} of `{collection}` is not loaded here")))?;
    set.begin_tracking(method == Some(TransferMethod::Snapshot));
    take_writes(node, collection, shard).await?;
    let copied = match method {
        Some(TransferMethod::Snapshot) => copy_snapshot(node, &set, collection, shard, source).await?,
        _ => stream(node, &set, collection, shard, source, method).await?,
    };
    let me = node.peer_id();
    if method.is_some() {
        node.commit_op(MetaOp::FinishTransfer { collection: collection.into(), shard, from: source, to: me }).await?;
    } else {
        node.commit_replica_state(collection, shard, ReplicaState::Active).await?;
    }
    set.end_tracking();
    Ok(copied)
}

/// Make this peer's replica Partial (a Dead one takes writes again from here on; a
/// transfer's start made it Partial already), and wait until every peer that can write routes
/// writes to it: a write applied on the source after the copy read that point would be
/// missed otherwise.
async fn take_writes(node: &Arc<ClusterNode>, collection: &str, shard: ShardId) -> Result<()> {
    let index = if node.shared().replicas(collection, shard).contains(&(node.peer_id(), ReplicaState::Partial)) {
        node.applied_index()
    } else {
        node.commit_replica_state(collection, shard, ReplicaState::Partial).await?
    };
    node.wait_peers_applied(index).await;
    Ok(())
}

/// The `snapshot` method: the source snapshots its replica into a file, this peer copies it in
/// chunks, installs it and applies again the live writes it received meanwhile.
async fn copy_snapshot(
    node: &Arc<ClusterNode>,
    set: &Arc<ReplicaSet>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
) -> Result<usize> {
    set.start_copy();
    let (name, size, sha256, held) =
        match call_source(node, source, collection, shard, ShardCall::SnapshotCreate).await? {
            ShardReply::SnapshotCreated { name, size, sha256, held } => (name, size, sha256, held),
            _ => return Err(CollectionError::Internal("mismatched reply to a snapshot".into())),
        };
    let path = transfers_dir(node.registry())?.join(format!("incoming-{:016x}.snapshot", rand::random::<u64>()));
    let copied = download(node, collection, shard, source, &name, size, &path).await;
    let dropped = ShardCall::SnapshotDrop { name };
    if let Err(e) = call_source(node, source, collection, shard, dropped).await {
        tracing::warn!(collection, shard, error = %e, "the source kept a transfer snapshot");
    }
    let installed = match copied {
        Ok(()) => {
            let (set, path) = (set.clone(), path.clone());
            blocking(move || {
                let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
                set.install_snapshot(&mut std::io::BufReader::new(file), size, &sha256, held)?;
                set.local().map_or(Ok(0), |l| l.count(None))
            })
            .await
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&path);
    installed
}

/// Copy the source's transfer snapshot `name` (`size` bytes) into `path`.
async fn download(
    node: &Arc<ClusterNode>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
    name: &str,
    size: u64,
    path: &Path,
) -> Result<()> {
    let mut file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
    let mut offset = 0;
    while offset < size {
        if !node.transfer_running(collection, shard, source, TransferMethod::Snapshot) {
            return Err(CollectionError::Unavailable("the transfer was aborted or restarted".into()));
        }
        let call = ShardCall::SnapshotRead { name: name.to_string(), offset, len: SNAPSHOT_CHUNK };
        let bytes = match call_source(node, source, collection, shard, call).await? {
            ShardReply::Bytes(b) if !b.is_empty() => b,
            ShardReply::Bytes(_) => {
                return Err(CollectionError::Unavailable("the transfer snapshot ended early".into()))
            }
            _ => return Err(CollectionError::Internal("mismatched reply to a snapshot read".into())),
        };
        file.write_all(&bytes).map_err(|e| io_error(path, e))?;
        offset += bytes.len() as u64;
    }
    file.sync_all().map_err(|e| io_error(path, e))?;
    Ok(())
}

/// Copy the source's points into this peer's replica, page by page, for a transfer by
/// `method` (`None`: a Dead replica's recovery). `stream_records` copies every point; a delta
/// (`wal_delta`, and every recovery) first compares record digests and copies only the points
/// this replica lacks or holds otherwise. Returns the number of points copied.
async fn stream(
    node: &Arc<ClusterNode>,
    set: &Arc<ReplicaSet>,
    collection: &str,
    shard: ShardId,
    source: PeerId,
    method: Option<TransferMethod>,
) -> Result<usize> {
    let opener = set.clone();
    let local: Arc<dyn Shard> = blocking(move || opener.ensure_local())
        .await?
        .ok_or_else(|| CollectionError::NotFound(format!("shard {shard} of `{collection}` has no local replica")))?;
    let mut delta = method != Some(TransferMethod::StreamRecords);
    set.start_copy();
    // Where this copy stands in the source's log of filter writes.
    let mut after: Option<OpCursor> = None;
    let mut legacy = false;
    let mut seen: HashSet<PointId> = HashSet::new();
    let mut copied = 0;
    let mut from = None;
    loop {
        if method.is_some_and(|m| !node.transfer_running(collection, shard, source, m)) {
            return Err(CollectionError::Unavailable("the transfer was aborted or restarted".into()));
        }
        let page: Vec<PointId> = if delta {
            let call = ShardCall::Digests { from, limit: BATCH + 1 };
            let mut theirs = match call_source(node, source, collection, shard, call).await {
                Ok(ShardReply::Digests(d)) => d,
                Ok(_) => return Err(CollectionError::Internal("mismatched reply to a digest scroll".into())),
                // A source that cannot answer digests (a peer of an older build) is copied in
                // full; any other failure repeats in the full copy and ends it.
                Err(e) if seen.is_empty() => {
                    tracing::warn!(collection, shard, error = %e, "no record digests from the source; copying every point");
                    delta = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            from = theirs.get(BATCH).map(|(id, _)| *id);
            theirs.truncate(BATCH);
            seen.extend(theirs.iter().map(|(id, _)| *id));
            let ids: Vec<PointId> = theirs.iter().map(|(id, _)| *id).collect();
            let local2 = local.clone();
            let ours: HashMap<PointId, u64> = blocking(move || digests(&*local2, &ids)).await?.into_iter().collect();
            // A point gone from the source meanwhile (`None`) goes with the live delete.
            theirs.into_iter().filter_map(|(id, d)| d.filter(|d| ours.get(&id) != Some(d)).map(|_| id)).collect()
        } else {
            let call = ShardCall::ScrollIds { from, filter: None, limit: BATCH + 1 };
            match call_source(node, source, collection, shard, call).await? {
                ShardReply::Ids(mut ids) => {
                    from = ids.get(BATCH).copied();
                    ids.truncate(BATCH);
                    seen.extend(ids.iter().copied());
                    ids
                }
                _ => return Err(CollectionError::Internal("mismatched reply to a scroll".into())),
            }
        };
        if !page.is_empty() {
            copied += page.len();
            let asked = std::time::Instant::now();
            let (records, held, complete) = if legacy {
                (retrieve(node, source, collection, shard, page).await?, Vec::new(), false)
            } else {
                let window_ms = u64::try_from(set.copy_window().as_millis()).unwrap_or(u64::MAX);
                let call = ShardCall::CopyBatch { ids: page.clone(), after, window_ms };
                match call_source(node, source, collection, shard, call).await {
                    Ok(ShardReply::CopiedBatch { records, held, cursor, complete }) => {
                        after = Some(cursor);
                        (records.into_iter().map(Record::from).collect(), held, complete)
                    }
                    Ok(_) => return Err(CollectionError::Internal("mismatched reply to a copied batch".into())),
                    // A source of an older build does not know the call: it gives plain
                    // records, over which every live write by filter is replayed, as that
                    // build did.
                    Err(e) if after.is_none() && e.to_string().contains(UNDECODABLE) => {
                        tracing::warn!(collection, shard, error = %e, "no copied batches from the source; reading plain records");
                        legacy = true;
                        (retrieve(node, source, collection, shard, page).await?, Vec::new(), false)
                    }
                    Err(e) => return Err(e),
                }
            };
            let (set2, local2) = (set.clone(), local.clone());
            blocking(move || set2.apply_copied(&*local2, records, held, complete, asked)).await?;
        }
        if from.is_none() {
            break;
        }
    }
    // Points the source does not have (deleted while this replica was behind) go too.
    let (set2, local2) = (set.clone(), local.clone());
    blocking(move || set2.delete_uncopied(&*local2, &seen)).await?;
    Ok(copied)
}

/// The whole records of `ids` on the source, by a plain read.
async fn retrieve(
    node: &ClusterNode,
    source: PeerId,
    collection: &str,
    shard: ShardId,
    ids: Vec<PointId>,
) -> Result<Vec<Record>> {
    let with = WithSelectors::whole();
    match call_source(node, source, collection, shard, ShardCall::Retrieve { ids, with }).await? {
        ShardReply::Records(r) => Ok(r.into_iter().map(Into::into).collect()),
        _ => Err(CollectionError::Internal("mismatched reply to a retrieve".into())),
    }
}

/// A digest of each of `ids`' records (vectors and payload) in `local`, for the points it has:
/// 64-bit FNV-1a over the record's MessagePack form, which is the same for the same content
/// on every peer running this build (a peer on another build only makes a delta copy more).
fn digests(local: &dyn Shard, ids: &[PointId]) -> Result<Vec<(PointId, u64)>> {
    let with = WithSelectors::whole();
    local
        .retrieve(ids, &with)?
        .into_iter()
        .map(|r| {
            let id = r.id;
            let bytes = rmp_serde::to_vec(&WireRecord::from(r))
                .map_err(|e| CollectionError::Internal(format!("digest of point {id}: {e}")))?;
            Ok((id, fnv1a(&bytes)))
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}
