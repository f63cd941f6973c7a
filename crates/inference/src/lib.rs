//! Server-side inference without IO: turns the `text` of a Document (`{"text": ..., "model": "qdrant/bm25",
//! "options": {...}}`) into the sparse vector Qdrant's built-in BM25 model builds, for upserts (document
//! side) and queries (query side).
//!
//! The same analysis decides text matches on fields with a full-text index ([`text_index`]).
//!
//! This crate owns tokenisation, ASCII folding, stopword lists, stemming, token hashing and BM25 weights, all
//! measured against Qdrant's own engine (`qdrant-edge-py`). It must never do IO, load models from anywhere or
//! depend on other workspace crates: the server calls [`embed`] and stores what comes back.
//!
//! The algorithm, step by step, is documented on [`bm25`]; `tests/reference.rs` checks it against vectors
//! Qdrant's engine computed (`tests/make_fixtures.py`).
//!
//! Where this differs from Qdrant, on purpose:
//! - `"tokenizer": "multilingual"` is rejected ([`InferenceError::Unsupported`]): Qdrant segments CJK, Thai
//!   and other scripts with dictionaries (and treats Indic scripts differently from `word`), which this
//!   crate does not ship.
//! - `"language": "none"` is accepted (Qdrant's documentation offers it: no default stopwords, no default
//!   stemmer); the embedded engine `qdrant-edge-py` 0.9 rejects it.
//! - Two distinct tokens of one document whose hashes collide share an index; Qdrant keeps one of their
//!   weights in hash-map order (not reproducible), this crate the larger.
//! - As Qdrant's engine does (and unlike what its documentation says), an explicit `stopwords` set replaces
//!   the stopwords of `language` instead of being merged with them.

pub mod bm25;
pub mod config;
pub mod error;
pub mod fold;
pub mod hash;
pub mod language;
pub mod stopwords;
pub mod text_index;
pub mod tokenizer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use bm25::{Bm25, Side};
pub use config::{Bm25Config, Stemmer, StopwordsSet, TokenizerType};
pub use error::InferenceError;
pub use language::{Language, SnowballLanguage};
pub use text_index::{TextIndex, TextIndexParams, TextMatchKind, TextQuery};

/// The model name of Qdrant's built-in BM25, compared case-insensitively ("Qdrant/bm25" works too).
pub const BM25_MODEL: &str = "qdrant/bm25";

/// Built models per distinct config: building resolves a stopword set (up to a few thousand strings), so a
/// server embedding many texts with the same options builds it once. Bounded: cleared when full.
const CACHE_CAPACITY: usize = 64;

static MODELS: Mutex<Option<HashMap<Bm25Config, Arc<Bm25>>>> = Mutex::new(None);

/// Whether `model` names Qdrant's built-in BM25.
pub fn is_bm25_model(model: &str) -> bool {
    model.eq_ignore_ascii_case(BM25_MODEL)
}

/// The built model for `config`, from the cache or newly built.
pub fn model_for(config: Bm25Config) -> Result<Arc<Bm25>, InferenceError> {
    // A poisoned lock only means another thread panicked while holding the map; the map is still usable.
    let mut guard = MODELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let models = guard.get_or_insert_with(HashMap::new);
    if let Some(model) = models.get(&config) {
        return Ok(Arc::clone(model));
    }
    let model = Arc::new(Bm25::new(config.clone())?);
    if models.len() >= CACHE_CAPACITY {
        models.clear();
    }
    models.insert(config, Arc::clone(&model));
    Ok(model)
}

/// The one entry point the server calls: check the model name, parse `options`, embed `text` for `side`.
/// Returns `(indices, values)` with indices strictly ascending.
pub fn embed(
    model: &str,
    text: &str,
    options: Option<&serde_json::Value>,
    side: Side,
) -> Result<(Vec<u32>, Vec<f32>), InferenceError> {
    if !is_bm25_model(model) {
        return Err(InferenceError::NoProvider { model: model.to_string() });
    }
    let config = Bm25Config::from_options(options)?;
    Ok(model_for(config)?.embed(text, side))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn model_name_is_case_insensitive() {
        assert!(embed("qdrant/bm25", "hello", None, Side::Query).is_ok());
        assert!(embed("Qdrant/BM25", "hello", None, Side::Query).is_ok());
    }

    #[test]
    fn other_models_have_no_provider() {
        let err = embed("sentence-transformers/all-minilm-l6-v2", "hello", None, Side::Document)
            .expect_err("only bm25 is served");
        assert_eq!(err, InferenceError::NoProvider { model: "sentence-transformers/all-minilm-l6-v2".into() });
        assert_eq!(
            err.to_string(),
            "no inference provider is configured for model \"sentence-transformers/all-minilm-l6-v2\": this \
             server only embeds with the built-in \"qdrant/bm25\" model"
        );
    }

    #[test]
    fn bad_options_surface() {
        let err = embed("qdrant/bm25", "x", Some(&json!({"k": -2})), Side::Document).expect_err("bad k");
        assert_eq!(err, InferenceError::BadOptions("options.k: must be a non-negative number".into()));
    }

    #[test]
    fn cache_returns_the_same_model_for_the_same_config() {
        let a = model_for(Bm25Config::default()).expect("valid");
        let b = model_for(Bm25Config::default()).expect("valid");
        assert!(Arc::ptr_eq(&a, &b) || a.config() == b.config());
        assert_eq!(
            embed("qdrant/bm25", "Hello world", None, Side::Document).expect("embeds"),
            a.embed_document("Hello world")
        );
    }
}
