//! Real PostgreSQL servers for the suites: Debian's `postgresql` (installed
//! through the one serialised installer when missing), a cluster made with
//! `initdb` in the test's directory and a `postgres` process of its own on
//! a free loopback port, killed with the test. Passwords are SCRAM; the
//! suite's passfile holds them. The server offers TLS with a certificate
//! for 127.0.0.1 from a CA of its own ([`Postgres::ca`]): endpoints from
//! [`Postgres::endpoint`] say `sslmode=disable`, those from
//! [`Postgres::tls_endpoint`] `sslmode=require`.
//!
//! Roles: [`SUPERUSER`] (the suite's own checks), [`OWNER`] (owns the
//! shards' schemas and runs `api-node migrate`) and [`APP`] (what api-nodes
//! connect as: neither superuser nor BYPASSRLS, so row-level security
//! guards it).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::binaries::binary;
use crate::process::ChildGuard;
use crate::wait;

pub const SUPERUSER: &str = "postgres";
pub const OWNER: &str = "tenantry_owner";
pub const APP: &str = "tenantry_app";

/// The roles' passwords (test servers on loopback only).
const PASSWORD: &str = "suite-secret";

/// Debian's server binaries (`/usr/lib/postgresql/VERSION/bin`) of the
/// newest version; installed when missing.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    crate::debian::ensure_found("postgresql", || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
            .collect();
        found.sort_by_key(|bin| {
            bin.parent().and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
        });
        found.pop()
    })
}

/// A running PostgreSQL server.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    process: Option<ChildGuard>,
    /// Holds every role's password for every suite server on loopback (mode 0600).
    pub passfile: PathBuf,
    /// The CA its server certificate chains to (PEM).
    pub ca: PathBuf,
}

/// initdb and postgres refuse to run as root: as root they run as Debian's
/// `postgres` user, which then owns the data directory.
fn server_user() -> anyhow::Result<Option<nix::unistd::User>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    nix::unistd::User::from_name("postgres")?
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("running as root, but there is no `postgres` user to run PostgreSQL as"))
}

fn as_server_user(command: &mut Command, user: &Option<nix::unistd::User>) {
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

impl Postgres {
    /// Creates a cluster in `dir/postgres-NAME` and starts it.
    pub async fn start(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = dir.join(format!("postgres-{name}"));
        std::fs::create_dir_all(&dir)?;
        let user = server_user()?;
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PASSWORD)?;
        if let Some(user) = &user {
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))?;
            nix::unistd::chown(&pwfile, Some(user.uid), Some(user.gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", SUPERUSER, "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("initdb.log"))?);
        as_server_user(&mut initdb, &user);
        let status = initdb.status()?;
        anyhow::ensure!(status.success(), "initdb failed ({status}); see {}", dir.join("initdb.log").display());
        // TLS: a certificate for 127.0.0.1 from a CA of its own; the key
        // readable by the server's user only (PostgreSQL insists).
        let certs = crate::certs::TestCerts::new(&dir.join("tls"))?;
        let files =
            certs.files(&trust::Identity::Node { id: 1, region: proto::Region::parse("db")? }, &["127.0.0.1"])?;
        for (from, to) in [(&files.cert, "server.crt"), (&files.key, "server.key")] {
            std::fs::copy(from, dir.join("data").join(to))?;
            std::fs::set_permissions(dir.join("data").join(to), std::fs::Permissions::from_mode(0o600))?;
            if let Some(user) = &user {
                nix::unistd::chown(&dir.join("data").join(to), Some(user.uid), Some(user.gid))?;
            }
        }
        let port = crate::registry_cluster::free_ports(1)?;
        // Any port: every suite server has the same passwords, so one
        // server's passfile serves an api-node for all (and via proxies).
        let passfile = dir.join("pgpass");
        let lines: String =
            [SUPERUSER, OWNER, APP].iter().map(|role| format!("127.0.0.1:*:*:{role}:{PASSWORD}\n")).collect();
        std::fs::write(&passfile, lines)?;
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600))?;
        let mut server = Self { port, dir, bin, process: None, passfile, ca: files.ca };
        server.restart().await?;
        let client = server.connect(SUPERUSER, "postgres").await?;
        for role in [OWNER, APP] {
            client.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")).await?;
        }
        Ok(server)
    }

    /// A streaming replica of this server in `dir/postgres-NAME`, made with
    /// `pg_basebackup -R` and started (a hot standby: it serves reads).
    pub async fn start_replica(&self, dir: &Path, name: &str) -> anyhow::Result<Self> {
        let replica_dir = dir.join(format!("postgres-{name}"));
        std::fs::create_dir_all(&replica_dir)?;
        let user = server_user()?;
        if let Some(user) = &user {
            nix::unistd::chown(&replica_dir, Some(user.uid), Some(user.gid))?;
        }
        let mut backup = Command::new(self.bin.join("pg_basebackup"));
        backup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "-D",
            ])
            .arg(replica_dir.join("data"))
            .env("PGPASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(replica_dir.join("basebackup.log"))?);
        as_server_user(&mut backup, &user);
        let status = backup.status()?;
        anyhow::ensure!(
            status.success(),
            "pg_basebackup failed ({status}); see {}",
            replica_dir.join("basebackup.log").display()
        );
        let port = crate::registry_cluster::free_ports(1)?;
        let passfile = replica_dir.join("pgpass");
        std::fs::copy(&self.passfile, &passfile)?;
        let mut replica =
            Self { port, dir: replica_dir, bin: self.bin.clone(), process: None, passfile, ca: self.ca.clone() };
        replica.restart().await?;
        Ok(replica)
    }

    /// Starts the server (again, on the same data) and waits until it
    /// answers; after a kill -9 it recovers from its WAL first.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.process.is_none(), "already running");
        let user = server_user()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("postgres.log"))?;
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            // TCP only: a test directory's path is too long for a socket's.
            .args(["-c", "unix_socket_directories="])
            // Durable as in production: every commit is fsynced.
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200"])
            .args(["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"])
            .stdout(Stdio::null())
            .stderr(log);
        as_server_user(&mut command, &user);
        self.process = Some(ChildGuard::new(command.spawn()?));
        let port = self.port;
        let started = wait::until("PostgreSQL to accept connections", Duration::from_secs(60), || async {
            connect_with(port, SUPERUSER, "postgres").await.ok().map(|_| ())
        })
        .await;
        started.map_err(|error| {
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            anyhow::anyhow!("{error}; its log ends:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
    }

    /// kill -9 of the server (its backends exit when they see it gone).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.take().ok_or_else(|| anyhow::anyhow!("not running"))?.kill()
    }

    /// A connection as `role` to `database`.
    pub async fn connect(&self, role: &str, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        connect_with(self.port, role, database).await
    }

    /// The endpoint `regctl shard add` names for `database`, as `role`.
    pub fn endpoint(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// [`Postgres::endpoint`], encrypted: `sslmode=require` (api-nodes need `--shard-ca` [`Postgres::ca`]).
    pub fn tls_endpoint(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}?sslmode=require", self.port)
    }

    /// Creates a shard database owned by [`OWNER`] and migrates it with
    /// `api-node migrate`, granting [`APP`]: the endpoint api-nodes use.
    pub async fn create_shard(&self, database: &str) -> anyhow::Result<String> {
        let client = self.connect(SUPERUSER, "postgres").await?;
        client.batch_execute(&format!("CREATE DATABASE {database} OWNER {OWNER}")).await?;
        let output = Command::new(binary("api-node"))
            .args(["migrate", "--endpoint", &self.endpoint(OWNER, database), "--grant", APP])
            .arg("--shard-passfile")
            .arg(&self.passfile)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "api-node migrate: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(self.endpoint(APP, database))
    }
}

async fn connect_with(port: u16, role: &str, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(port).user(role).password(PASSWORD).dbname(database);
    config.connect_timeout(Duration::from_secs(2));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
