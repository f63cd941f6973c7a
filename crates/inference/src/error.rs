//! The one error type of the crate.

/// Why a text could not be turned into a vector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
    /// The request names a model this server cannot run: only Qdrant's built-in BM25 runs in-process.
    #[error(
        "no inference provider is configured for model \"{model}\": this server only embeds with the built-in \
         \"qdrant/bm25\" model"
    )]
    NoProvider {
        /// The model name as the request spelled it.
        model: String,
    },
    /// `options` of the document are malformed: an unknown key, a value of the wrong type or out of range.
    /// The message names the field, e.g. `options.k: must be a non-negative number`.
    #[error("{0}")]
    BadOptions(String),
    /// `options` are valid for Qdrant but ask for something this implementation does not do (the
    /// `multilingual` tokenizer, which needs dictionary-based word segmentation).
    #[error("{0}")]
    Unsupported(String),
}
