//! Collections: the registry of collections and aliases, a collection's config and shards,
//! routing of points to shards, fan-out and merge of reads, the per-shard update queue.
//!
//! This crate decides durability (a shard acknowledges a write only after the backend committed
//! it) and never speaks HTTP: the server turns [`CollectionError`] into responses.

pub mod catalog;
pub mod collection;
pub mod consistency;
pub mod error;
pub mod groups;
pub mod matrix;
pub mod memory;
pub mod mmr;
pub mod operations;
pub mod query;
pub mod rate_limit;
pub mod record;
pub mod registry;
pub mod shard;
pub mod shard_set;
pub mod snapshot;
pub mod strict;

pub use collection::{Collection, CollectionInfo};
pub use error::CollectionError;
pub use error::Result;
pub use registry::{AliasAction, LocalShards, NewVector, Registry, ShardPlacement, StagedShard, StagedSnapshot};
