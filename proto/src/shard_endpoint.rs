//! Where a data shard lives, as the routing map names it: a PostgreSQL
//! database (`postgres://USER@HOST[:PORT]/DB[?sslmode=…]`), or for
//! development only an api-node's embedded store (`embedded:NAME`).
//!
//! An endpoint never holds a password: api-nodes find theirs the libpq way
//! (a passfile). Parsing is one pass over at most
//! [`SHARD_ENDPOINT_BYTES_MAX`] bytes.

use std::fmt;

use crate::DomainError;

/// The longest shard endpoint, in bytes.
pub const SHARD_ENDPOINT_BYTES_MAX: usize = 255;

/// The PostgreSQL port when an endpoint names none.
pub const POSTGRES_PORT_DEFAULT: u16 = 5432;

/// Whether a connection to a PostgreSQL shard is encrypted, as libpq's
/// `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    Require,
}

/// A parsed shard endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEndpoint {
    Postgres {
        user: String,
        host: String,
        port: u16,
        database: String,
        ssl_mode: SslMode,
    },
    /// `NAME.sqlite` in the api-node's data directory: one machine only.
    Embedded {
        name: String,
    },
}

fn invalid(value: &str, rule_id: &'static str, rule: &str) -> DomainError {
    DomainError::new("shard.endpoint", value, rule_id, rule)
}

/// libpq identifiers we accept: user and database names.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 63 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl ShardEndpoint {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        const FORMS: &str = "must be postgres://USER@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require], \
                             or embedded:NAME for development";
        if value.is_empty() || value.len() > SHARD_ENDPOINT_BYTES_MAX {
            return Err(invalid(value, "length", &format!("must be 1 to {SHARD_ENDPOINT_BYTES_MAX} bytes")));
        }
        if let Some(name) = value.strip_prefix("embedded:") {
            crate::TenantId::parse(name).map_err(|_| {
                invalid(value, "embedded-name", "embedded:NAME: NAME must be a DNS label (a-z, 0-9, '-')")
            })?;
            return Ok(Self::Embedded { name: name.to_owned() });
        }
        let rest = value
            .strip_prefix("postgres://")
            .or_else(|| value.strip_prefix("postgresql://"))
            .ok_or_else(|| invalid(value, "form", FORMS))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| invalid(value, "database", FORMS))?;
        let (database, query) = path.split_once('?').unwrap_or((path, ""));
        let (user, host_port) = authority.split_once('@').ok_or_else(|| invalid(value, "user", FORMS))?;
        if user.contains(':') {
            let rule = "holds no password: api-nodes read theirs from a passfile (PGPASSFILE or --shard-passfile)";
            return Err(invalid(value, "no-password", rule));
        }
        if !is_name(user) || !is_name(database) {
            return Err(invalid(
                value,
                "name",
                "USER and DATABASE must be 1-63 characters of a-z, A-Z, 0-9, '_', '.', '-'",
            ));
        }
        let (host, port) = match host_port.rsplit_once(':').filter(|(host, _)| !host.ends_with(':')) {
            Some((host, port)) if !port.contains(']') => {
                let port = port.parse::<u16>().ok().filter(|port| *port > 0);
                (host, port.ok_or_else(|| invalid(value, "port", "PORT must be 1 to 65535"))?)
            }
            _ => (host_port, POSTGRES_PORT_DEFAULT),
        };
        if !is_host(host) {
            return Err(invalid(value, "host", "HOST must be a host name, an IPv4 address or [an IPv6 address]"));
        }
        let mut ssl_mode = SslMode::Prefer;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            ssl_mode = match pair {
                "sslmode=disable" => SslMode::Disable,
                "sslmode=prefer" => SslMode::Prefer,
                "sslmode=require" => SslMode::Require,
                _ => return Err(invalid(value, "parameters", "the only parameter is sslmode=disable|prefer|require")),
            };
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(Self::Postgres { user: user.to_owned(), host, port, database: database.to_owned(), ssl_mode })
    }
}

impl fmt::Display for ShardEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded { name } => write!(f, "embedded:{name}"),
            Self::Postgres { user, host, port, database, .. } if host.contains(':') => {
                write!(f, "postgres://{user}@[{host}]:{port}/{database}")
            }
            Self::Postgres { user, host, port, database, .. } => {
                write!(f, "postgres://{user}@{host}:{port}/{database}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_name_the_rule_they_break() {
        let parsed = ShardEndpoint::parse("postgres://app@db-1.eu.internal:6432/shard_1?sslmode=require").unwrap();
        assert_eq!(
            parsed,
            ShardEndpoint::Postgres {
                user: "app".into(),
                host: "db-1.eu.internal".into(),
                port: 6432,
                database: "shard_1".into(),
                ssl_mode: SslMode::Require
            }
        );
        let ipv6 = ShardEndpoint::parse("postgresql://app@[::1]/s").unwrap();
        assert!(
            matches!(ipv6, ShardEndpoint::Postgres { ref host, port: 5432, ssl_mode: SslMode::Prefer, .. } if host == "::1")
        );
        assert_eq!(ipv6.to_string(), "postgres://app@[::1]:5432/s");
        assert_eq!(ShardEndpoint::parse("embedded:us-1").unwrap(), ShardEndpoint::Embedded { name: "us-1".into() });
        for (bad, rule) in [
            ("postgres://app:secret@db/s", "no-password"),
            ("postgres://db/s", "user"),
            ("postgres://app@db", "database"),
            ("postgres://app@db:0/s", "port"),
            ("postgres://app@db:99999/s", "port"),
            ("postgres://app@-db/s", "host"),
            ("postgres://app@db/s?password=x", "parameters"),
            ("postgres://a'b@db/s", "name"),
            ("mysql://app@db/s", "form"),
            ("/data/x", "form"),
            ("embedded:../x", "embedded-name"),
            ("", "length"),
        ] {
            let error = ShardEndpoint::parse(bad).unwrap_err();
            assert_eq!((bad, error.rule_id), (bad, rule), "{error}");
            assert_eq!(error.field, "shard.endpoint");
        }
        let long = format!("postgres://app@{}/s", "a".repeat(300));
        assert_eq!(ShardEndpoint::parse(&long).unwrap_err().rule_id, "length");
    }
}
