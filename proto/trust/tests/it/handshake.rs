//! Certificates from `certs` work end to end: a server and a client
//! handshake over loopback, each seeing the other's identity; strangers,
//! and wrong identities are refused (certificates outside their dates: the
//! unit test in `tls.rs`).

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trust::certs::{self, LeafOptions};
use trust::net::{incoming, Connector, Expect, ListenOptions};
use trust::{AgentKind, Identity, Role, Tls, TlsFiles};

fn region(name: &str) -> proto::Region {
    proto::Region::parse(name).unwrap()
}

fn issue(dir: &Path, identity: &Identity, hosts: &[&str], days: Option<i64>) -> Arc<Tls> {
    let options = LeafOptions { hosts: hosts.iter().map(|host| (*host).to_owned()).collect(), days };
    let (cert, key) = certs::issue(dir, identity, &options).unwrap();
    Tls::load(TlsFiles { ca: dir.join(certs::CA_CERT_FILE), cert, key }).unwrap()
}

#[tokio::test]
async fn mutual_tls_carries_identities_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "test", false).unwrap();
    assert!(certs::init_ca(dir.path(), "test", false).is_err(), "a second init must not replace the CA");
    let node = Identity::Node { id: 1, region: region("us-east") };
    let server_tls = issue(dir.path(), &node, &["127.0.0.1"], None);
    let operator = Identity::Operator { name: "alice".to_owned(), role: Role::Admin };
    let client_tls = issue(dir.path(), &operator, &[], None);
    let key_mode = std::fs::metadata(dir.path().join("operator-alice.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777, 0o600);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let options = ListenOptions { tls: Some(server_tls.clone()), client_cert_required: true, connections_max: 8 };
    let mut connections = Box::pin(incoming(listener, options));
    let server = tokio::spawn(async move {
        let mut conn = connections.next().await.unwrap().unwrap();
        let identity = conn.info().identity.clone();
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte).await.unwrap();
        conn.write_all(&byte).await.unwrap();
        conn.flush().await.unwrap();
        (identity, connections)
    });

    // The client verifies the server is node 1, and the server sees alice.
    let connector = Connector::new(Some(client_tls.clone()), false).expecting(Expect::Exactly(node.clone()));
    let mut conn = connector.dial(&addr).await.unwrap();
    conn.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte).await.unwrap();
    let (identity, _connections) = server.await.unwrap();
    assert_eq!(identity.as_deref(), Some(&operator));

    // Expecting another node is refused after the handshake.
    let wrong = Connector::new(Some(client_tls.clone()), false)
        .expecting(Expect::Exactly(Identity::Node { id: 2, region: region("eu-west") }));
    let error = wrong.dial(&addr).await.err().unwrap();
    assert!(error.to_string().contains("not node:2"), "{error}");

    // A client of another CA is refused.
    let foreign = tempfile::tempdir().unwrap();
    certs::init_ca(foreign.path(), "other", false).unwrap();
    let stranger = issue(
        foreign.path(),
        &Identity::Agent { id: "x".to_owned(), kind: AgentKind::Api, region: region("us-east") },
        &[],
        None,
    );
    assert!(Connector::new(Some(stranger), false).dial(&addr).await.is_err());
}

#[test]
fn certificates_name_their_identity_and_keys_must_fit() {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "test", false).unwrap();
    let agent =
        Identity::Agent { id: "web-1@eu-west".to_owned(), kind: AgentKind::Frontend, region: region("eu-west") };
    let (cert, key) = certs::issue(dir.path(), &agent, &LeafOptions::default()).unwrap();
    let listed = certs::list(dir.path()).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|info| info.is_ca));
    assert!(listed.iter().any(|info| info.identity.as_ref().ok() == Some(&agent)));

    // A certificate of a wrong CA does not fit this one's key pairing rules,
    // and a key of another certificate is refused naming the key file.
    let other = Identity::Operator { name: "bob".to_owned(), role: Role::Viewer };
    let (_, other_key) = certs::issue(dir.path(), &other, &LeafOptions::default()).unwrap();
    let error =
        Tls::load(TlsFiles { ca: dir.path().join(certs::CA_CERT_FILE), cert: cert.clone(), key: other_key.clone() })
            .err()
            .unwrap()
            .to_string();
    assert!(error.contains("operator-bob.key"), "{error}");
    assert!(Tls::load(TlsFiles { ca: dir.path().join(certs::CA_CERT_FILE), cert, key }).is_ok());
}
