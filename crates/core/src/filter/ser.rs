//! AST -> JSON, in the shapes Qdrant uses (and [`super::parse`] reads back).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::{
    AnyVariants, Condition, FieldCheck, Filter, GeoLineString, GeoPoint, Match, MatchValue, Range, RangeCondition,
    ValuesCount,
};

pub(super) fn filter(f: &Filter) -> Value {
    let mut out = Map::new();
    for (name, list) in [("must", &f.must), ("should", &f.should), ("must_not", &f.must_not)] {
        if !list.is_empty() {
            out.insert(name.to_string(), Value::Array(list.iter().map(condition).collect()));
        }
    }
    if let Some(ms) = &f.min_should {
        out.insert(
            "min_should".to_string(),
            json!({
                "conditions": ms.conditions.iter().map(condition).collect::<Vec<_>>(),
                "min_count": ms.min_count,
            }),
        );
    }
    Value::Object(out)
}

pub(super) fn condition(c: &Condition) -> Value {
    match c {
        Condition::Field(fc) => {
            let (name, check) = match &fc.check {
                FieldCheck::Match(m) => ("match", match_(m)),
                FieldCheck::FullText(ft) => ("match", match_(&ft.written)),
                FieldCheck::Range(RangeCondition::Numeric(r)) => ("range", range(r, |x| json!(x))),
                FieldCheck::Range(RangeCondition::Datetime(r)) => ("range", range(r, datetime)),
                FieldCheck::GeoBoundingBox(b) => (
                    "geo_bounding_box",
                    json!({"top_left": point(&b.top_left), "bottom_right": point(&b.bottom_right)}),
                ),
                FieldCheck::GeoRadius(r) => ("geo_radius", json!({"center": point(&r.center), "radius": r.radius})),
                FieldCheck::GeoPolygon(p) => {
                    let mut poly = Map::new();
                    poly.insert("exterior".into(), ring(&p.exterior));
                    if !p.interiors.is_empty() {
                        poly.insert("interiors".into(), Value::Array(p.interiors.iter().map(ring).collect()));
                    }
                    ("geo_polygon", Value::Object(poly))
                }
                FieldCheck::ValuesCount(vc) => ("values_count", values_count(vc)),
                FieldCheck::IsEmpty(b) => ("is_empty", Value::Bool(*b)),
                FieldCheck::IsNull(b) => ("is_null", Value::Bool(*b)),
            };
            let mut out = Map::new();
            out.insert("key".into(), Value::String(fc.key.to_string()));
            out.insert(name.into(), check);
            Value::Object(out)
        }
        Condition::IsEmpty(k) => json!({"is_empty": {"key": k.to_string()}}),
        Condition::IsNull(k) => json!({"is_null": {"key": k.to_string()}}),
        Condition::HasId(ids) => json!({ "has_id": ids }),
        Condition::HasVector(name) => json!({ "has_vector": name }),
        Condition::Nested(n) => {
            json!({"nested": {"key": n.key.to_string(), "filter": filter(&n.filter)}})
        }
        Condition::Slice(s) => json!({"slice": {"total": s.total, "index": s.index}}),
        Condition::Filter(f) => filter(f),
    }
}

fn match_(m: &Match) -> Value {
    match m {
        Match::Value(MatchValue::Keyword(s)) => json!({ "value": s }),
        Match::Value(MatchValue::Integer(i)) => json!({ "value": i }),
        Match::Value(MatchValue::Bool(b)) => json!({ "value": b }),
        Match::Text(t) => json!({ "text": t }),
        Match::TextAny(t) => json!({ "text_any": t }),
        Match::Phrase(t) => json!({ "phrase": t }),
        Match::Prefix(t) => json!({ "prefix": t }),
        Match::Substring(t) => json!({ "substring": t }),
        Match::Any(a) => json!({ "any": any(a) }),
        Match::Except(a) => json!({ "except": any(a) }),
    }
}

fn any(a: &AnyVariants) -> Value {
    match a {
        AnyVariants::Keywords(k) => json!(k),
        AnyVariants::Integers(i) => json!(i),
    }
}

fn range<T: Copy>(r: &Range<T>, f: impl Fn(T) -> Value) -> Value {
    let mut out = Map::new();
    for (name, b) in [("lt", r.lt), ("gt", r.gt), ("gte", r.gte), ("lte", r.lte)] {
        if let Some(x) = b {
            out.insert(name.into(), f(x));
        }
    }
    Value::Object(out)
}

fn datetime(dt: DateTime<Utc>) -> Value {
    Value::String(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn values_count(vc: &ValuesCount) -> Value {
    let mut out = Map::new();
    for (name, b) in [("lt", vc.lt), ("gt", vc.gt), ("gte", vc.gte), ("lte", vc.lte)] {
        if let Some(x) = b {
            out.insert(name.into(), json!(x));
        }
    }
    Value::Object(out)
}

fn point(p: &GeoPoint) -> Value {
    json!({"lon": p.lon, "lat": p.lat})
}

fn ring(r: &GeoLineString) -> Value {
    json!({ "points": r.points.iter().map(point).collect::<Vec<_>>() })
}
