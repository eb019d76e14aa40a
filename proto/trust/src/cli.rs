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

/// Where traces go: `--otlp-endpoint` (an OTLP/gRPC collector) and, for an
/// `https://` one, `--otlp-ca`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct OtlpArgs {
    /// Export traces to this OTLP/gRPC collector: `https://HOST:PORT`
    /// (verified against the system's CAs or --otlp-ca), or `http://` to a
    /// loopback address only (a collector on this host).
    #[arg(long, global = true, env = "TENANTRY_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The CA (PEM) an https collector's certificate chains to [default:
    /// the system's CAs].
    #[arg(long, global = true, env = "TENANTRY_OTLP_CA", value_name = "FILE")]
    pub otlp_ca: Option<PathBuf>,
}

impl OtlpArgs {
    /// A lazily connected channel to the collector, if one is given.
    /// Needs a Tokio runtime.
    pub fn channel(&self) -> Result<Option<tonic::transport::Channel>, TrustError> {
        let Some(endpoint) = &self.otlp_endpoint else { return Ok(None) };
        let invalid = |rule: &str, message: String| {
            TrustError::Tls(format!("--otlp-endpoint {endpoint}: {message} (rule {rule})"))
        };
        let (scheme, addr) = endpoint
            .split_once("://")
            .ok_or_else(|| invalid("url", "give https://HOST:PORT or http://127.0.0.1:PORT".to_owned()))?;
        let addr = addr.trim_end_matches('/');
        let host = crate::net::dial::host_of(addr);
        let connector = match scheme {
            "https" => {
                let mut config = (*crate::tls::web_client_config(self.otlp_ca.as_deref())?).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                crate::Connector::web(Arc::new(config))
            }
            "http" if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) => {
                crate::Connector::new(None, true)
            }
            "http" => {
                return Err(invalid(
                    "loopback-plaintext",
                    "plain http only to a loopback address; use https".to_owned(),
                ))
            }
            _ => return Err(invalid("url", format!("the scheme is https or http, not {scheme}"))),
        };
        connector.channel(addr, std::time::Duration::from_secs(5)).map(Some).map_err(|error| invalid("url", error))
    }
}

impl OtlpArgs {
    /// [`plumbing::init_logging`] with the traces these flags ask for, as
    /// `service` (which starts traces of its own only if `starts_traces`).
    pub fn init_logging(
        &self,
        service: &'static str,
        starts_traces: bool,
        filter_env: &str,
        default_filter: &str,
        format: plumbing::LogFormat,
    ) -> Result<plumbing::trace::Telemetry, String> {
        let otlp = self.channel().map_err(|error| error.to_string())?.map(|channel| plumbing::trace::Otlp {
            channel,
            service,
            starts_traces,
        });
        plumbing::init_logging(filter_env, default_filter, format, otlp)
    }
}
