//! Full-text index semantics: a declared `text` payload index's settings, and how a `match` of kind
//! `text`, `text_any` or `phrase` on such a field is decided, as Qdrant's full-text index decides it.
//!
//! The index analyses text with the same pipeline as the BM25 model ([`crate::bm25`]): tokenizer, ASCII
//! folding, lowercasing, stopwords, stemming, token length bounds. Its defaults differ: no language, so no
//! stopwords and no stemming unless declared. Measured against Qdrant's engine (`qdrant-edge-py`):
//! - `text`: every query token is among the tokens of the point's string values (all values together: an
//!   array `["quick lazy", "brown dog"]` matches `quick brown`). `text_any`: some query token is.
//! - `phrase`: the query tokens appear consecutively within one string value, stopwords removed from both
//!   sides first. Only when the index has `phrase_matching`; otherwise a phrase matches nothing. With the
//!   `prefix` tokenizer the last query token matches any word it is a prefix of (`quick bro`).
//! - A query with no tokens left (empty, only stopwords, only too short or too long tokens) matches nothing.
//! - The prefix tokenizer indexes every prefix of each word, so a query token matches words it begins; query
//!   tokens are cut to `max_token_len` characters.
//!
//! Deliberate difference: Qdrant's `multilingual` tokenizer segments CJK, Thai and other scripts with
//! dictionaries. Here it splits words as `word` does and always folds accents (what it does for Latin
//! scripts); a CJK run without spaces stays one token.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::bm25::Bm25;
use crate::config::{Bm25Config, TokenizerType};
use crate::error::InferenceError;

/// Version of the analysis itself: stored postings carry it in their fingerprint, so a build that
/// analyses differently rebuilds them rather than answering from them.
const ANALYSIS_VERSION: &str = "analysis-1";

/// A declared full-text index's settings: the `field_schema` object of type `text`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextIndexParams {
    /// `word` (default), `whitespace`, `prefix`, `multilingual` (see the module note) or `code`.
    pub tokenizer: TokenizerType,
    /// Default true.
    pub lowercase: bool,
    /// Default false.
    pub ascii_folding: bool,
    pub min_token_len: Option<usize>,
    pub max_token_len: Option<usize>,
    /// Explicit stopwords; none by default.
    pub stopwords: Option<crate::config::StopwordsSet>,
    /// Explicit stemmer; none by default.
    pub stemmer: Option<crate::config::Stemmer>,
    /// Whether `phrase` matches can be answered. Default false.
    pub phrase_matching: bool,
}

impl Default for TextIndexParams {
    fn default() -> Self {
        Self {
            tokenizer: TokenizerType::Word,
            lowercase: true,
            ascii_folding: false,
            min_token_len: None,
            max_token_len: None,
            stopwords: None,
            stemmer: None,
            phrase_matching: false,
        }
    }
}

impl TextIndexParams {
    /// Parse a `field_schema` of type `text`: the string `"text"` (all defaults) or an object. A bad value
    /// of a known key gives [`InferenceError::BadOptions`] naming it, e.g. `field_schema.min_token_len: must
    /// be a non-negative integer`; other keys (placement, later versions' fields) are ignored.
    pub fn from_schema(schema: &Value) -> Result<Self, InferenceError> {
        let map = match schema {
            Value::Object(map) => map,
            _ => return Ok(Self::default()),
        };
        let mut options = serde_json::Map::new();
        let mut params = Self::default();
        for (key, value) in map {
            match key.as_str() {
                "phrase_matching" => {
                    params.phrase_matching = match value {
                        Value::Null => false,
                        Value::Bool(b) => *b,
                        _ => return Err(schema_error("options.phrase_matching: must be a boolean")),
                    }
                }
                "tokenizer" | "lowercase" | "ascii_folding" | "min_token_len" | "max_token_len" | "stopwords"
                | "stemmer" => {
                    options.insert(key.clone(), value.clone());
                }
                // Placement (`on_disk`, `memory`, `enable_hnsw`) and fields of later versions: as Qdrant
                // ignores fields it does not know.
                _ => {}
            }
        }
        // `language: none`: the text index has no language defaults, only what is declared.
        options.insert("language".into(), Value::String("none".into()));
        if options.get("tokenizer").and_then(Value::as_str) == Some("multilingual") {
            options.insert("tokenizer".into(), Value::String("word".into()));
            params.tokenizer = TokenizerType::Multilingual;
        }
        let config = Bm25Config::from_options(Some(&Value::Object(options))).map_err(|e| match e {
            InferenceError::BadOptions(m) => schema_error(&m),
            other => other,
        })?;
        if params.tokenizer != TokenizerType::Multilingual {
            params.tokenizer = config.tokenizer;
        }
        params.lowercase = config.lowercase;
        params.ascii_folding = config.ascii_folding;
        params.min_token_len = config.min_token_len;
        params.max_token_len = config.max_token_len;
        params.stopwords = config.stopwords;
        params.stemmer = config.stemmer;
        Ok(params)
    }

    /// The analysis pipeline these settings describe, as a BM25 config (weights unused).
    fn analysis(&self) -> Bm25Config {
        let multilingual = self.tokenizer == TokenizerType::Multilingual;
        Bm25Config {
            tokenizer: if multilingual { TokenizerType::Word } else { self.tokenizer },
            language: None,
            lowercase: self.lowercase,
            ascii_folding: self.ascii_folding || multilingual,
            stopwords: self.stopwords.clone(),
            stemmer: self.stemmer,
            min_token_len: self.min_token_len,
            max_token_len: self.max_token_len,
            ..Bm25Config::default()
        }
    }
}

fn schema_error(message: &str) -> InferenceError {
    InferenceError::BadOptions(message.replacen("options.", "field_schema.", 1))
}

/// Which text match a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextMatchKind {
    /// `{"text": ..}`: every token.
    All,
    /// `{"text_any": ..}`: some token.
    Any,
    /// `{"phrase": ..}`: the tokens consecutively.
    Phrase,
}

/// A query analysed by an index: what [`TextIndex::matches`] compares with a point's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    kind: TextMatchKind,
    /// Distinct tokens for `All`/`Any`; the token sequence for `Phrase`.
    tokens: Vec<String>,
}

impl TextQuery {
    pub fn kind(&self) -> TextMatchKind {
        self.kind
    }

    /// Distinct tokens for `All`/`Any`, the sequence for `Phrase`; none matches nothing.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

/// A full-text index's analyser: decides text matches on the field it is declared on.
#[derive(Debug)]
pub struct TextIndex {
    params: TextIndexParams,
    /// The settings as one string: a stored index built with other settings is not used.
    fingerprint: String,
    model: Arc<Bm25>,
}

impl TextIndex {
    /// Build the analyser (stopword sets and stemmers are shared between indexes with equal settings).
    pub fn new(params: TextIndexParams) -> Result<Self, InferenceError> {
        let model = crate::model_for(params.analysis())?;
        let fingerprint = format!("{ANALYSIS_VERSION} {params:?}");
        Ok(Self { params, fingerprint, model })
    }

    pub fn params(&self) -> &TextIndexParams {
        &self.params
    }

    /// The settings as a string, equal exactly when the settings are.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The distinct tokens a point whose field holds the string `values` is indexed by (what
    /// `text` and `text_any` look for).
    pub fn document_tokens(&self, values: &[&str]) -> HashSet<String> {
        values.iter().flat_map(|v| self.model.document_tokens(v)).collect()
    }

    fn prefix(&self) -> bool {
        self.params.tokenizer == TokenizerType::Prefix
    }

    /// Analyse a query text for a match of `kind`.
    pub fn query(&self, kind: TextMatchKind, text: &str) -> TextQuery {
        // A phrase is looked for among a document's words, stopwords removed on both sides (with
        // the prefix tokenizer too, whose other queries keep stopwords).
        let mut tokens = if kind == TextMatchKind::Phrase && self.prefix() {
            self.model.document_words(text)
        } else {
            self.model.query_tokens(text)
        };
        if kind != TextMatchKind::Phrase {
            let mut seen = HashSet::new();
            tokens.retain(|t| seen.insert(t.clone()));
        }
        TextQuery { kind, tokens }
    }

    /// Whether a point whose field holds the string `values` (array elements flattened) matches `query`.
    pub fn matches(&self, query: &TextQuery, values: &[&str]) -> bool {
        if query.tokens.is_empty() {
            return false;
        }
        match query.kind {
            TextMatchKind::All | TextMatchKind::Any => {
                let doc = self.document_tokens(values);
                if query.kind == TextMatchKind::All {
                    query.tokens.iter().all(|t| doc.contains(t))
                } else {
                    query.tokens.iter().any(|t| doc.contains(t))
                }
            }
            TextMatchKind::Phrase => {
                self.params.phrase_matching && values.iter().any(|v| self.has_phrase(&query.tokens, v))
            }
        }
    }

    /// Whether `value`'s word sequence holds `phrase` consecutively (the last token as a prefix of its word
    /// with the prefix tokenizer).
    fn has_phrase(&self, phrase: &[String], value: &str) -> bool {
        let words = if self.prefix() { self.model.document_words(value) } else { self.model.document_tokens(value) };
        let Some((last, head)) = phrase.split_last() else { return false };
        words.windows(phrase.len()).any(|w| {
            w[..head.len()] == *head
                && if self.prefix() { w[head.len()].starts_with(last.as_str()) } else { w[head.len()] == *last }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn index(schema: Value) -> TextIndex {
        TextIndex::new(TextIndexParams::from_schema(&schema).expect("valid schema")).expect("builds")
    }

    fn matches(ix: &TextIndex, kind: TextMatchKind, q: &str, values: &[&str]) -> bool {
        ix.matches(&ix.query(kind, q), values)
    }

    use TextMatchKind::{All, Any, Phrase};

    #[test]
    fn defaults_lowercase_words_without_stopwords_or_stemming() {
        let ix = index(json!("text"));
        assert!(matches(&ix, All, "Quick FOX", &["The quick brown fox"]));
        assert!(matches(&ix, All, "the", &["The quick brown fox"]));
        assert!(!matches(&ix, All, "foxes", &["The quick brown fox"]));
        assert!(!matches(&ix, All, "qui", &["The quick brown fox"]));
        // Tokens of all values count together for text and text_any.
        assert!(matches(&ix, All, "quick brown", &["quick lazy", "brown dog"]));
        assert!(matches(&ix, Any, "cat dog", &["quick lazy", "brown dog"]));
        // An empty query matches nothing.
        assert!(!matches(&ix, All, "", &["a"]));
        assert!(!matches(&ix, Any, " ,", &["a"]));
        // Phrases need phrase_matching.
        assert!(!matches(&ix, Phrase, "quick brown", &["quick brown"]));
    }

    #[test]
    fn phrases_are_consecutive_within_one_value() {
        let ix = index(json!({"type": "text", "phrase_matching": true}));
        assert!(matches(&ix, Phrase, "quick brown", &["the quick brown fox"]));
        assert!(!matches(&ix, Phrase, "brown quick", &["the quick brown fox"]));
        assert!(!matches(&ix, Phrase, "quick brown", &["a quick", "brown b"]));
        assert!(!matches(&ix, Phrase, "hello hello", &["Hello World hello"]));
        assert!(matches(&ix, Phrase, "quick quick", &["quick quick brown"]));
    }

    #[test]
    fn stopwords_leave_both_sides() {
        let ix = index(json!({"type": "text", "phrase_matching": true, "stopwords": "english"}));
        assert!(matches(&ix, Phrase, "quick brown", &["quick the brown"]));
        assert!(matches(&ix, Phrase, "the brown", &["a brown dog"]));
        assert!(!matches(&ix, All, "the", &["the"]));
        assert!(matches(&ix, All, "the fox", &["foxy fox"]));
        let custom = index(json!({"type": "text", "stopwords": {"custom": ["The"]}, "phrase_matching": true}));
        assert!(matches(&custom, Phrase, "quick brown", &["quick the brown"]));
    }

    #[test]
    fn stemmer_and_folding() {
        let ix = index(json!({"type": "text", "stemmer": {"type": "snowball", "language": "english"}}));
        assert!(matches(&ix, All, "run", &["running runners ran"]));
        assert!(matches(&ix, All, "quickly", &["quick"]));
        let plain = index(json!("text"));
        assert!(!matches(&plain, All, "cafe", &["café"]));
        let folded = index(json!({"type": "text", "ascii_folding": true}));
        assert!(matches(&folded, All, "cafe", &["café"]));
        let multi = index(json!({"type": "text", "tokenizer": "multilingual"}));
        assert!(matches(&multi, All, "unicode", &["Ünïcödé"]));
    }

    #[test]
    fn prefix_tokenizer() {
        let ix = index(json!({"type": "text", "tokenizer": "prefix", "min_token_len": 2, "max_token_len": 4}));
        assert!(matches(&ix, All, "qui", &["quick"]));
        // Query tokens are cut to max_token_len, and too short ones dropped.
        assert!(matches(&ix, All, "quickly", &["quick"]));
        assert!(!matches(&ix, All, "b c", &["a b c"]));
        // Stopwords: kept in other prefix queries, dropped from phrases (as Qdrant's engine does).
        let stop =
            index(json!({"type": "text", "tokenizer": "prefix", "stopwords": "english", "phrase_matching": true}));
        assert!(!matches(&stop, All, "the quick", &["the quick fox"]));
        assert!(matches(&stop, All, "the", &["a theory"]));
        assert!(matches(&stop, Phrase, "the quick", &["the quick fox", "quick fox"]));
        let phrase = index(json!({"type": "text", "tokenizer": "prefix", "phrase_matching": true}));
        assert!(matches(&phrase, Phrase, "quick bro", &["quick brown fox"]));
        assert!(!matches(&phrase, Phrase, "qui brown", &["quick brown fox"]));
        assert!(matches(&phrase, Phrase, "ab ab", &["ab abc abcd"]));
        assert!(!matches(&phrase, Phrase, "ab abcd", &["ab abc abcd"]));
    }

    #[test]
    fn length_bounds_drop_tokens_on_both_sides() {
        let ix = index(json!({"type": "text", "min_token_len": 3, "max_token_len": 4, "phrase_matching": true}));
        assert!(!matches(&ix, All, "quick brown", &["quick brown"]));
        assert!(matches(&ix, Phrase, "quick the brown", &["quick the brown"]));
        // "ab" is too short: the phrase is "abcd" alone.
        assert!(matches(&ix, Phrase, "ab abcd", &["ab abc abcd"]));
    }

    #[test]
    fn bad_schemas_name_the_field() {
        let err = TextIndexParams::from_schema(&json!({"type": "text", "min_token_len": -1})).expect_err("bad");
        assert_eq!(err.to_string(), "field_schema.min_token_len: must be a non-negative integer");
        let err = TextIndexParams::from_schema(&json!({"type": "text", "tokenizer": "chars"})).expect_err("bad");
        assert!(err.to_string().starts_with("field_schema.tokenizer: must be one of"), "{err}");
        let err = TextIndexParams::from_schema(&json!({"type": "text", "phrase_matching": 1})).expect_err("bad");
        assert_eq!(err.to_string(), "field_schema.phrase_matching: must be a boolean");
        let ok = TextIndexParams::from_schema(&json!({"type": "text", "on_disk": true, "lowercase": null, "later": 1}));
        assert_eq!(ok.expect("placement keys are accepted"), TextIndexParams::default());
    }
}
