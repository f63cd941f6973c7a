//! One segment of a shard: id tracker, vector storage, payloads, the HNSW graph, with filter
//! evaluation and cardinality estimation.
//!
//! A segment holds data in memory for search; it never decides durability: the shard commits
//! every operation through the storage backend before a segment sees it.

pub mod hnsw;
pub mod mapped;
pub mod quantized;
pub mod segment;

pub use mapped::{FileOwner, MappedVectors};
pub use quantized::QuantizedVectors;
pub use segment::{
    sort_hits, SearchParams, Segment, SegmentData, SegmentHit, SegmentIndex, SegmentPoint, VectorColumn,
};
