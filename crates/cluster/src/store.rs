//! Raft's storage over the backend chosen at start (`consensus.sqlite` / `consensus.rocksdb`):
//! the vote, the log, the applied state machine and its latest snapshot. Every change is one
//! synced batch, so what Raft was told is durable is durable on both backends.
//!
//! The state machine is small (collection configs and replica placement): it is kept in
//! memory, written whole after each applied batch, and published on a watch channel that the
//! node follows to bring local collections in line with it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogState, RaftLogReader, RaftSnapshotBuilder, RaftStorage, Snapshot, SnapshotMeta};
use openraft::{AnyError, Entry, EntryPayload, LogId, StorageError, StorageIOError, StoredMembership, Vote};
use parking_lot::Mutex;
use qd_storage::{KvStore, ScanControl, Table, WriteBatch};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::raft_types::{BasicNode, TypeConfig};
use crate::state::{ClusterState, MetaResult, PeerId};

type StorageResult<T> = Result<T, StorageError<PeerId>>;

const VOTE: &[u8] = b"raft/vote";
const PURGED: &[u8] = b"raft/purged";
const MACHINE: &[u8] = b"raft/state_machine";
const SNAPSHOT: &[u8] = b"raft/snapshot";
const PEER_ID: &[u8] = b"peer_id";
const LOG_PREFIX: &[u8] = b"raft/log/";

fn log_key(index: u64) -> Vec<u8> {
    let mut k = LOG_PREFIX.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The applied state machine, as persisted and as snapshots carry it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub last_applied: Option<LogId<PeerId>>,
    pub membership: StoredMembership<PeerId, BasicNode>,
    pub state: ClusterState,
}

/// What the node follows: the state machine after each applied batch.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Index of the last applied log entry (0 before any).
    pub index: u64,
    pub machine: Arc<Machine>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<PeerId, BasicNode>,
    data: Vec<u8>,
}

struct Mem {
    logs: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<PeerId>>,
    vote: Option<Vote<PeerId>>,
    machine: Machine,
    snapshot: Option<StoredSnapshot>,
}

/// Raft's storage; cheap to clone (log readers and snapshot builders are clones).
#[derive(Clone)]
pub struct ConsensusStore {
    kv: Arc<dyn KvStore>,
    mem: Arc<Mutex<Mem>>,
    applied: Arc<watch::Sender<Applied>>,
}

fn io_err(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

fn read_json<T: for<'de> Deserialize<'de>>(kv: &dyn KvStore, key: &[u8]) -> Result<Option<T>, String> {
    match kv.get(Table::Meta, key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| e.to_string()),
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, AnyError> {
    serde_json::to_vec(value).map_err(io_err)
}

impl ConsensusStore {
    /// Read everything persisted in `kv` (an empty database is a fresh peer).
    pub fn open(kv: Arc<dyn KvStore>) -> Result<ConsensusStore, String> {
        let vote = read_json(&*kv, VOTE)?;
        let last_purged = read_json(&*kv, PURGED)?;
        let machine: Machine = read_json(&*kv, MACHINE)?.unwrap_or_default();
        let snapshot = read_json(&*kv, SNAPSHOT)?;
        let mut logs = BTreeMap::new();
        let mut bad = None;
        kv.scan(Table::Index, LOG_PREFIX, None, &mut |_, v| match serde_json::from_slice::<Entry<TypeConfig>>(v) {
            Ok(e) => {
                logs.insert(e.log_id.index, e);
                ScanControl::Continue
            }
            Err(e) => {
                bad = Some(e.to_string());
                ScanControl::Stop
            }
        })
        .map_err(|e| e.to_string())?;
        if let Some(e) = bad {
            return Err(format!("a consensus log entry cannot be read: {e}"));
        }
        let applied =
            Applied { index: machine.last_applied.map_or(0, |l| l.index), machine: Arc::new(machine.clone()) };
        Ok(ConsensusStore {
            kv,
            mem: Arc::new(Mutex::new(Mem { logs, last_purged, vote, machine, snapshot })),
            applied: Arc::new(watch::channel(applied).0),
        })
    }

    /// This peer's id, chosen at random the first time and kept.
    pub fn peer_id(&self) -> Result<PeerId, String> {
        if let Some(id) = read_json::<PeerId>(&*self.kv, PEER_ID)? {
            return Ok(id);
        }
        // Qdrant's peer ids are random u64; keep them JSON-safe (below 2^53) for any client.
        let id: PeerId = rand::random::<u64>() % (1 << 53);
        let mut batch = WriteBatch::new();
        batch.put(Table::Meta, PEER_ID, serde_json::to_vec(&id).map_err(|e| e.to_string())?);
        self.kv.write(batch, true).map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The applied state, followed by the node.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    pub fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    fn commit(&self, batch: WriteBatch) -> Result<(), AnyError> {
        self.kv.write(batch, true).map_err(io_err)
    }

    #[allow(clippy::result_large_err)] // openraft's StorageError: the type its traits require
    fn save_machine(&self, machine: &Machine) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(Table::Meta, MACHINE, to_json(machine).map_err(StorageIOError::write_state_machine)?);
        self.commit(batch).map_err(|e| StorageIOError::write_state_machine(e).into())
    }

    fn publish(&self, machine: &Machine) {
        let index = machine.last_applied.map_or(0, |l| l.index);
        self.applied.send_replace(Applied { index, machine: Arc::new(machine.clone()) });
    }
}

impl RaftLogReader<TypeConfig> for ConsensusStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        Ok(self.mem.lock().logs.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for ConsensusStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let machine = self.mem.lock().machine.clone();
        let data = to_json(&machine).map_err(StorageIOError::read_state_machine)?;
        let last = machine.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: machine.membership.clone(),
            snapshot_id: format!("{}-{}", last.map_or(0, |l| l.leader_id.term), last.map_or(0, |l| l.index)),
        };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        let mut batch = WriteBatch::new();
        batch.put(Table::Meta, SNAPSHOT, to_json(&stored).map_err(StorageIOError::write_snapshot_any)?);
        self.commit(batch).map_err(StorageIOError::write_snapshot_any)?;
        self.mem.lock().snapshot = Some(stored);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

/// Snapshot write errors without a snapshot signature at hand.
trait SnapshotErr {
    fn write_snapshot_any(e: AnyError) -> StorageIOError<PeerId>;
}

impl SnapshotErr for StorageIOError<PeerId> {
    fn write_snapshot_any(e: AnyError) -> StorageIOError<PeerId> {
        StorageIOError::new(openraft::ErrorSubject::Snapshot(None), openraft::ErrorVerb::Write, e)
    }
}

impl RaftStorage<TypeConfig> for ConsensusStore {
    type LogReader = ConsensusStore;
    type SnapshotBuilder = ConsensusStore;

    async fn save_vote(&mut self, vote: &Vote<PeerId>) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(Table::Meta, VOTE, to_json(vote).map_err(StorageIOError::write_vote)?);
        self.commit(batch).map_err(StorageIOError::write_vote)?;
        self.mem.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<PeerId>>> {
        Ok(self.mem.lock().vote)
    }

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let mem = self.mem.lock();
        let last = mem.logs.values().next_back().map(|e| e.log_id).or(mem.last_purged);
        Ok(LogState { last_purged_log_id: mem.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn append_to_log<I>(&mut self, entries: I) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut batch = WriteBatch::new();
        for e in &entries {
            batch.put(Table::Index, log_key(e.log_id.index), to_json(e).map_err(StorageIOError::write_logs)?);
        }
        self.commit(batch).map_err(StorageIOError::write_logs)?;
        let mut mem = self.mem.lock();
        for e in entries {
            mem.logs.insert(e.log_id.index, e);
        }
        Ok(())
    }

    async fn delete_conflict_logs_since(&mut self, log_id: LogId<PeerId>) -> StorageResult<()> {
        let doomed: Vec<u64> = self.mem.lock().logs.range(log_id.index..).map(|(i, _)| *i).collect();
        let mut batch = WriteBatch::new();
        for i in &doomed {
            batch.delete(Table::Index, log_key(*i));
        }
        self.commit(batch).map_err(StorageIOError::write_logs)?;
        let mut mem = self.mem.lock();
        for i in doomed {
            mem.logs.remove(&i);
        }
        Ok(())
    }

    async fn purge_logs_upto(&mut self, log_id: LogId<PeerId>) -> StorageResult<()> {
        let doomed: Vec<u64> = self.mem.lock().logs.range(..=log_id.index).map(|(i, _)| *i).collect();
        let mut batch = WriteBatch::new();
        for i in &doomed {
            batch.delete(Table::Index, log_key(*i));
        }
        batch.put(Table::Meta, PURGED, to_json(&log_id).map_err(StorageIOError::write_logs)?);
        self.commit(batch).map_err(StorageIOError::write_logs)?;
        let mut mem = self.mem.lock();
        for i in doomed {
            mem.logs.remove(&i);
        }
        mem.last_purged = Some(log_id);
        Ok(())
    }

    async fn last_applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<PeerId>>, StoredMembership<PeerId, BasicNode>)> {
        let mem = self.mem.lock();
        Ok((mem.machine.last_applied, mem.machine.membership.clone()))
    }

    async fn apply_to_state_machine(&mut self, entries: &[Entry<TypeConfig>]) -> StorageResult<Vec<MetaResult>> {
        let mut machine = self.mem.lock().machine.clone();
        let mut results = Vec::with_capacity(entries.len());
        for e in entries {
            machine.last_applied = Some(e.log_id);
            match &e.payload {
                EntryPayload::Blank => results.push(MetaResult::default()),
                EntryPayload::Normal(op) => {
                    let error = machine.state.apply(op).err();
                    if let Some(err) = &error {
                        tracing::debug!(index = e.log_id.index, ?err, "consensus operation refused");
                    }
                    results.push(MetaResult { error });
                }
                EntryPayload::Membership(m) => {
                    machine.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    results.push(MetaResult::default());
                }
            }
        }
        self.save_machine(&machine)?;
        self.mem.lock().machine = machine.clone();
        self.publish(&machine);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<PeerId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let machine: Machine = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_state_machine(io_err(format!("snapshot cannot be read: {e}"))))?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let mut batch = WriteBatch::new();
        batch.put(Table::Meta, MACHINE, to_json(&machine).map_err(StorageIOError::write_state_machine)?);
        batch.put(Table::Meta, SNAPSHOT, to_json(&stored).map_err(StorageIOError::write_snapshot_any)?);
        self.commit(batch).map_err(StorageIOError::write_state_machine)?;
        {
            let mut mem = self.mem.lock();
            mem.machine = machine.clone();
            mem.snapshot = Some(stored);
        }
        self.publish(&machine);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let mem = self.mem.lock();
        Ok(mem
            .snapshot
            .as_ref()
            .map(|s| Snapshot { meta: s.meta.clone(), snapshot: Box::new(Cursor::new(s.data.clone())) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MetaOp;
    use openraft::{CommittedLeaderId, Membership};

    fn store(dir: &std::path::Path, kind: qd_storage::BackendKind) -> ConsensusStore {
        let path = dir.join(match kind {
            qd_storage::BackendKind::Sqlite => "c.sqlite",
            qd_storage::BackendKind::Rocksdb => "c.rocksdb",
        });
        ConsensusStore::open(qd_storage::open_store(kind, &path).expect("opens")).expect("reads")
    }

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 7), index), payload }
    }

    #[tokio::test]
    async fn everything_raft_was_told_survives_reopening_on_both_backends() {
        for kind in [qd_storage::BackendKind::Sqlite, qd_storage::BackendKind::Rocksdb] {
            let dir = tempfile::tempdir().expect("tempdir");
            let peer;
            {
                let mut s = store(dir.path(), kind);
                peer = s.peer_id().expect("id");
                s.save_vote(&Vote::new(3, 7)).await.expect("vote");
                let members = Membership::new(vec![std::collections::BTreeSet::from([7])], None);
                let alias = MetaOp::UpdateAliases(vec![]);
                let del = MetaOp::DeleteCollection { name: "missing".into() };
                let entries = vec![
                    entry(1, EntryPayload::Membership(members)),
                    entry(2, EntryPayload::Normal(alias)),
                    entry(3, EntryPayload::Normal(del)),
                ];
                s.append_to_log(entries.clone()).await.expect("append");
                let results = s.apply_to_state_machine(&entries[..3]).await.expect("apply");
                assert!(results[1].error.is_none());
                assert!(results[2].error.is_some(), "deleting a missing collection is refused");
                s.append_to_log(vec![entry(4, EntryPayload::Blank)]).await.expect("append");
                s.delete_conflict_logs_since(LogId::new(CommittedLeaderId::new(1, 7), 4)).await.expect("truncate");
                s.purge_logs_upto(LogId::new(CommittedLeaderId::new(1, 7), 1)).await.expect("purge");
                s.build_snapshot().await.expect("snapshot");
            }
            let mut s = store(dir.path(), kind);
            assert_eq!(s.peer_id().expect("id"), peer, "the peer id is kept");
            assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(3, 7)));
            let state = s.get_log_state().await.expect("state");
            assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
            assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
            let logs = s.try_get_log_entries(0..10).await.expect("logs");
            assert_eq!(logs.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![2, 3]);
            let (applied, membership) = s.last_applied_state().await.expect("applied");
            assert_eq!(applied.map(|l| l.index), Some(3));
            assert!(membership.membership().voter_ids().any(|v| v == 7));
            let snap = s.get_current_snapshot().await.expect("snapshot").expect("present");
            assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));
            assert_eq!(s.applied().index, 3);
        }
    }
}
