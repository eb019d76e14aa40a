//! The network-namespace tier: each region's registry node in its own
//! network namespace, joined by veth pairs to a bridge, and partitions made
//! at the network layer (blackhole routes in the namespaces), with no proxy
//! in the path. Needs root and `ip` (iproute2); [`NetnsLab::create`] says
//! why not otherwise, and the scenario is skipped with that reason.

use std::process::Command;

/// The namespaces, their addresses and the bridge; removed on drop.
pub struct NetnsLab {
    /// Per region (node id - 1): the namespace's name and address.
    pub namespaces: Vec<(String, String)>,
    bridge: String,
    veths: Vec<String>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl NetnsLab {
    /// Creates `count` namespaces on a private /24, or says why it cannot.
    pub fn create(count: usize) -> Result<Self, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("not running as root: network namespaces need CAP_SYS_ADMIN".to_owned());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err("`ip` (iproute2) is not installed".to_owned());
        }
        let tag = std::process::id() % 10_000;
        // A /24 per test process, so parallel runs do not collide.
        let subnet = format!("10.{}.{}", 100 + tag % 100, tag / 100 % 250);
        let mut lab = Self { namespaces: Vec::new(), bridge: format!("tnbr{tag}"), veths: Vec::new() };
        lab.build(count, tag, &subnet).map_err(|error| format!("cannot build the namespaces: {error:#}"))?;
        Ok(lab)
    }

    fn build(&mut self, count: usize, tag: u32, subnet: &str) -> anyhow::Result<()> {
        ip(&["link", "add", &self.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{subnet}.254/24"), "dev", &self.bridge])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for index in 0..count {
            let namespace = format!("tn{tag}-{index}");
            let (outside, inside) = (format!("tv{tag}o{index}"), format!("tv{tag}i{index}"));
            let address = format!("{subnet}.{}", index + 1);
            ip(&["netns", "add", &namespace])?;
            self.namespaces.push((namespace.clone(), address.clone()));
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            self.veths.push(outside.clone());
            ip(&["link", "set", &inside, "netns", &namespace])?;
            ip(&["link", "set", &outside, "master", &self.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            ip(&["-n", &namespace, "addr", "add", &format!("{address}/24"), "dev", &inside])?;
            ip(&["-n", &namespace, "link", "set", &inside, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts (or restores) the network between namespaces `a` and `b`, both ways.
    pub fn set_cut(&self, a: usize, b: usize, cut: bool) -> anyhow::Result<()> {
        let verb = if cut { "add" } else { "del" };
        for (from, to) in [(a, b), (b, a)] {
            let target = format!("{}/32", self.namespaces[to].1);
            ip(&["-n", &self.namespaces[from].0, "route", verb, "blackhole", &target])?;
        }
        Ok(())
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for (namespace, _) in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
        for veth in &self.veths {
            let _ = ip(&["link", "del", veth]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
