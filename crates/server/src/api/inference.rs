//! Server-side inference: `{"text": ..., "model": ..., "options": ...}` objects in place of a
//! vector become vectors here, before anything reaches the collection layer. Qdrant's
//! built-in BM25 (`qdrant/bm25`) is the only model; documents are embedded on the document
//! side in writes and on the query side in queries (see `qd_inference`).

use std::collections::BTreeMap;

use qd_core::vectors::{Document, NamedVectors, SparseVector, Vector, VectorItem};

use super::response::ApiError;

pub use qd_inference::Side;

/// The vector of one item, embedding a document for `side`; `what` names the field in errors.
pub fn resolve(item: VectorItem, side: Side, what: &str) -> Result<Vector, ApiError> {
    match item {
        VectorItem::Vector(v) => Ok(v),
        VectorItem::Document(d) => embed(&d, side, what),
    }
}

/// [`resolve`] for every named vector of a point.
pub fn resolve_named(items: BTreeMap<String, VectorItem>, side: Side, what: &str) -> Result<NamedVectors, ApiError> {
    items
        .into_iter()
        .map(|(name, item)| {
            let at = if name.is_empty() { what.to_string() } else { format!("{what}.{name}") };
            resolve(item, side, &at).map(|v| (name, v))
        })
        .collect()
}

fn embed(d: &Document, side: Side, what: &str) -> Result<Vector, ApiError> {
    let (indices, values) = qd_inference::embed(&d.model, &d.text, d.options.as_ref(), side)
        .map_err(|e| ApiError::bad_request(format!("Bad request: {what}: {e}")))?;
    Ok(Vector::Sparse(SparseVector { indices, values }))
}
