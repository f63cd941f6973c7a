//! Vectors in both directions: protobuf `Vector`/`Vectors`/`VectorInput` in requests (the
//! deprecated flat `data`/`indices`/`vectors_count` form older clients send included), and
//! `VectorsOutput` in answers. Documents become vectors through the server's inference.

use std::collections::BTreeMap;

use qd_collection::query::VectorOrId;
use qd_core::config::DEFAULT_VECTOR_NAME;
use qd_core::vectors::{Document, MultiDenseVector, NamedVectors, SparseVector, Vector, VectorItem};
use qdrant_client::qdrant as pb;
use serde_json::Value;

use super::values::{map_of, point_id};
use super::{invalid, Result};
use crate::api::inference::{self, Side};

fn dense(data: Vec<f32>, what: &str) -> Result<Vector> {
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(invalid(format!("{what}: element {i} is not a finite number")));
    }
    Ok(Vector::Dense(data))
}

fn sparse(indices: Vec<u32>, values: Vec<f32>, what: &str) -> Result<Vector> {
    SparseVector::new(indices, values).map(Vector::Sparse).map_err(|e| invalid(format!("{what}: {e}")))
}

fn multi(rows: Vec<pb::DenseVector>, what: &str) -> Result<Vector> {
    let rows: Vec<Vec<f32>> = rows.into_iter().map(|r| r.data).collect();
    if rows.iter().flatten().any(|x| !x.is_finite()) {
        return Err(invalid(format!("{what}: a multivector element is not a finite number")));
    }
    MultiDenseVector::new(rows).map(Vector::Multi).map_err(|e| invalid(format!("{what}: {e}")))
}

fn document(d: pb::Document) -> VectorItem {
    let options = (!d.options.is_empty()).then(|| Value::Object(map_of(d.options)));
    VectorItem::Document(Document { text: d.text, model: d.model, options })
}

fn no_provider(kind: &str, what: &str) -> crate::api::response::ApiError {
    invalid(format!("{what}: {kind} inference needs an inference provider, and none is configured"))
}

/// One vector of a request, as given (a document stays a document).
#[allow(deprecated)] // the flat fields are what clients before 1.16 send
pub fn item(v: pb::Vector, what: &str) -> Result<VectorItem> {
    use pb::vector::Vector as V;
    let vector = match v.vector {
        Some(V::Dense(d)) => dense(d.data, what)?,
        Some(V::Sparse(s)) => sparse(s.indices, s.values, what)?,
        Some(V::MultiDense(m)) => multi(m.vectors, what)?,
        Some(V::Document(d)) => return Ok(document(d)),
        Some(V::Image(_)) => return Err(no_provider("image", what)),
        Some(V::Object(_)) => return Err(no_provider("object", what)),
        None => match (v.indices, v.vectors_count) {
            (Some(indices), _) => sparse(indices.data, v.data, what)?,
            (None, Some(count)) => {
                let count = count as usize;
                let dim = v.data.len().checked_div(count).unwrap_or(0);
                if dim == 0 || dim * count != v.data.len() {
                    return Err(invalid(format!(
                        "{what}: {} numbers do not split into {count} vectors of one size",
                        v.data.len()
                    )));
                }
                let rows = v.data.chunks(dim).map(|c| pb::DenseVector { data: c.to_vec() }).collect();
                multi(rows, what)?
            }
            (None, None) => dense(v.data, what)?,
        },
    };
    Ok(VectorItem::Vector(vector))
}

/// A point's vectors as given: the unnamed vector or vectors by name.
pub fn items(v: Option<pb::Vectors>, what: &str) -> Result<BTreeMap<String, VectorItem>> {
    use pb::vectors::VectorsOptions;
    match v.and_then(|v| v.vectors_options) {
        None => Ok(BTreeMap::new()),
        Some(VectorsOptions::Vector(one)) => Ok(BTreeMap::from([(DEFAULT_VECTOR_NAME.to_string(), item(one, what)?)])),
        Some(VectorsOptions::Vectors(named)) => named
            .vectors
            .into_iter()
            .map(|(name, v)| {
                let at = format!("{what}.{name}");
                item(v, &at).map(|i| (name, i))
            })
            .collect(),
    }
}

/// A point's vectors for a write: documents embedded on the document side.
pub fn named_for_write(v: Option<pb::Vectors>, what: &str) -> Result<NamedVectors> {
    inference::resolve_named(items(v, what)?, Side::Document, what)
}

/// A vector in a query (documents embedded on the query side).
pub fn query_vector(v: pb::Vector, what: &str) -> Result<Vector> {
    inference::resolve(item(v, what)?, Side::Query, what)
}

/// A `VectorInput` of the query API: a point id or a vector.
pub fn vector_or_id(v: pb::VectorInput, what: &str) -> Result<VectorOrId> {
    use pb::vector_input::Variant;
    let item = match v.variant {
        Some(Variant::Id(id)) => return Ok(VectorOrId::Id(point_id(Some(id), what)?)),
        Some(Variant::Dense(d)) => VectorItem::Vector(dense(d.data, what)?),
        Some(Variant::Sparse(s)) => VectorItem::Vector(sparse(s.indices, s.values, what)?),
        Some(Variant::MultiDense(m)) => VectorItem::Vector(multi(m.vectors, what)?),
        Some(Variant::Document(d)) => document(d),
        Some(Variant::Image(_)) => return Err(no_provider("image", what)),
        Some(Variant::Object(_)) => return Err(no_provider("object", what)),
        None => return Err(invalid(format!("{what}: empty vector input"))),
    };
    Ok(VectorOrId::Vector(inference::resolve(item, Side::Query, what)?))
}

/// One stored vector in an answer.
pub fn vector_out(v: Vector) -> pb::VectorOutput {
    use pb::vector_output::Vector as V;
    let vector = match v {
        Vector::Dense(data) => V::Dense(pb::DenseVector { data }),
        Vector::Sparse(s) => V::Sparse(pb::SparseVector { values: s.values, indices: s.indices }),
        Vector::Multi(m) => V::MultiDense(pb::MultiDenseVector {
            vectors: m.into_rows().into_iter().map(|data| pb::DenseVector { data }).collect(),
        }),
    };
    pb::VectorOutput { vector: Some(vector), ..Default::default() }
}

/// A point's vectors in an answer: the bare vector when the only one is unnamed.
pub fn vectors_out(v: Option<NamedVectors>) -> Option<pb::VectorsOutput> {
    use pb::vectors_output::VectorsOptions;
    let mut m = v?;
    let options = if m.len() == 1 && m.contains_key(DEFAULT_VECTOR_NAME) {
        VectorsOptions::Vector(vector_out(m.remove(DEFAULT_VECTOR_NAME)?))
    } else {
        VectorsOptions::Vectors(pb::NamedVectorsOutput {
            vectors: m.into_iter().map(|(name, v)| (name, vector_out(v))).collect(),
        })
    };
    Some(pb::VectorsOutput { vectors_options: Some(options) })
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;

    fn flat(data: Vec<f32>, indices: Option<Vec<u32>>, count: Option<u32>) -> pb::Vector {
        pb::Vector { data, indices: indices.map(|data| pb::SparseIndices { data }), vectors_count: count, vector: None }
    }

    #[test]
    fn deprecated_flat_forms_decode() {
        assert_eq!(
            item(flat(vec![1.0, 2.0], None, None), "v").ok(),
            Some(VectorItem::Vector(Vector::Dense(vec![1.0, 2.0])))
        );
        let Ok(VectorItem::Vector(Vector::Sparse(s))) = item(flat(vec![0.5, 0.25], Some(vec![9, 3]), None), "v") else {
            panic!("sparse expected")
        };
        assert_eq!((s.indices, s.values), (vec![3, 9], vec![0.25, 0.5]));
        let Ok(VectorItem::Vector(Vector::Multi(m))) = item(flat(vec![1.0, 2.0, 3.0, 4.0], None, Some(2)), "v") else {
            panic!("multi expected")
        };
        assert_eq!((m.count(), m.dim()), (2, 2));
        assert!(item(flat(vec![1.0, 2.0, 3.0], None, Some(2)), "v").is_err());
    }

    #[test]
    fn non_finite_and_mismatched_input_is_refused() {
        assert!(item(flat(vec![f32::NAN], None, None), "v").is_err());
        let bad = pb::Vector {
            vector: Some(pb::vector::Vector::Sparse(pb::SparseVector { values: vec![1.0], indices: vec![1, 2] })),
            ..Default::default()
        };
        assert!(item(bad, "v").is_err());
    }

    #[test]
    fn the_only_unnamed_vector_is_sent_bare() {
        let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0]))]);
        let out = vectors_out(Some(v)).and_then(|o| o.vectors_options);
        assert!(matches!(out, Some(pb::vectors_output::VectorsOptions::Vector(_))));
        let v = NamedVectors::from([("a".to_string(), Vector::Dense(vec![1.0]))]);
        let out = vectors_out(Some(v)).and_then(|o| o.vectors_options);
        assert!(matches!(out, Some(pb::vectors_output::VectorsOptions::Vectors(_))));
    }
}
