//! Protobuf filters as typed [`Filter`]s, checked with the same validation as JSON filters.

use qd_core::filter::{
    AnyVariants, Condition, FieldCheck, FieldCondition, Filter, GeoBoundingBox, GeoLineString, GeoPoint, GeoPolygon,
    GeoRadius, Match, MatchValue, MinShould, NestedCondition, Range, RangeCondition, SliceCondition, ValuesCount,
};
use qd_core::json_path::JsonPath;
use qdrant_client::qdrant as pb;

use super::values::{point_id, timestamp, usize_of};
use super::{invalid, Result};

/// An optional filter of a request, validated.
pub fn filter_opt(f: Option<pb::Filter>, what: &str) -> Result<Option<Filter>> {
    let Some(f) = f else { return Ok(None) };
    let f = filter(f, what)?;
    f.validate().map_err(|e| invalid(e.message))?;
    Ok(Some(f))
}

fn filter(f: pb::Filter, what: &str) -> Result<Filter> {
    let list = |cs: Vec<pb::Condition>, name: &str| {
        cs.into_iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{what}.{name}[{i}]")))
            .collect::<Result<Vec<_>>>()
    };
    let min_should = match f.min_should {
        None => None,
        Some(m) => Some(MinShould {
            conditions: list(m.conditions, "min_should.conditions")?,
            min_count: usize_of(m.min_count),
        }),
    };
    Ok(Filter {
        must: list(f.must, "must")?,
        should: list(f.should, "should")?,
        must_not: list(f.must_not, "must_not")?,
        min_should,
    })
}

fn path(key: &str, what: &str) -> Result<JsonPath> {
    key.parse().map_err(|e| invalid(format!("{what}.key: {e}")))
}

pub fn condition(c: pb::Condition, what: &str) -> Result<Condition> {
    use pb::condition::ConditionOneOf as C;
    Ok(match c.condition_one_of {
        Some(C::Field(fc)) => field(fc, what)?,
        Some(C::IsEmpty(e)) => Condition::IsEmpty(path(&e.key, what)?),
        Some(C::IsNull(n)) => Condition::IsNull(path(&n.key, what)?),
        Some(C::HasId(h)) => Condition::HasId(
            h.has_id.into_iter().map(|id| point_id(Some(id), &format!("{what}.has_id"))).collect::<Result<_>>()?,
        ),
        Some(C::HasVector(v)) => Condition::HasVector(v.has_vector),
        Some(C::Filter(f)) => Condition::Filter(filter(f, what)?),
        Some(C::Nested(n)) => {
            let inner = n.filter.ok_or_else(|| invalid(format!("{what}.nested.filter: missing")))?;
            Condition::Nested(NestedCondition {
                key: path(&n.key, what)?,
                filter: filter(inner, &format!("{what}.nested.filter"))?,
            })
        }
        Some(C::Slice(s)) => Condition::Slice(SliceCondition { total: u64::from(s.total), index: u64::from(s.index) }),
        None => return Err(invalid(format!("{what}: empty condition"))),
    })
}

fn geo(p: Option<pb::GeoPoint>, what: &str) -> Result<GeoPoint> {
    let p = p.ok_or_else(|| invalid(format!("{what}: missing point")))?;
    Ok(GeoPoint { lon: p.lon, lat: p.lat })
}

fn ring(r: pb::GeoLineString) -> GeoLineString {
    GeoLineString { points: r.points.into_iter().map(|p| GeoPoint { lon: p.lon, lat: p.lat }).collect() }
}

fn datetime_range(r: pb::DatetimeRange, what: &str) -> Result<Range<chrono::DateTime<chrono::Utc>>> {
    let t = |v: Option<prost_types::Timestamp>, b: &str| v.map(|t| timestamp(t, &format!("{what}.{b}"))).transpose();
    Ok(Range { lt: t(r.lt, "lt")?, gt: t(r.gt, "gt")?, gte: t(r.gte, "gte")?, lte: t(r.lte, "lte")? })
}

fn matching(m: pb::Match, what: &str) -> Result<Match> {
    use pb::r#match::MatchValue as M;
    Ok(match m.match_value {
        Some(M::Keyword(s)) => Match::Value(MatchValue::Keyword(s)),
        Some(M::Integer(i)) => Match::Value(MatchValue::Integer(i)),
        Some(M::Boolean(b)) => Match::Value(MatchValue::Bool(b)),
        Some(M::Text(s)) => Match::Text(s),
        Some(M::TextAny(s)) => Match::TextAny(s),
        Some(M::Phrase(s)) => Match::Phrase(s),
        Some(M::Prefix(s)) => Match::Prefix(s),
        Some(M::Substring(s)) => Match::Substring(s),
        Some(M::Keywords(k)) => Match::Any(AnyVariants::Keywords(k.strings)),
        Some(M::Integers(i)) => Match::Any(AnyVariants::Integers(i.integers)),
        Some(M::ExceptKeywords(k)) => Match::Except(AnyVariants::Keywords(k.strings)),
        Some(M::ExceptIntegers(i)) => Match::Except(AnyVariants::Integers(i.integers)),
        None => return Err(invalid(format!("{what}.match: empty match"))),
    })
}

/// A field condition; several checks on one message must all hold (as in Qdrant).
fn field(fc: pb::FieldCondition, what: &str) -> Result<Condition> {
    let key = path(&fc.key, what)?;
    let mut checks = Vec::new();
    if let Some(m) = fc.r#match {
        checks.push(FieldCheck::Match(matching(m, what)?));
    }
    if let Some(r) = fc.range {
        checks.push(FieldCheck::Range(RangeCondition::Numeric(Range { lt: r.lt, gt: r.gt, gte: r.gte, lte: r.lte })));
    }
    if let Some(r) = fc.datetime_range {
        checks.push(FieldCheck::Range(RangeCondition::Datetime(datetime_range(r, &format!("{what}.datetime_range"))?)));
    }
    if let Some(b) = fc.geo_bounding_box {
        checks.push(FieldCheck::GeoBoundingBox(GeoBoundingBox {
            top_left: geo(b.top_left, &format!("{what}.geo_bounding_box.top_left"))?,
            bottom_right: geo(b.bottom_right, &format!("{what}.geo_bounding_box.bottom_right"))?,
        }));
    }
    if let Some(r) = fc.geo_radius {
        checks.push(FieldCheck::GeoRadius(GeoRadius {
            center: geo(r.center, &format!("{what}.geo_radius.center"))?,
            radius: f64::from(r.radius),
        }));
    }
    if let Some(p) = fc.geo_polygon {
        let exterior = p.exterior.ok_or_else(|| invalid(format!("{what}.geo_polygon.exterior: missing")))?;
        checks.push(FieldCheck::GeoPolygon(GeoPolygon {
            exterior: ring(exterior),
            interiors: p.interiors.into_iter().map(ring).collect(),
        }));
    }
    if let Some(c) = fc.values_count {
        let b = |v: Option<u64>| v.map(usize_of);
        checks.push(FieldCheck::ValuesCount(ValuesCount { lt: b(c.lt), gt: b(c.gt), gte: b(c.gte), lte: b(c.lte) }));
    }
    if let Some(e) = fc.is_empty {
        checks.push(FieldCheck::IsEmpty(e));
    }
    if let Some(n) = fc.is_null {
        checks.push(FieldCheck::IsNull(n));
    }
    let mut conditions: Vec<Condition> =
        checks.into_iter().map(|check| Condition::Field(FieldCondition { key: key.clone(), check })).collect();
    match conditions.len() {
        0 => Err(invalid(format!("{what}: field condition on {:?} has no check (match, range, ...)", fc.key))),
        1 => Ok(conditions.remove(0)),
        _ => Ok(Condition::Filter(Filter::must(conditions))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyword(key: &str, v: &str) -> pb::Condition {
        pb::Condition {
            condition_one_of: Some(pb::condition::ConditionOneOf::Field(pb::FieldCondition {
                key: key.into(),
                r#match: Some(pb::Match { match_value: Some(pb::r#match::MatchValue::Keyword(v.into())) }),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_keyword_match_converts() {
        let f = pb::Filter { must: vec![keyword("city", "Berlin")], ..Default::default() };
        let f = filter_opt(Some(f), "filter").expect("valid").expect("some");
        let Condition::Field(fc) = &f.must[0] else { panic!("field condition expected") };
        assert_eq!(fc.check, FieldCheck::Match(Match::Value(MatchValue::Keyword("Berlin".into()))));
    }

    #[test]
    fn several_checks_on_one_field_all_hold() {
        let c = pb::FieldCondition {
            key: "n".into(),
            range: Some(pb::Range { gte: Some(1.0), ..Default::default() }),
            is_null: Some(false),
            ..Default::default()
        };
        let got = field(c, "c").expect("ok");
        assert!(matches!(got, Condition::Filter(f) if f.must.len() == 2));
    }

    #[test]
    fn invalid_filters_are_refused() {
        let empty = pb::FieldCondition { key: "n".into(), ..Default::default() };
        assert!(field(empty, "c").is_err());
        let slice = pb::Condition {
            condition_one_of: Some(pb::condition::ConditionOneOf::Slice(pb::SliceCondition { total: 2, index: 5 })),
        };
        assert!(filter_opt(Some(pb::Filter { must: vec![slice], ..Default::default() }), "filter").is_err());
        assert!(
            filter_opt(Some(pb::Filter { must: vec![pb::Condition::default()], ..Default::default() }), "f").is_err()
        );
    }
}
