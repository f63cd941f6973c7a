//! `with_payload` and `with_vector` selectors, in every form Qdrant accepts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vectors::NamedVectors;
use crate::Payload;

/// `with_payload`: `true`/`false`, a list of keys to include, `{"include": [...]}` or
/// `{"exclude": [...]}`. Keys are top-level names or dotted paths (`a.b`).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum PayloadSelector {
    #[default]
    None,
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl PayloadSelector {
    pub fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(PayloadSelector::None),
            Value::Bool(true) => Ok(PayloadSelector::All),
            Value::Bool(false) => Ok(PayloadSelector::None),
            Value::Array(keys) => strings(keys, "with_payload").map(PayloadSelector::Include),
            Value::Object(o) => {
                if let Some(keys) = o.get("include").and_then(Value::as_array) {
                    strings(keys, "with_payload.include").map(PayloadSelector::Include)
                } else if let Some(keys) = o.get("exclude").and_then(Value::as_array) {
                    strings(keys, "with_payload.exclude").map(PayloadSelector::Exclude)
                } else {
                    Err("with_payload: expected {\"include\": [...]} or {\"exclude\": [...]}".into())
                }
            }
            _ => Err("with_payload: expected a boolean, a list of keys, or {include|exclude: [...]}".into()),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, PayloadSelector::None)
    }

    /// The selected part of a payload (`None` when nothing is selected).
    pub fn apply(&self, payload: Option<&Payload>) -> Option<Payload> {
        match self {
            PayloadSelector::None => None,
            PayloadSelector::All => Some(payload.cloned().unwrap_or_default()),
            PayloadSelector::Include(keys) => {
                let mut out = Payload::new();
                if let Some(p) = payload {
                    for k in keys {
                        copy_path(p, &mut out, k);
                    }
                }
                Some(out)
            }
            PayloadSelector::Exclude(keys) => {
                let mut out = payload.cloned().unwrap_or_default();
                for k in keys {
                    remove_path(&mut out, k);
                }
                Some(out)
            }
        }
    }
}

fn strings(items: &[Value], what: &str) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|k| k.as_str().map(str::to_string).ok_or_else(|| format!("{what}: keys must be strings")))
        .collect()
}

/// Copy `a.b.c` from `src` into `dst`, creating intermediate objects.
fn copy_path(src: &Payload, dst: &mut Payload, path: &str) {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else { return };
    let rest: Vec<&str> = parts.collect();
    let Some(v) = src.get(first) else { return };
    if rest.is_empty() {
        dst.insert(first.to_string(), v.clone());
        return;
    }
    if let Value::Object(inner) = v {
        let entry = dst.entry(first.to_string()).or_insert_with(|| Value::Object(Payload::new()));
        if let Value::Object(d) = entry {
            copy_path(inner, d, &rest.join("."));
        }
    }
}

fn remove_path(p: &mut Payload, path: &str) {
    match path.split_once('.') {
        None => {
            p.remove(path);
        }
        Some((head, tail)) => {
            if let Some(Value::Object(inner)) = p.get_mut(head) {
                remove_path(inner, tail);
            }
        }
    }
}

/// `with_vector`: `true`/`false` or a list of vector names.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum VectorSelector {
    #[default]
    None,
    All,
    Names(Vec<String>),
}

impl VectorSelector {
    pub fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null | Value::Bool(false) => Ok(VectorSelector::None),
            Value::Bool(true) => Ok(VectorSelector::All),
            Value::Array(names) => strings(names, "with_vector").map(VectorSelector::Names),
            _ => Err("with_vector: expected a boolean or a list of vector names".into()),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, VectorSelector::None)
    }

    pub fn apply(&self, vectors: NamedVectors) -> Option<NamedVectors> {
        match self {
            VectorSelector::None => None,
            VectorSelector::All => Some(vectors),
            VectorSelector::Names(names) => {
                Some(vectors.into_iter().filter(|(k, _)| names.iter().any(|n| n == k)).collect())
            }
        }
    }
}

macro_rules! json_serde {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                <$t>::from_json(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}
json_serde!(PayloadSelector);
json_serde!(VectorSelector);

impl Serialize for VectorSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VectorSelector::None => s.serialize_bool(false),
            VectorSelector::All => s.serialize_bool(true),
            VectorSelector::Names(names) => names.serialize(s),
        }
    }
}

impl Serialize for PayloadSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PayloadSelector::None => s.serialize_bool(false),
            PayloadSelector::All => s.serialize_bool(true),
            PayloadSelector::Include(k) => serde_json::json!({ "include": k }).serialize(s),
            PayloadSelector::Exclude(k) => serde_json::json!({ "exclude": k }).serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_selector_forms() {
        let p = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        let p = p.as_object();
        let sel = PayloadSelector::from_json(&json!(["a", "b.c"])).expect("list");
        assert_eq!(Value::Object(sel.apply(p).expect("some")), json!({"a": 1, "b": {"c": 2}}));
        let sel = PayloadSelector::from_json(&json!({"exclude": ["b.d", "e"]})).expect("exclude");
        assert_eq!(Value::Object(sel.apply(p).expect("some")), json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(PayloadSelector::from_json(&json!(false)).expect("bool").apply(p), None);
        assert!(PayloadSelector::from_json(&json!(3)).is_err());
    }
}
