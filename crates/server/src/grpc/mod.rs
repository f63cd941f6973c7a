//! gRPC API on `service.grpc_port` (default 6334): Qdrant's `Qdrant`, `Collections`, `Points`
//! and `Snapshots` services, implemented over the same collection layer and shared operations
//! as the REST API. Messages and service traits come from the official `qdrant-client` crate,
//! so the wire format is Qdrant's own.

mod collections;
pub mod convert;
mod health;
mod layer;
mod points;
mod scope;
mod snapshots;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant::collections_server::CollectionsServer;
use qdrant_client::qdrant::points_server::PointsServer;
use qdrant_client::qdrant::qdrant_server::QdrantServer;
use qdrant_client::qdrant::snapshots_server::SnapshotsServer;
use tonic::{Response, Status};

use crate::api::response::ApiError;
use crate::api::AppState;

/// HTTP/2 flow-control windows (bytes) a client may send before it must wait for the server.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// Seconds since `t`, for the `time` field of every answer.
fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Run blocking collection work off the async runtime; errors become gRPC statuses.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, Status> {
    Ok(crate::api::blocking(f).await?)
}

type Reply<T> = Result<Response<T>, Status>;

/// Serve gRPC on the connections of `incoming` (TLS, when on, is already established by
/// `net::grpc_incoming`) until `shutdown` completes; requests in flight finish first.
pub async fn serve(
    state: Arc<AppState>,
    incoming: impl futures_util::Stream<Item = std::io::Result<crate::net::Slotted>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let max = state.settings.service.max_request_size_mb.saturating_mul(1024 * 1024);
    let points = PointsServer::new(points::PointsService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
    let collections = CollectionsServer::new(collections::CollectionsService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
    let snapshots = SnapshotsServer::new(snapshots::SnapshotsService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
    let health = QdrantServer::new(health::HealthService);
    // Upserts of a few MB are common: HTTP/2's default 64 KiB stream window would make the
    // client wait for a window update every 64 KiB.
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .layer(layer::EdgeLayer::new(state.clone()))
        .add_service(health)
        .add_service(collections)
        .add_service(points)
        .add_service(snapshots)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// The address gRPC listens on, when enabled.
pub fn address(settings: &crate::settings::Settings) -> Option<String> {
    settings.service.grpc_port.map(|port| format!("{}:{port}", settings.service.host))
}
