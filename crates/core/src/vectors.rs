//! Vectors as they arrive in requests and as they are stored.
//!
//! A point holds [`NamedVectors`]: per name one [`Vector`], which is dense (`[f32]`), sparse
//! (sorted `(index, value)` pairs) or a multivector (several dense vectors of one dimension,
//! scored by max-sim). The unnamed vector is stored under [`crate::config::DEFAULT_VECTOR_NAME`].
//! The input form [`VectorInput`] is what a point's `vector` field holds: a plain list, or an
//! object of named vectors; server-side inference objects (`{"text": ..., "model": ...}`) are
//! kept as [`Document`]s until the server turns them into vectors.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{CollectionParams, SparseVectorParams, VectorParams, DEFAULT_VECTOR_NAME};
use crate::error::ValidationError;

/// A sparse vector: strictly ascending `indices`, one finite value per index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Check and normalise user input: equal lengths, finite values, no duplicate index.
    /// Indices given out of order are sorted (with their values), as Qdrant does.
    pub fn new(indices: Vec<u32>, values: Vec<f32>) -> Result<Self, String> {
        if indices.len() != values.len() {
            return Err(format!(
                "indices and values must have the same length, got {} indices and {} values",
                indices.len(),
                values.len()
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("values[{i}] is not a finite number"));
        }
        let mut v = SparseVector { indices, values };
        if !v.indices.windows(2).all(|w| w[0] < w[1]) {
            let mut pairs: Vec<(u32, f32)> = v.indices.iter().copied().zip(v.values.iter().copied()).collect();
            pairs.sort_by_key(|p| p.0);
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(format!("indices must be unique, index {} appears more than once", w[0].0));
            }
            v.indices = pairs.iter().map(|p| p.0).collect();
            v.values = pairs.iter().map(|p| p.1).collect();
        }
        Ok(v)
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Dot product over the indices both vectors hold (both sorted: one merge pass).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }

    /// Whether the two share at least one index (Qdrant scores only such points).
    pub fn overlaps(&self, other: &SparseVector) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

/// Several dense vectors of one dimension, stored row-major in `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiDenseVector {
    dim: usize,
    data: Vec<f32>,
}

impl MultiDenseVector {
    /// From inner vectors that must all have the same, non-zero length; at least one.
    pub fn new(rows: Vec<Vec<f32>>) -> Result<Self, String> {
        let dim = rows.first().map(Vec::len).ok_or("a multivector needs at least one vector")?;
        if dim == 0 {
            return Err("inner vectors must not be empty".into());
        }
        let mut data = Vec::with_capacity(dim * rows.len());
        for (i, r) in rows.iter().enumerate() {
            if r.len() != dim {
                return Err(format!("all inner vectors must have the same size: [{i}] has {}, [0] has {dim}", r.len()));
            }
            data.extend_from_slice(r);
        }
        Ok(MultiDenseVector { dim, data })
    }

    /// From flat row-major data; `None` unless `data` is a non-empty multiple of `dim`.
    pub fn from_flat(dim: usize, data: Vec<f32>) -> Option<Self> {
        (dim > 0 && !data.is_empty() && data.len().is_multiple_of(dim)).then_some(MultiDenseVector { dim, data })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of inner vectors.
    pub fn count(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn flat(&self) -> &[f32] {
        &self.data
    }

    pub fn flat_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim)
    }

    pub fn rows_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        self.data.chunks_exact_mut(self.dim)
    }

    pub fn into_rows(self) -> Vec<Vec<f32>> {
        self.data.chunks_exact(self.dim).map(<[f32]>::to_vec).collect()
    }
}

/// One stored vector of a point.
#[derive(Clone, Debug, PartialEq)]
pub enum Vector {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    Multi(MultiDenseVector),
}

impl Vector {
    /// What kind of vector this is, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Vector::Dense(_) => "dense",
            Vector::Sparse(_) => "sparse",
            Vector::Multi(_) => "multi",
        }
    }
}

/// Vectors of one point, by name (`""` = the unnamed vector).
pub type NamedVectors = BTreeMap<String, Vector>;

/// Qdrant's output shapes: a list, a list of lists, or `{"indices", "values"}`.
impl serde::Serialize for Vector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Vector::Dense(v) => v.serialize(s),
            Vector::Multi(m) => {
                let rows: Vec<&[f32]> = m.rows().collect();
                rows.serialize(s)
            }
            Vector::Sparse(sv) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("indices", &sv.indices)?;
                map.serialize_entry("values", &sv.values)?;
                map.end()
            }
        }
    }
}

/// Reads the shapes [`Vector`]'s `Serialize` writes (a list of numbers, a list of lists,
/// `{"indices", "values"}`), so vectors travel between peers in the form users see.
impl<'de> serde::Deserialize<'de> for Vector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Dense(Vec<f32>),
            Multi(Vec<Vec<f32>>),
            Sparse { indices: Vec<u32>, values: Vec<f32> },
        }
        match Shape::deserialize(d)? {
            Shape::Dense(v) => Ok(Vector::Dense(v)),
            Shape::Multi(rows) => MultiDenseVector::new(rows).map(Vector::Multi).map_err(D::Error::custom),
            Shape::Sparse { indices, values } => {
                SparseVector::new(indices, values).map(Vector::Sparse).map_err(D::Error::custom)
            }
        }
    }
}

/// Serialise a point's vectors as Qdrant shows them: the bare vector when the only one is
/// the unnamed vector, else an object by name.
pub fn serialize_named<S: serde::Serializer>(v: &Option<NamedVectors>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match v {
        None => s.serialize_none(),
        Some(m) if m.len() == 1 => match m.get(DEFAULT_VECTOR_NAME) {
            Some(only) => only.serialize(s),
            None => m.serialize(s),
        },
        Some(m) => m.serialize(s),
    }
}

/// A server-side inference request in place of a vector (Qdrant's `Document`).
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub text: String,
    pub model: String,
    /// Model options as given (`Bm25Config` for `qdrant/bm25`), checked by the model.
    pub options: Option<Value>,
}

/// One named vector as given by the user: a vector, or text for the server to embed.
#[derive(Clone, Debug, PartialEq)]
pub enum VectorItem {
    Vector(Vector),
    Document(Document),
}

/// A point's `vector` field as given by the user.
#[derive(Clone, Debug, PartialEq)]
pub enum VectorInput {
    /// A plain list (the unnamed dense vector) or a list of lists (the unnamed multivector).
    Unnamed(VectorItem),
    Named(BTreeMap<String, VectorItem>),
}

impl VectorInput {
    /// By name, the unnamed vector under [`DEFAULT_VECTOR_NAME`].
    pub fn into_named(self) -> BTreeMap<String, VectorItem> {
        match self {
            VectorInput::Unnamed(v) => BTreeMap::from([(DEFAULT_VECTOR_NAME.to_string(), v)]),
            VectorInput::Named(m) => m,
        }
    }

    /// Parse from JSON, naming the problem on failure.
    pub fn from_json(v: Value) -> Result<Self, String> {
        match v {
            Value::Object(map) if !is_single_item(&map) => {
                let mut out = BTreeMap::new();
                for (name, val) in map {
                    out.insert(name.clone(), VectorItem::from_json(val).map_err(|e| format!("vector {name:?}: {e}"))?);
                }
                Ok(VectorInput::Named(out))
            }
            other => VectorItem::from_json(other).map(VectorInput::Unnamed).map_err(|e| format!("vector: {e}")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for VectorInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        VectorInput::from_json(v).map_err(serde::de::Error::custom)
    }
}

/// An object that is itself one vector (sparse or a document), not a map of names.
fn is_single_item(map: &serde_json::Map<String, Value>) -> bool {
    (map.contains_key("indices") && map.get("indices").is_some_and(Value::is_array))
        || (map.contains_key("text") && map.get("model").is_some_and(Value::is_string))
}

impl VectorItem {
    /// One vector: `[..]` dense, `[[..], ..]` multi, `{"indices", "values"}` sparse,
    /// `{"text", "model", "options"}` a document; `{"image"|"object", ...}` refused.
    pub fn from_json(v: Value) -> Result<Self, String> {
        match v {
            Value::Array(items) => {
                if items.first().is_some_and(Value::is_array) {
                    let rows = items
                        .iter()
                        .enumerate()
                        .map(|(i, r)| match r {
                            Value::Array(xs) => parse_dense(xs).map_err(|e| format!("[{i}]: {e}")),
                            other => Err(format!("[{i}]: expected a list of numbers, got {}", kind(other))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    MultiDenseVector::new(rows).map(|m| VectorItem::Vector(Vector::Multi(m)))
                } else {
                    parse_dense(&items).map(|v| VectorItem::Vector(Vector::Dense(v)))
                }
            }
            Value::Object(o) if o.contains_key("indices") || o.contains_key("values") => {
                let indices = match o.get("indices") {
                    Some(Value::Array(xs)) => xs
                        .iter()
                        .enumerate()
                        .map(|(i, x)| {
                            x.as_u64()
                                .and_then(|n| u32::try_from(n).ok())
                                .ok_or_else(|| format!("indices[{i}]: expected an integer from 0 to 4294967295, got {x}"))
                        })
                        .collect::<Result<Vec<u32>, _>>()?,
                    _ => return Err("sparse vector: indices must be a list of integers".into()),
                };
                let values = match o.get("values") {
                    Some(Value::Array(xs)) => parse_dense(xs).map_err(|e| format!("values: {e}"))?,
                    _ => return Err("sparse vector: values must be a list of numbers".into()),
                };
                if let Some(k) = o.keys().find(|k| *k != "indices" && *k != "values") {
                    return Err(format!("sparse vector: unknown field {k:?}"));
                }
                SparseVector::new(indices, values)
                    .map(|s| VectorItem::Vector(Vector::Sparse(s)))
                    .map_err(|e| format!("sparse vector: {e}"))
            }
            Value::Object(o) if o.contains_key("text") => {
                let text = o.get("text").and_then(Value::as_str).ok_or("document: text must be a string")?.to_string();
                let model = o
                    .get("model")
                    .and_then(Value::as_str)
                    .ok_or("document: model must be a string naming the model, e.g. \"qdrant/bm25\"")?
                    .to_string();
                if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "text" | "model" | "options")) {
                    return Err(format!("document: unknown field {k:?}"));
                }
                let options = o.get("options").filter(|v| !v.is_null()).cloned();
                Ok(VectorItem::Document(Document { text, model, options }))
            }
            Value::Object(o) if o.contains_key("image") || o.contains_key("object") => {
                Err("server-side inference of images and objects needs an inference provider, and none is configured".into())
            }
            other => Err(format!(
                "expected a list of numbers, a list of lists, a sparse vector {{\"indices\", \"values\"}} or a document, got {}",
                kind(&other)
            )),
        }
    }
}

fn parse_dense(items: &[Value]) -> Result<Vec<f32>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x.as_f64() {
            Some(f) if f.is_finite() && (f as f32).is_finite() => Ok(f as f32),
            Some(f) if f.is_finite() => Err(format!("element {i} ({x}) is outside the range of a 32-bit float")),
            _ => Err(format!("element {i} is not a finite number: {x}")),
        })
        .collect()
}

/// JSON kind name for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a vector name refers to in a collection.
#[derive(Clone, Copy, Debug)]
pub enum VectorSpec<'a> {
    Dense(&'a VectorParams),
    Sparse(&'a SparseVectorParams),
}

impl<'a> VectorSpec<'a> {
    /// Look a name up among the dense (and multi) vectors, then the sparse ones.
    pub fn of(params: &'a CollectionParams, name: &str) -> Option<Self> {
        params
            .vectors
            .get(name)
            .map(VectorSpec::Dense)
            .or_else(|| params.sparse_vectors.as_ref().and_then(|s| s.get(name)).map(VectorSpec::Sparse))
    }

    /// The error for an unknown vector name, in Qdrant's words.
    pub fn unknown(name: &str) -> ValidationError {
        if name.is_empty() {
            ValidationError::new("Wrong input: Vector with name `` is not configured: this collection has only named vectors; give {\"name\": [...]}")
        } else {
            ValidationError::new(format!("Wrong input: Not existing vector name error: {name}"))
        }
    }

    /// Check one vector against its config: the kind must match, dense and inner multivector
    /// dimensions must equal `size`.
    pub fn check(&self, name: &str, v: &Vector) -> Result<(), ValidationError> {
        let shown = if name.is_empty() { "the unnamed vector" } else { name };
        match (self, v) {
            (VectorSpec::Dense(p), Vector::Dense(d)) if p.multivector_config.is_none() => check_dim(p.size, d.len()),
            (VectorSpec::Dense(p), Vector::Multi(m)) if p.multivector_config.is_some() => check_dim(p.size, m.dim()),
            // `[]` parses as an empty dense list: for a multivector it is one without vectors.
            (VectorSpec::Dense(p), Vector::Dense(d)) if p.multivector_config.is_some() && d.is_empty() => {
                Err(ValidationError::new(format!("Wrong input: {shown}: a multivector needs at least one vector")))
            }
            (VectorSpec::Dense(_), Vector::Dense(_)) => Err(ValidationError::new(format!(
                "Wrong input: {shown} is a multivector: give a list of vectors ([[...], ...]), not one vector"
            ))),
            (VectorSpec::Dense(_), Vector::Multi(_)) => Err(ValidationError::new(format!(
                "Wrong input: {shown} is a single dense vector, not a multivector (it has no multivector_config)"
            ))),
            (VectorSpec::Dense(_), Vector::Sparse(_)) => Err(ValidationError::new(format!(
                "Wrong input: {shown} is a dense vector, but a sparse vector was given"
            ))),
            (VectorSpec::Sparse(_), Vector::Sparse(_)) => Ok(()),
            (VectorSpec::Sparse(_), other) => Err(ValidationError::new(format!(
                "Wrong input: {shown} is a sparse vector, but a {} vector was given",
                other.kind_name()
            ))),
        }
    }
}

fn check_dim(expected: u64, got: usize) -> Result<(), ValidationError> {
    if got as u64 != expected {
        return Err(ValidationError::new(format!(
            "Wrong input: Vector dimension error: expected dim: {expected}, got {got}"
        )));
    }
    Ok(())
}

/// Check vectors against the collection config: every name must exist with the same kind and
/// every dimension match.
pub fn validate_vectors(vectors: &NamedVectors, params: &CollectionParams) -> Result<(), ValidationError> {
    for (name, v) in vectors {
        VectorSpec::of(params, name).ok_or_else(|| VectorSpec::unknown(name))?.check(name, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Result<VectorItem, String> {
        VectorItem::from_json(v)
    }

    #[test]
    fn parses_forms() {
        assert_eq!(
            VectorInput::from_json(json!([1, 2.5])),
            Ok(VectorInput::Unnamed(VectorItem::Vector(Vector::Dense(vec![1.0, 2.5]))))
        );
        let named = VectorInput::from_json(json!({"a": [1.0]})).expect("named").into_named();
        assert_eq!(named.get("a"), Some(&VectorItem::Vector(Vector::Dense(vec![1.0]))));
        assert!(VectorInput::from_json(json!(["x"])).is_err());
        assert!(VectorInput::from_json(json!(3)).is_err());
        let s = VectorInput::from_json(json!({"s": {"indices": [3, 1], "values": [0.5, 0.25]}})).expect("sparse");
        assert_eq!(
            s.into_named().remove("s"),
            Some(VectorItem::Vector(Vector::Sparse(SparseVector { indices: vec![1, 3], values: vec![0.25, 0.5] })))
        );
        let m = item(json!([[1.0, 2.0], [3.0, 4.0]])).expect("multi");
        let VectorItem::Vector(Vector::Multi(m)) = m else { panic!("not multi: {m:?}") };
        assert_eq!((m.dim(), m.count()), (2, 2));
        let d = VectorInput::from_json(json!({"text": "hello", "model": "qdrant/bm25"})).expect("doc");
        assert!(matches!(d, VectorInput::Unnamed(VectorItem::Document(Document { .. }))));
    }

    #[test]
    fn refuses_bad_vectors() {
        for bad in [
            json!({"indices": [1, 1], "values": [0.5, 0.5]}),
            json!({"indices": [1, 2], "values": [0.5]}),
            json!({"indices": [-1], "values": [0.5]}),
            json!({"indices": [1], "values": ["x"]}),
            json!({"indices": [1], "values": [0.5], "extra": 1}),
            json!([[1.0, 2.0], [3.0]]),
            json!([[1.0], "x"]),
            json!([1e39]),
            json!({"image": "x.png", "model": "clip"}),
        ] {
            assert!(item(bad.clone()).is_err(), "{bad} should be refused");
        }
        assert!(item(json!([[]])).is_err(), "empty inner vector");
        assert!(MultiDenseVector::new(vec![]).is_err(), "empty multivector");
    }

    #[test]
    fn sparse_dot_and_overlap() {
        let a = SparseVector::new(vec![1, 3, 5], vec![1.0, 2.0, 3.0]).expect("a");
        let b = SparseVector::new(vec![3, 4, 5], vec![0.5, 9.0, 2.0]).expect("b");
        assert_eq!(a.dot(&b), 2.0 * 0.5 + 3.0 * 2.0);
        assert!(a.overlaps(&b));
        let c = SparseVector::new(vec![2], vec![1.0]).expect("c");
        assert!(!a.overlaps(&c));
        assert_eq!(a.dot(&c), 0.0);
    }
}
