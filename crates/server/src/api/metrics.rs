//! Monitoring: `GET /metrics` in the Prometheus text format (0.0.4), the request-metrics
//! middleware (counts and latency histograms per REST endpoint and status code, plus request
//! logging at debug level), process figures read from `/proc`, and a small public API other
//! parts of the server call to report snapshot activity ([`snapshot_started`],
//! [`record_snapshot`]).
//!
//! Metric names follow Qdrant's where it has them (`app_info`, `collections_total`,
//! `collections_vector_total`, `collection_points`, `collection_vectors`,
//! `collection_running_optimizations`, `rest_responses_*`, `snapshot_*`, `process_*`,
//! `memory_resident_bytes`); figures beyond Qdrant's (RAM and disk per collection, points per
//! shard, status) use Prometheus conventions: base units in the name, `_total` only on counters.
//! Everything is hand-written text exposition: no metrics crate.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use qd_collection::operations::ShardStats;
use qd_collection::Registry;
use qd_core::config::CollectionConfig;
use serde::Deserialize;
use serde_json::Value;

use super::response::{ApiResult, Params};
use super::service::VERSION;
use super::{blocking, State};

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `endpoint` label of requests no route matched (kept apart so random URLs cannot create
/// new series).
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Upper bounds (seconds) of the REST latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

// ---------------------------------------------------------------------------------------------
// The process-wide registry of counters
// ---------------------------------------------------------------------------------------------

/// Counters kept by this process since it started (reset on restart, as in Qdrant).
pub struct Metrics {
    /// Telemetry id of this process.
    pub instance_id: String,
    rest: Mutex<HashMap<RestKey, RestStats>>,
    /// gRPC responses by method path and status code (the key's `method` is empty, `status`
    /// is the gRPC code: 0 is OK).
    grpc: Mutex<HashMap<RestKey, RestStats>>,
    snapshots: Mutex<BTreeMap<(SnapshotKind, String), SnapshotCounters>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RestKey {
    pub method: String,
    pub endpoint: String,
    pub status: u16,
}

/// Figures of one (method, endpoint, status).
#[derive(Debug, Clone)]
pub struct RestStats {
    pub count: u64,
    pub sum_seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub last_responded: chrono::DateTime<chrono::Utc>,
}

impl RestStats {
    pub fn failed(key: &RestKey) -> bool {
        key.status >= 400
    }

    /// Add another set of figures of the same endpoint (other status codes) into these.
    fn merge(&mut self, o: &RestStats) {
        self.count += o.count;
        self.sum_seconds += o.sum_seconds;
        self.min_seconds = self.min_seconds.min(o.min_seconds);
        self.max_seconds = self.max_seconds.max(o.max_seconds);
        for (b, x) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *b += x;
        }
        self.last_responded = self.last_responded.max(o.last_responded);
    }
}

/// What a snapshot operation was; the label `kind` of the snapshot metrics.
#[allow(dead_code)] // the snapshot API below is called by the snapshot handlers
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotKind {
    Create,
    Restore,
    Upload,
    Download,
    Delete,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Create => "create",
            SnapshotKind::Restore => "restore",
            SnapshotKind::Upload => "upload",
            SnapshotKind::Download => "download",
            SnapshotKind::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SnapshotCounters {
    running: u64,
    succeeded: u64,
    failed: u64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    instance_id: uuid::Uuid::new_v4().to_string(),
    rest: Mutex::new(HashMap::new()),
    grpc: Mutex::new(HashMap::new()),
    snapshots: Mutex::new(BTreeMap::new()),
});

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

#[allow(dead_code)] // snapshot_* are called by the snapshot handlers
impl Metrics {
    /// Count one REST response.
    pub fn record_rest(&self, method: &str, endpoint: &str, status: u16, elapsed: Duration) {
        let key = RestKey { method: method.to_string(), endpoint: endpoint.to_string(), status };
        Self::record(&self.rest, key, elapsed);
    }

    /// Count one gRPC response: `endpoint` is the method path, `code` the gRPC status code.
    pub fn record_grpc(&self, endpoint: &str, code: u16, elapsed: Duration) {
        let key = RestKey { method: String::new(), endpoint: endpoint.to_string(), status: code };
        Self::record(&self.grpc, key, elapsed);
    }

    fn record(map: &Mutex<HashMap<RestKey, RestStats>>, key: RestKey, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        let mut map = map.lock();
        let s = map.entry(key).or_insert_with(|| RestStats {
            count: 0,
            sum_seconds: 0.0,
            min_seconds: f64::INFINITY,
            max_seconds: 0.0,
            buckets: [0; LATENCY_BUCKETS.len() + 1],
            last_responded: chrono::Utc::now(),
        });
        s.count += 1;
        s.sum_seconds += secs;
        s.min_seconds = s.min_seconds.min(secs);
        s.max_seconds = s.max_seconds.max(secs);
        s.buckets[bucket] += 1;
        s.last_responded = chrono::Utc::now();
    }

    /// Every REST figure so far, sorted by method, endpoint and status.
    pub fn rest_snapshot(&self) -> Vec<(RestKey, RestStats)> {
        Self::sorted(&self.rest)
    }

    /// Every gRPC figure so far, sorted by endpoint and code.
    pub fn grpc_snapshot(&self) -> Vec<(RestKey, RestStats)> {
        Self::sorted(&self.grpc)
    }

    fn sorted(map: &Mutex<HashMap<RestKey, RestStats>>) -> Vec<(RestKey, RestStats)> {
        let mut v: Vec<_> = map.lock().iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn snapshot_begin(&self, kind: SnapshotKind, collection: &str) {
        self.snapshots.lock().entry((kind, collection.to_string())).or_default().running += 1;
    }

    fn snapshot_end(&self, kind: SnapshotKind, collection: &str, ok: bool, was_running: bool) {
        let mut map = self.snapshots.lock();
        let c = map.entry((kind, collection.to_string())).or_default();
        if was_running {
            c.running = c.running.saturating_sub(1);
        }
        if ok {
            c.succeeded += 1;
        } else {
            c.failed += 1;
        }
    }
}

/// Marks a snapshot operation as running until it is finished with [`SnapshotGuard::success`]
/// or [`SnapshotGuard::failure`]; dropping it unfinished (an early `?` return, a panic) counts
/// a failure.
#[allow(dead_code)]
#[must_use = "the operation counts as running until the guard is finished or dropped"]
pub struct SnapshotGuard {
    kind: SnapshotKind,
    collection: String,
    done: bool,
}

#[allow(dead_code)]
impl SnapshotGuard {
    pub fn success(mut self) {
        self.finish(true);
    }

    pub fn failure(mut self) {
        self.finish(false);
    }

    fn finish(&mut self, ok: bool) {
        if !self.done {
            self.done = true;
            global().snapshot_end(self.kind, &self.collection, ok, true);
        }
    }
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// Report that a snapshot operation on `collection` started (use the collection's name; for a
/// whole-storage snapshot pass an empty string). The running gauges
/// (`snapshot_creation_running`, `snapshot_recovery_running`, `snapshot_operations_running`)
/// count it until the returned guard is finished.
///
/// ```ignore
/// let guard = metrics::snapshot_started(SnapshotKind::Create, &name);
/// let result = create_snapshot(...);
/// if result.is_ok() { guard.success() } else { guard.failure() }
/// ```
#[allow(dead_code)]
pub fn snapshot_started(kind: SnapshotKind, collection: &str) -> SnapshotGuard {
    global().snapshot_begin(kind, collection);
    SnapshotGuard { kind, collection: collection.to_string(), done: false }
}

/// Report a finished snapshot operation that was not tracked with [`snapshot_started`] (a
/// download, a delete).
#[allow(dead_code)]
pub fn record_snapshot(kind: SnapshotKind, collection: &str, ok: bool) {
    global().snapshot_end(kind, collection, ok, false);
}

// ---------------------------------------------------------------------------------------------
// Request middleware
// ---------------------------------------------------------------------------------------------

/// Middleware: time every request, count it under its route template (axum's `MatchedPath`,
/// never the raw URI) and status code, and log it at debug level.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let endpoint = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let endpoint = endpoint.unwrap_or_else(|| UNMATCHED_ENDPOINT.to_string());
    global().record_rest(method.as_str(), &endpoint, status, elapsed);
    tracing::debug!(
        method = %method,
        endpoint = %endpoint,
        path = %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Collection figures (shared with telemetry, issues)
// ---------------------------------------------------------------------------------------------

/// What monitoring needs to know about one collection, measured now.
#[derive(Debug, Clone)]
pub struct CollectionView {
    pub name: String,
    /// green / yellow / red / grey (loading).
    pub status: &'static str,
    /// Why the collection is red or grey: load failure or optimizer error.
    pub problem: Option<String>,
    pub points: usize,
    pub indexed_vectors: usize,
    pub segments: usize,
    /// Stored vectors per vector name (`""` is the unnamed vector); measured when asked for.
    pub vectors: Vec<(String, usize)>,
    pub shards: Vec<ShardStats>,
    pub running_optimizations: usize,
    pub config: Option<CollectionConfig>,
    /// `GET /collections/{name}/optimizations`, when asked for.
    pub optimizations: Option<Value>,
}

impl CollectionView {
    pub fn ram_vectors(&self) -> usize {
        self.shards.iter().map(|s| s.ram_vectors_bytes).sum()
    }
    pub fn ram_payload(&self) -> usize {
        self.shards.iter().map(|s| s.ram_payload_bytes).sum()
    }
    pub fn ram_index(&self) -> usize {
        self.shards.iter().map(|s| s.ram_index_bytes).sum()
    }
    pub fn disk(&self) -> u64 {
        self.shards.iter().map(|s| s.disk_bytes).sum()
    }
}

/// How much [`gather`] measures.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatherOptions {
    /// Stored vectors per name (read from the shards' counters).
    pub vectors: bool,
    pub optimizations: bool,
}

/// Figures of every collection (blocking: reads shard state and sizes files).
pub fn gather(registry: &Registry, opts: GatherOptions) -> Vec<CollectionView> {
    let mut out = Vec::new();
    for name in registry.list() {
        match registry.get(&name) {
            Ok(c) => {
                let shard_set = c.shards();
                let shards: Vec<ShardStats> = shard_set.iter().map(|s| s.stats()).collect();
                let running = shard_set.iter().filter(|s| s.optimizations().0.is_some()).count();
                let error = shards.iter().find_map(|s| s.optimizer_error.clone());
                let status = if error.is_some() {
                    "red"
                } else if shards.iter().any(|s| s.optimizing) {
                    "yellow"
                } else {
                    "green"
                };
                let config = c.config();
                // From counters the shards keep on write (a scrape scans nothing).
                let vectors = if opts.vectors {
                    let held = |v: &str| shards.iter().map(|s| s.vectors_count.get(v).copied().unwrap_or(0)).sum();
                    config.params.vectors.iter().map(|(v, _)| (v.to_string(), held(v))).collect()
                } else {
                    Vec::new()
                };
                out.push(CollectionView {
                    name,
                    status,
                    problem: error,
                    points: shards.iter().map(|s| s.points_count).sum(),
                    indexed_vectors: shards.iter().map(|s| s.indexed_vectors_count).sum(),
                    segments: shards.iter().map(|s| s.segments_count).sum(),
                    vectors,
                    running_optimizations: running,
                    shards,
                    config: Some(config),
                    optimizations: opts.optimizations.then(|| c.optimizations()),
                });
            }
            Err(_) => {
                // Loading or damaged: the registry reports it without touching shards.
                let (status, problem, config) = match registry.info(&name) {
                    Ok(info) => {
                        let problem = info.warnings.first().and_then(|w| w["message"].as_str().map(str::to_string));
                        (info.status, problem, Some(info.config))
                    }
                    Err(qd_collection::CollectionError::NotFound(_)) => continue, // deleted meanwhile
                    Err(e) => ("red", Some(e.to_string()), None),
                };
                out.push(CollectionView {
                    name,
                    status,
                    problem,
                    points: 0,
                    indexed_vectors: 0,
                    segments: 0,
                    vectors: Vec::new(),
                    shards: Vec::new(),
                    running_optimizations: 0,
                    config,
                    optimizations: None,
                });
            }
        }
    }
    out
}

/// A stable, non-reversible stand-in for a name (FNV-1a 64), for `anonymize=true`; the empty
/// name (the unnamed vector) stays empty.
pub fn anonymize_name(name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

// ---------------------------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------------------------

/// Figures of this process from `/proc` (Linux); `None` where unavailable.
#[derive(Debug, Clone, Default)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub resident_anon_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub minor_faults: Option<u64>,
    pub major_faults: Option<u64>,
    /// Unix time the process started.
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

fn kb_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
}

pub fn process_stats() -> ProcessStats {
    let mut p = ProcessStats::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        p.resident_bytes = kb_field(&status, "VmRSS").map(|k| k * 1024);
        p.resident_anon_bytes = kb_field(&status, "RssAnon").map(|k| k * 1024);
        p.virtual_bytes = kb_field(&status, "VmSize").map(|k| k * 1024);
        p.threads = kb_field(&status, "Threads");
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; `rest[0]` is field 3 (state).
        if let Some((_, after)) = stat.rsplit_once(')') {
            let rest: Vec<&str> = after.split_whitespace().collect();
            let num = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok());
            p.minor_faults = num(7);
            p.major_faults = num(9);
            if let (Some(u), Some(s)) = (num(11), num(12)) {
                p.cpu_seconds = Some((u + s) as f64 / CLOCK_TICKS);
            }
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<u64>().ok())
            });
            if let (Some(start), Some(boot)) = (num(19), boot) {
                p.start_time_seconds = Some(boot as f64 + start as f64 / CLOCK_TICKS);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        p.open_fds = Some((dir.count() as u64).saturating_sub(1));
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        p.max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok());
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Text exposition
// ---------------------------------------------------------------------------------------------

/// Writer of the Prometheus text format: `# HELP`, `# TYPE`, then samples.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// Escape a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escape HELP text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format spells it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The whole `/metrics` text.
pub fn render(registry: &Registry, anonymize: bool, cluster: Option<&qd_cluster::ClusterStatus>) -> String {
    let collections = gather(registry, GatherOptions { vectors: true, optimizations: false });
    let name_of = |n: &str| if anonymize { anonymize_name(n) } else { n.to_string() };
    let mut e = Exposition::default();

    // --- application
    e.family("app_info", "gauge", "information about qdrant server");
    e.sample("app_info", &[("name", "qdrant"), ("version", VERSION)], 1.0);
    e.single("app_status_recovery_mode", "gauge", "features enabled in qdrant server", 0.0);
    e.single("cluster_enabled", "gauge", "is cluster support enabled", if cluster.is_some() { 1.0 } else { 0.0 });
    if let Some(c) = cluster {
        let r = &c.raft_info;
        e.single("cluster_peers_total", "gauge", "total number of cluster peers", c.peers.len() as f64);
        e.single("cluster_term", "counter", "current cluster term", r.term as f64);
        e.single(
            "cluster_commit",
            "counter",
            "index of last committed (finalized) operation cluster peer is aware of",
            r.commit as f64,
        );
        e.single(
            "cluster_pending_operations_total",
            "gauge",
            "total number of pending operations for cluster peer",
            r.pending_operations as f64,
        );
        e.single("cluster_voter", "gauge", "is cluster peer a voter or learner", if r.is_voter { 1.0 } else { 0.0 });
    }

    // --- collections (Qdrant's names)
    e.single("collections_total", "gauge", "number of collections", collections.len() as f64);
    let vectors_total: usize = collections.iter().flat_map(|c| c.vectors.iter().map(|(_, n)| *n)).sum();
    e.single("collections_vector_total", "gauge", "total number of vectors in all collections", vectors_total as f64);
    e.family("collection_points", "gauge", "number of points per collection");
    for c in &collections {
        e.sample("collection_points", &[("id", &name_of(&c.name))], c.points as f64);
    }
    e.family("collection_vectors", "gauge", "number of stored vectors per collection and vector name");
    for c in &collections {
        for (v, n) in &c.vectors {
            e.sample("collection_vectors", &[("collection", &name_of(&c.name)), ("vector", v)], *n as f64);
        }
    }
    e.family(
        "collection_running_optimizations",
        "gauge",
        "number of currently running optimization tasks per collection",
    );
    for c in &collections {
        e.sample("collection_running_optimizations", &[("id", &name_of(&c.name))], c.running_optimizations as f64);
    }

    // --- collections (beyond Qdrant: measured sizes, shards, status)
    e.family("collection_indexed_vectors", "gauge", "number of vectors in built vector indexes per collection");
    for c in &collections {
        e.sample("collection_indexed_vectors", &[("collection", &name_of(&c.name))], c.indexed_vectors as f64);
    }
    e.family("collection_segments", "gauge", "number of segments per collection");
    for c in &collections {
        e.sample("collection_segments", &[("collection", &name_of(&c.name))], c.segments as f64);
    }
    e.family("collection_shard_points", "gauge", "number of points per shard");
    for c in &collections {
        for s in &c.shards {
            let shard = s.shard_id.to_string();
            e.sample(
                "collection_shard_points",
                &[("collection", &name_of(&c.name)), ("shard", &shard)],
                s.points_count as f64,
            );
        }
    }
    e.family(
        "collection_ram_bytes",
        "gauge",
        "measured RAM used per collection by vectors, payloads and vector indexes",
    );
    for c in &collections {
        let n = name_of(&c.name);
        e.sample("collection_ram_bytes", &[("collection", &n), ("kind", "vectors")], c.ram_vectors() as f64);
        e.sample("collection_ram_bytes", &[("collection", &n), ("kind", "payload")], c.ram_payload() as f64);
        e.sample("collection_ram_bytes", &[("collection", &n), ("kind", "index")], c.ram_index() as f64);
    }
    e.family("collection_disk_bytes", "gauge", "measured disk space used by the storage backend per collection");
    for c in &collections {
        e.sample("collection_disk_bytes", &[("collection", &name_of(&c.name))], c.disk() as f64);
    }
    e.family("collection_status", "gauge", "collection status: 1 for the current one of green, yellow, grey, red");
    for c in &collections {
        let n = name_of(&c.name);
        for st in ["green", "yellow", "grey", "red"] {
            e.sample("collection_status", &[("collection", &n), ("status", st)], f64::from(u8::from(c.status == st)));
        }
    }
    e.family("collection_optimizer_failed", "gauge", "1 when an optimizer of the collection failed");
    for c in &collections {
        let failed = c.shards.iter().any(|s| s.optimizer_error.is_some());
        e.sample("collection_optimizer_failed", &[("collection", &name_of(&c.name))], f64::from(u8::from(failed)));
    }

    // --- REST requests
    let rest = global().rest_snapshot();
    e.family("rest_responses_total", "counter", "total number of responses through REST API");
    for (k, s) in &rest {
        let status = k.status.to_string();
        e.sample(
            "rest_responses_total",
            &[("method", &k.method), ("endpoint", &k.endpoint), ("status", &status)],
            s.count as f64,
        );
    }
    e.family("rest_responses_fail_total", "counter", "total number of failed responses through REST API");
    for (k, s) in &rest {
        let status = k.status.to_string();
        let fails = if RestStats::failed(k) { s.count } else { 0 };
        e.sample(
            "rest_responses_fail_total",
            &[("method", &k.method), ("endpoint", &k.endpoint), ("status", &status)],
            fails as f64,
        );
    }
    for (name, help, pick) in [
        (
            "rest_responses_avg_duration_seconds",
            "average response duration in REST API",
            (|s: &RestStats| s.sum_seconds / s.count.max(1) as f64) as fn(&RestStats) -> f64,
        ),
        ("rest_responses_min_duration_seconds", "minimum response duration in REST API", |s: &RestStats| s.min_seconds),
        ("rest_responses_max_duration_seconds", "maximum response duration in REST API", |s: &RestStats| s.max_seconds),
    ] {
        e.family(name, "gauge", help);
        for (k, s) in &rest {
            let status = k.status.to_string();
            e.sample(name, &[("method", &k.method), ("endpoint", &k.endpoint), ("status", &status)], pick(s));
        }
    }
    e.family("rest_responses_duration_seconds", "histogram", "response duration histogram in REST API");
    for (k, s) in &rest {
        let status = k.status.to_string();
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += s.buckets[i];
            let le = format_value(*bound);
            e.sample(
                "rest_responses_duration_seconds_bucket",
                &[("method", &k.method), ("endpoint", &k.endpoint), ("status", &status), ("le", &le)],
                cumulative as f64,
            );
        }
        e.sample(
            "rest_responses_duration_seconds_bucket",
            &[("method", &k.method), ("endpoint", &k.endpoint), ("status", &status), ("le", "+Inf")],
            s.count as f64,
        );
        let labels = [("method", k.method.as_str()), ("endpoint", k.endpoint.as_str()), ("status", status.as_str())];
        e.sample("rest_responses_duration_seconds_sum", &labels, s.sum_seconds);
        e.sample("rest_responses_duration_seconds_count", &labels, s.count as f64);
    }

    // --- gRPC requests (Qdrant's names: labelled by method path only)
    let mut grpc: BTreeMap<String, RestStats> = BTreeMap::new();
    let mut grpc_fails: BTreeMap<String, u64> = BTreeMap::new();
    for (k, s) in global().grpc_snapshot() {
        *grpc_fails.entry(k.endpoint.clone()).or_default() += if k.status != 0 { s.count } else { 0 };
        match grpc.get_mut(&k.endpoint) {
            Some(t) => t.merge(&s),
            None => {
                grpc.insert(k.endpoint.clone(), s);
            }
        }
    }
    e.family("grpc_responses_total", "counter", "total number of responses through gRPC API");
    for (endpoint, s) in &grpc {
        e.sample("grpc_responses_total", &[("endpoint", endpoint)], s.count as f64);
    }
    e.family("grpc_responses_fail_total", "counter", "total number of failed responses through gRPC API");
    for (endpoint, fails) in &grpc_fails {
        e.sample("grpc_responses_fail_total", &[("endpoint", endpoint)], *fails as f64);
    }
    for (name, help, pick) in [
        (
            "grpc_responses_avg_duration_seconds",
            "average response duration in gRPC API",
            (|s: &RestStats| s.sum_seconds / s.count.max(1) as f64) as fn(&RestStats) -> f64,
        ),
        ("grpc_responses_min_duration_seconds", "minimum response duration in gRPC API", |s: &RestStats| s.min_seconds),
        ("grpc_responses_max_duration_seconds", "maximum response duration in gRPC API", |s: &RestStats| s.max_seconds),
    ] {
        e.family(name, "gauge", help);
        for (endpoint, s) in &grpc {
            e.sample(name, &[("endpoint", endpoint)], pick(s));
        }
    }

    // --- snapshots
    let snaps: Vec<((SnapshotKind, String), SnapshotCounters)> =
        global().snapshots.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
    for (name, help, kind) in [
        ("snapshot_creation_running", "number of snapshot creations in progress", SnapshotKind::Create),
        ("snapshot_recovery_running", "number of snapshot recoveries in progress", SnapshotKind::Restore),
    ] {
        e.family(name, "gauge", help);
        for ((k, coll), c) in &snaps {
            if *k == kind {
                e.sample(name, &[("id", &name_of(coll))], c.running as f64);
            }
        }
    }
    e.family("snapshot_created_total", "counter", "number of snapshots created");
    for ((k, coll), c) in &snaps {
        if *k == SnapshotKind::Create {
            e.sample("snapshot_created_total", &[("id", &name_of(coll))], c.succeeded as f64);
        }
    }
    e.family("snapshot_operations_running", "gauge", "snapshot operations in progress by kind");
    for ((k, coll), c) in &snaps {
        e.sample(
            "snapshot_operations_running",
            &[("collection", &name_of(coll)), ("kind", k.as_str())],
            c.running as f64,
        );
    }
    e.family("snapshot_operations_total", "counter", "finished snapshot operations by kind and outcome");
    for ((k, coll), c) in &snaps {
        let n = name_of(coll);
        e.sample(
            "snapshot_operations_total",
            &[("collection", &n), ("kind", k.as_str()), ("outcome", "ok")],
            c.succeeded as f64,
        );
        e.sample(
            "snapshot_operations_total",
            &[("collection", &n), ("kind", k.as_str()), ("outcome", "failed")],
            c.failed as f64,
        );
    }

    // --- process
    let p = process_stats();
    let mut opt = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            e.single(name, kind, help, v);
        }
    };
    opt(
        "memory_resident_bytes",
        "gauge",
        "resident memory of the process in bytes",
        p.resident_bytes.map(|v| v as f64),
    );
    opt("process_resident_memory_bytes", "gauge", "resident memory size in bytes", p.resident_bytes.map(|v| v as f64));
    opt("process_virtual_memory_bytes", "gauge", "virtual memory size in bytes", p.virtual_bytes.map(|v| v as f64));
    opt("process_open_fds", "gauge", "number of open file descriptors", p.open_fds.map(|v| v as f64));
    opt("process_max_fds", "gauge", "maximum number of open file descriptors", p.max_fds.map(|v| v as f64));
    opt("process_threads", "gauge", "number of OS threads used by the process", p.threads.map(|v| v as f64));
    opt("process_cpu_seconds_total", "counter", "total user and system CPU time spent in seconds", p.cpu_seconds);
    opt(
        "process_minor_page_faults_total",
        "counter",
        "count of minor page faults which didn't require disk access",
        p.minor_faults.map(|v| v as f64),
    );
    opt(
        "process_major_page_faults_total",
        "counter",
        "count of disk accesses caused by a mmap page fault",
        p.major_faults.map(|v| v as f64),
    );
    opt(
        "process_start_time_seconds",
        "gauge",
        "start time of the process since unix epoch in seconds",
        p.start_time_seconds,
    );
    e.finish()
}

// ---------------------------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct MetricsParams {
    #[serde(default)]
    pub anonymize: Option<bool>,
    #[allow(dead_code)] // accepted as Qdrant does
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `GET /metrics`.
pub async fn metrics(state: State, Params(p): Params<MetricsParams>) -> ApiResult {
    let reg = state.registry.clone();
    let anonymize = p.anonymize.unwrap_or(false);
    let cluster = state.cluster.as_ref().map(|c| c.status());
    let text = blocking(move || Ok(render(&reg, anonymize, cluster.as_ref()))).await?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping_and_values() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.0005), "0.0005");
        let mut e = Exposition::default();
        e.family("x_total", "counter", "help with \\ and\nnewline");
        e.sample("x_total", &[("endpoint", "/collections/{name}")], 2.0);
        assert_eq!(
            e.finish(),
            "# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\nx_total{endpoint=\"/collections/{name}\"} 2\n"
        );
    }

    #[test]
    fn histogram_buckets() {
        let m = Metrics {
            instance_id: String::new(),
            rest: Mutex::new(HashMap::new()),
            grpc: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(BTreeMap::new()),
        };
        m.record_rest("GET", "/a", 200, Duration::from_micros(300));
        m.record_rest("GET", "/a", 200, Duration::from_millis(30));
        m.record_rest("GET", "/a", 200, Duration::from_secs(20));
        m.record_grpc("/qdrant.Points/Query", 0, Duration::from_millis(2));
        m.record_grpc("/qdrant.Points/Query", 3, Duration::from_millis(4));
        let grpc = m.grpc_snapshot();
        assert_eq!(grpc.iter().map(|(k, s)| (k.status, s.count)).collect::<Vec<_>>(), vec![(0, 1), (3, 1)]);
        let mut total = grpc[0].1.clone();
        total.merge(&grpc[1].1);
        assert_eq!((total.count, total.max_seconds), (2, 0.004));
        let (_, s) = &m.rest_snapshot()[0];
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], 1, "0.3 ms in the first bucket");
        assert_eq!(s.buckets[6], 1, "30 ms in the 50 ms bucket");
        assert_eq!(s.buckets[LATENCY_BUCKETS.len()], 1, "20 s only in +Inf");
    }

    #[test]
    fn snapshot_guard_counts() {
        let g = snapshot_started(SnapshotKind::Create, "unit-test-coll");
        assert_eq!(global().snapshots.lock()[&(SnapshotKind::Create, "unit-test-coll".to_string())].running, 1);
        g.success();
        drop(snapshot_started(SnapshotKind::Create, "unit-test-coll"));
        record_snapshot(SnapshotKind::Download, "unit-test-coll", true);
        let map = global().snapshots.lock();
        let c = map[&(SnapshotKind::Create, "unit-test-coll".to_string())];
        assert_eq!((c.running, c.succeeded, c.failed), (0, 1, 1));
        assert_eq!(map[&(SnapshotKind::Download, "unit-test-coll".to_string())].succeeded, 1);
    }

    #[test]
    fn proc_figures() {
        let p = process_stats();
        if cfg!(target_os = "linux") {
            assert!(p.resident_bytes.unwrap_or(0) > 0);
            assert!(p.open_fds.unwrap_or(0) > 0);
            assert!(p.threads.unwrap_or(0) >= 1);
            assert!(p.start_time_seconds.unwrap_or(0.0) > 1.0e9);
        }
        assert_eq!(anonymize_name("a"), anonymize_name("a"));
        assert_ne!(anonymize_name("a"), "a");
    }
}
