//! The fault proxy: every cross-region TCP connection of a chaos cluster
//! (registry to registry, agent or api-node to registry) goes through a
//! proxy of its directed region link, and the test sets each directed link's
//! fault.
//!
//! A connection from region A to a node of region B carries A→B bytes
//! (requests) under link (A, B) and B→A bytes (answers) under link (B, A),
//! so a one-way fault behaves as lost packets would: A's requests vanish,
//! or B's answers do.
//!
//! * [`Fault::Pass`]: bytes flow, after the link's delay plus a uniform
//!   jitter (order kept).
//! * [`Fault::Cut`]: a firewall that rejects: new connections from A are
//!   closed at once, open ones whose requests go A→B are reset; answers that
//!   would go A→B on B's connections are held back (B's calls time out).
//! * [`Fault::Blackhole`]: a firewall that drops silently: connections are
//!   accepted, and nothing crosses in that direction until healed.
//!
//! [`Network::drop_connections`] resets a link's open connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A region name.
pub type Region = &'static str;

/// What a directed link does to the bytes that cross it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Cut,
    Blackhole,
}

/// A directed link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    pub fault: Fault,
    /// One-way delay, in milliseconds.
    pub delay_ms: u64,
    /// Added to the delay: uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
}

impl Default for LinkState {
    fn default() -> Self {
        Self { fault: Fault::Pass, delay_ms: 0, jitter_ms: 0 }
    }
}

/// One open proxied connection: its initiator's link and how to reset it.
struct Connection {
    from: Region,
    to: Region,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// The links between regions and the proxies on them.
#[derive(Default)]
pub struct Network {
    links: Mutex<HashMap<(Region, Region), LinkState>>,
    connections: Mutex<HashMap<u64, Connection>>,
    next_connection: AtomicU64,
    proxies: Mutex<Vec<JoinHandle<()>>>,
}

/// How often a held-back direction checks whether its link healed.
const STALL_POLL: Duration = Duration::from_millis(20);

impl Network {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The state of link `from` → `to`.
    pub fn link(&self, from: Region, to: Region) -> LinkState {
        self.links.lock().map(|links| links.get(&(from, to)).copied().unwrap_or_default()).unwrap_or_default()
    }

    /// Sets the fault of link `from` → `to` (its delay stays); a cut resets
    /// the open connections whose requests cross it.
    pub fn set_fault(&self, from: Region, to: Region, fault: Fault) {
        if let Ok(mut links) = self.links.lock() {
            links.entry((from, to)).or_default().fault = fault;
        }
        if fault == Fault::Cut {
            self.drop_connections(from, to);
        }
    }

    /// Sets the delay of link `from` → `to`.
    pub fn set_delay(&self, from: Region, to: Region, delay_ms: u64, jitter_ms: u64) {
        if let Ok(mut links) = self.links.lock() {
            let link = links.entry((from, to)).or_default();
            link.delay_ms = delay_ms;
            link.jitter_ms = jitter_ms;
        }
    }

    /// Every link back to [`Fault::Pass`] (delays stay).
    pub fn heal_all(&self) {
        if let Ok(mut links) = self.links.lock() {
            for link in links.values_mut() {
                link.fault = Fault::Pass;
            }
        }
    }

    /// Resets the open connections that region `from` made to region `to`.
    pub fn drop_connections(&self, from: Region, to: Region) {
        let Ok(mut connections) = self.connections.lock() else { return };
        connections.retain(|_, connection| {
            let matches = connection.from == from && connection.to == to;
            if matches {
                connection.tasks.iter().for_each(tokio::task::AbortHandle::abort);
            }
            !matches
        });
    }

    /// A proxy for connections from region `from` to `target`, a server in
    /// region `to`; returns the address to dial instead of `target`.
    pub async fn proxy(self: &Arc<Self>, from: Region, to: Region, target: String) -> anyhow::Result<String> {
        let listener = TcpListener::bind(("127.0.0.1", crate::registry_cluster::free_port()?)).await?;
        let addr = listener.local_addr()?.to_string();
        // Weak: the proxies must not keep the network (and their own
        // listeners) alive once the test drops it.
        let network = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Some(network) = network.upgrade() else { return };
                let target = target.clone();
                tokio::spawn(async move { network.serve(inbound, from, to, &target).await });
            }
        });
        self.proxies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(task);
        Ok(addr)
    }

    async fn serve(self: Arc<Self>, inbound: TcpStream, from: Region, to: Region, target: &str) {
        if self.link(from, to).fault == Fault::Cut {
            return; // rejected: dropped at once
        }
        let Ok(outbound) = TcpStream::connect(target).await else { return };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        let requests = tokio::spawn(pump(self.clone(), id, from, to, true, in_read, out_write));
        let answers = tokio::spawn(pump(self.clone(), id, to, from, false, out_read, in_write));
        if let Ok(mut connections) = self.connections.lock() {
            connections
                .insert(id, Connection { from, to, tasks: vec![requests.abort_handle(), answers.abort_handle()] });
        }
        let _ = requests.await;
        answers.abort();
        if let Ok(mut connections) = self.connections.lock() {
            connections.remove(&id);
        }
    }

    fn reset(&self, id: u64) {
        if let Ok(mut connections) = self.connections.lock() {
            if let Some(connection) = connections.remove(&id) {
                connection.tasks.iter().for_each(tokio::task::AbortHandle::abort);
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Ok(proxies) = self.proxies.lock() {
            proxies.iter().for_each(JoinHandle::abort);
        }
        if let Ok(connections) = self.connections.lock() {
            connections.values().flat_map(|connection| &connection.tasks).for_each(tokio::task::AbortHandle::abort);
        }
    }
}

/// Moves bytes one way under link `from` → `to`; `initiator`: these are the
/// requests of the connection's opener.
async fn pump(
    network: Arc<Network>,
    id: u64,
    from: Region,
    to: Region,
    initiator: bool,
    mut source: tokio::net::tcp::OwnedReadHalf,
    mut sink: tokio::net::tcp::OwnedWriteHalf,
) {
    // A writer delivers each chunk at its time, in order.
    let (chunks, mut queue) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = queue.recv().await {
            tokio::time::sleep_until(at).await;
            if sink.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = sink.shutdown().await;
    });
    let mut last_delivery = Instant::now();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match source.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let link = loop {
            let link = network.link(from, to);
            match link.fault {
                Fault::Pass => break link,
                Fault::Cut if initiator => {
                    network.reset(id);
                    writer.abort();
                    return;
                }
                Fault::Cut | Fault::Blackhole => tokio::time::sleep(STALL_POLL).await,
            }
        };
        let jitter = if link.jitter_ms == 0 { 0 } else { rand::rng().random_range(0..=link.jitter_ms) };
        let at = (Instant::now() + Duration::from_millis(link.delay_ms + jitter)).max(last_delivery);
        last_delivery = at;
        if chunks.send((at, buffer[..read].to_vec())).is_err() {
            break;
        }
    }
    drop(chunks);
    let _ = writer.await;
}
