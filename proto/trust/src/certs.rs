//! Certificates from the product's own CLI (`regctl certs`): a cluster CA,
//! and leaf certificates for nodes, agents and operators, each carrying its
//! [`Identity`] as a URI SAN. Keys are written 0600, through a temporary file
//! renamed into place, so a crash never leaves half a key.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::{Identity, TrustError};

/// The CA certificate and key file names inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 10 * 365;
/// How long a leaf certificate is valid unless told otherwise.
pub const LEAF_VALIDITY_DAYS_DEFAULT: i64 = 365;
/// A certificate is valid from a little before it was made: clocks of the
/// machines that use it may be behind the one that issued it.
const BACKDATE_MINUTES: i64 = 5;

/// What a certificate file holds, as `regctl certs list` shows it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub file: PathBuf,
    pub subject: String,
    /// The identity URI, or why there is none (the CA has none).
    pub identity: Result<Identity, String>,
    pub is_ca: bool,
    pub not_before_unix_s: i64,
    pub not_after_unix_s: i64,
}

fn tls_error(what: &str) -> impl Fn(rcgen::Error) -> TrustError + '_ {
    move |error| TrustError::Tls(format!("{what}: {error}"))
}

/// Writes `contents` to `path` atomically with `mode` (0600 for keys).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TrustError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let temporary = parent.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|name| name.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(|error| TrustError::file(&temporary, error))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|error| TrustError::file(&temporary, error))?;
    // create_new with a mode is subject to the umask; set it exactly.
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode)).map_err(|error| TrustError::file(path, error))?;
    fs::rename(&temporary, path).map_err(|error| TrustError::file(path, error))
}

fn read_text(path: &Path) -> Result<String, TrustError> {
    fs::read_to_string(path).map_err(|error| TrustError::file(path, error))
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive DER integer: the top bit clear.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(BACKDATE_MINUTES);
    params.not_after = now + Duration::days(days);
}

/// Creates `dir/ca.crt` and `dir/ca.key` (0600). Refuses to replace an
/// existing CA unless `replace`: every certificate it signed would stop
/// being trusted.
pub fn init_ca(dir: &Path, cluster_name: &str, replace: bool) -> Result<PathBuf, TrustError> {
    fs::create_dir_all(dir).map_err(|error| TrustError::file(dir, error))?;
    let cert_path = dir.join(CA_CERT_FILE);
    if cert_path.exists() && !replace {
        return Err(TrustError::file(
            &cert_path,
            "a CA is already there; every certificate it signed would stop being trusted (pass --replace to make a new one anyway)",
        ));
    }
    let key = KeyPair::generate().map_err(tls_error("CA key"))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("Tenantry CA ({cluster_name})"));
    name.push(DnType::OrganizationName, "Tenantry");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial());
    validity(&mut params, CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(tls_error("CA certificate"))?;
    write_file(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(cert_path)
}

/// What to put in a leaf certificate besides its identity.
#[derive(Debug, Clone, Default)]
pub struct LeafOptions {
    /// Host names and IP addresses it serves on (nodes; agents and
    /// operators that serve, e.g. an api-node's operator port).
    pub hosts: Vec<String>,
    /// Days of validity; [`LEAF_VALIDITY_DAYS_DEFAULT`] when `None`.
    pub days: Option<i64>,
}

/// Issues `dir/{stem}.crt` and `dir/{stem}.key` (0600) for `identity`,
/// signed by the CA in `dir`. Returns the two paths.
pub fn issue(dir: &Path, identity: &Identity, options: &LeafOptions) -> Result<(PathBuf, PathBuf), TrustError> {
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_key = KeyPair::from_pem(&read_text(&ca_key_path)?)
        .map_err(|error| TrustError::file(&ca_key_path, format!("not a private key: {error}")))?;
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let issuer = Issuer::from_ca_cert_pem(&read_text(&ca_cert_path)?, ca_key)
        .map_err(|error| TrustError::file(&ca_cert_path, format!("not a CA certificate: {error}")))?;

    let days = options.days.unwrap_or(LEAF_VALIDITY_DAYS_DEFAULT);
    if !(1..=CA_VALIDITY_DAYS).contains(&days) {
        return Err(TrustError::Identity(format!("days: {days} is outside 1..={CA_VALIDITY_DAYS}")));
    }
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, identity.file_stem());
    name.push(DnType::OrganizationName, "Tenantry");
    let unit = match identity {
        Identity::Node { region, .. } => format!("node {region}"),
        Identity::Agent { kind, region, .. } => format!("agent {} {region}", kind.as_str()),
        Identity::Operator { role, .. } => format!("operator {}", role.as_str()),
    };
    name.push(DnType::OrganizationalUnitName, unit);
    params.distinguished_name = name;
    let uri = identity.uri().try_into().map_err(tls_error("identity URI"))?;
    params.subject_alt_names.push(SanType::URI(uri));
    for host in &options.hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(address) => SanType::IpAddress(address),
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(tls_error("host name"))?),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    if matches!(identity, Identity::Node { .. }) || !options.hosts.is_empty() {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(tls_error("key"))?;
    let cert = params.signed_by(&key, &issuer).map_err(tls_error("certificate"))?;
    let stem = identity.file_stem();
    let (cert_path, key_path) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((cert_path, key_path))
}

/// Reads what a DER certificate says: subject, identity, validity.
pub fn inspect(file: &Path, der: &CertificateDer<'_>) -> Result<CertInfo, TrustError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| TrustError::file(file, format!("not an X.509 certificate: {error}")))?;
    Ok(CertInfo {
        file: file.to_path_buf(),
        subject: cert.subject().to_string(),
        identity: crate::identity::identity_of(&cert),
        is_ca: cert.is_ca(),
        not_before_unix_s: cert.validity().not_before.timestamp(),
        not_after_unix_s: cert.validity().not_after.timestamp(),
    })
}

/// Every certificate in `dir` (`*.crt`), sorted by file name.
pub fn list(dir: &Path) -> Result<Vec<CertInfo>, TrustError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|error| TrustError::file(dir, error))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "crt"))
        .collect();
    files.sort();
    let mut infos = Vec::with_capacity(files.len());
    for file in files {
        for der in read_certs(&file)? {
            infos.push(inspect(&file, &der)?);
        }
    }
    Ok(infos)
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| TrustError::file(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TrustError::file(path, format!("not a PEM certificate file: {error}")))?;
    if certs.is_empty() {
        return Err(TrustError::file(path, "holds no certificate (expected PEM \"BEGIN CERTIFICATE\")"));
    }
    Ok(certs)
}
