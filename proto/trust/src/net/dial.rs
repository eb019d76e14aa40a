//! Dialing: TCP without Nagle, then TLS checked for the host dialed and,
//! optionally, for the identity expected.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{DIAL_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS};
use crate::{Identity, Tls};

/// Dials gRPC or HTTP servers: TCP (no Nagle), then TLS when the process
/// has a [`Tls`]; the server must prove a certificate from the cluster CA
/// for the host it is dialed by (or the `server_name` given), and, with
/// `expect`, carry exactly that identity.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<Arc<Tls>>,
    /// A server outside the cluster: its roots, no client certificate
    /// ([`crate::tls::web_client_config`]); instead of `tls`.
    web: Option<Arc<rustls::ClientConfig>>,
    grpc: bool,
    server_name: Option<String>,
    expect: Option<Expect>,
}

/// Which identity a dialed server must prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this one (a node dialing member N).
    Exactly(Identity),
    /// Any registry node (clients and agents dialing the registry).
    AnyNode,
}

impl Expect {
    fn matches(&self, identity: &Identity) -> bool {
        match self {
            Expect::Exactly(expected) => expected == identity,
            Expect::AnyNode => matches!(identity, Identity::Node { .. }),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Exactly(identity) => write!(formatter, "{identity}"),
            Expect::AnyNode => write!(formatter, "a registry node"),
        }
    }
}

/// A dialed connection.
pub enum ClientConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            ClientConn::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientConn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            ClientConn::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(io) => Pin::new(io).poll_flush(cx),
            ClientConn::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientConn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            ClientConn::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// `host` of `host:port` (brackets of an IPv6 literal removed).
pub(crate) fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Connector {
    /// A connector for gRPC (`grpc`, ALPN h2) or HTTP/1.1.
    pub fn new(tls: Option<Arc<Tls>>, grpc: bool) -> Self {
        Self { tls, web: None, grpc, server_name: None, expect: None }
    }

    /// A connector for an HTTPS server outside the cluster, verified by
    /// `config`'s roots for the host dialed.
    pub fn web(config: Arc<rustls::ClientConfig>) -> Self {
        Self { tls: None, web: Some(config), grpc: false, server_name: None, expect: None }
    }

    /// Verify the server's certificate for `addr`'s host instead of the
    /// dialed one (a `--dial` route through a proxy).
    pub fn with_server_name(mut self, addr: &str) -> Self {
        self.server_name = Some(host_of(addr).to_owned());
        self
    }

    /// Require the server's certificate to carry this identity.
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = Some(expect);
        self
    }

    /// Dials `addr` (`host:port`).
    pub async fn dial(&self, addr: &str) -> io::Result<ClientConn> {
        let tcp = tokio::time::timeout(Duration::from_millis(DIAL_TIMEOUT_MS), TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {addr} timed out")))??;
        let _ = tcp.set_nodelay(true);
        let config = match (&self.tls, &self.web) {
            (Some(tls), _) => tls.client_config(self.grpc),
            (None, Some(web)) => web.clone(),
            (None, None) => return Ok(ClientConn::Plain(tcp)),
        };
        let host = self.server_name.as_deref().unwrap_or_else(|| host_of(addr));
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("server name `{host}`: {error}")))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), connector.connect(name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {addr} timed out")))?
            .map_err(|error| io::Error::new(error.kind(), format!("TLS with {addr}: {error}")))?;
        if let Some(expected) = &self.expect {
            let found = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(crate::identity::peer_identity);
            match found {
                Some(Ok(identity)) if expected.matches(&identity) => {}
                Some(Ok(identity)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{addr} is {identity}, not {expected}: refusing to talk to it"),
                    ));
                }
                Some(Err(error)) => {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{addr}: {error}")))
                }
                None => return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{addr}: no certificate"))),
            }
        }
        Ok(ClientConn::Tls(Box::new(stream)))
    }

    fn endpoint(addr: &str, connect_timeout: Duration) -> Result<tonic::transport::Endpoint, String> {
        Ok(tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|error| format!("endpoint `{addr}`: {error}"))?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5)))
    }

    /// A lazily connected gRPC channel to `addr` through this connector.
    pub fn channel(&self, addr: &str, connect_timeout: Duration) -> Result<tonic::transport::Channel, String> {
        Ok(Self::endpoint(addr, connect_timeout)?.connect_with_connector_lazy(self.clone()))
    }

    /// A gRPC channel to `addr`, connected (and handshaken) before it returns.
    pub async fn connect(&self, addr: &str, connect_timeout: Duration) -> Result<tonic::transport::Channel, String> {
        let endpoint = Self::endpoint(addr, connect_timeout)?;
        endpoint.connect_with_connector(self.clone()).await.map_err(|error| {
            // The cause (refused, TLS, wrong identity) is in the source chain.
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        })
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<ClientConn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host:port")))?
                .to_string();
            connector.dial(&authority).await.map(TokioIo::new)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_are_taken_from_authorities() {
        assert_eq!(super::host_of("127.0.0.1:7101"), "127.0.0.1");
        assert_eq!(super::host_of("[::1]:7101"), "::1");
        assert_eq!(super::host_of("node-1.example.com:7101"), "node-1.example.com");
    }
}
