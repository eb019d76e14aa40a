//! Trust (DESIGN.md "Trust"): hostile peers and clients against a secure
//! cluster. Plaintext and foreign-CA clients get nothing on any port; every
//! role is refused what it may not do; an agent certificate speaks only for
//! itself; only node certificates speak Raft; the audit actor is the
//! certificate's identity. One suite runs `--insecure` on purpose.

use std::time::Duration;

use agent::Kind;
use futures::StreamExt;
use proto::v1::{self, agent_message};
use registry_client::{Client, Error, WriteOptions};
use trust::{AgentKind, Connector, Role};

use crate::{documents, phase};
use cluster_tests::certs::{self, TestCerts};
use cluster_tests::http::HttpRequest;
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

/// The Raft format the nodes under test speak (`x-tenantry-raft-format`;
/// `registry::wire::FORMAT`, which the suites may not link).
const RAFT_FORMAT: u32 = 4;

/// `message` as a Raft request of the nodes' format.
fn raft_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-tenantry-raft-format", RAFT_FORMAT.into());
    request
}

fn raw_registry(connector: Connector, addr: &str) -> v1::registry_client::RegistryClient<tonic::transport::Channel> {
    v1::registry_client::RegistryClient::new(connector.channel(addr, Duration::from_secs(2)).unwrap())
}

/// Whether a call failed below gRPC (no connection, no handshake), rather
/// than being answered by the server.
fn transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
        || mentions_tls(status.message())
}

fn mentions_tls(message: &str) -> bool {
    message.contains("tls") || message.contains("TLS")
}

fn hello(agent_id: &str, region: &str, kind: v1::AgentKind) -> v1::AgentMessage {
    v1::AgentMessage {
        kind: Some(agent_message::Kind::Hello(v1::Hello {
            agent_id: agent_id.to_owned(),
            region: region.to_owned(),
            kind: kind as i32,
            since_revision: 0,
            cluster_id: String::new(),
        })),
    }
}

/// Opens an AgentSync stream with `hello`; the status of its first answer.
async fn sync_status(connector: Connector, addr: &str, hello: v1::AgentMessage) -> tonic::Code {
    let channel = connector.channel(addr, Duration::from_secs(2)).unwrap();
    let (_keep_open, outbound) = tokio::sync::mpsc::channel::<v1::AgentMessage>(1);
    let outbound = tokio_stream::once(hello).chain(tokio_stream::wrappers::ReceiverStream::new(outbound));
    match v1::agent_sync_client::AgentSyncClient::new(channel).sync(outbound).await {
        Err(status) => status.code(),
        Ok(response) => match response.into_inner().message().await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_wrong_roles_are_refused_everywhere() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("adversary")).await?;
    let leader = cluster.leader().await?;
    let node = cluster.node(leader);
    let api = api_nodes::start(&cluster, 1).await?;
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let admin = cluster.client();
    admin.create_tenant("acme", documents(1), &WriteOptions::default()).await?;

    phase("plaintext clients get nothing from any gRPC or TLS HTTP port");
    let plaintext = Connector::new(None, true);
    for id in 1..=3 {
        let refused = raw_registry(plaintext.clone(), &cluster.node(id).grpc)
            .create_tenant(v1::CreateTenantRequest { tenant_id: "evil".to_owned(), ..Default::default() })
            .await
            .unwrap_err();
        // A transport failure (the TLS server's alert is no HTTP/2), never an answer.
        assert!(transport_failure(&refused), "node {id}: {refused:?}");
        let http = cluster_tests::http::get(&cluster.node(id).http, "/status", &[("Host", "x")]).await;
        assert!(
            http.is_err() || http.as_ref().is_ok_and(|response| response.status >= 400),
            "node {id} HTTP: {http:?}"
        );
    }
    let admin_port =
        cluster_tests::http::post_json(&api.admin, "/admin/moves/acme/copy?began_revision=1", &[("Host", "x")], "")
            .await;
    assert!(admin_port.is_err() || admin_port.as_ref().is_ok_and(|response| response.status >= 400), "{admin_port:?}");

    let missing = admin.get_tenant("evil", v1::Consistency::Linearizable).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "nothing was written");

    phase("a client of another CA, even an 'admin', is refused at the handshake");
    let foreign = TestCerts::new(&cluster.dir.join("foreign-ca"))?;
    let foreign_admin = Client::new(std::slice::from_ref(&node.grpc), Some(foreign.operator(Role::Admin)?))?;
    let refused = foreign_admin.save_snapshot(|_| {}).await.unwrap_err();
    assert!(matches!(refused, Error::Unavailable { .. }) && mentions_tls(&refused.to_string()), "{refused:?}");
    let foreign_http = Connector::new(Some(foreign.operator(Role::Admin)?), false);
    assert!(registry_client::http::get_text_via(&foreign_http, &node.http, "/status", Duration::from_secs(5))
        .await
        .is_err());

    phase("a viewer reads, without private bundles or integrations, and writes nothing");
    let viewer = cluster.client_as(Role::Viewer);
    let seen = viewer.get_tenant("acme", v1::Consistency::Linearizable).await?.tenant.expect("tenant");
    assert!(seen.private_bundle.is_none() && seen.integrations_json.is_empty(), "{seen:?}");
    assert!(admin
        .get_tenant("acme", v1::Consistency::Linearizable)
        .await?
        .tenant
        .expect("tenant")
        .private_bundle
        .is_some());
    // The history's documents likewise: an admin's carry integrations, a viewer's none.
    let documented = |history: v1::HistoryResponse| history.entries.into_iter().find_map(|entry| entry.documents);
    let theirs = documented(viewer.history("acme", 10, true).await?).expect("the viewer's history has documents");
    assert!(theirs.config_json.is_some() && theirs.integrations_json.is_none(), "{theirs:?}");
    let ours = documented(admin.history("acme", 10, true).await?).expect("the admin's history has documents");
    assert!(ours.integrations_json.is_some(), "{ours:?}");
    let refused = viewer.create_tenant("evil", documents(1), &WriteOptions::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.to_string().contains("needs the operator role"), "{refused}");

    phase("an operator writes, but takes no snapshot, changes no membership and forces no failover");
    let operator = cluster.client_as(Role::Operator);
    let options = WriteOptions { actor: "ci-bot".to_owned(), reason: "adversary".to_owned(), ..Default::default() };
    operator.update_tenant("acme", documents(2), &options).await?;
    assert_eq!(operator.save_snapshot(|_| {}).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(operator.change_member(3, false).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    let forced = operator.failover_tenant("acme", "eu-west", true, &WriteOptions::default()).await.unwrap_err();
    assert_eq!(forced.code(), tonic::Code::PermissionDenied, "{forced:?}");

    phase("the audit actor is the certificate's identity; the client's word is kept as 'via'");
    let history = admin.history("acme", 1, false).await?;
    assert_eq!(history.entries[0].actor, "operator:operator via ci-bot");

    phase("agent and node certificates may not call the operators' API");
    let agent_cert = certs.tls(&certs::agent("web-9", AgentKind::Api, "us-east")?, &[])?;
    let node_cert = certs.tls(&certs::node(leader, node.region)?, &[])?;
    for (who, tls) in [("agent", agent_cert.clone()), ("node", node_cert.clone())] {
        let status = Client::new(std::slice::from_ref(&node.grpc), Some(tls))?
            .create_tenant("evil", documents(1), &WriteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{who}: {status:?}");
    }

    phase("a forged AppendEntries or Vote from an admin certificate is refused, the term unchanged");
    let term = cluster.status(leader).await?.term;
    let admin_channel =
        Connector::new(cluster.operator_tls(Role::Admin), true).channel(&node.grpc, Duration::from_secs(2)).unwrap();
    let mut raft = v1::raft_internal_client::RaftInternalClient::new(admin_channel);
    let forged_vote = v1::RaftVote { term: term + 100, node_id: 9, committed: true };
    let append = v1::RaftAppendRequest { vote: Some(forged_vote), ..Default::default() };
    let vote = v1::RaftVoteRequest { vote: Some(forged_vote), ..Default::default() };
    assert_eq!(
        raft.append_entries(raft_request(append.clone())).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(raft.vote(raft_request(vote)).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(cluster.status(leader).await?.term, term);

    phase("a node's certificate may not campaign or lead as another member");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let other = (1..=3).find(|id| *id != leader && *id != follower).expect("a third member");
    let follower_cert = certs.tls(&certs::node(follower, cluster.node(follower).region)?, &[])?;
    let follower_channel =
        Connector::new(Some(follower_cert), true).channel(&node.grpc, Duration::from_secs(2)).unwrap();
    let mut raft_as_follower = v1::raft_internal_client::RaftInternalClient::new(follower_channel);
    let as_other = v1::RaftVote { term: term + 100, node_id: other, committed: false };
    for call in ["vote", "append_entries"] {
        let status = match call {
            "vote" => {
                let vote = v1::RaftVoteRequest { vote: Some(as_other), ..Default::default() };
                raft_as_follower.vote(raft_request(vote)).await.map(drop)
            }
            _ => {
                let append = v1::RaftAppendRequest { vote: Some(as_other), ..Default::default() };
                raft_as_follower.append_entries(raft_request(append)).await.map(drop)
            }
        }
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{call}: {status:?}");
        assert!(status.message().contains(&format!("speaks for node {other}")), "{call}: {status:?}");
    }
    assert_eq!(cluster.status(leader).await?.term, term);

    phase("a message of another Raft format (a mixed build) is refused, naming both formats");
    let as_itself = v1::RaftVote { term: term + 100, node_id: follower, committed: false };
    let mut old_build = tonic::Request::new(v1::RaftVoteRequest { vote: Some(as_itself), ..Default::default() });
    old_build.metadata_mut().insert("x-tenantry-raft-format", "1".parse()?);
    let status = raft_as_follower.vote(old_build).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&format!("Raft format 1 and this node format {RAFT_FORMAT}")), "{status:?}");
    let unmarked = v1::RaftVoteRequest { vote: Some(as_itself), ..Default::default() };
    let status = raft_as_follower.vote(unmarked).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "a build that sends no format: {status:?}");
    assert_eq!(cluster.status(leader).await?.term, term);

    phase("a node of another cluster under the same CA is refused, the term unchanged");
    let node_channel = Connector::new(Some(node_cert), true).channel(&node.grpc, Duration::from_secs(2)).unwrap();
    let mut raft = v1::raft_internal_client::RaftInternalClient::new(node_channel);
    let other_cluster = ulid::Ulid::new().to_string();
    for call in ["append_entries", "vote"] {
        let status = match call {
            "append_entries" => {
                let mut request = raft_request(append.clone());
                request.metadata_mut().insert("x-tenantry-cluster-id", other_cluster.parse()?);
                raft.append_entries(request).await.map(drop)
            }
            _ => {
                let mut request = raft_request(vote);
                request.metadata_mut().insert("x-tenantry-cluster-id", other_cluster.parse()?);
                raft.vote(request).await.map(drop)
            }
        }
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{call}: {status:?}");
        assert!(status.message().contains(&other_cluster), "{call}: names the other cluster: {status:?}");
    }
    assert_eq!(cluster.status(leader).await?.term, term);

    phase("an agent speaks only for its certificate: other ids, kinds or regions are refused");
    let frontend = certs.tls(&certs::agent("web-1", AgentKind::Frontend, "us-east")?, &[])?;
    let frontend = Connector::new(Some(frontend), true);
    let asks_for_api = sync_status(frontend.clone(), &node.grpc, hello("web-1", "us-east", v1::AgentKind::Api)).await;
    assert_eq!(asks_for_api, tonic::Code::PermissionDenied, "a frontend certificate asking for the API scope");
    let impostor = sync_status(frontend.clone(), &node.grpc, hello("victim", "us-east", v1::AgentKind::Frontend)).await;
    assert_eq!(impostor, tonic::Code::PermissionDenied, "claiming another agent's id");
    let elsewhere = sync_status(frontend.clone(), &node.grpc, hello("web-1", "eu-west", v1::AgentKind::Frontend)).await;
    assert_eq!(elsewhere, tonic::Code::PermissionDenied, "claiming another region");
    assert_eq!(
        sync_status(frontend, &node.grpc, hello("web-1", "us-east", v1::AgentKind::Frontend)).await,
        tonic::Code::Ok
    );
    let operator_sync = Connector::new(cluster.operator_tls(Role::Admin), true);
    let code = sync_status(operator_sync, &node.grpc, hello("web-1", "us-east", v1::AgentKind::Frontend)).await;
    assert_eq!(code, tonic::Code::PermissionDenied, "an operator certificate on the agent stream");

    phase("an agent whose certificate disagrees with its flags does not start");
    let mismatched = agent::AgentConfig {
        agent_id: "web-2".to_owned(),
        region: "us-east".to_owned(),
        kind: Kind::Api,
        endpoints: cluster.endpoints_from(1),
        data_dir: None,
        base_domains: vec![],
        bundle_bytes_max: agent::limits::BUNDLE_BYTES_MAX_DEFAULT,
        cluster_id: None,
        tls: Some(agent_cert),
    };
    let error = agent::Agent::start(mismatched).await.err().expect("refused").to_string();
    assert!(error.contains("spiffe://tenantry/agent/us-east/api/web-9"), "{error}");

    phase("the operator port of an api-node needs the operator role for copies");
    let viewer_connector = Connector::new(cluster.operator_tls(Role::Viewer), false);
    let headers = [("Host", api.admin.as_str())];
    let copy = HttpRequest::new("POST", "/admin/moves/acme/copy?began_revision=1", &headers);
    let refused = cluster_tests::http::send(&viewer_connector, &api.admin, &copy).await?;
    assert_eq!(refused.status, 403, "{}", refused.text());

    cluster.passed();
    Ok(())
}

/// A theme whose logo is `svg` (embedded as the compiler embeds it; the
/// content rules refuse it before the metadata is compared).
fn theme_with_svg(svg: &str) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(svg);
    serde_json::json!({ "logo": { "mediaType": "image/svg+xml", "data": data } }).to_string()
}

/// Hostile documents, each refused by a named rule, quickly (the worst SVG
/// used to cost seconds inside apply on every replica), while an unrelated
/// small write goes through, and taking no log index: only that write's
/// entry is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_writes_are_refused_quickly_and_take_no_log_index() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("adversary-inputs")).await?;
    let leader = cluster.leader().await?;
    let operator = cluster.client_as(Role::Operator);
    operator.create_tenant("acme", documents(1), &WriteOptions::default()).await?;
    operator.create_tenant("globex", documents(1), &WriteOptions::default()).await?;
    let before = cluster.status(leader).await?.last_log_index;

    phase("eight 64 KiB 'ononon…' logos and a small write, sent at once");
    let ononon = format!(r#"<svg width="64" height="64" class="{}"></svg>"#, "on".repeat(32 * 1024 - 30));
    let filler = format!(r#"<svg width="64" height="64"><text>{}</text></svg>"#, "on".repeat(32 * 1024 - 30));
    let start = std::time::Instant::now();
    let hostile = (0..8).map(|index| {
        let operator = &operator;
        let svg =
            if index % 2 == 0 { ononon.replace("class", "onclick") } else { filler.replace("<text>", "<script>") };
        async move {
            let theme = v1::Documents { theme_json: Some(theme_with_svg(&svg)), ..Default::default() };
            operator.update_tenant("acme", theme, &WriteOptions::default()).await
        }
    });
    let small = async {
        let written = operator.update_tenant("globex", documents(2), &WriteOptions::default()).await;
        (written, start.elapsed())
    };
    let (refusals, (written, small_took)) = tokio::join!(futures::future::join_all(hostile), small);
    written?;
    let took = start.elapsed();
    for refused in refusals {
        let status = refused.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.to_string().starts_with("documents.theme/logo: "), "{status}");
    }
    assert!(took < Duration::from_secs(2), "the hostile writes took {took:?}");
    assert!(small_took < Duration::from_secs(2), "the small write waited {small_took:?}");

    phase("URLs, allowlists and secrets a browser or a replica would get wrong");
    let config = |extra: &str| v1::Documents {
        config_json: Some(format!(r#"{{"public":{{"n":3}},"allowedHosts":["hooks.acme.example"]{extra}}}"#)),
        ..Default::default()
    };
    for (documents, field, rule) in [
        (config(r#","public2":{"hook":"HTTPS://10.0.0.1/x"}"#), "documents.config/public2/hook", "ssrf"),
        (config(r#","public2":{"hook":"https://0x7f000001/x"}"#), "documents.config/public2/hook", "ssrf"),
        (config(r#","public2":{"hook":"//hooks.acme.example/x"}"#), "documents.config/public2/hook", "https"),
        (config(r#","customDomains":[],"allowedHosts":["*.com"]"#), "documents.config/allowedHosts/0", "host-name"),
        (config(r#","stripe_api_key":4242424242424242"#), "documents.config/stripe_api_key", "secret-key"),
    ] {
        let error = operator.update_tenant("acme", documents, &WriteOptions::default()).await.expect_err(field);
        let Error::Invalid { field: named, rule: broken, message } = &error else {
            panic!("{field}: expected INVALID_ARGUMENT, got {error:?}");
        };
        assert!(message.starts_with(&format!("{field}: ")) && named == field, "{field}: {message}");
        assert_eq!(broken, rule, "{field}: {error:?}");
        assert!(!message.contains("4242"), "a secret is never echoed: {message}");
    }

    phase("only the small write took a log index");
    let after = cluster.status(leader).await?.last_log_index;
    assert_eq!(after, before + 1, "refused writes are not proposed");
    cluster.passed();
    Ok(())
}

/// Rotation: a node's certificate is reissued into the same files and the
/// node gets SIGHUP. It serves the new certificate (its status shows the new
/// expiry) without dropping the agent stream that was open, which keeps
/// receiving writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_on_sighup_without_dropping_streams() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("adversary-rotation")).await?;
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let client = cluster.client();
    client.create_tenant("acme", documents(1), &WriteOptions::default()).await?;
    let agent = cluster_tests::agents::start(&cluster, "rotation", 1, Kind::Frontend, None).await?;
    let written = client.update_tenant("acme", documents(2), &WriteOptions::default()).await?;
    cluster_tests::agents::wait_for(&agent, written.revision).await?;
    let sessions = agent.stats().sessions.load(std::sync::atomic::Ordering::Relaxed);
    let before = cluster.status(1).await?.cert_not_after_unix_s;

    phase("node 1's certificate is reissued for 30 days into the same files, then SIGHUP");
    let node = cluster.node(1);
    let host = node.grpc.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host).to_owned();
    let options = trust::certs::LeafOptions { hosts: vec![host, "127.0.0.1".to_owned()], days: Some(30) };
    trust::certs::issue(&certs.dir, &certs::node(1, node.region)?, &options)?;
    let pid = node.pid().ok_or_else(|| anyhow::anyhow!("node 1 has no pid"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGHUP)?;
    let after = cluster_tests::wait::until("node 1 to serve the new certificate", Duration::from_secs(10), || async {
        let now = cluster.status(1).await.ok()?.cert_not_after_unix_s;
        (now != before).then_some(now)
    })
    .await?;
    let thirty_days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64 + 30 * 86_400;
    assert!(after.abs_diff(thirty_days) < 3_600, "the new certificate ends in 30 days: {after} vs {thirty_days}");

    phase("the open agent stream is the same session and still receives writes");
    let written = client.update_tenant("acme", documents(3), &WriteOptions::default()).await?;
    cluster_tests::agents::wait_for(&agent, written.revision).await?;
    assert_eq!(agent.stats().sessions.load(std::sync::atomic::Ordering::Relaxed), sessions, "no reconnect");
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_cluster_runs_in_plaintext_only_when_asked() -> anyhow::Result<()> {
    phase("a node without certificates and without --insecure refuses to start");
    let secure = RegistryCluster::prepare(ClusterOptions::new("adversary-no-certs"))?;
    let node = secure.node(1);
    let output = std::process::Command::new(cluster_tests::binaries::binary("registry"))
        .args(["serve", "--id", "1", "--region", "us-east", "--grpc", &node.grpc, "--http", &node.http])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(["--peer", &format!("1=us-east@{}", node.grpc)])
        .env_remove("TENANTRY_CA")
        .env_remove("TENANTRY_CERT")
        .env_remove("TENANTRY_KEY")
        .output()?;
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--ca, --cert, --key") && said.contains("--insecure"), "{said}");
    secure.passed();

    phase("with --insecure: plaintext, the client's actor believed, and a loud warning");
    let cluster = RegistryCluster::start(ClusterOptions::new("adversary-insecure").insecure()).await?;
    let client = cluster.client();
    let options = WriteOptions { actor: "bob".to_owned(), ..Default::default() };
    client.create_tenant("acme", documents(1), &options).await?;
    assert_eq!(client.history("acme", 1, false).await?.entries[0].actor, "bob");
    let log = std::fs::read_to_string(&cluster.node(1).log)?;
    assert!(log.contains("running with --insecure"), "the node warns");
    cluster.passed();
    Ok(())
}
