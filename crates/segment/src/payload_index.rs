//! Payload indexes over a range of a segment's slots (all of a sealed segment's, or a chunk of
//! the appendable segment's: [`crate::live_index`]): per declared field, the offsets holding each value
//! (keyword, uuid, integer, bool), every value in sorted order (integer, float, datetime, geo
//! points by latitude), or the offsets holding each token (full text, analysed by the index's
//! settings).
//!
//! An index answers a field condition only where its answer is exactly what the payload
//! evaluator (`qd_core::filter`) would say for every point: the same flattened values, the
//! same typed comparisons (a geo condition is checked with the evaluator's own predicate on
//! every indexed point in its latitude band). Anything else (another type of value, a phrase,
//! `except`) is left to the payload. Sealed segments never change their payloads (an update moves the point to
//! the appendable segment), so an index built at sealing stays true (the appendable segment
//! tracks the slots written since a chunk was built); dead offsets are still in it and are
//! skipped by the caller, like everywhere else in the segment.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use qd_core::filter::{
    geo_point_of, parse_datetime, AnyVariants, FieldCheck, FieldCondition, GeoPoint, Match, MatchValue, Range,
    RangeCondition, EARTH_RADIUS_M,
};
use qd_core::json_path::JsonPath;
use serde_json::Value;

use crate::hnsw::persist::Crc32;
use crate::payloads::PayloadReadError;
use crate::segment::SegmentData;

/// The declared type of a payload index that this engine builds a structure for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Keyword,
    Uuid,
    Integer,
    Float,
    Bool,
    Datetime,
    /// Full text: built with [`FieldIndex::build_text`].
    Text,
    Geo,
}

impl IndexKind {
    /// From a declared `field_schema` type; `None` for types without an index structure.
    pub fn from_schema(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "keyword" => IndexKind::Keyword,
            "uuid" => IndexKind::Uuid,
            "integer" => IndexKind::Integer,
            "float" => IndexKind::Float,
            "bool" => IndexKind::Bool,
            "datetime" => IndexKind::Datetime,
            "text" => IndexKind::Text,
            "geo" => IndexKind::Geo,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            IndexKind::Keyword => 1,
            IndexKind::Uuid => 2,
            IndexKind::Integer => 3,
            IndexKind::Float => 4,
            IndexKind::Bool => 5,
            IndexKind::Datetime => 6,
            IndexKind::Text => 7,
            IndexKind::Geo => 8,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        [
            IndexKind::Keyword,
            IndexKind::Uuid,
            IndexKind::Integer,
            IndexKind::Float,
            IndexKind::Bool,
            IndexKind::Datetime,
            IndexKind::Text,
            IndexKind::Geo,
        ]
        .into_iter()
        .find(|k| k.code() == c)
    }
}

/// A datetime as (seconds, nanoseconds) since the epoch: ordered exactly as `DateTime<Utc>`.
type Instant = (i64, u32);

fn instant(dt: &DateTime<Utc>) -> Instant {
    (dt.timestamp(), dt.timestamp_subsec_nanos())
}

/// One field's index over a segment's slots.
#[derive(Debug, Clone, Default)]
pub struct FieldIndex {
    kind: Option<IndexKind>,
    slots: usize,
    /// Keyword / uuid: string value → offsets holding it (ascending, unique). Text: token →
    /// offsets whose values hold it.
    strings: HashMap<String, Vec<u32>>,
    /// Text: the analysis settings the tokens were made with ([`qd_inference::TextIndex::fingerprint`]).
    text_settings: Option<String>,
    /// Integer: integer value → offsets.
    ints: HashMap<i64, Vec<u32>>,
    /// Bool: offsets holding `false`, then `true`.
    bools: [Vec<u32>; 2],
    /// Integer and float: every numeric value with its offset, sorted by value.
    numbers: Vec<(f64, u32)>,
    /// Datetime: every datetime string value (parsed) with its offset, sorted.
    datetimes: Vec<(Instant, u32)>,
    /// Geo: every geo point value (latitude, longitude) with its offset, sorted by latitude.
    geo: Vec<(f64, f64, u32)>,
    /// Offsets whose payload holds a non-empty value at the path (`is_empty: false`), whatever
    /// its type: the `points` of `payload_schema` and `must_not is_empty` filters.
    holders: Vec<u32>,
    /// Whether every value a facet would count (strings, integers, booleans) is in the index's
    /// postings: then facets are counted from the index alone.
    facet_complete: bool,
    /// Whether every value `order_by` would order by ([`order_value`]) is in the sorted values.
    order_complete: bool,
}

/// One payload index to build: a field indexed as a kind, or a full-text field with its
/// analyser.
#[derive(Clone, Copy)]
pub enum IndexSpec<'a> {
    Plain(IndexKind, &'a JsonPath),
    Text(&'a JsonPath, &'a qd_inference::TextIndex),
}

impl FieldIndex {
    /// Index `path` of every slot's payload in `data` as `kind`.
    pub fn build(kind: IndexKind, path: &JsonPath, data: &SegmentData) -> Result<Self, PayloadReadError> {
        Self::build_one(IndexSpec::Plain(kind, path), data)
    }

    /// Index the tokens of `path`'s string values (all values of a point together) of every
    /// slot of `data`, as `analyser` makes them.
    pub fn build_text(
        path: &JsonPath,
        data: &SegmentData,
        analyser: &qd_inference::TextIndex,
    ) -> Result<Self, PayloadReadError> {
        Self::build_one(IndexSpec::Text(path, analyser), data)
    }

    fn build_one(spec: IndexSpec<'_>, data: &SegmentData) -> Result<Self, PayloadReadError> {
        let mut built = Self::build_all(&[spec], data, &|_| true)?;
        Ok(built.pop().unwrap_or_default())
    }

    /// Every index of `specs` over the slots of `data` that `keep` keeps, in one pass: each
    /// payload is read once (payloads on disk are read from the database), whatever the
    /// number of indexes. Slots left out (dead ones) are in no index.
    pub fn build_all(
        specs: &[IndexSpec<'_>],
        data: &SegmentData,
        keep: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Self>, PayloadReadError> {
        Self::build_range(specs, data, 0..data.len() as u32, keep)
    }

    /// [`Self::build_all`] over the slots of `range` only (the rest are in no index): a chunk
    /// of the appendable segment's indexes ([`crate::live_index`]).
    pub fn build_range(
        specs: &[IndexSpec<'_>],
        data: &SegmentData,
        range: std::ops::Range<u32>,
        keep: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Self>, PayloadReadError> {
        let mut built: Vec<FieldIndex> = specs.iter().map(|spec| Self::empty(*spec, data.len())).collect();
        // `is_empty: false` on the field: the slots a payload schema counts as holding it.
        let present: Vec<FieldCondition> = specs
            .iter()
            .map(|spec| match spec {
                IndexSpec::Plain(_, path) | IndexSpec::Text(path, _) => (*path).clone(),
            })
            .map(|key| FieldCondition { key, check: FieldCheck::IsEmpty(false) })
            .collect();
        for o in range.filter(|&o| keep(o)) {
            let Some(p) = data.try_payload_at(o)? else { continue };
            for ((ix, spec), present) in built.iter_mut().zip(specs).zip(&present) {
                if present.check_payload(&p) {
                    ix.holders.push(o);
                }
                ix.add_payload(*spec, o, &p);
            }
        }
        built.iter_mut().for_each(FieldIndex::finish);
        Ok(built)
    }

    /// An index of `spec` holding no slot.
    pub(crate) fn empty(spec: IndexSpec<'_>, slots: usize) -> Self {
        match spec {
            IndexSpec::Plain(kind, _) => FieldIndex {
                kind: Some(kind),
                slots,
                facet_complete: matches!(
                    kind,
                    IndexKind::Keyword | IndexKind::Uuid | IndexKind::Integer | IndexKind::Bool
                ),
                order_complete: matches!(kind, IndexKind::Integer | IndexKind::Float | IndexKind::Datetime),
                ..Default::default()
            },
            IndexSpec::Text(_, analyser) => FieldIndex {
                kind: Some(IndexKind::Text),
                slots,
                text_settings: Some(analyser.fingerprint().to_string()),
                ..Default::default()
            },
        }
    }

    /// Index the values of slot `o`'s payload `p` (slots arrive in ascending order).
    fn add_payload(&mut self, spec: IndexSpec<'_>, o: u32, p: &qd_core::Payload) {
        let path = match spec {
            IndexSpec::Plain(_, path) | IndexSpec::Text(path, _) => path,
        };
        let values = path.values_flat(p);
        match spec {
            IndexSpec::Plain(kind, _) => {
                for v in values {
                    self.facet_complete &= facet_key(v).is_none() || self.holds_facet_value(v);
                    self.order_complete &= order_value(v).is_none()
                        || match kind {
                            IndexKind::Datetime => v.is_string(),
                            _ => v.is_number(),
                        };
                    self.add(o, v);
                }
            }
            IndexSpec::Text(_, analyser) => {
                let strings: Vec<&str> = values.into_iter().filter_map(Value::as_str).collect();
                if !strings.is_empty() {
                    for token in analyser.document_tokens(&strings) {
                        self.strings.entry(token).or_default().push(o);
                    }
                }
            }
        }
    }

    /// Postings deduplicated (arrays may repeat a value), sorted values sorted.
    fn finish(&mut self) {
        let dedup = |v: &mut Vec<u32>| v.dedup();
        self.strings.values_mut().for_each(dedup);
        self.ints.values_mut().for_each(dedup);
        self.bools.iter_mut().for_each(dedup);
        self.numbers.sort_by(by_number);
        self.datetimes.sort_unstable();
        self.geo.sort_by(by_latitude);
    }

    /// This index followed by `later`, an index of the same definition over slots that all
    /// come after this one's: postings are concatenated and sorted values merged, so the result
    /// is what one build over both ranges gives, without reading a payload.
    pub(crate) fn append(mut self, later: FieldIndex) -> FieldIndex {
        for (k, v) in later.strings {
            self.strings.entry(k).or_default().extend(v);
        }
        for (k, v) in later.ints {
            self.ints.entry(k).or_default().extend(v);
        }
        let [f, t] = later.bools;
        self.bools[0].extend(f);
        self.bools[1].extend(t);
        self.numbers = merge_by(std::mem::take(&mut self.numbers), later.numbers, by_number);
        self.datetimes = merge_by(std::mem::take(&mut self.datetimes), later.datetimes, |a, b| a.cmp(b));
        self.geo = merge_by(std::mem::take(&mut self.geo), later.geo, by_latitude);
        self.holders.extend(later.holders);
        self.slots = self.slots.max(later.slots);
        self.facet_complete &= later.facet_complete;
        self.order_complete &= later.order_complete;
        self
    }

    /// The analysis settings of a text index.
    pub fn text_settings(&self) -> Option<&str> {
        self.text_settings.as_deref()
    }

    /// Offsets arrive in ascending order, so postings stay sorted (duplicates, from arrays
    /// repeating a value, are removed at the end).
    fn add(&mut self, o: u32, v: &Value) {
        match (self.kind, v) {
            (Some(IndexKind::Keyword | IndexKind::Uuid), Value::String(s)) => {
                self.strings.entry(s.clone()).or_default().push(o)
            }
            (Some(IndexKind::Integer), Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    self.ints.entry(i).or_default().push(o);
                }
                if let Some(x) = n.as_f64() {
                    self.numbers.push((x, o));
                }
            }
            (Some(IndexKind::Float), Value::Number(n)) => {
                if let Some(x) = n.as_f64() {
                    self.numbers.push((x, o));
                }
            }
            (Some(IndexKind::Bool), Value::Bool(b)) => self.bools[*b as usize].push(o),
            (Some(IndexKind::Datetime), Value::String(s)) => {
                if let Some(dt) = parse_datetime(s) {
                    self.datetimes.push((instant(&dt), o));
                }
            }
            (Some(IndexKind::Geo), v) => {
                if let Some(p) = geo_point_of(v) {
                    self.geo.push((p.lat, p.lon, o));
                }
            }
            _ => {}
        }
    }

    pub fn kind(&self) -> Option<IndexKind> {
        self.kind
    }

    /// Whether a value a facet counts goes into this index's postings.
    fn holds_facet_value(&self, v: &Value) -> bool {
        match (self.kind, v) {
            (Some(IndexKind::Keyword | IndexKind::Uuid), Value::String(_)) => true,
            (Some(IndexKind::Integer), Value::Number(n)) => n.as_i64().is_some(),
            (Some(IndexKind::Bool), Value::Bool(_)) => true,
            _ => false,
        }
    }

    /// Every `order_by` value with its offset in ascending order (a value repeated in one point
    /// once), when the index holds all of them; `None` otherwise.
    pub fn order_entries(&self) -> Option<Vec<(f64, u32)>> {
        if !self.order_complete {
            return None;
        }
        let mut out: Vec<(f64, u32)> = match self.kind? {
            IndexKind::Integer | IndexKind::Float => self.numbers.clone(),
            IndexKind::Datetime => {
                self.datetimes.iter().map(|((s, n), o)| ((*s as f64) * 1e6 + (*n / 1000) as f64, *o)).collect()
            }
            _ => return None,
        };
        out.dedup();
        Some(out)
    }

    /// Every value of a keyword, uuid, integer or bool index with its postings (in no
    /// particular order): the groups `payload_m` links and facets count (other kinds form none).
    pub fn value_groups(&self) -> Vec<(Value, &[u32])> {
        let mut out: Vec<(Value, &[u32])> = Vec::new();
        match self.kind {
            Some(IndexKind::Keyword | IndexKind::Uuid) => {
                out.extend(self.strings.iter().map(|(k, v)| (Value::String(k.clone()), v.as_slice())))
            }
            Some(IndexKind::Integer) => out.extend(self.ints.iter().map(|(k, v)| (Value::from(*k), v.as_slice()))),
            Some(IndexKind::Bool) => {
                out.extend([false, true].iter().map(|b| (Value::Bool(*b), self.bools[*b as usize].as_slice())))
            }
            _ => {}
        }
        out
    }

    /// Every facet value with its postings, when the index holds all of them; `None` when the
    /// payload holds values of other types (or the index type keeps no postings).
    pub fn facet_values(&self) -> Option<Vec<(Value, &[u32])>> {
        self.facet_complete.then(|| self.value_groups())
    }

    /// Number of slots the index was built over.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The offsets (ascending, unique; dead ones may or may not be among them: callers drop
    /// them) whose payload satisfies `check`,
    /// when this index can tell exactly; `None` when the payload has to be read instead.
    pub fn answer(&self, check: &FieldCheck) -> Option<Vec<u32>> {
        let kind = self.kind?;
        match (kind, check) {
            (IndexKind::Keyword | IndexKind::Uuid, FieldCheck::Match(Match::Value(MatchValue::Keyword(s)))) => {
                Some(self.strings.get(s).cloned().unwrap_or_default())
            }
            (IndexKind::Keyword | IndexKind::Uuid, FieldCheck::Match(Match::Any(AnyVariants::Keywords(list)))) => {
                Some(union(list.iter().filter_map(|s| self.strings.get(s))))
            }
            (IndexKind::Integer, FieldCheck::Match(Match::Value(MatchValue::Integer(i)))) => {
                Some(self.ints.get(i).cloned().unwrap_or_default())
            }
            (IndexKind::Integer, FieldCheck::Match(Match::Any(AnyVariants::Integers(list)))) => {
                Some(union(list.iter().filter_map(|i| self.ints.get(i))))
            }
            (IndexKind::Bool, FieldCheck::Match(Match::Value(MatchValue::Bool(b)))) => {
                Some(self.bools[*b as usize].clone())
            }
            (IndexKind::Integer | IndexKind::Float, FieldCheck::Range(RangeCondition::Numeric(r))) => {
                Some(in_range(&self.numbers, r, |a, b| a.total_cmp(b)))
            }
            (IndexKind::Text, FieldCheck::FullText(ft))
                if self.text_settings.as_deref() == Some(ft.index.fingerprint()) =>
            {
                self.text_answer(&ft.query)
            }
            (IndexKind::Geo, FieldCheck::GeoBoundingBox(_) | FieldCheck::GeoRadius(_) | FieldCheck::GeoPolygon(_)) => {
                self.geo_answer(check)
            }
            (_, FieldCheck::IsEmpty(false)) => Some(self.holders.clone()),
            (IndexKind::Datetime, FieldCheck::Range(RangeCondition::Datetime(r))) => {
                let r = Range {
                    lt: r.lt.map(|d| instant(&d)),
                    gt: r.gt.map(|d| instant(&d)),
                    gte: r.gte.map(|d| instant(&d)),
                    lte: r.lte.map(|d| instant(&d)),
                };
                Some(in_range(&self.datetimes, &r, |a, b| a.cmp(b)))
            }
            _ => None,
        }
    }

    /// The values a match on one value, or on any of several, names, each with its postings
    /// (the group of points `payload_m` links when it is large enough), every value once.
    /// `None` for other checks, and for kinds whose values form no such groups.
    pub fn value_postings(&self, check: &FieldCheck) -> Option<Vec<(Value, &[u32])>> {
        let FieldCheck::Match(m) = check else { return None };
        let none: &[u32] = &[];
        let string = |s: &String| (Value::String(s.clone()), self.strings.get(s).map_or(none, Vec::as_slice));
        let int = |i: &i64| (Value::from(*i), self.ints.get(i).map_or(none, Vec::as_slice));
        let mut out = match (self.kind?, m) {
            (IndexKind::Keyword | IndexKind::Uuid, Match::Value(MatchValue::Keyword(s))) => vec![string(s)],
            (IndexKind::Keyword | IndexKind::Uuid, Match::Any(AnyVariants::Keywords(list))) => {
                list.iter().map(string).collect()
            }
            (IndexKind::Integer, Match::Value(MatchValue::Integer(i))) => vec![int(i)],
            (IndexKind::Integer, Match::Any(AnyVariants::Integers(list))) => list.iter().map(int).collect(),
            (IndexKind::Bool, Match::Value(MatchValue::Bool(b))) => {
                vec![(Value::Bool(*b), self.bools[*b as usize].as_slice())]
            }
            _ => return None,
        };
        out.sort_by_key(|(v, _)| v.to_string());
        out.dedup_by_key(|(v, _)| v.to_string());
        Some(out)
    }

    /// `text`: offsets holding every query token; `text_any`: some. A phrase also needs the
    /// tokens' order, which only the payload has.
    fn text_answer(&self, query: &qd_inference::TextQuery) -> Option<Vec<u32>> {
        let postings = |t: &String| self.strings.get(t).map(Vec::as_slice).unwrap_or(&[]);
        match query.kind() {
            qd_inference::TextMatchKind::All => {
                let mut lists: Vec<&[u32]> = query.tokens().iter().map(postings).collect();
                lists.sort_by_key(|l| l.len());
                let Some((first, rest)) = lists.split_first() else { return Some(Vec::new()) };
                Some(rest.iter().fold(first.to_vec(), |acc, l| intersect(&acc, l)))
            }
            qd_inference::TextMatchKind::Any => Some(union(query.tokens().iter().filter_map(|t| self.strings.get(t)))),
            qd_inference::TextMatchKind::Phrase => None,
        }
    }

    /// Geo conditions: every indexed point in the condition's latitude band checked with the
    /// payload evaluator's predicate. No point outside the band can match: a bounding box and
    /// a polygon lie within their latitudes, and a great-circle distance is at least the
    /// latitude difference's arc.
    fn geo_answer(&self, check: &FieldCheck) -> Option<Vec<u32>> {
        let (lo, hi) = match check {
            FieldCheck::GeoBoundingBox(b) => (b.bottom_right.lat, b.top_left.lat),
            FieldCheck::GeoPolygon(p) => {
                p.exterior.points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), q| (lo.min(q.lat), hi.max(q.lat)))
            }
            FieldCheck::GeoRadius(r) => {
                let arc = (r.radius / EARTH_RADIUS_M).to_degrees() * (1.0 + 1e-9) + 1e-9;
                (r.center.lat - arc, r.center.lat + arc)
            }
            _ => return None,
        };
        let start = self.geo.partition_point(|(lat, _, _)| *lat < lo);
        let end = start + self.geo[start..].partition_point(|(lat, _, _)| *lat <= hi);
        // Payload points are not range-checked: a latitude beyond ±90 breaks the radius bound,
        // so such points are always checked.
        let below = self.geo.partition_point(|(lat, _, _)| *lat < -90.0).min(start);
        let above = self.geo.partition_point(|(lat, _, _)| *lat <= 90.0).max(end);
        let outside: &[(f64, f64, u32)] = match check {
            FieldCheck::GeoRadius(_) => &[&self.geo[..below], &self.geo[above..]].concat(),
            _ => &[],
        };
        let mut out: Vec<u32> = self.geo[start..end]
            .iter()
            .chain(outside)
            .filter(|(lat, lon, _)| {
                let p = GeoPoint { lat: *lat, lon: *lon };
                match check {
                    FieldCheck::GeoBoundingBox(b) => b.contains(&p),
                    FieldCheck::GeoRadius(r) => r.contains(&p),
                    FieldCheck::GeoPolygon(poly) => poly.contains(&p),
                    _ => false,
                }
            })
            .map(|(_, _, o)| *o)
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    pub fn ram_bytes(&self) -> usize {
        let postings = |n: usize| n * 4 + 48;
        self.strings.iter().map(|(k, v)| k.len() + postings(v.capacity())).sum::<usize>()
            + self.ints.values().map(|v| 8 + postings(v.capacity())).sum::<usize>()
            + self.bools.iter().map(|v| v.capacity() * 4).sum::<usize>()
            + self.numbers.capacity() * 16
            + self.datetimes.capacity() * 16
            + self.geo.capacity() * 24
            + self.holders.capacity() * 4
    }

    /// Serialise: magic, kind, slots, then each structure; CRC-32 of everything before it at
    /// the end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.0.push(self.kind.map_or(0, IndexKind::code));
        w.u64(self.slots as u64);
        let mut strings: Vec<(&String, &Vec<u32>)> = self.strings.iter().collect();
        strings.sort_unstable();
        w.u64(strings.len() as u64);
        for (k, v) in strings {
            w.u64(k.len() as u64);
            w.0.extend_from_slice(k.as_bytes());
            w.offsets(v);
        }
        let mut ints: Vec<(&i64, &Vec<u32>)> = self.ints.iter().collect();
        ints.sort_unstable();
        w.u64(ints.len() as u64);
        for (k, v) in ints {
            w.u64(*k as u64);
            w.offsets(v);
        }
        w.offsets(&self.bools[0]);
        w.offsets(&self.bools[1]);
        w.u64(self.numbers.len() as u64);
        for (x, o) in &self.numbers {
            w.u64(x.to_bits());
            w.u32(*o);
        }
        w.u64(self.datetimes.len() as u64);
        for ((s, n), o) in &self.datetimes {
            w.u64(*s as u64);
            w.u32(*n);
            w.u32(*o);
        }
        w.u64(self.geo.len() as u64);
        for (lat, lon, o) in &self.geo {
            w.u64(lat.to_bits());
            w.u64(lon.to_bits());
            w.u32(*o);
        }
        w.offsets(&self.holders);
        w.0.push(self.facet_complete as u8);
        w.0.push(self.order_complete as u8);
        let settings = self.text_settings.as_deref().unwrap_or("");
        w.u64(settings.len() as u64);
        w.0.extend_from_slice(settings.as_bytes());
        let mut crc = Crc32::new();
        crc.update(&w.0);
        let sum = crc.finish();
        w.u32(sum);
        w.0
    }

    /// Read back what [`FieldIndex::to_bytes`] wrote; any damage is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < MAGIC.len() + 13 || &b[..MAGIC.len()] != MAGIC {
            return Err("not a payload index (bad magic or truncated)".into());
        }
        let (body, tail) = b.split_at(b.len() - 4);
        let mut crc = Crc32::new();
        crc.update(body);
        if crc.finish().to_le_bytes() != tail {
            return Err("payload index checksum mismatch".into());
        }
        let mut r = Reader { b: body, pos: MAGIC.len() };
        let kind = IndexKind::from_code(r.u8()?).ok_or("payload index kind is unknown")?;
        let slots = r.u64()? as usize;
        let mut ix = FieldIndex { kind: Some(kind), slots, ..Default::default() };
        for _ in 0..r.count()? {
            let len = r.count()?;
            let key = String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| "payload index key is not UTF-8")?;
            let offs = r.offsets(slots)?;
            ix.strings.insert(key, offs);
        }
        for _ in 0..r.count()? {
            let k = r.u64()? as i64;
            let offs = r.offsets(slots)?;
            ix.ints.insert(k, offs);
        }
        ix.bools[0] = r.offsets(slots)?;
        ix.bools[1] = r.offsets(slots)?;
        for _ in 0..r.count()? {
            let x = f64::from_bits(r.u64()?);
            ix.numbers.push((x, r.offset(slots)?));
        }
        for _ in 0..r.count()? {
            let s = r.u64()? as i64;
            let n = r.u32()?;
            ix.datetimes.push(((s, n), r.offset(slots)?));
        }
        for _ in 0..r.count()? {
            let lat = f64::from_bits(r.u64()?);
            let lon = f64::from_bits(r.u64()?);
            ix.geo.push((lat, lon, r.offset(slots)?));
        }
        ix.holders = r.offsets(slots)?;
        ix.facet_complete = r.u8()? == 1;
        ix.order_complete = r.u8()? == 1;
        let len = r.count()?;
        let settings = String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| "text index settings are not UTF-8")?;
        ix.text_settings = (kind == IndexKind::Text).then_some(settings);
        if r.pos != body.len() {
            return Err("payload index has trailing bytes".into());
        }
        Ok(ix)
    }
}

/// Version 2 added the holders list, 3 the facet flag, 4 the order flag, 5 text settings, 6 geo
/// points; older ones are refused and rebuilt.
const MAGIC: &[u8; 8] = b"QDPLIX06";

/// A stable tag for the group of points holding `value` (a scalar) at `field` (a path as it
/// displays): what a groups-only HNSW graph records for each group it links
/// ([`crate::hnsw::HnswGraph::tag_groups`]). FNV-1a over the path and the value's JSON text.
pub fn group_tag(field: &str, value: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in field.bytes().chain([0u8]).chain(value.to_string().bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The number `order_by` orders a value by: a number as it is, a datetime string as its
/// microseconds since the epoch; `None` for anything else.
pub fn order_value(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_datetime(s).map(|d| d.timestamp_micros() as f64),
        _ => None,
    }
}

/// How facets tell values apart and order them: a type tag (so that `true` and `1` differ) and
/// a key in value order (integers shifted so that string order is numeric order); `None` for
/// values facets do not count (null, floats, objects, arrays).
pub fn facet_key(v: &Value) -> Option<(u8, String)> {
    match v {
        Value::Bool(b) => Some((0, b.to_string())),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            Some((1, format!("{:020}", n.as_i64().unwrap_or(i64::MAX) as i128 - i64::MIN as i128)))
        }
        Value::String(s) => Some((2, s.clone())),
        _ => None,
    }
}

/// The order of `numbers`: by value, then offset.
fn by_number(a: &(f64, u32), b: &(f64, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// The order of `geo`: by latitude, then offset.
fn by_latitude(a: &(f64, f64, u32), b: &(f64, f64, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.2.cmp(&b.2))
}

/// Two lists sorted by `cmp` merged into one.
fn merge_by<T>(a: Vec<T>, b: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        let next = if cmp(x, y) == std::cmp::Ordering::Greater { b.next() } else { a.next() };
        out.extend(next);
    }
    out.extend(a);
    out.extend(b);
    out
}

/// Union of sorted offset lists, sorted and unique.
fn union<'a>(lists: impl Iterator<Item = &'a Vec<u32>>) -> Vec<u32> {
    let mut out: Vec<u32> = lists.flat_map(|l| l.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Offsets (sorted, unique) of the entries of `sorted` whose value lies in `r`.
fn in_range<K: Copy>(sorted: &[(K, u32)], r: &Range<K>, cmp: impl Fn(&K, &K) -> std::cmp::Ordering) -> Vec<u32> {
    use std::cmp::Ordering::*;
    let mut lo = 0;
    if let Some(b) = r.gte {
        lo = lo.max(sorted.partition_point(|e| cmp(&e.0, &b) == Less));
    }
    if let Some(b) = r.gt {
        lo = lo.max(sorted.partition_point(|e| cmp(&e.0, &b) != Greater));
    }
    let mut hi = sorted.len();
    if let Some(b) = r.lte {
        hi = hi.min(sorted.partition_point(|e| cmp(&e.0, &b) != Greater));
    }
    if let Some(b) = r.lt {
        hi = hi.min(sorted.partition_point(|e| cmp(&e.0, &b) == Less));
    }
    let mut out: Vec<u32> = sorted.get(lo..hi.max(lo)).unwrap_or(&[]).iter().map(|e| e.1).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Sorted offset lists merged (sorted, unique).
pub fn union_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x <= y => {
                i += 1;
                j += usize::from(x == y);
                x
            }
            (_, Some(&y)) => {
                j += 1;
                y
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, None) => break,
        };
        out.push(next);
    }
    out
}

/// Sorted offset lists intersected.
pub fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn offsets(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        v.iter().for_each(|o| self.u32(*o));
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self.b.get(self.pos..self.pos.saturating_add(n)).ok_or("payload index truncated")?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.bytes(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// A count that must fit in what is left of the input (so damage cannot ask for a huge
    /// allocation).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        if n > (self.b.len() - self.pos) as u64 {
            return Err("payload index count beyond its length".into());
        }
        Ok(n as usize)
    }
    fn offset(&mut self, slots: usize) -> Result<u32, String> {
        let o = self.u32()?;
        if o as usize >= slots {
            return Err(format!("payload index offset {o} beyond {slots} slots"));
        }
        Ok(o)
    }
    fn offsets(&mut self, slots: usize) -> Result<Vec<u32>, String> {
        let n = self.count()?;
        (0..n).map(|_| self.offset(slots)).collect()
    }
}

/// Offsets as a bitmap: O(1) membership while a graph search visits nodes.
#[derive(Debug, Clone)]
pub struct OffsetSet {
    bits: Vec<u64>,
}

impl OffsetSet {
    pub fn new(slots: usize, sorted: &[u32]) -> Self {
        let mut bits = vec![0u64; slots.div_ceil(64)];
        for &o in sorted {
            if let Some(w) = bits.get_mut(o as usize / 64) {
                *w |= 1 << (o % 64);
            }
        }
        OffsetSet { bits }
    }

    pub fn contains(&self, o: u32) -> bool {
        self.bits.get(o as usize / 64).is_some_and(|w| w & (1 << (o % 64)) != 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use qd_core::filter::Filter;
    use qd_core::vectors::{NamedVectors, Vector};
    use qd_core::{Distance, PointId};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};

    use super::*;
    use crate::segment::{ColumnSpec, Segment, SegmentIndex};

    const WORDS: [&str; 5] = ["red", "green", "blue", "teal", "Red"];

    /// A payload mixing every shape the evaluator handles: single values, arrays, values of
    /// another type than the index, nulls, nesting, missing keys.
    pub(crate) fn payload(rng: &mut StdRng) -> Value {
        let mut p = serde_json::Map::new();
        let word = |rng: &mut StdRng| json!(WORDS[rng.gen_range(0..WORDS.len())]);
        match rng.gen_range(0..6) {
            0 => {}
            1 => drop(p.insert("k".into(), json!([word(rng), word(rng)]))),
            2 => drop(p.insert("k".into(), json!(rng.gen_range(0..3)))),
            3 => drop(p.insert("k".into(), Value::Null)),
            _ => drop(p.insert("k".into(), word(rng))),
        }
        match rng.gen_range(0..6) {
            0 => {}
            1 => drop(p.insert("i".into(), json!([rng.gen_range(-5..5), rng.gen_range(-5..5)]))),
            2 => drop(p.insert("i".into(), json!(rng.gen_range(-5..5) as f64 + 0.5))),
            3 => drop(p.insert("i".into(), json!("3"))),
            _ => drop(p.insert("i".into(), json!(rng.gen_range(-5..5)))),
        }
        match rng.gen_range(0..4) {
            0 => {}
            1 => drop(p.insert("f".into(), json!(rng.gen_range(-5..5)))),
            _ => drop(p.insert("f".into(), json!(rng.gen_range(-50..50) as f64 / 10.0))),
        }
        match rng.gen_range(0..4) {
            0 => {}
            1 => drop(p.insert("b".into(), json!([true, false]))),
            2 => drop(p.insert("b".into(), json!("true"))),
            _ => drop(p.insert("b".into(), json!(rng.gen_bool(0.5)))),
        }
        if rng.gen_bool(0.8) {
            let day = rng.gen_range(1..28);
            let form =
                if rng.gen_bool(0.5) { format!("2024-03-{day:02}T10:00:00Z") } else { format!("2024-03-{day:02}") };
            p.insert("d".into(), json!(form));
        }
        if rng.gen_bool(0.5) {
            p.insert("nested".into(), json!({"k": word(rng)}));
        }
        let text = |rng: &mut StdRng| {
            (0..rng.gen_range(1..5)).map(|_| TEXT[rng.gen_range(0..TEXT.len())]).collect::<Vec<_>>().join(" ")
        };
        match rng.gen_range(0..5) {
            0 => {}
            1 => drop(p.insert("t".into(), json!([text(rng), text(rng), 7]))),
            _ => drop(p.insert("t".into(), json!(text(rng)))),
        }
        // Geo points near the antimeridian and the pole too, arrays, and non-points.
        let point = |rng: &mut StdRng| json!({"lon": rng.gen_range(-180.0..180.0), "lat": rng.gen_range(-90.0..90.0)});
        match rng.gen_range(0..6) {
            0 => {}
            1 => drop(p.insert("g".into(), json!([point(rng), point(rng)]))),
            2 => drop(p.insert("g".into(), json!({"lon": "1", "lat": 2}))),
            3 => drop(
                p.insert("g".into(), json!({"lon": rng.gen_range(170.0..180.0), "lat": rng.gen_range(80.0..90.0)})),
            ),
            // Out of range (payloads are not checked): the radius bound must not drop them.
            4 if rng.gen_bool(0.5) => {
                let lat = rng.gen_range(90.5..130.0) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                drop(p.insert("g".into(), json!({"lon": rng.gen_range(-180.0..180.0), "lat": lat})))
            }
            _ => drop(p.insert("g".into(), point(rng))),
        }
        Value::Object(p)
    }

    /// Words of the text field: stems shared, cases and a stopword.
    const TEXT: [&str; 8] = ["Running", "runs", "fox", "foxes", "the", "quick", "brown", "ran"];

    /// One condition, indexed or not.
    fn condition(rng: &mut StdRng) -> Value {
        let w = |rng: &mut StdRng| WORDS[rng.gen_range(0..WORDS.len())];
        let bound = |rng: &mut StdRng| rng.gen_range(-60..60) as f64 / 10.0;
        let t = |rng: &mut StdRng| {
            (0..rng.gen_range(0..3)).map(|_| TEXT[rng.gen_range(0..TEXT.len())]).collect::<Vec<_>>().join(" ")
        };
        let lon = |rng: &mut StdRng| rng.gen_range(-180.0..180.0f64);
        let lat = |rng: &mut StdRng| rng.gen_range(-90.0..90.0f64);
        match rng.gen_range(0..18) {
            15 => {
                let (a, b) = (lat(rng), lat(rng));
                let box_ = json!({"top_left": {"lon": lon(rng), "lat": a.max(b)}, "bottom_right": {"lon": lon(rng), "lat": a.min(b)}});
                return json!({"key": "g", "geo_bounding_box": box_});
            }
            16 => {
                let radius = [1e3, 1e5, 1e6, 5e6, 2e7][rng.gen_range(0..5)];
                return json!({"key": "g", "geo_radius": {"center": {"lon": lon(rng), "lat": lat(rng)}, "radius": radius}});
            }
            17 => {
                let (x, y) = (rng.gen_range(-150.0..150.0), rng.gen_range(-60.0..60.0));
                let ring = json!([{"lon": x, "lat": y}, {"lon": x + 30.0, "lat": y + 5.0}, {"lon": x + 10.0, "lat": y + 25.0},
                                  {"lon": x, "lat": y}]);
                return json!({"key": "g", "geo_polygon": {"exterior": {"points": ring}}});
            }
            12 => return json!({"key": "t", "match": {"text": t(rng)}}),
            13 => return json!({"key": "t", "match": {"text_any": t(rng)}}),
            14 => return json!({"key": "t", "match": {"phrase": t(rng)}}),
            _ => {}
        }
        match rng.gen_range(0..12) {
            0 => json!({"key": "k", "match": {"value": w(rng)}}),
            1 => json!({"key": "k", "match": {"any": [w(rng), w(rng)]}}),
            2 => json!({"key": "k", "match": {"value": rng.gen_range(0..3)}}),
            3 => json!({"key": "i", "match": {"value": rng.gen_range(-5..5)}}),
            4 => json!({"key": "i", "match": {"any": [rng.gen_range(-5..5), rng.gen_range(-5..5)]}}),
            5 => json!({"key": "i", "range": {"gte": bound(rng), "lt": bound(rng)}}),
            6 => json!({"key": "f", "range": {"gt": bound(rng)}}),
            7 => json!({"key": "f", "range": {"lte": bound(rng), "gte": bound(rng)}}),
            8 => json!({"key": "b", "match": {"value": rng.gen_bool(0.5)}}),
            9 => {
                json!({"key": "d", "range": {"gte": format!("2024-03-{:02}", rng.gen_range(1..28)), "lt": "2024-03-20T00:00:00Z"}})
            }
            10 => json!({"key": "nested.k", "match": {"value": w(rng)}}),
            11 if rng.gen_bool(0.5) => {
                let key = ["k", "i", "f", "b", "d"][rng.gen_range(0..5)];
                json!({"key": key, "is_empty": false})
            }
            _ => json!({"key": "k", "match": {"except": [w(rng)]}}),
        }
    }

    pub(crate) fn filter(rng: &mut StdRng) -> Filter {
        let mut f = serde_json::Map::new();
        let n = rng.gen_range(1..4);
        f.insert("must".into(), Value::Array((0..n).map(|_| condition(rng)).collect()));
        if rng.gen_bool(0.3) {
            f.insert("must_not".into(), json!([condition(rng)]));
        }
        if rng.gen_bool(0.3) {
            f.insert("should".into(), json!([condition(rng), condition(rng)]));
        }
        Filter::from_json(&Value::Object(f)).expect("valid filter")
    }

    /// Payloads "on disk": a map that counts reads.
    #[derive(Debug, Default)]
    struct CountingSource(std::collections::HashMap<PointId, qd_core::Payload>, std::sync::atomic::AtomicUsize);

    impl crate::payloads::PayloadSource for CountingSource {
        fn payload(&self, id: &PointId, _version: u64) -> Result<Option<qd_core::Payload>, PayloadReadError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.0.get(id).cloned())
        }
    }

    #[test]
    fn indexes_built_together_read_each_live_payload_once() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut seg = Segment::new(1, &[ColumnSpec::dense("", 2, Distance::Dot)]);
        let mut source = CountingSource::default();
        for i in 0..300u64 {
            let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0, i as f32]))]);
            let p = payload(&mut rng).as_object().cloned();
            if let Some(p) = &p {
                source.0.insert(PointId::Num(i), p.clone());
            }
            seg.upsert(PointId::Num(i), i + 1, &v, p);
        }
        for i in (0..300u64).step_by(3) {
            seg.delete(&PointId::Num(i));
        }
        seg.seal();
        let in_ram: Vec<FieldIndex> = ["k", "i", "b"]
            .iter()
            .map(|f| FieldIndex::build(IndexKind::Keyword, &f.parse().expect("path"), seg.data()).expect("in RAM"))
            .collect();
        let source = Arc::new(source);
        assert!(seg.payloads_to_disk(source.clone()).is_some());
        let paths: Vec<JsonPath> = ["k", "i", "b"].iter().map(|f| f.parse().expect("path")).collect();
        let specs: Vec<IndexSpec<'_>> = paths.iter().map(|p| IndexSpec::Plain(IndexKind::Keyword, p)).collect();
        let live = seg.live_slots();
        let built = FieldIndex::build_all(&specs, seg.data(), &|o| live[o as usize]).expect("read");
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 200, "one read per live slot, for 3 indexes");
        for (b, r) in built.iter().zip(&in_ram) {
            let live_only: Vec<u32> = r.holders.iter().copied().filter(|&o| live[o as usize]).collect();
            assert_eq!(b.holders, live_only);
        }
    }

    #[test]
    fn indexed_filters_equal_payload_evaluation() {
        let mut rng = StdRng::seed_from_u64(5);
        let cols = [ColumnSpec::dense("", 2, Distance::Dot)];
        let mut seg = Segment::new(1, &cols);
        for i in 0..2_000u64 {
            let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0, i as f32]))]);
            let p = payload(&mut rng);
            seg.upsert(PointId::Num(i), i + 1, &v, p.as_object().cloned());
        }
        // Some dead slots too.
        for i in (0..2_000u64).step_by(7) {
            seg.delete(&PointId::Num(i));
        }
        seg.seal();
        let plain = seg.clone();
        let fields = [
            ("k", IndexKind::Keyword),
            ("i", IndexKind::Integer),
            ("f", IndexKind::Float),
            ("b", IndexKind::Bool),
            ("d", IndexKind::Datetime),
            ("nested.k", IndexKind::Keyword),
            ("g", IndexKind::Geo),
        ];
        let text_schema = json!({"type": "text", "stopwords": "english", "phrase_matching": true,
                                 "stemmer": {"type": "snowball", "language": "english"}});
        let analyser = Arc::new(
            qd_inference::TextIndex::new(qd_inference::TextIndexParams::from_schema(&text_schema).expect("params"))
                .expect("analyser"),
        );
        let t: JsonPath = "t".parse().expect("path");
        let paths: Vec<JsonPath> = fields.iter().map(|(f, _)| f.parse().expect("path")).collect();
        let mut specs: Vec<IndexSpec<'_>> =
            fields.iter().zip(&paths).map(|((_, k), p)| IndexSpec::Plain(*k, p)).collect();
        specs.push(IndexSpec::Text(&t, &analyser));
        // Built together over the live slots only (as a rebuild does); dead slots are in no index.
        let live = seg.live_slots();
        let built = FieldIndex::build_all(&specs, seg.data(), &|o| live[o as usize]).expect("in RAM");
        let mut payload_ix = BTreeMap::new();
        for (ix, path) in built.iter().zip(paths.iter().chain([&t])) {
            let back = FieldIndex::from_bytes(&ix.to_bytes()).expect("round trip");
            assert_eq!(back.to_bytes(), ix.to_bytes());
            payload_ix.insert(path.to_string(), back);
        }
        assert_eq!(payload_ix["t"].text_settings(), Some(analyser.fingerprint()));
        // One at a time over every slot: the same answers on live slots.
        let alone = FieldIndex::build(IndexKind::Keyword, &paths[0], seg.data()).expect("in RAM");
        assert!(alone.holders.len() > payload_ix["k"].holders.len(), "dead slots are left out");
        let live_holders: Vec<u32> = alone.holders.iter().copied().filter(|&o| live[o as usize]).collect();
        assert_eq!(live_holders, payload_ix["k"].holders);
        let text_indexes = qd_core::filter::TextIndexes::from([(t, analyser)]);
        seg.set_index(Arc::new(SegmentIndex { payload: payload_ix, ..Default::default() }));
        let mut narrowed = 0;
        for _ in 0..400 {
            let f = filter(&mut rng);
            // Text matches are bound to the analyser, as a shard binds them.
            let f = f.with_text_indexes(&text_indexes).unwrap_or(f);
            let plan = seg.plan(Some(&f));
            if plan.candidate_list().is_some() {
                narrowed += 1;
            }
            if plan.residual.is_none() && plan.candidate_list().is_some_and(|l| l.len() <= 1024) {
                assert_eq!(seg.estimate_count(&f), plain.count(Some(&f)), "exact for few candidates: {f:?}");
            }
            assert_same_answers(&seg, &plain, &f);
        }
        // Only string values under nested.k: its facets come from the index.
        let nested = seg.index().and_then(|ix| ix.payload.get("nested.k").cloned()).expect("index");
        assert!(nested.facet_values().is_some());
        let floats = seg.index().and_then(|ix| ix.payload.get("f").cloned()).expect("index");
        assert!(floats.order_entries().is_some(), "f holds numbers only: ordered from the index");
        assert!(
            seg.index().and_then(|ix| ix.payload.get("k").cloned()).expect("index").facet_values().is_none(),
            "k mixes types"
        );
        assert!(narrowed > 200, "indexes narrowed only {narrowed} of 400 filters");
    }

    /// Whether `seg` (with payload indexes) answers `f` as `plain` (without) does: count,
    /// scroll, exact search, `order_by` entries and facets.
    pub(crate) fn assert_same_answers(seg: &Segment, plain: &Segment, f: &Filter) {
        assert_eq!(seg.count(Some(f)), plain.count(Some(f)), "{f:?}");
        assert_eq!(seg.scroll(None, Some(f), 50), plain.scroll(None, Some(f), 50), "{f:?}");
        let q = [1.0f32, 0.0];
        let hits = |s: &Segment| {
            s.search_scored(
                "",
                &|v| match v {
                    crate::segment::VectorRef::Dense(x) => x.with_f32(|x| Some(x[0] * q[0] + x[1] * q[1])),
                    _ => None,
                },
                10,
                Some(f),
                None,
            )
            .iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
        };
        assert_eq!(hits(seg), hits(plain), "{f:?}");
        let nearest = |s: &Segment| {
            let params = crate::segment::SearchParams::default();
            s.search_nearest("", &q, 10, Some(f), None, &params).iter().map(|h| h.id).collect::<Vec<_>>()
        };
        assert_eq!(nearest(seg), nearest(plain), "nearest {f:?}");
        for key in ["i", "f", "d", "k"] {
            let path: JsonPath = key.parse().expect("path");
            let sorted = |mut v: Vec<(f64, PointId)>| {
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                v
            };
            assert_eq!(
                sorted(seg.order_entries(&path, Some(f))),
                sorted(plain.order_entries(&path, Some(f))),
                "order_by {key} {f:?}"
            );
        }
        for key in ["k", "i", "b", "nested.k"] {
            let path: JsonPath = key.parse().expect("path");
            let sorted = |mut v: Vec<(Value, usize)>| {
                v.sort_by_key(|(v, _)| facet_key(v));
                v
            };
            assert_eq!(sorted(seg.facet(&path, Some(f))), sorted(plain.facet(&path, Some(f))), "facet {key} {f:?}");
        }
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let cols = [ColumnSpec::dense("", 2, Distance::Dot)];
        let mut seg = Segment::new(1, &cols);
        let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0, 0.0]))]);
        seg.upsert(PointId::Num(1), 1, &v, json!({"k": "a"}).as_object().cloned());
        let bytes =
            FieldIndex::build(IndexKind::Keyword, &"k".parse().expect("path"), seg.data()).expect("in RAM").to_bytes();
        for cut in [0, 9, 20, bytes.len() - 1] {
            assert!(FieldIndex::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[12] ^= 1;
        assert!(FieldIndex::from_bytes(&flipped).is_err());
    }
}
