//! A TCP proxy on loopback that the suite can cut: the database "goes away" for the server
//! behind it without stopping the PostgreSQL server other people share.
//!
//! [`Proxy::cut`] does what a stopped PostgreSQL does to its clients: every open connection is
//! closed and new ones are refused (accepted and closed at once). [`Proxy::stall`] does what a
//! network partition that drops packets does: connections stay open but nothing gets through,
//! either way, so queries and new connections hang. [`Proxy::restore`] lets traffic through
//! again (what a stall held back is delivered then).
//!
//! [`Proxy::round_robin`] spreads connections over several targets in turn: the load balancer
//! in front of several instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: each piped connection ends when it changes.
    epoch: watch::Sender<u64>,
    /// True while stalled: the pumps hold what they read.
    stalled: watch::Sender<bool>,
    pub refused: Arc<AtomicU64>,
    /// Connections sent to each target.
    pub forwarded: Arc<Vec<AtomicU64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target` (host:port).
    pub async fn start(target: String) -> std::io::Result<Proxy> {
        Self::round_robin(vec![target]).await
    }

    /// Forwards each new connection to the next of `targets` (host:port), in turn.
    pub async fn round_robin(targets: Vec<String>) -> std::io::Result<Proxy> {
        let forwarded: Arc<Vec<AtomicU64>> =
            Arc::new(targets.iter().map(|_| AtomicU64::new(0)).collect());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU64::new(0));
        let (epoch, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(false);
        let (up2, refused2, epoch2, stalled2, forwarded2) = (
            up.clone(),
            refused.clone(),
            epoch.clone(),
            stalled.clone(),
            forwarded.clone(),
        );
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    refused2.fetch_add(1, Ordering::Relaxed);
                    drop(inbound);
                    continue;
                }
                let i = next % targets.len().max(1);
                next += 1;
                let Some(target) = targets.get(i).cloned() else {
                    continue;
                };
                forwarded2[i].fetch_add(1, Ordering::Relaxed);
                let mut cut = epoch2.subscribe();
                let gate = stalled2.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ri, wo, gate.clone()) => {}
                        _ = pump(ro, wi, gate) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy {
            port,
            up,
            epoch,
            stalled,
            refused,
            forwarded,
            task,
        })
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Holds every byte in both directions (connections stay open).
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding what it read while the gate says stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *gate.borrow_and_update() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
