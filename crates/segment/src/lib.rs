//! One segment of a shard: id tracker, vector storage, payloads, the HNSW graph, with filter
//! evaluation and cardinality estimation.
//!
//! A segment holds data in memory for search; it never decides durability: the shard commits
//! every operation through the storage backend before a segment sees it.

pub mod elements;
pub mod hnsw;
mod id_map;
pub mod live_index;
pub mod mapped;
pub mod multi;
pub mod multi_file;
pub mod payload_index;
mod payloads;
pub mod quantized;
mod sectioned;
pub mod segment;
pub mod sparse;
pub mod sparse_file;

pub use elements::{ElemVec, ElementType, Elems};
pub use live_index::{same_defs, LiveIndex, PayloadIndexDef};
pub use mapped::{FileOwner, MappedVectors};
pub use multi::MultiColumn;
pub use multi_file::MappedMulti;
pub use payload_index::{facet_key, order_value, FieldIndex, IndexKind, IndexSpec};
pub use payloads::{PayloadCache, PayloadReadError, PayloadSource};
pub use quantized::QuantizedVectors;
pub use segment::{
    sort_hits, ColumnKind, ColumnSpec, SearchParams, Segment, SegmentData, SegmentHit, SegmentIndex, SegmentPoint,
    VectorColumn, VectorRef,
};
pub use sparse::{InvertedIndex, ScoreFloor, SparseColumn, SparseRef};
pub use sparse_file::MappedSparse;
