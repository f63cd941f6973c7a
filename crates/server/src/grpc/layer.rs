//! The edge of every gRPC request: API keys and JWTs with the same rules as REST (see
//! [`crate::api::auth`]), read from the `api-key` or `authorization` metadata; a token limited
//! to listed collections is judged on the collection the request names (`super::scope`); and a
//! request over the size limit answered RESOURCE_EXHAUSTED, as REST answers it 413.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tonic::Status;

use crate::api::AppState;

/// Methods (`/package.Service/Method`) that only read; every other method writes.
const READ_METHODS: [&str; 27] = [
    "/qdrant.Points/Get",
    "/qdrant.Points/Search",
    "/qdrant.Points/SearchBatch",
    "/qdrant.Points/SearchGroups",
    "/qdrant.Points/Scroll",
    "/qdrant.Points/Recommend",
    "/qdrant.Points/RecommendBatch",
    "/qdrant.Points/RecommendGroups",
    "/qdrant.Points/Discover",
    "/qdrant.Points/DiscoverBatch",
    "/qdrant.Points/Count",
    "/qdrant.Points/Query",
    "/qdrant.Points/QueryBatch",
    "/qdrant.Points/QueryGroups",
    "/qdrant.Points/Facet",
    "/qdrant.Points/SearchMatrixPairs",
    "/qdrant.Points/SearchMatrixOffsets",
    "/qdrant.Collections/Get",
    "/qdrant.Collections/List",
    "/qdrant.Collections/ListCollectionAliases",
    "/qdrant.Collections/ListAliases",
    "/qdrant.Collections/CollectionClusterInfo",
    "/qdrant.Collections/CollectionExists",
    "/qdrant.Collections/ListShardKeys",
    "/qdrant.Snapshots/List",
    "/qdrant.Snapshots/ListFull",
    "/qdrant.Qdrant/HealthCheck",
];

/// Open without a key, like `GET /` on REST.
const OPEN_METHODS: [&str; 1] = ["/qdrant.Qdrant/HealthCheck"];

#[derive(Clone)]
pub struct EdgeLayer {
    state: std::sync::Arc<AppState>,
}

impl EdgeLayer {
    pub fn new(state: std::sync::Arc<AppState>) -> Self {
        EdgeLayer { state }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    state: std::sync::Arc<AppState>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

type Body = tonic::body::Body;

/// A refusal answered at the edge, counted like an answered call.
fn refuse(method: &str, e: crate::api::response::ApiError, started: std::time::Instant) -> Response<Body> {
    let status = Status::from(e);
    crate::api::metrics::global().record_grpc(method, status.code() as u16, started.elapsed());
    status.into_http()
}

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let started = std::time::Instant::now();
        let method = req.uri().path().to_string();
        if OPEN_METHODS.contains(&method.as_str()) {
            return Box::pin(self.inner.call(req));
        }
        let read_only = READ_METHODS.contains(&method.as_str());
        let key = crate::api::auth::presented_key(req.headers());
        let (access, value_exists) = match crate::api::auth::identify(&self.state.settings.service, key) {
            Ok(who) => who,
            Err(e) => {
                let response = refuse(&method, e, started);
                return Box::pin(async move { Ok(response) });
            }
        };
        if !super::scope::needs_body(&access) {
            if let Err(e) = crate::api::auth::authorize_global(&access, read_only) {
                let response = refuse(&method, e, started);
                return Box::pin(async move { Ok(response) });
            }
        }
        // The service that was polled ready answers this call, possibly after the body was
        // read (collection-limited tokens) and the `value_exists` check (a count on a
        // collection, run off the async threads).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move {
            let mut req = req;
            if super::scope::needs_body(&access) {
                req = match judge_by_collection(&state, &access, &method, read_only, req).await {
                    Ok(req) => req,
                    Err(e) => return Ok(refuse(&method, e, started)),
                };
            }
            if let Some(v) = value_exists {
                let registry = state.registry.clone();
                let held = tokio::task::spawn_blocking(move || crate::api::auth::value_exists_holds(&registry, &v))
                    .await
                    .unwrap_or_else(|e| Err(internal(e.to_string())));
                if let Err(e) = held {
                    return Ok(refuse(&method, e, started));
                }
            }
            // Handlers of lists filter them to what the caller may see.
            req.extensions_mut().insert(access);
            let mut response = inner.call(req).await?;
            too_large_is_resource_exhausted(response.headers_mut());
            // An error is a trailers-only answer (its status in the headers); a success
            // sends its status in the trailers: no status here means OK.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u16>().ok())
                .unwrap_or(0);
            crate::api::metrics::global().record_grpc(&method, code, started.elapsed());
            Ok(response)
        })
    }
}

fn internal(message: String) -> crate::api::response::ApiError {
    crate::api::response::ApiError { retry_after: None, status: axum::http::StatusCode::INTERNAL_SERVER_ERROR, message }
}

/// A token limited to listed collections: read the (unary) request body, find the collection
/// it names (an alias counts as its collection) and check the token's access to it; the
/// request goes on with the same bytes.
async fn judge_by_collection(
    state: &AppState,
    access: &crate::api::jwt::Access,
    method: &str,
    read_only: bool,
    req: Request<Body>,
) -> Result<Request<Body>, crate::api::response::ApiError> {
    use http_body_util::BodyExt;
    let forbidden = |message: String| crate::api::response::ApiError {
        retry_after: None,
        status: axum::http::StatusCode::FORBIDDEN,
        message,
    };
    let scope = super::scope::scope_of(method, read_only);
    let (parts, body) = req.into_parts();
    let limit = state.settings.service.max_request_size_mb.saturating_mul(1024 * 1024).saturating_add(5);
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| crate::api::response::ApiError {
            retry_after: None,
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body: {e}"),
        })?
        .to_bytes();
    let collection = match scope {
        super::scope::Scope::Collection { .. } => super::scope::collection_name(&bytes).map(|c| {
            // Checked as the collection an alias names, as over REST.
            state.registry.aliases().get(c.as_str()).cloned().unwrap_or(c)
        }),
        _ => None,
    };
    crate::api::jwt::permits(access, &super::scope::need(scope, collection)).map_err(forbidden)?;
    Ok(Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes))))
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE; Qdrant's clients expect
/// RESOURCE_EXHAUSTED (REST answers 413), so that status is rewritten, message kept.
fn too_large_is_resource_exhausted(headers: &mut axum::http::HeaderMap) {
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("message%20length%20too%20large") || m.contains("message length too large"));
    if out_of_range && too_large {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_request_is_resource_exhausted() {
        let mut h =
            Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 1 bytes")
                .into_http::<tonic::body::Body>()
                .headers()
                .clone();
        too_large_is_resource_exhausted(&mut h);
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
        let mut other = Status::out_of_range("offset out of range").into_http::<tonic::body::Body>().headers().clone();
        too_large_is_resource_exhausted(&mut other);
        assert_eq!(other.get("grpc-status").map(|v| v.as_bytes()), Some(&b"11"[..]));
    }

    #[test]
    fn read_methods_are_known_service_methods() {
        for m in READ_METHODS {
            assert!(m.starts_with("/qdrant.") && m.matches('/').count() == 2, "{m}");
        }
    }
}
