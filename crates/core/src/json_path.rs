//! JSON key paths into payloads, written the way Qdrant writes payload keys.
//!
//! Grammar (the same as Qdrant's):
//!
//! ```text
//! path  := key ( "." key | "[" digits "]" | "[]" )*
//! key   := raw | quoted
//! raw   := one or more of: alphanumeric characters, `_`, `-`
//! quoted:= `"` any characters except `"` and `\` `"`
//! ```
//!
//! Examples: `a`, `a.b.c`, `a[].b` (every element of the array `a`), `a[0].b` (first element),
//! `country.cities[].population`, `meta."dotted.key"`.
//!
//! Reading ([`JsonPath::values`]) never looks through arrays implicitly: `a.b` on
//! `{"a": [{"b": 1}]}` finds nothing, `a[].b` finds `1`. A `Key` step on something that is not
//! an object, or an index step on something that is not an array, yields nothing.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Payload, ValidationError};

/// A parsed payload key: a first object key followed by further steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath {
    /// The key looked up in the payload object itself.
    pub first_key: String,
    /// Steps applied after the first key.
    pub rest: Vec<JsonPathItem>,
}

/// One step of a [`JsonPath`] after its first key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JsonPathItem {
    /// `.key`: a key of an object.
    Key(String),
    /// `[3]`: one element of an array.
    Index(usize),
    /// `[]`: every element of an array.
    Wildcard,
}

/// A malformed path string; the message names the path and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid JSON path `{path}`: {reason}")]
pub struct JsonPathError {
    pub path: String,
    pub reason: String,
}

impl From<JsonPathError> for ValidationError {
    fn from(e: JsonPathError) -> Self {
        ValidationError::new(e.to_string())
    }
}

fn is_raw_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether `key` must be written in quotes to be read back as a single key.
pub fn key_needs_quoting(key: &str) -> bool {
    key.is_empty() || !key.chars().all(is_raw_key_char)
}

/// A path as an error message shows it: long ones cut after 64 characters, saying how long
/// they were (a message must not echo a megabyte of user input).
fn shown(path: &str) -> String {
    const SHOWN: usize = 64;
    match path.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}… ({} characters)", &path[..cut], path.chars().count()),
        None => path.to_string(),
    }
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Parser<'s> {
    fn err(&self, reason: impl Into<String>) -> JsonPathError {
        JsonPathError { path: shown(self.src), reason: reason.into() }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn key(&mut self) -> Result<String, JsonPathError> {
        let rest = &self.src[self.pos..];
        match rest.chars().next() {
            None => Err(self.err(format!("expected a key at position {}, found the end", self.pos))),
            Some('"') => {
                let body = &rest[1..];
                let Some(end) = body.find('"') else {
                    return Err(self.err(format!("unterminated quote starting at position {}", self.pos)));
                };
                let key = &body[..end];
                if key.contains('\\') {
                    return Err(self.err("quoted keys cannot contain `\\`"));
                }
                self.pos += end + 2;
                Ok(key.to_string())
            }
            Some(c) => {
                let len: usize = rest.chars().take_while(|&c| is_raw_key_char(c)).map(char::len_utf8).sum();
                if len == 0 {
                    return Err(match c {
                        '.' => self.err(format!("empty key at position {}", self.pos)),
                        '[' if self.pos == 0 => self.err("a path must start with a key, not with `[`"),
                        '[' => self.err(format!("empty key before `[` at position {}", self.pos)),
                        ']' => self.err(format!("unbalanced `]` at position {}", self.pos)),
                        _ => self.err(format!(
                            "unexpected character {c:?} at position {}; keys with characters other \
                             than letters, digits, `_` and `-` must be quoted, e.g. `\"my key\"`",
                            self.pos
                        )),
                    });
                }
                self.pos += len;
                Ok(rest[..len].to_string())
            }
        }
    }

    fn parse(mut self) -> Result<JsonPath, JsonPathError> {
        if self.src.is_empty() {
            return Err(self.err("the path is empty"));
        }
        let first_key = self.key()?;
        let mut rest = Vec::new();
        while let Some(c) = self.peek() {
            if rest.len() + 1 >= MAX_PATH_PARTS {
                return Err(self.err(format!("a key path may have at most {MAX_PATH_PARTS} parts")));
            }
            match c {
                '.' => {
                    self.pos += 1;
                    if self.peek().is_none() {
                        return Err(self.err("the path ends with `.`"));
                    }
                    rest.push(JsonPathItem::Key(self.key()?));
                }
                '[' => {
                    let start = self.pos;
                    let body = &self.src[start + 1..];
                    let Some(end) = body.find(']') else {
                        return Err(self.err(format!("unclosed `[` at position {start}")));
                    };
                    let inner = &body[..end];
                    if inner.is_empty() {
                        rest.push(JsonPathItem::Wildcard);
                    } else if inner.bytes().all(|b| b.is_ascii_digit()) {
                        let index = inner
                            .parse::<usize>()
                            .map_err(|_| self.err(format!("array index {inner} is too large")))?;
                        rest.push(JsonPathItem::Index(index));
                    } else {
                        return Err(self.err(format!(
                            "invalid array index `[{inner}]` at position {start}: expected `[]` or \
                             `[N]` with N an unsigned integer"
                        )));
                    }
                    self.pos = start + 1 + end + 1;
                }
                ']' => return Err(self.err(format!("unbalanced `]` at position {}", self.pos))),
                _ => {
                    return Err(self.err(format!(
                        "unexpected character {c:?} at position {}; expected `.`, `[` or the end \
                         (quote keys with special characters, e.g. `\"my key\"`)",
                        self.pos
                    )))
                }
            }
        }
        Ok(JsonPath { first_key, rest })
    }
}

/// Most parts (keys, indexes, `[]`) a key path may have. Deeper paths are refused when parsed,
/// so that no payload written through a path nests beyond what can be stored and read back.
pub const MAX_PATH_PARTS: usize = 32;

/// Most levels of nested objects and arrays a stored payload may have (checked on every write).
/// JSON bodies are limited to 128 levels when parsed; this leaves room so that a payload read
/// back from storage always decodes.
pub const MAX_PAYLOAD_DEPTH: usize = 64;

/// Levels of nesting of a JSON value (a scalar is 0, `{"a": 1}` is 1), without recursion.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Levels of nesting of a payload (an object: at least 1 when it has a key).
pub fn payload_depth(p: &Payload) -> usize {
    p.values().map(|v| depth(v) + 1).max().unwrap_or(0)
}

impl FromStr for JsonPath {
    type Err = JsonPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Parser { src: s, pos: 0 }.parse()
    }
}

impl TryFrom<&str> for JsonPath {
    type Error = JsonPathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
            if key_needs_quoting(key) {
                write!(f, "\"{key}\"")
            } else {
                f.write_str(key)
            }
        }
        write_key(f, &self.first_key)?;
        for item in &self.rest {
            match item {
                JsonPathItem::Key(k) => {
                    f.write_str(".")?;
                    write_key(f, k)?;
                }
                JsonPathItem::Index(i) => write!(f, "[{i}]")?,
                JsonPathItem::Wildcard => f.write_str("[]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonPath;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a payload key string such as `a.b[].c`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonPath, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Merge `src` into `dest` the way Qdrant's `set_payload` does: every key of `src` replaces the
/// key in `dest`, except that a `null` value removes the key. Key order of `dest` is kept.
pub fn merge_payload(dest: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (k, v) in src {
        if v.is_null() {
            dest.shift_remove(k);
        } else {
            dest.insert(k.clone(), v.clone());
        }
    }
}

impl JsonPath {
    /// A path made of one plain key (which may contain any character, no parsing involved).
    pub fn key(key: impl Into<String>) -> Self {
        JsonPath { first_key: key.into(), rest: Vec::new() }
    }

    /// Whether the path is a single key.
    pub fn is_simple(&self) -> bool {
        self.rest.is_empty()
    }

    /// Whether the last step is `[]`.
    pub fn has_wildcard_suffix(&self) -> bool {
        self.rest.last() == Some(&JsonPathItem::Wildcard)
    }

    /// `a.b[]` -> `a.b`; other paths unchanged.
    pub fn strip_wildcard_suffix(&self) -> JsonPath {
        let mut p = self.clone();
        if p.has_wildcard_suffix() {
            p.rest.pop();
        }
        p
    }

    /// `a.b` -> `a.b[]`; a path already ending in `[]` is unchanged. This is the key a `nested`
    /// condition iterates over.
    pub fn array_key(&self) -> JsonPath {
        let mut p = self.clone();
        if !p.has_wildcard_suffix() {
            p.rest.push(JsonPathItem::Wildcard);
        }
        p
    }

    /// `self` followed by `other` (whose first key becomes a `.key` step): `a[]` + `b.c` ->
    /// `a[].b.c`. Used to turn paths inside a nested filter into payload-absolute paths.
    pub fn extend(&self, other: &JsonPath) -> JsonPath {
        let mut rest = Vec::with_capacity(self.rest.len() + 1 + other.rest.len());
        rest.extend_from_slice(&self.rest);
        rest.push(JsonPathItem::Key(other.first_key.clone()));
        rest.extend_from_slice(&other.rest);
        JsonPath { first_key: self.first_key.clone(), rest }
    }

    /// Whether one of the two paths is a prefix of the other, treating `[N]` and `[]` as
    /// overlapping. Changing the value at one path may then change the values at the other.
    pub fn overlaps(&self, other: &JsonPath) -> bool {
        self.first_key == other.first_key
            && self.rest.iter().zip(&other.rest).all(|(a, b)| match (a, b) {
                (JsonPathItem::Key(a), JsonPathItem::Key(b)) => a == b,
                (JsonPathItem::Index(a), JsonPathItem::Index(b)) => a == b,
                (JsonPathItem::Index(_) | JsonPathItem::Wildcard, JsonPathItem::Index(_) | JsonPathItem::Wildcard) => {
                    true
                }
                _ => false,
            })
    }

    /// Every value the path selects, in document order. `[]` fans out over array elements; a
    /// final array is returned as one value (see [`JsonPath::values_flat`]). A present `null`
    /// is returned as a value; a missing key contributes nothing.
    pub fn values<'a>(&self, payload: &'a Payload) -> Vec<&'a Value> {
        let mut out = Vec::new();
        if let Some(v) = payload.get(&self.first_key) {
            collect(&self.rest, v, &mut out);
        }
        out
    }

    /// Like [`JsonPath::values`], but a selected array is replaced by its elements (one level).
    /// This is what `match` and `range` look at: a condition on an array field holds when any
    /// element satisfies it.
    pub fn values_flat<'a>(&self, payload: &'a Payload) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for v in self.values(payload) {
            match v {
                Value::Array(items) => out.extend(items.iter()),
                other => out.push(other),
            }
        }
        out
    }

    /// Qdrant's `set_payload` with a `key`: merge `value` into the object(s) at this path,
    /// creating objects along the way. As in Qdrant, whatever is in the way is replaced: a
    /// non-object where an object is needed becomes `{}` (then merged into), a non-array under
    /// an index step becomes `[]`; an index past the end of an array sets nothing; `[]` applies
    /// to every element of an array (turning non-object elements into objects). A `null` in
    /// `value` removes that key, as in [`merge_payload`].
    pub fn set(&self, payload: &mut Payload, value: Payload) {
        set_in_map(&self.first_key, &self.rest, payload, &value);
    }

    /// Qdrant's `delete_payload` for this key: removes the key the path ends with, wherever the
    /// path reaches (`a[].b` removes `b` from every element of `a`). A path ending in `[]`
    /// empties that array; a path ending in `[N]` removes nothing (Qdrant does not delete
    /// array elements by index). Returns the removed values.
    pub fn delete(&self, payload: &mut Payload) -> Vec<Value> {
        let mut out = Vec::new();
        match self.rest.split_first() {
            None => {
                if let Some(v) = payload.shift_remove(&self.first_key) {
                    out.push(v);
                }
            }
            Some((head, tail)) => {
                if let Some(v) = payload.get_mut(&self.first_key) {
                    remove_in(head, tail, v, &mut out);
                }
            }
        }
        out
    }
}

fn collect<'a>(path: &[JsonPathItem], value: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((head, tail)) = path.split_first() else {
        out.push(value);
        return;
    };
    match (head, value) {
        (JsonPathItem::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get(k) {
                collect(tail, v, out);
            }
        }
        (JsonPathItem::Index(i), Value::Array(items)) => {
            if let Some(v) = items.get(*i) {
                collect(tail, v, out);
            }
        }
        (JsonPathItem::Wildcard, Value::Array(items)) => {
            for v in items {
                collect(tail, v, out);
            }
        }
        _ => {}
    }
}

fn set_in_map(key: &str, path: &[JsonPathItem], map: &mut Map<String, Value>, src: &Payload) {
    if !map.contains_key(key) {
        map.insert(key.to_string(), Value::Null);
    }
    if let Some(dest) = map.get_mut(key) {
        set_in_value(path, dest, src);
    }
}

fn set_in_value(path: &[JsonPathItem], dest: &mut Value, src: &Payload) {
    match path.split_first() {
        None => {
            if !dest.is_object() {
                *dest = Value::Object(Map::new());
            }
            if let Value::Object(map) = dest {
                merge_payload(map, src);
            }
        }
        Some((JsonPathItem::Key(k), rest)) => {
            if !dest.is_object() {
                *dest = Value::Object(Map::new());
            }
            if let Value::Object(map) = dest {
                set_in_map(k, rest, map, src);
            }
        }
        Some((JsonPathItem::Index(i), rest)) => {
            if !dest.is_array() {
                *dest = Value::Array(Vec::new());
            }
            if let Some(v) = dest.as_array_mut().and_then(|items| items.get_mut(*i)) {
                set_in_value(rest, v, src);
            }
        }
        Some((JsonPathItem::Wildcard, rest)) => match dest {
            Value::Array(items) => {
                for v in items {
                    set_in_value(rest, v, src);
                }
            }
            other => *other = Value::Array(Vec::new()),
        },
    }
}

fn remove_in(head: &JsonPathItem, rest: &[JsonPathItem], value: &mut Value, out: &mut Vec<Value>) {
    match rest.split_first() {
        Some((next, tail)) => match (head, value) {
            (JsonPathItem::Key(k), Value::Object(map)) => {
                if let Some(v) = map.get_mut(k) {
                    remove_in(next, tail, v, out);
                }
            }
            (JsonPathItem::Index(i), Value::Array(items)) => {
                if let Some(v) = items.get_mut(*i) {
                    remove_in(next, tail, v, out);
                }
            }
            (JsonPathItem::Wildcard, Value::Array(items)) => {
                for v in items {
                    remove_in(next, tail, v, out);
                }
            }
            _ => {}
        },
        None => match (head, value) {
            (JsonPathItem::Key(k), Value::Object(map)) => {
                if let Some(v) = map.shift_remove(k) {
                    out.push(v);
                }
            }
            (JsonPathItem::Wildcard, Value::Array(items)) => {
                out.push(Value::Array(std::mem::take(items)));
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_have_a_bounded_number_of_parts() {
        let ok = vec!["a"; MAX_PATH_PARTS].join(".");
        assert!(ok.parse::<JsonPath>().is_ok());
        let deep = vec!["a"; MAX_PATH_PARTS + 1].join(".");
        let e = deep.parse::<JsonPath>().expect_err("too deep");
        assert_eq!(
            e.to_string(),
            format!("Invalid JSON path `{ok}.… (65 characters)`: a key path may have at most 32 parts")
        );
        let huge = vec!["a"; 20_000].join(".");
        let e = huge.parse::<JsonPath>().expect_err("too deep");
        assert_eq!(e.path.chars().count(), 64 + "… (39999 characters)".chars().count(), "{e}");
    }

    #[test]
    fn depth_counts_levels_without_recursion() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": 2}]})), 3);
        let mut v = serde_json::json!(0);
        for _ in 0..10_000 {
            v = Value::Array(vec![v]); // not json!, which re-serialises `v` recursively
        }
        assert_eq!(depth(&v), 10_000);
        let p: Payload = serde_json::from_value(serde_json::json!({"x": {"y": 1}, "z": 2})).expect("object");
        assert_eq!(payload_depth(&p), 2);
        std::mem::forget(v); // dropping 10,000 nested arrays would recurse
    }

    fn p(s: &str) -> JsonPath {
        s.parse().expect("valid path")
    }

    fn obj(v: Value) -> Payload {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(p("a"), JsonPath::key("a"));
        assert_eq!(
            p("a.b-c.d_e"),
            JsonPath {
                first_key: "a".into(),
                rest: vec![JsonPathItem::Key("b-c".into()), JsonPathItem::Key("d_e".into())]
            }
        );
        assert_eq!(
            p("country.cities[].population"),
            JsonPath {
                first_key: "country".into(),
                rest: vec![
                    JsonPathItem::Key("cities".into()),
                    JsonPathItem::Wildcard,
                    JsonPathItem::Key("population".into())
                ]
            }
        );
        assert_eq!(
            p("a[0][12].b"),
            JsonPath {
                first_key: "a".into(),
                rest: vec![JsonPathItem::Index(0), JsonPathItem::Index(12), JsonPathItem::Key("b".into())]
            }
        );
        assert_eq!(
            p(r#"the."nested.key"[]"#),
            JsonPath {
                first_key: "the".into(),
                rest: vec![JsonPathItem::Key("nested.key".into()), JsonPathItem::Wildcard]
            }
        );
        assert_eq!(p(r#""a b""#), JsonPath::key("a b"));
        assert_eq!(p("ключ.값"), JsonPath { first_key: "ключ".into(), rest: vec![JsonPathItem::Key("값".into())] });
    }

    #[test]
    fn rejects_malformed_paths_with_reasons() {
        let cases = [
            ("", "empty"),
            ("a..b", "empty key"),
            (".a", "empty key"),
            ("a.", "ends with `.`"),
            ("a[0", "unclosed `[`"),
            ("a]", "unbalanced `]`"),
            ("a[x]", "invalid array index"),
            ("a[-1]", "invalid array index"),
            ("[0].a", "must start with a key"),
            ("a b", "unexpected character ' '"),
            ("a\"b\"", "unexpected character '\"'"),
            ("\"ab", "unterminated quote"),
            ("a.[0]", "empty key before `[`"),
        ];
        for (src, want) in cases {
            let err = src.parse::<JsonPath>().expect_err(src);
            let msg = err.to_string();
            assert!(msg.contains(want), "{src:?}: {msg}");
            assert!(msg.contains(&format!("`{src}`")), "{src:?}: {msg}");
        }
    }

    #[test]
    fn display_round_trips_and_quotes_when_needed() {
        for s in ["a", "a.b[].c", "a[3][]", r#"a."b.c".d"#, r#""x y"[0]"#, r#"a.""[]"#] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
        assert_eq!(JsonPath::key("has space").to_string(), "\"has space\"");
        assert!(key_needs_quoting("a.b"));
        assert!(!key_needs_quoting("a-b_c9"));
    }

    #[test]
    fn serde_as_string() {
        let path: JsonPath = serde_json::from_value(json!("a[].b")).expect("parse");
        assert_eq!(serde_json::to_value(&path).expect("ser"), json!("a[].b"));
        let err = serde_json::from_value::<JsonPath>(json!("a[")).expect_err("bad");
        assert!(err.to_string().contains("unclosed"));
        assert!(serde_json::from_value::<JsonPath>(json!(5)).is_err());
    }

    #[test]
    fn values_follow_qdrant_semantics() {
        let payload = obj(json!({
            "name": "John",
            "counts": [1, 2, 3],
            "address": {"city": "New York"},
            "location": [
                {"name": "home", "counts": [1, 2, 3]},
                {"name": "work", "counts": [4, 5, 6]},
                {"other": true}
            ],
            "nested": [{"empty": []}, {"empty": []}, {"empty": null}],
            "the_null": null,
            "the": {"nested.key": "cuckoo"},
            "grid": [[1, 2], [3, 4]]
        }));
        let vals = |s: &str| -> Vec<Value> { p(s).values(&payload).into_iter().cloned().collect() };
        let flat = |s: &str| -> Vec<Value> { p(s).values_flat(&payload).into_iter().cloned().collect() };

        assert_eq!(vals("name"), vec![json!("John")]);
        assert_eq!(vals("address.city"), vec![json!("New York")]);
        assert_eq!(vals("location[].name"), vec![json!("home"), json!("work")]);
        assert_eq!(vals("location[1].name"), vec![json!("work")]);
        assert!(vals("location[5].name").is_empty());
        assert!(vals("location.name").is_empty(), "no implicit descent into arrays");
        assert!(vals("address.city[0]").is_empty());
        assert!(vals("missing").is_empty());
        assert!(vals("name.deeper").is_empty());
        assert_eq!(vals("counts"), vec![json!([1, 2, 3])]);
        assert_eq!(flat("counts"), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(vals("location[].counts"), vec![json!([1, 2, 3]), json!([4, 5, 6])]);
        assert_eq!(flat("location[].counts").len(), 6);
        assert_eq!(vals("nested[].empty"), vec![json!([]), json!([]), Value::Null]);
        assert_eq!(flat("nested[].empty"), vec![Value::Null]);
        assert_eq!(vals("the_null"), vec![Value::Null]);
        assert_eq!(vals(r#"the."nested.key""#), vec![json!("cuckoo")]);
        assert_eq!(vals("grid[][1]"), vec![json!(2), json!(4)]);
        assert_eq!(flat("grid[]"), vec![json!(1), json!(2), json!(3), json!(4)]);
    }

    #[test]
    fn set_merges_and_creates_objects() {
        let mut payload = obj(json!({"a": {"x": 1, "y": 2}, "b": 5}));
        p("a").set(&mut payload, obj(json!({"y": 3, "z": 4, "x": null})));
        assert_eq!(Value::Object(payload.clone()), json!({"a": {"y": 3, "z": 4}, "b": 5}));

        p("c.d").set(&mut payload, obj(json!({"k": true})));
        assert_eq!(payload["c"], json!({"d": {"k": true}}));

        // a scalar in the way is replaced by an object
        p("b.e").set(&mut payload, obj(json!({"k": 1})));
        assert_eq!(payload["b"], json!({"e": {"k": 1}}));
    }

    #[test]
    fn set_through_arrays() {
        let mut payload = obj(json!({"arr": [{"a": 1}, 7, {"b": 2}], "s": "x"}));
        p("arr[]").set(&mut payload, obj(json!({"n": 0})));
        assert_eq!(payload["arr"], json!([{"a": 1, "n": 0}, {"n": 0}, {"b": 2, "n": 0}]));

        p("arr[1].deep").set(&mut payload, obj(json!({"q": 1})));
        assert_eq!(payload["arr"][1], json!({"n": 0, "deep": {"q": 1}}));

        // out-of-range index sets nothing
        p("arr[9]").set(&mut payload, obj(json!({"q": 1})));
        assert_eq!(payload["arr"].as_array().map(Vec::len), Some(3));

        // index / wildcard on a non-array replace it with an empty array, as Qdrant does
        p("s[0]").set(&mut payload, obj(json!({"q": 1})));
        assert_eq!(payload["s"], json!([]));
        p("new[]").set(&mut payload, obj(json!({"q": 1})));
        assert_eq!(payload["new"], json!([]));
    }

    #[test]
    fn delete_removes_keys_and_keeps_order() {
        let mut payload = obj(json!({
            "a": 1, "b": {"c": 2, "d": 3}, "e": 4,
            "arr": [{"x": 1, "y": 2}, {"x": 3}, 5],
            "list": [1, 2, 3]
        }));
        assert_eq!(p("a").delete(&mut payload), vec![json!(1)]);
        assert_eq!(payload.keys().collect::<Vec<_>>(), vec!["b", "e", "arr", "list"]);
        assert_eq!(p("b.c").delete(&mut payload), vec![json!(2)]);
        assert_eq!(payload["b"], json!({"d": 3}));
        assert_eq!(p("arr[].x").delete(&mut payload), vec![json!(1), json!(3)]);
        assert_eq!(payload["arr"], json!([{"y": 2}, {}, 5]));
        assert!(p("list[0]").delete(&mut payload).is_empty());
        assert_eq!(payload["list"], json!([1, 2, 3]));
        assert_eq!(p("list[]").delete(&mut payload), vec![json!([1, 2, 3])]);
        assert_eq!(payload["list"], json!([]));
        assert!(p("missing.x").delete(&mut payload).is_empty());
        assert!(p("e.x").delete(&mut payload).is_empty());
    }

    #[test]
    fn path_helpers() {
        assert_eq!(p("a.b").array_key(), p("a.b[]"));
        assert_eq!(p("a.b[]").array_key(), p("a.b[]"));
        assert_eq!(p("a[]").strip_wildcard_suffix(), p("a"));
        assert_eq!(p("a[]").extend(&p("b.c[0]")), p("a[].b.c[0]"));
        assert!(p("a[0].b").overlaps(&p("a[].b.c")));
        assert!(p("a").overlaps(&p("a.b")));
        assert!(!p("a.b").overlaps(&p("a.c")));
        assert!(!p("a[0]").overlaps(&p("a.x")));
    }

    #[test]
    fn merge_payload_null_removes() {
        let mut dest = obj(json!({"a": 1, "b": 2, "c": 3}));
        merge_payload(&mut dest, &obj(json!({"b": null, "a": 10, "d": 4})));
        assert_eq!(Value::Object(dest.clone()), json!({"a": 10, "c": 3, "d": 4}));
        assert_eq!(dest.keys().collect::<Vec<_>>(), vec!["a", "c", "d"]);
    }
}
