//! API-key authentication, as Qdrant does it: `api-key: KEY` or `Authorization: Bearer KEY`.
//! The read-only key allows reads only. Health endpoints stay open for probes. The decision
//! ([`authorize`]) is shared with the gRPC server.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::ApiError;
use super::AppState;
use crate::settings::ServiceSettings;

const OPEN_PATHS: [&str; 4] = ["/", "/healthz", "/livez", "/readyz"];

/// What follows `/collections/{name}/` in POST endpoints that only read.
const READ_POSTS: [&str; 17] = [
    "points",
    "points/search",
    "points/search/batch",
    "points/search/groups",
    "points/search/matrix/pairs",
    "points/search/matrix/offsets",
    "points/scroll",
    "points/count",
    "points/query",
    "points/query/batch",
    "points/query/groups",
    "points/recommend",
    "points/recommend/batch",
    "points/recommend/groups",
    "points/discover",
    "points/discover/batch",
    "facet",
];

/// Whether a REST request only reads: GET/HEAD, or a POST to one of [`READ_POSTS`] of a
/// collection (matched exactly, so a collection's name cannot make a write look like a read).
fn is_read_only(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    if method != Method::POST {
        return false;
    }
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("collections"), Some(name), Some(rest)) if !name.is_empty() => READ_POSTS.contains(&rest),
        _ => false,
    }
}

/// The key a request presents: `api-key`, else `Authorization: Bearer`.
pub fn presented_key(h: &HeaderMap) -> Option<&str> {
    if let Some(k) = h.get("api-key").and_then(|v| v.to_str().ok()) {
        return Some(k);
    }
    h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares in time that depends on the lengths only, not on where the keys differ.
fn same_key(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Whether `key` may make a request that reads only (`read_only`) or also writes.
pub fn authorize(service: &ServiceSettings, key: Option<&str>, read_only: bool) -> Result<(), ApiError> {
    if service.api_key.is_none() && service.read_only_api_key.is_none() {
        return Ok(());
    }
    let matches = |expected: Option<&String>| key.zip(expected).is_some_and(|(k, e)| same_key(k, e));
    let full = matches(service.api_key.as_ref());
    let read = matches(service.read_only_api_key.as_ref());
    if full || (read && read_only) {
        return Ok(());
    }
    let (status, message) = match key {
        None => (StatusCode::UNAUTHORIZED, "Must provide an API key or an Authorization bearer token"),
        Some(_) if read => (StatusCode::FORBIDDEN, "Forbidden: the read-only API key cannot change data"),
        Some(_) => (StatusCode::UNAUTHORIZED, "Invalid API key or JWT"),
    };
    Err(ApiError { status, message: message.to_string() })
}

pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The dashboard's static files: a browser cannot send a header when opening a page; the
    // page itself sends the key with every API call.
    let path = req.uri().path();
    if OPEN_PATHS.contains(&path) || path == "/dashboard" || path.starts_with("/dashboard/") {
        return next.run(req).await;
    }
    let read_only = is_read_only(req.method(), path);
    match authorize(&state.settings.service, presented_key(req.headers()), read_only) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_read_endpoints_are_reads() {
        assert!(is_read_only(&Method::POST, "/collections/c/points/search"));
        assert!(is_read_only(&Method::POST, "/collections/c/points"));
        assert!(is_read_only(&Method::POST, "/collections/facets/facet"));
        // A collection named like a read endpoint does not turn its writes into reads.
        assert!(!is_read_only(&Method::POST, "/collections/facets/points/delete"));
        assert!(!is_read_only(&Method::POST, "/collections/facet/snapshots/upload"));
        assert!(!is_read_only(&Method::POST, "/collections/points/search/points/delete"));
        assert!(!is_read_only(&Method::PUT, "/collections/c/points"));
        assert!(is_read_only(&Method::GET, "/collections"));
    }

    #[test]
    fn keys_compare_exactly() {
        assert!(same_key("secret", "secret"));
        assert!(!same_key("secret", "secreT"));
        assert!(!same_key("secret", "secret2"));
        assert!(!same_key("", "x"));
    }

    fn service(full: Option<&str>, read: Option<&str>) -> ServiceSettings {
        ServiceSettings {
            api_key: full.map(String::from),
            read_only_api_key: read.map(String::from),
            ..ServiceSettings::default()
        }
    }

    #[test]
    fn read_only_key_reads_but_cannot_write() {
        let s = service(Some("w"), Some("r"));
        assert!(authorize(&s, Some("r"), true).is_ok());
        assert_eq!(authorize(&s, Some("r"), false).err().map(|e| e.status), Some(StatusCode::FORBIDDEN));
        assert!(authorize(&s, Some("w"), false).is_ok());
        assert_eq!(authorize(&s, None, true).err().map(|e| e.status), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(authorize(&s, Some("x"), true).err().map(|e| e.status), Some(StatusCode::UNAUTHORIZED));
        assert!(authorize(&service(None, None), None, false).is_ok());
    }
}
