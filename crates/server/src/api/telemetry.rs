//! `GET /telemetry`, `GET /cluster` and `GET /issues`, in Qdrant's shapes and envelope.
//!
//! Telemetry detail levels (`details_level`, default 0):
//! - 0: app (name, version, startup, features), number of collections, cluster, REST request
//!   statistics per endpoint and status code, process memory;
//! - 1: + per-collection summary (status, points, vectors by name, measured RAM and disk) and
//!   the running environment;
//! - 2: + each collection's config and shards (Qdrant's replica-set shape with a `local`
//!   shard carrying the measured figures);
//! - 3 and more: + each collection's running and recent optimizations.
//!
//! `anonymize=true` replaces collection and vector names by stable hashes and leaves out
//! free-text messages that could carry names.

use std::time::Instant;

use qd_core::config::CollectionConfig;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::metrics::{
    anonymize_name, gather, global, process_stats, CollectionView, GatherOptions, RestKey, RestStats,
};
use super::response::{ok, ApiResult, Params};
use super::service::VERSION;
use super::{blocking, State};

#[derive(Debug, Default, Deserialize)]
pub struct TelemetryParams {
    #[serde(default)]
    pub anonymize: Option<bool>,
    #[serde(default)]
    pub details_level: Option<usize>,
    #[allow(dead_code)] // accepted as Qdrant does
    #[serde(default)]
    pub per_collection: Option<bool>,
    #[allow(dead_code)]
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// Start of this process, RFC 3339.
fn startup() -> String {
    let secs = process_stats().start_time_seconds.unwrap_or(0.0);
    chrono::DateTime::from_timestamp(secs as i64, ((secs.fract()) * 1e9) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn os_release() -> (Option<String>, Option<String>) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim_matches('"').to_string())
    };
    (field("ID"), field("VERSION_ID"))
}

fn cpu_flags() -> String {
    const KNOWN: [&str; 9] = ["sse", "sse2", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f"];
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')).map(|(_, f)| f))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    KNOWN.iter().filter(|k| flags.contains(k)).copied().collect::<Vec<_>>().join(",")
}

fn mem_total_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next().and_then(|v| v.parse().ok()))
    })
}

fn system() -> Value {
    let (distribution, distribution_version) = os_release();
    let is_docker = std::path::Path::new("/.dockerenv").exists();
    json!({
        "distribution": distribution,
        "distribution_version": distribution_version,
        "is_docker": is_docker,
        "container_runtime": if is_docker { "docker" } else { "none" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "ram_size": mem_total_kib(),
        "cpu_flags": cpu_flags(),
        "cpu_endian": if cfg!(target_endian = "little") { "little" } else { "big" },
    })
}

/// Qdrant's `MemoryTelemetry`, filled from `/proc` (this server has no allocator statistics):
/// active and allocated = anonymous resident memory, resident = RSS, retained = virtual size.
fn memory() -> Value {
    let p = process_stats();
    let anon = p.resident_anon_bytes.or(p.resident_bytes).unwrap_or(0);
    json!({
        "active_bytes": anon,
        "allocated_bytes": anon,
        "metadata_bytes": 0,
        "resident_bytes": p.resident_bytes.unwrap_or(0),
        "retained_bytes": p.virtual_bytes.unwrap_or(0),
    })
}

/// `requests.rest.responses`: `"METHOD /route"` → status code → statistics.
fn rest_requests() -> Value {
    json!({ "rest": { "responses": responses(global().rest_snapshot(), true) },
            "grpc": { "responses": responses(global().grpc_snapshot(), false) } })
}

/// Figures by endpoint (`METHOD /path` for REST, the method path for gRPC), then status code.
fn responses(figures: Vec<(RestKey, RestStats)>, rest: bool) -> Map<String, Value> {
    let mut responses: Map<String, Value> = Map::new();
    for (k, s) in figures {
        let name = if rest { format!("{} {}", k.method, k.endpoint) } else { k.endpoint.clone() };
        let failed = if rest { RestStats::failed(&k) } else { k.status != 0 };
        let entry = responses.entry(name).or_insert_with(|| json!({}));
        let micros = |secs: f64| secs * 1e6;
        entry[k.status.to_string()] = json!({
            "count": s.count,
            "fail_count": if failed { s.count } else { 0 },
            "avg_duration_micros": micros(s.sum_seconds / s.count.max(1) as f64),
            "min_duration_micros": micros(if s.min_seconds.is_finite() { s.min_seconds } else { 0.0 }),
            "max_duration_micros": micros(s.max_seconds),
            "total_duration_micros": micros(s.sum_seconds) as u64,
            "last_responded": s.last_responded.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
    }
    responses
}

fn collection_telemetry(c: &CollectionView, level: usize, anonymize: bool) -> Value {
    let name = |n: &str| if anonymize { anonymize_name(n) } else { n.to_string() };
    let vectors: Map<String, Value> = c.vectors.iter().map(|(v, n)| (name(v), json!(n))).collect();
    let mut t = json!({
        "id": name(&c.name),
        "status": c.status,
        "points_count": c.points,
        "indexed_vectors_count": c.indexed_vectors,
        "segments_count": c.segments,
        "vectors_count_by_name": vectors,
        "ram_bytes": { "vectors": c.ram_vectors(), "payload": c.ram_payload(), "index": c.ram_index() },
        "disk_bytes": c.disk(),
        "running_optimizations": c.running_optimizations,
    });
    if let (Some(p), false) = (&c.problem, anonymize) {
        t["problem"] = json!(p);
    }
    if level >= 2 {
        if let Some(cfg) = &c.config {
            t["config"] = config_telemetry(cfg, anonymize);
        }
        let optimized: usize = c
            .optimizations
            .as_ref()
            .and_then(|o| o["completed"].as_array())
            .map(|done| done.iter().filter_map(|d| d["points"].as_u64()).sum::<u64>() as usize)
            .unwrap_or(0);
        let shards: Vec<Value> = c
            .shards
            .iter()
            .map(|s| {
                let status = if s.optimizer_error.is_some() {
                    "red"
                } else if s.optimizing {
                    "yellow"
                } else {
                    "green"
                };
                let mut local = json!({
                    "variant_name": "local_shard",
                    "status": status,
                    "total_optimized_points": if c.shards.len() == 1 { optimized } else { 0 },
                    "vectors_size_bytes": s.ram_vectors_bytes,
                    "payloads_size_bytes": s.payload_data_bytes,
                    "num_points": s.points_count,
                    "points_count": s.points_count,
                    "indexed_vectors_count": s.indexed_vectors_count,
                    "segments_count": s.segments_count,
                    "ram_vectors_bytes": s.ram_vectors_bytes,
                    "ram_payload_bytes": s.ram_payload_bytes,
                    "ram_index_bytes": s.ram_index_bytes,
                    "disk_bytes": s.disk_bytes,
                    "last_operation_id": s.last_operation_id,
                    "optimizing": s.optimizing,
                });
                if let (Some(e), false) = (&s.optimizer_error, anonymize) {
                    local["optimizer_error"] = json!(e);
                }
                json!({ "id": s.shard_id, "local": local, "remote": [], "replicate_states": {} })
            })
            .collect();
        t["shards"] = json!(shards);
    }
    if level >= 3 {
        if let Some(o) = &c.optimizations {
            t["optimizations"] = o.clone();
        }
    }
    t
}

/// Qdrant's `CollectionConfigTelemetry`: the collection config (vector names hashed when
/// anonymized).
fn config_telemetry(cfg: &CollectionConfig, anonymize: bool) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    if anonymize {
        if let Some(Value::Object(vectors)) = v.get_mut("params").and_then(|p| p.get_mut("vectors")) {
            // A map of named vectors (a single unnamed vector has `size` at this level).
            if !vectors.contains_key("size") {
                let renamed: Map<String, Value> =
                    std::mem::take(vectors).into_iter().map(|(k, val)| (anonymize_name(&k), val)).collect();
                *vectors = renamed;
            }
        }
    }
    v
}

/// `GET /telemetry`.
pub async fn telemetry(state: State, Params(p): Params<TelemetryParams>) -> ApiResult {
    let t = Instant::now();
    let level = p.details_level.unwrap_or(0);
    let anonymize = p.anonymize.unwrap_or(false);
    let reg = state.registry.clone();
    let rocksdb = state.settings.storage.backend.eq_ignore_ascii_case("rocksdb");
    let collections = blocking(move || {
        let opts = GatherOptions { vectors: level >= 1, optimizations: level >= 2 };
        Ok(if level >= 1 { gather(&reg, opts) } else { Vec::new() })
    })
    .await?;
    let number = if level >= 1 { collections.len() } else { state.registry.list().len() };
    let mut app = json!({
        "name": "qdrant",
        "version": VERSION,
        "features": {
            "debug": cfg!(debug_assertions),
            "service_debug_feature": false,
            "recovery_mode": false,
            "gpu": false,
            "rocksdb": rocksdb,
            "staging": false,
        },
        "jwt_rbac": false,
        "startup": startup(),
    });
    let mut result = json!({
        "id": global().instance_id,
        "app": app.clone(),
        "collections": { "number_of_collections": number },
        "cluster": cluster_telemetry(&state),
        "requests": rest_requests(),
        "memory": memory(),
    });
    if level >= 1 {
        app["system"] = system();
        result["app"] = app;
        result["collections"]["collections"] =
            json!(collections.iter().map(|c| collection_telemetry(c, level, anonymize)).collect::<Vec<_>>());
    }
    Ok(ok(t, result))
}

/// Qdrant's `cluster` telemetry: whether cluster mode is on and, when it is, this peer's view.
fn cluster_telemetry(state: &super::AppState) -> Value {
    match &state.cluster {
        None => json!({ "enabled": false }),
        Some(node) => {
            let s = node.status();
            json!({
                "enabled": true,
                "status": {
                    "number_of_peers": s.peers.len(),
                    "term": s.raft_info.term,
                    "commit": s.raft_info.commit,
                    "pending_operations": s.raft_info.pending_operations,
                    "role": s.raft_info.role,
                    "is_voter": s.raft_info.is_voter,
                    "peer_id": s.peer_id,
                    "consensus_thread_status": { "consensus_thread_status": "working" },
                },
            })
        }
    }
}

/// Problems an operator should act on, derived from the current state: collections that
/// failed to load and failed optimizers.
fn current_issues(views: &[CollectionView]) -> Vec<Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut issues = Vec::new();
    for c in views {
        if c.status == "red" && c.shards.is_empty() {
            issues.push(json!({
                "id": format!("COLLECTION_DAMAGED/{}", c.name),
                "description": format!(
                    "Collection `{}` could not be loaded: {}",
                    c.name,
                    c.problem.as_deref().unwrap_or("unknown reason")
                ),
                "solution": { "refactor": "Check the server log; recover the collection from a snapshot, or delete it." },
                "timestamp": now,
                "related_collection": c.name,
            }));
        }
        for s in &c.shards {
            if let Some(e) = &s.optimizer_error {
                issues.push(json!({
                    "id": format!("OPTIMIZER_FAILED/{}/{}", c.name, s.shard_id),
                    "description": format!("Optimizer of collection `{}` shard {} failed: {e}", c.name, s.shard_id),
                    "solution": { "refactor": "Check the server log and free disk space; the optimizer retries after the next write." },
                    "timestamp": now,
                    "related_collection": c.name,
                }));
            }
        }
    }
    issues
}

/// `GET /issues`.
pub async fn issues(state: State) -> ApiResult {
    let t = Instant::now();
    let reg = state.registry.clone();
    let views = blocking(move || Ok(gather(&reg, GatherOptions::default()))).await?;
    Ok(ok(t, json!({ "issues": current_issues(&views) })))
}

/// `DELETE /issues`: issues here are derived from the current state, so there is nothing
/// stored to clear; answers `true` as Qdrant does.
pub async fn clear_issues() -> ApiResult {
    let t = Instant::now();
    Ok(ok(t, true))
}
