//! Loading certificates and keys, and the rustls configurations built from
//! them: one [`Tls`] per process, reloaded on SIGHUP (new connections use the
//! new certificate; open ones keep theirs, so no stream is dropped).
//!
//! Every configuration uses the ring provider, TLS 1.3 and 1.2, and trusts
//! exactly one root: the cluster's CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::{inspect, read_certs};
use crate::identity::peer_identity;
use crate::{Identity, TrustError};

/// Where a process finds its CA, certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TrustError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|error| TrustError::file(path, format!("not a PEM private key: {error}")))
}

fn format_time(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix_s} (unix seconds)"))
}

/// Refuses a certificate that is not valid now, naming the file and dates.
fn check_validity(path: &Path, der: &CertificateDer<'_>, now_unix_s: i64) -> Result<(i64, i64), TrustError> {
    let info = inspect(path, der)?;
    let (from, until) = (info.not_before_unix_s, info.not_after_unix_s);
    let dates = format!("valid from {} until {}", format_time(from), format_time(until));
    if now_unix_s < from {
        return Err(TrustError::Validity {
            path: path.display().to_string(),
            message: format!(
                "certificate is not valid yet ({dates}; now {}): check this machine's clock",
                format_time(now_unix_s)
            ),
        });
    }
    if now_unix_s > until {
        return Err(TrustError::Validity {
            path: path.display().to_string(),
            message: format!(
                "certificate expired ({dates}; now {}): issue a new one with `regctl certs issue`",
                format_time(now_unix_s)
            ),
        });
    }
    Ok((from, until))
}

fn now_unix_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls(error: impl std::fmt::Display) -> TrustError {
    TrustError::Tls(error.to_string())
}

/// Everything built from one reading of the files.
struct Loaded {
    identity: Identity,
    not_after_unix_s: i64,
    /// Client certificates required (gRPC).
    server_required: Arc<ServerConfig>,
    /// Client certificates checked when sent (HTTP ports with open probes).
    server_optional: Arc<ServerConfig>,
    /// For gRPC dials (ALPN h2).
    client_grpc: Arc<ClientConfig>,
    /// For HTTP/1.1 dials.
    client_http: Arc<ClientConfig>,
}

fn load(files: &TlsFiles) -> Result<Loaded, TrustError> {
    let ca = read_certs(&files.ca)?;
    let chain = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let now = now_unix_s();
    for ca_cert in &ca {
        check_validity(&files.ca, ca_cert, now)?;
    }
    let (_, not_after_unix_s) = check_validity(&files.cert, &chain[0], now)?;
    let identity = peer_identity(&chain[0]).map_err(|error| TrustError::file(&files.cert, error))?;

    let mut roots = RootCertStore::empty();
    for ca_cert in ca {
        roots.add(ca_cert).map_err(|error| TrustError::file(&files.ca, format!("not a usable CA: {error}")))?;
    }
    let roots = Arc::new(roots);
    let versions = rustls::DEFAULT_VERSIONS;

    let server = |optional: bool| -> Result<Arc<ServerConfig>, TrustError> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
        let verifier = if optional { builder.allow_unauthenticated() } else { builder }.build().map_err(tls)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| TrustError::file(&files.key, format!("does not fit {}: {error}", files.cert.display())))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    };
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider()).build().map_err(tls)?;
    let client = |alpn: &[u8]| -> Result<Arc<ClientConfig>, TrustError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(tls)?
            .with_webpki_verifier(server_verifier.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|error| TrustError::file(&files.key, format!("does not fit {}: {error}", files.cert.display())))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    };
    Ok(Loaded {
        identity,
        not_after_unix_s,
        server_required: server(false)?,
        server_optional: server(true)?,
        client_grpc: client(b"h2")?,
        client_http: client(b"http/1.1")?,
    })
}

/// A process's TLS: its identity and the configurations for listening and
/// dialing, swapped as a whole on [`Tls::reload`].
pub struct Tls {
    files: TlsFiles,
    loaded: ArcSwap<Loaded>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Tls").field("files", &self.files).field("identity", &self.identity()).finish()
    }
}

impl Tls {
    /// Loads the files; refuses certificates outside their validity, keys
    /// that do not fit, and certificates without a Tenantry identity.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TrustError> {
        let loaded = load(&files)?;
        Ok(Arc::new(Self { files, loaded: ArcSwap::from_pointee(loaded) }))
    }

    /// Reads the files again. On an error the old configuration stays.
    pub fn reload(&self) -> Result<(), TrustError> {
        let loaded = load(&self.files)?;
        self.loaded.store(Arc::new(loaded));
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// This process's own identity, from its certificate.
    pub fn identity(&self) -> Identity {
        self.loaded.load().identity.clone()
    }

    /// When this process's certificate expires (unix seconds).
    pub fn not_after_unix_s(&self) -> i64 {
        self.loaded.load().not_after_unix_s
    }

    pub(crate) fn server_config(&self, client_cert_required: bool) -> Arc<ServerConfig> {
        let loaded = self.loaded.load();
        if client_cert_required {
            loaded.server_required.clone()
        } else {
            loaded.server_optional.clone()
        }
    }

    pub(crate) fn client_config(&self, grpc: bool) -> Arc<ClientConfig> {
        let loaded = self.loaded.load();
        if grpc {
            loaded.client_grpc.clone()
        } else {
            loaded.client_http.clone()
        }
    }

    /// Reloads on every SIGHUP for as long as the process runs; a failed
    /// reload is logged and the old certificate stays in use.
    pub fn reload_on_sighup(self: &Arc<Self>) -> Result<(), TrustError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).map_err(|error| TrustError::Tls(format!("SIGHUP: {error}")))?;
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(tls) = tls.upgrade() else { return };
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files.cert.display(),
                        identity = %tls.identity(),
                        not_after = %format_time(tls.not_after_unix_s()),
                        "SIGHUP: certificates reloaded"
                    ),
                    Err(error) => {
                        tracing::error!(%error, "SIGHUP: reload failed; still using the previous certificate")
                    }
                }
            }
        });
        Ok(())
    }
}

/// The system's CA bundle (Debian's `ca-certificates`), the roots of
/// [`web_client_config`] unless a file is given.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration for servers outside the cluster (a CDN's purge
/// API): no client certificate, the server verified against the
/// certificates in `ca` (PEM), or the system's bundle, for the host
/// dialed; TLS 1.2 and 1.3, HTTP/1.1.
pub fn web_client_config(ca: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, TrustError> {
    let path = ca.unwrap_or(std::path::Path::new(SYSTEM_CA_BUNDLE));
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::certs::read_certs(path)? {
        roots.add(cert).map_err(|error| TrustError::file(path, format!("not a CA certificate: {error}")))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Formats unix seconds as RFC 3339 (for status output).
pub fn rfc3339(unix_s: i64) -> String {
    format_time(unix_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_outside_their_dates_are_refused_naming_the_file_and_the_dates() {
        let dir = tempfile::tempdir().unwrap();
        crate::certs::init_ca(dir.path(), "tenantry", false).unwrap();
        let identity = Identity::Operator { name: "alice".to_owned(), role: crate::Role::Viewer };
        let options = crate::certs::LeafOptions { hosts: vec![], days: Some(1) };
        let (cert, _) = crate::certs::issue(dir.path(), &identity, &options).unwrap();
        let der = read_certs(&cert).unwrap().remove(0);
        let (from, until) = check_validity(&cert, &der, now_unix_s()).unwrap();

        let shown = cert.display().to_string();
        let dates = format!("valid from {} until {}", format_time(from), format_time(until));
        for (now, says) in [(until + 1, "certificate expired"), (from - 1, "certificate is not valid yet")] {
            let error = check_validity(&cert, &der, now).unwrap_err().to_string();
            assert!(error.contains(&shown) && error.contains(says) && error.contains(&dates), "{error}");
            assert!(error.contains(&format!("now {}", format_time(now))), "{error}");
        }
    }
}
