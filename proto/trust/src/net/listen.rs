//! Accepting: connections capped, TLS handshakes bounded in time, the
//! peer's identity attached; HTTP served with header-read timeouts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{ListenOptions, PeerInfo, HANDSHAKE_TIMEOUT_MS, HTTP_HEADER_READ_TIMEOUT_MS};

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Unix(UnixStream),
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
            Io::Unix($io) => $call,
        }
    };
}

impl AsyncRead for ServerConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let result = match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_read(cx, buf),
            Io::Unix(io) => Pin::new(io).poll_read(cx, buf),
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
            Io::Unix(io) => io.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ServerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// A bound listener: TCP (TLS unless `--insecure`), or a unix socket for
/// a local API (plaintext: its file mode, 0600 from [`bind_unix`], decides
/// who may connect).
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener::Tcp(listener)
    }
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => listener.accept().await.map(|(stream, remote)| Accepted::Tcp(stream, remote)),
            Listener::Unix(listener) => listener.accept().await.map(|(stream, _)| Accepted::Unix(stream)),
        }
    }
}

/// Binds a unix socket at `path` that only this user may connect to: bound
/// inside a fresh 0700 directory beside it, set to 0600, then renamed into
/// place, so no other user can connect in between. A stale socket at
/// `path` (a previous run's) is replaced; any other file there is refused.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    let failed = |error: io::Error| io::Error::new(error.kind(), format!("{shown}: {error}"));
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => std::fs::remove_file(path).map_err(failed)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{shown}: exists and is not a socket; refusing to replace it"),
            ))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed(error)),
    }
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let private = tempfile::Builder::new().prefix(".bind-").tempdir_in(parent).map_err(failed)?;
    let staged = private.path().join("socket");
    let listener = UnixListener::bind(&staged).map_err(failed)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    std::fs::rename(&staged, path).map_err(failed)?;
    Ok(listener)
}

async fn handshake(
    accepted: Accepted,
    options: &ListenOptions,
    permit: OwnedSemaphorePermit,
) -> io::Result<ServerConn> {
    let (stream, remote) = match accepted {
        Accepted::Tcp(stream, remote) => (stream, remote),
        Accepted::Unix(stream) => {
            let info = PeerInfo { remote: None, identity: None, secure: false };
            return Ok(ServerConn { io: Io::Unix(stream), info, first_read_deadline: None, _permit: permit });
        }
    };
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
        Some(leaf) => match crate::identity::peer_identity(leaf) {
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
pub fn incoming(listener: impl Into<Listener>, options: ListenOptions) -> impl Stream<Item = io::Result<ServerConn>> {
    let listener = listener.into();
    let (sender, receiver) = mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(options.connections_max.max(1)));
    let options = Arc::new(options);
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let accepted = tokio::select! {
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
                let remote = match &accepted {
                    Accepted::Tcp(_, remote) => Some(*remote),
                    Accepted::Unix(_) => None,
                };
                match handshake(accepted, &options, permit).await {
                    Ok(conn) => {
                        let _ = sender.send(Ok(conn)).await;
                    }
                    Err(error) => tracing::debug!(?remote, %error, "connection refused at the handshake"),
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
    listener: impl Into<Listener>,
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
