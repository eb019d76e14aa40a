//! Who a certificate speaks for: a node, an agent or an operator, written as
//! a SPIFFE-style URI SAN (`spiffe://tenantry/node/us-east/1`) so that
//! `openssl x509 -text` shows it and any SPIFFE-aware tool can read it.

use std::fmt;

use proto::Region;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::TrustError;

/// The trust domain of every Tenantry identity URI.
pub const TRUST_DOMAIN: &str = "tenantry";

/// The longest agent id or operator name.
pub const NAME_LEN_MAX: usize = 64;

/// What an operator may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: tenants without private bundles or integrations, history,
    /// agents, status.
    Viewer,
    /// Every tenant write, publish, canary, pin, region and shard changes,
    /// moves, failover without `--force`.
    Operator,
    /// Membership, snapshot save and restore, forced failover.
    Admin,
}

impl Role {
    /// The role's name as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(value: &str) -> Result<Self, TrustError> {
        match value {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(TrustError::Identity(format!("role `{value}`: must be viewer, operator or admin"))),
        }
    }
}

/// The two kinds of agent: API agents receive private bundles, frontend
/// agents never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    Api,
    Frontend,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Api => "api",
            AgentKind::Frontend => "frontend",
        }
    }

    pub fn parse(value: &str) -> Result<Self, TrustError> {
        match value {
            "api" => Ok(AgentKind::Api),
            "frontend" => Ok(AgentKind::Frontend),
            _ => Err(TrustError::Identity(format!("agent kind `{value}`: must be api or frontend"))),
        }
    }

    /// The kind a Hello's wire kind names; `None` for `AGENT_KIND_UNSPECIFIED`.
    pub fn of_wire(kind: proto::v1::AgentKind) -> Option<Self> {
        match kind {
            proto::v1::AgentKind::Api => Some(AgentKind::Api),
            proto::v1::AgentKind::Frontend => Some(AgentKind::Frontend),
            proto::v1::AgentKind::Unspecified => None,
        }
    }
}

/// The identity a certificate proves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A registry node: its member id and region.
    Node { id: u64, region: Region },
    /// An agent: its id, kind and region.
    Agent { id: String, kind: AgentKind, region: Region },
    /// A person or a tool: its name and role.
    Operator { name: String, role: Role },
}

/// Agent ids and operator names: 1 to 64 characters of `A-Z a-z 0-9 . _ - @`
/// (agent ids such as `web-1@eu-west`), so they fit a URI path segment as
/// they are.
pub fn check_name(field: &str, value: &str) -> Result<(), TrustError> {
    let valid = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'@');
    if value.is_empty() || value.len() > NAME_LEN_MAX || !value.bytes().all(valid) {
        let shown: String = value.chars().take(NAME_LEN_MAX).collect();
        return Err(TrustError::Identity(format!(
            "{field} `{shown}`: must be 1 to {NAME_LEN_MAX} characters of A-Z, a-z, 0-9, '.', '_', '-' and '@'"
        )));
    }
    Ok(())
}

fn region(value: &str) -> Result<Region, TrustError> {
    Region::parse(value).map_err(|error| TrustError::Identity(error.to_string()))
}

impl Identity {
    /// The URI SAN that carries this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::Node { id, region } => format!("spiffe://{TRUST_DOMAIN}/node/{region}/{id}"),
            Identity::Agent { id, kind, region } => {
                format!("spiffe://{TRUST_DOMAIN}/agent/{region}/{}/{id}", kind.as_str())
            }
            Identity::Operator { name, role } => format!("spiffe://{TRUST_DOMAIN}/operator/{}/{name}", role.as_str()),
        }
    }

    /// Parses an identity URI; anything else (another trust domain, another
    /// shape) is refused with the rule it broke.
    pub fn from_uri(uri: &str) -> Result<Self, TrustError> {
        let prefix = format!("spiffe://{TRUST_DOMAIN}/");
        let bad = |rule: &str| {
            let shown: String = uri.chars().take(200).collect();
            TrustError::Identity(format!("identity URI `{shown}`: {rule}"))
        };
        let path = uri.strip_prefix(&prefix).ok_or_else(|| bad(&format!("must start with {prefix}")))?;
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["node", region_name, id] => {
                let id = id.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| bad("node id must be 1 or more"))?;
                Ok(Identity::Node { id, region: region(region_name)? })
            }
            ["agent", region_name, kind, id] => {
                check_name("agent id", id)?;
                Ok(Identity::Agent {
                    id: (*id).to_owned(),
                    kind: AgentKind::parse(kind)?,
                    region: region(region_name)?,
                })
            }
            ["operator", role, name] => {
                check_name("operator name", name)?;
                Ok(Identity::Operator { name: (*name).to_owned(), role: Role::parse(role)? })
            }
            _ => Err(bad("must be node/REGION/ID, agent/REGION/KIND/ID or operator/ROLE/NAME")),
        }
    }

    /// A short name for certificates' common name and file names:
    /// `node-1`, `agent-web-1`, `operator-alice`.
    pub fn file_stem(&self) -> String {
        match self {
            Identity::Node { id, .. } => format!("node-{id}"),
            Identity::Agent { id, .. } => format!("agent-{id}"),
            Identity::Operator { name, .. } => format!("operator-{name}"),
        }
    }

    /// The operator role this identity carries, if it is an operator.
    pub fn role(&self) -> Option<Role> {
        match self {
            Identity::Operator { role, .. } => Some(*role),
            _ => None,
        }
    }
}

/// How identities appear in audit entries and logs: `operator:alice`,
/// `node:1`, `agent:web-1`.
impl fmt::Display for Identity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node { id, .. } => write!(formatter, "node:{id}"),
            Identity::Agent { id, .. } => write!(formatter, "agent:{id}"),
            Identity::Operator { name, .. } => write!(formatter, "operator:{name}"),
        }
    }
}

/// The identity a parsed certificate carries in its URI SAN.
pub fn identity_of(cert: &X509Certificate<'_>) -> Result<Identity, String> {
    let names = cert
        .subject_alternative_name()
        .map_err(|error| format!("subject alternative names unreadable: {error}"))?
        .ok_or_else(|| "no subject alternative names, so no identity".to_owned())?;
    let mut uris = names.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let uri = uris.next().ok_or_else(|| "no identity URI SAN".to_owned())?;
    if uris.next().is_some() {
        return Err("more than one URI SAN: an identity must be unambiguous".to_owned());
    }
    Identity::from_uri(uri).map_err(|error| error.to_string())
}

/// The identity of a peer's leaf certificate (already verified by rustls).
pub fn peer_identity(der: &CertificateDer<'_>) -> Result<Identity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|error| format!("certificate: {error}"))?;
    identity_of(&cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uri() {
        let identities = [
            Identity::Node { id: 3, region: region("ap-south").unwrap() },
            Identity::Agent {
                id: "web-1@eu-west".to_owned(),
                kind: AgentKind::Frontend,
                region: region("eu-west").unwrap(),
            },
            Identity::Operator { name: "alice".to_owned(), role: Role::Admin },
        ];
        for identity in identities {
            assert_eq!(Identity::from_uri(&identity.uri()).unwrap(), identity);
        }
        assert_eq!(
            Identity::Node { id: 1, region: region("us-east").unwrap() }.uri(),
            "spiffe://tenantry/node/us-east/1"
        );
    }

    #[test]
    fn foreign_or_malformed_uris_are_refused() {
        for uri in [
            "spiffe://other/node/us-east/1",
            "spiffe://tenantry/node/us-east/0",
            "spiffe://tenantry/node/US/1",
            "spiffe://tenantry/agent/eu-west/root/x",
            "spiffe://tenantry/operator/god/alice",
            "spiffe://tenantry/operator/admin/al ice",
            "spiffe://tenantry/operator/admin/alice/extra",
            "https://tenantry/operator/admin/alice",
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri} was accepted");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
