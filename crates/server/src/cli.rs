//! Command-line interface. Flags override environment and config file (see `settings`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::FlagOverrides;

#[derive(Debug, Parser)]
#[command(name = "qdrant", version, about = "Vector search engine compatible with Qdrant's REST API")]
pub struct Cli {
    /// Storage backend: `rocksdb` (default, large scale) or `sqlite` (light, embedded).
    #[arg(long = "storage", global = true)]
    pub storage: Option<String>,
    /// Directory holding collections (default ./storage).
    #[arg(long = "storage-path", global = true)]
    pub storage_path: Option<PathBuf>,
    /// Directory for snapshot files (default ./snapshots).
    #[arg(long = "snapshots-path", global = true)]
    pub snapshots_path: Option<PathBuf>,
    /// HTTP port (default 6333).
    #[arg(long = "http-port", global = true)]
    pub http_port: Option<u16>,
    /// gRPC port (default 6334).
    #[arg(long = "grpc-port", global = true)]
    pub grpc_port: Option<u16>,
    /// Address to bind (default 0.0.0.0).
    #[arg(long = "host", global = true)]
    pub host: Option<String>,
    /// YAML config file with Qdrant's keys (default config/config.yaml if present).
    #[arg(long = "config-path", global = true)]
    pub config_path: Option<PathBuf>,
    /// Accepted for compatibility with Qdrant's flags; telemetry is never sent anywhere.
    #[arg(long = "disable-telemetry", hide = true)]
    pub disable_telemetry: bool,
    /// This peer's P2P URI as other peers reach it (cluster mode), e.g. http://node1:6335.
    #[arg(long = "uri")]
    pub uri: Option<String>,
    /// P2P URI of a cluster member to join through (cluster mode), e.g. http://node1:6335.
    #[arg(long = "bootstrap")]
    pub bootstrap: Option<String>,
    /// Restore a collection snapshot at start-up, before serving: `FILE:COLLECTION`
    /// (repeatable). An existing collection is kept unless --force-snapshot.
    #[arg(long = "snapshot", value_name = "FILE:COLLECTION")]
    pub snapshot: Vec<String>,
    /// Restore a full-storage snapshot (every collection and alias) at start-up.
    #[arg(long = "storage-snapshot", value_name = "FILE")]
    pub storage_snapshot: Option<PathBuf>,
    /// Let --snapshot / --storage-snapshot replace collections that already exist.
    #[arg(long = "force-snapshot")]
    pub force_snapshot: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe a running server's /readyz; exit 0 when ready (for container health checks).
    Healthcheck {
        /// Base URL to probe (default http://127.0.0.1:<http_port>).
        #[arg(long)]
        url: Option<String>,
    },
    /// Offline snapshot tools on the storage directory (stop the server first):
    /// create, restore, inspect, verify.
    Snapshot {
        #[command(subcommand)]
        action: crate::snapshot_cli::SnapshotCommand,
    },
}

impl Cli {
    /// The start-up restores asked for with --snapshot / --storage-snapshot.
    pub fn startup_restores(&self) -> Result<crate::snapshot_cli::StartupRestores, String> {
        crate::snapshot_cli::StartupRestores::parse(&self.snapshot, self.storage_snapshot.clone(), self.force_snapshot)
    }

    pub fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            backend: self.storage.clone(),
            storage_path: self.storage_path.clone(),
            snapshots_path: self.snapshots_path.clone(),
            http_port: self.http_port,
            grpc_port: self.grpc_port,
            host: self.host.clone(),
        }
    }
}
