//! Listening and dialing with the process's [`Tls`] (or in plaintext, with
//! `--insecure`): accepted connections carry the peer's verified
//! [`Identity`] in [`PeerInfo`]; every listener has a connection cap and a
//! handshake timeout, and every HTTP server header-read and keep-alive
//! timeouts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::{Identity, Tls};

/// A TLS handshake must finish within this (a client that stalls it holds a
/// connection slot, never an accept loop).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// An HTTP client must send a request's headers within this, on a new
/// connection or between requests of a kept-alive one.
pub const HTTP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Dials give up after this.
pub const DIAL_TIMEOUT_MS: u64 = 3_000;

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The identity its verified certificate carries; `None` in plaintext
    /// (`--insecure`) or when a listener with open paths was reached
    /// without a certificate.
    pub identity: Option<Arc<Identity>>,
    /// Whether the connection is TLS.
    pub secure: bool,
}

/// How a listener admits connections.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// `None`: plaintext (`--insecure`).
    pub tls: Option<Arc<Tls>>,
    /// Refuse, at the handshake, clients without a certificate from the CA.
    pub client_cert_required: bool,
    /// Connections open at once; more wait in the kernel's backlog.
    pub connections_max: usize,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection; holds its slot of the connection cap.
pub struct ServerConn {
    io: Io,
    info: PeerInfo,
    /// Until the first byte arrives: when a silent client is dropped.
    first_read_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl ServerConn {
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// Closes the connection (reads fail with `TimedOut`) unless the client
    /// sends its first byte within `timeout`. hyper's header-read timeout
    /// runs only once a request has started, and the HTTP version sniff
    /// before it has none: without this a client that connects and says
    /// nothing holds its connection slot forever.
    pub fn first_read_within(mut self, timeout: Duration) -> Self {
        self.first_read_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        self
    }
}

macro_rules! delegate_io {
    ($self:ident, $io:ident => $call:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($io) => $call,
            Io::Tls($io) => $call,
        }
    };
}

impl AsyncRead for ServerConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let result = match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_read(cx, buf),
        };
        let Some(deadline) = self.first_read_deadline.as_mut() else { return result };
        match result {
            Poll::Ready(Ok(())) if buf.filled().len() > filled => {
                self.first_read_deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client sent nothing")))
            }
            other => other,
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate_io!(self, io => Pin::new(io).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_io!(self, io => Pin::new(io).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_io!(self, io => Pin::new(io).poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate_io!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ServerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

async fn handshake(
    stream: TcpStream,
    remote: SocketAddr,
    options: &ListenOptions,
    permit: OwnedSemaphorePermit,
) -> io::Result<ServerConn> {
    let _ = stream.set_nodelay(true);
    let Some(tls) = &options.tls else {
        let info = PeerInfo { remote: Some(remote), identity: None, secure: false };
        return Ok(ServerConn { io: Io::Plain(stream), info, first_read_deadline: None, _permit: permit });
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config(options.client_cert_required));
    let stream = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let identity = match stream.get_ref().1.peer_certificates().and_then(|certs| certs.first()) {
        None => None,
        Some(leaf) => match crate::tls::peer_identity(leaf) {
            Ok(identity) => Some(Arc::new(identity)),
            // Signed by our CA but naming no identity: treated as anonymous.
            Err(error) => {
                tracing::warn!(%remote, %error, "client certificate carries no Tenantry identity");
                None
            }
        },
    };
    let info = PeerInfo { remote: Some(remote), identity, secure: true };
    Ok(ServerConn { io: Io::Tls(Box::new(stream)), info, first_read_deadline: None, _permit: permit })
}

/// Accepts connections on `listener` as a stream of handshaken
/// connections (for tonic's `serve_with_incoming` and [`serve_http`]).
/// Handshakes run concurrently, each bounded; failed ones are logged and
/// dropped, never ending the stream.
pub fn incoming(listener: TcpListener, options: ListenOptions) -> impl Stream<Item = io::Result<ServerConn>> {
    let (sender, receiver) = mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(options.connections_max.max(1)));
    let options = Arc::new(options);
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = sender.closed() => return,
            };
            let sender = sender.clone();
            let options = options.clone();
            tokio::spawn(async move {
                match handshake(stream, remote, &options, permit).await {
                    Ok(conn) => {
                        let _ = sender.send(Ok(conn)).await;
                    }
                    Err(error) => tracing::debug!(%remote, %error, "connection refused at the handshake"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish. Each request carries the connection's
/// [`PeerInfo`] as an extension.
pub async fn serve_http(
    listener: TcpListener,
    options: ListenOptions,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    use futures::StreamExt;
    let connections = incoming(listener, options);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS))
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Duration::from_secs(20));
    let builder = Arc::new(builder);
    tokio::pin!(connections);
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = connections.next() => match conn {
                Some(Ok(conn)) => conn.first_read_within(Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS)),
                Some(Err(_)) => continue,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let info = conn.info().clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(info.clone());
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, request.map(axum::body::Body::new)).await }
        });
        let builder = builder.clone();
        let watched = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(conn), service).into_owned());
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

/// Dials gRPC or HTTP servers: TCP (no Nagle), then TLS when the process
/// has a [`Tls`]; the server must prove a certificate from the cluster CA
/// for the host it is dialed by (or the `server_name` given), and, with
/// `expect`, carry exactly that identity.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<Arc<Tls>>,
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
fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Connector {
    /// A connector for gRPC (`grpc`, ALPN h2) or HTTP/1.1.
    pub fn new(tls: Option<Arc<Tls>>, grpc: bool) -> Self {
        Self { tls, grpc, server_name: None, expect: None }
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
        let Some(tls) = &self.tls else { return Ok(ClientConn::Plain(tcp)) };
        let host = self.server_name.as_deref().unwrap_or_else(|| host_of(addr));
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("server name `{host}`: {error}")))?;
        let connector = tokio_rustls::TlsConnector::from(tls.client_config(self.grpc));
        let stream = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), connector.connect(name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {addr} timed out")))?
            .map_err(|error| io::Error::new(error.kind(), format!("TLS with {addr}: {error}")))?;
        if let Some(expected) = &self.expect {
            let found =
                stream.get_ref().1.peer_certificates().and_then(|certs| certs.first()).map(crate::tls::peer_identity);
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

/// The refusal of an HTTP request at a guarded route, if any: in plaintext
/// (`--insecure`) none; over TLS, unless a certificate's identity satisfies
/// `allowed`, 401 (no identity) or 403 (`rule` says who may), as problem
/// JSON.
fn refusal(
    request: &axum::extract::Request,
    allowed: fn(&Identity) -> bool,
    rule: &str,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let refuse = |status: http::StatusCode, detail: String| {
        let body = serde_json::json!({
            "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail,
        });
        (status, [(http::header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    };
    match request.extensions().get::<PeerInfo>() {
        None => Some(refuse(http::StatusCode::INTERNAL_SERVER_ERROR, "no connection information".to_owned())),
        Some(peer) if !peer.secure => None,
        Some(PeerInfo { identity: None, .. }) => {
            Some(refuse(http::StatusCode::UNAUTHORIZED, format!("a client certificate is required: {rule}")))
        }
        Some(PeerInfo { identity: Some(identity), .. }) if allowed(identity) => None,
        Some(PeerInfo { identity: Some(identity), .. }) => {
            Some(refuse(http::StatusCode::FORBIDDEN, format!("{identity} may not: {rule}")))
        }
    }
}

/// An HTTP route guard (see [`refusal`]), for
/// `axum::middleware::from_fn_with_state(Guard { .. }, guard)`.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub allowed: fn(&Identity) -> bool,
    /// Who may, in words, for the refusal.
    pub rule: &'static str,
}

/// The middleware of a [`Guard`].
pub async fn guard(
    axum::extract::State(guard): axum::extract::State<Guard>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match refusal(&request, guard.allowed, guard.rule) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}
