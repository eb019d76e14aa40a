//! `regctl up --postgres`: the local cluster's shards on a local
//! PostgreSQL (Debian's, under `/usr/lib/postgresql/VERSION/bin`) instead of
//! the embedded store: a server cluster made with `initdb` in `DIR/postgres`
//! (kept between runs, its superuser's password random and in
//! `DIR/postgres/pgpass`), one `postgres` process started and stopped with
//! the others, and a database per region migrated with `api-node migrate`.
//! The api-nodes connect as `tenantry_app`, which row-level security guards.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::Failure;

/// The role api-nodes connect as: no superuser, so row-level security holds.
const APP_ROLE: &str = "tenantry_app";

/// How long the server gets to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A local server for `regctl up`.
pub(super) struct LocalPostgres {
    pub port: u16,
    pub passfile: PathBuf,
    bin: PathBuf,
    dir: PathBuf,
}

fn failed(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure(format!("--postgres: {what}: {error}"))
}

/// The newest Debian PostgreSQL's binaries.
fn bin_dir() -> Result<PathBuf, Failure> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            path.join("bin/initdb").exists().then(|| (version, path.join("bin")))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        Failure(
            "--postgres: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql); without --postgres \
             the embedded store needs nothing installed"
                .to_owned(),
        )
    })
}

/// initdb and postgres refuse root: as root they run as Debian's `postgres` user.
fn server_user() -> Result<Option<nix::unistd::User>, Failure> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres").map_err(|error| failed("the postgres user", error))?;
    user.map(Some).ok_or_else(|| Failure("--postgres: running as root, but there is no `postgres` user".to_owned()))
}

fn as_server_user(command: &mut Command, user: &Option<nix::unistd::User>) {
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

impl LocalPostgres {
    /// Makes the server's cluster in `dir/postgres` if missing, and the
    /// command that runs it on `port`.
    pub(super) async fn prepare(dir: &Path, port: u16) -> Result<(Self, Command), Failure> {
        let bin = bin_dir()?;
        let dir = dir.join("postgres");
        let user = server_user()?;
        let passfile = dir.join("pgpass");
        if !dir.join("data").exists() {
            std::fs::create_dir_all(&dir).map_err(|error| failed(&dir.display().to_string(), error))?;
            let mut random = [0u8; 16];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut urandom| urandom.read_exact(&mut random))
                .map_err(|error| failed("/dev/urandom", error))?;
            let password: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
            let pwfile = dir.join("pwfile");
            std::fs::write(&pwfile, &password).map_err(|error| failed("pwfile", error))?;
            std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| failed("pwfile", error))?;
            if let Some(user) = &user {
                for path in [&dir, &pwfile] {
                    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(|error| failed("chown", error))?;
                }
            }
            let lines: String =
                ["postgres", APP_ROLE].iter().map(|role| format!("127.0.0.1:*:*:{role}:{password}\n")).collect();
            std::fs::write(&passfile, lines).map_err(|error| failed("pgpass", error))?;
            std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| failed("pgpass", error))?;
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-U", "postgres", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdout(std::process::Stdio::null());
            as_server_user(&mut initdb, &user);
            let status = initdb.status().await.map_err(|error| failed("initdb", error))?;
            let _ = std::fs::remove_file(&pwfile);
            if !status.success() {
                let _ = std::fs::remove_dir_all(dir.join("data"));
                return Err(failed("initdb", status));
            }
        }
        let mut server = Command::new(bin.join("postgres"));
        server.arg("-D").arg(dir.join("data")).args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ]);
        as_server_user(&mut server, &user);
        Ok((Self { port, passfile, bin, dir }, server))
    }

    /// A `psql` command as the superuser, one statement, unaligned output.
    fn psql(&self, sql: &str) -> Command {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-tA"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSFILE", &self.passfile);
        psql
    }

    async fn query(&self, sql: &str) -> Result<String, Failure> {
        let output = self.psql(sql).output().await.map_err(|error| failed("psql", error))?;
        if !output.status.success() {
            return Err(failed(sql, String::from_utf8_lossy(&output.stderr)));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Once the server answers: the app role and a migrated database per
    /// region (made on the first run); the api-node flags for `region`'s
    /// node, which reads every region's tenants.
    pub(super) async fn shards(&self, bin: &Path, regions: &[&str]) -> Result<Vec<Vec<String>>, Failure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.query("SELECT 1").await.is_err() {
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "--postgres: the server did not accept connections within {READY_TIMEOUT:?}; see {}",
                    self.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let password = std::fs::read_to_string(&self.passfile)
            .ok()
            .and_then(|text| text.lines().next().and_then(|line| line.rsplit(':').next()).map(str::to_owned))
            .unwrap_or_default();
        if self.query(&format!("SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'")).await?.is_empty() {
            self.query(&format!("CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{password}'")).await?;
        }
        let database = |region: &str| format!("shard_{}", region.replace('-', "_"));
        let endpoint = |role: &str, region: &str| {
            format!("postgres://{role}@127.0.0.1:{}/{}?sslmode=disable", self.port, database(region))
        };
        for region in regions {
            let name = database(region);
            if self.query(&format!("SELECT 1 FROM pg_database WHERE datname = '{name}'")).await?.is_empty() {
                self.query(&format!("CREATE DATABASE {name}")).await?;
            }
            let migrate = Command::new(bin.join("api-node"))
                .args(["migrate", "--endpoint", &endpoint("postgres", region), "--grant", APP_ROLE])
                .arg("--shard-passfile")
                .arg(&self.passfile)
                .output()
                .await
                .map_err(|error| failed("api-node migrate", error))?;
            if !migrate.status.success() {
                return Err(failed("api-node migrate", String::from_utf8_lossy(&migrate.stderr)));
            }
        }
        Ok(regions
            .iter()
            .map(|own| {
                let mut flags = vec!["--shard-passfile".to_owned(), self.passfile.display().to_string()];
                for region in regions {
                    let shard = endpoint(APP_ROLE, region);
                    let value = if region == own { shard } else { format!("{region}={shard}") };
                    flags.extend(["--default-shard".to_owned(), value]);
                }
                flags
            })
            .collect())
    }
}
