//! Binding text matches to the full-text indexes declared on their fields: a `text`, `text_any`
//! or `phrase` match on an indexed field is decided by the index's analysis (Qdrant's
//! semantics); on any other field it keeps the plain word matching of [`super::text_tokens`].

use std::collections::HashMap;
use std::sync::Arc;

use qd_inference::{TextIndex, TextMatchKind};

use super::{Condition, FieldCheck, Filter, FullTextMatch, Match};
use crate::json_path::JsonPath;

/// The full-text indexes of a collection, by the field (full path) each is declared on.
pub type TextIndexes = HashMap<JsonPath, Arc<TextIndex>>;

impl Filter {
    /// This filter with every text match on a field of `indexes` bound to that index (inside
    /// `nested`, the field is the nested key's elements' key). `None` when no condition is on
    /// such a field: the filter applies as it is.
    pub fn with_text_indexes(&self, indexes: &TextIndexes) -> Option<Filter> {
        if indexes.is_empty() {
            return None;
        }
        let mut bound = self.clone();
        bound.bind(None, indexes).then_some(bound)
    }

    fn bind(&mut self, prefix: Option<&JsonPath>, indexes: &TextIndexes) -> bool {
        let mut changed = false;
        let clauses = [&mut self.must, &mut self.should, &mut self.must_not];
        for c in clauses.into_iter().flatten().chain(self.min_should.iter_mut().flat_map(|m| m.conditions.iter_mut())) {
            changed |= c.bind(prefix, indexes);
        }
        changed
    }
}

impl Condition {
    fn bind(&mut self, prefix: Option<&JsonPath>, indexes: &TextIndexes) -> bool {
        match self {
            Condition::Field(fc) => {
                let FieldCheck::Match(m @ (Match::Text(_) | Match::TextAny(_) | Match::Phrase(_))) = &fc.check else {
                    return false;
                };
                let full = prefix.map_or_else(|| fc.key.clone(), |p| p.extend(&fc.key));
                let Some(index) = indexes.get(&full) else { return false };
                let (kind, text) = match m {
                    Match::Text(t) => (TextMatchKind::All, t),
                    Match::TextAny(t) => (TextMatchKind::Any, t),
                    Match::Phrase(t) => (TextMatchKind::Phrase, t),
                    _ => return false,
                };
                let query = index.query(kind, text);
                fc.check = FieldCheck::FullText(FullTextMatch { written: m.clone(), index: Arc::clone(index), query });
                true
            }
            Condition::Nested(n) => {
                let base = n.key.array_key();
                let base = prefix.map_or_else(|| base.clone(), |p| p.extend(&base));
                n.filter.bind(Some(&base), indexes)
            }
            Condition::Filter(f) => f.bind(prefix, indexes),
            Condition::IsEmpty(_)
            | Condition::IsNull(_)
            | Condition::HasId(_)
            | Condition::HasVector(_)
            | Condition::Slice(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Payload;

    fn indexes(field: &str, schema: serde_json::Value) -> TextIndexes {
        let params = qd_inference::TextIndexParams::from_schema(&schema).expect("valid");
        let index = Arc::new(TextIndex::new(params).expect("builds"));
        HashMap::from([(field.parse::<JsonPath>().expect("path"), index)])
    }

    fn filter(v: serde_json::Value) -> Filter {
        serde_json::from_value(v).expect("filter")
    }

    fn payload(v: serde_json::Value) -> Payload {
        serde_json::from_value(v).expect("payload")
    }

    #[test]
    fn only_text_matches_on_indexed_fields_are_bound() {
        let ix = indexes("t", json!({"type": "text", "stemmer": {"type": "snowball", "language": "english"}}));
        let f = filter(json!({"must": [{"key": "t", "match": {"text": "running"}}]}));
        let bound = f.with_text_indexes(&ix).expect("bound");
        let p = payload(json!({"t": "they run"}));
        assert!(!f.check_payload(&p));
        assert!(bound.check_payload(&p));
        // Serialises as written.
        assert_eq!(serde_json::to_value(&bound).expect("json"), serde_json::to_value(&f).expect("json"));
        let other =
            filter(json!({"must": [{"key": "u", "match": {"text": "x"}}, {"key": "t", "match": {"value": "x"}}]}));
        assert!(other.with_text_indexes(&ix).is_none());
        assert!(f.with_text_indexes(&TextIndexes::new()).is_none());
    }

    #[test]
    fn nested_and_grouped_conditions_are_bound_by_full_path() {
        let ix = indexes("a[].t", json!({"type": "text", "ascii_folding": true}));
        let f = filter(json!({"should": [{"nested": {"key": "a", "filter": {"must": [
            {"key": "t", "match": {"text": "cafe"}}]}}}]}));
        let bound = f.with_text_indexes(&ix).expect("bound");
        let p = payload(json!({"a": [{"t": "x"}, {"t": "Café"}]}));
        assert!(!f.check_payload(&p));
        assert!(bound.check_payload(&p));
        let g = filter(json!({"must_not": [{"must": [{"key": "a[].t", "match": {"text_any": "cafe"}}]}]}));
        assert!(!g.with_text_indexes(&ix).expect("bound").check_payload(&p));
    }

    #[test]
    fn tokens_of_all_values_count_together() {
        let ix = indexes("t", json!("text"));
        let f = filter(json!({"must": [{"key": "t", "match": {"text": "quick brown"}}]}));
        let p = payload(json!({"t": ["quick lazy", "brown dog", 5]}));
        assert!(!f.check_payload(&p));
        assert!(f.with_text_indexes(&ix).expect("bound").check_payload(&p));
    }
}
