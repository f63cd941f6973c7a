//! API keys on gRPC: the same keys and read-only rules as REST (see
//! [`crate::api::auth::authorize`]), read from the `api-key` or `authorization` metadata.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tonic::Status;

use crate::settings::ServiceSettings;

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
pub struct AuthLayer {
    service: std::sync::Arc<ServiceSettings>,
}

impl AuthLayer {
    pub fn new(service: ServiceSettings) -> Self {
        AuthLayer { service: std::sync::Arc::new(service) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, service: self.service.clone() }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    service: std::sync::Arc<ServiceSettings>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<Request<B>> for Auth<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = req.uri().path();
        if OPEN_METHODS.contains(&method) {
            return Box::pin(self.inner.call(req));
        }
        let read_only = READ_METHODS.contains(&method);
        let key = crate::api::auth::presented_key(req.headers());
        match crate::api::auth::authorize(&self.service, key, read_only) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(e) => {
                let response = Status::from(e).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
