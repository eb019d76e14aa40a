//! The flags every binary takes for TLS: `--ca --cert --key` (or
//! `TENANTRY_CA`, `TENANTRY_CERT`, `TENANTRY_KEY`), or `--insecure`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Tls, TlsFiles, TrustError};

/// TLS files, or an explicit `--insecure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct TlsArgs {
    /// The cluster CA certificate (PEM).
    #[arg(long, global = true, env = "TENANTRY_CA")]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ca: Option<PathBuf>,
    /// This process's certificate (PEM), issued by `regctl certs issue`.
    #[arg(long, global = true, env = "TENANTRY_CERT")]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cert: Option<PathBuf>,
    /// This process's private key (PEM, mode 0600).
    #[arg(long, global = true, env = "TENANTRY_KEY")]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<PathBuf>,
    /// Run in plaintext without authentication: anyone who reaches a port
    /// may do anything. For throwaway local experiments only.
    #[arg(long, global = true, env = "TENANTRY_INSECURE")]
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub insecure: bool,
}

impl TlsArgs {
    /// The files given as a whole: all three, or an error naming the
    /// missing ones; `None` with `--insecure` (logged loudly by `binary`).
    pub fn load(&self, binary: &str) -> Result<Option<Arc<Tls>>, TrustError> {
        let given = [("--ca", &self.ca), ("--cert", &self.cert), ("--key", &self.key)];
        let missing: Vec<&str> = given.iter().filter(|(_, path)| path.is_none()).map(|(flag, _)| *flag).collect();
        if self.insecure {
            if missing.len() < given.len() {
                return Err(TrustError::Tls(
                    "--insecure: give either --insecure or --ca/--cert/--key, not both".to_owned(),
                ));
            }
            tracing::warn!(
                "{binary}: running with --insecure: plaintext, no authentication, every caller may do everything. \
                 Never use this on a network others can reach."
            );
            return Ok(None);
        }
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => {
                Tls::load(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() }).map(Some)
            }
            _ => Err(TrustError::Tls(format!(
                "{binary} needs {} (or TENANTRY_CA, TENANTRY_CERT, TENANTRY_KEY): every connection is mutual TLS. \
                 Make them with `regctl certs init` and `regctl certs issue`, or pass --insecure to run in plaintext",
                missing.join(", ")
            ))),
        }
    }
}
