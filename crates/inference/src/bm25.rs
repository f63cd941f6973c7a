//! The BM25 model: text -> tokens -> sparse vector, for documents (term-frequency weights) and queries
//! (weight 1 per distinct token).
//!
//! Every raw token from the tokenizer goes through, in order: ASCII folding (if on), lowercasing (if on,
//! `str::to_lowercase` of the token), the stopword check (on the folded, lowercased, unstemmed token),
//! stemming, then the length check in characters (`min_token_len` <= len <= `max_token_len`, on the stemmed
//! token). The index of a token is `|murmur3_32(token) as i32|`.
//!
//! Document weight of a token with frequency `tf` in a document of `dl` tokens (counted after filtering):
//! `tf * (k + 1) / (tf + k * (1 - b + b * dl / avg_len))`, computed in f64 and stored as f32.
//!
//! The prefix tokenizer differs: a document emits every prefix of each stemmed token, of lengths
//! `min_token_len ..= min(len, max_token_len)` (`min_token_len` 1 when unset; 0 adds the empty prefix); a query skips the stopword check and keeps each
//! stemmed token cut to `max_token_len` characters, dropping it only when shorter than `min_token_len`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use qdrant_rust_stemmers::Stemmer;

use crate::config::{Bm25Config, Stemmer as StemmerChoice, StopwordsSet, TokenizerType};
use crate::error::InferenceError;
use crate::fold::fold;
use crate::hash::token_index;
use crate::stopwords;
use crate::tokenizer;

/// Which side of the search a text is embedded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// An upserted document: BM25 term-frequency weights.
    Document,
    /// A query: weight 1 for each distinct token.
    Query,
}

/// A BM25 model built once from a config, with its stemmer and stopword set resolved.
pub struct Bm25 {
    config: Bm25Config,
    stemmer: Option<Stemmer>,
    stopwords: HashSet<String>,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("config", &self.config)
            .field("stemmer", &self.stemmer.is_some())
            .field("stopwords", &self.stopwords.len())
            .finish()
    }
}

impl Bm25 {
    /// Build the model; fails on a config [`Bm25Config::validate`] rejects.
    pub fn new(config: Bm25Config) -> Result<Self, InferenceError> {
        config.validate()?;
        let stemmer = match config.stemmer {
            Some(StemmerChoice::Snowball(language)) => Some(language),
            Some(StemmerChoice::Disabled) => None,
            None => config.language.and_then(|l| l.default_stemmer()),
        }
        .map(|language| Stemmer::create(language.algorithm()));
        let default_set;
        let set = match (&config.stopwords, config.language) {
            (Some(set), _) => set,
            (None, Some(language)) => {
                default_set = StopwordsSet { languages: [language].into(), custom: Default::default() };
                &default_set
            }
            (None, None) => {
                default_set = StopwordsSet::default();
                &default_set
            }
        };
        let stopwords = stopwords::resolve(set, config.lowercase);
        Ok(Self { config, stemmer, stopwords })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Bm25Config {
        &self.config
    }

    /// Sparse vector of a document: indices strictly ascending, BM25 term-frequency weights.
    pub fn embed_document(&self, text: &str) -> (Vec<u32>, Vec<f32>) {
        let tokens = self.document_tokens(text);
        let doc_len = tokens.len() as f64;
        let mut frequencies: HashMap<String, u32> = HashMap::new();
        for token in tokens {
            *frequencies.entry(token).or_default() += 1;
        }
        // Two distinct tokens may share an index (a hash collision). Qdrant keeps one of their weights,
        // whichever its hash map yields last (so not reproducibly); we keep the larger.
        let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
        for (token, tf) in frequencies {
            let weight = self.term_weight(f64::from(tf), doc_len);
            let slot = weights.entry(token_index(&token)).or_insert(weight);
            *slot = slot.max(weight);
        }
        weights.into_iter().unzip()
    }

    /// Sparse vector of a query: indices strictly ascending, weight 1 each.
    pub fn embed_query(&self, text: &str) -> (Vec<u32>, Vec<f32>) {
        let mut indices: Vec<u32> = self.query_tokens(text).iter().map(|t| token_index(t)).collect();
        indices.sort_unstable();
        indices.dedup();
        let values = vec![1.0; indices.len()];
        (indices, values)
    }

    /// Embed for either side.
    pub fn embed(&self, text: &str, side: Side) -> (Vec<u32>, Vec<f32>) {
        match side {
            Side::Document => self.embed_document(text),
            Side::Query => self.embed_query(text),
        }
    }

    /// BM25 weight of a term with frequency `tf` in a document of `doc_len` tokens.
    pub fn term_weight(&self, tf: f64, doc_len: f64) -> f32 {
        let Bm25Config { k, b, avg_len, .. } = self.config;
        (tf * (k + 1.0) / (tf + k * (1.0 - b + b * doc_len / avg_len))) as f32
    }

    /// The tokens a document is counted by, repeats included, in text order.
    pub fn document_tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self.config.tokenizer {
            TokenizerType::Prefix => {
                // Prefix lengths run from `min_token_len` (1 when unset; 0 gives the empty prefix too) up to
                // the token's length capped by `max_token_len`.
                let min = self.config.min_token_len.unwrap_or(1);
                let max = self.config.max_token_len.unwrap_or(usize::MAX);
                for raw in tokenizer::words(text) {
                    let Some(token) = self.normalise(raw, true) else { continue };
                    let ends = std::iter::once(0).chain(token.char_indices().map(|(i, c)| i + c.len_utf8()));
                    let ends: Vec<usize> = ends.take(max.saturating_add(1)).skip(min).collect();
                    out.extend(ends.into_iter().map(|end| token[..end].to_string()));
                }
            }
            _ => self.for_each_raw_token(text, |raw| {
                if let Some(token) = self.normalise(raw, true).filter(|t| self.length_ok(t)) {
                    out.push(token);
                }
            }),
        }
        out
    }

    /// The tokens of a query, repeats included, in text order.
    pub fn query_tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self.config.tokenizer {
            TokenizerType::Prefix => {
                let min = self.config.min_token_len.unwrap_or(0);
                let max = self.config.max_token_len.unwrap_or(usize::MAX);
                for raw in tokenizer::words(text) {
                    let Some(token) = self.normalise(raw, false) else { continue };
                    if token.chars().count() < min {
                        continue;
                    }
                    // `max_token_len: 0` cuts every token to "" (index 0), which Qdrant keeps.
                    let cut = token.char_indices().nth(max).map_or(token.len(), |(i, _)| i);
                    out.push(token[..cut].to_string());
                }
            }
            _ => return self.document_tokens(text),
        }
        out
    }

    /// A document's words in text order, each processed as a document token and, with the prefix tokenizer,
    /// cut to `max_token_len` characters and dropped when shorter than `min_token_len` (its prefixes are then
    /// not indexed): what a phrase is looked for in. Other tokenizers give [`Self::document_tokens`].
    pub fn document_words(&self, text: &str) -> Vec<String> {
        if self.config.tokenizer != TokenizerType::Prefix {
            return self.document_tokens(text);
        }
        let min = self.config.min_token_len.unwrap_or(1);
        let max = self.config.max_token_len.unwrap_or(usize::MAX);
        tokenizer::words(text)
            .filter_map(|raw| self.normalise(raw, true))
            .filter(|token| token.chars().count() >= min)
            .map(|token| match token.char_indices().nth(max) {
                Some((cut, _)) => token[..cut].to_string(),
                None => token,
            })
            .collect()
    }

    fn for_each_raw_token(&self, text: &str, mut f: impl FnMut(&str)) {
        match self.config.tokenizer {
            TokenizerType::Whitespace => tokenizer::whitespace(text).for_each(f),
            TokenizerType::Code => tokenizer::code(text, self.config.lowercase).iter().for_each(|t| f(t)),
            TokenizerType::Word | TokenizerType::Prefix | TokenizerType::Multilingual => {
                tokenizer::words(text).for_each(f)
            }
        }
    }

    /// Fold, lowercase, drop stopwords (when `check_stopwords`), stem. `None` when the token is dropped.
    fn normalise(&self, raw: &str, check_stopwords: bool) -> Option<String> {
        let mut token: Cow<'_, str> = Cow::Borrowed(raw);
        if self.config.ascii_folding {
            if let Cow::Owned(folded) = fold(&token) {
                token = Cow::Owned(folded);
            }
        }
        if self.config.lowercase {
            token = Cow::Owned(token.to_lowercase());
        }
        if check_stopwords && self.stopwords.contains(token.as_ref()) {
            return None;
        }
        if token.is_empty() {
            return None;
        }
        Some(match &self.stemmer {
            Some(stemmer) => stemmer.stem(&token).into_owned(),
            None => token.into_owned(),
        })
    }

    fn length_ok(&self, token: &str) -> bool {
        let len = token.chars().count();
        self.config.min_token_len.is_none_or(|min| len >= min) && self.config.max_token_len.is_none_or(|max| len <= max)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hash::token_index as idx;

    fn model(options: serde_json::Value) -> Bm25 {
        Bm25::new(Bm25Config::from_options(Some(&options)).expect("valid options")).expect("valid config")
    }

    fn sorted(tokens: &[&str]) -> Vec<u32> {
        let mut v: Vec<u32> = tokens.iter().map(|t| idx(t)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn weight_formula() {
        let m = model(json!({}));
        // One token in a one-token document: 2.2 / (1 + 1.2 * (0.25 + 0.75 / 256)).
        assert_eq!(m.term_weight(1.0, 1.0), 1.687_743_4_f32);
        assert_eq!(m.embed_document("hello"), (vec![idx("hello")], vec![1.687_743_4]));
        // b = 0: no length normalisation, tf 1 gives exactly 1.
        assert_eq!(model(json!({"b": 0})).term_weight(1.0, 500.0), 1.0);
        // k = 0: every weight is 1.
        assert_eq!(model(json!({"k": 0})).term_weight(3.0, 7.0), 1.0);
    }

    #[test]
    fn document_length_counts_tokens_after_filtering() {
        let m = model(json!({}));
        // "the" and "a" are stopwords: the document is 2 tokens long ("run" twice -> tf 2).
        let (indices, values) = m.embed_document("the running a runs");
        assert_eq!(indices, vec![idx("run")]);
        assert_eq!(values, vec![m.term_weight(2.0, 2.0)]);
    }

    #[test]
    fn query_is_one_per_distinct_token() {
        let m = model(json!({}));
        let (indices, values) = m.embed_query("Running runs the cat CAT");
        assert_eq!(indices, sorted(&["run", "cat"]));
        assert_eq!(values, vec![1.0, 1.0]);
    }

    #[test]
    fn empty_text_gives_empty_vectors() {
        let m = model(json!({}));
        assert_eq!(m.embed_document(""), (vec![], vec![]));
        assert_eq!(m.embed_query("  the, of!"), (vec![], vec![]));
    }

    #[test]
    fn stopwords_are_checked_before_stemming() {
        let m = model(json!({}));
        // "wills" is no stopword; its stem "will" is one, and stays. "during" is one (its stem "dure" is not).
        assert_eq!(m.embed_query("wills during").0, sorted(&["will"]));
        let m = model(json!({"stopwords": {"custom": ["runs"]}}));
        assert_eq!(m.embed_query("runs running").0, sorted(&["run"]));
    }

    #[test]
    fn folding_comes_before_lowercasing_and_stopwords() {
        let m = model(json!({"ascii_folding": true}));
        assert_eq!(m.embed_query("Thé café").0, sorted(&["cafe"]));
        // French lists are not folded: "été" folded to "ete" is no longer a stopword.
        let m = model(json!({"language": "french", "ascii_folding": true}));
        assert_eq!(m.embed_query("été").0, sorted(&["ete"]));
    }

    #[test]
    fn length_limits_apply_to_stemmed_tokens_in_chars() {
        let m = model(json!({"min_token_len": 5}));
        assert_eq!(m.embed_query("running walking").0, Vec::<u32>::new());
        let m = model(json!({"max_token_len": 4}));
        assert_eq!(m.embed_query("cafés runs").0, sorted(&["café", "run"]));
        let m = model(json!({"max_token_len": 0}));
        assert_eq!(m.embed_query("a b").0, Vec::<u32>::new());
    }

    #[test]
    fn prefix_tokenizer() {
        let m =
            model(json!({"tokenizer": "prefix", "min_token_len": 2, "max_token_len": 4, "stemmer": {"type": "none"}}));
        assert_eq!(m.document_tokens("hello hi a"), ["he", "hel", "hell", "hi"]);
        assert_eq!(m.query_tokens("hello hi a"), ["hell", "hi"]);
        // Queries keep stopwords; documents drop them.
        let m = model(json!({"tokenizer": "prefix"}));
        assert_eq!(m.query_tokens("the running"), ["the", "run"]);
        assert_eq!(m.document_tokens("the running"), ["r", "ru", "run"]);
    }

    #[test]
    fn language_none_and_explicit_choices() {
        let m = model(json!({"language": "none"}));
        assert_eq!(m.embed_query("the cats").0, sorted(&["the", "cats"]));
        let m = model(json!({"language": "french", "stemmer": {"type": "snowball", "language": "english"}}));
        assert_eq!(m.embed_query("the cats les chats").0, sorted(&["the", "cat", "chat"]));
        // An explicit stopword set replaces the language's.
        let m = model(json!({"language": "english", "stopwords": {"custom": ["cat"]}}));
        assert_eq!(m.embed_query("the cat").0, sorted(&["the"]));
    }
}
