//! `qdrant`: the server binary. Parses flags, resolves configuration, opens storage, binds the
//! HTTP port first (`/livez` answers at once), loads collections in the background, and shuts
//! down cleanly on SIGTERM / SIGINT.

mod api;
mod cli;
mod grpc;
mod healthcheck;
mod meta;
mod net;
mod ops;
mod settings;
mod snapshot_cli;
mod tls_reload;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use qd_collection::Registry;
use qd_storage::FORMAT_VERSION;

use cli::{Cli, Command};
use settings::{LogFormat, Settings};

/// Connections the P2P port holds open at once (a few per peer).
const P2P_CONNECTIONS: usize = 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config_path.as_deref(), std::env::vars(), &cli.overrides()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("qdrant: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck::run(url.as_deref(), &settings);
    }
    if let Some(Command::Snapshot { action }) = &cli.command {
        init_logging(&settings);
        return snapshot_cli::run(action, &settings);
    }
    let restores = match cli.startup_restores() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qdrant: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qdrant: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let peer = PeerFlags { uri: cli.uri.clone(), bootstrap: cli.bootstrap.clone() };
    match runtime.block_on(serve(settings, restores, peer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qdrant: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
    let level = settings.log_level.to_ascii_lowercase();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `--uri` and `--bootstrap`: how this peer takes part in a cluster.
struct PeerFlags {
    uri: Option<String>,
    bootstrap: Option<String>,
}

/// Cluster options when `cluster.enabled` (flags without it are ignored, as in Qdrant), and
/// where the P2P port listens. A peer URI whose scheme does not match `cluster.p2p.enable_tls`
/// stops start-up.
fn cluster_options(
    settings: &Settings,
    peer: &PeerFlags,
    tls: Option<tokio_rustls::TlsConnector>,
) -> anyhow::Result<Option<(qd_cluster::ClusterOptions, std::net::SocketAddr)>> {
    if !settings.cluster.enabled {
        if peer.uri.is_some() || peer.bootstrap.is_some() {
            tracing::warn!("--uri/--bootstrap given without cluster.enabled: running as a single node");
        }
        return Ok(None);
    }
    let port = settings.cluster.p2p.port;
    let uri = peer.uri.clone().unwrap_or_else(|| {
        let host = if settings.service.host == "0.0.0.0" { "127.0.0.1" } else { settings.service.host.as_str() };
        format!("{}://{host}:{port}", qd_cluster::p2p_tls::expected_scheme(tls.is_some()))
    });
    for (flag, u) in [("--uri", Some(&uri)), ("--bootstrap", peer.bootstrap.as_ref())] {
        if let Some(problem) = u.and_then(|u| qd_cluster::p2p_tls::uri_problem(u, tls.is_some())) {
            anyhow::bail!("{flag}: {problem}");
        }
    }
    let host: std::net::IpAddr = settings.service.host.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let options = qd_cluster::ClusterOptions {
        uri,
        bootstrap: peer.bootstrap.clone(),
        tick: std::time::Duration::from_millis(settings.cluster.consensus.tick_period_ms.max(10)),
        tls,
    };
    Ok(Some((options, std::net::SocketAddr::new(host, port))))
}

async fn serve(settings: Settings, restores: snapshot_cli::StartupRestores, peer: PeerFlags) -> anyhow::Result<()> {
    let backend = settings.backend().map_err(anyhow::Error::msg)?;
    let root = settings.storage.storage_path.clone();
    let registry = {
        let (root, defaults) = (root.clone(), settings.collection_defaults());
        tokio::task::spawn_blocking(move || Registry::open(&root, backend, defaults)).await??
    };
    tracing::info!(
        storage_path = %root.display(),
        backend = %backend,
        format_version = FORMAT_VERSION,
        "storage opened"
    );
    let partials = qd_collection::snapshot::SnapshotDir::new(settings.storage.snapshots_path.clone()).remove_partials();
    if partials > 0 {
        tracing::info!(removed = partials, "removed snapshot files an interrupted run left half-written");
    }
    if !restores.is_empty() {
        // Before the port is bound and before collections load: a failed restore stops start-up.
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || snapshot_cli::startup_restore(&registry, &restores)).await??;
    }
    let tls = net::tls_files(&settings)?;
    let acceptors = tls.as_ref().map(|files| net::acceptors(files, &settings)).transpose()?;
    let nofile = net::raise_fd_limit();
    let slots = Arc::new(tokio::sync::Semaphore::new(net::connection_cap(nofile)));
    tracing::info!(open_files = nofile, connections = net::connection_cap(nofile), tls = tls.is_some(), "limits");
    let addr = format!("{}:{}", settings.service.host, settings.service.http_port);
    let listener =
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, version = api_version(), "HTTP listening");

    // One shutdown signal for every server: each finishes its requests in flight, then stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Cluster mode: consensus attaches to the registry before collections load.
    let p2p_tls = net::p2p_tls(&settings)?;
    let (p2p_acceptor, p2p_connector) = match p2p_tls {
        Some(t) => (Some(t.acceptor), Some(t.connector)),
        None => (None, None),
    };
    let cluster = match cluster_options(&settings, &peer, p2p_connector)? {
        None => None,
        Some((options, p2p_addr)) => {
            let listener = tokio::net::TcpListener::bind(p2p_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for peers on {p2p_addr}: {e}"))?;
            tracing::info!(addr = %p2p_addr, tls = p2p_acceptor.is_some(), "P2P listening");
            // Peers hold few connections each; their own cap keeps API clients from using them up.
            let p2p_slots = Arc::new(tokio::sync::Semaphore::new(P2P_CONNECTIONS));
            let incoming = net::grpc_incoming(listener, p2p_slots, p2p_acceptor);
            let node = qd_cluster::ClusterNode::start(registry.clone(), options, incoming, stopped(stop_rx.clone()))
                .await
                .map_err(anyhow::Error::msg)?;
            tracing::info!(peer_id = node.peer_id(), "cluster mode");
            Some(node)
        }
    };
    {
        let registry = registry.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let loader = registry.clone();
            let loaded = tokio::task::spawn_blocking(move || loader.load_all()).await;
            if let Ok((loaded, broken)) = loaded {
                tracing::info!(loaded, broken, "collections loaded; ready");
            }
            // Collections that could not load for want of disk space load once it is freed
            // (until shutdown begins).
            tokio::spawn(async move {
                while !registry.is_shutting_down() {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    let registry = registry.clone();
                    let _ = tokio::task::spawn_blocking(move || registry.retry_broken()).await;
                }
            });
            if let Some(node) = cluster {
                node.follow();
            }
        });
    }

    let grpc_listener = match grpc::address(&settings) {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for gRPC on {addr}: {e}"))?;
            tracing::info!(%addr, "gRPC listening");
            Some(l)
        }
        None => None,
    };

    let state = Arc::new(api::AppState { registry: registry.clone(), settings, cluster: cluster.clone() });
    let grpc_task = grpc_listener.map(|l| {
        let incoming = net::grpc_incoming(l, slots.clone(), acceptors.as_ref().map(|a| a.grpc.clone()));
        tokio::spawn(grpc::serve(state.clone(), incoming, stopped(stop_rx.clone())))
    });
    // 0 turns the idle close off.
    let idle = Some(state.settings.service.idle_timeout_sec).filter(|s| *s > 0).map(std::time::Duration::from_secs);
    let rest_tls = acceptors.map(|a| a.rest);
    net::serve_rest(listener, api::router(state), rest_tls, slots, idle, stopped(stop_rx)).await;
    if let Some(task) = grpc_task {
        if let Err(e) = task.await? {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }
    if let Some(node) = &cluster {
        node.shutdown().await;
    }
    tracing::info!("shutting down: draining update queues and flushing");
    tokio::task::spawn_blocking(move || registry.shutdown()).await?;
    tracing::info!("shutdown complete");
    Ok(())
}

fn api_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
