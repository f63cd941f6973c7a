//! `Bm25Config`: the typed form of a Document's `options` for `qdrant/bm25`, and its parsing from JSON.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::error::InferenceError;
use crate::language::{Language, SnowballLanguage};

/// Default term-frequency saturation.
pub const DEFAULT_K: f64 = 1.2;
/// Default length normalisation.
pub const DEFAULT_B: f64 = 0.75;
/// Default expected document length, in tokens.
pub const DEFAULT_AVG_LEN: f64 = 256.0;

/// How text is split into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenizerType {
    /// Maximal runs of alphanumeric characters (`char::is_alphanumeric`); everything else separates.
    #[default]
    Word,
    /// Maximal runs of non-whitespace characters (`char::is_whitespace` separates); punctuation stays.
    Whitespace,
    /// Words as for `Word`; a document emits every prefix of each (processed) word, a query the whole word.
    Prefix,
    /// Identifiers (alphanumerics and `_`) split at `_` and at camelCase boundaries; with lowercasing the
    /// joined forms (`fooBar` -> `foobar`) are emitted too.
    Code,
    /// Dictionary-based segmentation of many scripts in Qdrant. Not implemented here: rejected as
    /// [`InferenceError::Unsupported`].
    Multilingual,
}

impl TokenizerType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "word" => Self::Word,
            "whitespace" => Self::Whitespace,
            "prefix" => Self::Prefix,
            "code" => Self::Code,
            "multilingual" => Self::Multilingual,
            _ => return None,
        })
    }

    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Word => "word",
            Self::Whitespace => "whitespace",
            Self::Prefix => "prefix",
            Self::Code => "code",
            Self::Multilingual => "multilingual",
        }
    }
}

/// An explicit stopword set: the union of predefined language lists and custom words. When given, it
/// replaces the stopwords the `language` implies (it is not merged with them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StopwordsSet {
    /// Predefined lists to include.
    pub languages: BTreeSet<Language>,
    /// Custom words (lowercased before matching when `lowercase` is on).
    pub custom: BTreeSet<String>,
}

/// The stemmer choice when given explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stemmer {
    /// `{"type": "snowball", "language": ...}`
    Snowball(SnowballLanguage),
    /// `{"type": "none"}`: no stemming, whatever the language.
    Disabled,
}

/// Configuration of the BM25 model: every option Qdrant's `Bm25Config` accepts.
#[derive(Debug, Clone)]
pub struct Bm25Config {
    /// Term-frequency saturation, `>= 0`. Default 1.2.
    pub k: f64,
    /// Length normalisation, in `[0, 1]`. Default 0.75.
    pub b: f64,
    /// Expected average document length in tokens, `> 0`. Default 256.
    pub avg_len: f64,
    /// Tokenizer. Default `word`.
    pub tokenizer: TokenizerType,
    /// Language for the default stopwords and stemmer; `None` is `"language": "none"` (neither).
    /// Default English.
    pub language: Option<Language>,
    /// Lowercase tokens. Default true.
    pub lowercase: bool,
    /// Fold accented and other non-ASCII characters to ASCII. Default false.
    pub ascii_folding: bool,
    /// Explicit stopwords; `None` uses the language's list.
    pub stopwords: Option<StopwordsSet>,
    /// Explicit stemmer; `None` uses the language's Snowball stemmer, if it has one.
    pub stemmer: Option<Stemmer>,
    /// Drop tokens shorter than this many characters (measured after stemming).
    pub min_token_len: Option<usize>,
    /// Drop tokens longer than this many characters (measured after stemming).
    pub max_token_len: Option<usize>,
}

impl Default for Bm25Config {
    fn default() -> Self {
        Self {
            k: DEFAULT_K,
            b: DEFAULT_B,
            avg_len: DEFAULT_AVG_LEN,
            tokenizer: TokenizerType::Word,
            language: Some(Language::English),
            lowercase: true,
            ascii_folding: false,
            stopwords: None,
            stemmer: None,
            min_token_len: None,
            max_token_len: None,
        }
    }
}

// Equality and hashing by the bits of the floats, so a config can key the model cache.
impl PartialEq for Bm25Config {
    fn eq(&self, other: &Self) -> bool {
        self.k.to_bits() == other.k.to_bits()
            && self.b.to_bits() == other.b.to_bits()
            && self.avg_len.to_bits() == other.avg_len.to_bits()
            && self.tokenizer == other.tokenizer
            && self.language == other.language
            && self.lowercase == other.lowercase
            && self.ascii_folding == other.ascii_folding
            && self.stopwords == other.stopwords
            && self.stemmer == other.stemmer
            && self.min_token_len == other.min_token_len
            && self.max_token_len == other.max_token_len
    }
}

impl Eq for Bm25Config {}

impl Hash for Bm25Config {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.k.to_bits().hash(state);
        self.b.to_bits().hash(state);
        self.avg_len.to_bits().hash(state);
        self.tokenizer.hash(state);
        self.language.hash(state);
        self.lowercase.hash(state);
        self.ascii_folding.hash(state);
        self.stopwords.hash(state);
        self.stemmer.hash(state);
        self.min_token_len.hash(state);
        self.max_token_len.hash(state);
    }
}

fn bad(field: &str, message: &str) -> InferenceError {
    InferenceError::BadOptions(format!("options.{field}: {message}"))
}

impl Bm25Config {
    /// Parse `options` of a Document (`None` or JSON `null` = all defaults). Unknown keys and bad values give
    /// [`InferenceError::BadOptions`] naming the field, e.g. `options.k: must be a non-negative number`.
    /// A `null` value of a key means its default.
    pub fn from_options(options: Option<&Value>) -> Result<Self, InferenceError> {
        let mut config = Self::default();
        let map = match options {
            None | Some(Value::Null) => return Ok(config),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(InferenceError::BadOptions("options: must be an object".to_string())),
        };
        for (key, value) in map {
            if value.is_null() {
                if !KNOWN_KEYS.contains(&key.as_str()) {
                    return Err(unknown_key(key));
                }
                continue;
            }
            match key.as_str() {
                "k" => config.k = number(key, value)?,
                "b" => config.b = number(key, value)?,
                "avg_len" => config.avg_len = number(key, value)?,
                "tokenizer" => {
                    config.tokenizer = value.as_str().and_then(TokenizerType::parse).ok_or_else(|| {
                        bad(key, "must be one of \"word\", \"whitespace\", \"prefix\", \"code\", \"multilingual\"")
                    })?
                }
                "language" => config.language = parse_language_option(value)?,
                "lowercase" => config.lowercase = boolean(key, value)?,
                "ascii_folding" => config.ascii_folding = boolean(key, value)?,
                "stopwords" => config.stopwords = Some(parse_stopwords(value)?),
                "stemmer" => config.stemmer = Some(parse_stemmer(value)?),
                "min_token_len" => config.min_token_len = Some(length(key, value)?),
                "max_token_len" => config.max_token_len = Some(length(key, value)?),
                _ => return Err(unknown_key(key)),
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Check the ranges Qdrant enforces: `k >= 0`, `0 <= b <= 1`, `avg_len > 0`, all finite.
    pub fn validate(&self) -> Result<(), InferenceError> {
        if !(self.k.is_finite() && self.k >= 0.0) {
            return Err(bad("k", "must be a non-negative number"));
        }
        if !(self.b.is_finite() && (0.0..=1.0).contains(&self.b)) {
            return Err(bad("b", "must be a number between 0 and 1"));
        }
        if !(self.avg_len.is_finite() && self.avg_len > 0.0) {
            return Err(bad("avg_len", "must be a positive number"));
        }
        if self.tokenizer == TokenizerType::Multilingual {
            return Err(InferenceError::Unsupported(
                "options.tokenizer: \"multilingual\" is not supported by this server (it needs dictionary-based \
                 word segmentation); use \"word\", \"whitespace\", \"prefix\" or \"code\""
                    .to_string(),
            ));
        }
        Ok(())
    }
}

const KNOWN_KEYS: &[&str] = &[
    "k",
    "b",
    "avg_len",
    "tokenizer",
    "language",
    "lowercase",
    "ascii_folding",
    "stopwords",
    "stemmer",
    "min_token_len",
    "max_token_len",
];

fn unknown_key(key: &str) -> InferenceError {
    bad(key, &format!("unknown option; expected one of: {}", KNOWN_KEYS.join(", ")))
}

fn number(key: &str, value: &Value) -> Result<f64, InferenceError> {
    let message = match key {
        "k" => "must be a non-negative number",
        "b" => "must be a number between 0 and 1",
        _ => "must be a positive number",
    };
    value.as_f64().ok_or_else(|| bad(key, message))
}

fn boolean(key: &str, value: &Value) -> Result<bool, InferenceError> {
    value.as_bool().ok_or_else(|| bad(key, "must be a boolean"))
}

fn length(key: &str, value: &Value) -> Result<usize, InferenceError> {
    value.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| bad(key, "must be a non-negative integer"))
}

fn language_error(field: &str, value: &Value) -> InferenceError {
    bad(field, &format!("unsupported language {value}"))
}

/// `"language"`: a language name or alias, or `"none"` for no language-specific processing.
fn parse_language_option(value: &Value) -> Result<Option<Language>, InferenceError> {
    match value.as_str() {
        Some("none") => Ok(None),
        Some(name) => Language::parse(name).map(Some).ok_or_else(|| language_error("language", value)),
        None => Err(bad("language", "must be a string")),
    }
}

/// `"stopwords"`: a language name, or `{"languages": [...], "custom": [...]}`.
fn parse_stopwords(value: &Value) -> Result<StopwordsSet, InferenceError> {
    match value {
        Value::String(name) => Ok(StopwordsSet {
            languages: BTreeSet::from([Language::parse(name).ok_or_else(|| language_error("stopwords", value))?]),
            custom: BTreeSet::new(),
        }),
        Value::Object(map) => {
            let mut set = StopwordsSet::default();
            for (key, item) in map {
                match key.as_str() {
                    "languages" => {
                        for lang in array(&format!("stopwords.{key}"), item)? {
                            let name = lang.as_str().ok_or_else(|| bad("stopwords.languages", "must be strings"))?;
                            set.languages.insert(
                                Language::parse(name).ok_or_else(|| language_error("stopwords.languages", lang))?,
                            );
                        }
                    }
                    "custom" => {
                        for word in array(&format!("stopwords.{key}"), item)? {
                            let word = word.as_str().ok_or_else(|| bad("stopwords.custom", "must be strings"))?;
                            set.custom.insert(word.to_string());
                        }
                    }
                    _ => return Err(bad(&format!("stopwords.{key}"), "unknown field; expected languages, custom")),
                }
            }
            Ok(set)
        }
        _ => Err(bad("stopwords", "must be a language name or an object with languages and/or custom")),
    }
}

fn array<'a>(field: &str, value: &'a Value) -> Result<&'a [Value], InferenceError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(bad(field, "must be an array")),
    }
}

/// `"stemmer"`: `{"type": "snowball", "language": "english"}` or `{"type": "none"}`.
fn parse_stemmer(value: &Value) -> Result<Stemmer, InferenceError> {
    let map = value.as_object().ok_or_else(|| bad("stemmer", "must be an object with a type"))?;
    if let Some(key) = map.keys().find(|key| !matches!(key.as_str(), "type" | "language")) {
        return Err(bad(&format!("stemmer.{key}"), "unknown field; expected type, language"));
    }
    match map.get("type").and_then(Value::as_str) {
        Some("snowball") => {
            let language = map.get("language").ok_or_else(|| bad("stemmer.language", "is required"))?;
            let name = language.as_str().ok_or_else(|| bad("stemmer.language", "must be a string"))?;
            SnowballLanguage::parse(name)
                .map(Stemmer::Snowball)
                .ok_or_else(|| bad("stemmer.language", &format!("unsupported Snowball language {language}")))
        }
        Some("none") if !map.contains_key("language") => Ok(Stemmer::Disabled),
        Some("none") => Err(bad("stemmer.language", "not allowed with type \"none\"")),
        _ => Err(bad("stemmer.type", "must be \"snowball\" or \"none\"")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(options: Value) -> Result<Bm25Config, InferenceError> {
        Bm25Config::from_options(Some(&options))
    }

    fn message(options: Value) -> String {
        match parse(options) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn none_and_empty_are_defaults() {
        assert_eq!(Bm25Config::from_options(None), Ok(Bm25Config::default()));
        assert_eq!(Bm25Config::from_options(Some(&Value::Null)), Ok(Bm25Config::default()));
        assert_eq!(parse(json!({})), Ok(Bm25Config::default()));
        assert_eq!(parse(json!({"k": null, "language": null})), Ok(Bm25Config::default()));
    }

    #[test]
    fn every_field_parses() {
        let config = parse(json!({
            "k": 1.5, "b": 0.5, "avg_len": 10, "tokenizer": "prefix", "language": "fr",
            "lowercase": false, "ascii_folding": true,
            "stopwords": {"languages": ["english", "de"], "custom": ["Foo"]},
            "stemmer": {"type": "snowball", "language": "german"},
            "min_token_len": 2, "max_token_len": 20
        }))
        .expect("valid options");
        assert_eq!(config.k, 1.5);
        assert_eq!(config.b, 0.5);
        assert_eq!(config.avg_len, 10.0);
        assert_eq!(config.tokenizer, TokenizerType::Prefix);
        assert_eq!(config.language, Some(Language::French));
        assert!(!config.lowercase);
        assert!(config.ascii_folding);
        assert_eq!(
            config.stopwords,
            Some(StopwordsSet {
                languages: BTreeSet::from([Language::English, Language::German]),
                custom: BTreeSet::from(["Foo".to_string()]),
            })
        );
        assert_eq!(config.stemmer, Some(Stemmer::Snowball(SnowballLanguage::German)));
        assert_eq!(config.min_token_len, Some(2));
        assert_eq!(config.max_token_len, Some(20));
    }

    #[test]
    fn language_none_and_disabled_stemmer() {
        let config = parse(json!({"language": "none", "stemmer": {"type": "none"}, "stopwords": "english"}))
            .expect("valid options");
        assert_eq!(config.language, None);
        assert_eq!(config.stemmer, Some(Stemmer::Disabled));
        assert_eq!(config.stopwords.map(|s| s.languages), Some(BTreeSet::from([Language::English])));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(message(json!({"k": -1})), "options.k: must be a non-negative number");
        assert_eq!(message(json!({"k": "1"})), "options.k: must be a non-negative number");
        assert_eq!(message(json!({"b": 1.5})), "options.b: must be a number between 0 and 1");
        assert_eq!(message(json!({"avg_len": 0})), "options.avg_len: must be a positive number");
        assert_eq!(message(json!({"lowercase": "yes"})), "options.lowercase: must be a boolean");
        assert_eq!(message(json!({"min_token_len": -1})), "options.min_token_len: must be a non-negative integer");
        assert_eq!(message(json!({"max_token_len": 2.5})), "options.max_token_len: must be a non-negative integer");
        assert_eq!(message(json!({"language": "French"})), "options.language: unsupported language \"French\"");
        assert_eq!(message(json!({"stopwords": "klingon"})), "options.stopwords: unsupported language \"klingon\"");
        assert_eq!(
            message(json!({"stopwords": {"languages": ["xx"]}})),
            "options.stopwords.languages: unsupported language \"xx\""
        );
        assert_eq!(
            message(json!({"stopwords": {"words": []}})),
            "options.stopwords.words: unknown field; expected languages, custom"
        );
        assert_eq!(
            message(json!({"stemmer": {"type": "porter"}})),
            "options.stemmer.type: must be \"snowball\" or \"none\""
        );
        assert_eq!(
            message(json!({"stemmer": {"type": "snowball", "language": "klingon"}})),
            "options.stemmer.language: unsupported Snowball language \"klingon\""
        );
        assert_eq!(message(json!({"stemmer": {"type": "snowball"}})), "options.stemmer.language: is required");
        assert_eq!(
            message(json!({"tokenizer": "bpe"})),
            "options.tokenizer: must be one of \"word\", \"whitespace\", \"prefix\", \"code\", \"multilingual\""
        );
        assert!(message(json!({"kk": 1})).starts_with("options.kk: unknown option; expected one of: k, b, avg_len"));
        assert_eq!(message(json!([1])), "options: must be an object");
    }

    #[test]
    fn multilingual_is_unsupported() {
        assert!(matches!(parse(json!({"tokenizer": "multilingual"})), Err(InferenceError::Unsupported(_))));
    }

    #[test]
    fn equal_configs_hash_equal() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |c: &Bm25Config| {
            let mut h = DefaultHasher::new();
            c.hash(&mut h);
            h.finish()
        };
        let a = parse(json!({"k": 1.2, "stopwords": {"custom": ["b", "a"]}})).expect("valid");
        let b = parse(json!({"stopwords": {"custom": ["a", "b", "a"]}})).expect("valid");
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(a, Bm25Config::default());
    }
}
