//! TLS between peers (`cluster.p2p.enable_tls`). Connections to `https://` peer URIs go
//! through rustls: this peer presents its certificate (peers require one signed by the
//! cluster's CA) and checks the other side's against that CA and the URI's host. The
//! accepting side is the server's connection handling, so the limits and handshake timeout
//! of the other ports apply to peers too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// The scheme peer URIs must have: `https` with P2P TLS on, `http` without.
pub fn expected_scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// Why a peer URI cannot be used with this TLS setting (`None`: it can).
pub fn uri_problem(uri: &str, tls: bool) -> Option<String> {
    let parsed: http::Uri = match uri.parse() {
        Ok(u) => u,
        Err(e) => return Some(format!("peer URI {uri:?} is not a URI ({e})")),
    };
    if parsed.host().is_none() {
        return Some(format!("peer URI {uri:?} has no host"));
    }
    let want = expected_scheme(tls);
    match parsed.scheme_str() {
        Some(s) if s == want => None,
        _ if tls => Some(format!("cluster.p2p.enable_tls is on: peer URI {uri:?} must start with https://")),
        _ => Some(format!("peer URI {uri:?} must start with http:// (https:// needs cluster.p2p.enable_tls: true)")),
    }
}

/// Opens TLS connections to peers for tonic channels.
#[derive(Clone)]
pub(crate) struct TlsConnect(pub tokio_rustls::TlsConnector);

impl tower::Service<http::Uri> for TlsConnect {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = self.0.clone();
        Box::pin(async move {
            let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
            let host = uri.host().ok_or_else(|| invalid(format!("peer URI {uri} has no host")))?;
            // An IPv6 literal comes bracketed.
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone()).map_err(|e| invalid(format!("peer URI {uri}: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_must_match_the_tls_setting() {
        assert_eq!(uri_problem("http://10.0.0.1:6335", false), None);
        assert_eq!(uri_problem("https://node1:6335", true), None);
        let e = uri_problem("http://node1:6335", true).expect("refused");
        assert!(e.contains("must start with https://"), "{e}");
        let e = uri_problem("https://node1:6335", false).expect("refused");
        assert!(e.contains("cluster.p2p.enable_tls"), "{e}");
        assert!(uri_problem("node1:6335", false).is_some());
        assert!(uri_problem("http://", false).is_some());
        assert!(uri_problem("not a uri", true).is_some());
    }
}
