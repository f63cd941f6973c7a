//! Snapshot endpoints, in Qdrant's paths and shapes:
//!
//! * `POST/GET /collections/{name}/snapshots`, `GET/DELETE /collections/{name}/snapshots/{snapshot}`
//! * `PUT /collections/{name}/snapshots/recover` (`file://` or `http://` location)
//! * `POST /collections/{name}/snapshots/upload` (multipart field `snapshot`)
//! * `POST /collections/{name}/restore` (`{"snapshot": "path on the server"}`)
//! * `POST/GET /snapshots`, `GET/DELETE /snapshots/{snapshot}` (full storage)
//!
//! Files are written and read on the blocking pool and streamed (downloads, uploads and URL
//! fetches never hold a snapshot in memory). Uploads and URL downloads land in the storage's
//! `tmp/` directory and are removed when the request ends, whatever its outcome.

use std::path::{Path as FsPath, PathBuf};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use qd_collection::snapshot::{self, full, no_progress, RestoreOptions, SnapshotDescription, SnapshotDir};
use qd_collection::{CollectionError, Registry};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fetch;
use super::metrics::{self, SnapshotKind};
use super::response::{ok, ApiError, ApiResult, Body as JsonBody, Params};
use super::{blocking, State};

/// `?wait=` (default true, as in Qdrant) plus the upload's `priority` and `checksum`.
#[derive(Debug, Deserialize, Default)]
pub struct SnapshotParams {
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub checksum: Option<String>,
}

/// Qdrant's `SnapshotPriority`. On a single node all three mean: the snapshot's data replaces
/// the collection; in a cluster it says which copy the other replicas follow.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    NoSync,
    Snapshot,
    Replica,
}

impl From<Priority> for qd_cluster::SnapshotPriority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::NoSync => qd_cluster::SnapshotPriority::NoSync,
            Priority::Snapshot => qd_cluster::SnapshotPriority::Snapshot,
            Priority::Replica => qd_cluster::SnapshotPriority::Replica,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    pub location: String,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub checksum: Option<String>,
    /// Sent as the `api-key` header when the location is a URL.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// This project's seed form: restore from a file on the server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub snapshot: String,
    #[serde(default)]
    pub checksum: Option<String>,
}

fn snapshots(state: &State) -> SnapshotDir {
    SnapshotDir::new(state.settings.storage.snapshots_path.clone())
}

fn wait(p: &SnapshotParams) -> bool {
    p.wait.unwrap_or(true)
}

/// Qdrant's answer to `wait=false`: 202 with `status: "accepted"`.
fn accepted(started: Instant) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "result": null, "status": "accepted", "time": started.elapsed().as_secs_f64() })),
    )
        .into_response()
}

fn checksum_param(c: Option<String>) -> Result<Option<String>, ApiError> {
    match c.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()) {
        Some(c) if c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()) => Err(ApiError::bad_request(format!(
            "Bad request: checksum must be a sha256 in hex (64 characters), got {c:?}"
        ))),
        other => Ok(other),
    }
}

/// The name snapshots of `name` are filed under: the collection's own name (aliases resolve);
/// a collection that exists but cannot serve (loading, damaged) keeps its name.
pub fn collection_name(reg: &Registry, name: &str) -> Result<String, ApiError> {
    match reg.get(name) {
        Ok(c) => Ok(c.name().to_string()),
        Err(_) if reg.exists(name) => Ok(name.to_string()),
        Err(e) => Err(e.into()),
    }
}

/// Run `job` now, or in the background with `wait=false` (errors are logged), counted in the
/// snapshot metrics as an operation of `kind` on `collection` ("" for the whole storage).
async fn run<T: serde::Serialize + Send + 'static>(
    started: Instant,
    wait: bool,
    kind: SnapshotKind,
    collection: String,
    job: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult {
    let job = move || {
        let guard = metrics::snapshot_started(kind, &collection);
        let r = job();
        match &r {
            Ok(_) => guard.success(),
            Err(e) => {
                tracing::warn!(collection = %collection, error = %e.message, "snapshot {} failed", kind.as_str());
                guard.failure()
            }
        }
        r
    };
    if wait {
        let r = blocking(job).await?;
        Ok(ok(started, r))
    } else {
        tokio::task::spawn_blocking(job);
        Ok(accepted(started))
    }
}

// ---- collection snapshots ----

pub async fn create(state: State, Path(name): Path<String>, Params(p): Params<SnapshotParams>) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    // Unknown or unavailable collections answer at once, also with wait=false.
    let collection = reg.get(&name)?;
    let dir = snapshots(&state).collection_dir(collection.name())?;
    run(t, wait(&p), SnapshotKind::Create, collection.name().to_string(), move || {
        write_collection_snapshot(&collection, &dir)
    })
    .await
}

/// Write a new snapshot of `collection` into `dir` (its snapshots directory). Blocks.
pub fn write_collection_snapshot(
    collection: &qd_collection::Collection,
    dir: &FsPath,
) -> Result<SnapshotDescription, ApiError> {
    let base = format!("{}-{}", collection.name(), snapshot::name_timestamp(chrono::Utc::now()));
    let desc = SnapshotDir::write_new(dir, &base, collection.local_disk_bytes(None), |w, path| {
        let (_, size, sha) = snapshot::snapshot_collection(collection, w, path, &mut no_progress)?;
        Ok((size, sha))
    })?;
    tracing::info!(collection = %collection.name(), snapshot = %desc.name, size = desc.size, "snapshot created");
    Ok(desc)
}

pub async fn list(state: State, Path(name): Path<String>) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    let dirs = snapshots(&state);
    let list: Vec<SnapshotDescription> = blocking(move || {
        let dir = dirs.collection_dir(&collection_name(&reg, &name)?)?;
        Ok(SnapshotDir::list(&dir)?)
    })
    .await?;
    Ok(ok(t, list))
}

pub async fn download(state: State, Path((name, snapshot)): Path<(String, String)>) -> ApiResult {
    let reg = state.registry.clone();
    let name = collection_name(&reg, &name)?;
    let dir = snapshots(&state).collection_dir(&name)?;
    let r = match SnapshotDir::existing(&dir, &snapshot) {
        Ok(p) => stream_file(p).await,
        Err(e) => Err(e.into()),
    };
    metrics::record_snapshot(SnapshotKind::Download, &name, r.is_ok());
    r
}

pub async fn delete(
    state: State,
    Path((name, snapshot)): Path<(String, String)>,
    Params(p): Params<SnapshotParams>,
) -> ApiResult {
    let t = Instant::now();
    let name = collection_name(&state.registry, &name)?;
    let dir = snapshots(&state).collection_dir(&name)?;
    delete_in(t, wait(&p), dir, snapshot, name).await
}

/// Delete snapshot `snapshot` in `dir` (404 at once if it does not exist).
async fn delete_in(t: Instant, wait: bool, dir: PathBuf, snapshot: String, collection: String) -> ApiResult {
    if let Err(e) = SnapshotDir::existing(&dir, &snapshot) {
        metrics::record_snapshot(SnapshotKind::Delete, &collection, false);
        return Err(e.into());
    }
    let job = move || {
        let r = SnapshotDir::delete(&dir, &snapshot);
        metrics::record_snapshot(SnapshotKind::Delete, &collection, r.is_ok());
        Ok(r.map(|_| true)?)
    };
    if wait {
        Ok(ok(t, blocking(job).await?))
    } else {
        tokio::task::spawn_blocking(job);
        Ok(accepted(t))
    }
}

/// Restore `file` as collection `name` (or as its shard `shard`), then drop `temp` (a
/// downloaded or uploaded file). In a cluster this peer's replicas are recovered, and
/// `priority` says which copy the other replicas follow.
#[allow(clippy::too_many_arguments)]
async fn restore_file(
    state: &State,
    started: Instant,
    wait: bool,
    kind: SnapshotKind,
    name: String,
    shard: Option<u32>,
    file: PathBuf,
    checksum: Option<String>,
    priority: Option<Priority>,
    temp: Option<TempPath>,
) -> ApiResult {
    if let Some(node) = state.cluster.clone() {
        let target = shard.map_or(qd_cluster::RecoverTarget::Collection, qd_cluster::RecoverTarget::Shard);
        let priority = priority.map(Into::into).unwrap_or_default();
        let runtime = tokio::runtime::Handle::current();
        return run(started, wait, kind, name.clone(), move || {
            let _temp = temp;
            runtime.block_on(node.recover_snapshot(&name, target, &file, checksum.as_deref(), priority))?;
            Ok(true)
        })
        .await;
    }
    let reg = state.registry.clone();
    run(started, wait, kind, name.clone(), move || {
        let _temp = temp;
        let mut f = std::fs::File::open(&file)
            .map_err(|e| ApiError::not_found(format!("Not found: snapshot file {}: {e}", file.display())))?;
        let total = f.metadata().ok().map(|m| m.len());
        match shard {
            Some(sid) => {
                reg.restore_shard(&name, sid, &mut f, total, checksum.as_deref(), &mut no_progress)?;
            }
            None => {
                let opts = RestoreOptions { checksum, replace_existing: true, at_startup: false };
                reg.restore_collection(&name, &mut f, total, &opts, &mut no_progress)?;
            }
        }
        Ok(true)
    })
    .await
}

/// `PUT /collections/{name}/snapshots/recover`.
pub async fn recover(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<SnapshotParams>,
    JsonBody(body): JsonBody<RecoverBody>,
) -> ApiResult {
    recover_into(state, name, None, p, body).await
}

/// `PUT /collections/{name}/shards/{shard_id}/snapshots/recover`.
pub async fn recover_shard(
    state: State,
    Path((name, shard)): Path<(String, u32)>,
    Params(p): Params<SnapshotParams>,
    JsonBody(body): JsonBody<RecoverBody>,
) -> ApiResult {
    recover_into(state, name, Some(shard), p, body).await
}

async fn recover_into(
    state: State,
    name: String,
    shard: Option<u32>,
    p: SnapshotParams,
    body: RecoverBody,
) -> ApiResult {
    let t = Instant::now();
    qd_collection::registry::validate_collection_name(&name)?;
    let checksum = checksum_param(body.checksum)?;
    let priority = body.priority;
    let location = body.location.trim().to_string();
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let temp = TempPath::new(&state.registry.layout().tmp_dir(), "download");
        if wait(&p) {
            fetch::fetch_url(&location, body.api_key.as_deref(), &temp.0).await?;
            let file = temp.0.clone();
            let kind = SnapshotKind::Restore;
            return restore_file(&state, t, true, kind, name, shard, file, checksum, priority, Some(temp)).await;
        }
        let state2 = state.clone();
        tokio::spawn(async move {
            match fetch::fetch_url(&location, body.api_key.as_deref(), &temp.0).await {
                Ok(_) => {
                    let file = temp.0.clone();
                    let kind = SnapshotKind::Restore;
                    let _ =
                        restore_file(&state2, t, true, kind, name, shard, file, checksum, priority, Some(temp)).await;
                }
                Err(e) => {
                    metrics::record_snapshot(SnapshotKind::Restore, &name, false);
                    tracing::error!(error = %e.message, "snapshot download failed")
                }
            }
        });
        return Ok(accepted(t));
    }
    let tmp_dir = state.registry.layout().tmp_dir();
    let dirs = snapshots(&state);
    let file = blocking(move || Ok(dirs.resolve_local(&location, &tmp_dir)?)).await?;
    restore_file(&state, t, wait(&p), SnapshotKind::Restore, name, shard, file, checksum, priority, None).await
}

/// `POST /collections/{name}/restore` with `{"snapshot": "path"}`: a file under the snapshots
/// path (absolute, or relative to it) or the storage's tmp directory.
pub async fn restore(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<SnapshotParams>,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult {
    let t = Instant::now();
    qd_collection::registry::validate_collection_name(&name)?;
    let checksum = checksum_param(body.checksum.or(p.checksum.clone()))?;
    let tmp_dir = state.registry.layout().tmp_dir();
    let dirs = snapshots(&state);
    let location = body.snapshot;
    let file = blocking(move || Ok(dirs.resolve_local(&location, &tmp_dir)?)).await?;
    restore_file(&state, t, wait(&p), SnapshotKind::Restore, name, None, file, checksum, p.priority, None).await
}

/// `POST /collections/{name}/snapshots/upload?priority=&checksum=`, multipart field `snapshot`.
pub async fn upload(
    state: State,
    Path(name): Path<String>,
    Params(p): Params<SnapshotParams>,
    multipart: Multipart,
) -> ApiResult {
    upload_into(state, name, None, p, multipart).await
}

/// `POST /collections/{name}/shards/{shard_id}/snapshots/upload`.
pub async fn upload_shard(
    state: State,
    Path((name, shard)): Path<(String, u32)>,
    Params(p): Params<SnapshotParams>,
    multipart: Multipart,
) -> ApiResult {
    upload_into(state, name, Some(shard), p, multipart).await
}

async fn upload_into(
    state: State,
    name: String,
    shard: Option<u32>,
    p: SnapshotParams,
    mut multipart: Multipart,
) -> ApiResult {
    let t = Instant::now();
    qd_collection::registry::validate_collection_name(&name)?;
    let checksum = checksum_param(p.checksum.clone())?;
    let temp = TempPath::new(&state.registry.layout().tmp_dir(), "upload");
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("Bad request: multipart upload failed: {}", e.body_text()))
    };
    let mut got = false;
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let is_file = field.name() == Some("snapshot") || (field.name().is_none() && field.file_name().is_some());
        if !is_file {
            continue;
        }
        let mut f = tokio::fs::File::create(&temp.0).await.map_err(|e| internal(&temp.0, e))?;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            f.write_all(&chunk).await.map_err(|e| internal(&temp.0, e))?;
        }
        f.flush().await.map_err(|e| internal(&temp.0, e))?;
        got = true;
        break;
    }
    if !got {
        return Err(ApiError::bad_request("Bad request: multipart form field `snapshot` (the file) is missing"));
    }
    let file = temp.0.clone();
    restore_file(&state, t, wait(&p), SnapshotKind::Upload, name, shard, file, checksum, p.priority, Some(temp)).await
}

// ---- shard snapshots ----

/// `POST /collections/{name}/shards/{shard_id}/snapshots`: snapshot one shard.
pub async fn create_shard(
    state: State,
    Path((name, shard)): Path<(String, u32)>,
    Params(p): Params<SnapshotParams>,
) -> ApiResult {
    let t = Instant::now();
    let collection = state.registry.get(&name)?;
    if !collection.shards().iter().any(|s| s.id() == shard) {
        return Err(ApiError::not_found(format!("Not found: shard {shard} of collection `{name}` does not exist")));
    }
    let dir = snapshots(&state).shard_dir(collection.name(), shard)?;
    run(t, wait(&p), SnapshotKind::Create, collection.name().to_string(), move || {
        let base = format!("{}-shard-{shard}-{}", collection.name(), snapshot::name_timestamp(chrono::Utc::now()));
        let desc = SnapshotDir::write_new(&dir, &base, collection.local_disk_bytes(Some(shard)), |w, path| {
            let (_, size, sha) = snapshot::snapshot_shard(&collection, shard, w, path, &mut no_progress)?;
            Ok((size, sha))
        })?;
        Ok(desc)
    })
    .await
}

pub async fn list_shard(state: State, Path((name, shard)): Path<(String, u32)>) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    let dirs = snapshots(&state);
    let list: Vec<SnapshotDescription> = blocking(move || {
        let dir = dirs.shard_dir(&collection_name(&reg, &name)?, shard)?;
        Ok(SnapshotDir::list(&dir)?)
    })
    .await?;
    Ok(ok(t, list))
}

pub async fn download_shard(state: State, Path((name, shard, snapshot)): Path<(String, u32, String)>) -> ApiResult {
    let name = collection_name(&state.registry, &name)?;
    let dir = snapshots(&state).shard_dir(&name, shard)?;
    let r = match SnapshotDir::existing(&dir, &snapshot) {
        Ok(p) => stream_file(p).await,
        Err(e) => Err(e.into()),
    };
    metrics::record_snapshot(SnapshotKind::Download, &name, r.is_ok());
    r
}

pub async fn delete_shard(
    state: State,
    Path((name, shard, snapshot)): Path<(String, u32, String)>,
    Params(p): Params<SnapshotParams>,
) -> ApiResult {
    let t = Instant::now();
    let name = collection_name(&state.registry, &name)?;
    let dir = snapshots(&state).shard_dir(&name, shard)?;
    delete_in(t, wait(&p), dir, snapshot, name).await
}

// ---- full-storage snapshots ----

pub async fn create_full(state: State, Params(p): Params<SnapshotParams>) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    let root = snapshots(&state).root().to_path_buf();
    run(t, wait(&p), SnapshotKind::Create, String::new(), move || write_full_snapshot(&reg, &root)).await
}

/// Write a new snapshot of the whole storage into `root` (the snapshots directory). Blocks.
pub fn write_full_snapshot(reg: &Registry, root: &FsPath) -> Result<SnapshotDescription, ApiError> {
    let base = format!("full-snapshot-{}", snapshot::name_timestamp(chrono::Utc::now()));
    // Each collection is written to a scratch file in the storage's tmp directory, copied into
    // the archive and removed: the scratch side needs the largest collection, the archive all.
    let sizes: Vec<u64> = reg.list().iter().filter_map(|n| reg.get(n).ok()).map(|c| c.local_disk_bytes(None)).collect();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let tmp = reg.layout().tmp_dir();
    qd_collection::error::ensure_free_space(
        &tmp,
        largest.saturating_add(qd_storage::disk::MIN_FREE_DISK_BYTES),
        "the snapshot's scratch files need about",
    )?;
    // On one filesystem the largest scratch file and the archive exist at once.
    let same_fs = {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&tmp), std::fs::metadata(root)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => true,
        }
    };
    let total = sizes.iter().sum::<u64>().saturating_add(if same_fs { largest } else { 0 });
    let desc = SnapshotDir::write_new(root, &base, total, |w, path| {
        let (_, size, sha) = full::snapshot_registry(reg, w, path, &mut no_progress)?;
        Ok((size, sha))
    })?;
    tracing::info!(snapshot = %desc.name, size = desc.size, "full snapshot created");
    Ok(desc)
}

pub async fn list_full(state: State) -> ApiResult {
    let t = Instant::now();
    let root = snapshots(&state).root().to_path_buf();
    let list = blocking(move || Ok(SnapshotDir::list(&root)?)).await?;
    Ok(ok(t, list))
}

pub async fn download_full(state: State, Path(snapshot): Path<String>) -> ApiResult {
    let r = match SnapshotDir::existing(snapshots(&state).root(), &snapshot) {
        Ok(p) => stream_file(p).await,
        Err(e) => Err(e.into()),
    };
    metrics::record_snapshot(SnapshotKind::Download, "", r.is_ok());
    r
}

pub async fn delete_full(state: State, Path(snapshot): Path<String>, Params(p): Params<SnapshotParams>) -> ApiResult {
    let t = Instant::now();
    let root = snapshots(&state).root().to_path_buf();
    delete_in(t, wait(&p), root, snapshot, String::new()).await
}

// ---- helpers ----

pub(super) fn internal(path: &FsPath, e: std::io::Error) -> ApiError {
    ApiError::from(CollectionError::Storage(qd_storage::StorageError::io(path, e)))
}

/// A file in the storage's tmp directory, removed when dropped.
pub struct TempPath(PathBuf);

impl TempPath {
    fn new(tmp_dir: &FsPath, what: &str) -> Self {
        let _ = std::fs::create_dir_all(tmp_dir);
        TempPath(tmp_dir.join(format!("{what}-{}.snapshot", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stream a file as the response body, a chunk at a time.
async fn stream_file(path: PathBuf) -> ApiResult {
    let file = tokio::fs::File::open(&path).await.map_err(|e| internal(&path, e))?;
    let len = file.metadata().await.map_err(|e| internal(&path, e))?.len();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("snapshot").to_string();
    let stream = futures_util::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
