//! One segment of a shard: id tracker, vector storage, payloads, the HNSW graph and payload
//! indexes, with filter evaluation and cardinality estimation.
//!
//! A segment holds data in memory (or mmap) for search; it never decides durability: the shard
//! commits every operation through the storage backend before a segment sees it.

pub mod hnsw;
pub mod segment;

pub use segment::{sort_hits, Segment, SegmentHit, SegmentPoint, VectorColumn};
