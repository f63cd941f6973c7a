//! Filter JSON -> AST, by hand over `serde_json::Value` so every error names where it is
//! (`filter.must[1].match: ...`) and what was expected. Unknown fields are errors; `null`
//! stands for an absent optional field, as in Qdrant.

use std::collections::BTreeSet;
use std::fmt::Display;

use serde_json::{Map, Value};

use super::{
    parse_datetime, AnyVariants, Condition, FieldCheck, FieldCondition, Filter, GeoBoundingBox, GeoLineString,
    GeoPoint, GeoPolygon, GeoRadius, Match, MatchValue, MinShould, NestedCondition, Range, RangeCondition,
    SliceCondition, ValuesCount,
};
use crate::json_path::JsonPath;
use crate::vectors::kind;
use crate::{PointId, ValidationError};

type Result<T> = std::result::Result<T, ValidationError>;

fn err(path: &str, msg: impl Display) -> ValidationError {
    ValidationError::new(format!("{path}: {msg}"))
}

fn object<'a>(v: &'a Value, path: &str, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| err(path, format!("expected {what}, got {}", kind(v))))
}

/// Rejects keys of `map` not in `allowed`.
fn only_keys(map: &Map<String, Value>, allowed: &[&str], path: &str, what: &str) -> Result<()> {
    for k in map.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(path, format!("unknown field `{k}` in {what}; expected {}", list(allowed))));
        }
    }
    Ok(())
}

fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|n| format!("`{n}`")).collect();
            format!("{} or `{last}`", init.join(", "))
        }
    }
}

/// A present, non-null field.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

fn required<'a>(map: &'a Map<String, Value>, name: &str, path: &str) -> Result<&'a Value> {
    field(map, name).ok_or_else(|| err(path, format!("missing field `{name}`")))
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| err(path, format!("expected a string, got {}", kind(v))))
}

fn json_path(v: &Value, path: &str) -> Result<JsonPath> {
    string(v, path)?.parse::<JsonPath>().map_err(|e| err(path, e))
}

fn unsigned(v: &Value, path: &str) -> Result<u64> {
    v.as_u64().ok_or_else(|| match v {
        Value::Number(n) => err(path, format!("expected a non-negative integer, got {n}")),
        _ => err(path, format!("expected a non-negative integer, got {}", kind(v))),
    })
}

fn usize_of(v: &Value, path: &str) -> Result<usize> {
    let n = unsigned(v, path)?;
    usize::try_from(n).map_err(|_| err(path, format!("{n} is too large")))
}

fn number(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| err(path, format!("{n} is not a finite number"))),
        _ => Err(err(path, format!("expected a number, got {}", kind(v)))),
    }
}

const FILTER_KEYS: [&str; 4] = ["must", "should", "must_not", "min_should"];

/// A filter object.
pub(super) fn filter(v: &Value, path: &str) -> Result<Filter> {
    let map = object(v, path, "a filter object with `must`, `should`, `must_not` or `min_should`")?;
    let mut f = Filter::default();
    for (k, val) in map {
        let here = format!("{path}.{k}");
        match k.as_str() {
            "must" => f.must = condition_list(val, &here)?,
            "should" => f.should = condition_list(val, &here)?,
            "must_not" => f.must_not = condition_list(val, &here)?,
            "min_should" => {
                if !val.is_null() {
                    f.min_should = Some(min_should(val, &here)?);
                }
            }
            other => return Err(err(path, format!("unknown filter field `{other}`; expected {}", list(&FILTER_KEYS)))),
        }
    }
    Ok(f)
}

/// A clause: one condition object or a list of them (`null` is an empty clause).
fn condition_list(v: &Value, path: &str) -> Result<Vec<Condition>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().enumerate().map(|(i, c)| condition(c, &format!("{path}[{i}]"))).collect(),
        Value::Object(_) => Ok(vec![condition(v, path)?]),
        _ => Err(err(path, format!("expected a condition or a list of conditions, got {}", kind(v)))),
    }
}

fn min_should(v: &Value, path: &str) -> Result<MinShould> {
    let map = object(v, path, "an object `{\"conditions\": [...], \"min_count\": N}`")?;
    only_keys(map, &["conditions", "min_count"], path, "min_should")?;
    let conds_path = format!("{path}.conditions");
    let conditions = match required(map, "conditions", path)? {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{conds_path}[{i}]")))
            .collect::<Result<Vec<_>>>()?,
        other => return Err(err(&conds_path, format!("expected a list of conditions, got {}", kind(other)))),
    };
    let min_count = usize_of(required(map, "min_count", path)?, &format!("{path}.min_count"))?;
    Ok(MinShould { conditions, min_count })
}

/// The kinds of condition objects, by their distinguishing key.
const CONDITION_KINDS: [&str; 6] = ["is_empty", "is_null", "has_id", "has_vector", "nested", "slice"];

const FIELD_CHECKS: [&str; 8] =
    ["match", "range", "geo_bounding_box", "geo_radius", "geo_polygon", "values_count", "is_empty", "is_null"];

/// One condition object.
pub(super) fn condition(v: &Value, path: &str) -> Result<Condition> {
    let map = object(v, path, "a condition object")?;
    if map.contains_key("key") {
        return field_condition(map, path).map(Condition::Field);
    }
    if map.is_empty() {
        return Ok(Condition::Filter(Filter::default()));
    }
    // Which kind of condition is this? Every key must belong to exactly one kind.
    let mut found: Option<&str> = None;
    for k in map.keys() {
        let this = if FILTER_KEYS.contains(&k.as_str()) {
            "filter"
        } else if let Some(c) = CONDITION_KINDS.iter().find(|c| **c == k) {
            *c
        } else {
            return Err(err(
                path,
                format!(
                    "unknown condition field `{k}`; expected a field condition (`key` with one of \
                     {}), {}, or a nested filter ({})",
                    list(&FIELD_CHECKS),
                    list(&CONDITION_KINDS),
                    list(&FILTER_KEYS)
                ),
            ));
        };
        match found {
            None => found = Some(this),
            Some(prev) if prev == this => {}
            Some(prev) => {
                let show = |k: &str| {
                    if k == "filter" {
                        "a nested filter".to_string()
                    } else {
                        format!("`{k}`")
                    }
                };
                return Err(err(
                    path,
                    format!(
                        "a condition object holds exactly one condition, found both {} and {}",
                        show(prev),
                        show(this)
                    ),
                ));
            }
        }
    }
    let value = |name: &str| map.get(name).unwrap_or(&Value::Null);
    match found.unwrap_or("filter") {
        "filter" => filter(v, path).map(Condition::Filter),
        "is_empty" => payload_field(value("is_empty"), &format!("{path}.is_empty")).map(Condition::IsEmpty),
        "is_null" => payload_field(value("is_null"), &format!("{path}.is_null")).map(Condition::IsNull),
        "has_id" => has_id(value("has_id"), &format!("{path}.has_id")).map(Condition::HasId),
        "has_vector" => {
            let here = format!("{path}.has_vector");
            Ok(Condition::HasVector(string(value("has_vector"), &here)?.to_string()))
        }
        "nested" => nested(value("nested"), &format!("{path}.nested")).map(Condition::Nested),
        _ => slice(value("slice"), &format!("{path}.slice")).map(Condition::Slice),
    }
}

/// `{"key": "a.b"}`
fn payload_field(v: &Value, path: &str) -> Result<JsonPath> {
    let map = object(v, path, "an object `{\"key\": \"...\"}`")?;
    only_keys(map, &["key"], path, "this condition")?;
    json_path(required(map, "key", path)?, &format!("{path}.key"))
}

fn has_id(v: &Value, path: &str) -> Result<BTreeSet<PointId>> {
    let Value::Array(items) = v else {
        return Err(err(path, format!("expected a list of point ids, got {}", kind(v))));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, id)| serde_json::from_value::<PointId>(id.clone()).map_err(|e| err(&format!("{path}[{i}]"), e)))
        .collect()
}

fn nested(v: &Value, path: &str) -> Result<NestedCondition> {
    let map = object(v, path, "an object `{\"key\": \"...\", \"filter\": {...}}`")?;
    only_keys(map, &["key", "filter"], path, "nested")?;
    let key = json_path(required(map, "key", path)?, &format!("{path}.key"))?;
    let filter = filter(required(map, "filter", path)?, &format!("{path}.filter"))?;
    Ok(NestedCondition { key, filter })
}

fn slice(v: &Value, path: &str) -> Result<SliceCondition> {
    let map = object(v, path, "an object `{\"total\": T, \"index\": I}`")?;
    only_keys(map, &["total", "index"], path, "slice")?;
    let total = unsigned(required(map, "total", path)?, &format!("{path}.total"))?;
    let index = unsigned(required(map, "index", path)?, &format!("{path}.index"))?;
    Ok(SliceCondition { total, index })
}

fn field_condition(map: &Map<String, Value>, path: &str) -> Result<FieldCondition> {
    let key = json_path(required(map, "key", path)?, &format!("{path}.key"))?;
    let mut checks: Vec<(&str, FieldCheck)> = Vec::new();
    for (name, val) in map {
        if name == "key" || val.is_null() {
            continue;
        }
        let here = format!("{path}.{name}");
        let check = match name.as_str() {
            "match" => FieldCheck::Match(match_(val, &here)?),
            "range" => FieldCheck::Range(range(val, &here)?),
            "geo_bounding_box" => FieldCheck::GeoBoundingBox(bounding_box(val, &here)?),
            "geo_radius" => FieldCheck::GeoRadius(radius(val, &here)?),
            "geo_polygon" => FieldCheck::GeoPolygon(polygon(val, &here)?),
            "values_count" => FieldCheck::ValuesCount(values_count(val, &here)?),
            "is_empty" => FieldCheck::IsEmpty(boolean(val, &here)?),
            "is_null" => FieldCheck::IsNull(boolean(val, &here)?),
            other => {
                return Err(err(
                    path,
                    format!(
                        "unknown field `{other}` in the field condition on key `{key}`; expected \
                         {}",
                        list(&FIELD_CHECKS)
                    ),
                ))
            }
        };
        checks.push((name, check));
    }
    match checks.len() {
        0 => Err(err(
            path,
            format!("the field condition on key `{key}` has nothing to check; give one of {}", list(&FIELD_CHECKS)),
        )),
        1 => {
            let (_, check) = checks.remove(0);
            Ok(FieldCondition { key, check })
        }
        _ => Err(err(
            path,
            format!(
                "the field condition on key `{key}` has both `{}` and `{}`; give exactly one \
                 check per condition (combine several with `must`)",
                checks[0].0, checks[1].0
            ),
        )),
    }
}

fn boolean(v: &Value, path: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| err(path, format!("expected a boolean, got {}", kind(v))))
}

const MATCH_KINDS: [&str; 8] = ["value", "text", "text_any", "phrase", "prefix", "substring", "any", "except"];

fn match_(v: &Value, path: &str) -> Result<Match> {
    let map = object(v, path, &format!("a match object with one of {}", list(&MATCH_KINDS)))?;
    let present: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
    if let Some((k, _)) = map.iter().find(|(k, _)| !MATCH_KINDS.contains(&k.as_str())) {
        return Err(err(path, format!("expected one of {}, got unknown field `{k}`", list(&MATCH_KINDS))));
    }
    let (name, val) = match present.as_slice() {
        [] => return Err(err(path, format!("expected one of {}", list(&MATCH_KINDS)))),
        [one] => *one,
        [a, b, ..] => {
            return Err(err(
                path,
                format!("expected exactly one of {}, got both `{}` and `{}`", list(&MATCH_KINDS), a.0, b.0),
            ))
        }
    };
    let here = format!("{path}.{name}");
    let text = || string(val, &here).map(str::to_string);
    Ok(match name.as_str() {
        "value" => Match::Value(match_value(val, &here)?),
        "text" => Match::Text(text()?),
        "text_any" => Match::TextAny(text()?),
        "phrase" => Match::Phrase(text()?),
        "prefix" => Match::Prefix(text()?),
        "substring" => Match::Substring(text()?),
        "any" => Match::Any(any_variants(val, &here)?),
        _ => Match::Except(any_variants(val, &here)?),
    })
}

fn match_value(v: &Value, path: &str) -> Result<MatchValue> {
    match v {
        Value::String(s) => Ok(MatchValue::Keyword(s.clone())),
        Value::Bool(b) => Ok(MatchValue::Bool(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(MatchValue::Integer(i)),
            None if n.is_u64() => Err(err(path, format!("integer {n} is out of range for a 64-bit signed integer"))),
            None => Err(err(
                path,
                format!(
                    "expected a string, an integer or a boolean, got the float {n}; floats cannot \
                     be matched exactly, use `range` instead"
                ),
            )),
        },
        Value::Array(_) => Err(err(
            path,
            "expected a string, an integer or a boolean, got a list; use `any` to match one of \
             several values",
        )),
        _ => Err(err(path, format!("expected a string, an integer or a boolean, got {}", kind(v)))),
    }
}

fn any_variants(v: &Value, path: &str) -> Result<AnyVariants> {
    let Value::Array(items) = v else {
        return Err(err(path, format!("expected a list of strings or a list of integers, got {}", kind(v))));
    };
    let strings = items.first().is_none_or(Value::is_string);
    if strings {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => return Err(mixed(item, &format!("{path}[{i}]"), "strings")),
            }
        }
        return Ok(AnyVariants::Keywords(out));
    }
    let mut ints = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_i64() {
            Some(n) => ints.push(n),
            None => return Err(mixed(item, &format!("{path}[{i}]"), "integers")),
        }
    }
    Ok(AnyVariants::Integers(ints))
}

fn mixed(item: &Value, path: &str, first: &str) -> ValidationError {
    let got = match item {
        Value::Number(n) => format!("the number {n}"),
        other => kind(other).to_string(),
    };
    err(path, format!("expected all strings or all integers (the list starts with {first}), got {got}"))
}

const BOUNDS: [&str; 4] = ["lt", "gt", "gte", "lte"];

fn range(v: &Value, path: &str) -> Result<RangeCondition> {
    let map = object(v, path, "an object with `lt`, `gt`, `gte` or `lte`")?;
    only_keys(map, &BOUNDS, path, "range")?;
    let bounds: Vec<(&str, &Value)> = BOUNDS.iter().filter_map(|b| field(map, b).map(|v| (*b, v))).collect();
    let all_strings = !bounds.is_empty() && bounds.iter().all(|(_, v)| v.is_string());
    if all_strings {
        let mut r = Range::default();
        for (name, val) in bounds {
            let here = format!("{path}.{name}");
            let s = string(val, &here)?;
            let dt = parse_datetime(s).ok_or_else(|| {
                err(
                    &here,
                    format!(
                        "'{s}' is not in a supported date/time format, please use RFC 3339 \
                         (e.g. 2023-02-08T10:49:00Z)"
                    ),
                )
            })?;
            set_bound(&mut r, name, dt);
        }
        return Ok(RangeCondition::Datetime(r));
    }
    let mut r = Range::default();
    for (name, val) in bounds {
        let here = format!("{path}.{name}");
        let x = match val {
            Value::Number(_) => number(val, &here)?,
            Value::String(_) => return Err(err(&here, "cannot mix numeric and datetime bounds in one range")),
            _ => return Err(err(&here, format!("expected a number or a datetime string, got {}", kind(val)))),
        };
        set_bound(&mut r, name, x);
    }
    Ok(RangeCondition::Numeric(r))
}

fn set_bound<T>(r: &mut Range<T>, name: &str, x: T) {
    match name {
        "lt" => r.lt = Some(x),
        "gt" => r.gt = Some(x),
        "gte" => r.gte = Some(x),
        _ => r.lte = Some(x),
    }
}

fn values_count(v: &Value, path: &str) -> Result<ValuesCount> {
    let map = object(v, path, "an object with `lt`, `gt`, `gte` or `lte`")?;
    only_keys(map, &BOUNDS, path, "values_count")?;
    let get = |name: &str| -> Result<Option<usize>> {
        field(map, name).map(|v| usize_of(v, &format!("{path}.{name}"))).transpose()
    };
    Ok(ValuesCount { lt: get("lt")?, gt: get("gt")?, gte: get("gte")?, lte: get("lte")? })
}

fn geo_point(v: &Value, path: &str) -> Result<GeoPoint> {
    let map = object(v, path, "a geo point `{\"lon\": .., \"lat\": ..}`")?;
    only_keys(map, &["lon", "lat"], path, "a geo point")?;
    let lon = number(required(map, "lon", path)?, &format!("{path}.lon"))?;
    let lat = number(required(map, "lat", path)?, &format!("{path}.lat"))?;
    GeoPoint::new(lon, lat).map_err(|e| err(path, e.message))
}

fn bounding_box(v: &Value, path: &str) -> Result<GeoBoundingBox> {
    let map = object(v, path, "an object with `top_left` and `bottom_right`")?;
    only_keys(map, &["top_left", "bottom_right"], path, "geo_bounding_box")?;
    Ok(GeoBoundingBox {
        top_left: geo_point(required(map, "top_left", path)?, &format!("{path}.top_left"))?,
        bottom_right: geo_point(required(map, "bottom_right", path)?, &format!("{path}.bottom_right"))?,
    })
}

fn radius(v: &Value, path: &str) -> Result<GeoRadius> {
    let map = object(v, path, "an object with `center` and `radius`")?;
    only_keys(map, &["center", "radius"], path, "geo_radius")?;
    Ok(GeoRadius {
        center: geo_point(required(map, "center", path)?, &format!("{path}.center"))?,
        radius: number(required(map, "radius", path)?, &format!("{path}.radius"))?,
    })
}

fn line_string(v: &Value, path: &str) -> Result<GeoLineString> {
    let map = object(v, path, "an object `{\"points\": [...]}`")?;
    only_keys(map, &["points"], path, "a polygon ring")?;
    let here = format!("{path}.points");
    let Value::Array(items) = required(map, "points", path)? else {
        return Err(err(&here, "expected a list of geo points"));
    };
    let points =
        items.iter().enumerate().map(|(i, p)| geo_point(p, &format!("{here}[{i}]"))).collect::<Result<Vec<_>>>()?;
    Ok(GeoLineString { points })
}

fn polygon(v: &Value, path: &str) -> Result<GeoPolygon> {
    let map = object(v, path, "an object with `exterior` and optional `interiors`")?;
    only_keys(map, &["exterior", "interiors"], path, "geo_polygon")?;
    let exterior = line_string(required(map, "exterior", path)?, &format!("{path}.exterior"))?;
    let interiors = match field(map, "interiors") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, r)| line_string(r, &format!("{path}.interiors[{i}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(err(&format!("{path}.interiors"), format!("expected a list of rings, got {}", kind(other))))
        }
    };
    let poly = GeoPolygon { exterior, interiors };
    poly.validate().map_err(|e| err(path, e.message))?;
    Ok(poly)
}
