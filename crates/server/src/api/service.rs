//! Service endpoints: version, health, readiness.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::response::ApiError;
use super::State;

/// The Qdrant API version this server implements: what `GET /` and the gRPC health check
/// report as `version`, so that official clients (which compare it with their own version)
/// accept the server. Raised when the server catches up with a newer Qdrant release (README,
/// "Versioning").
pub const QDRANT_API_VERSION: &str = "1.19.0";

/// This build's own version (the crate's), reported beside the API version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `title` of `GET /` and of the gRPC health check.
pub const TITLE: &str = "qdrant - vector search engine (independent Rust implementation)";

/// The git commit this binary was built from (set by build.rs), "unknown" if it had none.
pub const BUILD_COMMIT: &str = match option_env!("QD_BUILD_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// `GET /`: Qdrant's `{title, version}`; `build` is extra (clients ignore unknown fields).
pub async fn root() -> Response {
    axum::Json(json!({
        "title": TITLE,
        "version": QDRANT_API_VERSION,
        "build": { "version": VERSION, "commit": BUILD_COMMIT },
    }))
    .into_response()
}

pub async fn healthz() -> Response {
    (StatusCode::OK, "healthz check passed").into_response()
}

/// Alive as soon as the port is bound, before collections are loaded.
pub async fn livez() -> Response {
    (StatusCode::OK, "livez check passed").into_response()
}

/// Ready once every collection has been loaded (or marked broken).
pub async fn readyz(state: State) -> Response {
    if state.registry.is_ready() {
        (StatusCode::OK, "all shards are ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "some shards are not ready").into_response()
    }
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("Not found: no endpoint {}", uri.path()))
}
