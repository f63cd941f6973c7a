//! Vectors as they arrive in requests and as they are stored.
//!
//! Stored form is always [`NamedVectors`]: the unnamed vector is stored under
//! [`crate::config::DEFAULT_VECTOR_NAME`]. The input form [`VectorInput`] is what a point's
//! `vector` field holds: a plain list, or an object of named lists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{VectorsConfig, DEFAULT_VECTOR_NAME};
use crate::error::ValidationError;

/// Vectors of one point, by name (`""` = the unnamed vector).
pub type NamedVectors = BTreeMap<String, Vec<f32>>;

/// A point's `vector` field as given by the user.
#[derive(Clone, Debug, PartialEq)]
pub enum VectorInput {
    Dense(Vec<f32>),
    Named(BTreeMap<String, Vec<f32>>),
}

impl VectorInput {
    pub fn into_named(self) -> NamedVectors {
        match self {
            VectorInput::Dense(v) => BTreeMap::from([(DEFAULT_VECTOR_NAME.to_string(), v)]),
            VectorInput::Named(m) => m,
        }
    }

    /// Parse from JSON, naming the problem on failure (sparse and multi-vectors are refused).
    pub fn from_json(v: Value) -> Result<Self, String> {
        match v {
            Value::Array(items) => parse_dense(&items).map(VectorInput::Dense),
            Value::Object(map) => {
                let mut out = BTreeMap::new();
                for (name, val) in map {
                    match val {
                        Value::Array(items) => {
                            if items.first().is_some_and(Value::is_array) {
                                return Err(format!("vector {name:?}: multivectors are not supported yet"));
                            }
                            out.insert(name.clone(), parse_dense(&items).map_err(|e| format!("vector {name:?}: {e}"))?);
                        }
                        Value::Object(o) if o.contains_key("indices") => {
                            return Err(format!("vector {name:?}: sparse vectors are not supported yet"));
                        }
                        Value::Object(o) if o.contains_key("text") || o.contains_key("image") => {
                            return Err(format!("vector {name:?}: server-side inference is not supported"));
                        }
                        other => {
                            return Err(format!("vector {name:?}: expected a list of numbers, got {}", kind(&other)))
                        }
                    }
                }
                Ok(VectorInput::Named(out))
            }
            other => {
                Err(format!("vector: expected a list of numbers or an object of named vectors, got {}", kind(&other)))
            }
        }
    }
}

impl<'de> Deserialize<'de> for VectorInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        VectorInput::from_json(v).map_err(serde::de::Error::custom)
    }
}

impl Serialize for VectorInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VectorInput::Dense(v) => v.serialize(s),
            VectorInput::Named(m) => m.serialize(s),
        }
    }
}

fn parse_dense(items: &[Value]) -> Result<Vec<f32>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x.as_f64() {
            Some(f) if f.is_finite() => Ok(f as f32),
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

/// Check vectors against the collection config: every name must exist and every dimension match.
/// With `require_all`, every configured vector must be present (a full upsert may omit some
/// named vectors in Qdrant, so callers pass `false` there).
pub fn validate_vectors(vectors: &NamedVectors, config: &VectorsConfig) -> Result<(), ValidationError> {
    for (name, v) in vectors {
        let params = config.get(name).ok_or_else(|| {
            if name.is_empty() {
                ValidationError::new("Wrong input: Vector with name `` is not configured: this collection has only named vectors; give {\"name\": [...]}")
            } else {
                ValidationError::new(format!("Wrong input: Not existing vector name error: {name}"))
            }
        })?;
        if v.len() as u64 != params.size {
            return Err(ValidationError::new(format!(
                "Wrong input: Vector dimension error: expected dim: {}, got {}",
                params.size,
                v.len()
            )));
        }
    }
    Ok(())
}

/// Output form: a plain list when the only vector is the unnamed one, else a map.
pub fn vectors_to_json(vectors: &NamedVectors) -> Value {
    if vectors.len() == 1 {
        if let Some(v) = vectors.get(DEFAULT_VECTOR_NAME) {
            return serde_json::json!(v);
        }
    }
    serde_json::json!(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_forms() {
        assert_eq!(VectorInput::from_json(json!([1, 2.5])), Ok(VectorInput::Dense(vec![1.0, 2.5])));
        let named = VectorInput::from_json(json!({"a": [1.0]})).expect("named");
        assert_eq!(named.into_named().get("a"), Some(&vec![1.0]));
        assert!(VectorInput::from_json(json!(["x"])).is_err());
        assert!(VectorInput::from_json(json!({"s": {"indices": [1], "values": [0.5]}})).is_err());
        assert!(VectorInput::from_json(json!(3)).is_err());
    }
}
