//! API-key authentication, as Qdrant does it: `api-key: KEY` or `Authorization: Bearer KEY`.
//! The read-only key allows reads only; with `jwt_rbac`, a JWT signed with the API key grants
//! what its claims say (api/jwt.rs). Health endpoints stay open for probes. Who the caller is
//! ([`identify`]) is shared with the gRPC server.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::jwt::{self, Access, ValueExists};
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

/// What the presented key grants: the API key manages, the read-only key reads, a valid JWT
/// (with `jwt_rbac`) what its claims say, plus its `value_exists` condition for the caller to
/// check. Without configured keys everything is open.
pub fn identify(service: &ServiceSettings, key: Option<&str>) -> Result<(Access, Option<ValueExists>), ApiError> {
    if service.api_key.is_none() && service.read_only_api_key.is_none() {
        return Ok((Access::Manage, None));
    }
    let unauthorized =
        |m: &str| ApiError { retry_after: None, status: StatusCode::UNAUTHORIZED, message: m.to_string() };
    let Some(key) = key else {
        return Err(unauthorized("Must provide an API key or an Authorization bearer token"));
    };
    let matches = |expected: Option<&String>| expected.is_some_and(|e| same_key(key, e));
    if matches(service.api_key.as_ref()) {
        return Ok((Access::Manage, None));
    }
    if matches(service.read_only_api_key.as_ref()) {
        return Ok((Access::Read, None));
    }
    match service.api_key.as_ref().filter(|_| service.jwt_rbac && jwt::looks_like_jwt(key)) {
        Some(secret) => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            jwt::decode(key, secret.as_bytes(), now)
                .map(|c| (c.access, c.value_exists))
                .map_err(|e| unauthorized(&format!("Invalid JWT: {e}")))
        }
        None => Err(unauthorized("Invalid API key or JWT")),
    }
}

/// Whether a JWT's `value_exists` condition holds: some point of its collection carries every
/// listed payload value.
pub fn value_exists_holds(registry: &qd_collection::Registry, v: &ValueExists) -> Result<(), ApiError> {
    let denied = |why: String| ApiError {
        retry_after: None,
        status: StatusCode::FORBIDDEN,
        message: format!("Forbidden: {why}"),
    };
    let conditions: Vec<serde_json::Value> =
        v.matches.iter().map(|(k, val)| serde_json::json!({"key": k, "match": {"value": val}})).collect();
    let filter = qd_core::filter::Filter::from_json(&serde_json::json!({ "must": conditions }))
        .map_err(|e| denied(format!("JWT claim value_exists: {e}")))?;
    let collection = registry
        .get(&v.collection)
        .map_err(|_| denied(format!("value_exists collection {} does not exist", v.collection)))?;
    match collection.count(Some(&filter), qd_collection::shard_set::ReadScope::default()) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(denied("no point satisfies the token's value_exists claim".into())),
        Err(e) => Err(denied(format!("value_exists check failed: {e}"))),
    }
}

/// Whether `access` may make a request that reads only (`read_only`) or also writes, when the
/// collection it touches is not known (gRPC): collection-scoped tokens are refused.
pub fn authorize_global(access: &Access, read_only: bool) -> Result<(), ApiError> {
    let forbidden = |m: &str| ApiError { retry_after: None, status: StatusCode::FORBIDDEN, message: m.to_string() };
    match access {
        Access::Manage => Ok(()),
        Access::Read if read_only => Ok(()),
        Access::Read => Err(forbidden("Forbidden: read-only access cannot change data")),
        Access::Collections(_) => Err(forbidden(
            "Forbidden: this operation needs global access; the token grants access to listed collections only",
        )),
    }
}

pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The dashboard's static files: a browser cannot send a header when opening a page; the
    // page itself sends the key with every API call.
    let path = req.uri().path();
    if OPEN_PATHS.contains(&path) || path == "/dashboard" || path.starts_with("/dashboard/") {
        return next.run(req).await;
    }
    let read_only = is_read_only(req.method(), path);
    let (access, value_exists) = match identify(&state.settings.service, presented_key(req.headers())) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let mut need = jwt::classify(req.method(), path, read_only);
    // A collection reached through an alias is checked as the collection it names.
    if let Access::Collections(_) = &access {
        if let jwt::Need::CollectionRead(c) | jwt::Need::CollectionWrite(c) = &mut need {
            if let Some(target) = state.registry.aliases().get(c.as_str()) {
                *c = target.clone();
            }
        }
    }
    if let Err(m) = jwt::permits(&access, &need) {
        return ApiError { retry_after: None, status: StatusCode::FORBIDDEN, message: m }.into_response();
    }
    if let Some(v) = value_exists {
        let registry = state.registry.clone();
        let held = tokio::task::spawn_blocking(move || value_exists_holds(&registry, &v)).await;
        match held {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.into_response(),
            Err(e) => {
                return ApiError {
                    retry_after: None,
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: e.to_string(),
                }
                .into_response()
            }
        }
    }
    let mut req = req;
    req.extensions_mut().insert(access);
    next.run(req).await
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

    fn authorize(s: &ServiceSettings, key: Option<&str>, read_only: bool) -> Result<(), ApiError> {
        identify(s, key).and_then(|(a, _)| authorize_global(&a, read_only))
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

    #[test]
    fn jwts_only_with_jwt_rbac() {
        // header {"alg":"HS256","typ":"JWT"}, claims {"access":"r"}, signed with "w"
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let head = format!("{}.{}", b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(r#"{"access":"r"}"#));
        let sig = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"w"), head.as_bytes());
        let token = format!("{head}.{}", b64.encode(sig.as_ref()));
        let mut s = service(Some("w"), None);
        assert_eq!(authorize(&s, Some(&token), true).err().map(|e| e.status), Some(StatusCode::UNAUTHORIZED));
        s.jwt_rbac = true;
        assert!(authorize(&s, Some(&token), true).is_ok());
        assert_eq!(authorize(&s, Some(&token), false).err().map(|e| e.status), Some(StatusCode::FORBIDDEN));
    }
}
