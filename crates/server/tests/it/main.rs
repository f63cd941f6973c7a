//! Integration tests: each starts the real `qdrant` binary on a temp dir and a free port and
//! talks HTTP to it. Storage-facing tests run once per backend.

mod api;
mod cluster;
mod collection_config;
mod common;
mod datatype;
mod disk_full;
mod durability;
mod grpc;
mod hybrid;
mod indexing;
mod limits;
mod monitoring;
mod multitenancy;
mod on_disk;
mod on_disk_payload;
mod payload_index;
mod quantization;
mod sharding;
mod snapshots;
mod startup;
