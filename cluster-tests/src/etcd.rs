//! A three-member etcd (Debian's `etcd-server`, installed if missing) on
//! loopback, for the benchmarks' side-by-side runs: the system operators
//! would otherwise use, run the same way as the registry (three members,
//! WAL fsync on, its defaults otherwise). Also the gRPC client subset the
//! benchmarks call (`proto/etcd.proto`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::binaries::test_dir;
use crate::process::ChildGuard;
use crate::registry_cluster::free_port;
use crate::wait;

/// etcd's gRPC API (the subset in `proto/etcd.proto`).
#[allow(unreachable_pub, clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

/// Debian's etcd server binary.
pub const ETCD: &str = "/usr/bin/etcd";

pub struct EtcdCluster {
    pub dir: PathBuf,
    /// Client URLs' host:port, one per member.
    pub endpoints: Vec<String>,
    members: Vec<ChildGuard>,
}

impl EtcdCluster {
    /// Starts three members and waits until each answers Status.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let etcd = crate::debian::ensure(ETCD, "etcd-server")?;
        let dir = test_dir(name);
        std::fs::create_dir_all(&dir)?;
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let peers: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let initial: Vec<String> =
            peers.iter().enumerate().map(|(index, port)| format!("m{}=http://127.0.0.1:{port}", index + 1)).collect();
        let mut members = Vec::new();
        for index in 0..3 {
            let client = format!("http://127.0.0.1:{}", clients[index]);
            let peer = format!("http://127.0.0.1:{}", peers[index]);
            let log = std::fs::File::create(dir.join(format!("etcd-{}.log", index + 1)))?;
            let child = Command::new(&etcd)
                .args(["--name", &format!("m{}", index + 1)])
                .arg("--data-dir")
                .arg(dir.join(format!("etcd-{}", index + 1)))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", name, "--quota-backend-bytes", "8589934592"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            members.push(ChildGuard::new(child));
        }
        let endpoints: Vec<String> = clients.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let cluster = Self { dir, endpoints, members };
        for endpoint in &cluster.endpoints {
            wait::until("an etcd member to answer", Duration::from_secs(30), || async {
                let channel = connect(endpoint).await.ok()?;
                let mut client = pb::maintenance_client::MaintenanceClient::new(channel);
                let status = client.status(pb::StatusRequest {}).await.ok()?.into_inner();
                (status.leader != 0).then_some(())
            })
            .await?;
        }
        Ok(cluster)
    }

    /// The members' process ids.
    pub fn pids(&mut self) -> Vec<u32> {
        self.members.iter_mut().filter_map(|member| member.child().map(|child| child.id())).collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.members.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new gRPC connection (its own HTTP/2 connection) to an etcd member.
pub async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(channel)
}
