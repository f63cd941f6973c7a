//! REST API: routes in Qdrant's paths, handlers that parse, call the collection layer on the
//! blocking pool, and wrap results in Qdrant's envelope.

pub mod auth;
mod cluster;
pub mod collections;
mod cors;
mod dashboard;
mod fetch;
pub mod inference;
pub mod jwt;
pub mod metrics;
pub mod models;
mod points;
mod query;
pub mod response;
pub mod service;
pub mod snapshots;
mod strict_timeout;
mod telemetry;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use qd_collection::Registry;

use crate::settings::Settings;
use response::ApiError;

pub struct AppState {
    pub registry: Arc<Registry>,
    pub settings: Settings,
    /// This peer, in cluster mode.
    pub cluster: Option<Arc<qd_cluster::ClusterNode>>,
}

pub type State = axum::extract::State<Arc<AppState>>;

/// This node's id in cluster-shaped responses (single node until cluster mode exists).
pub const PEER_ID: u64 = 1;

/// Run blocking collection work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.settings.service.max_request_size_mb.saturating_mul(1024 * 1024);
    let cors = state.settings.service.enable_cors;
    let routes = Router::new()
        .route("/", get(service::root))
        .route("/healthz", get(service::healthz))
        .route("/livez", get(service::livez))
        .route("/readyz", get(service::readyz))
        .route("/collections", get(collections::list))
        .route("/aliases", get(collections::all_aliases))
        .route("/collections/aliases", post(collections::update_aliases))
        .route(
            "/collections/{name}",
            get(collections::info).put(collections::create).patch(collections::update).delete(collections::delete),
        )
        .route("/collections/{name}/exists", get(collections::exists))
        .route("/collections/{name}/aliases", get(collections::collection_aliases))
        .route("/collections/{name}/points", put(points::upsert).post(points::retrieve))
        .route("/collections/{name}/points/delete", post(points::delete))
        .route("/collections/{name}/points/payload", post(points::set_payload).put(points::overwrite_payload))
        .route("/collections/{name}/points/payload/delete", post(points::delete_payload))
        .route("/collections/{name}/points/payload/clear", post(points::clear_payload))
        .route("/collections/{name}/points/vectors", put(points::update_vectors))
        .route("/collections/{name}/points/vectors/delete", post(points::delete_vectors))
        .route("/collections/{name}/points/scroll", post(points::scroll))
        .route("/collections/{name}/points/count", post(points::count))
        .route("/collections/{name}/points/search", post(points::search))
        .route("/collections/{name}/points/search/batch", post(points::search_batch))
        .route("/collections/{name}/points/query", post(query::query))
        .route("/collections/{name}/points/query/batch", post(query::query_batch))
        .route("/collections/{name}/points/recommend", post(query::recommend))
        .route("/collections/{name}/points/recommend/batch", post(query::recommend_batch))
        .route("/collections/{name}/points/discover", post(query::discover))
        .route("/collections/{name}/points/search/matrix/pairs", post(points::matrix_pairs))
        .route("/collections/{name}/points/search/matrix/offsets", post(points::matrix_offsets))
        .route("/collections/{name}/points/discover/batch", post(query::discover_batch))
        .route("/collections/{name}/points/query/groups", post(query::query_groups))
        .route("/collections/{name}/points/search/groups", post(query::classic_groups))
        .route("/collections/{name}/points/recommend/groups", post(query::classic_groups))
        .route(
            "/collections/{name}/vectors/{vector}",
            put(collections::create_vector).delete(collections::delete_vector),
        )
        .route("/collections/{name}/index", put(collections::create_index))
        .route("/collections/{name}/index/{field}", axum::routing::delete(collections::delete_index))
        .route("/collections/{name}/facet", post(collections::facet))
        .route("/collections/{name}/optimizations", get(collections::optimizations))
        .route("/collections/{name}/points/batch", post(points::batch))
        .route("/collections/{name}/shards", get(collections::list_shard_keys).put(collections::create_shard_key))
        .route("/collections/{name}/shards/delete", post(collections::delete_shard_key))
        .route("/collections/{name}/cluster", get(cluster::collection).post(cluster::update_collection))
        .route("/collections/{name}/points/{id}", get(points::get_one))
        // snapshots
        .route("/collections/{name}/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/collections/{name}/snapshots/recover", put(snapshots::recover))
        .route(
            "/collections/{name}/snapshots/upload",
            post(snapshots::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/collections/{name}/snapshots/{snapshot}", get(snapshots::download).delete(snapshots::delete))
        .route("/collections/{name}/restore", post(snapshots::restore))
        .route(
            "/collections/{name}/shards/{shard_id}/snapshots",
            get(snapshots::list_shard).post(snapshots::create_shard),
        )
        .route("/collections/{name}/shards/{shard_id}/snapshots/recover", put(snapshots::recover_shard))
        .route(
            "/collections/{name}/shards/{shard_id}/snapshots/upload",
            post(snapshots::upload_shard).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/collections/{name}/shards/{shard_id}/snapshots/{snapshot}",
            get(snapshots::download_shard).delete(snapshots::delete_shard),
        )
        .route("/snapshots", get(snapshots::list_full).post(snapshots::create_full))
        .route("/snapshots/{snapshot}", get(snapshots::download_full).delete(snapshots::delete_full))
        // monitoring
        .route("/metrics", get(metrics::metrics))
        .route("/telemetry", get(telemetry::telemetry))
        .route("/cluster", get(cluster::status))
        .route("/cluster/recover", post(cluster::recover))
        .route("/cluster/peer/{peer_id}", axum::routing::delete(cluster::remove_peer))
        .route("/issues", get(telemetry::issues).delete(telemetry::clear_issues))
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/", get(dashboard::index))
        .route("/dashboard/{file}", get(dashboard::asset))
        .fallback(service::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), strict_timeout::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check));
    // CORS outside auth: preflights carry no API key, and 401s need the headers too.
    let routes = if cors { routes.layer(axum::middleware::from_fn(cors::handle)) } else { routes };
    routes
        .layer(axum::middleware::from_fn(metrics::track)) // monitoring: request metrics and debug logs
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}
