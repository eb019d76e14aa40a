//! A minimal HTTP/1.1 client for regctl (readiness, smoke checks) and the
//! suites: any method, any headers (including a hostile or missing Host),
//! the raw status, headers and body. One request per connection; bounded in
//! time and size.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Sends `request_head` (request line and headers, without the blank line)
/// to `addr` with `Connection: close`, and reads the whole response.
pub async fn exchange(addr: &str, request_head: &str) -> io::Result<HttpResponse> {
    exchange_with_body(addr, request_head, b"").await
}

/// Like [`exchange`], with a body (its `Content-Length` is added).
pub async fn exchange_with_body(addr: &str, request_head: &str, body: &[u8]) -> io::Result<HttpResponse> {
    exchange_via(&trust::Connector::new(None, false), addr, request_head, body).await
}

/// Like [`exchange_with_body`], dialing with `connector` (mutual TLS to a
/// registry's HTTP port or an api-node's operator port).
pub async fn exchange_via(
    connector: &trust::Connector,
    addr: &str,
    request_head: &str,
    body: &[u8],
) -> io::Result<HttpResponse> {
    let exchange = async {
        let mut stream = connector.dial(addr).await?;
        let length = if body.is_empty() { String::new() } else { format!("\r\nContent-Length: {}", body.len()) };
        stream.write_all(format!("{request_head}{length}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        // A TLS peer may close without close_notify after a
        // `Connection: close` response: what was read is the answer.
        match (&mut stream).take(16 * 1024 * 1024).read_to_end(&mut raw).await {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            result => {
                result?;
            }
        }
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {addr} within 10 s"))))
}

/// `GET path` with the given headers (give `Host` yourself, or leave it out).
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
    let mut head = format!("GET {path} HTTP/1.1");
    for (name, value) in headers {
        head.push_str(&format!("\r\n{name}: {value}"));
    }
    exchange(addr, &head).await
}

/// `POST path` with the given headers and a JSON body.
pub async fn post_json(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> io::Result<HttpResponse> {
    let mut head = format!("POST {path} HTTP/1.1\r\nContent-Type: application/json");
    for (name, value) in headers {
        head.push_str(&format!("\r\n{name}: {value}"));
    }
    exchange_with_body(addr, &head, body.as_bytes()).await
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {what}"))
}

fn parse(raw: &[u8]) -> io::Result<HttpResponse> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|encoding| encoding.contains("chunked")) {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut chunked: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|window| window == b"\r\n").ok_or_else(|| bad("bad chunk"))?;
        let size = std::str::from_utf8(&chunked[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        chunked = &chunked[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if chunked.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        body.extend_from_slice(&chunked[..size]);
        chunked = &chunked[size + 2..];
    }
}
