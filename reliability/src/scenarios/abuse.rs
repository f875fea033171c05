//! Scenario 5, connection abuse. While probes (a whoami over a kept-alive connection and a
//! health check over a new connection each time) measure what a legitimate client gets, the
//! attack, all at once:
//!
//! - `idle` connections that send nothing (each reconnects as soon as the server closes it);
//! - slow-loris connections that send a request's headers one byte every 100 ms, never ending;
//! - slow readers: connections that pipeline requests for the stylesheet and read nothing, so
//!   the server's writes stall;
//! - requests with a 1 MiB header;
//! - anonymous clients creating login flows as fast as they can.
//!
//! The attack comes from other loopback addresses than the probes: the idle connections from
//! one address, which asks for more than `limits.max_connections_per_address` (512), the
//! slow-loris and slow-reader connections from one address each. The server runs with
//! `limits.header_read_timeout` and `limits.write_stall_timeout` at 2 s.
//! Checks: every probe succeeds and their p99 stays low; the flooding address is held to its
//! share, so the listener's own cap is never reached (the metric tells the two refusals apart); the server closes idle and slow-loris
//! connections after the header timeout and slow readers after the write stall timeout;
//! huge headers get a 431, never a 500; file descriptors (`/proc/PID/fd`) never exceed the
//! connections the attack holds and return to where they were; memory (RSS) stays bounded.

use crate::api;
use crate::stats::{Stats, open_fds, rss_kib};
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::{Context, Result};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's header read and write stall timeouts in this scenario.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than a timeout the server may close a connection.
const SLACK: Duration = Duration::from_secs(3);
/// Where the attack comes from; the probes use 127.0.0.1.
const IDLE_FROM: [u8; 4] = [127, 0, 0, 2];
const LORIS_FROM: [u8; 4] = [127, 0, 0, 3];
const READERS_FROM: [u8; 4] = [127, 0, 0, 4];
/// `limits.max_connections_per_address`'s default.
const PER_ADDRESS: usize = 512;

/// How long each attacker's connections lasted (connect to close by the server).
#[derive(Default)]
struct Lifetimes(Mutex<Vec<Duration>>);

impl Lifetimes {
    fn push(&self, d: Duration) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }
    fn all(&self) -> Vec<Duration> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn longest(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("abuse", run.backend);
    let db = run.database().await?;
    let config = json!({
        "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}},
        "limits": {
            "header_read_timeout": format!("{}s", TIMEOUT.as_secs()),
            "write_stall_timeout": format!("{}s", TIMEOUT.as_secs()),
        },
    });
    let server = Tessera::start(&db.dir, &db.dsn, config).await?;
    let pid = server.pid().context("the server's pid")?;
    let addr = server.public.trim_start_matches("http://").to_string();
    let c = api::client();
    let user = api::register(&c, &server.public, "probe@example.com")
        .await
        .map_err(|o| anyhow::anyhow!("register the probe: {}", o.label()))?;
    // Sizes: the soak form holds twice as many connections for longer.
    let scale = if run.duration > Duration::from_secs(60) {
        2
    } else {
        1
    };
    let (idle, slowloris, readers, huge, flooders) =
        (2000 * scale, 200 * scale, 20 * scale, 1, run.workers);
    let attack = run.duration.max(TIMEOUT * 3);
    let lead = Duration::from_secs(2);
    let t0 = Instant::now();
    let attack_at = t0 + lead;
    let attack_end = attack_at + attack;
    let end = attack_end + TIMEOUT + SLACK;

    // Probes and the sampler, all along.
    let (before, during, after) = (Stats::default(), Stats::default(), Stats::default());
    let phase = move |now: Instant| {
        if now < attack_at {
            0
        } else if now < attack_end {
            1
        } else {
            2
        }
    };
    let probes = {
        let (public, token) = (server.public.clone(), user.token.clone());
        let tallies = [before.clone(), during.clone(), after.clone()];
        tokio::spawn(async move {
            let kept = api::client();
            while Instant::now() < end {
                let stats = &tallies[phase(Instant::now())];
                let _ = api::timed(
                    stats,
                    "whoami (kept-alive)",
                    api::whoami(&kept, &public, &token),
                )
                .await;
                let fresh = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .timeout(api::CLIENT_TIMEOUT)
                    .build()
                    .unwrap_or_default();
                let _ = api::timed(stats, "health (new connection)", async {
                    let r = fresh
                        .get(format!("{public}/health/alive"))
                        .send()
                        .await
                        .map_err(|e| api::Outcome::of_error(&e))?;
                    match r.status().as_u16() {
                        200 => Ok(()),
                        s => Err(api::Outcome::Status(s)),
                    }
                })
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // (phase, fds, rss KiB) every 200 ms.
    let samples: Arc<Mutex<Vec<(usize, usize, u64)>>> = Arc::default();
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            while Instant::now() < end {
                if let (Some(fds), Some(rss)) = (open_fds(pid), rss_kib(pid)) {
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push((
                        phase(Instant::now()),
                        fds,
                        rss,
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    tokio::time::sleep_until(attack_at.into()).await;
    let mut attackers = Vec::new();
    let (idle_life, loris_life, reader_life) = (
        Arc::new(Lifetimes::default()),
        Arc::new(Lifetimes::default()),
        Arc::new(Lifetimes::default()),
    );
    // Idle connections: connect, wait for the server to close.
    let connected = Arc::new(AtomicU64::new(0));
    for _ in 0..idle {
        let (addr, life, connected) = (addr.clone(), idle_life.clone(), connected.clone());
        attackers.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(&addr, IDLE_FROM, None).await else {
                return;
            };
            connected.fetch_add(1, Ordering::Relaxed);
            let opened = Instant::now();
            let mut buf = [0u8; 64];
            let closed = tokio::time::timeout_at(attack_end.into(), s.read(&mut buf)).await;
            if closed.is_ok() {
                life.push(opened.elapsed());
            }
        }));
    }
    // Slow-loris: headers one byte at a time, never finished.
    for _ in 0..slowloris {
        let (addr, life) = (addr.clone(), loris_life.clone());
        attackers.push(tokio::spawn(async move {
            let head = b"GET /health/alive HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            while Instant::now() + TIMEOUT < attack_end {
                let Ok(mut s) = connect_from(&addr, LORIS_FROM, None).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let opened = Instant::now();
                let mut i = 0usize;
                loop {
                    if Instant::now() >= attack_end {
                        break;
                    }
                    let byte = head.get(i).copied().unwrap_or(b'a');
                    i += 1;
                    if s.write_all(&[byte]).await.is_err() {
                        life.push(opened.elapsed());
                        break;
                    }
                    // A closed connection shows on the next read as end of file.
                    let mut buf = [0u8; 256];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
                    {
                        life.push(opened.elapsed());
                        break;
                    }
                }
            }
        }));
    }
    // Slow readers: many pipelined requests for a 9 KB stylesheet; nothing read until the
    // server gives up (or the attack ends).
    let css_path = "/ui/static/tessera.css".to_string();
    let delivered = Arc::new(AtomicU64::new(0));
    for _ in 0..readers {
        let (addr, life, path, delivered) = (
            addr.clone(),
            reader_life.clone(),
            css_path.clone(),
            delivered.clone(),
        );
        attackers.push(tokio::spawn(async move {
            // A small receive buffer: the server's writes stall sooner, the kernel holds less.
            let Ok(mut s) = connect_from(&addr, READERS_FROM, Some(4096)).await else {
                return;
            };
            let opened = Instant::now();
            let one = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            if s.write_all(one.repeat(1500).as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep_until(attack_end.into()).await;
            // Now read: a server that gave up has closed the connection after what it wrote.
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        life.push(opened.elapsed());
                        break;
                    }
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    // Still sending: the server had not given up.
                    Err(_) => break,
                }
            }
            delivered.fetch_add(got.len() as u64, Ordering::Relaxed);
        }));
    }
    // Huge headers.
    let huge_stats = Stats::default();
    for _ in 0..huge {
        let (public, stats) = (server.public.clone(), huge_stats.clone());
        attackers.push(tokio::spawn(async move {
            let c = api::client();
            let big = "a".repeat(1024 * 1024);
            while Instant::now() < attack_end {
                let _ = api::timed(&stats, "1 MiB header", async {
                    let r = c
                        .get(format!("{public}/health/alive"))
                        .header("x-huge", &big)
                        .send()
                        .await
                        .map_err(|e| api::Outcome::of_error(&e))?;
                    match r.status().as_u16() {
                        431 => Ok(()),
                        s => Err(api::Outcome::Status(s)),
                    }
                })
                .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Anonymous clients creating flows.
    let flows = Stats::default();
    for _ in 0..flooders {
        let (public, stats, pace) = (server.public.clone(), flows.clone(), run.pace);
        attackers.push(tokio::spawn(async move {
            while Instant::now() < attack_end {
                let b = api::browser();
                let _ = api::timed(&stats, "new login flow", async {
                    let (st, _, _) =
                        api::send(b.get(format!("{public}/self-service/login/browser"))).await?;
                    if st == 303 {
                        Ok(())
                    } else {
                        Err(api::Outcome::Status(st))
                    }
                })
                .await;
                tokio::time::sleep(pace).await;
            }
        }));
    }
    for a in attackers {
        let _ = a.await;
    }
    let _ = probes.await;
    let _ = sampler.await;
    // File descriptors once the attack is over: each connection ends within the timeouts.
    let settle = Instant::now() + TIMEOUT + SLACK;
    let mut fds_end = open_fds(pid).unwrap_or(0);
    while Instant::now() < settle {
        fds_end = open_fds(pid).unwrap_or(0);
        if fds_end <= samples_before_max(&samples) + 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let refused_per_address = refused(&server.admin, "max_connections_per_address").await?;
    let refused_at_cap = refused(&server.admin, "max_connections").await?;

    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let of = |ph: usize| -> Vec<(usize, u64)> {
        samples
            .iter()
            .filter(|s| s.0 == ph)
            .map(|s| (s.1, s.2))
            .collect()
    };
    let max_fd = |v: &[(usize, u64)]| v.iter().map(|s| s.0).max().unwrap_or(0);
    let max_rss = |v: &[(usize, u64)]| v.iter().map(|s| s.1).max().unwrap_or(0);
    let (s_before, s_during, s_after) = (of(0), of(1), of(2));
    let rss_end = s_after.last().map_or(0, |s| s.1);
    let (idle_l, loris_l, reader_l) = (idle_life.all(), loris_life.all(), reader_life.all());
    report.figure(format!(
        "for {:.0} s: {idle} idle connections, {slowloris} slow-loris (reconnecting when closed), {readers} slow readers (1500 pipelined requests, nothing read), {huge} clients sending 1 MiB headers, {flooders} anonymous clients creating login flows; header read and write stall timeouts {} s:\n probes before:\n{}\n probes during:\n{}\n probes after:\n{}\n huge headers:\n{}\n flows created:\n{}\n  server closed: {} of {} idle connections made (longest lived {:.1} s), {} slow-loris (longest {:.1} s), {} of {readers} slow readers (stylesheet bytes they got: {})\n  connections refused at accept: {refused_per_address} beyond the flooding address's {PER_ADDRESS}, {refused_at_cap} at the listener's cap\n  file descriptors before / peak during / at the end: {} / {} / {fds_end}; RSS (MiB) before / peak / at the end: {:.0} / {:.0} / {:.0}",
        attack.as_secs_f64(),
        TIMEOUT.as_secs(),
        before.report(lead.as_secs_f64()),
        during.report(attack.as_secs_f64()),
        after.report((TIMEOUT + SLACK).as_secs_f64()),
        huge_stats.report(attack.as_secs_f64()),
        flows.report(attack.as_secs_f64()),
        idle_l.len(),
        connected.load(Ordering::Relaxed),
        longest(&idle_l).as_secs_f64(),
        loris_l.len(),
        longest(&loris_l).as_secs_f64(),
        reader_l.len(),
        delivered.load(Ordering::Relaxed),
        max_fd(&s_before),
        max_fd(&s_during),
        max_rss(&s_before) as f64 / 1024.0,
        max_rss(&s_during) as f64 / 1024.0,
        rss_end as f64 / 1024.0,
    ));
    let failed = |s: &Stats| s.requests() - s.acknowledged();
    report.check(
        failed(&during) + failed(&after) == 0 && during.acknowledged() > 0,
        format!(
            "every legitimate request is served during the attack ({} of {} were)",
            during.acknowledged(),
            during.requests()
        ),
    );
    report.check(
        refused_at_cap == 0.0
            && (idle <= PER_ADDRESS || refused_per_address >= (idle - PER_ADDRESS) as f64 * 0.9),
        format!(
            "one address holds at most its share: {refused_per_address} of its {idle} idle connections were refused at accept, and the listener's cap refused none ({refused_at_cap}), so no newcomer was locked out"
        ),
    );
    let bound = (5.0 * before.percentile_ms(0.99)).max(2000.0);
    report.check(
        during.percentile_ms(0.99) <= bound,
        format!(
            "their p99 stays low ({:.0} ms during, {:.0} ms before, bound {bound:.0} ms)",
            during.percentile_ms(0.99),
            before.percentile_ms(0.99)
        ),
    );
    report.check(
        idle_l.len() as u64 == connected.load(Ordering::Relaxed)
            && idle_l.len() * 10 >= idle * 9
            && longest(&idle_l) <= TIMEOUT + SLACK,
        format!(
            "idle connections are closed after the header read timeout ({} of {} made closed, longest {:.1} s)",
            idle_l.len(),
            connected.load(Ordering::Relaxed),
            longest(&idle_l).as_secs_f64()
        ),
    );
    report.check(
        loris_l.len() >= slowloris && longest(&loris_l) <= TIMEOUT + SLACK,
        format!(
            "slow-loris connections are closed after the header read timeout ({} closed, longest {:.1} s)",
            loris_l.len(),
            longest(&loris_l).as_secs_f64()
        ),
    );
    report.check(
        reader_l.len() == readers,
        format!(
            "slow readers are let go after the write stall timeout ({} of {readers} were)",
            reader_l.len()
        ),
    );
    report.check(
        huge_stats.requests() > 0 && failed(&huge_stats) == 0,
        format!(
            "a 1 MiB header is answered 431, never a 500 ({} of {})",
            huge_stats.acknowledged(),
            huge_stats.requests()
        ),
    );
    let held = idle.min(PER_ADDRESS) + slowloris + readers + huge + flooders + 50;
    report.check(
        max_fd(&s_during) <= max_fd(&s_before) + held && fds_end <= max_fd(&s_before) + 20,
        format!(
            "file descriptors stay within the connections the attack holds and return to where they were (before {}, peak {}, end {fds_end})",
            max_fd(&s_before),
            max_fd(&s_during)
        ),
    );
    report.check(
        max_rss(&s_during) <= max_rss(&s_before) + 256 * 1024,
        format!(
            "memory stays bounded: RSS grows by less than 256 MiB (by {:.0} MiB)",
            (max_rss(&s_during).saturating_sub(max_rss(&s_before))) as f64 / 1024.0
        ),
    );
    report.check(
        flows.acknowledged() > 0 && failed(&flows) == 0,
        format!(
            "anonymous flows are created throughout ({} of {})",
            flows.acknowledged(),
            flows.requests()
        ),
    );
    drop(server);
    db.drop_database();
    Ok(report)
}

/// A connection to `addr` from the loopback address `from`, with a small receive buffer when
/// asked (a slow reader's writes then stall sooner and the kernel holds less).
async fn connect_from(
    addr: &str,
    from: [u8; 4],
    recv_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::other("not an address"))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((std::net::Ipv4Addr::from(from), 0).into())?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(addr).await
}

/// `tessera_connections_refused_total` for one limit, from the server's metrics.
async fn refused(admin: &str, limit: &str) -> Result<f64> {
    let text = api::client()
        .get(format!("{admin}/metrics/prometheus"))
        .send()
        .await?
        .text()
        .await?;
    let series = format!("tessera_connections_refused_total{{limit=\"{limit}\"}}");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

/// The most file descriptors sampled before the attack.
fn samples_before_max(samples: &Mutex<Vec<(usize, usize, u64)>>) -> usize {
    samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|s| s.0 == 0)
        .map(|s| s.1)
        .max()
        .unwrap_or(0)
}
