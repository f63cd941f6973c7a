//! Errors shared across layers. Each layer has its own typed error; this one is for input that
//! fails validation before anything is touched (it always becomes an HTTP 400).

use thiserror::Error;

/// A request or config value that is not acceptable; the message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ValidationError {
    pub message: String,
    /// A field outside the range its schema allows (`limit: 0`, `size: 0`): what Qdrant's
    /// declarative validation catches, answered 422 "Validation error in JSON body: [...]".
    /// Other refusals are 400 "Bad request".
    pub rule: bool,
}

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        ValidationError { message: message.into(), rule: false }
    }

    /// A field out of its allowed range: `message` is "<field path>: <what is wrong>", e.g.
    /// `limit: value 0 invalid, must be 1 or larger`.
    pub fn rule(message: impl Into<String>) -> Self {
        ValidationError { message: message.into(), rule: true }
    }

    /// Qdrant's wording of a value below its minimum.
    pub fn at_least(field: &str, value: impl std::fmt::Display, min: impl std::fmt::Display) -> Self {
        Self::rule(format!("{field}: value {value} invalid, must be {min} or larger"))
    }
}
