//! The Raft type configuration: what log entries carry and how peers are named.

pub use openraft::BasicNode;

use std::io::Cursor;

use crate::state::{MetaOp, MetaResult};

openraft::declare_raft_types!(
    /// Log entries carry metadata operations; a peer's node is its P2P URI (`BasicNode::addr`).
    pub TypeConfig:
        D = MetaOp,
        R = MetaResult,
);

pub type Raft = openraft::Raft<TypeConfig>;
