//! Strict mode's `max_timeout` over REST: a request on a collection's points or facets
//! (`/collections/{name}/points...`, `/collections/{name}/facet`) whose `?timeout=` exceeds the
//! collection's cap is refused with 400 before its handler runs. Requests on the collection
//! itself (PATCH, DELETE, indexes) are not: a client that always sends a timeout must still be
//! able to change or turn off strict mode.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::ApiError;
use super::AppState;

/// The collection a path names and the `timeout` its query asks for, if both are there.
fn timed_collection(path: &str, query: Option<&str>) -> Option<(String, u64)> {
    let mut segments = path.strip_prefix("/collections/")?.split('/');
    let name = segments.next().filter(|n| !n.is_empty())?;
    if !matches!(segments.next(), Some("points" | "facet")) {
        return None;
    }
    let timeout = query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| v.parse::<u64>().ok())?;
    let name = percent_decode(name)?;
    Some((name, timeout))
}

/// `%XX` escapes of a path segment decoded (collection names may hold any character).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some((name, timeout)) = timed_collection(req.uri().path(), req.uri().query()) {
        // An unknown collection is left to the handler, which answers 404 as it always does.
        if let Ok(c) = state.registry.get(&name) {
            if let Err(e) = c.check_strict(|s| s.timeout(Some(timeout))) {
                return ApiError::from(e).into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_collection_and_its_timeout() {
        assert_eq!(
            timed_collection("/collections/a%20b/points/search", Some("wait=true&timeout=30")),
            Some(("a b".to_string(), 30))
        );
        assert_eq!(timed_collection("/collections/c/facet", Some("timeout=5")), Some(("c".to_string(), 5)));
        assert_eq!(timed_collection("/collections/c", Some("timeout=5")), None);
        assert_eq!(timed_collection("/collections/c/index", Some("timeout=5")), None);
        assert_eq!(timed_collection("/collections/c/points", None), None);
        assert_eq!(timed_collection("/collections/c/points", Some("timeout=x")), None);
        assert_eq!(timed_collection("/aliases", Some("timeout=5")), None);
        assert_eq!(timed_collection("/collections/", Some("timeout=5")), None);
    }
}
