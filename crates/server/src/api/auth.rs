//! API-key authentication, as Qdrant does it: `api-key: KEY` or `Authorization: Bearer KEY`.
//! The read-only key allows reads only. Health endpoints stay open for probes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::ApiError;
use super::AppState;

const OPEN_PATHS: [&str; 4] = ["/", "/healthz", "/livez", "/readyz"];

/// POST endpoints that only read.
fn is_read_only(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    let reads = ["/points/search", "/points/scroll", "/points/count", "/points/query", "/points/recommend", "/facet"];
    method == Method::POST && (reads.iter().any(|s| path.contains(s)) || path.ends_with("/points"))
}

fn presented_key(req: &Request) -> Option<&str> {
    let h = req.headers();
    if let Some(k) = h.get("api-key").and_then(|v| v.to_str().ok()) {
        return Some(k);
    }
    h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let service = &state.settings.service;
    if service.api_key.is_none() && service.read_only_api_key.is_none() {
        return next.run(req).await;
    }
    // The dashboard's static files: a browser cannot send a header when opening a page; the
    // page itself sends the key with every API call.
    let path = req.uri().path();
    if OPEN_PATHS.contains(&path) || path == "/dashboard" || path.starts_with("/dashboard/") {
        return next.run(req).await;
    }
    let key = presented_key(&req);
    let full = key.is_some() && key == service.api_key.as_deref();
    let read = key.is_some() && key == service.read_only_api_key.as_deref();
    if full || (read && is_read_only(req.method(), req.uri().path())) {
        return next.run(req).await;
    }
    let message = match key {
        None => "Must provide an API key or an Authorization bearer token",
        Some(_) if read => "Forbidden: the read-only API key cannot change data",
        Some(_) => "Invalid API key or JWT",
    };
    let status = if read { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
    ApiError { status, message: message.to_string() }.into_response()
}
