//! Accepting connections for both APIs (and, in cluster mode, for peers): TLS when
//! `service.enable_tls` (`cluster.p2p.enable_tls` for peers) is on, a cap on open
//! connections well below the process's file limit (idle clients cannot exhaust descriptors
//! that the storage needs), a header read timeout so a silent connection is closed, and, for
//! REST, a graceful close of any connection (HTTP/2 included) idle for `service.idle_timeout_sec`.

use std::io::BufReader;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::settings::Settings;

/// A connection that sends no complete request head within this time is closed (this also ends
/// idle keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept for the storage (database files, snapshots) whatever the load.
const RESERVED_FDS: u64 = 512;

/// Raise the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Connections all servers may hold open at once, for a file limit of `nofile`.
pub fn connection_cap(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(RESERVED_FDS) / 2;
    usable.clamp(64, 16_384) as usize
}

/// The share of [`connection_cap`] kept for the P2P port in cluster mode: peers hold a few
/// connections each.
pub fn p2p_connection_cap(nofile: u64) -> usize {
    (connection_cap(nofile) / 4).clamp(16, 1024)
}

/// Certificates and keys for both servers, read once at start-up.
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// With client certificate verification (mTLS): the CA that signs client certificates.
    pub client_ca_pem: Option<Vec<u8>>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("TLS is enabled but {what} {} cannot be read", path.display()))
}

/// The TLS files when `service.enable_tls` is on; a setting that cannot be honoured is an error
/// (start-up stops rather than serve in clear).
pub fn tls_files(settings: &Settings) -> anyhow::Result<Option<TlsFiles>> {
    if !settings.service.enable_tls {
        return Ok(None);
    }
    let tls = &settings.tls;
    let client_ca_pem =
        if settings.service.verify_https_client_certificate { Some(read(&tls.ca_cert, "tls.ca_cert")?) } else { None };
    Ok(Some(TlsFiles { cert_pem: read(&tls.cert, "tls.cert")?, key_pem: read(&tls.key, "tls.key")?, client_ca_pem }))
}

/// TLS acceptors for both servers over one certificate source (reloaded every `tls.cert_ttl`):
/// REST offers HTTP/2 and HTTP/1.1 by ALPN, gRPC HTTP/2 only.
pub struct Acceptors {
    pub rest: tokio_rustls::TlsAcceptor,
    pub grpc: tokio_rustls::TlsAcceptor,
}

pub fn acceptors(files: &TlsFiles, settings: &Settings) -> anyhow::Result<Acceptors> {
    let cert = reloading_cert(files, settings)?;
    let config = |alpn: &[&[u8]]| -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let mut config = server_config(files, cert.clone())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    };
    Ok(Acceptors { rest: config(&[b"h2", b"http/1.1"])?, grpc: config(&[b"h2"])? })
}

/// The certificate in `files`, read again every `tls.cert_ttl`.
fn reloading_cert(files: &TlsFiles, settings: &Settings) -> anyhow::Result<Arc<crate::tls_reload::ReloadingCert>> {
    let tls = &settings.tls;
    let ttl = tls.cert_ttl.filter(|s| *s > 0).map(Duration::from_secs);
    Ok(Arc::new(crate::tls_reload::ReloadingCert::new(files, &tls.cert, &tls.key, ttl)?))
}

/// TLS between peers (`cluster.p2p.enable_tls`): both ends present `tls.cert` and check the
/// other's certificate against `tls.ca_cert`, so only holders of a certificate of the
/// cluster's CA can take part (mutual TLS, as Qdrant runs it).
pub struct P2pTls {
    /// For the P2P port: a client certificate is required.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// For reaching peers at their `https://` URIs.
    pub connector: tokio_rustls::TlsConnector,
}

/// [`P2pTls`] in cluster mode with `cluster.p2p.enable_tls`; a file that cannot be read or
/// used stops start-up.
pub fn p2p_tls(settings: &Settings) -> anyhow::Result<Option<P2pTls>> {
    if !(settings.cluster.enabled && settings.cluster.p2p.enable_tls) {
        return Ok(None);
    }
    let tls = &settings.tls;
    let files = TlsFiles {
        cert_pem: read(&tls.cert, "tls.cert")?,
        key_pem: read(&tls.key, "tls.key")?,
        client_ca_pem: Some(read(&tls.ca_cert, "tls.ca_cert")?),
    };
    let cert = reloading_cert(&files, settings)?;
    let mut server = server_config(&files, cert.clone())?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = ca_roots(files.client_ca_pem.as_deref().unwrap_or_default())?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_cert_resolver(cert);
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(P2pTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
    }))
}

/// The certificates of `tls.ca_cert`, as trust roots.
fn ca_roots(pem: &[u8]) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(pem).context("tls.ca_cert")? {
        roots.add(c).context("tls.ca_cert: not a usable CA certificate")?;
    }
    Ok(roots)
}

/// A rustls server configuration: the certificate from `cert`, client certificates checked
/// against `tls.ca_cert` under mutual TLS.
fn server_config(
    files: &TlsFiles,
    cert: Arc<crate::tls_reload::ReloadingCert>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca_pem {
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(ca_roots(ca)?), provider)
                    .build()
                    .context("tls.ca_cert: client verification")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(builder.with_cert_resolver(cert))
}

impl TlsFiles {
    /// This server's certificate chain and private key (for serving, and for the health probe's
    /// client certificate under mTLS).
    pub fn identity(
        &self,
    ) -> anyhow::Result<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>
    {
        use rustls::pki_types::pem::PemObject;
        let certs = pem_certs(&self.cert_pem).context("tls.cert")?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| anyhow::anyhow!("tls.key: no usable private key ({e})"))?;
        Ok((certs, key))
    }
}

/// Every certificate of a PEM file; at least one.
fn pem_certs(pem: &[u8]) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_reader_iter(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not a PEM certificate file ({e})"))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the file");
    Ok(certs)
}

/// HTTP builders with the timeouts: one that detects the protocol (plain TCP), and one per
/// protocol for TLS, where ALPN has already decided it.
struct Builders {
    detect: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    b.http2().timer(TokioTimer::new()).keep_alive_interval(Some(HEADER_READ_TIMEOUT));
    b
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last: parking_lot::Mutex<Instant>,
}

/// Held while a request is served.
struct Busy(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Completes once no request has been in flight for `limit` (never without one).
    async fn idle_for(&self, limit: Option<Duration>) {
        let Some(limit) = limit else { return std::future::pending().await };
        loop {
            let since = self.last.lock().elapsed();
            if self.in_flight.load(Ordering::SeqCst) == 0 && since >= limit {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(since).max(Duration::from_millis(100))).await;
        }
    }
}

/// A response body that keeps its connection counted busy until the body is sent or dropped
/// (a snapshot download may stream for longer than the idle time).
struct Tracked {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve one connection until it ends. On server shutdown it is closed gracefully (requests in
/// flight finish; HTTP/2 gets GOAWAY). After `idle` with no request in flight it is simply
/// closed, as an idle HTTP/1.1 keep-alive connection is: some HTTP/2 clients (Python's h2, so
/// httpx) fail on the PING that follows a graceful GOAWAY, while every client reconnects after
/// a plain close.
macro_rules! drive {
    ($conn:expr, $activity:expr, $idle:expr, $stop:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                _ = $stop.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = $activity.idle_for($idle), if !closing => break,
            }
        }
    }};
}

/// Serve `router` on `listener` until `shutdown`; connections in flight finish first, and a
/// connection idle for `idle` (when set) is closed.
pub async fn serve_rest(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slots: Arc<Semaphore>,
    idle: Option<Duration>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let builders =
        Arc::new(Builders { detect: builder(), http1: builder().http1_only(), http2: builder().http2_only() });
    // Shutdown is announced on `stop`; every connection task holds a clone of `alive`, so the
    // channel closes once the last one has finished.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            _ = &mut shutdown => None,
        };
        let Some((stream, permit)) = accepted else { break };
        let activity =
            Arc::new(Activity { in_flight: AtomicUsize::new(0), last: parking_lot::Mutex::new(Instant::now()) });
        let service = {
            let (router, activity) = (router.clone(), activity.clone());
            hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let busy = activity.begin();
                let call = tower::ServiceExt::oneshot(router.clone(), req);
                async move {
                    let response = call.await;
                    response.map(|r| r.map(|body| axum::body::Body::new(Tracked { body, _busy: busy })))
                }
            })
        };
        let builders = builders.clone();
        let (mut stop, alive) = (stop_rx.clone(), alive.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _alive = alive;
            match tls {
                None => {
                    // Protocol detection reads without a timeout: wait for the first byte here
                    // (or for shutdown, which does not wait for silent sockets).
                    let mut first = [0u8; 1];
                    let peeked = tokio::select! {
                        p = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)) => p,
                        _ = stop.changed() => return,
                    };
                    if !matches!(peeked, Ok(Ok(1..))) {
                        return;
                    }
                    let conn = builders.detect.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    drive!(conn, activity, idle, stop);
                }
                Some(acceptor) => match tokio::select! {
                    h = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => h,
                    _ = stop.changed() => return,
                } {
                    Ok(Ok(tls_stream)) => {
                        let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let b = if h2 { &builders.http2 } else { &builders.http1 };
                        let conn = b.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        drive!(conn, activity, idle, stop);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive);
    let _ = all_done.recv().await;
}

/// The next connection, once a slot is free. Accept errors (e.g. out of file descriptors) are
/// logged and retried after a pause instead of ending the server.
async fn accept(listener: &TcpListener, slots: &Arc<Semaphore>) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let permit = slots.clone().acquire_owned().await.ok()?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, permit));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Which gRPC port connections are accepted for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum GrpcPort {
    Api,
    /// Peers: a failed handshake is worth a warning (a misconfigured or foreign peer), where
    /// on the API port it is routine.
    P2p,
}

/// Accepted gRPC connections, each holding a connection slot until it closes; with `tls`,
/// after its handshake (run beside the accept loop, so a slow client delays nobody else).
pub fn grpc_incoming(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    port: GrpcPort,
) -> impl futures_util::Stream<Item = std::io::Result<Slotted>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Slotted>(64);
    tokio::spawn(async move {
        loop {
            // Stops with the server (the receiving stream is dropped).
            let accepted = tokio::select! {
                a = accept(&listener, &slots) => a,
                _ = tx.closed() => None,
            };
            let Some((stream, permit)) = accepted else { break };
            match &tls {
                None => {
                    if tx.send(Slotted { io: Io::Plain(stream), _permit: permit }).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    let peer = stream.peer_addr().ok();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                let _ = tx.send(Slotted { io: Io::Tls(Box::new(s)), _permit: permit }).await;
                            }
                            Ok(Err(e)) if port == GrpcPort::P2p => {
                                tracing::warn!(error = %e, peer = ?peer, "P2P TLS handshake failed")
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "gRPC TLS handshake failed"),
                            Err(_) => tracing::debug!("gRPC TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (Ok(s), rx)) })
}

/// A connection's transport: plain TCP, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A connection that frees its connection slot when dropped.
pub struct Slotted {
    io: Io,
    _permit: OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for Slotted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match &self.io {
            Io::Plain(s) => s.connect_info(),
            Io::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

/// Forward an I/O call to the transport.
macro_rules! on_io {
    ($self:ident, $s:ident => $call:expr) => {
        match &mut $self.io {
            Io::Plain($s) => $call,
            Io::Tls($s) => $call,
        }
    };
}

impl AsyncRead for Slotted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        on_io!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        on_io!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_io!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_io!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        on_io!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_storage() {
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(4096), 1792);
        assert_eq!(connection_cap(100), 64);
        assert_eq!(connection_cap(1 << 20), 16_384);
        assert_eq!(p2p_connection_cap(1024), 64);
        assert_eq!(p2p_connection_cap(100), 16);
        assert_eq!(p2p_connection_cap(1 << 20), 1024);
    }
}
