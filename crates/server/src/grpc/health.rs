//! `qdrant.Qdrant/HealthCheck`: the Qdrant API version this server implements, as `GET /`.

use qdrant_client::qdrant::qdrant_server::Qdrant;
use qdrant_client::qdrant::{HealthCheckReply, HealthCheckRequest};
use tonic::{Request, Response, Status};

pub struct HealthService;

#[tonic::async_trait]
impl Qdrant for HealthService {
    async fn health_check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckReply>, Status> {
        Ok(Response::new(HealthCheckReply {
            title: crate::api::service::TITLE.to_string(),
            version: crate::api::service::QDRANT_API_VERSION.to_string(),
            commit: Some(crate::api::service::BUILD_COMMIT.to_string()),
        }))
    }
}
