//! Qdrant's response envelope and the ONE place where typed errors become HTTP statuses.
//!
//! Success: `{"result": ..., "status": "ok", "time": seconds}`.
//! Error:   `{"status": {"error": "message"}, "time": seconds}`.

use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qd_collection::CollectionError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which a refused request may succeed (rate limits): the `Retry-After`
    /// header, and gRPC's `retry-after` metadata.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { retry_after: None, status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    /// A field out of its allowed range, as Qdrant's declarative validation answers it: 422
    /// "Validation error in JSON body: [<field>: <problem>]".
    pub fn validation(field_problem: impl std::fmt::Display) -> Self {
        ApiError {
            retry_after: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("Validation error in JSON body: [{field_problem}]"),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { retry_after: None, status: StatusCode::NOT_FOUND, message: message.into() }
    }
}

impl ApiError {
    /// A validation error of a part of a batch: its field paths start at `part`
    /// (`searches[1].limit`); other errors are prefixed with `part: `.
    pub fn within(self, part: &str) -> Self {
        const HEAD: &str = "Validation error in JSON body: [";
        match self.message.strip_prefix(HEAD) {
            Some(rest) if self.status == StatusCode::UNPROCESSABLE_ENTITY => {
                ApiError { message: format!("{HEAD}{part}.{rest}"), ..self }
            }
            _ => self.prefixed(part),
        }
    }

    /// The same error with `context: ` before its message (e.g. `operations[2]`).
    pub fn prefixed(self, context: &str) -> Self {
        ApiError { message: format!("{context}: {}", self.message), ..self }
    }
}

impl From<CollectionError> for ApiError {
    fn from(e: CollectionError) -> Self {
        let status = match &e {
            CollectionError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CollectionError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CollectionError::NotFound(_) => StatusCode::NOT_FOUND,
            CollectionError::AlreadyExists(_) => StatusCode::CONFLICT,
            CollectionError::Unavailable(_) | CollectionError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            CollectionError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            CollectionError::Storage(_)
            | CollectionError::CommitFailed { .. }
            | CollectionError::ShardStopped { .. }
            | CollectionError::NoSpace { .. }
            | CollectionError::IndexDecode { .. }
            | CollectionError::Corrupt(_)
            | CollectionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        let retry_after = match &e {
            CollectionError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        ApiError { retry_after, status, message: e.to_string() }
    }
}

impl From<qd_core::ValidationError> for ApiError {
    fn from(e: qd_core::ValidationError) -> Self {
        if e.rule {
            ApiError::validation(e.message)
        } else {
            ApiError::bad_request(format!("Bad request: {}", e.message))
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError {
            retry_after: None,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("Service internal error: {e}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "status": { "error": self.message }, "time": 0.0 }))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// Wrap a result in the envelope with the time spent since `started`.
pub fn ok<T: Serialize>(started: Instant, result: T) -> Response {
    axum::Json(json!({
        "result": result,
        "status": "ok",
        "time": started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

pub type ApiResult = Result<Response, ApiError>;

/// JSON body extractor whose errors name the problem and its location, Qdrant-style (400).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(axum::http::header::CONTENT_TYPE).cloned();
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| ApiError {
            retry_after: None,
            status: e.status(),
            message: format!("Payload error: {}", e.body_text()),
        })?;
        if !bytes.iter().all(u8::is_ascii_whitespace) && !is_json(content_type.as_ref()) {
            return Err(ApiError {
                retry_after: None,
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "Content type error: expected `Content-Type: application/json`".to_string(),
            });
        }
        parse_json(&bytes).map(Body)
    }
}

/// Whether a request's content type is JSON (`application/json`, `application/*+json`, with
/// parameters such as `charset`). A JSON body under any other type (a form, `text/plain`: what
/// a web page may send cross-site without asking) is refused.
fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(mime) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parse a JSON body; errors carry the path of the offending field (`points[3].payload`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" as &[u8] } else { bytes };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("Format error in JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("Format error in JSON body: {path}: {inner}"))
        }
    })
}

/// Query-string extractor with Qdrant-shaped 400 errors.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(format!("Query string error: {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_content_types_carry_json_bodies() {
        let v = |s: &'static str| axum::http::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("Application/JSON"))));
        assert!(is_json(Some(&v("application/merge-patch+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(Some(&v("application/x-www-form-urlencoded"))));
        assert!(!is_json(None));
    }
}
