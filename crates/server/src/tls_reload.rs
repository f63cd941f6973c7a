//! This server's certificate (for both APIs, and both ways between peers), read again from
//! `tls.cert` / `tls.key` once
//! `tls.cert_ttl` seconds have passed since the last read (Qdrant's setting for rotating
//! certificates without a restart). A read that fails, or a pair that does not match, keeps
//! the certificate in use and is logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::RwLock;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use crate::net::TlsFiles;

#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    /// None: read once at start-up.
    ttl: Option<Duration>,
    current: RwLock<(Arc<CertifiedKey>, Instant)>,
}

impl ReloadingCert {
    /// The certificate in `files` (already read at start-up), reloaded from `cert` and `key`
    /// every `ttl`.
    pub fn new(files: &TlsFiles, cert: &Path, key: &Path, ttl: Option<Duration>) -> anyhow::Result<Self> {
        let first = certified(files)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ttl,
            current: RwLock::new((first, Instant::now())),
        })
    }

    fn reload(&self) -> anyhow::Result<Arc<CertifiedKey>> {
        let read = |p: &Path, what: &str| std::fs::read(p).with_context(|| format!("{what} {}", p.display()));
        let files = TlsFiles {
            cert_pem: read(&self.cert, "tls.cert")?,
            key_pem: read(&self.key, "tls.key")?,
            client_ca_pem: None,
        };
        certified(&files)
    }
}

/// A certificate chain and its signing key, checked to belong together.
fn certified(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let (certs, key) = files.identity()?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).context("tls.key: unsupported key type")?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().context("tls.cert and tls.key do not match")?;
    Ok(Arc::new(certified))
}

impl ReloadingCert {
    /// The certificate in force, read again first when `ttl` has passed.
    fn in_force(&self) -> Arc<CertifiedKey> {
        if let Some(ttl) = self.ttl {
            if self.current.read().1.elapsed() >= ttl {
                let mut current = self.current.write();
                // Another handshake may have reloaded meanwhile.
                if current.1.elapsed() >= ttl {
                    match self.reload() {
                        Ok(fresh) => {
                            tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                            current.0 = fresh;
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded; the current one stays")
                        }
                    }
                    current.1 = Instant::now();
                }
            }
        }
        self.current.read().0.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.in_force())
    }
}

/// Peers present the same certificate when they connect (P2P TLS is mutual).
impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.in_force())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
