//! Cluster mode: collections spread and replicated over several peers.
//!
//! - [`state`]: the metadata consensus agrees on (collections, shard placement, replica
//!   states, aliases) and the pure function that applies a change to it;
//! - [`store`]: Raft's log, vote and state machine over the storage backend;
//! - [`p2p`]: the peer-to-peer gRPC service (port 6335) and its client;
//! - [`p2p_tls`]: TLS connections to peers (`cluster.p2p.enable_tls`);
//! - [`replica_set`]: a shard's replicas behind the collection layer's `Shard` trait;
//! - [`copied_writes`]: which replicated writes a copy of a shard already holds;
//! - [`transfer`]: serving peers' shard calls, recovering a replica by streaming records;
//! - [`node`]: this peer: Raft (openraft), joining, proposals, following the applied state.

pub mod copied_writes;
pub mod node;
pub mod p2p;
pub mod p2p_tls;
pub mod raft_types;
pub mod replica_set;
pub mod snapshot_recovery;
pub mod state;
pub mod store;
pub mod transfer;

pub use node::{ClusterNode, ClusterOptions, ClusterStatus, CollectionClusterInfo, LocalShardInfo};
pub use snapshot_recovery::{RecoverTarget, SnapshotPriority};
pub use state::{MetaOp, PeerId, ReplicaState, TransferMethod};
