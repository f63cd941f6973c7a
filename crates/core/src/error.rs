//! Errors shared across layers. Each layer has its own typed error; this one is for input that
//! fails validation before anything is touched (it always becomes an HTTP 400).

use thiserror::Error;

/// A request or config value that is not acceptable; the message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ValidationError {
    pub message: String,
}

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        ValidationError { message: message.into() }
    }
}
