//! Evaluation of a filter against one point. Pure: everything comes through [`PointView`].

use serde_json::Value;

use super::{
    geo_point_of, parse_datetime, text_tokens, AnyVariants, Condition, FieldCheck, FieldCondition, Filter, Match,
    MatchValue, RangeCondition, ValuesCount,
};
use crate::{Payload, PointId};

/// What a filter may ask about a point.
pub trait PointView {
    fn id(&self) -> PointId;
    /// The point's payload; `None` is treated as an empty payload.
    fn payload(&self) -> Option<&Payload>;
    /// Whether the point has the named vector (`""` is the unnamed one).
    fn has_vector(&self, name: &str) -> bool;
}

/// What conditions see: a payload (the point's, or one element inside `nested`), and the
/// point itself outside `nested`.
struct Ctx<'a> {
    payload: &'a Payload,
    point: Option<&'a dyn PointView>,
}

impl Filter {
    /// Whether the point passes the filter.
    pub fn check(&self, point: &dyn PointView) -> bool {
        let empty = Payload::new();
        let payload = point.payload().unwrap_or(&empty);
        self.eval(&Ctx { payload, point: Some(point) })
    }

    /// Whether a payload alone passes the filter (as inside `nested`: `has_id`, `has_vector`
    /// and `slice` never hold).
    pub fn check_payload(&self, payload: &Payload) -> bool {
        self.eval(&Ctx { payload, point: None })
    }

    fn eval(&self, ctx: &Ctx<'_>) -> bool {
        self.must.iter().all(|c| c.eval(ctx))
            && !self.must_not.iter().any(|c| c.eval(ctx))
            && (self.should.is_empty() || self.should.iter().any(|c| c.eval(ctx)))
            && self
                .min_should
                .as_ref()
                .is_none_or(|ms| ms.conditions.iter().filter(|c| c.eval(ctx)).count() >= ms.min_count)
    }
}

impl Condition {
    fn eval(&self, ctx: &Ctx<'_>) -> bool {
        match self {
            Condition::Field(fc) => fc.check_payload(ctx.payload),
            Condition::IsEmpty(key) => is_empty(&key.values(ctx.payload)),
            Condition::IsNull(key) => is_null(&key.values(ctx.payload)),
            Condition::HasId(ids) => ctx.point.is_some_and(|p| ids.contains(&p.id())),
            Condition::HasVector(name) => ctx.point.is_some_and(|p| p.has_vector(name)),
            Condition::Slice(s) => ctx.point.is_some_and(|p| s.contains(&p.id())),
            Condition::Nested(n) => n
                .key
                .array_key()
                .values(ctx.payload)
                .into_iter()
                .filter_map(Value::as_object)
                .any(|element| n.filter.eval(&Ctx { payload: element, point: None })),
            Condition::Filter(f) => f.eval(ctx),
        }
    }
}

/// Missing, or every value `null` or `[]`.
fn is_empty(values: &[&Value]) -> bool {
    values.iter().all(|v| match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    })
}

/// Some value `null`, or an array with a `null` element.
fn is_null(values: &[&Value]) -> bool {
    values.iter().any(|v| match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(Value::is_null),
        _ => false,
    })
}

impl ValuesCount {
    /// Counts per selected value (array → length, `null` → 0, else 1; nothing selected → one
    /// count of 0); holds when one count satisfies every bound.
    pub fn check_values(&self, values: &[&Value]) -> bool {
        if values.iter().all(|v| v.is_null()) {
            return self.contains(0);
        }
        values.iter().any(|v| {
            self.contains(match v {
                Value::Null => 0,
                Value::Array(items) => items.len(),
                _ => 1,
            })
        })
    }
}

impl FieldCondition {
    /// Whether the payload satisfies this condition.
    pub fn check_payload(&self, payload: &Payload) -> bool {
        match &self.check {
            FieldCheck::ValuesCount(vc) => vc.check_values(&self.key.values(payload)),
            FieldCheck::IsEmpty(want) => is_empty(&self.key.values(payload)) == *want,
            FieldCheck::IsNull(want) => is_null(&self.key.values(payload)) == *want,
            FieldCheck::FullText(ft) => {
                let values: Vec<&str> = self.key.values_flat(payload).into_iter().filter_map(Value::as_str).collect();
                ft.index.matches(&ft.query, &values)
            }
            other => self.key.values_flat(payload).into_iter().any(|v| other.check_value(v)),
        }
    }
}

impl FieldCheck {
    /// Whether one (already flattened) payload value satisfies a value-wise check: `match`,
    /// `range` or a geo check. `values_count`, `is_empty` and `is_null` look at all values of
    /// a key and answer `false` here.
    pub fn check_value(&self, v: &Value) -> bool {
        match self {
            FieldCheck::Match(m) => m.check_value(v),
            FieldCheck::Range(r) => r.check_value(v),
            FieldCheck::GeoBoundingBox(b) => geo_point_of(v).is_some_and(|p| b.contains(&p)),
            FieldCheck::GeoRadius(r) => geo_point_of(v).is_some_and(|p| r.contains(&p)),
            FieldCheck::GeoPolygon(poly) => geo_point_of(v).is_some_and(|p| poly.contains(&p)),
            FieldCheck::FullText(ft) => v.as_str().is_some_and(|s| ft.index.matches(&ft.query, &[s])),
            FieldCheck::ValuesCount(_) | FieldCheck::IsEmpty(_) | FieldCheck::IsNull(_) => false,
        }
    }
}

impl MatchValue {
    /// Strict equality by JSON type (integers match integer numbers only).
    pub fn check_value(&self, v: &Value) -> bool {
        match (self, v) {
            (MatchValue::Keyword(s), Value::String(x)) => s == x,
            (MatchValue::Integer(i), Value::Number(n)) => n.as_i64() == Some(*i),
            (MatchValue::Bool(b), Value::Bool(x)) => b == x,
            _ => false,
        }
    }
}

impl AnyVariants {
    /// Whether `v` equals one of the listed values (strictly by type).
    pub fn contains_value(&self, v: &Value) -> bool {
        match (self, v) {
            (AnyVariants::Keywords(list), Value::String(s)) => list.iter().any(|k| k == s),
            (AnyVariants::Integers(list), Value::Number(n)) => n.as_i64().is_some_and(|i| list.contains(&i)),
            _ => false,
        }
    }
}

impl Match {
    /// Whether one (already flattened) payload value matches.
    pub fn check_value(&self, v: &Value) -> bool {
        match self {
            Match::Value(mv) => mv.check_value(v),
            Match::Any(list) => list.contains_value(v),
            Match::Except(list) => !v.is_null() && !list.contains_value(v),
            Match::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Match::Substring(p) => v.as_str().is_some_and(|s| s.contains(p.as_str())),
            Match::Text(q) => v.as_str().is_some_and(|s| {
                let query = text_tokens(q);
                let doc = text_tokens(s);
                !query.is_empty() && query.iter().all(|t| doc.contains(t))
            }),
            Match::TextAny(q) => v.as_str().is_some_and(|s| {
                let doc = text_tokens(s);
                text_tokens(q).iter().any(|t| doc.contains(t))
            }),
            Match::Phrase(q) => v.as_str().is_some_and(|s| {
                let phrase = text_tokens(q);
                let doc = text_tokens(s);
                !phrase.is_empty() && doc.windows(phrase.len()).any(|w| w == phrase.as_slice())
            }),
        }
    }
}

impl RangeCondition {
    /// Numeric ranges read JSON numbers; datetime ranges read strings parsed as datetimes.
    pub fn check_value(&self, v: &Value) -> bool {
        match self {
            RangeCondition::Numeric(r) => v.as_f64().is_some_and(|x| r.contains(x)),
            RangeCondition::Datetime(r) => v.as_str().and_then(parse_datetime).is_some_and(|dt| r.contains(dt)),
        }
    }
}
