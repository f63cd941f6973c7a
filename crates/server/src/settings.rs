//! Server configuration, resolved the Qdrant way: defaults < YAML file < `QDRANT__SECTION__KEY`
//! environment variables < command-line flags.
//!
//! Every layer is merged as a JSON tree before one typed deserialisation, so a key means the
//! same thing wherever it is set. Keys this server does not know (a Qdrant config.yaml has
//! many) are ignored with a warning rather than refused.

use std::path::{Path, PathBuf};

use qd_core::config::{CollectionDefaults, HnswConfigDiff, OptimizersConfigDiff, WalConfigDiff};
use qd_storage::BackendKind;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Config file read when `--config-path` is not given (relative to the working directory, as
/// Qdrant does); missing is fine.
pub const DEFAULT_CONFIG_FILE: &str = "config/config.yaml";
const ENV_PREFIX: &str = "QDRANT__";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(default = "default_log_level", deserialize_with = "stringish")]
    pub log_level: String,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub service: ServiceSettings,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub cluster: ClusterSettings,
}

/// `cluster.*`: cluster mode (off by default), with Qdrant's keys.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub p2p: P2pSettings,
    #[serde(default)]
    pub consensus: ConsensusSettings,
}

/// `cluster.p2p.*`
#[derive(Debug, Clone, Deserialize)]
pub struct P2pSettings {
    /// Port peers talk to each other on (default 6335).
    #[serde(default = "default_p2p_port")]
    pub port: u16,
    /// Mutual TLS between peers (`tls.cert`/`tls.key` presented both ways, the other side's
    /// certificate checked against `tls.ca_cert`); peer URIs are then `https://`.
    #[serde(default)]
    pub enable_tls: bool,
}

impl Default for P2pSettings {
    fn default() -> Self {
        P2pSettings { port: default_p2p_port(), enable_tls: false }
    }
}

fn default_p2p_port() -> u16 {
    6335
}

/// `cluster.consensus.*`
#[derive(Debug, Clone, Deserialize)]
pub struct ConsensusSettings {
    /// Raft heartbeat period in milliseconds (Qdrant's default: 100).
    #[serde(default = "default_tick_ms")]
    pub tick_period_ms: u64,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        ConsensusSettings { tick_period_ms: default_tick_ms() }
    }
}

fn default_tick_ms() -> u64 {
    100
}

/// `tls.*`: certificate files, used when `service.enable_tls` or `cluster.p2p.enable_tls` is on
/// (Qdrant's keys and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct TlsSettings {
    #[serde(default = "default_tls_cert", deserialize_with = "path")]
    pub cert: PathBuf,
    #[serde(default = "default_tls_key", deserialize_with = "path")]
    pub key: PathBuf,
    /// CA of client certificates, for `service.verify_https_client_certificate`; with
    /// `cluster.p2p.enable_tls`, the CA every peer's certificate must be signed by.
    #[serde(default = "default_tls_ca_cert", deserialize_with = "path")]
    pub ca_cert: PathBuf,
    /// Seconds after which `cert` and `key` are read again (certificate rotation without a
    /// restart); unset or 0: read once at start-up.
    #[serde(default)]
    pub cert_ttl: Option<u64>,
}

fn default_tls_cert() -> PathBuf {
    PathBuf::from("./tls/cert.pem")
}
fn default_tls_key() -> PathBuf {
    PathBuf::from("./tls/key.pem")
}
fn default_tls_ca_cert() -> PathBuf {
    PathBuf::from("./tls/cacert.pem")
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings { cert: default_tls_cert(), key: default_tls_key(), ca_cert: default_tls_ca_cert(), cert_ttl: None }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    /// `sqlite` or `rocksdb` (this server's key; Qdrant has one engine).
    #[serde(default = "default_backend", deserialize_with = "stringish")]
    pub backend: String,
    #[serde(default = "default_storage_path", deserialize_with = "path")]
    pub storage_path: PathBuf,
    #[serde(default = "default_snapshots_path", deserialize_with = "path")]
    pub snapshots_path: PathBuf,
    #[serde(default)]
    pub optimizers: OptimizersConfigDiff,
    #[serde(default)]
    pub hnsw_index: HnswConfigDiff,
    #[serde(default)]
    pub wal: WalConfigDiff,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    #[serde(default = "default_host", deserialize_with = "stringish")]
    pub host: String,
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// gRPC port (default 6334); `null` in the config turns gRPC off.
    #[serde(default = "default_grpc_port", deserialize_with = "opt_port")]
    pub grpc_port: Option<u16>,
    #[serde(default = "default_max_request_size_mb")]
    pub max_request_size_mb: usize,
    #[serde(default, deserialize_with = "opt_stringish")]
    pub api_key: Option<String>,
    #[serde(default, deserialize_with = "opt_stringish")]
    pub read_only_api_key: Option<String>,
    /// Accept JSON Web Tokens signed (HS256) with `api_key` in place of a key (api/jwt.rs).
    #[serde(default)]
    pub jwt_rbac: bool,
    /// Answer CORS preflights and allow every origin (api/cors.rs); `false` sends no CORS
    /// headers. On by default, as in Qdrant.
    #[serde(default = "default_true")]
    pub enable_cors: bool,
    /// Serve REST and gRPC over TLS (`tls.cert`, `tls.key`).
    #[serde(default)]
    pub enable_tls: bool,
    /// Require client certificates signed by `tls.ca_cert` (mutual TLS).
    #[serde(default)]
    pub verify_https_client_certificate: bool,
    /// Seconds a REST connection (HTTP/1.1 or HTTP/2) may stay open with no request in flight
    /// before the server closes it (this server's setting; 0: never). HTTP/1.1 connections are also
    /// closed after 30 s without a request head. Long by default: some HTTP/2 clients (httpx)
    /// fail the next request on a connection closed while idle instead of reconnecting.
    #[serde(default = "default_idle_timeout_sec")]
    pub idle_timeout_sec: u64,
}

fn default_idle_timeout_sec() -> u64 {
    600
}

fn default_log_level() -> String {
    "INFO".into()
}
fn default_backend() -> String {
    "rocksdb".into()
}
fn default_storage_path() -> PathBuf {
    PathBuf::from("./storage")
}
fn default_snapshots_path() -> PathBuf {
    PathBuf::from("./snapshots")
}
fn default_host() -> String {
    "0.0.0.0".into()
}
fn default_http_port() -> u16 {
    6333
}
fn default_grpc_port() -> Option<u16> {
    Some(6334)
}
fn default_max_request_size_mb() -> usize {
    32
}
fn default_true() -> bool {
    true
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            backend: default_backend(),
            storage_path: default_storage_path(),
            snapshots_path: default_snapshots_path(),
            optimizers: Default::default(),
            hnsw_index: Default::default(),
            wal: Default::default(),
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            host: default_host(),
            http_port: default_http_port(),
            grpc_port: default_grpc_port(),
            max_request_size_mb: default_max_request_size_mb(),
            api_key: None,
            read_only_api_key: None,
            jwt_rbac: false,
            enable_cors: true,
            enable_tls: false,
            verify_https_client_certificate: false,
            idle_timeout_sec: default_idle_timeout_sec(),
        }
    }
}

/// Strings that arrive as numbers or booleans (from env vars or YAML) are taken as written.
fn stringish<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string, got {other}"))),
    }
}

fn opt_stringish<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("expected a string, got {other}"))),
    }
}

/// A port that may be turned off: `null` (in YAML, or `null`/empty from the environment).
fn opt_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() || s == "null" => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a port number, got {n}"))),
        other => Err(serde::de::Error::custom(format!("expected a port number or null, got {other}"))),
    }
}

fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    stringish(d).map(PathBuf::from)
}

/// Flags that override everything else (set only when given on the command line).
#[derive(Debug, Default, Clone)]
pub struct FlagOverrides {
    pub backend: Option<String>,
    pub storage_path: Option<PathBuf>,
    pub snapshots_path: Option<PathBuf>,
    pub http_port: Option<u16>,
    pub grpc_port: Option<u16>,
    pub host: Option<String>,
}

/// Set `tree[path...] = value`, creating objects on the way.
fn set_path(tree: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = tree;
    for key in init {
        let entry = cur.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        cur = next;
    }
    cur.insert(last.to_string(), value);
}

/// Deep-merge `over` into `base` (objects merge key by key, anything else replaces).
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// An environment value typed like YAML would type it (`7000` a number, `true` a bool).
fn env_value(raw: &str) -> Value {
    match serde_yaml::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        Ok(Value::Null) if raw.trim().is_empty() => Value::String(String::new()),
        _ => Value::String(raw.to_string()),
    }
}

impl Settings {
    /// Resolve settings from an optional explicit config file, the environment and flags.
    pub fn load(
        config_path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        flags: &FlagOverrides,
    ) -> Result<Settings, String> {
        let mut tree = Map::new();
        let file = match config_path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        if let Some(p) = file {
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("cannot read config file {}: {e}", p.display()))?;
            if !text.trim().is_empty() {
                let v: Value = serde_yaml::from_str(&text)
                    .map_err(|e| format!("config file {} is not valid YAML: {e}", p.display()))?;
                match v {
                    Value::Object(m) => merge(&mut tree, m),
                    Value::Null => {}
                    _ => return Err(format!("config file {} must hold a mapping of sections", p.display())),
                }
            }
        }
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix(ENV_PREFIX) {
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                set_path(&mut tree, &refs, env_value(&v));
            }
        }
        let f = flags;
        if let Some(b) = &f.backend {
            set_path(&mut tree, &["storage", "backend"], Value::String(b.clone()));
        }
        if let Some(p) = &f.storage_path {
            set_path(&mut tree, &["storage", "storage_path"], Value::String(p.display().to_string()));
        }
        if let Some(p) = &f.snapshots_path {
            set_path(&mut tree, &["storage", "snapshots_path"], Value::String(p.display().to_string()));
        }
        if let Some(p) = f.http_port {
            set_path(&mut tree, &["service", "http_port"], Value::from(p));
        }
        if let Some(p) = f.grpc_port {
            set_path(&mut tree, &["service", "grpc_port"], Value::from(p));
        }
        if let Some(h) = &f.host {
            set_path(&mut tree, &["service", "host"], Value::String(h.clone()));
        }
        let settings: Settings = serde_path_to_error::deserialize(Value::Object(tree))
            .map_err(|e| format!("invalid configuration at `{}`: {}", e.path(), e.inner()))?;
        settings.backend()?;
        Ok(settings)
    }

    pub fn backend(&self) -> Result<BackendKind, String> {
        self.storage.backend.parse::<BackendKind>().map_err(|e| e.to_string())
    }

    pub fn collection_defaults(&self) -> CollectionDefaults {
        let base = CollectionDefaults::default();
        CollectionDefaults {
            hnsw: self.storage.hnsw_index.apply(&base.hnsw),
            optimizers: self.storage.optimizers.apply(&base.optimizers),
            wal: self.storage.wal.apply(&base.wal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn defaults() {
        let s = Settings::load(Some(Path::new("/dev/null")), env(&[]), &FlagOverrides::default()).expect("load");
        assert_eq!(s.service.http_port, 6333);
        assert_eq!(s.service.host, "0.0.0.0");
        assert_eq!(s.storage.storage_path, PathBuf::from("./storage"));
        assert_eq!(s.backend(), Ok(BackendKind::Rocksdb));
        assert!(s.service.enable_cors);
        let off = env(&[("QDRANT__SERVICE__ENABLE_CORS", "false")]);
        let s = Settings::load(Some(Path::new("/dev/null")), off, &FlagOverrides::default()).expect("load");
        assert!(!s.service.enable_cors);
        assert!(!s.cluster.p2p.enable_tls);
        let on = env(&[("QDRANT__CLUSTER__P2P__ENABLE_TLS", "true")]);
        let s = Settings::load(Some(Path::new("/dev/null")), on, &FlagOverrides::default()).expect("load");
        assert!(s.cluster.p2p.enable_tls);
        assert_eq!(s.cluster.p2p.port, 6335);
    }

    #[test]
    fn precedence_flag_env_file_default() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "service:\n  http_port: 7001\n  host: 127.0.0.1\n  api_key: 12345\nstorage:\n  storage_path: /from/file\n  backend: sqlite\n  hnsw_index:\n    m: 32\ncluster:\n  enabled: false\n",
        )
        .expect("write");
        let s = Settings::load(Some(&file), env(&[]), &FlagOverrides::default()).expect("file");
        assert_eq!((s.service.http_port, s.service.api_key.as_deref()), (7001, Some("12345")));
        assert_eq!(s.backend(), Ok(BackendKind::Sqlite));
        assert_eq!(s.collection_defaults().hnsw.m, 32);

        let e = env(&[("QDRANT__SERVICE__HTTP_PORT", "7002"), ("QDRANT__STORAGE__STORAGE_PATH", "/from/env")]);
        let s = Settings::load(Some(&file), e, &FlagOverrides::default()).expect("env");
        assert_eq!(s.service.http_port, 7002);
        assert_eq!(s.storage.storage_path, PathBuf::from("/from/env"));
        assert_eq!(s.service.host, "127.0.0.1", "file value kept where env is silent");

        let e = env(&[("QDRANT__SERVICE__HTTP_PORT", "7002"), ("QDRANT__STORAGE__BACKEND", "sqlite")]);
        let flags = FlagOverrides { http_port: Some(7003), backend: Some("rocksdb".into()), ..Default::default() };
        let s = Settings::load(Some(&file), e, &flags).expect("flags");
        assert_eq!(s.service.http_port, 7003);
        assert_eq!(s.backend(), Ok(BackendKind::Rocksdb));
    }

    #[test]
    fn grpc_port_defaults_to_6334_and_null_turns_it_off() {
        let s = Settings::load(Some(Path::new("/dev/null")), env(&[]), &FlagOverrides::default()).expect("load");
        assert_eq!(s.service.grpc_port, Some(6334));
        let e = env(&[("QDRANT__SERVICE__GRPC_PORT", "7334")]);
        let s = Settings::load(Some(Path::new("/dev/null")), e, &FlagOverrides::default()).expect("env");
        assert_eq!(s.service.grpc_port, Some(7334));
        let e = env(&[("QDRANT__SERVICE__GRPC_PORT", "null")]);
        let s = Settings::load(Some(Path::new("/dev/null")), e, &FlagOverrides::default()).expect("env null");
        assert_eq!(s.service.grpc_port, None);
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "service:\n  grpc_port: null\n").expect("write");
        let s = Settings::load(Some(&file), env(&[]), &FlagOverrides::default()).expect("file null");
        assert_eq!(s.service.grpc_port, None);
        let flags = FlagOverrides { grpc_port: Some(7335), ..Default::default() };
        let s = Settings::load(Some(&file), env(&[]), &flags).expect("flag");
        assert_eq!(s.service.grpc_port, Some(7335));
    }

    #[test]
    fn errors_are_one_clear_line() {
        let flags = FlagOverrides { backend: Some("leveldb".into()), ..Default::default() };
        let err = Settings::load(Some(Path::new("/dev/null")), env(&[]), &flags).expect_err("bad backend");
        assert!(err.contains("leveldb") && !err.contains('\n'), "{err}");
        let err = Settings::load(Some(Path::new("/nonexistent/c.yaml")), env(&[]), &FlagOverrides::default())
            .expect_err("missing file");
        assert!(err.contains("/nonexistent/c.yaml"), "{err}");
        let e = env(&[("QDRANT__SERVICE__HTTP_PORT", "notaport")]);
        let err = Settings::load(Some(Path::new("/dev/null")), e, &FlagOverrides::default()).expect_err("bad port");
        assert!(err.contains("service.http_port"), "{err}");
    }
}
