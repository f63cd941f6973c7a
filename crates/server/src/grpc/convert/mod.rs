//! The one conversion layer between gRPC messages and the typed requests and answers of the
//! collection layer. Every service converts through here and then calls the same functions
//! as the REST handlers (`crate::ops`, the registry, the collection).

pub mod config;
pub mod filter;
pub mod formula;
pub mod index;
pub mod query;
pub mod results;
pub mod values;
pub mod vectors;
pub mod writes;

pub use super::status::invalid;

pub type Result<T> = std::result::Result<T, crate::api::response::ApiError>;
