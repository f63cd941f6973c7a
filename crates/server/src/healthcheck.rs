//! `qdrant healthcheck`: an HTTP/1.0 probe of `/readyz` (over TLS when the server serves TLS),
//! so a container image needs no shell or curl for its HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use crate::settings::Settings;

pub fn run(url: Option<&str>, settings: &Settings) -> ExitCode {
    let scheme = if settings.service.enable_tls { "https" } else { "http" };
    let default = format!("{scheme}://127.0.0.1:{}", settings.service.http_port);
    let url = url.unwrap_or(&default);
    match probe(url, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qdrant healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str, settings: &Settings) -> Result<(), String> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        _ => return Err("only http:// and https:// URLs are supported".into()),
    };
    let host_port = rest.split('/').next().unwrap_or(rest);
    let addr = host_port.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("address did not resolve")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let request = format!("GET /readyz HTTP/1.0\r\nHost: {host_port}\r\n\r\n");
    let mut resp = String::new();
    if tls {
        let mut conn = tls_client(settings)?;
        let mut stream = rustls::Stream::new(&mut conn, &mut s);
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        // A server may close without close_notify after HTTP/1.0: keep what was read.
        let mut buf = Vec::new();
        if let Err(e) = stream.read_to_end(&mut buf) {
            if buf.is_empty() {
                return Err(e.to_string());
            }
        }
        resp = String::from_utf8_lossy(&buf).into_owned();
    } else {
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    }
    let status = resp.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("not ready (HTTP {status})"))
    }
}

/// A TLS client for probing this server on loopback: it checks readiness, not identity, so the
/// server certificate is not verified (it names the server's public host, not 127.0.0.1). With
/// client certificate verification on, the server's own certificate is presented.
fn tls_client(settings: &Settings) -> Result<rustls::ClientConnection, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyServer(provider)));
    let config = if settings.service.verify_https_client_certificate {
        let files = crate::net::tls_files(settings).map_err(|e| e.to_string())?.ok_or("TLS is off")?;
        let (certs, key) = files.identity().map_err(|e| format!("{e:#}"))?;
        builder.with_client_auth_cert(certs, key).map_err(|e| e.to_string())?
    } else {
        builder.with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())
}

/// Accepts any server certificate (see [`tls_client`]); signatures are still checked.
#[derive(Debug)]
struct AnyServer(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
