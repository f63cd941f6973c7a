//! CORS (`service.enable_cors`, on by default as in Qdrant): browsers may call the API from any
//! origin. A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here,
//! before the API-key check (browsers never send credentials on a preflight); every other
//! response, errors included, carries `Access-Control-Allow-Origin: *`.
//!
//! The origin is the wildcard, not the caller's origin echoed back, so responses are the same
//! for every origin and credentials (cookies) are never involved; API keys travel in headers,
//! which the preflight allows.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS";
/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "3600";
/// Headers a preflight allows when it names none: what the API and its clients send.
const DEFAULT_ALLOWED_HEADERS: &str = "api-key, authorization, content-type";

/// The middleware: answer preflights, decorate everything else.
pub async fn handle(req: Request, next: Next) -> Response {
    if is_preflight(req.method(), req.headers()) {
        return preflight(req.headers());
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("*"));
    response
}

/// A CORS preflight, as opposed to a plain `OPTIONS` request.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// 200 with what the browser asked for allowed. Requested headers are echoed back rather than
/// answered with `*`, which does not cover `Authorization`.
fn preflight(request_headers: &HeaderMap) -> Response {
    let allow_headers = request_headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS));
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn only_options_with_a_requested_method_is_a_preflight() {
        let h = headers(&[("access-control-request-method", "PUT")]);
        assert!(is_preflight(&Method::OPTIONS, &h));
        assert!(!is_preflight(&Method::OPTIONS, &HeaderMap::new()));
        assert!(!is_preflight(&Method::GET, &h));
    }

    #[test]
    fn preflight_echoes_requested_headers() {
        let r = preflight(&headers(&[("access-control-request-headers", "api-key, x-custom")]));
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h.get(ACCESS_CONTROL_ALLOW_HEADERS).map(|v| v.as_bytes()), Some(&b"api-key, x-custom"[..]));
        assert_eq!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.as_bytes()), Some(&b"*"[..]));
        assert!(h.get(ACCESS_CONTROL_ALLOW_METHODS).is_some_and(|m| m.as_bytes().starts_with(b"GET")));
        let r = preflight(&HeaderMap::new());
        let allowed = r.headers().get(ACCESS_CONTROL_ALLOW_HEADERS).map(|v| v.as_bytes().to_vec());
        assert_eq!(allowed.as_deref(), Some(DEFAULT_ALLOWED_HEADERS.as_bytes()));
    }
}
