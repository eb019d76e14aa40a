//! Who may call what, checked for every gRPC request in one place: a tower
//! layer in front of every service. It reads the identity the connection's
//! certificate proved ([`trust::PeerInfo`]), resolves a forwarded write to
//! its original caller, refuses what the caller's role does not allow, and
//! hands the handlers a [`Caller`] for audit actors and field-level rules.
//!
//! Default deny: a method missing from [`access`] is refused to everyone.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, BoxFuture, Service};
use tonic::Status;
use trust::{Identity, PeerInfo, Role};

use super::network::CLUSTER_ID_HEADER;
use crate::store::StateView;
use crate::wire;

/// Set by a follower on a write it forwards to the leader: the original
/// caller's identity URI. Believed only from a node certificate.
pub(crate) const FORWARDED_FOR_HEADER: &str = "x-tenantry-forwarded-for";

/// What a method needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// An operator certificate with at least this role.
    Role(Role),
    /// A registry node (Raft traffic, read index).
    Node,
    /// An agent (the sync stream).
    Agent,
    /// Any identity of the cluster CA (health checks, reflection).
    AnyIdentity,
}

/// The access table.
fn access(path: &str) -> Option<Access> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    Some(match (service, method) {
        ("tenantry.v1.Registry", method) => match method {
            "GetTenant" | "ListTenants" | "History" | "ClusterStatus" | "GetTopology" => Access::Role(Role::Viewer),
            "CreateTenant" | "UpdateTenant" | "DeleteTenant" | "RollbackTenant" | "StageCanary" | "PromoteCanary"
            | "AbortCanary" | "PinTenant" | "FenceTenant" | "FailoverTenant" | "MoveTenant" | "SetRegionStatus"
            | "AddShard" | "DrainShard" => Access::Role(Role::Operator),
            "AddLearner" | "PromoteMember" | "RemoveMember" | "SaveSnapshot" => Access::Role(Role::Admin),
            _ => return None,
        },
        ("tenantry.v1.AgentAdmin", "ListAgents") => Access::Role(Role::Viewer),
        ("tenantry.v1.RaftInternal", _) => Access::Node,
        ("tenantry.v1.AgentSync", "Sync") => Access::Agent,
        ("grpc.health.v1.Health", _)
        | ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => Access::AnyIdentity,
        _ => return None,
    })
}

/// The path of the gRPC method a request called (`/tenantry.v1.Registry/CreateTenant`),
/// set by the layer, so a follower can forward the request as it came.
#[derive(Debug, Clone)]
pub(crate) struct CalledPath(pub(crate) http::uri::PathAndQuery);

/// The caller of a request, as the handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `None` only with `--insecure`: nobody is authenticated.
    pub(crate) identity: Option<Arc<Identity>>,
}

impl Caller {
    /// The audit actor: the certificate's identity; what the client said
    /// about itself is kept only as "via". Without TLS, the client's word.
    pub(crate) fn actor(&self, client_actor: &str) -> String {
        match &self.identity {
            None if client_actor.is_empty() => "unknown".to_owned(),
            None => client_actor.to_owned(),
            Some(identity) => {
                let identity = identity.to_string();
                if client_actor.is_empty() || client_actor == identity {
                    identity
                } else {
                    format!("{identity} via {client_actor}")
                }
            }
        }
    }

    /// Whether the caller has at least `role` (always, without TLS).
    pub(crate) fn has_role(&self, role: Role) -> bool {
        match &self.identity {
            None => true,
            Some(identity) => identity.role().is_some_and(|held| held >= role),
        }
    }

    /// Refuses a field-level action (e.g. `force`) the caller's role does not allow.
    pub(crate) fn require(&self, role: Role, what: &str) -> Result<(), Status> {
        if self.has_role(role) {
            return Ok(());
        }
        Err(denied(self.identity.as_deref(), &format!("{what} needs the {} role", role.as_str())))
    }

    /// The agent identity of an `AgentSync` caller (`None` without TLS).
    pub(crate) fn agent(&self) -> Option<&Identity> {
        self.identity.as_deref().filter(|identity| matches!(identity, Identity::Agent { .. }))
    }

    /// The header value a forwarding node sets (`None` without TLS).
    pub(crate) fn forwarded_for(&self) -> Option<String> {
        self.identity.as_ref().map(|identity| identity.uri())
    }
}

/// The caller of a request that reached a handler without passing the
/// layer (a direct, in-process call): trusted like `--insecure`.
pub(crate) fn caller<T>(request: &tonic::Request<T>) -> Caller {
    request.extensions().get::<Caller>().cloned().unwrap_or(Caller { identity: None })
}

fn denied(identity: Option<&Identity>, rule: &str) -> Status {
    let who = match identity {
        Some(identity @ Identity::Operator { role, .. }) => format!("{identity} (role {})", role.as_str()),
        Some(identity) => identity.to_string(),
        None => "an anonymous caller".to_owned(),
    };
    Status::permission_denied(format!("{who}: {rule}"))
}

/// Decides a request: the caller, or the refusal.
fn authorize(path: &str, peer: Option<&PeerInfo>, forwarded_for: Option<&str>) -> Result<Caller, Status> {
    let Some(peer) = peer.filter(|peer| peer.secure) else {
        // --insecure: no identities, nothing to check.
        return Ok(Caller { identity: None });
    };
    let Some(identity) = peer.identity.clone() else {
        return Err(Status::unauthenticated("a client certificate with a Tenantry identity is required"));
    };
    let (caller, forwarded) = match (forwarded_for, identity.as_ref()) {
        (None, _) => (identity, false),
        (Some(uri), Identity::Node { .. }) => {
            let original = Identity::from_uri(uri)
                .map_err(|error| Status::permission_denied(format!("{FORWARDED_FOR_HEADER}: {error}")))?;
            if !matches!(original, Identity::Operator { .. }) {
                return Err(denied(Some(&original), "only operators' requests are forwarded"));
            }
            (Arc::new(original), true)
        }
        (Some(_), other) => return Err(denied(Some(other), "only registry nodes may forward requests")),
    };
    let method = path.rsplit('/').next().unwrap_or(path);
    let allowed = match access(path) {
        None => return Err(denied(Some(&caller), &format!("`{path}` is not in the access table"))),
        Some(Access::AnyIdentity) => true,
        Some(Access::Node) => matches!(*caller, Identity::Node { .. }) && !forwarded,
        Some(Access::Agent) => matches!(*caller, Identity::Agent { .. }),
        Some(Access::Role(role)) => caller.role().is_some_and(|held| held >= role),
    };
    if !allowed {
        let needs = match access(path) {
            Some(Access::Role(role)) => format!("needs the {} role", role.as_str()),
            Some(Access::Node) => "only registry nodes may call it".to_owned(),
            Some(Access::Agent) => "only agents may call it".to_owned(),
            _ => "not allowed".to_owned(),
        };
        return Err(denied(Some(&caller), &format!("{method}: {needs}")));
    }
    Ok(Caller { identity: Some(caller) })
}

/// Refuses a request that names another cluster than this node's (see
/// [`CLUSTER_ID_HEADER`]). A caller or a node that does not know its cluster
/// yet (the first moments of a new cluster) is not refused.
fn same_cluster(view: &StateView, theirs: Option<&str>) -> Result<(), Status> {
    let (Some(theirs), Some(ours)) = (theirs, view.read().state.cluster_id) else {
        return Ok(());
    };
    if theirs == ours.to_string() {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "{CLUSTER_ID_HEADER}: this node is a member of cluster {ours} and the caller of cluster {theirs}; \
         a member of another cluster (e.g. one from before a restore) is refused"
    )))
}

/// Refuses Raft traffic of another format than this build's (see
/// [`wire::FORMAT_HEADER`]; builds before it sent none).
fn same_raft_format(path: &str, theirs: Option<&str>) -> Result<(), Status> {
    if !path.starts_with(RAFT_SERVICE) {
        return Ok(());
    }
    let theirs = theirs.unwrap_or("1");
    if theirs == wire::FORMAT.to_string() {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "{}: the peer speaks Raft format {theirs} and this node format {}: upgrade every member to one build \
         (a format change needs a full stop, not a rolling restart)",
        wire::FORMAT_HEADER,
        wire::FORMAT
    )))
}

/// The internal service whose requests carry the Raft format.
const RAFT_SERVICE: &str = "/tenantry.v1.RaftInternal/";

/// The layer: wraps every gRPC service of a node.
#[derive(Clone)]
pub(crate) struct AuthzLayer {
    /// This node's state, for its cluster id.
    pub(crate) view: StateView,
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz { inner, view: self.view.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct Authz<S> {
    inner: S,
    view: StateView,
}

impl<S, B> Service<http::Request<B>> for Authz<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let header = |name| request.headers().get(name).and_then(|value: &http::HeaderValue| value.to_str().ok());
        let path = request.uri().path();
        let decision = authorize(path, request.extensions().get::<PeerInfo>(), header(FORWARDED_FOR_HEADER))
            .and_then(|caller| same_raft_format(path, header(wire::FORMAT_HEADER)).map(|()| caller))
            .and_then(|caller| same_cluster(&self.view, header(CLUSTER_ID_HEADER)).map(|()| caller));
        match decision {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                if let Some(path) = request.uri().path_and_query().cloned() {
                    request.extensions_mut().insert(CalledPath(path));
                }
                // The clone that was polled ready serves this call.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(status) => {
                tracing::info!(path = request.uri().path(), message = status.message(), "request refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(identity: Identity) -> PeerInfo {
        PeerInfo { remote: None, identity: Some(Arc::new(identity)), secure: true }
    }

    fn operator(role: Role) -> Identity {
        Identity::Operator { name: "alice".to_owned(), role }
    }

    fn node() -> Identity {
        Identity::Node { id: 2, region: proto::Region::parse("eu-west").unwrap() }
    }

    fn agent() -> Identity {
        Identity::Agent {
            id: "web-1".to_owned(),
            kind: trust::AgentKind::Frontend,
            region: proto::Region::parse("eu-west").unwrap(),
        }
    }

    const WRITE: &str = "/tenantry.v1.Registry/CreateTenant";
    const READ: &str = "/tenantry.v1.Registry/GetTenant";
    const SNAPSHOT: &str = "/tenantry.v1.Registry/SaveSnapshot";
    const RAFT: &str = "/tenantry.v1.RaftInternal/AppendEntries";
    const SYNC: &str = "/tenantry.v1.AgentSync/Sync";

    fn code(path: &str, peer_info: &PeerInfo, forwarded_for: Option<&str>) -> tonic::Code {
        match authorize(path, Some(peer_info), forwarded_for) {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        }
    }

    #[test]
    fn each_role_gets_exactly_its_methods() {
        use tonic::Code::{Ok, PermissionDenied};
        let cases = [
            (operator(Role::Viewer), [Ok, PermissionDenied, PermissionDenied, PermissionDenied, PermissionDenied]),
            (operator(Role::Operator), [Ok, Ok, PermissionDenied, PermissionDenied, PermissionDenied]),
            (operator(Role::Admin), [Ok, Ok, Ok, PermissionDenied, PermissionDenied]),
            (node(), [PermissionDenied, PermissionDenied, PermissionDenied, Ok, PermissionDenied]),
            (agent(), [PermissionDenied, PermissionDenied, PermissionDenied, PermissionDenied, Ok]),
        ];
        for (identity, expected) in cases {
            let peer_info = peer(identity.clone());
            let found: Vec<_> =
                [READ, WRITE, SNAPSHOT, RAFT, SYNC].iter().map(|path| code(path, &peer_info, None)).collect();
            assert_eq!(found, expected, "{identity}");
        }
        let unknown = code("/tenantry.v1.Registry/Nope", &peer(operator(Role::Admin)), None);
        assert_eq!(unknown, PermissionDenied, "default deny");
    }

    #[test]
    fn forwarded_writes_keep_their_caller_and_only_nodes_forward() {
        let viewer = operator(Role::Viewer).uri();
        let writer = operator(Role::Operator).uri();
        assert_eq!(code(WRITE, &peer(node()), Some(&writer)), tonic::Code::Ok);
        assert_eq!(code(WRITE, &peer(node()), Some(&viewer)), tonic::Code::PermissionDenied);
        // An operator cannot claim to forward for an admin.
        let admin = operator(Role::Admin).uri();
        assert_eq!(code(SNAPSHOT, &peer(operator(Role::Operator)), Some(&admin)), tonic::Code::PermissionDenied);
        // A node forwarding "for" a node does not get Raft access that way.
        assert_eq!(code(RAFT, &peer(node()), Some(&node().uri())), tonic::Code::PermissionDenied);
        let caller = authorize(WRITE, Some(&peer(node())), Some(&writer)).unwrap();
        assert_eq!(caller.identity.as_deref(), Some(&operator(Role::Operator)));
        assert_eq!(caller.actor("ci-bot"), "operator:alice via ci-bot");
    }

    #[test]
    fn anonymous_tls_callers_are_unauthenticated_and_insecure_mode_allows_all() {
        let anonymous = PeerInfo { remote: None, identity: None, secure: true };
        assert_eq!(code(READ, &anonymous, None), tonic::Code::Unauthenticated);
        let plaintext = PeerInfo { remote: None, identity: None, secure: false };
        let caller = authorize(SNAPSHOT, Some(&plaintext), None).unwrap();
        assert!(caller.has_role(Role::Admin));
        assert_eq!(caller.actor("bob"), "bob");
    }
}
