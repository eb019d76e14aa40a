//! Certificates for a test cluster, made the way operators make them
//! (`trust::certs`, what `regctl certs` runs): one CA per cluster under its
//! test directory, and a certificate per identity on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use trust::certs::{self, LeafOptions};
use trust::{AgentKind, Identity, Role, Tls, TlsFiles};

/// A cluster's CA and the certificates issued so far.
pub struct TestCerts {
    pub dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Tls>>>,
}

impl TestCerts {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        if !dir.join(certs::CA_CERT_FILE).exists() {
            certs::init_ca(dir, "cluster-tests", false)?;
        }
        Ok(Self { dir: dir.to_path_buf(), loaded: Mutex::default() })
    }

    /// The files of `identity`'s certificate, issued (with `hosts`) if missing.
    pub fn files(&self, identity: &Identity, hosts: &[&str]) -> anyhow::Result<TlsFiles> {
        let stem = identity.file_stem();
        let (cert, key) = (self.dir.join(format!("{stem}.crt")), self.dir.join(format!("{stem}.key")));
        if !cert.exists() {
            let options = LeafOptions { hosts: hosts.iter().map(|host| (*host).to_owned()).collect(), days: None };
            certs::issue(&self.dir, identity, &options)?;
        }
        Ok(TlsFiles { ca: self.dir.join(certs::CA_CERT_FILE), cert, key })
    }

    /// `identity`'s loaded TLS (one per identity).
    pub fn tls(&self, identity: &Identity, hosts: &[&str]) -> anyhow::Result<Arc<Tls>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tls) = loaded.get(&identity.uri()) {
            return Ok(tls.clone());
        }
        let tls = Tls::load(self.files(identity, hosts)?)?;
        loaded.insert(identity.uri(), tls.clone());
        Ok(tls)
    }

    /// `--ca --cert --key` for a child process of `identity`.
    pub fn flags(&self, identity: &Identity, hosts: &[&str]) -> anyhow::Result<Vec<String>> {
        let files = self.files(identity, hosts)?;
        Ok([("--ca", files.ca), ("--cert", files.cert), ("--key", files.key)]
            .into_iter()
            .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
            .collect())
    }

    /// An operator with `role`, named after it (`admin`, `operator`, `viewer`).
    pub fn operator(&self, role: Role) -> anyhow::Result<Arc<Tls>> {
        self.tls(&operator(role), &[])
    }
}

pub fn operator(role: Role) -> Identity {
    Identity::Operator { name: role.as_str().to_owned(), role }
}

pub fn agent(id: &str, kind: AgentKind, region: &str) -> anyhow::Result<Identity> {
    Ok(Identity::Agent { id: id.to_owned(), kind, region: proto::Region::parse(region)? })
}

pub fn node(id: u64, region: &str) -> anyhow::Result<Identity> {
    Ok(Identity::Node { id, region: proto::Region::parse(region)? })
}
