//! Scenario 3, the database goes away and comes back, under a steady load of sign-ups, logins
//! and whoami calls:
//!
//! - PostgreSQL: the server reaches its database through a [`Proxy`] that is cut (open
//!   connections closed, new ones refused: what a stopped PostgreSQL does) for `outage`, then
//!   restored. Requests needing the database must fail fast with 503 and `Retry-After` (never
//!   500, never a hang until the client gives up); `/health/ready` goes red, then green again
//!   once the database is back, with no restart; nothing acknowledged is lost.
//! - PostgreSQL hung (`hang`, the soak form only: it waits out a request timeout): the proxy
//!   stalls instead (connections stay open, nothing gets through), as in a network partition.
//!   The server runs with `limits.request_timeout: 3s`; requests must be answered 503 with
//!   `Retry-After` (by the pool's 5 s wait or the request timeout), never held until the
//!   client gives up; the rest as above.
//! - SQLite: another process's writer holds the database's write lock (`BEGIN IMMEDIATE`) for
//!   `outage`. Reads go on (WAL); writes wait for the lock up to the busy timeout (10 s) and
//!   then fail with 503 and `Retry-After`; nothing acknowledged is lost.

use crate::api;
use crate::proxy::Proxy;
use crate::stats::Stats;
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_testkit::Backend;

pub async fn run(run: &Run, hang: bool) -> Result<Report> {
    let mut report = Report::new(if hang { "dbhang" } else { "dbdown" }, run.backend);
    let db = run.database().await?;
    let proxy = match run.backend {
        Backend::Postgres => {
            let u = url::Url::parse(&db.dsn)?;
            let target = format!(
                "{}:{}",
                u.host_str().unwrap_or("127.0.0.1"),
                u.port().unwrap_or(5432)
            );
            Some(Proxy::start(target).await?)
        }
        Backend::Sqlite => None,
    };
    let server_dsn = match &proxy {
        Some(p) => {
            let mut u = url::Url::parse(&db.dsn)?;
            u.set_port(Some(p.port))
                .map_err(|()| anyhow::anyhow!("set the proxy's port"))?;
            u.to_string()
        }
        None => db.dsn.clone(),
    };
    let mut config = json!({
        "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}},
    });
    if hang {
        config["limits"] = json!({"request_timeout": "3s"});
    }
    let server = Tessera::start(&db.dir, &server_dsn, config).await?;
    let c = api::client();
    let first = api::register(&c, &server.public, "first@example.com")
        .await
        .map_err(|o| anyhow::anyhow!("first registration: {}", o.label()))?;

    let registered: Arc<Mutex<Vec<api::Registered>>> = Arc::default();
    let before = Stats::default();
    let during = Stats::default();
    let after = Stats::default();
    // 0 before the outage, 1 during, 2 after: which tally a request counts in (by its start).
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let lead = Duration::from_secs(2);
    let tail = Duration::from_secs(2);
    let deadline = Instant::now() + lead + run.outage + tail;
    let mut workers = Vec::new();
    for w in 0..run.workers {
        let (public, first, registered, phase) = (
            server.public.clone(),
            first.clone(),
            registered.clone(),
            phase.clone(),
        );
        let tallies = [before.clone(), during.clone(), after.clone()];
        let pace = run.pace;
        workers.push(tokio::spawn(async move {
            let c = api::client();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let stats = &tallies[usize::from(phase.load(std::sync::atomic::Ordering::SeqCst))];
                if let Ok(Some(r)) =
                    api::mixed_step(&c, &public, stats, &format!("d{w}"), i, &first).await
                {
                    registered.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
                tokio::time::sleep(pace).await;
            }
        }));
    }

    // Readiness, polled every 100 ms: when it went red and green again.
    let ready_log: Arc<Mutex<Vec<(f64, bool)>>> = Arc::default();
    let t0 = Instant::now();
    let poller = {
        let (public, log) = (server.public.clone(), ready_log.clone());
        tokio::spawn(async move {
            let c = api::client();
            while Instant::now() < deadline {
                let ok = matches!(
                    c.get(format!("{public}/health/ready")).timeout(Duration::from_secs(5)).send().await,
                    Ok(r) if r.status() == 200
                );
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((t0.elapsed().as_secs_f64(), ok));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(lead).await;
    phase.store(1, std::sync::atomic::Ordering::SeqCst);
    let cut_at = t0.elapsed().as_secs_f64();
    let what = match &proxy {
        Some(p) if hang => {
            p.stall();
            tokio::time::sleep(run.outage).await;
            p.restore();
            format!(
                "PostgreSQL hung for {:.0} s (connections open, nothing gets through; request_timeout 3 s)",
                run.outage.as_secs_f64()
            )
        }
        Some(p) => {
            p.cut();
            tokio::time::sleep(run.outage).await;
            p.restore();
            format!(
                "PostgreSQL cut off for {:.0} s (connections closed, new ones refused)",
                run.outage.as_secs_f64()
            )
        }
        None => {
            hold_sqlite_write_lock(&db.dsn, run.outage).await?;
            format!(
                "SQLite write lock held by another connection for {:.0} s",
                run.outage.as_secs_f64()
            )
        }
    };
    let restored_at = t0.elapsed().as_secs_f64();
    phase.store(2, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }
    let _ = poller.await;

    let log = ready_log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let red_at = log
        .iter()
        .find(|(t, ok)| *t >= cut_at && !ok)
        .map(|(t, _)| t - cut_at);
    let green_at = log
        .iter()
        .find(|(t, ok)| *t >= restored_at && *ok)
        .map(|(t, _)| t - restored_at);
    let ready_at_end = log.last().is_some_and(|(_, ok)| *ok);

    let acked = registered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lost = Vec::new();
    for r in acked.iter().chain(std::iter::once(&first)) {
        let v: Value = c
            .get(format!(
                "{}/admin/identities/{}?include_credential=password",
                server.admin, r.identity
            ))
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        if v["credentials"]["password"]["identifiers"] != json!([r.email]) {
            lost.push(r.email.clone());
        }
    }

    report.figure(format!(
        "{what}; {} workers:\n before:\n{}\n during:\n{}\n after:\n{}\n  readiness: red {} after the cut, green {} after the restore, ready at the end: {ready_at_end}; {} registrations acknowledged, {} lost{}",
        run.workers,
        before.report(lead.as_secs_f64()),
        during.report(run.outage.as_secs_f64()),
        after.report(tail.as_secs_f64()),
        red_at.map_or("never".into(), |s| format!("{s:.1} s")),
        green_at.map_or("never".into(), |s| format!("{s:.1} s")),
        acked.len(),
        lost.len(),
        proxy.as_ref().map_or(String::new(), |p| format!("; connections refused by the cut {}", p.refused.load(std::sync::atomic::Ordering::Relaxed))),
    ));
    let no_answer = during.count("client timeout") + after.count("client timeout");
    let bad = |s: &Stats| s.count("http 500") + s.count("http 503 without Retry-After");
    report.check(
        bad(&during) + bad(&after) == 0,
        format!(
            "failures are a clear 503 with Retry-After, never a 500 or a bare 503 ({} were not)",
            bad(&during) + bad(&after)
        ),
    );
    report.check(
        no_answer == 0,
        format!("no request held until the client gave up ({no_answer} were)"),
    );
    report.check(
        after.acknowledged() > 0 && ready_at_end,
        "service and readiness come back without a restart".into(),
    );
    if run.backend == Backend::Postgres {
        report.check(
            red_at.is_some(),
            "readiness goes red while the database is away".into(),
        );
        report.check(
            during.count("http 503") > 0,
            "requests needing the database were refused while it was away".into(),
        );
    }
    report.check(
        lost.is_empty(),
        format!("nothing acknowledged is lost ({lost:?})"),
    );
    drop(server);
    drop(proxy);
    db.drop_database();
    Ok(report)
}

/// Another writer: a connection of its own that holds SQLite's write lock for `hold`.
async fn hold_sqlite_write_lock(dsn: &str, hold: Duration) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(dsn)
        .await
        .context("open the SQLite file")?;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .context("take the write lock")?;
    tokio::time::sleep(hold).await;
    sqlx::query("ROLLBACK").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
