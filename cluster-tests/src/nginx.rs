//! Debian's nginx (installed by [`crate::debian`] when missing) serving the
//! shipped `deploy/nginx/tenantry.conf`, with only its site settings
//! changed: the listen address, the static build, the sidecar's directory
//! and the api-node upstream. nginx runs in the foreground under the
//! suite, its pid file, logs and temp files in the suite's directory; as
//! root, its workers run as `www-data`, like a packaged nginx, so the
//! files it serves must be readable by another user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx; stopped (SIGTERM) when dropped.
pub struct Nginx {
    pub addr: String,
    pub dir: PathBuf,
    _process: ChildGuard,
}

/// The shipped server configuration.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/tenantry.conf")
}

/// `text` with each `(from, to)` replaced; every `from` must be there, so a
/// change to the shipped file that this does not follow fails loudly.
fn render(text: &str, settings: &[(&str, String)]) -> anyhow::Result<String> {
    let mut rendered = text.to_owned();
    for (from, to) in settings {
        anyhow::ensure!(rendered.contains(from), "deploy/nginx/tenantry.conf no longer has {from:?}");
        rendered = rendered.replace(from, to);
    }
    Ok(rendered)
}

impl Nginx {
    /// Starts nginx in `dir` serving the static build `www` and the
    /// sidecar's `materialized` directory, proxying `/api/` to `api`; checks
    /// the configuration with `nginx -t` first.
    pub async fn start(dir: &Path, www: &Path, materialized: &Path, api: &str) -> anyhow::Result<Self> {
        let nginx = tokio::task::spawn_blocking(|| crate::debian::ensure(NGINX, "nginx")).await??;
        std::fs::create_dir_all(dir.join("temp"))?;
        let port = crate::registry_cluster::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let server = render(
            &std::fs::read_to_string(shipped_config())?,
            &[
                ("listen 80 default_server;", format!("listen {addr} default_server;")),
                ("listen 80;", format!("listen {addr};")),
                ("root /srv/tenantry/www;", format!("root {};", www.display())),
                ("root /var/lib/tenantry/frontend;", format!("root {};", materialized.display())),
                ("server 127.0.0.1:8080;", format!("server {api};")),
            ],
        )?;
        std::fs::write(dir.join("tenantry.conf"), server)?;
        let temp = dir.join("temp");
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| format!("    {kind}_temp_path {};\n", temp.join(kind).display()))
            .collect();
        let user = if nix::unistd::Uid::effective().is_root() { "user www-data;\n" } else { "" };
        let main = format!(
            "daemon off;\n{user}worker_processes 1;\npid {pid};\nerror_log {log} info;\nevents {{ worker_connections 256; }}\n\
             http {{\n    access_log {access};\n{temp_paths}    include /etc/nginx/mime.types;\n    include {server};\n}}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("error.log").display(),
            access = dir.join("access.log").display(),
            server = dir.join("tenantry.conf").display(),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main)?;
        let args = |command: &mut Command| {
            command.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(dir.join("error.log"));
        };
        let mut check = Command::new(&nginx);
        args(&mut check);
        let checked = check.arg("-t").output()?;
        anyhow::ensure!(checked.status.success(), "nginx -t: {}", String::from_utf8_lossy(&checked.stderr));
        let mut command = Command::new(&nginx);
        args(&mut command);
        let process = ChildGuard::new(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
        crate::wait::until("nginx to listen", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(&addr).await.ok().map(drop)
        })
        .await?;
        Ok(Self { addr, dir: dir.to_path_buf(), _process: process })
    }
}
