//! An HTTP/1.1 client (hyper) for regctl (readiness, status, smoke checks,
//! an api-node's operator port) and the suites: any method and headers
//! (including a hostile or missing Host, or HTTP/1.0), the status, headers
//! and body. One request per connection, dialed through a
//! [`trust::Connector`] (mutual TLS where the port needs it); bounded in
//! time and size.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The longest a request may take, dial and body included.
pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// The longest a streamed answer ([`send_lines`]) may take in all.
pub const HTTP_STREAM_TIMEOUT_MS: u64 = 15 * 60 * 1000;
/// The largest response body read (a line, for a streamed answer).
pub const HTTP_RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An HTTP response: status, lowercase header names, body bytes.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send. Give `Host` yourself (or leave it out, to see a
/// server refuse that).
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Send it as HTTP/1.0 instead of HTTP/1.1.
    pub http10: bool,
}

impl<'a> HttpRequest<'a> {
    /// `method path` over HTTP/1.1 with `headers` and no body.
    pub fn new(method: &'a str, path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self { method, path, headers, body: b"", http10: false }
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

fn failed(addr: &str, error: hyper::Error) -> io::Error {
    io::Error::other(format!("HTTP with {addr}: {error}"))
}

/// Dials `addr` through `connector` and sends `request`: the response, its
/// body still to read, and the connection's task (to abort when done).
async fn exchange(
    connector: &trust::Connector,
    addr: &str,
    request: &HttpRequest<'_>,
) -> io::Result<(http::Response<hyper::body::Incoming>, tokio::task::JoinHandle<()>)> {
    let mut builder = http::Request::builder().method(request.method).uri(request.path);
    if request.http10 {
        builder = builder.version(http::Version::HTTP_10);
    }
    for (name, value) in request.headers {
        builder = builder.header(*name, *value);
    }
    let outgoing = builder.body(Full::new(Bytes::copy_from_slice(request.body))).map_err(invalid)?;
    let stream = connector.dial(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| failed(addr, error))?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    match sender.send_request(outgoing).await {
        Ok(response) => Ok((response, connection)),
        Err(error) => {
            connection.abort();
            Err(failed(addr, error))
        }
    }
}

fn head(response: &http::Response<hyper::body::Incoming>) -> (u16, BTreeMap<String, String>) {
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    (response.status().as_u16(), headers)
}

fn timed_out(addr: &str, timeout: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {addr} within {} ms", timeout.as_millis()))
}

/// Sends `request` to `addr` through `connector` and reads the whole response.
pub async fn send(connector: &trust::Connector, addr: &str, request: &HttpRequest<'_>) -> io::Result<HttpResponse> {
    let whole = async {
        let (response, connection) = exchange(connector, addr, request).await?;
        let (status, headers) = head(&response);
        let body = Limited::new(response.into_body(), HTTP_RESPONSE_BYTES_MAX).collect().await;
        connection.abort();
        let body = body.map_err(|error| io::Error::other(format!("HTTP body from {addr}: {error}")))?.to_bytes();
        Ok(HttpResponse { status, headers, body: body.to_vec() })
    };
    let timeout = Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS);
    tokio::time::timeout(timeout, whole).await.unwrap_or_else(|_| Err(timed_out(addr, timeout)))
}

/// Sends `request` for an answer streamed as lines (NDJSON) that may take
/// long: each line but the last goes to `line` as it arrives, the last is the
/// response's body. Each wait (the answer's head, its next bytes) is bounded
/// by [`HTTP_REQUEST_TIMEOUT_MS`], the whole by [`HTTP_STREAM_TIMEOUT_MS`],
/// a line by [`HTTP_RESPONSE_BYTES_MAX`].
pub async fn send_lines(
    connector: &trust::Connector,
    addr: &str,
    request: &HttpRequest<'_>,
    line: &mut (dyn FnMut(&[u8]) + Send),
) -> io::Result<HttpResponse> {
    let idle = Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS);
    let streamed = async {
        let (response, connection) = tokio::time::timeout(idle, exchange(connector, addr, request))
            .await
            .unwrap_or_else(|_| Err(timed_out(addr, idle)))?;
        let (status, headers) = head(&response);
        let mut body = response.into_body();
        // `last` is the latest whole line: told once another follows it.
        let (mut pending, mut last) = (Vec::new(), None::<Vec<u8>>);
        let ended = loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => break Err(timed_out(addr, idle)),
                Ok(None) => break Ok(()),
                Ok(Some(Err(error))) => break Err(io::Error::other(format!("HTTP body from {addr}: {error}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                let whole: Vec<u8> = pending.drain(..=end).take(end).collect();
                if let Some(told) = last.replace(whole) {
                    line(&told);
                }
            }
            if pending.len() > HTTP_RESPONSE_BYTES_MAX {
                break Err(io::Error::other(format!("a line from {addr} is over {HTTP_RESPONSE_BYTES_MAX} bytes")));
            }
        };
        connection.abort();
        ended?;
        // The answer is the unterminated rest, or else the last whole line.
        let body = match last {
            Some(whole) if pending.is_empty() => whole,
            last => {
                last.inspect(|told| line(told));
                pending
            }
        };
        Ok(HttpResponse { status, headers, body })
    };
    let timeout = Duration::from_millis(HTTP_STREAM_TIMEOUT_MS);
    tokio::time::timeout(timeout, streamed).await.unwrap_or_else(|_| Err(timed_out(addr, timeout)))
}

/// `GET path` in plaintext with the given headers.
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
    send(&trust::Connector::new(None, false), addr, &HttpRequest::new("GET", path, headers)).await
}

/// `POST path` in plaintext with the given headers and a JSON body.
pub async fn post_json(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> io::Result<HttpResponse> {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let request = HttpRequest { body: body.as_bytes(), ..HttpRequest::new("POST", path, &all) };
    send(&trust::Connector::new(None, false), addr, &request).await
}

/// `GET path` on a plaintext HTTP port (a sidecar's), bounded by
/// `timeout`: the status code and the body.
pub async fn get_text(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    get_text_via(&trust::Connector::new(None, false), addr, path, timeout).await
}

/// `GET path` through `connector` (a registry node's HTTP port: `/readyz`,
/// `/status`, `/metrics`, over TLS unless `--insecure`).
pub async fn get_text_via(
    connector: &trust::Connector,
    addr: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let headers = [("Host", addr)];
    let request = HttpRequest::new("GET", path, &headers);
    let response = tokio::time::timeout(timeout, send(connector, addr, &request)).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("GET {addr}{path} timed out")))
    })?;
    Ok((response.status, response.text()))
}
