//! The shared HTTP listener drops clients that connect and say nothing
//! (hyper's own header-read timeout starts only with a request), and still
//! serves one that is slow but speaks within the deadline; a unix socket
//! listener is private to its user.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trust::net::{serve_http, ListenOptions, HTTP_HEADER_READ_TIMEOUT_MS};

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_header_read_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ListenOptions { tls: None, client_cert_required: false, connections_max: 4 };
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    tokio::spawn(serve_http(listener, options, router, std::future::pending()));

    let silent = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let mut byte = [0u8; 1];
        let bound = Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS + 3_000);
        let read = tokio::time::timeout(bound, stream.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed, not left open: {read:?}");
        start.elapsed()
    };
    let slow = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS / 2)).await;
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let (closed_after, response) = tokio::join!(silent, slow);
    assert!(closed_after >= Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS - 500), "{closed_after:?}");
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("hello"), "{response}");
}

#[tokio::test]
async fn a_unix_socket_is_private_to_its_user_and_replaces_only_a_stale_socket() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");

    std::fs::write(&path, b"not a socket").unwrap();
    let error = trust::net::bind_unix(&path).unwrap_err();
    assert!(error.to_string().contains("is not a socket"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket", "the file is left alone");
    std::fs::remove_file(&path).unwrap();

    // A previous run's socket, left behind by a crash.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let listener = trust::net::bind_unix(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staging directory is left behind");

    let options = ListenOptions { tls: None, client_cert_required: false, connections_max: 4 };
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    tokio::spawn(serve_http(trust::net::Listener::Unix(listener), options, router, std::future::pending()));
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("hello"), "{response}");
}
