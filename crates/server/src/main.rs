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

/// mimalloc instead of glibc's malloc: with glibc, the small allocations that live on after an
/// ingest (id maps, index postings) pin the pages of the arenas that served the requests, and a
/// 1M-point load kept about 1.9× its live memory resident (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What returns mimalloc's free memory (of the calling thread's heap) to the system.
fn release_free_memory() {
    // SAFETY: `mi_collect` only frees pages the allocator holds free; no pointer is involved.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> ExitCode {
    qd_collection::memory::set_release(release_free_memory);
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
    let uri = match &peer.uri {
        Some(u) => u.clone(),
        None => default_uri(&settings.service.host, port, tls.is_some()),
    };
    let flags = [("--uri", Some(&uri)), ("--bootstrap", peer.bootstrap.as_ref())];
    for (flag, u) in flags {
        if let Some(problem) = u.and_then(|u| qd_cluster::p2p_tls::uri_problem(u, tls.is_some())) {
            let flag =
                if peer.uri.is_none() && flag == "--uri" { "the default --uri (from service.host)" } else { flag };
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

/// This peer's URI when `--uri` is not given: `service.host` on the P2P port, loopback for a
/// wildcard address, an IPv6 address in brackets.
fn default_uri(host: &str, port: u16, tls: bool) -> String {
    let scheme = qd_cluster::p2p_tls::expected_scheme(tls);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv4() => format!("{scheme}://127.0.0.1:{port}"),
        Ok(ip) if ip.is_unspecified() => format!("{scheme}://[::1]:{port}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("{scheme}://[{ip}]:{port}"),
        _ => format!("{scheme}://{host}:{port}"),
    }
}

async fn serve(settings: Settings, restores: snapshot_cli::StartupRestores, peer: PeerFlags) -> anyhow::Result<()> {
    let backend = settings.backend().map_err(anyhow::Error::msg)?;
    // Settings that can stop start-up are checked before storage is opened or restored into.
    let tls = net::tls_files(&settings)?;
    let (p2p_acceptor, p2p_connector) = match net::p2p_tls(&settings)? {
        Some(t) => (Some(t.acceptor), Some(t.connector)),
        None => (None, None),
    };
    let cluster_options = cluster_options(&settings, &peer, p2p_connector)?;
    // As in Qdrant, start-up restores are for a single node: consensus knows nothing of what
    // they would put here, and each peer holds only its own replicas.
    if cluster_options.is_some() && !restores.is_empty() {
        anyhow::bail!(
            "--snapshot and --storage-snapshot restore a single node and cannot be used in cluster mode; recover \
             collection snapshots on each peer through the API instead (PUT /collections/{{name}}/snapshots/recover)"
        );
    }
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
    let acceptors = tls.as_ref().map(|files| net::acceptors(files, &settings)).transpose()?;
    let nofile = net::raise_fd_limit();
    // In cluster mode the P2P port takes its share of the connection budget.
    let p2p_cap = if cluster_options.is_some() { net::p2p_connection_cap(nofile) } else { 0 };
    let api_cap = net::connection_cap(nofile) - p2p_cap;
    let slots = Arc::new(tokio::sync::Semaphore::new(api_cap));
    tracing::info!(
        open_files = nofile,
        connections = api_cap,
        p2p_connections = p2p_cap,
        tls = tls.is_some(),
        "limits"
    );
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
    let cluster = match cluster_options {
        None => None,
        Some((options, p2p_addr)) => {
            let listener = tokio::net::TcpListener::bind(p2p_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for peers on {p2p_addr}: {e}"))?;
            tracing::info!(addr = %p2p_addr, tls = p2p_acceptor.is_some(), "P2P listening");
            // Their own cap: API clients cannot use up the connections peers need.
            let p2p_slots = Arc::new(tokio::sync::Semaphore::new(p2p_cap));
            let incoming = net::grpc_incoming(listener, p2p_slots, p2p_acceptor, net::GrpcPort::P2p);
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
        let incoming =
            net::grpc_incoming(l, slots.clone(), acceptors.as_ref().map(|a| a.grpc.clone()), net::GrpcPort::Api);
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

#[cfg(test)]
mod tests {
    use super::default_uri;

    #[test]
    fn the_default_uri_is_reachable_and_well_formed() {
        assert_eq!(default_uri("0.0.0.0", 6335, false), "http://127.0.0.1:6335");
        assert_eq!(default_uri("::", 6335, true), "https://[::1]:6335");
        assert_eq!(default_uri("fd00::7", 7000, false), "http://[fd00::7]:7000");
        assert_eq!(default_uri("node1", 6335, true), "https://node1:6335");
        assert_eq!(default_uri("10.0.0.2", 6335, false), "http://10.0.0.2:6335");
        for host in ["0.0.0.0", "::", "fd00::7", "node1"] {
            for tls in [false, true] {
                assert_eq!(qd_cluster::p2p_tls::uri_problem(&default_uri(host, 1, tls), tls), None, "{host}");
            }
        }
    }
}
