//! Downloads of snapshot files from `http://` and `https://` locations (`/snapshots/recover`),
//! streamed to a file.
//!
//! TLS is rustls (ring) trusting the Mozilla roots compiled into the binary (the Docker image
//! has no system certificate store) plus the system's store, which also honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` for private CAs.

use std::path::Path as FsPath;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::response::ApiError;
use super::snapshots::internal;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_REDIRECTS: usize = 5;

/// The client TLS configuration, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "a system certificate could not be loaded");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system certificates for snapshot downloads");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS client configuration: {e}"))
        })
        .clone()
}

/// Send `req` over `io` (HTTP/1.1) and return the response head with a streaming body.
async fn send<I>(
    io: I,
    req: axum::http::Request<http_body_util::Empty<Bytes>>,
) -> Result<hyper::Response<Incoming>, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| format!("no response within {} s", RESPONSE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())
}

/// Where a redirect's `Location` points, resolved against the URL that answered.
fn resolve(base: &axum::http::Uri, location: &str) -> String {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    }
}

/// `(scheme, host, port)` of a URL: the API key is only sent where the user sent it.
fn origin(uri: &axum::http::Uri) -> (String, String, u16) {
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    (scheme, uri.host().unwrap_or("").to_ascii_lowercase(), port)
}

/// Fetch `url` (http or https, redirects followed) into `dest`, streaming. Any failure, also
/// midway, is a 400 naming the URL; the caller removes the partial file. Redirects from https
/// to http are refused, and the `api-key` header only goes to the origin of `url`.
pub async fn fetch_url(url: &str, api_key: Option<&str>, dest: &FsPath) -> Result<u64, ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("Bad request: cannot fetch snapshot from {url}: {m}"));
    let first: axum::http::Uri = url.parse().map_err(|e| bad(format!("invalid URL: {e}")))?;
    let first_origin = origin(&first);
    let mut current = url.to_string();
    for _ in 0..MAX_REDIRECTS {
        let uri: axum::http::Uri = current.parse().map_err(|e| bad(format!("invalid URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("only http:// and https:// URLs are supported".into())),
        };
        if first_origin.0 == "https" && !tls {
            return Err(bad(format!("refusing to follow a redirect from https to {current}")));
        }
        let host = uri.host().ok_or_else(|| bad("the URL has no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| bad("connection timed out".into()))?
            .map_err(|e| bad(format!("cannot connect: {e}")))?;
        // Host header: host and port only (never credentials written into the URL).
        let host_header = match uri.port_u16() {
            Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
            None => uri.host().unwrap_or_default().to_string(),
        };
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut req = axum::http::Request::get(path).header(header::HOST, host_header.as_str());
        if let Some(k) = api_key.filter(|_| origin(&uri) == first_origin) {
            req = req.header("api-key", k);
        }
        let req = req.body(http_body_util::Empty::<Bytes>::new()).map_err(|e| bad(e.to_string()))?;
        let resp = if tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| bad(format!("invalid TLS server name {host:?}: {e}")))?;
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(tls_config().map_err(bad)?).connect(name, tcp),
            )
            .await
            .map_err(|_| bad("TLS handshake timed out".into()))?
            .map_err(|e| bad(format!("TLS handshake failed: {e}")))?;
            send(stream, req).await
        } else {
            send(tcp, req).await
        }
        .map_err(bad)?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if loc.is_empty() {
                return Err(bad(format!("HTTP {status} without a Location")));
            }
            current = resolve(&uri, loc);
            continue;
        }
        if !status.is_success() {
            return Err(bad(format!("the server answered HTTP {status}")));
        }
        let mut body = resp.into_body();
        let mut f = tokio::fs::File::create(dest).await.map_err(|e| internal(dest, e))?;
        let mut n = 0u64;
        loop {
            let frame = tokio::time::timeout(STALL_TIMEOUT, body.frame())
                .await
                .map_err(|_| bad(format!("stalled after {n} bytes")))?;
            match frame {
                None => break,
                Some(Err(e)) => return Err(bad(format!("the transfer failed after {n} bytes: {e}"))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        f.write_all(&data).await.map_err(|e| internal(dest, e))?;
                        n += data.len() as u64;
                    }
                }
            }
        }
        f.flush().await.map_err(|e| internal(dest, e))?;
        return Ok(n);
    }
    Err(bad("too many redirects".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve() {
        let base: axum::http::Uri = "https://h:8443/a/b/x.snapshot?q=1".parse().expect("uri");
        assert_eq!(resolve(&base, "http://o/y"), "http://o/y");
        assert_eq!(resolve(&base, "//cdn/y"), "https://cdn/y");
        assert_eq!(resolve(&base, "/y"), "https://h:8443/y");
        assert_eq!(resolve(&base, "y.snapshot"), "https://h:8443/a/b/y.snapshot");
        let other: axum::http::Uri = "https://H:8443/z".parse().expect("uri");
        assert_eq!(origin(&base), origin(&other), "same origin whatever the path and case");
        let plain: axum::http::Uri = "http://h:8443/z".parse().expect("uri");
        assert_ne!(origin(&base), origin(&plain));
        let default_port: axum::http::Uri = "https://h/z".parse().expect("uri");
        assert_eq!(origin(&default_port).2, 443);
    }
}
