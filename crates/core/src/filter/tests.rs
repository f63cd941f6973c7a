use serde_json::{json, Value};

use super::*;
use crate::Payload;

struct P {
    id: PointId,
    payload: Option<Payload>,
    vectors: Vec<&'static str>,
}

impl PointView for P {
    fn id(&self) -> PointId {
        self.id
    }
    fn payload(&self) -> Option<&Payload> {
        self.payload.as_ref()
    }
    fn has_vector(&self, name: &str) -> bool {
        self.vectors.contains(&name)
    }
}

fn obj(v: Value) -> Payload {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn point(id: u64, payload: Value) -> P {
    P { id: PointId::Num(id), payload: Some(obj(payload)), vectors: vec![""] }
}

fn f(v: Value) -> Filter {
    match Filter::from_json(&v) {
        Ok(f) => f,
        Err(e) => panic!("filter {v} should parse: {e}"),
    }
}

fn parse_err(v: Value) -> String {
    match Filter::from_json(&v) {
        Ok(f) => panic!("filter {v} should be rejected, got {f:?}"),
        Err(e) => e.message,
    }
}

/// Whether a filter with the single `must` condition `cond` holds for `payload`.
fn holds(cond: Value, payload: Value) -> bool {
    f(json!({ "must": [cond] })).check(&point(1, payload))
}

fn key(s: &str) -> JsonPath {
    s.parse().expect("path")
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_clauses_as_lists_or_single_objects() {
    let list = f(json!({"must": [{"key": "city", "match": {"value": "London"}}]}));
    let single = f(json!({"must": {"key": "city", "match": {"value": "London"}}}));
    assert_eq!(list, single);
    assert_eq!(list.must, vec![Condition::match_value(key("city"), MatchValue::Keyword("London".into()))]);
    let all = f(json!({
        "must": [{"key": "a", "match": {"value": 1}}],
        "should": {"key": "b", "match": {"value": true}},
        "must_not": [{"key": "c", "match": {"value": "x"}}, {"has_id": [1]}],
        "min_should": {"conditions": [{"has_vector": "v"}], "min_count": 1}
    }));
    assert_eq!(all.must.len(), 1);
    assert_eq!(all.should.len(), 1);
    assert_eq!(all.must_not.len(), 2);
    assert_eq!(all.min_should, Some(MinShould { conditions: vec![Condition::HasVector("v".into())], min_count: 1 }));
    assert_eq!(f(json!({})), Filter::default());
    assert_eq!(f(json!({"must": null, "should": []})), Filter::default());
}

#[test]
fn parses_every_match_shape() {
    let m = |v: Value| -> Match {
        match f(json!({"must": {"key": "k", "match": v}})).must.remove(0) {
            Condition::Field(FieldCondition { check: FieldCheck::Match(m), .. }) => m,
            other => panic!("not a match: {other:?}"),
        }
    };
    assert_eq!(m(json!({"value": "red"})), Match::Value(MatchValue::Keyword("red".into())));
    assert_eq!(m(json!({"value": -3})), Match::Value(MatchValue::Integer(-3)));
    assert_eq!(m(json!({"value": false})), Match::Value(MatchValue::Bool(false)));
    assert_eq!(m(json!({"text": "good cheap"})), Match::Text("good cheap".into()));
    assert_eq!(m(json!({"text_any": "a b"})), Match::TextAny("a b".into()));
    assert_eq!(m(json!({"phrase": "a b"})), Match::Phrase("a b".into()));
    assert_eq!(m(json!({"prefix": "ab"})), Match::Prefix("ab".into()));
    assert_eq!(m(json!({"substring": "ab"})), Match::Substring("ab".into()));
    assert_eq!(
        m(json!({"any": ["black", "yellow"]})),
        Match::Any(AnyVariants::Keywords(vec!["black".into(), "yellow".into()]))
    );
    assert_eq!(m(json!({"any": [1, 2]})), Match::Any(AnyVariants::Integers(vec![1, 2])));
    assert_eq!(m(json!({"any": []})), Match::Any(AnyVariants::Keywords(vec![])));
    assert_eq!(m(json!({"except": ["black"]})), Match::Except(AnyVariants::Keywords(vec!["black".into()])));
    // a null sibling is an absent field
    assert_eq!(m(json!({"value": 5, "any": null})), Match::Value(MatchValue::Integer(5)));
}

fn check_of(v: Value) -> FieldCheck {
    match f(json!({ "must": v })).must.remove(0) {
        Condition::Field(fc) => fc.check,
        other => panic!("not a field condition: {other:?}"),
    }
}

#[test]
fn parses_ranges_numeric_and_datetime() {
    assert_eq!(
        check_of(json!({"key": "price", "range": {"gt": 1, "lte": 2.5, "gte": null}})),
        FieldCheck::Range(RangeCondition::Numeric(Range { gt: Some(1.0), lte: Some(2.5), ..Range::default() }))
    );
    let FieldCheck::Range(RangeCondition::Datetime(r)) = check_of(json!({"key": "d", "range": {
        "gt": "2023-02-08T10:49:00Z",
        "lt": "2024-01-31 10:14:31+01:00",
        "gte": "2023-01-01",
        "lte": "2023-06-01T12:00:00"
    }})) else {
        panic!("expected a datetime range")
    };
    assert_eq!(r.gt.map(|d| d.to_rfc3339()), Some("2023-02-08T10:49:00+00:00".into()));
    assert_eq!(r.lt.map(|d| d.to_rfc3339()), Some("2024-01-31T09:14:31+00:00".into()));
    assert_eq!(r.gte.map(|d| d.to_rfc3339()), Some("2023-01-01T00:00:00+00:00".into()));
    assert_eq!(r.lte.map(|d| d.to_rfc3339()), Some("2023-06-01T12:00:00+00:00".into()));
    assert_eq!(
        check_of(json!({"key": "x", "range": {}})),
        FieldCheck::Range(RangeCondition::Numeric(Range::default()))
    );
}

#[test]
fn parses_geo_values_count_and_flags() {
    assert_eq!(
        check_of(json!({"key": "location", "geo_bounding_box": {
            "bottom_right": {"lon": 13.455868, "lat": 52.495862},
            "top_left": {"lon": 13.403683, "lat": 52.520711}
        }})),
        FieldCheck::GeoBoundingBox(GeoBoundingBox {
            top_left: GeoPoint { lon: 13.403683, lat: 52.520711 },
            bottom_right: GeoPoint { lon: 13.455868, lat: 52.495862 },
        })
    );
    assert_eq!(
        check_of(json!({"key": "location", "geo_radius": {
            "center": {"lon": 13.403683, "lat": 52.520711}, "radius": 1000
        }})),
        FieldCheck::GeoRadius(GeoRadius { center: GeoPoint { lon: 13.403683, lat: 52.520711 }, radius: 1000.0 })
    );
    let FieldCheck::GeoPolygon(poly) = check_of(json!({"key": "location", "geo_polygon": {
        "exterior": {"points": [
            {"lon": -70.0, "lat": -70.0}, {"lon": 60.0, "lat": -70.0},
            {"lon": 60.0, "lat": 60.0}, {"lon": -70.0, "lat": 60.0}, {"lon": -70.0, "lat": -70.0}
        ]},
        "interiors": [{"points": [
            {"lon": -65.0, "lat": -65.0}, {"lon": 0.0, "lat": -65.0},
            {"lon": 0.0, "lat": 0.0}, {"lon": -65.0, "lat": 0.0}, {"lon": -65.0, "lat": -65.0}
        ]}]
    }})) else {
        panic!("expected a polygon")
    };
    assert_eq!(poly.exterior.points.len(), 5);
    assert_eq!(poly.interiors.len(), 1);
    assert_eq!(
        check_of(json!({"key": "comments", "values_count": {"gt": 2}})),
        FieldCheck::ValuesCount(ValuesCount { gt: Some(2), ..ValuesCount::default() })
    );
    assert_eq!(check_of(json!({"key": "r", "is_empty": true})), FieldCheck::IsEmpty(true));
    assert_eq!(check_of(json!({"key": "r", "is_null": false})), FieldCheck::IsNull(false));
    // other clauses given as null do not count
    assert_eq!(check_of(json!({"key": "r", "match": null, "is_null": true, "range": null})), FieldCheck::IsNull(true));
}

#[test]
fn parses_non_field_conditions() {
    let filter = f(json!({"should": [
        {"is_empty": {"key": "reports"}},
        {"is_null": {"key": "reports"}},
        {"has_id": [1, 3, 5, "550e8400-e29b-41d4-a716-446655440000"]},
        {"has_vector": "image"},
        {"has_vector": ""},
        {"nested": {"key": "diet", "filter": {"must": [{"key": "food", "match": {"value": "meat"}}]}}},
        {"slice": {"total": 4, "index": 1}},
        {"must_not": [{"key": "x", "match": {"value": 1}}]},
        {}
    ]}));
    let uuid: PointId = serde_json::from_value(json!("550e8400-e29b-41d4-a716-446655440000")).expect("uuid");
    assert_eq!(filter.should[0], Condition::IsEmpty(key("reports")));
    assert_eq!(filter.should[1], Condition::IsNull(key("reports")));
    assert_eq!(filter.should[2], Condition::HasId([PointId::Num(1), PointId::Num(3), PointId::Num(5), uuid].into()));
    assert_eq!(filter.should[3], Condition::HasVector("image".into()));
    assert_eq!(filter.should[4], Condition::HasVector(String::new()));
    let Condition::Nested(n) = &filter.should[5] else { panic!("nested") };
    assert_eq!(n.key, key("diet"));
    assert_eq!(n.filter.must.len(), 1);
    assert_eq!(filter.should[6], Condition::Slice(SliceCondition { total: 4, index: 1 }));
    let Condition::Filter(inner) = &filter.should[7] else { panic!("filter") };
    assert_eq!(inner.must_not.len(), 1);
    assert_eq!(filter.should[8], Condition::Filter(Filter::default()));
}

#[test]
fn round_trips_through_json() {
    let src = json!({
        "must": [
            {"key": "city", "match": {"value": "London"}},
            {"key": "n", "match": {"any": [1, 2]}},
            {"key": "t", "match": {"except": ["a"]}},
            {"key": "t", "match": {"phrase": "x y"}},
            {"key": "price", "range": {"gte": 1.5, "lt": 10.0}},
            {"key": "d", "range": {"gt": "2023-02-08T10:49:00Z"}},
            {"key": "loc", "geo_radius": {"center": {"lon": 1.0, "lat": 2.0}, "radius": 5.0}},
            {"key": "loc", "geo_bounding_box": {
                "top_left": {"lon": 1.0, "lat": 3.0}, "bottom_right": {"lon": 2.0, "lat": 1.0}}},
            {"key": "loc", "geo_polygon": {"exterior": {"points": [
                {"lon": 0.0, "lat": 0.0}, {"lon": 1.0, "lat": 0.0},
                {"lon": 1.0, "lat": 1.0}, {"lon": 0.0, "lat": 0.0}]}}},
            {"key": "c", "values_count": {"lt": 3}},
            {"key": "c", "is_empty": false},
            {"key": "a[].b", "is_null": true}
        ],
        "should": [
            {"is_empty": {"key": "r"}},
            {"has_id": [2, 1]},
            {"has_vector": "img"},
            {"nested": {"key": "diet[]", "filter": {"must": [{"key": "likes", "match": {"value": true}}]}}},
            {"slice": {"total": 3, "index": 0}},
            {"must_not": [{"is_null": {"key": "\"odd key\".x"}}]}
        ],
        "min_should": {"conditions": [{"key": "z", "match": {"text": "hi"}}], "min_count": 1}
    });
    let parsed = f(src.clone());
    let out = serde_json::to_value(&parsed).expect("serialize");
    let reparsed: Filter = serde_json::from_value(out.clone()).expect("deserialize");
    assert_eq!(reparsed, parsed);
    // shapes: lists, has_id sorted, datetimes in RFC 3339
    assert_eq!(out["should"][1], json!({"has_id": [1, 2]}));
    assert_eq!(out["must"][5], json!({"key": "d", "range": {"gt": "2023-02-08T10:49:00Z"}}));
    assert_eq!(out["must"][0], json!({"key": "city", "match": {"value": "London"}}));
    assert_eq!(out["should"][5]["must_not"][0], json!({"is_null": {"key": "\"odd key\".x"}}));
    assert_eq!(out["min_should"]["min_count"], json!(1));
    // a single condition serializes as a one-element list
    let single = serde_json::to_value(f(json!({"must": {"has_id": [7]}}))).expect("ser");
    assert_eq!(single, json!({"must": [{"has_id": [7]}]}));
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn unknown_condition_field_is_named() {
    let e = parse_err(json!({"must": [{"key": "a", "match": {"value": 1}}, {"foo": 1}]}));
    assert!(e.starts_with("filter.must[1]: unknown condition field `foo`"), "{e}");
    let e = parse_err(json!({"must": {"foo": 1}}));
    assert!(e.starts_with("filter.must: unknown condition field `foo`"), "{e}");
    let e = parse_err(json!({"must": [], "bogus": []}));
    assert!(e.contains("unknown filter field `bogus`"), "{e}");
    let e = parse_err(json!({"should": [{"has_id": [1], "has_vector": "a"}]}));
    assert!(e.contains("found both `has_id` and `has_vector`"), "{e}");
    let e = parse_err(json!({"should": [{"has_id": [1], "must": []}]}));
    assert!(e.contains("found both `has_id` and a nested filter"), "{e}");
    let e = parse_err(json!({"must": "city"}));
    assert!(e.contains("filter.must: expected a condition or a list of conditions, got a string"), "{e}");
    let e = parse_err(json!({"must": [5]}));
    assert!(e.contains("filter.must[0]: expected a condition object, got a number"), "{e}");
    let e = parse_err(json!([1]));
    assert!(e.starts_with("filter: expected a filter object"), "{e}");
}

#[test]
fn field_condition_must_have_exactly_one_check() {
    let e = parse_err(json!({"must": [{"key": "price"}]}));
    assert!(e.contains("filter.must[0]: the field condition on key `price` has nothing to check"), "{e}");
    let e = parse_err(json!({"must": [{"key": "price", "match": {"value": 1}, "range": {"gt": 0}}]}));
    assert!(e.contains("key `price` has both `match` and `range`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "price", "matches": {"value": 1}}]}));
    assert!(e.contains("unknown field `matches` in the field condition on key `price`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a..b", "match": {"value": 1}}]}));
    assert!(e.starts_with("filter.must[0].key: Invalid JSON path `a..b`"), "{e}");
    let e = parse_err(json!({"must": [{"key": 5, "match": {"value": 1}}]}));
    assert!(e.contains("filter.must[0].key: expected a string, got a number"), "{e}");
}

#[test]
fn bad_match_shapes() {
    let e = parse_err(json!({"must": [{"key": "a", "match": {}}]}));
    assert!(e.starts_with("filter.must[0].match: expected one of `value`, `text`"), "{e}");
    assert!(e.contains("`any` or `except`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"equals": 1}}]}));
    assert!(e.contains("match: expected one of") && e.contains("unknown field `equals`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"value": 1.5}}]}));
    assert!(e.contains("match.value: expected a string, an integer or a boolean, got the float 1.5"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"value": [1]}}]}));
    assert!(e.contains("use `any`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"value": null}}]}));
    assert!(e.contains("match: expected one of"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"any": ["x", 1]}}]}));
    assert!(e.contains("match.any[1]: expected all strings or all integers"), "{e}");
    assert!(e.contains("got the number 1"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"any": [1, 2.5]}}]}));
    assert!(e.contains("match.any[1]: expected all strings or all integers"), "{e}");
    assert!(e.contains("got the number 2.5"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"except": "x"}}]}));
    assert!(e.contains("match.except: expected a list of strings or a list of integers"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"value": 1, "text": "x"}}]}));
    assert!(e.contains("got both `value` and `text`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "match": {"text": 3}}]}));
    assert!(e.contains("match.text: expected a string, got a number"), "{e}");
}

#[test]
fn bad_ranges_and_counts() {
    let e = parse_err(json!({"must": [{"key": "a", "range": {"gt": 1, "lt": "2023-01-01"}}]}));
    assert!(e.contains("range.lt: cannot mix numeric and datetime bounds"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "range": {"gt": "yesterday"}}]}));
    assert!(e.contains("range.gt: 'yesterday' is not in a supported date/time format"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "range": {"gt": true}}]}));
    assert!(e.contains("range.gt: expected a number or a datetime string, got a boolean"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "range": {"above": 1}}]}));
    assert!(e.contains("unknown field `above` in range"), "{e}");
    let e = parse_err(json!({"must": [{"key": "a", "values_count": {"gt": -1}}]}));
    assert!(e.contains("values_count.gt: expected a non-negative integer, got -1"), "{e}");
}

#[test]
fn bad_geo_shapes() {
    let e = parse_err(json!({"must": [{"key": "l", "geo_radius": {
        "center": {"lon": 10.0, "lat": 100.0}, "radius": 5.0}}]}));
    assert!(e.contains("geo_radius.center: lat 100 is out of range"), "{e}");
    let e = parse_err(json!({"must": [{"key": "l", "geo_bounding_box": {
        "top_left": {"lon": -181.0, "lat": 0.0}, "bottom_right": {"lon": 0.0, "lat": 0.0}}}]}));
    assert!(e.contains("geo_bounding_box.top_left: lon -181 is out of range"), "{e}");
    let e = parse_err(json!({"must": [{"key": "l", "geo_radius": {"center": {"lon": 1.0}, "radius": 5}}]}));
    assert!(e.contains("geo_radius.center: missing field `lat`"), "{e}");
    let e = parse_err(json!({"must": [{"key": "l", "geo_polygon": {"exterior": {"points": [
        {"lon": 0.0, "lat": 0.0}, {"lon": 1.0, "lat": 0.0}, {"lon": 0.0, "lat": 0.0}]}}}]}));
    assert!(e.contains("exterior: polygon invalid, the size must be at least 4, got 3"), "{e}");
    let e = parse_err(json!({"must": [{"key": "l", "geo_polygon": {"exterior": {"points": [
        {"lon": 0.0, "lat": 0.0}, {"lon": 1.0, "lat": 0.0},
        {"lon": 1.0, "lat": 1.0}, {"lon": 0.0, "lat": 1.0}]}}}]}));
    assert!(e.contains("the first and the last points should be the same"), "{e}");
}

#[test]
fn bad_ids_nested_and_min_should() {
    let e = parse_err(json!({"must": [{"has_id": [1, -2]}]}));
    assert!(e.starts_with("filter.must[0].has_id[1]: point id -2 is negative"), "{e}");
    let e = parse_err(json!({"must": [{"has_id": 1}]}));
    assert!(e.contains("has_id: expected a list of point ids"), "{e}");
    let e = parse_err(json!({"must": [{"nested": {"key": "d", "filter": {"must": [{"has_id": [1]}]}}}]}));
    assert!(
        e.starts_with("filter.must[0].nested.filter.must[0]: has_id is not supported inside a nested filter"),
        "{e}"
    );
    let e = parse_err(json!({"must": [{"nested": {"key": "d"}}]}));
    assert!(e.contains("filter.must[0].nested: missing field `filter`"), "{e}");
    let e = parse_err(json!({"min_should": {"conditions": [], "min_count": 0}}));
    assert!(e.contains("min_count value 0 is invalid. Must be 1 or larger."), "{e}");
    let e = parse_err(json!({"min_should": {"conditions": [{"has_vector": "a"}]}}));
    assert!(e.contains("filter.min_should: missing field `min_count`"), "{e}");
    let e = parse_err(json!({"should": [{"slice": {"total": 2, "index": 2}}]}));
    assert!(e.contains("slice index must be in [0;1], got 2"), "{e}");
    let e = parse_err(json!({"should": [{"is_empty": {"key": "a", "x": 1}}]}));
    assert!(e.contains("unknown field `x`"), "{e}");
    let e = parse_err(json!({"should": [{"has_vector": 1}]}));
    assert!(e.contains("has_vector: expected a string"), "{e}");
}

#[test]
fn validate_catches_filters_built_in_code() {
    let nested_has_id = Filter::must(vec![Condition::Nested(NestedCondition {
        key: key("arr"),
        filter: Filter::must(vec![Condition::HasId([PointId::Num(1)].into())]),
    })]);
    assert!(nested_has_id.validate().is_err());
    let bad_geo = Filter::must(vec![Condition::field(
        key("l"),
        FieldCheck::GeoRadius(GeoRadius { center: GeoPoint { lon: 0.0, lat: 91.0 }, radius: 1.0 }),
    )]);
    let e = bad_geo.validate().expect_err("lat 91");
    assert!(e.message.starts_with("filter.must[0]: lat 91 is out of range"), "{e}");
    assert!(Filter::must(vec![Condition::HasId([PointId::Num(1)].into())]).validate().is_ok());
}

#[test]
fn deserialize_condition_alone() {
    let c: Condition = serde_json::from_value(json!({"key": "a", "match": {"value": "x"}})).expect("c");
    assert_eq!(c, Condition::match_value(key("a"), MatchValue::Keyword("x".into())));
    let e = serde_json::from_value::<Condition>(json!({"nope": 1})).expect_err("bad");
    assert!(e.to_string().starts_with("condition: unknown condition field `nope`"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn cities() -> Vec<P> {
    [
        (1, "London", "green"),
        (2, "London", "red"),
        (3, "London", "blue"),
        (4, "Berlin", "red"),
        (5, "Moscow", "green"),
        (6, "Moscow", "blue"),
    ]
    .into_iter()
    .map(|(id, city, color)| point(id, json!({"city": city, "color": color})))
    .collect()
}

fn ids(filter: Value, points: &[P]) -> Vec<u64> {
    let filter = f(filter);
    points
        .iter()
        .filter(|p| filter.check(*p))
        .map(|p| match p.id {
            PointId::Num(n) => n,
            PointId::Uuid(_) => u64::MAX,
        })
        .collect()
}

#[test]
fn docs_clause_examples() {
    let pts = cities();
    let london = json!({"key": "city", "match": {"value": "London"}});
    let red = json!({"key": "color", "match": {"value": "red"}});
    assert_eq!(ids(json!({"must": [london, red]}), &pts), vec![2]);
    assert_eq!(ids(json!({"should": [london, red]}), &pts), vec![1, 2, 3, 4]);
    assert_eq!(ids(json!({"must_not": [london, red]}), &pts), vec![5, 6]);
    assert_eq!(ids(json!({"must": [london], "must_not": [red]}), &pts), vec![1, 3]);
    assert_eq!(ids(json!({"must_not": [{"must": [london, red]}]}), &pts), vec![1, 3, 4, 5, 6]);
    assert_eq!(ids(json!({"should": []}), &pts), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(json!({}), &pts), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(json!({"must": [{"has_id": [1, 3, 5, 99]}]}), &pts), vec![1, 3, 5]);
    let min_should = json!({"min_should": {"min_count": 2, "conditions": [
        london, red, {"key": "color", "match": {"any": ["red", "blue"]}}
    ]}});
    assert_eq!(ids(min_should, &pts), vec![2, 3, 4]);
}

#[test]
fn match_value_is_strict_about_types() {
    let m = |v: Value, payload: Value| holds(json!({"key": "k", "match": {"value": v}}), payload);
    assert!(m(json!(1), json!({"k": 1})));
    assert!(!m(json!(1), json!({"k": 1.5})));
    assert!(!m(json!(1), json!({"k": 1.0})));
    assert!(!m(json!(1), json!({"k": "1"})));
    assert!(!m(json!(1), json!({"k": true})));
    assert!(m(json!(true), json!({"k": true})));
    assert!(!m(json!(true), json!({"k": 1})));
    assert!(!m(json!(false), json!({"k": null})));
    assert!(m(json!("a"), json!({"k": ["b", "a"]})), "any array element");
    assert!(!m(json!("a"), json!({"k": [["a"]]})), "arrays are flattened one level only");
    assert!(!m(json!("a"), json!({"k": []})));
    assert!(!m(json!("a"), json!({"other": "a"})));
    assert!(m(json!(-7), json!({"k": [1, -7]})));
}

#[test]
fn match_any_and_except() {
    let any = |l: Value, p: Value| holds(json!({"key": "k", "match": {"any": l}}), p);
    let except = |l: Value, p: Value| holds(json!({"key": "k", "match": {"except": l}}), p);
    assert!(any(json!(["black", "yellow"]), json!({"k": "black"})));
    assert!(any(json!(["black", "yellow"]), json!({"k": ["black", "green"]})));
    assert!(!any(json!(["black", "yellow"]), json!({"k": "green"})));
    assert!(any(json!([1, 2]), json!({"k": 2})));
    assert!(!any(json!([1, 2]), json!({"k": "2"})));
    assert!(!any(json!([]), json!({"k": "x"})));

    assert!(except(json!(["black", "yellow"]), json!({"k": "green"})));
    assert!(!except(json!(["black", "yellow"]), json!({"k": "black"})));
    assert!(except(json!(["black", "yellow"]), json!({"k": ["black", "green"]})), "docs example");
    assert!(!except(json!(["black", "yellow"]), json!({"k": ["black", "yellow"]})));
    assert!(!except(json!(["x"]), json!({})), "missing key never matches");
    assert!(!except(json!(["x"]), json!({"k": null})), "null is absence");
    assert!(!except(json!(["x"]), json!({"k": []})));
    assert!(except(json!(["x"]), json!({"k": 5})), "other types are not in the list");
    assert!(except(json!([1]), json!({"k": 1.5})));
    assert!(except(json!([1]), json!({"k": true})));
    assert!(!except(json!([1, 2]), json!({"k": [1, 2, null]})));
    assert!(except(json!([]), json!({"k": "anything"})));
}

#[test]
fn text_phrase_prefix_substring() {
    let m = |kind: &str, q: &str, v: Value| holds(json!({"key": "t", "match": {kind: q}}), json!({ "t": v }));
    assert!(m("text", "good cheap", json!("Cheap and GOOD food")));
    assert!(!m("text", "good cheap", json!("good food")));
    assert!(!m("text", "goo", json!("good food")), "whole words, not substrings");
    assert!(m("text", "foo_bar", json!("bar, foo!")), "underscore separates words");
    assert!(!m("text", "", json!("anything")));
    assert!(!m("text", "1", json!(1)));
    assert!(m("text", "tokyo", json!(["Osaka Castle", "Tokyo Tower"])));
    assert!(m("text_any", "pizza good", json!("good food")));
    assert!(!m("text_any", "pizza", json!("good food")));
    assert!(m("phrase", "Tokyo tower", json!("the tokyo tower at night")));
    assert!(!m("phrase", "tower tokyo", json!("the tokyo tower at night")));
    assert!(!m("phrase", "", json!("x")));
    assert!(m("prefix", "Tok", json!("Tokyo")));
    assert!(!m("prefix", "tok", json!("Tokyo")));
    assert!(m("substring", "kyo T", json!("Tokyo Tower")));
    assert!(!m("substring", "KYO", json!("Tokyo")));
}

#[test]
fn numeric_ranges() {
    let r = |range: Value, p: Value| holds(json!({"key": "n", "range": range}), p);
    assert!(r(json!({"gte": 1, "lt": 2}), json!({"n": 1})));
    assert!(r(json!({"gte": 1, "lt": 2}), json!({"n": 1.5})));
    assert!(!r(json!({"gte": 1, "lt": 2}), json!({"n": 2})));
    assert!(r(json!({"gt": 1.5}), json!({"n": 2})));
    assert!(!r(json!({"gt": 1.5}), json!({"n": 1.5})));
    assert!(r(json!({"lte": 1.5}), json!({"n": 1.5})));
    assert!(!r(json!({"gte": 0}), json!({"n": true})), "booleans are not numbers");
    assert!(!r(json!({"gte": 0}), json!({"n": "5"})));
    assert!(!r(json!({"gte": 0}), json!({})));
    assert!(r(json!({"gt": 9.0}), json!({"n": [1, 10]})));
    assert!(!r(json!({"gt": 1, "lt": 3}), json!({"n": [0, 5]})), "one value must satisfy all bounds");
    assert!(r(json!({}), json!({"n": -4})));
    // docs: country.cities[].population
    let payload = json!({"country": {"name": "Japan", "cities": [
        {"name": "Tokyo", "population": 9.3, "sightseeing": ["Tokyo Tower", "Tokyo Skytree"]},
        {"name": "Osaka", "population": 2.7, "sightseeing": ["Osaka Castle"]}
    ]}});
    assert!(holds(json!({"key": "country.cities[].population", "range": {"gte": 9.0}}), payload.clone()));
    assert!(holds(json!({"key": "country.cities[].sightseeing", "match": {"value": "Osaka Castle"}}), payload.clone()));
    assert!(holds(json!({"key": "country.name", "match": {"value": "Japan"}}), payload.clone()));
    assert!(!holds(json!({"key": "country.cities.population", "range": {"gte": 0}}), payload));
}

#[test]
fn datetime_ranges_with_zones() {
    let r = |range: Value, v: Value| holds(json!({"key": "d", "range": range}), json!({ "d": v }));
    let feb = json!({"gte": "2023-02-01T00:00:00Z", "lt": "2023-03-01T00:00:00Z"});
    assert!(r(feb.clone(), json!("2023-02-15T10:00:00Z")));
    assert!(r(feb.clone(), json!("2023-02-01T00:00:00Z")));
    assert!(!r(feb.clone(), json!("2023-03-01T00:00:00Z")));
    // 2023-03-01T00:30:00+01:00 is 2023-02-28T23:30:00Z
    assert!(r(feb.clone(), json!("2023-03-01T00:30:00+01:00")));
    // 2023-01-31T20:00:00-05:00 is 2023-02-01T01:00:00Z
    assert!(r(feb.clone(), json!("2023-01-31T20:00:00-05:00")));
    assert!(r(feb.clone(), json!("2023-02-10")));
    assert!(r(feb.clone(), json!("2023-02-10 08:00:00")));
    assert!(r(feb.clone(), json!(["garbage", "2023-02-10T08:00"])));
    assert!(!r(feb.clone(), json!("not a date")));
    assert!(!r(feb.clone(), json!(1675209600)), "numbers are not datetimes");
    // bounds with zones
    let around = json!({"gt": "2023-02-01T12:00:00+02:00"});
    assert!(r(around.clone(), json!("2023-02-01T10:00:01Z")));
    assert!(!r(around, json!("2023-02-01T10:00:00Z")));
    // a numeric range never reads datetime strings
    assert!(!r(json!({"gt": 0}), json!("2023-02-01T10:00:00Z")));
}

#[test]
fn parse_datetime_formats() {
    let iso = |s: &str| parse_datetime(s).map(|d| d.to_rfc3339());
    let z = Some("2023-02-08T10:49:00+00:00".to_string());
    assert_eq!(iso("2023-02-08T10:49:00Z"), z);
    assert_eq!(iso("2023-02-08T10:49:00z"), z);
    assert_eq!(iso("2023-02-08 10:49:00Z"), z);
    assert_eq!(iso("2023-02-08T10:49:00"), z);
    assert_eq!(iso("2023-02-08 10:49:00"), z);
    assert_eq!(iso("2023-02-08T10:49"), z);
    assert_eq!(iso("2023-02-08 10:49"), z);
    assert_eq!(iso("  2023-02-08T10:49:00Z"), z);
    assert_eq!(iso("2023-02-08 10:49:00 UTC"), z);
    assert_eq!(iso("2023-02-08T12:49:00+02:00"), z);
    assert_eq!(iso("2023-02-08T12:49:00+0200"), z);
    assert_eq!(iso("2023-02-08T12:49:00+02"), z);
    assert_eq!(iso("2023-02-08 12:49:00 +02:00"), z);
    assert_eq!(iso("2023-02-08T05:49:00-05:00"), z);
    assert_eq!(iso("2023-02-08T10:49:00.123456789Z"), Some("2023-02-08T10:49:00.123456789+00:00".to_string()));
    assert_eq!(iso("2023-02-08"), Some("2023-02-08T00:00:00+00:00".to_string()));
    assert_eq!(iso("2023-02-30"), None);
    assert_eq!(iso("2023-02-08T25:00:00Z"), None);
    assert_eq!(iso("08/02/2023"), None);
    assert_eq!(iso(""), None);
}

#[test]
fn geo_conditions() {
    let berlin = json!({"lon": 13.404954, "lat": 52.520008});
    let bbox = json!({"key": "loc", "geo_bounding_box": {
        "top_left": {"lon": 13.08835, "lat": 52.67551},
        "bottom_right": {"lon": 13.76116, "lat": 52.33826}
    }});
    assert!(holds(bbox.clone(), json!({ "loc": berlin })));
    assert!(!holds(bbox.clone(), json!({"loc": {"lon": 37.6173, "lat": 55.7558}})));
    assert!(holds(bbox.clone(), json!({"loc": [{"lon": 0.0, "lat": 0.0}, berlin]})));
    assert!(!holds(bbox.clone(), json!({"loc": {"lon": "13.4", "lat": 52.5}})));
    assert!(!holds(bbox.clone(), json!({"loc": [13.4, 52.5]})));
    assert!(!holds(bbox, json!({})));
    // antimeridian-crossing box: lon 170 .. -170
    let wrap = json!({"key": "loc", "geo_bounding_box": {
        "top_left": {"lon": 170.0, "lat": 10.0}, "bottom_right": {"lon": -170.0, "lat": -10.0}}});
    assert!(holds(wrap.clone(), json!({"loc": {"lon": 179.0, "lat": 0.0}})));
    assert!(holds(wrap.clone(), json!({"loc": {"lon": -175.0, "lat": 0.0}})));
    assert!(!holds(wrap, json!({"loc": {"lon": 0.0, "lat": 0.0}})));

    // radius: Berlin center (52.511, 13.423637), 2 km
    let near = json!({"key": "loc", "geo_radius": {"center": {"lon": 13.423637, "lat": 52.511}, "radius": 2000.0}});
    let far = json!({"key": "loc", "geo_radius": {"center": {"lon": 20.423637, "lat": 52.511}, "radius": 2000.0}});
    assert!(holds(near, json!({ "loc": berlin })));
    assert!(!holds(far, json!({ "loc": berlin })));
    let a = GeoPoint { lon: 37.6173, lat: 55.7558 };
    let b = GeoPoint { lon: -0.1278, lat: 51.5074 };
    let d = a.distance_m(&b);
    assert!((2_490_000.0..2_510_000.0).contains(&d), "Moscow-London {d}");
    // one degree of latitude along a meridian = R * pi / 180
    let deg = GeoPoint { lon: 0.0, lat: 0.0 }.distance_m(&GeoPoint { lon: 0.0, lat: 1.0 });
    assert!((deg - EARTH_RADIUS_M.to_radians()).abs() < 1e-6, "{deg}");

    // polygon with a hole; boundaries excluded
    let poly = json!({"key": "loc", "geo_polygon": {
        "exterior": {"points": [
            {"lon": 0.0, "lat": 0.0}, {"lon": 10.0, "lat": 0.0},
            {"lon": 10.0, "lat": 10.0}, {"lon": 0.0, "lat": 10.0}, {"lon": 0.0, "lat": 0.0}]},
        "interiors": [{"points": [
            {"lon": 4.0, "lat": 4.0}, {"lon": 6.0, "lat": 4.0},
            {"lon": 6.0, "lat": 6.0}, {"lon": 4.0, "lat": 6.0}, {"lon": 4.0, "lat": 4.0}]}]
    }});
    let at = |lon: f64, lat: f64| holds(poly.clone(), json!({"loc": {"lon": lon, "lat": lat}}));
    assert!(at(1.0, 1.0));
    assert!(at(8.0, 5.0));
    assert!(!at(5.0, 5.0), "inside the hole");
    assert!(!at(11.0, 5.0), "outside");
    assert!(!at(0.0, 5.0), "on the exterior edge");
    assert!(!at(4.0, 5.0), "on the hole's edge");
    assert!(!at(10.0, 10.0), "on a vertex");
}

#[test]
fn values_count_per_value() {
    let vc = |bounds: Value, p: Value| holds(json!({"key": "c", "values_count": bounds}), p);
    let two = json!({"c": ["Very good!", "Excellent"]});
    let three = json!({"c": ["meh", "expected more", "ok"]});
    assert!(!vc(json!({"gt": 2}), two.clone()));
    assert!(vc(json!({"gt": 2}), three.clone()));
    assert!(vc(json!({"gte": 2, "lte": 2}), two));
    assert!(vc(json!({"lt": 2}), json!({"c": "single"})));
    assert!(!vc(json!({"gt": 1}), json!({"c": "single"})));
    assert!(vc(json!({"lt": 1}), json!({})), "missing counts 0");
    assert!(vc(json!({"lte": 0}), json!({"c": null})), "null counts 0");
    assert!(vc(json!({"lt": 1}), json!({"c": []})));
    assert!(!vc(json!({"gte": 1}), json!({})));
    // per selected value: a[].c selects two arrays of lengths 1 and 3
    let nested = json!({"a": [{"c": [1]}, {"c": [1, 2, 3]}]});
    assert!(holds(json!({"key": "a[].c", "values_count": {"gte": 3}}), nested.clone()));
    assert!(!holds(json!({"key": "a[].c", "values_count": {"gte": 2, "lte": 2}}), nested));
}

#[test]
fn is_empty_and_is_null_truth_table() {
    // (payload value or None for missing, is_empty, is_null)
    let cases: Vec<(Option<Value>, bool, bool)> = vec![
        (None, true, false),
        (Some(Value::Null), true, true),
        (Some(json!([])), true, false),
        (Some(json!([null])), false, true),
        (Some(json!([1, null])), false, true),
        (Some(json!([[null]])), false, false),
        (Some(json!(0)), false, false),
        (Some(json!("")), false, false),
        (Some(json!({})), false, false),
        (Some(json!(false)), false, false),
    ];
    for (value, empty, null) in cases {
        let payload = match &value {
            Some(v) => json!({ "r": v }),
            None => json!({ "other": 1 }),
        };
        assert_eq!(holds(json!({"is_empty": {"key": "r"}}), payload.clone()), empty, "is_empty {value:?}");
        assert_eq!(holds(json!({"is_null": {"key": "r"}}), payload.clone()), null, "is_null {value:?}");
        assert_eq!(holds(json!({"key": "r", "is_empty": true}), payload.clone()), empty);
        assert_eq!(holds(json!({"key": "r", "is_empty": false}), payload.clone()), !empty);
        assert_eq!(holds(json!({"key": "r", "is_null": true}), payload.clone()), null);
        assert_eq!(holds(json!({"key": "r", "is_null": false}), payload), !null);
    }
    // through arrays of objects
    let p = json!({"a": [{"b": 1}, {"b": null}, {"d": []}]});
    assert!(!holds(json!({"is_empty": {"key": "a[].b"}}), p.clone()));
    assert!(holds(json!({"is_empty": {"key": "a[].c"}}), p.clone()));
    assert!(holds(json!({"is_empty": {"key": "a[].d"}}), p.clone()));
    assert!(holds(json!({"is_null": {"key": "a[].b"}}), p.clone()));
    assert!(!holds(json!({"is_null": {"key": "a[].c"}}), p));
    // a point without any payload
    let bare = P { id: PointId::Num(1), payload: None, vectors: vec![] };
    assert!(f(json!({"must": [{"is_empty": {"key": "x"}}]})).check(&bare));
    assert!(!f(json!({"must": [{"is_null": {"key": "x"}}]})).check(&bare));
}

#[test]
fn nested_conditions_check_one_element_at_a_time() {
    let pts = vec![
        point(
            1,
            json!({"dinosaur": "t-rex", "diet": [
            {"food": "leaves", "likes": false}, {"food": "meat", "likes": true}]}),
        ),
        point(
            2,
            json!({"dinosaur": "diplodocus", "diet": [
            {"food": "leaves", "likes": true}, {"food": "meat", "likes": false}]}),
        ),
        point(3, json!({"diet": {"food": "meat", "likes": true}})),
        point(4, json!({"diet": [5, "meat", {"food": "meat", "likes": true}]})),
        point(5, json!({})),
    ];
    let flat = json!({"must": [
        {"key": "diet[].food", "match": {"value": "meat"}},
        {"key": "diet[].likes", "match": {"value": true}}
    ]});
    assert_eq!(ids(flat, &pts), vec![1, 2, 4]);
    let inner = json!({"must": [
        {"key": "food", "match": {"value": "meat"}},
        {"key": "likes", "match": {"value": true}}
    ]});
    assert_eq!(ids(json!({"must": [{"nested": {"key": "diet", "filter": inner}}]}), &pts), vec![1, 4]);
    assert_eq!(ids(json!({"must": [{"nested": {"key": "diet[]", "filter": inner}}]}), &pts), vec![1, 4]);
    // nested with has_id in an adjacent must (docs)
    let with_id = json!({"must": [{"nested": {"key": "diet", "filter": inner}}, {"has_id": [1]}]});
    assert_eq!(ids(with_id, &pts), vec![1]);
    // must_not inside nested: an element that is not meat
    let not_meat = json!({"must": [{"nested": {"key": "diet", "filter": {"must_not": [
        {"key": "food", "match": {"value": "meat"}}]}}}]});
    assert_eq!(ids(not_meat, &pts), vec![1, 2], "non-object elements are skipped");
    // has_vector never holds inside nested
    let vec_inside = json!({"must": [{"nested": {"key": "diet", "filter": {"must": [{"has_vector": ""}]}}}]});
    assert_eq!(ids(vec_inside, &pts), Vec::<u64>::new());
    // nested in nested: paths are relative to each level
    let deep = vec![
        point(1, json!({"zoo": [{"name": "a", "animals": [{"kind": "cat", "age": 3}, {"kind": "dog", "age": 9}]}]})),
        point(2, json!({"zoo": [{"name": "b", "animals": [{"kind": "cat", "age": 9}]}]})),
    ];
    let q = json!({"must": [{"nested": {"key": "zoo", "filter": {"must": [
        {"nested": {"key": "animals", "filter": {"must": [
            {"key": "kind", "match": {"value": "cat"}},
            {"key": "age", "range": {"gte": 5}}
        ]}}}
    ]}}}]});
    assert_eq!(ids(q, &deep), vec![2]);
}

#[test]
fn has_id_has_vector_and_uuid_ids() {
    let u = "550e8400-e29b-41d4-a716-446655440000";
    let uuid: PointId = serde_json::from_value(json!(u)).expect("uuid");
    let p = P { id: uuid, payload: None, vectors: vec!["image"] };
    let check = |v: Value| f(v).check(&p);
    assert!(check(json!({"must": [{"has_id": [u]}]})));
    assert!(check(json!({"must": [{"has_id": ["550E8400E29B41D4A716446655440000"]}]})));
    assert!(!check(json!({"must": [{"has_id": [1, 2]}]})));
    assert!(check(json!({"must": [{"has_vector": "image"}]})));
    assert!(!check(json!({"must": [{"has_vector": ""}]})));
    assert!(!check(json!({"must": [{"has_vector": "text"}]})));
    assert!(check(json!({"must_not": [{"has_vector": "text"}]})));
}

#[test]
fn slices_partition_ids_like_qdrant() {
    // SipHash-2-4 reference vectors (key 00..0f), then zero-key hashes of canonical id bytes
    // as computed by the reference implementation.
    let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    assert_eq!(siphash24_keyed(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    assert_eq!(siphash24_keyed(k0, k1, &[0, 1, 2, 3, 4, 5, 6, 7]), 0x93f5_f579_9a93_2462);
    let fifteen: Vec<u8> = (0..15).collect();
    assert_eq!(siphash24_keyed(k0, k1, &fifteen), 0xa129_ca61_49be_45e5);
    assert_eq!(siphash24(&0u64.to_le_bytes()), 16_738_165_381_834_614_119);
    let expect = [
        (1u64, 9_224_715_256_000_962_398u64),
        (2, 13_686_418_376_000_424_449),
        (42, 1_135_563_785_245_924_819),
        (1000, 15_159_681_593_610_358_603),
        (u64::MAX, 9_246_102_839_527_854_430),
    ];
    for (id, h) in expect {
        assert_eq!(siphash24(&id.to_le_bytes()), h, "id {id}");
        assert_eq!(SliceCondition::slice_of(&PointId::Num(id), 7), Some(h % 7));
    }
    let uuid: PointId = serde_json::from_value(json!("550e8400-e29b-41d4-a716-446655440000")).expect("uuid");
    assert_eq!(SliceCondition::slice_of(&uuid, 1000), Some(17_712_879_580_654_916_868 % 1000));
    // every id falls in exactly one of the slices
    for id in 0..50u64 {
        let hits = (0..3)
            .filter(|&index| f(json!({"must": [{"slice": {"total": 3, "index": index}}]})).check(&point(id, json!({}))))
            .count();
        assert_eq!(hits, 1, "id {id}");
    }
    assert_eq!(SliceCondition::slice_of(&PointId::Num(1), 0), None);
}

#[test]
fn should_and_min_should_combinations() {
    let p = point(1, json!({"a": 1, "b": 2}));
    let check = |v: Value| f(v).check(&p);
    let a1 = json!({"key": "a", "match": {"value": 1}});
    let b1 = json!({"key": "b", "match": {"value": 1}});
    let b2 = json!({"key": "b", "match": {"value": 2}});
    assert!(check(json!({"should": [a1, b1]})));
    assert!(!check(json!({"should": [b1]})));
    assert!(!check(json!({"must": [a1], "should": [b1]})), "should is required alongside must");
    assert!(check(json!({"min_should": {"conditions": [a1, b1, b2], "min_count": 2}})));
    assert!(!check(json!({"min_should": {"conditions": [a1, b1, b2], "min_count": 3}})));
    assert!(!check(json!({"min_should": {"conditions": [a1], "min_count": 2}})));
    assert!(check(json!({"should": [{"should": [b1, b2]}], "must_not": [{"must_not": [a1]}]})));
}

#[test]
fn keys_lists_payload_paths() {
    let filter = f(json!({
        "must": [
            {"key": "city", "match": {"value": "London"}},
            {"is_empty": {"key": "reports"}},
            {"has_id": [1]},
            {"nested": {"key": "diet", "filter": {"must": [
                {"key": "food", "match": {"value": "meat"}},
                {"nested": {"key": "items[]", "filter": {"must": [{"is_null": {"key": "x.y"}}]}}}
            ]}}}
        ],
        "should": [{"key": "city", "match": {"value": "Berlin"}}, {"must_not": [{"key": "n", "range": {"gt": 1}}]}],
        "min_should": {"conditions": [{"key": "m", "values_count": {"gt": 1}}], "min_count": 1}
    }));
    let keys: Vec<String> = filter.keys().iter().map(ToString::to_string).collect();
    assert_eq!(keys, vec!["city", "reports", "diet[].food", "diet[].items[].x.y", "n", "m"]);
}

#[test]
fn text_tokens_split_on_non_alphanumerics() {
    assert_eq!(text_tokens("Hello, World_2 ünï-CODE"), vec!["hello", "world", "2", "ünï", "code"]);
    assert!(text_tokens(" ,.; ").is_empty());
}

#[test]
fn filter_helpers() {
    let a = Filter::must(vec![Condition::HasVector("a".into())]);
    let b = Filter::should(vec![Condition::HasVector("b".into())]);
    assert_eq!(Filter::default().and(a.clone()), a);
    let both = a.clone().and(b.clone());
    assert_eq!(both.must, vec![Condition::Filter(a), Condition::Filter(b)]);
    let p = P { id: PointId::Num(1), payload: None, vectors: vec!["a", "b"] };
    assert!(both.check(&p));
    assert!(Filter::default().is_empty());
    assert!(f(json!({"must": [{"key": "a", "match": {"value": 1}}]})).check_payload(&obj(json!({"a": 1}))));
}

#[test]
fn merge_joins_clause_by_clause() {
    let f = |v: serde_json::Value| Filter::from_json(&v).expect("filter");
    let outer =
        f(json!({"should": [{"key": "a", "match": {"value": 1}}], "must": [{"key": "b", "match": {"value": 2}}]}));
    let inner =
        f(json!({"should": [{"key": "c", "match": {"value": 3}}], "must_not": [{"key": "d", "match": {"value": 4}}]}));
    let merged = outer.merge(inner);
    assert_eq!(merged.should.len(), 2);
    assert_eq!((merged.must.len(), merged.must_not.len()), (1, 1));
    // The should conditions are alternatives: one of them is enough.
    let p: crate::Payload = serde_json::from_value(json!({"a": 1, "b": 2})).expect("payload");
    assert!(merged.check_payload(&p));
    let ms = |n: usize| f(json!({"min_should": {"conditions": [{"key": "a", "match": {"value": 1}}], "min_count": n}}));
    let both = ms(1).merge(ms(2)).min_should.expect("kept");
    assert_eq!((both.conditions.len(), both.min_count), (2, 2));
    assert_eq!(ms(1).merge(Filter::default()).min_should.map(|m| m.min_count), Some(1));
}
