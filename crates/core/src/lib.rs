//! Types with no IO, shared by every layer: point ids, vectors, payloads, filters, distances,
//! collection configs and validation errors.
//!
//! This crate must never touch the disk, the network or a clock-dependent global: everything
//! here is a value type or a pure function, so it is cheap to test exhaustively.

pub mod config;
pub mod distance;
pub mod error;
pub mod filter;
pub mod formula;
pub mod json_path;
pub mod limits;
pub mod point_id;
pub mod selectors;
pub mod strict_mode;
pub mod vectors;

pub use distance::Distance;
pub use error::ValidationError;
pub use point_id::PointId;

/// A point's payload: any JSON object.
pub type Payload = serde_json::Map<String, serde_json::Value>;
