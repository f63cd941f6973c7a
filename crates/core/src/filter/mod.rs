//! Qdrant's filter language: the AST, its JSON form (parsed by hand from `serde_json::Value`
//! for precise error messages, serialized back to the same shapes), validation, the payload
//! keys a filter reads, and evaluation against a point ([`Filter::check`]).
//!
//! Semantics follow Qdrant and the official Python client's local mode:
//!
//! * `must`: all hold; `must_not`: none holds; `should`: at least one holds (an empty or
//!   absent `should` is no constraint); `min_should`: at least `min_count` of its conditions.
//! * A field condition looks at every value its key selects ([`JsonPath::values_flat`]: a
//!   selected array counts as its elements); `match`, `range` and the geo conditions hold
//!   when any value satisfies them, so a missing key never matches them.
//! * `match.value` compares strictly by JSON type: integer `1` matches `1` but not `1.5` or
//!   `1.0` (floats are never exact-matched), `true` matches booleans only.
//! * `match.except` holds when some non-null value is not in the list (a value of another
//!   type counts as not in the list); a missing key, `null` or `[]` never matches.
//! * `match.text` / `text_any` / `phrase` (no full-text index): both sides are split into
//!   lowercase words (runs of letters and digits); `text` needs every query word in the
//!   value, `text_any` one of them, `phrase` all of them consecutively. An empty query never
//!   matches. `prefix` / `substring` are case-sensitive string tests.
//! * `is_empty`: the key is missing, or every value it selects is `null` or `[]`.
//! * `is_null`: some value the key selects is `null`, or is an array holding a `null`
//!   element (one level deep). A missing key is not null.
//! * `values_count`: counted per selected value (array → its length, `null` → 0, anything
//!   else → 1; a missing key counts 0); holds when one count satisfies all bounds.
//! * `nested`: the key (with or without a trailing `[]`) must select arrays; each object
//!   element is checked on its own against the nested filter, whose keys are relative to the
//!   element. `has_id` inside `nested` is rejected by validation; `has_vector` and `slice`
//!   never hold there.
//! * `range` with numbers compares any JSON number (int or float, never booleans); `range`
//!   with strings is a datetime range and compares payload strings parsed as datetimes
//!   ([`parse_datetime`]). Values of another type never match.
//! * Geo conditions read payload objects `{"lon": .., "lat": ..}`; a bounding box and a
//!   polygon exclude their boundaries, a radius is a strict `<` on the haversine distance.

mod eval;
mod parse;
mod ser;
#[cfg(test)]
mod tests;
mod text;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::json_path::JsonPath;
use crate::{PointId, ValidationError};
pub use text::TextIndexes;

pub use eval::PointView;

/// Mean Earth radius in meters (IUGG), as used by Qdrant for haversine distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A filter: `{"must": [..], "should": [..], "must_not": [..], "min_should": {..}}`.
/// Each of the three lists also accepts a single condition object in JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
    pub min_should: Option<MinShould>,
}

/// `{"conditions": [..], "min_count": N}`: at least `min_count` conditions hold.
#[derive(Debug, Clone, PartialEq)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
}

/// One condition of a filter clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `{"key": .., "match" | "range" | ..: ..}`
    Field(FieldCondition),
    /// `{"is_empty": {"key": ..}}`
    IsEmpty(JsonPath),
    /// `{"is_null": {"key": ..}}`
    IsNull(JsonPath),
    /// `{"has_id": [..]}`
    HasId(BTreeSet<PointId>),
    /// `{"has_vector": "name"}` (`""` is the unnamed vector)
    HasVector(String),
    /// `{"nested": {"key": .., "filter": {..}}}`
    Nested(NestedCondition),
    /// `{"slice": {"total": T, "index": I}}`: the point's id hashes into slice `I` of `T`.
    Slice(SliceCondition),
    /// A filter used as a condition.
    Filter(Filter),
}

/// `nested`: the filter must hold for one element of the array at `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedCondition {
    pub key: JsonPath,
    pub filter: Filter,
}

/// `slice`: SipHash-2-4 (zero key) of the id's canonical bytes (8 little-endian bytes for a
/// number, the 16 RFC 4122 bytes for a UUID), modulo `total`, equals `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceCondition {
    pub total: u64,
    pub index: u64,
}

/// A condition on the values of one payload key.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCondition {
    pub key: JsonPath,
    pub check: FieldCheck,
}

/// The one check a field condition makes.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldCheck {
    Match(Match),
    Range(RangeCondition),
    GeoBoundingBox(GeoBoundingBox),
    GeoRadius(GeoRadius),
    GeoPolygon(GeoPolygon),
    ValuesCount(ValuesCount),
    /// `"is_empty": true|false`
    IsEmpty(bool),
    /// `"is_null": true|false`
    IsNull(bool),
    /// A text match on a field with a full-text index, bound to the index by the shard that
    /// evaluates it ([`Filter::with_text_indexes`]); requests never parse into it.
    FullText(FullTextMatch),
}

/// A `text`, `text_any` or `phrase` match decided by a full-text index's analysis (tokenizer,
/// stopwords, stemmer, ...) over all string values of the field, as Qdrant's index decides it.
#[derive(Debug, Clone)]
pub struct FullTextMatch {
    /// The match as the request wrote it: what serialises and what strict mode checks.
    pub written: Match,
    pub index: std::sync::Arc<qd_inference::TextIndex>,
    pub query: qd_inference::TextQuery,
}

impl PartialEq for FullTextMatch {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written && std::sync::Arc::ptr_eq(&self.index, &other.index)
    }
}

/// `match` variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// `{"value": "s" | 1 | true}`
    Value(MatchValue),
    /// `{"text": ".."}`: every query word is a word of the value.
    Text(String),
    /// `{"text_any": ".."}`: some query word is a word of the value.
    TextAny(String),
    /// `{"phrase": ".."}`: the query words appear consecutively in the value.
    Phrase(String),
    /// `{"prefix": ".."}`: the string value starts with it (case-sensitive).
    Prefix(String),
    /// `{"substring": ".."}`: the string value contains it (case-sensitive).
    Substring(String),
    /// `{"any": [..]}`: some value is in the list.
    Any(AnyVariants),
    /// `{"except": [..]}`: some non-null value is not in the list.
    Except(AnyVariants),
}

/// The operand of `match.value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

/// The list of `match.any` / `match.except`: all strings or all integers. An empty list is
/// `Keywords(vec![])`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyVariants {
    Keywords(Vec<String>),
    Integers(Vec<i64>),
}

/// Bounds of a range; absent bounds are no constraint.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range<T> {
    pub lt: Option<T>,
    pub gt: Option<T>,
    pub gte: Option<T>,
    pub lte: Option<T>,
}

impl<T: PartialOrd + Copy> Range<T> {
    /// Whether `x` satisfies every present bound.
    pub fn contains(&self, x: T) -> bool {
        self.lt.is_none_or(|b| x < b)
            && self.gt.is_none_or(|b| x > b)
            && self.lte.is_none_or(|b| x <= b)
            && self.gte.is_none_or(|b| x >= b)
    }
}

/// `range`: numeric bounds, or datetime bounds when the bounds are strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeCondition {
    Numeric(Range<f64>),
    Datetime(Range<DateTime<Utc>>),
}

/// `values_count` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValuesCount {
    pub lt: Option<usize>,
    pub gt: Option<usize>,
    pub gte: Option<usize>,
    pub lte: Option<usize>,
}

impl ValuesCount {
    /// Whether `count` satisfies every present bound.
    pub fn contains(&self, count: usize) -> bool {
        self.lt.is_none_or(|b| count < b)
            && self.gt.is_none_or(|b| count > b)
            && self.lte.is_none_or(|b| count <= b)
            && self.gte.is_none_or(|b| count >= b)
    }
}

/// `{"lon": .., "lat": ..}` in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

impl GeoPoint {
    /// A point with `lat` in [-90, 90] and `lon` in [-180, 180].
    pub fn new(lon: f64, lat: f64) -> Result<GeoPoint, ValidationError> {
        let p = GeoPoint { lon, lat };
        p.validate()?;
        Ok(p)
    }

    /// Checks `lat` in [-90, 90] and `lon` in [-180, 180].
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(ValidationError::new(format!(
                "lat {} is out of range: expected a latitude within [-90, 90]",
                self.lat
            )));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(ValidationError::new(format!(
                "lon {} is out of range: expected a longitude within [-180, 180]",
                self.lon
            )));
        }
        Ok(())
    }

    /// Haversine distance in meters.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// Reads a payload geo value: an object with numeric `lon` and `lat` (other keys ignored).
/// Coordinates are not range-checked here.
pub fn geo_point_of(value: &Value) -> Option<GeoPoint> {
    let obj = value.as_object()?;
    let lon = obj.get("lon")?;
    let lat = obj.get("lat")?;
    if !lon.is_number() || !lat.is_number() {
        return None;
    }
    Some(GeoPoint { lon: lon.as_f64()?, lat: lat.as_f64()? })
}

/// `geo_bounding_box`: strictly inside the rectangle; crosses the antimeridian when
/// `top_left.lon > bottom_right.lon`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBoundingBox {
    pub top_left: GeoPoint,
    pub bottom_right: GeoPoint,
}

impl GeoBoundingBox {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        let lon_ok = if self.top_left.lon > self.bottom_right.lon {
            p.lon > self.top_left.lon || p.lon < self.bottom_right.lon
        } else {
            self.top_left.lon < p.lon && p.lon < self.bottom_right.lon
        };
        lon_ok && self.bottom_right.lat < p.lat && p.lat < self.top_left.lat
    }
}

/// `geo_radius`: haversine distance to `center` strictly less than `radius` meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoRadius {
    pub center: GeoPoint,
    pub radius: f64,
}

impl GeoRadius {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        self.center.distance_m(p) < self.radius
    }
}

/// `{"points": [..]}`: a closed ring (first point == last point, at least 4 points).
#[derive(Debug, Clone, PartialEq)]
pub struct GeoLineString {
    pub points: Vec<GeoPoint>,
}

/// `geo_polygon`: inside `exterior` and outside every interior ring; boundaries excluded.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoPolygon {
    pub exterior: GeoLineString,
    pub interiors: Vec<GeoLineString>,
}

impl GeoPolygon {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        in_ring(p, &self.exterior.points, false) && !self.interiors.iter().any(|ring| in_ring(p, &ring.points, true))
    }

    /// Checks every ring: at least 4 points, closed, coordinates in range.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_ring(&self.exterior, "exterior")?;
        for (i, ring) in self.interiors.iter().enumerate() {
            validate_ring(ring, &format!("interiors[{i}]"))?;
        }
        Ok(())
    }
}

fn validate_ring(ring: &GeoLineString, name: &str) -> Result<(), ValidationError> {
    if ring.points.len() < 4 {
        return Err(ValidationError::new(format!(
            "{name}: polygon invalid, the size must be at least 4, got {}",
            ring.points.len()
        )));
    }
    if let (Some(first), Some(last)) = (ring.points.first(), ring.points.last()) {
        if first != last {
            return Err(ValidationError::new(format!(
                "{name}: polygon invalid, the first and the last points should be the same to \
                 form a closed line"
            )));
        }
    }
    for (i, p) in ring.points.iter().enumerate() {
        p.validate().map_err(|e| ValidationError::new(format!("{name}.points[{i}]: {}", e.message)))?;
    }
    Ok(())
}

/// Point-in-ring by ray casting. A point exactly on an edge counts as `on_boundary`.
fn in_ring(p: &GeoPoint, ring: &[GeoPoint], on_boundary: bool) -> bool {
    let mut pts: &[GeoPoint] = ring;
    if pts.len() > 1 && pts.first() == pts.last() {
        pts = &pts[..pts.len() - 1];
    }
    let n = pts.len();
    if n == 0 {
        return false;
    }
    let (px, py) = (p.lat, p.lon);
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = (pts[i].lat, pts[i].lon);
        let (xj, yj) = (pts[j].lat, pts[j].lon);
        let collinear = py * (xi - xj) + yi * (xj - px) + yj * (px - xi) == 0.0;
        if collinear && (xi - px) * (xj - px) <= 0.0 && (yi - py) * (yj - py) <= 0.0 {
            return on_boundary;
        }
        if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Parses a datetime the way Qdrant does, for range bounds and payload values alike:
/// RFC 3339 (`2023-02-08T10:49:00Z`, `...+01:00`, `T` or space separator, lowercase `z`,
/// fractional seconds), offsets as `+HH:MM`, `+HHMM` or `+HH` (optionally after a space, or
/// ` UTC`), and without a zone (taken as UTC): `YYYY-MM-DDTHH:MM:SS[.f]`,
/// `YYYY-MM-DD HH:MM:SS[.f]`, `YYYY-MM-DD[T ]HH:MM`, `YYYY-MM-DD`.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let mut s = s.trim_start().to_string();
    if let Some(head) = s.strip_suffix(" UTC") {
        s = format!("{head}+00:00");
    } else if let Some(head) = s.strip_suffix('z') {
        s = format!("{head}Z");
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(&s) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Some(head) = s.strip_suffix('Z') {
        s = format!("{head}+00:00");
    }
    let s = s.as_str();
    const ZONED: [&str; 4] =
        ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f %#z", "%Y-%m-%d %H:%M:%S%.f %#z"];
    for fmt in ZONED {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    const NAIVE: [&str; 4] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"];
    for fmt in NAIVE {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|dt| dt.and_utc())
}

/// The words `text`, `text_any` and `phrase` compare: maximal runs of letters and digits
/// (underscore and everything else separate words), lowercased.
pub fn text_tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// SipHash-2-4 with a zero key.
fn siphash24(data: &[u8]) -> u64 {
    siphash24_keyed(0, 0, data)
}

/// SipHash-2-4 with the key `(k0, k1)` (each the little-endian reading of 8 key bytes).
fn siphash24_keyed(k0: u64, k1: u64, data: &[u8]) -> u64 {
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut v: [u64; 4] = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn compress(v: &mut [u64; 4], m: u64) {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    }
    let chunks = data.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        compress(&mut v, u64::from_le_bytes(b));
    }
    let mut b = [0u8; 8];
    b[..tail.len()].copy_from_slice(tail);
    b[7] = data.len() as u8;
    compress(&mut v, u64::from_le_bytes(b));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

impl SliceCondition {
    /// The slice (in `0..total`) an id belongs to; `None` when `total` is 0.
    pub fn slice_of(id: &PointId, total: u64) -> Option<u64> {
        if total == 0 {
            return None;
        }
        let h = match id {
            PointId::Num(n) => siphash24(&n.to_le_bytes()),
            PointId::Uuid(u) => siphash24(u.as_bytes()),
        };
        Some(h % total)
    }

    pub fn contains(&self, id: &PointId) -> bool {
        SliceCondition::slice_of(id, self.total) == Some(self.index)
    }
}

impl FieldCondition {
    pub fn new(key: JsonPath, check: FieldCheck) -> Self {
        FieldCondition { key, check }
    }
}

impl Condition {
    /// `{"key": key, "match": {"value": value}}`.
    pub fn match_value(key: JsonPath, value: MatchValue) -> Condition {
        Condition::Field(FieldCondition::new(key, FieldCheck::Match(Match::Value(value))))
    }

    /// `{"key": key, ...}` with any check.
    pub fn field(key: JsonPath, check: FieldCheck) -> Condition {
        Condition::Field(FieldCondition::new(key, check))
    }

    /// Parses one condition from JSON (errors name `path`, e.g. `filter.must[0]`), without
    /// validation.
    pub fn from_json_at(v: &Value, path: &str) -> Result<Condition, ValidationError> {
        parse::condition(v, path)
    }

    /// The JSON form of the condition.
    pub fn to_json(&self) -> Value {
        ser::condition(self)
    }
}

impl Filter {
    /// A filter whose `must` is `conditions`.
    pub fn must(conditions: Vec<Condition>) -> Filter {
        Filter { must: conditions, ..Filter::default() }
    }

    /// A filter whose `should` is `conditions`.
    pub fn should(conditions: Vec<Condition>) -> Filter {
        Filter { should: conditions, ..Filter::default() }
    }

    /// A filter whose `must_not` is `conditions`.
    pub fn must_not(conditions: Vec<Condition>) -> Filter {
        Filter { must_not: conditions, ..Filter::default() }
    }

    /// Whether the filter has no condition at all (it then matches every point).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty() && self.min_should.is_none()
    }

    /// A filter that holds when both `self` and `other` hold.
    pub fn and(self, other: Filter) -> Filter {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        Filter::must(vec![Condition::Filter(self), Condition::Filter(other)])
    }

    /// Qdrant's merge of a request's filter into a prefetch's filter: clause by clause, so the
    /// `should` conditions of both become alternatives of one another (not both required), and
    /// `min_should` lists join with the larger count.
    pub fn merge(self, inner: Filter) -> Filter {
        let cat = |mut a: Vec<Condition>, b: Vec<Condition>| {
            a.extend(b);
            a
        };
        let min_should = match (self.min_should, inner.min_should) {
            (Some(a), Some(b)) => {
                Some(MinShould { min_count: a.min_count.max(b.min_count), conditions: cat(a.conditions, b.conditions) })
            }
            (a, b) => a.or(b),
        };
        Filter {
            must: cat(self.must, inner.must),
            should: cat(self.should, inner.should),
            must_not: cat(self.must_not, inner.must_not),
            min_should,
        }
    }

    /// Parses and validates a filter from JSON; errors are prefixed with `filter`.
    pub fn from_json(v: &Value) -> Result<Filter, ValidationError> {
        Filter::from_json_at(v, "filter")
    }

    /// Parses and validates a filter from JSON; errors are prefixed with `path`
    /// (e.g. `prefetch[0].filter`).
    pub fn from_json_at(v: &Value, path: &str) -> Result<Filter, ValidationError> {
        let f = parse::filter(v, path)?;
        f.validate_at(path, false)?;
        Ok(f)
    }

    /// The JSON form: each clause as a list (empty clauses omitted).
    pub fn to_json(&self) -> Value {
        ser::filter(self)
    }

    /// Checks what parsing cannot: `has_id` inside `nested`, `min_count` >= 1, slice bounds,
    /// geo coordinates and polygon shapes (for filters built in code).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_at("filter", false)
    }

    fn validate_at(&self, path: &str, in_nested: bool) -> Result<(), ValidationError> {
        for (name, list) in [("must", &self.must), ("should", &self.should), ("must_not", &self.must_not)] {
            for (i, c) in list.iter().enumerate() {
                c.validate_at(&format!("{path}.{name}[{i}]"), in_nested)?;
            }
        }
        if let Some(ms) = &self.min_should {
            if ms.min_count < 1 {
                return Err(ValidationError::new(format!(
                    "{path}.min_should.min_count: min_count value {} is invalid. Must be 1 or \
                     larger.",
                    ms.min_count
                )));
            }
            for (i, c) in ms.conditions.iter().enumerate() {
                c.validate_at(&format!("{path}.min_should.conditions[{i}]"), in_nested)?;
            }
        }
        Ok(())
    }

    /// Every payload key the filter reads, in order of first use, without duplicates. Keys
    /// inside a `nested` condition are made absolute: `nested {key: "diet", filter: food}`
    /// gives `diet[].food`.
    pub fn keys(&self) -> Vec<JsonPath> {
        let mut out = Vec::new();
        self.collect_keys(None, &mut out);
        out
    }

    /// Every condition of the filter, those inside `nested` conditions and sub-filters included.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            let all = f
                .must
                .iter()
                .chain(&f.should)
                .chain(&f.must_not)
                .chain(f.min_should.iter().flat_map(|m| m.conditions.iter()));
            for c in all {
                out.push(c);
                match c {
                    Condition::Nested(n) => stack.push(&n.filter),
                    Condition::Filter(inner) => stack.push(inner),
                    _ => {}
                }
            }
        }
        out
    }

    fn collect_keys(&self, prefix: Option<&JsonPath>, out: &mut Vec<JsonPath>) {
        let all = self
            .must
            .iter()
            .chain(&self.should)
            .chain(&self.must_not)
            .chain(self.min_should.iter().flat_map(|m| m.conditions.iter()));
        for c in all {
            c.collect_keys(prefix, out);
        }
    }
}

impl Condition {
    fn validate_at(&self, path: &str, in_nested: bool) -> Result<(), ValidationError> {
        let at = |e: ValidationError| ValidationError::new(format!("{path}: {}", e.message));
        match self {
            Condition::HasId(_) if in_nested => Err(ValidationError::new(format!(
                "{path}: has_id is not supported inside a nested filter; put it in a must clause \
                 next to the nested condition"
            ))),
            Condition::Nested(n) => n.filter.validate_at(&format!("{path}.nested.filter"), true),
            Condition::Filter(f) => f.validate_at(path, in_nested),
            Condition::Slice(s) => {
                if s.total < 1 {
                    Err(ValidationError::new(format!("{path}.slice.total: slice total must be >= 1, got {}", s.total)))
                } else if s.index >= s.total {
                    Err(ValidationError::new(format!(
                        "{path}.slice.index: slice index must be in [0;{}], got {}",
                        s.total - 1,
                        s.index
                    )))
                } else {
                    Ok(())
                }
            }
            Condition::Field(fc) => match &fc.check {
                FieldCheck::GeoBoundingBox(b) => {
                    b.top_left.validate().map_err(at)?;
                    b.bottom_right.validate().map_err(at)
                }
                FieldCheck::GeoRadius(r) => {
                    r.center.validate().map_err(at)?;
                    if r.radius.is_finite() {
                        Ok(())
                    } else {
                        Err(ValidationError::new(format!("{path}: radius must be a finite number")))
                    }
                }
                FieldCheck::GeoPolygon(p) => p.validate().map_err(at),
                FieldCheck::Match(Match::Text(t) | Match::TextAny(t) | Match::Phrase(t))
                | FieldCheck::FullText(FullTextMatch {
                    written: Match::Text(t) | Match::TextAny(t) | Match::Phrase(t),
                    ..
                }) => crate::limits::at_most("text length", t.len(), crate::limits::MAX_TEXT_QUERY).map_err(at),
                _ => Ok(()),
            },
            Condition::HasId(ids) => crate::limits::at_most("has_id", ids.len(), crate::limits::MAX_HAS_ID).map_err(at),
            Condition::IsEmpty(_) | Condition::IsNull(_) | Condition::HasVector(_) => Ok(()),
        }
    }

    fn collect_keys(&self, prefix: Option<&JsonPath>, out: &mut Vec<JsonPath>) {
        let mut push = |key: &JsonPath| {
            let full = prefix.map_or_else(|| key.clone(), |p| p.extend(key));
            if !out.contains(&full) {
                out.push(full);
            }
        };
        match self {
            Condition::Field(fc) => push(&fc.key),
            Condition::IsEmpty(k) | Condition::IsNull(k) => push(k),
            Condition::Nested(n) => {
                let base = n.key.array_key();
                let base = prefix.map_or_else(|| base.clone(), |p| p.extend(&base));
                n.filter.collect_keys(Some(&base), out);
            }
            Condition::Filter(f) => f.collect_keys(prefix, out),
            Condition::HasId(_) | Condition::HasVector(_) | Condition::Slice(_) => {}
        }
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Filter::from_json(&v).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let c = parse::condition(&v, "condition").map_err(|e| serde::de::Error::custom(e.message))?;
        c.validate_at("condition", false).map_err(|e| serde::de::Error::custom(e.message))?;
        Ok(c)
    }
}
