//! Payload index declarations: `field_type` + `field_index_params` as the REST
//! `field_schema` (`"keyword"` or `{"type": "keyword", ...}`), parsed by the same code.

// Deprecated protobuf fields (`on_disk`, `always_ram`, old operation variants) are what older
// clients still send: they are read here on purpose.
#![allow(deprecated)]

use qd_collection::catalog::PayloadIndexSpec;
use qdrant_client::qdrant as pb;
use serde_json::{json, Map, Value};

use super::{invalid, Result};

fn type_name(t: pb::FieldType) -> &'static str {
    match t {
        pb::FieldType::Keyword => "keyword",
        pb::FieldType::Integer => "integer",
        pb::FieldType::Float => "float",
        pb::FieldType::Geo => "geo",
        pb::FieldType::Text => "text",
        pb::FieldType::Bool => "bool",
        pb::FieldType::Datetime => "datetime",
        pb::FieldType::Uuid => "uuid",
    }
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v.into());
    }
}

fn tokenizer(t: i32) -> Option<&'static str> {
    match pb::TokenizerType::try_from(t).ok()? {
        pb::TokenizerType::Prefix => Some("prefix"),
        pb::TokenizerType::Whitespace => Some("whitespace"),
        pb::TokenizerType::Word => Some("word"),
        pb::TokenizerType::Multilingual => Some("multilingual"),
        pb::TokenizerType::Code => Some("code"),
        pb::TokenizerType::Unknown => None,
    }
}

/// The params of an index as the object fields of `field_schema`, with its type name.
fn params(p: pb::payload_index_params::IndexParams) -> (&'static str, Map<String, Value>) {
    use pb::payload_index_params::IndexParams as P;
    let mut m = Map::new();
    let ty = match p {
        P::KeywordIndexParams(k) => {
            put(&mut m, "is_tenant", k.is_tenant);
            put(&mut m, "on_disk", k.on_disk);
            "keyword"
        }
        P::IntegerIndexParams(i) => {
            put(&mut m, "lookup", i.lookup);
            put(&mut m, "range", i.range);
            put(&mut m, "is_principal", i.is_principal);
            put(&mut m, "on_disk", i.on_disk);
            "integer"
        }
        P::FloatIndexParams(f) => {
            put(&mut m, "is_principal", f.is_principal);
            put(&mut m, "on_disk", f.on_disk);
            "float"
        }
        P::GeoIndexParams(g) => {
            put(&mut m, "on_disk", g.on_disk);
            "geo"
        }
        P::TextIndexParams(t) => {
            put(&mut m, "tokenizer", tokenizer(t.tokenizer));
            put(&mut m, "lowercase", t.lowercase);
            put(&mut m, "min_token_len", t.min_token_len);
            put(&mut m, "max_token_len", t.max_token_len);
            put(&mut m, "on_disk", t.on_disk);
            put(&mut m, "phrase_matching", t.phrase_matching);
            put(&mut m, "ascii_folding", t.ascii_folding);
            if let Some(sw) = t.stopwords {
                m.insert("stopwords".into(), json!({"languages": sw.languages, "custom": sw.custom}));
            }
            match t.stemmer.and_then(|s| s.stemming_params) {
                Some(pb::stemming_algorithm::StemmingParams::Snowball(s)) => {
                    m.insert("stemmer".into(), json!({"type": "snowball", "language": s.language}));
                }
                Some(pb::stemming_algorithm::StemmingParams::Disabled(_)) => {
                    m.insert("stemmer".into(), json!({"type": "none"}));
                }
                None => {}
            }
            "text"
        }
        P::BoolIndexParams(b) => {
            put(&mut m, "on_disk", b.on_disk);
            "bool"
        }
        P::DatetimeIndexParams(d) => {
            put(&mut m, "is_principal", d.is_principal);
            put(&mut m, "on_disk", d.on_disk);
            "datetime"
        }
        P::UuidIndexParams(u) => {
            put(&mut m, "is_tenant", u.is_tenant);
            put(&mut m, "on_disk", u.on_disk);
            "uuid"
        }
    };
    (ty, m)
}

/// The index a `CreateFieldIndexCollection` declares.
pub fn spec(field_type: Option<i32>, index_params: Option<pb::PayloadIndexParams>) -> Result<PayloadIndexSpec> {
    let declared = field_type
        .map(|t| pb::FieldType::try_from(t).map(type_name).map_err(|_| invalid("field_type: unknown value")))
        .transpose()?;
    let schema = match index_params.and_then(|p| p.index_params) {
        None => Value::String(declared.ok_or_else(|| invalid("field_type: missing (e.g. Keyword)"))?.to_string()),
        Some(p) => {
            let (ty, mut m) = params(p);
            if declared.is_some_and(|d| d != ty) {
                return Err(invalid(format!("field_index_params: {ty} params do not match field_type")));
            }
            m.insert("type".into(), json!(ty));
            Value::Object(m)
        }
    };
    PayloadIndexSpec::from_json(&schema).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_alone_or_with_params_declares_an_index() {
        assert_eq!(spec(Some(pb::FieldType::Keyword as i32), None).expect("ok").data_type, "keyword");
        let p = pb::PayloadIndexParams {
            index_params: Some(pb::payload_index_params::IndexParams::IntegerIndexParams(pb::IntegerIndexParams {
                lookup: Some(true),
                range: Some(false),
                ..Default::default()
            })),
        };
        let s = spec(Some(pb::FieldType::Integer as i32), Some(p)).expect("ok");
        assert_eq!(s.data_type, "integer");
        assert!(spec(None, None).is_err());
    }
}
