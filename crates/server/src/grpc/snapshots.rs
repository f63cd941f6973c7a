//! `qdrant.Snapshots`: create, list and delete collection and full-storage snapshots (files are
//! downloaded and uploaded over REST, as with Qdrant).

use std::sync::Arc;
use std::time::Instant;

use qd_collection::snapshot::{SnapshotDescription, SnapshotDir};
use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::snapshots_server::Snapshots;
use tonic::{Request, Response};

use super::{blocking, elapsed, Reply};
use crate::api::metrics::{self, SnapshotKind};
use crate::api::response::ApiError;
use crate::api::snapshots::{collection_name, write_collection_snapshot, write_full_snapshot};
use crate::api::AppState;

pub struct SnapshotsService {
    state: Arc<AppState>,
}

impl SnapshotsService {
    pub fn new(state: Arc<AppState>) -> Self {
        SnapshotsService { state }
    }

    fn dirs(&self) -> SnapshotDir {
        SnapshotDir::new(self.state.settings.storage.snapshots_path.clone())
    }
}

fn description_out(d: SnapshotDescription) -> pb::SnapshotDescription {
    let creation_time = d
        .creation_time
        .as_deref()
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .map(|t| t.and_utc())
        .map(|t| prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 });
    pb::SnapshotDescription { name: d.name, creation_time, size: d.size as i64, checksum: d.checksum }
}

/// Run a snapshot job counted in the snapshot metrics under `kind` and `collection`.
fn counted<T>(kind: SnapshotKind, collection: &str, job: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    let guard = metrics::snapshot_started(kind, collection);
    let r = job();
    match &r {
        Ok(_) => guard.success(),
        Err(_) => guard.failure(),
    }
    r
}

#[tonic::async_trait]
impl Snapshots for SnapshotsService {
    async fn create(&self, request: Request<pb::CreateSnapshotRequest>) -> Reply<pb::CreateSnapshotResponse> {
        let t = Instant::now();
        let collection = self.state.registry.get(&request.into_inner().collection_name).map_err(ApiError::from)?;
        let dir = self.dirs().collection_dir(collection.name()).map_err(ApiError::from)?;
        let desc = blocking(move || {
            counted(SnapshotKind::Create, collection.name(), || write_collection_snapshot(&collection, &dir))
        })
        .await?;
        Ok(Response::new(pb::CreateSnapshotResponse {
            snapshot_description: Some(description_out(desc)),
            time: elapsed(t),
        }))
    }

    async fn list(&self, request: Request<pb::ListSnapshotsRequest>) -> Reply<pb::ListSnapshotsResponse> {
        let t = Instant::now();
        let (reg, dirs, name) = (self.state.registry.clone(), self.dirs(), request.into_inner().collection_name);
        let list = blocking(move || {
            let dir = dirs.collection_dir(&collection_name(&reg, &name)?)?;
            Ok(SnapshotDir::list(&dir)?)
        })
        .await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshot_descriptions: list.into_iter().map(description_out).collect(),
            time: elapsed(t),
        }))
    }

    async fn delete(&self, request: Request<pb::DeleteSnapshotRequest>) -> Reply<pb::DeleteSnapshotResponse> {
        let t = Instant::now();
        let r = request.into_inner();
        let (reg, dirs) = (self.state.registry.clone(), self.dirs());
        blocking(move || {
            let name = collection_name(&reg, &r.collection_name)?;
            let dir = dirs.collection_dir(&name)?;
            counted(SnapshotKind::Delete, &name, || Ok(SnapshotDir::delete(&dir, &r.snapshot_name)?))
        })
        .await?;
        Ok(Response::new(pb::DeleteSnapshotResponse { time: elapsed(t) }))
    }

    async fn create_full(&self, _: Request<pb::CreateFullSnapshotRequest>) -> Reply<pb::CreateSnapshotResponse> {
        let t = Instant::now();
        let (reg, root) = (self.state.registry.clone(), self.dirs().root().to_path_buf());
        let desc = blocking(move || counted(SnapshotKind::Create, "", || write_full_snapshot(&reg, &root))).await?;
        Ok(Response::new(pb::CreateSnapshotResponse {
            snapshot_description: Some(description_out(desc)),
            time: elapsed(t),
        }))
    }

    async fn list_full(&self, _: Request<pb::ListFullSnapshotsRequest>) -> Reply<pb::ListSnapshotsResponse> {
        let t = Instant::now();
        let root = self.dirs().root().to_path_buf();
        let list = blocking(move || Ok(SnapshotDir::list(&root)?)).await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshot_descriptions: list.into_iter().map(description_out).collect(),
            time: elapsed(t),
        }))
    }

    async fn delete_full(&self, request: Request<pb::DeleteFullSnapshotRequest>) -> Reply<pb::DeleteSnapshotResponse> {
        let t = Instant::now();
        let (root, name) = (self.dirs().root().to_path_buf(), request.into_inner().snapshot_name);
        blocking(move || counted(SnapshotKind::Delete, "", || Ok(SnapshotDir::delete(&root, &name)?))).await?;
        Ok(Response::new(pb::DeleteSnapshotResponse { time: elapsed(t) }))
    }
}
