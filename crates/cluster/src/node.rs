//! This peer in cluster mode: the Raft instance, the P2P server, joining a cluster, proposing
//! metadata changes (forwarded to the leader when this peer is not it), and keeping local
//! collections in line with the applied cluster state (create, delete, payload indexes,
//! aliases), shard by shard placed on this peer or reached on others.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{
    ChangeMembershipError, ClientWriteError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, ChangeMembers, ServerState};
use parking_lot::Mutex;
use qd_collection::registry::{named_vectors, ShardPlacement};
use qd_collection::shard::{Shard, ShardId};
use qd_collection::shard_set::ShardKey;
use qd_collection::{AliasAction, CollectionError, LocalShards, Registry};
use serde::Serialize;
use tokio::sync::watch;

use crate::p2p::{P2pError, PeerClients, PeerHandler, PeerReply, PeerRequest, PeerService, ShardCall, WireError};
use crate::raft_types::{BasicNode, Raft, TypeConfig};
use crate::replica_set::ReplicaSet;
use crate::state::{
    place_shards, ClusterState, MetaError, MetaOp, PeerId, ReplicaState, ShardTransfer, TransferMethod,
};
use crate::store::{Applied, ConsensusStore};

/// How long Raft messages and forwarded proposals may take.
const RAFT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a proposal waits for a leader and for this peer to apply it.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How this peer takes part in a cluster (from `--uri`, `--bootstrap` and `cluster.*`).
#[derive(Clone)]
pub struct ClusterOptions {
    /// This peer's P2P URI as other peers reach it.
    pub uri: String,
    /// A member to join through; `None` starts a new cluster (or restarts a known peer).
    pub bootstrap: Option<String>,
    /// Raft heartbeat period; elections start after 5-10 of them without a leader.
    pub tick: Duration,
    /// With `cluster.p2p.enable_tls`: how connections to peers' `https://` URIs are opened
    /// (this peer's certificate, the cluster's CA).
    pub tls: Option<tokio_rustls::TlsConnector>,
}

/// What replica sets need from the node: the applied state, peer connections, a runtime.
pub struct NodeShared {
    pub me: PeerId,
    pub clients: PeerClients,
    applied: watch::Receiver<Applied>,
    handle: tokio::runtime::Handle,
    dead: tokio::sync::mpsc::UnboundedSender<DeadReport>,
    /// Held shared by each write applied to a local replica (from its routing check to its
    /// end) and taken exclusively once a newly applied cluster state is in force, before this
    /// peer reports that state applied: a write checked against an older replica set cannot
    /// land after a peer that waits for this one (a transfer's copy) has started.
    pub(crate) routing_gate: parking_lot::RwLock<()>,
    /// Whether this peer has applied what the leader had applied when this peer asked, after
    /// it started. Before that, the replica states it holds may be stale (a restart from its
    /// stored state: a replica marked Dead meanwhile still reads as Active), so its replicas
    /// serve reads only when no other peer can.
    caught_up: std::sync::atomic::AtomicBool,
}

/// A replica that missed a write, and where to answer once consensus marked it Dead.
pub(crate) struct DeadReport {
    collection: String,
    shard: ShardId,
    peer: PeerId,
    done: tokio::sync::oneshot::Sender<Result<(), CollectionError>>,
}

impl NodeShared {
    pub fn replicas(&self, collection: &str, shard: ShardId) -> Vec<(PeerId, ReplicaState)> {
        self.routing(collection, shard).0
    }

    /// The method of the transfer into this peer's replica of a shard, if one runs.
    pub fn transfer_into(&self, collection: &str, shard: ShardId) -> Option<TransferMethod> {
        let applied = self.applied.borrow();
        applied.machine.state.collections.get(collection)?.transfer_to(shard, self.me).map(|t| t.method)
    }

    /// See [`NodeShared::caught_up`](struct.NodeShared.html#structfield.caught_up).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The replicas of a shard and the routing version they are at, read together.
    pub fn routing(&self, collection: &str, shard: ShardId) -> (Vec<(PeerId, ReplicaState)>, u64) {
        let applied = self.applied.borrow();
        match applied.machine.state.collections.get(collection) {
            Some(c) => (c.replicas(shard), c.version(shard)),
            None => (Vec::new(), 0),
        }
    }

    /// The routing version of a shard (0 for one this peer does not know).
    pub fn version(&self, collection: &str, shard: ShardId) -> u64 {
        self.applied.borrow().machine.state.collections.get(collection).map_or(0, |c| c.version(shard))
    }

    /// Wait (blocking) until this peer applied routing version `version` of the shard; false
    /// when `deadline` passes first.
    pub fn wait_version(&self, collection: &str, shard: ShardId, version: u64, deadline: std::time::Instant) -> bool {
        let mut applied = self.applied.clone();
        let reached =
            |a: &Applied| a.machine.state.collections.get(collection).is_some_and(|c| c.version(shard) >= version);
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // The timer is made inside the runtime: a caller's thread (a fan-out worker) has none.
        self.block_on(async move { matches!(tokio::time::timeout(left, applied.wait_for(reached)).await, Ok(Ok(_))) })
    }

    pub fn uri_of(&self, peer: PeerId) -> Option<String> {
        self.applied.borrow().machine.membership.membership().get_node(&peer).map(|n| n.addr.clone())
    }

    pub fn write_consistency_factor(&self, collection: &str) -> u32 {
        self.applied
            .borrow()
            .machine
            .state
            .collections
            .get(collection)
            .map_or(1, |c| c.config.params.write_consistency_factor)
    }

    /// Run a future to completion from blocking code (a request on the blocking pool, or a
    /// fan-out thread).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.handle.block_on(f)),
            Err(_) => self.handle.block_on(f),
        }
    }

    /// A replica on `peer` missed a write: have consensus mark it Dead, and wait until it is
    /// (the write may be acknowledged only then: otherwise a replica that missed it could keep
    /// serving reads, and nothing would ever recover it).
    pub fn mark_dead(&self, collection: &str, shard: ShardId, peer: PeerId) -> Result<(), CollectionError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let report = DeadReport { collection: collection.to_string(), shard, peer, done };
        self.dead.send(report).map_err(|_| CollectionError::ShuttingDown)?;
        self.block_on(answer).map_err(|_| CollectionError::ShuttingDown)?
    }
}

/// A replica no recovery may copy into while this lives (see [`ClusterNode::reserve_recovery`]).
pub(crate) struct RecoveryGuard {
    node: Arc<ClusterNode>,
    key: (String, ShardId),
}

impl Drop for RecoveryGuard {
    fn drop(&mut self) {
        self.node.recovering.lock().remove(&self.key);
        self.node.start_recoveries();
    }
}

/// This peer in a cluster.
pub struct ClusterNode {
    shared: Arc<NodeShared>,
    raft: Raft,
    store: ConsensusStore,
    registry: Arc<Registry>,
    options: ClusterOptions,
    replica_sets: Mutex<HashMap<(String, ShardId), Weak<ReplicaSet>>>,
    /// Index of the last applied entry local collections reflect.
    reconciled: watch::Sender<u64>,
    recovering: Mutex<HashSet<(String, ShardId)>>,
    /// Joins and removals are committed one at a time (Raft allows one change in flight).
    membership_changes: tokio::sync::Mutex<()>,
    /// Local collections are brought in line by one caller at a time (the follower of the
    /// applied state, `POST /cluster/recover`).
    reconciling: Mutex<()>,
}

/// Errors of consensus operations, as the API reports them.
pub fn meta_error(e: MetaError) -> CollectionError {
    match e {
        MetaError::BadRequest(m) => CollectionError::BadRequest(m),
        MetaError::NotFound(m) => CollectionError::NotFound(m),
        MetaError::AlreadyExists(m) => CollectionError::AlreadyExists(m),
    }
}

struct Placement(Weak<ClusterNode>);

impl ShardPlacement for Placement {
    fn is_local(&self, collection: &str, shard: ShardId) -> bool {
        self.0.upgrade().is_some_and(|n| n.shared.replicas(collection, shard).iter().any(|(p, _)| *p == n.shared.me))
    }

    fn wrap(
        &self,
        collection: &str,
        shard: ShardId,
        local: Option<Arc<dyn Shard>>,
        files: Arc<LocalShards>,
    ) -> Arc<dyn Shard> {
        match self.0.upgrade() {
            Some(node) => {
                let set = Arc::new(ReplicaSet::new(collection, shard, local, Some(files), node.shared.clone()));
                node.replica_sets.lock().insert((collection.to_string(), shard), Arc::downgrade(&set));
                set
            }
            None => match local {
                Some(l) => l,
                None => Arc::new(ReplicaSet::new(collection, shard, None, None, dead_shared())),
            },
        }
    }
}

/// A stand-in for a node that is gone (shutdown): its shards answer Unavailable.
fn dead_shared() -> Arc<NodeShared> {
    let (tx, _) = tokio::sync::mpsc::unbounded_channel();
    Arc::new(NodeShared {
        me: 0,
        clients: PeerClients::new(None),
        applied: watch::channel(Applied::default()).1,
        handle: tokio::runtime::Handle::current(),
        dead: tx,
        routing_gate: Default::default(),
        caught_up: Default::default(),
    })
}

/// `GET /cluster`'s figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub peer_id: PeerId,
    pub peers: BTreeMap<String, PeerInfo>,
    pub raft_info: RaftInfo,
    /// Calls to peers that got no answer, by peer URI.
    pub message_send_failures: BTreeMap<String, crate::p2p::SendFailures>,
}

/// `GET /collections/{name}/cluster`'s figures.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionClusterInfo {
    pub peer_id: PeerId,
    pub shard_count: usize,
    pub local_shards: Vec<LocalShardInfo>,
    pub remote_shards: Vec<RemoteShardInfo>,
    pub shard_transfers: Vec<ShardTransfer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalShardInfo {
    pub shard_id: ShardId,
    /// Custom sharding (single node only so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<serde_json::Value>,
    pub points_count: usize,
    pub state: ReplicaState,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteShardInfo {
    pub shard_id: ShardId,
    pub peer_id: PeerId,
    pub state: ReplicaState,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub uri: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RaftInfo {
    pub term: u64,
    pub commit: u64,
    pub pending_operations: u64,
    pub leader: Option<PeerId>,
    pub role: Option<&'static str>,
    pub is_voter: bool,
}

impl ClusterNode {
    /// Open the consensus database, attach to `registry` (before it loads collections), serve
    /// peers on the connections of `incoming` (the P2P port's, TLS already terminated when on),
    /// start Raft, and join or form the cluster.
    pub async fn start<I, IO, IE>(
        registry: Arc<Registry>,
        options: ClusterOptions,
        incoming: I,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Arc<ClusterNode>, String>
    where
        I: tonic::codegen::tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
        IO::ConnectInfo: Clone + Send + Sync + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let layout = registry.layout();
        let kv = qd_storage::open_store(layout.backend(), &layout.consensus_path()).map_err(|e| e.to_string())?;
        let store = ConsensusStore::open(kv)?;
        let me = store.peer_id()?;
        // Stored peer URIs keep their scheme: with the TLS setting switched, no peer could be
        // reached (and a restarted peer could not announce a new URI either).
        for (peer, node) in store.applied().machine.membership.membership().nodes() {
            if let Some(problem) = crate::p2p_tls::uri_problem(&node.addr, options.tls.is_some()) {
                return Err(format!(
                    "peer {peer} of this cluster is known at {:?}: {problem}; cluster.p2p.enable_tls cannot be \
                     switched on or off for an existing cluster",
                    node.addr
                ));
            }
        }
        let (dead_tx, dead_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(NodeShared {
            me,
            clients: PeerClients::new(options.tls.clone()),
            applied: store.subscribe(),
            handle: tokio::runtime::Handle::current(),
            dead: dead_tx,
            routing_gate: Default::default(),
            caught_up: Default::default(),
        });
        let config = openraft::Config {
            cluster_name: "qdrant".into(),
            heartbeat_interval: options.tick.as_millis() as u64,
            election_timeout_min: options.tick.as_millis() as u64 * 5,
            election_timeout_max: options.tick.as_millis() as u64 * 10,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(500),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("consensus settings: {e}"))?;
        let (log_store, state_machine) = openraft::storage::Adaptor::new(store.clone());
        let network = Network { shared: shared.clone() };
        let raft = Raft::new(me, Arc::new(config), network, log_store, state_machine)
            .await
            .map_err(|e| format!("consensus cannot start: {e}"))?;
        let initial = store.applied().index;
        let node = Arc::new(ClusterNode {
            shared,
            raft,
            store,
            registry: registry.clone(),
            options: options.clone(),
            replica_sets: Mutex::new(HashMap::new()),
            reconciled: watch::channel(initial).0,
            recovering: Mutex::new(HashSet::new()),
            membership_changes: tokio::sync::Mutex::new(()),
            reconciling: Mutex::new(()),
        });
        registry.set_placement(Arc::new(Placement(Arc::downgrade(&node))));

        let service = PeerService(node.clone());
        tokio::spawn(async move {
            // Keepalive pings release the connections of peers that went away silently.
            let served = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "P2P server stopped");
            }
        });
        tokio::spawn(follow_dead_reports(Arc::downgrade(&node), dead_rx));

        let initialized = node.raft.is_initialized().await.map_err(|e| e.to_string())?;
        if !initialized {
            match &options.bootstrap {
                None => {
                    let members = BTreeMap::from([(me, BasicNode::new(options.uri.clone()))]);
                    node.raft.initialize(members).await.map_err(|e| format!("cannot form a cluster: {e}"))?;
                    tracing::info!(peer_id = me, uri = %options.uri, "formed a new cluster");
                }
                Some(bootstrap) => node.join(bootstrap).await?,
            }
        } else {
            tracing::info!(peer_id = me, "rejoining the cluster from the stored state");
            node.announce_uri();
        }
        Ok(node)
    }

    /// Begin following the applied state (call once collections are loaded).
    pub fn follow(self: &Arc<Self>) {
        self.watch_catch_up();
        let mut rx = self.store.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(node) = weak.upgrade() else { return };
                let applied = rx.borrow_and_update().clone();
                let n = node.clone();
                let done = tokio::task::spawn_blocking(move || {
                    n.reconcile(&applied.machine.state);
                    // Writes routed by an older replica set finish before this state counts as applied.
                    drop(n.shared.routing_gate.write());
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "applying cluster state locally failed");
                }
                node.reconciled.send_replace(applied.index);
                node.start_recoveries();
                drop(node);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Mark this peer caught up once it applied what the leader had applied (asked again every
    /// 100 ms until a leader answers).
    fn watch_catch_up(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(node) = weak.upgrade() else { return };
                if node.caught_up_with_leader().await {
                    node.shared.caught_up.store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(peer_id = node.shared.me, "caught up with the leader");
                    return;
                }
                drop(node);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// Whether this peer has applied what a leader a majority follows had applied (waiting up
    /// to 10 s for it); false while no such leader answers.
    async fn caught_up_with_leader(&self) -> bool {
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(leader) = leader else { return false };
        if leader == self.shared.me {
            // Only a leader a majority still follows holds every committed entry (a peer cut
            // off may still believe it leads).
            return matches!(tokio::time::timeout(RAFT_TIMEOUT, self.raft.ensure_linearizable()).await, Ok(Ok(_)));
        }
        let Some(uri) = self.shared.uri_of(leader) else { return false };
        let target = match self.shared.clients.call(&uri, PeerRequest::AppliedIndex, RAFT_TIMEOUT).await {
            Ok(PeerReply::Applied(i)) => i,
            _ => return false,
        };
        let mut rx = self.reconciled.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|i| *i >= target)).await;
        matches!(reached, Ok(Ok(_)))
    }

    pub fn peer_id(&self) -> PeerId {
        self.shared.me
    }

    /// `POST /cluster/recover`: bring this peer in line with its peers now. It waits until it
    /// has applied what the leader had applied, applies the agreed state to local collections
    /// again (retrying what failed before: a collection, vector, payload index, shard key or
    /// replica that could not be created or removed here), and starts the recovery of its Dead
    /// replicas. Unavailable while no leader answers or the state is not reached in time.
    pub async fn synchronize(self: &Arc<Self>) -> Result<(), CollectionError> {
        if !self.caught_up_with_leader().await {
            return Err(CollectionError::Unavailable(
                "cannot synchronize this peer: no leader answers, or its applied state was not reached within \
                 10 s"
                    .into(),
            ));
        }
        let node = self.clone();
        tokio::task::spawn_blocking(move || {
            let applied = node.store.applied();
            node.reconcile(&applied.machine.state);
        })
        .await
        .map_err(|e| CollectionError::Internal(format!("applying the cluster state failed: {e}")))?;
        self.start_recoveries();
        Ok(())
    }

    async fn join(&self, bootstrap: &str) -> Result<(), String> {
        let request = || PeerRequest::Join { peer_id: self.shared.me, uri: self.options.uri.clone() };
        let mut last = String::new();
        for attempt in 0..30 {
            match self.shared.clients.call(bootstrap, request(), PROPOSE_TIMEOUT).await {
                Ok(_) => {
                    tracing::info!(peer_id = self.shared.me, bootstrap, "joined the cluster");
                    return Ok(());
                }
                Err(P2pError::Remote(e)) => return Err(format!("the cluster at {bootstrap} refused this peer: {e:?}")),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(attempt, error = %last, "bootstrap peer not reachable yet; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(format!("cannot join the cluster through {bootstrap}: {last}"))
    }

    /// A restarted member whose `--uri` is not the one the cluster knows asks, through any
    /// other member, to be reached at the new one (retried in the background until it is
    /// recorded or refused): the others cannot reach it at the old URI meanwhile.
    fn announce_uri(self: &Arc<Self>) {
        let me = self.shared.me;
        let uri = self.options.uri.clone();
        match self.shared.uri_of(me) {
            Some(known) if known != uri => {
                tracing::warn!(peer_id = me, from = %known, to = %uri, "this peer's URI changed; telling the cluster")
            }
            _ => return,
        }
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(n) = node.upgrade() else { return };
                if n.shared.uri_of(me).as_deref() == Some(uri.as_str()) {
                    tracing::info!(peer_id = me, uri = %uri, "the cluster reaches this peer at its new URI");
                    return;
                }
                match n.ask_to_move(&uri).await {
                    Ok(()) => {}
                    // Refused (another peer answers at the old URI with this id, or the new URI
                    // is not this peer's): asking again would not help.
                    Err(e @ (CollectionError::BadRequest(_) | CollectionError::NotFound(_))) => {
                        tracing::error!(error = %e, "the cluster refused this peer's new URI");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot record the new URI yet; retrying"),
                }
                drop(n);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// One round of asking the cluster to reach this peer at `uri`: here when this peer leads
    /// (a restarted peer often wins the next election), else through each other member in turn.
    async fn ask_to_move(&self, uri: &str) -> Result<(), CollectionError> {
        let me = self.shared.me;
        if self.raft.metrics().borrow().current_leader == Some(me) {
            return self.on_leader(LeaderAction::Moved(me, uri.to_string()), PROPOSE_TIMEOUT).await.map(|_| ());
        }
        let mut last = CollectionError::Unavailable("no other member is known".into());
        for other in self.peers().into_iter().filter(|p| *p != me).filter_map(|p| self.shared.uri_of(p)) {
            let request = PeerRequest::MovedTo { peer_id: me, uri: uri.to_string() };
            match self.shared.clients.call(&other, request, PROPOSE_TIMEOUT).await {
                Ok(_) => return Ok(()),
                Err(P2pError::Remote(e)) => last = e.into(),
                Err(e) => last = CollectionError::Unavailable(e.to_string()),
            }
            if matches!(last, CollectionError::BadRequest(_) | CollectionError::NotFound(_)) {
                return Err(last);
            }
        }
        Err(last)
    }

    fn leader_uri(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.shared.uri_of(leader)
    }

    /// Run `action` on the leader: here when this peer leads, else forwarded to it. Retries
    /// while no leader is known (an election).
    async fn on_leader(&self, action: LeaderAction, timeout: Duration) -> Result<LeaderOutput, CollectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A leader cut off from its majority never commits: give up at the deadline (the
            // entry stays in its log and may still apply once the majority is back, as a Raft
            // write that timed out does).
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let here = match tokio::time::timeout(left, self.run_here(&action)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(CollectionError::Unavailable(
                        "consensus is not available: the change was not committed in time (no majority reachable)"
                            .into(),
                    ))
                }
            };
            let retry = match here {
                Ok(v) => return Ok(v),
                Err(LeaderError::Refused(e)) => return Err(e),
                Err(LeaderError::Busy(m)) => m,
                Err(LeaderError::NotLeader) => match self.leader_uri() {
                    Some(uri) if self.raft.metrics().borrow().current_leader != Some(self.shared.me) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match self
                            .shared
                            .clients
                            .call(&uri, action.request(), left.max(Duration::from_millis(100)))
                            .await
                        {
                            Ok(PeerReply::Proposed { index, result }) => {
                                return Ok(LeaderOutput::Written(index, result))
                            }
                            Ok(PeerReply::Done) => return Ok(LeaderOutput::Done),
                            Ok(_) => return Err(CollectionError::Internal("unexpected answer from the leader".into())),
                            Err(P2pError::Remote(e)) => return Err(e.into()),
                            Err(e) => e.to_string(),
                        }
                    }
                    _ => "no leader is elected".to_string(),
                },
            };
            if tokio::time::Instant::now() > deadline {
                return Err(CollectionError::Unavailable(format!("consensus is not available: {retry}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Run `action` on this peer's Raft (it must be the leader).
    async fn run_here(&self, action: &LeaderAction) -> Result<LeaderOutput, LeaderError> {
        match action {
            LeaderAction::Write(op) => match self.raft.client_write(op.clone()).await {
                Ok(r) => Ok(LeaderOutput::Written(r.log_id.index, r.data)),
                Err(e) => Err(leader_error(e)),
            },
            LeaderAction::Join(peer_id, uri) => {
                let _one_at_a_time = self.membership_changes.lock().await;
                let membership = self.raft.metrics().borrow().membership_config.clone();
                if let Some(node) = membership.membership().get_node(peer_id) {
                    if node.addr != *uri {
                        return Err(LeaderError::Refused(CollectionError::BadRequest(format!(
                            "Bad request: peer id {peer_id} is already used by the peer at {}; a peer started on a copy \
                             of another peer's storage? Start a new peer on an empty storage folder",
                            node.addr
                        ))));
                    }
                    if membership.membership().voter_ids().any(|v| v == *peer_id) {
                        return Ok(LeaderOutput::Done);
                    }
                }
                self.raft.add_learner(*peer_id, BasicNode::new(uri.clone()), true).await.map_err(leader_error)?;
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([*peer_id]));
                self.raft.change_membership(change, false).await.map_err(leader_error)?;
                Ok(LeaderOutput::Done)
            }
            LeaderAction::Moved(peer_id, uri) => {
                if self.raft.metrics().borrow().current_leader != Some(self.shared.me) {
                    return Err(LeaderError::NotLeader);
                }
                let _one_at_a_time = self.membership_changes.lock().await;
                let membership = self.raft.metrics().borrow().membership_config.clone();
                let Some(known) = membership.membership().get_node(peer_id).map(|n| n.addr.clone()) else {
                    return Err(LeaderError::Refused(CollectionError::NotFound(format!(
                        "peer {peer_id} is not a member of this cluster"
                    ))));
                };
                if known == *uri {
                    return Ok(LeaderOutput::Done);
                }
                let refuse =
                    |m: String| Err(LeaderError::Refused(CollectionError::BadRequest(format!("Bad request: {m}"))));
                if let Some((other, _)) =
                    membership.membership().nodes().find(|(id, n)| *id != peer_id && n.addr == *uri)
                {
                    return refuse(format!("{uri} is the URI of peer {other}"));
                }
                let who = |at: String| async move {
                    match self.shared.clients.call(&at, PeerRequest::WhoAreYou, Duration::from_secs(2)).await {
                        Ok(PeerReply::PeerId(id)) => Some(id),
                        _ => None,
                    }
                };
                // The new URI must be the asking peer's (a wrong --uri would send its Raft
                // traffic to whoever answers there).
                if who(uri.clone()).await != Some(*peer_id) {
                    return refuse(format!("peer {peer_id} does not answer at {uri}"));
                }
                // The same id still answering at the old URI is a copy of its storage, not a
                // move (asked twice: a peer busy for a moment is not taken for gone).
                for attempt in 0..2 {
                    if who(known.clone()).await == Some(*peer_id) {
                        return refuse(format!(
                            "peer id {peer_id} still answers at {known}; a peer started on a copy of another peer's \
                             storage? Start a new peer on an empty storage folder"
                        ));
                    }
                    if attempt == 0 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                let nodes = BTreeMap::from([(*peer_id, BasicNode::new(uri.clone()))]);
                self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await.map_err(leader_error)?;
                tracing::info!(peer_id, from = %known, to = %uri, "a peer moved to another URI");
                Ok(LeaderOutput::Done)
            }
            LeaderAction::Remove(peer_id) => {
                let _one_at_a_time = self.membership_changes.lock().await;
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([*peer_id]));
                self.raft.change_membership(change, false).await.map_err(leader_error)?;
                Ok(LeaderOutput::Done)
            }
        }
    }

    /// Commit `op` through consensus; returns the log index and the operation's own result.
    async fn commit(&self, op: MetaOp) -> Result<(u64, Result<(), MetaError>), CollectionError> {
        self.commit_within(op, PROPOSE_TIMEOUT).await
    }

    async fn commit_within(
        &self,
        op: MetaOp,
        timeout: Duration,
    ) -> Result<(u64, Result<(), MetaError>), CollectionError> {
        match self.on_leader(LeaderAction::Write(op), timeout).await? {
            LeaderOutput::Written(index, result) => Ok((index, result.error.map_or(Ok(()), Err))),
            LeaderOutput::Done => Err(CollectionError::Internal("a write answered without an index".into())),
        }
    }

    /// Commit `op` and wait until the collections of this peer, and of every other peer that
    /// answers, reflect it: a collection created through one peer can be used through any
    /// other as soon as the call returns.
    pub async fn propose(&self, op: MetaOp) -> Result<(), CollectionError> {
        self.propose_within(op, PROPOSE_TIMEOUT).await
    }

    /// [`propose`](Self::propose) waiting at most `timeout` for consensus (Qdrant's `timeout`
    /// parameter of metadata calls): a peer cut off from the majority answers 503 then.
    pub async fn propose_within(&self, op: MetaOp, timeout: Duration) -> Result<(), CollectionError> {
        let started = tokio::time::Instant::now();
        let (index, result) = self.commit_within(op, timeout).await?;
        let mut rx = self.reconciled.subscribe();
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
        tokio::time::timeout(left, rx.wait_for(|i| *i >= index))
            .await
            .map_err(|_| CollectionError::Unavailable("the change was committed but not applied here in time".into()))?
            .map_err(|_| CollectionError::ShuttingDown)?;
        result.map_err(meta_error)?;
        self.wait_peers_applied(index).await;
        Ok(())
    }

    /// The cluster state this peer has applied.
    pub fn state(&self) -> Arc<crate::store::Machine> {
        self.store.applied().machine
    }

    /// Peers currently in the cluster (voters and learners).
    pub fn peers(&self) -> Vec<PeerId> {
        let machine = self.state();
        let ids: Vec<PeerId> = machine.membership.membership().nodes().map(|(id, _)| *id).collect();
        ids
    }

    /// Shard placement for a new collection over the current peers.
    pub fn place(
        &self,
        shard_number: u32,
        replication_factor: u32,
    ) -> Result<BTreeMap<ShardId, Vec<PeerId>>, CollectionError> {
        let machine = self.state();
        place_shards(shard_number, replication_factor, &self.peers(), &machine.state.load()).map_err(meta_error)
    }

    /// `PUT /collections/{c}/shards` in a cluster: a shard key with `shards_number` new shards
    /// (the collection's `shard_number` by default), each with `replication_factor` replicas
    /// (the collection's by default) placed on `placement` (every peer by default).
    pub async fn create_shard_key(
        &self,
        collection: &str,
        key: ShardKey,
        shards_number: Option<u32>,
        replication_factor: Option<u32>,
        placement: Option<Vec<PeerId>>,
        timeout: Duration,
    ) -> Result<(), CollectionError> {
        let machine = self.state();
        let meta =
            machine.state.collections.get(collection).ok_or_else(|| meta_error(crate::state::not_found(collection)))?;
        let n = shards_number.unwrap_or(meta.config.params.shard_number).max(1);
        qd_core::limits::shard_count("shards_number", n)?;
        let rf = replication_factor.unwrap_or(meta.config.params.replication_factor);
        let peers = match placement {
            Some(peers) if peers.is_empty() => {
                return Err(CollectionError::BadRequest("Bad request: placement: needs at least one peer".into()))
            }
            Some(peers) => {
                for p in &peers {
                    self.check_peer(*p)?;
                }
                peers
            }
            None => self.peers(),
        };
        let first = meta.next_shard_id();
        let placement = place_shards(n, rf, &peers, &machine.state.load())
            .map_err(meta_error)?
            .into_iter()
            .map(|(i, holders)| (first + i, holders))
            .collect();
        self.propose_within(MetaOp::CreateShardKey { collection: collection.into(), key, placement }, timeout).await
    }

    /// `POST /collections/{c}/shards/delete` in a cluster.
    pub async fn delete_shard_key(
        &self,
        collection: &str,
        key: ShardKey,
        timeout: Duration,
    ) -> Result<(), CollectionError> {
        self.propose_within(MetaOp::DeleteShardKey { collection: collection.into(), key }, timeout).await
    }

    /// `DELETE /cluster/peer/{id}`: refused while the peer holds the only replica of a shard,
    /// unless `force`.
    pub async fn remove_peer(&self, peer: PeerId, force: bool) -> Result<(), CollectionError> {
        let machine = self.state();
        if machine.membership.membership().get_node(&peer).is_none() {
            return Err(CollectionError::NotFound(format!("Peer {peer} does not exist")));
        }
        if machine.state.holds_replicas(peer) && !force {
            return Err(CollectionError::BadRequest(format!("Cannot remove peer {peer} as there are shards on it")));
        }
        self.propose(MetaOp::ForgetPeer { peer }).await?;
        self.on_leader(LeaderAction::Remove(peer), PROPOSE_TIMEOUT).await.map(|_| ())
    }

    /// `GET /cluster`.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let peers =
            membership.nodes().map(|(id, node)| (id.to_string(), PeerInfo { uri: node.addr.clone() })).collect();
        let commit = metrics.last_applied.map_or(0, |l| l.index);
        let role = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Follower",
            ServerState::Shutdown => "Follower",
        };
        ClusterStatus {
            peer_id: self.shared.me,
            peers,
            raft_info: RaftInfo {
                term: metrics.current_term,
                commit,
                pending_operations: metrics.last_log_index.unwrap_or(0).saturating_sub(commit),
                leader: metrics.current_leader,
                role: Some(role),
                is_voter: membership.voter_ids().any(|v| v == self.shared.me),
            },
            message_send_failures: self.shared.clients.failures(),
        }
    }

    /// Where the shards of `collection` are and in which state; `None` for an unknown one.
    /// Reads local point counts (blocking).
    pub fn collection_info(&self, collection: &str) -> Option<CollectionClusterInfo> {
        let machine = self.state();
        let meta = machine.state.collections.get(collection)?;
        let me = self.shared.me;
        let mut local_shards = Vec::new();
        let mut remote_shards = Vec::new();
        for (sid, replicas) in &meta.shards {
            for (peer, state) in replicas {
                if *peer == me {
                    let points_count = self
                        .replica_set(collection, *sid)
                        .and_then(|s| s.local().map(|l| l.stats().points_count))
                        .unwrap_or(0);
                    let shard_key = meta.shard_keys.iter().find(|e| e.shards.contains(sid)).map(|e| e.key.to_json());
                    local_shards.push(LocalShardInfo { shard_id: *sid, shard_key, points_count, state: *state });
                } else {
                    remote_shards.push(RemoteShardInfo { shard_id: *sid, peer_id: *peer, state: *state });
                }
            }
        }
        Some(CollectionClusterInfo {
            peer_id: me,
            shard_count: meta.shards.len(),
            local_shards,
            remote_shards,
            shard_transfers: meta.transfers.clone(),
        })
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "consensus did not stop cleanly");
        }
    }

    /// Bring local collections in line with the applied cluster state. Idempotent; a step that
    /// fails (a full disk) is logged and tried again by the next call.
    fn reconcile(&self, state: &ClusterState) {
        let _one = self.reconciling.lock();
        for (name, meta) in &state.collections {
            if !self.registry.exists(name) {
                if let Err(e) = self.registry.create_from_cluster(name, meta.config.clone(), &meta.created_at) {
                    tracing::error!(collection = %name, error = %e, "cannot create the collection locally");
                    continue;
                }
            }
            let Ok(collection) = self.registry.get(name) else { continue };
            if collection.config() != meta.config {
                // Named vectors added or dropped (by name: a PATCH of a vector's parameters is
                // not a drop) reshape the replicas, and a drop clears the vector's data; the rest
                // of the config is replaced as agreed.
                let (have, want) = (named_vectors(&collection.config()), named_vectors(&meta.config));
                for vector in have.keys() {
                    if !want.contains_key(vector) {
                        if let Err(e) = self.registry.set_vector(name, vector, None) {
                            tracing::error!(collection = %name, vector = %vector, error = %e, "cannot drop a vector");
                        }
                    }
                }
                for (vector, spec) in &want {
                    if !have.contains_key(vector) {
                        if let Err(e) = self.registry.set_vector(name, vector, Some(spec.clone())) {
                            tracing::error!(collection = %name, vector = %vector, error = %e, "cannot add a vector");
                        }
                    }
                }
                if let Err(e) = self.registry.update_config(name, |_| Ok(meta.config.clone())) {
                    tracing::error!(collection = %name, error = %e, "cannot update the collection's parameters");
                }
            }
            let local = collection.payload_schema();
            for (field, spec) in &meta.payload_schema {
                if local.get(field) != Some(spec) {
                    if let Err(e) = self.registry.set_payload_index(name, field, Some(spec.clone())) {
                        tracing::error!(collection = %name, field, error = %e, "cannot create a payload index");
                    }
                }
            }
            for field in local.keys().filter(|f| !meta.payload_schema.contains_key(*f)) {
                if let Err(e) = self.registry.set_payload_index(name, field, None) {
                    tracing::error!(collection = %name, field, error = %e, "cannot drop a payload index");
                }
            }
            // Shard keys created or deleted (custom sharding).
            if let Some(local_keys) = collection.shard_keys() {
                for e in &meta.shard_keys {
                    if !local_keys.contains(&e.key) {
                        if let Err(e) = self.registry.add_shard_key(name, e.key.clone(), e.shards.clone()) {
                            tracing::error!(collection = %name, error = %e, "cannot add a shard key");
                        }
                    }
                }
                for key in local_keys.iter().filter(|k| !meta.shard_keys.iter().any(|e| &e.key == *k)) {
                    if let Err(e) = self.registry.delete_shard_key(name, key) {
                        tracing::error!(collection = %name, error = %e, "cannot delete a shard key");
                    }
                }
            }
            // Replicas transfers brought here or took away.
            for sid in meta.shards.keys() {
                let Some(set) = self.replica_set(name, *sid) else { continue };
                if let Err(e) = set.ensure_local().and_then(|_| set.drop_local_if_unplaced()) {
                    tracing::error!(collection = %name, shard = sid, error = %e, "cannot open or remove a local replica");
                }
            }
        }
        for name in self.registry.list() {
            if !state.collections.contains_key(&name) {
                if let Err(e) = self.registry.delete(&name) {
                    tracing::error!(collection = %name, error = %e, "cannot delete the collection locally");
                }
            }
        }
        let local = self.registry.aliases();
        let mut actions: Vec<AliasAction> = local
            .iter()
            .filter(|(a, c)| state.aliases.get(*a) != Some(*c))
            .map(|(a, _)| AliasAction::Delete { alias: a.clone() })
            .collect();
        actions.extend(
            state
                .aliases
                .iter()
                .filter(|(a, c)| local.get(*a) != Some(*c))
                .map(|(a, c)| AliasAction::Create { alias: a.clone(), collection: c.clone() }),
        );
        if !actions.is_empty() {
            if let Err(e) = self.registry.update_aliases(actions) {
                tracing::error!(error = %e, "cannot apply aliases locally");
            }
        }
    }

    /// Recover every replica on this peer that consensus marks Dead (from an Active one), and
    /// run the copies of transfers into this peer.
    fn start_recoveries(self: &Arc<Self>) {
        let machine = self.state();
        let me = self.shared.me;
        for (name, meta) in &machine.state.collections {
            for (sid, replicas) in &meta.shards {
                let Some(state) = replicas.get(&me) else { continue };
                let transfer = meta.transfer_to(*sid, me);
                let source = match (state, transfer) {
                    // A transfer's copy, or its retry once the copy missed a write (Dead).
                    (ReplicaState::Partial | ReplicaState::Dead, Some(t)) => Some(t.from),
                    (ReplicaState::Dead | ReplicaState::Partial, None) => {
                        replicas.iter().find(|(p, s)| **p != me && **s == ReplicaState::Active).map(|(p, _)| *p)
                    }
                    _ => None,
                };
                let Some(source) = source else { continue };
                let key = (name.clone(), *sid);
                if !self.recovering.lock().insert(key.clone()) {
                    continue;
                }
                let node = self.clone();
                let method = transfer.map(|t| t.method);
                tokio::spawn(async move {
                    let result = crate::transfer::recover(&node, &key.0, key.1, source, method).await;
                    node.recovering.lock().remove(&key);
                    match result {
                        Ok(n) => tracing::info!(collection = %key.0, shard = key.1, points = n, "replica recovered"),
                        Err(e) => {
                            tracing::warn!(collection = %key.0, shard = key.1, error = %e, "replica recovery failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            node.start_recoveries();
                        }
                    }
                });
            }
        }
    }

    /// Keep ordinary recoveries (and transfers' copies) out of this peer's replica of `shard`
    /// while the guard lives (`None`: one runs now). Dropping the guard looks for recoveries
    /// to run again.
    pub(crate) fn reserve_recovery(self: &Arc<Self>, collection: &str, shard: ShardId) -> Option<RecoveryGuard> {
        let key = (collection.to_string(), shard);
        self.recovering.lock().insert(key.clone()).then(|| RecoveryGuard { node: self.clone(), key })
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.store.applied().index
    }

    /// Whether the transfer from `from` into this peer still runs by `method` (not aborted,
    /// not restarted by another method).
    pub(crate) fn transfer_running(
        &self,
        collection: &str,
        shard: ShardId,
        from: PeerId,
        method: TransferMethod,
    ) -> bool {
        let machine = self.state();
        machine
            .state
            .collections
            .get(collection)
            .and_then(|c| c.transfer_to(shard, self.shared.me))
            .is_some_and(|t| t.from == from && t.method == method)
    }

    pub(crate) async fn commit_op(&self, op: MetaOp) -> Result<u64, CollectionError> {
        let (index, result) = self.commit(op).await?;
        result.map_err(meta_error)?;
        Ok(index)
    }

    /// `replicate_shard` (`sync`) or `move_shard`: start copying `shard` from `from` to `to`.
    pub async fn start_transfer(
        &self,
        collection: &str,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
        sync: bool,
        method: TransferMethod,
    ) -> Result<(), CollectionError> {
        self.check_peer(from)?;
        self.check_peer(to)?;
        let transfer = ShardTransfer { shard_id: shard, from, to, sync, method };
        self.propose(MetaOp::StartTransfer { collection: collection.into(), transfer }).await
    }

    /// `restart_transfer`: copy again by `method`.
    pub async fn restart_transfer(
        &self,
        collection: &str,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
        method: TransferMethod,
    ) -> Result<(), CollectionError> {
        self.propose(MetaOp::RestartTransfer { collection: collection.into(), shard, from, to, method }).await
    }

    /// `abort_transfer`.
    pub async fn abort_transfer(
        &self,
        collection: &str,
        shard: ShardId,
        from: PeerId,
        to: PeerId,
    ) -> Result<(), CollectionError> {
        self.propose(MetaOp::AbortTransfer { collection: collection.into(), shard, from, to }).await
    }

    /// `drop_replica`.
    pub async fn drop_replica(&self, collection: &str, shard: ShardId, peer: PeerId) -> Result<(), CollectionError> {
        self.check_peer(peer)?;
        self.propose(MetaOp::DropReplica { collection: collection.into(), shard, peer }).await
    }

    fn check_peer(&self, peer: PeerId) -> Result<(), CollectionError> {
        match self.state().membership.membership().get_node(&peer) {
            Some(_) => Ok(()),
            None => Err(CollectionError::BadRequest(format!("Bad request: Peer {peer} does not exist"))),
        }
    }

    pub(crate) fn replica_set(&self, collection: &str, shard: ShardId) -> Option<Arc<ReplicaSet>> {
        self.replica_sets.lock().get(&(collection.to_string(), shard)).and_then(Weak::upgrade)
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// Ask every other live peer how far its collections follow the log, until all reached
    /// `index` (peers that do not answer cannot serve, so they do not count; each gets 5 s).
    pub(crate) async fn wait_peers_applied(&self, index: u64) {
        for peer in self.peers() {
            if peer == self.shared.me {
                continue;
            }
            let Some(uri) = self.shared.uri_of(peer) else { continue };
            for _ in 0..100 {
                match self.shared.clients.call(&uri, PeerRequest::AppliedIndex, RAFT_TIMEOUT).await {
                    Ok(PeerReply::Applied(i)) if i >= index => break,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => break,
                }
            }
        }
    }

    pub(crate) async fn commit_replica_state(
        &self,
        collection: &str,
        shard: ShardId,
        state: ReplicaState,
    ) -> Result<u64, CollectionError> {
        self.commit_op(MetaOp::SetReplicaState { collection: collection.into(), shard, peer: self.shared.me, state })
            .await
    }

    async fn handle_shard(&self, collection: String, shard: ShardId, call: ShardCall) -> PeerReply {
        let Some(set) = self.replica_set(&collection, shard) else {
            return PeerReply::Error(WireError::NotFound(format!(
                "Shard {shard} of collection `{collection}` is not on peer {}",
                self.shared.me
            )));
        };
        let registry = self.registry.clone();
        let result =
            tokio::task::spawn_blocking(move || crate::transfer::serve_call(&registry, &collection, &set, call)).await;
        match result {
            Ok(Ok(reply)) => PeerReply::Shard(reply),
            Ok(Err(e)) => PeerReply::Error(e),
            Err(e) => PeerReply::Error(WireError::Internal(e.to_string())),
        }
    }

    async fn handle_join(&self, peer_id: PeerId, uri: String) -> PeerReply {
        match self.on_leader(LeaderAction::Join(peer_id, uri), PROPOSE_TIMEOUT).await {
            Ok(_) => PeerReply::Done,
            Err(e) => PeerReply::Error(e.into()),
        }
    }
}

/// What must run on the leader.
enum LeaderAction {
    Write(MetaOp),
    Join(PeerId, String),
    /// A member restarted at another URI.
    Moved(PeerId, String),
    Remove(PeerId),
}

impl LeaderAction {
    /// The same action, as a request to the leader.
    fn request(&self) -> PeerRequest {
        match self {
            LeaderAction::Write(op) => PeerRequest::Propose(op.clone()),
            LeaderAction::Join(peer_id, uri) => PeerRequest::Join { peer_id: *peer_id, uri: uri.clone() },
            LeaderAction::Moved(peer_id, uri) => PeerRequest::MovedTo { peer_id: *peer_id, uri: uri.clone() },
            LeaderAction::Remove(peer_id) => PeerRequest::RemovePeer { peer_id: *peer_id },
        }
    }
}

enum LeaderOutput {
    Written(u64, crate::state::MetaResult),
    Done,
}

/// Why a leader-only call did not run here.
enum LeaderError {
    NotLeader,
    /// Another membership change is being committed: try again shortly.
    Busy(String),
    Refused(CollectionError),
}

fn leader_error(e: RaftError<PeerId, ClientWriteError<PeerId, BasicNode>>) -> LeaderError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => LeaderError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            LeaderError::Busy(p.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            LeaderError::Refused(CollectionError::BadRequest(format!("Bad request: {c}")))
        }
        RaftError::Fatal(f) => LeaderError::Refused(CollectionError::Unavailable(format!("consensus stopped: {f}"))),
    }
}

impl PeerHandler for ClusterNode {
    fn handle(self: Arc<Self>, request: PeerRequest) -> std::pin::Pin<Box<dyn Future<Output = PeerReply> + Send>> {
        Box::pin(async move {
            match request {
                PeerRequest::AppendEntries(rpc) => PeerReply::AppendEntries(self.raft.append_entries(rpc).await),
                PeerRequest::Vote(rpc) => PeerReply::Vote(self.raft.vote(rpc).await),
                PeerRequest::InstallSnapshot(rpc) => PeerReply::InstallSnapshot(self.raft.install_snapshot(rpc).await),
                PeerRequest::Join { peer_id, uri } => self.handle_join(peer_id, uri).await,
                PeerRequest::Propose(op) => match self.raft.client_write(op).await {
                    Ok(r) => PeerReply::Proposed { index: r.log_id.index, result: r.data },
                    Err(e) => PeerReply::Error(WireError::Unavailable(format!("not the leader: {e}"))),
                },
                PeerRequest::RemovePeer { peer_id } => {
                    match self.on_leader(LeaderAction::Remove(peer_id), PROPOSE_TIMEOUT).await {
                        Ok(_) => PeerReply::Done,
                        Err(e) => PeerReply::Error(e.into()),
                    }
                }
                PeerRequest::MovedTo { peer_id, uri } => {
                    match self.on_leader(LeaderAction::Moved(peer_id, uri), PROPOSE_TIMEOUT).await {
                        Ok(_) => PeerReply::Done,
                        Err(e) => PeerReply::Error(e.into()),
                    }
                }
                PeerRequest::WhoAreYou => PeerReply::PeerId(self.shared.me),
                PeerRequest::AppliedIndex => PeerReply::Applied(*self.reconciled.borrow()),
                PeerRequest::Shard { collection, shard, call } => self.handle_shard(collection, shard, call).await,
            }
        })
    }
}

/// Commit the Dead states replica sets report, one at a time, answering each report.
async fn follow_dead_reports(node: Weak<ClusterNode>, mut reports: tokio::sync::mpsc::UnboundedReceiver<DeadReport>) {
    while let Some(r) = reports.recv().await {
        let Some(node) = node.upgrade() else { return };
        let current = node.shared.replicas(&r.collection, r.shard);
        let result = match current.iter().find(|(p, _)| *p == r.peer) {
            // Already Dead, or no longer a replica (dropped, moved): nothing to record.
            Some((_, ReplicaState::Dead)) | None => Ok(()),
            Some(_) => {
                tracing::warn!(collection = %r.collection, shard = r.shard, peer = r.peer, "replica missed a write; marking it Dead");
                let op = MetaOp::SetReplicaState {
                    collection: r.collection.clone(),
                    shard: r.shard,
                    peer: r.peer,
                    state: ReplicaState::Dead,
                };
                node.commit(op).await.and_then(|(_, applied)| applied.map_err(meta_error))
            }
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "cannot mark a replica Dead");
        }
        let _ = r.done.send(result);
    }
}

// --- Raft network -----------------------------------------------------------------------------

struct Network {
    shared: Arc<NodeShared>,
}

struct PeerNetwork {
    target: PeerId,
    uri: String,
    shared: Arc<NodeShared>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerNetwork;
    async fn new_client(&mut self, target: PeerId, node: &BasicNode) -> PeerNetwork {
        PeerNetwork { target, uri: node.addr.clone(), shared: self.shared.clone() }
    }
}

fn unreachable<E: std::error::Error>(e: P2pError) -> RPCError<PeerId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(e.to_string())))
}

fn mismatched<E: std::error::Error>() -> RPCError<PeerId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&AnyError::error("mismatched reply")))
}

impl PeerNetwork {
    /// Send to the URI Raft created this connection with (Raft makes new connections when a
    /// member's address changes, as soon as the change is in its log).
    async fn send(&self, request: PeerRequest, option: &RPCOption) -> Result<PeerReply, P2pError> {
        let ttl = option.hard_ttl().min(RAFT_TIMEOUT);
        self.shared.clients.call(&self.uri, request, ttl).await
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<PeerId>, RPCError<PeerId, BasicNode, RaftError<PeerId>>> {
        match self.send(PeerRequest::AppendEntries(rpc), &option).await {
            Ok(PeerReply::AppendEntries(Ok(r))) => Ok(r),
            Ok(PeerReply::AppendEntries(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(_) => Err(mismatched()),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<PeerId>,
        RPCError<PeerId, BasicNode, RaftError<PeerId, openraft::error::InstallSnapshotError>>,
    > {
        match self.send(PeerRequest::InstallSnapshot(rpc), &option).await {
            Ok(PeerReply::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(PeerReply::InstallSnapshot(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(_) => Err(mismatched()),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<PeerId>,
        option: RPCOption,
    ) -> Result<VoteResponse<PeerId>, RPCError<PeerId, BasicNode, RaftError<PeerId>>> {
        match self.send(PeerRequest::Vote(rpc), &option).await {
            Ok(PeerReply::Vote(Ok(r))) => Ok(r),
            Ok(PeerReply::Vote(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(_) => Err(mismatched()),
            Err(e) => Err(unreachable(e)),
        }
    }
}
