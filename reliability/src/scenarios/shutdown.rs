//! Scenario 6 (first half), graceful shutdown under load: the server gets SIGTERM while workers
//! keep sending sign-ups, logins and whoami calls. It must stop accepting, finish the requests
//! it is serving (each still gets its answer), exit cleanly, and leave nothing acknowledged
//! lost: a new process on the same database honours every acknowledged registration and
//! session.
//!
//! "In flight" is judged from the client's side with a margin: a request sent at least
//! [`MARGIN`] before the signal was being served when it arrived (or was already answered), so
//! it must have an answer; one sent just before may still have been on its way.

use crate::api::{self, Outcome};
use crate::stats::Stats;
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::Result;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MARGIN: Duration = Duration::from_millis(100);

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("shutdown", run.backend);
    let db = run.database().await?;
    let config = json!({
        "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}},
    });
    let mut server = Tessera::start(&db.dir, &db.dsn, config).await?;
    let c = api::client();
    let first = api::register(&c, &server.public, "first@example.com")
        .await
        .map_err(|o| anyhow::anyhow!("first registration: {}", o.label()))?;

    // Every request: when it was sent, and how it ended.
    let log: Arc<Mutex<Vec<(Instant, Outcome)>>> = Arc::default();
    let registered: Arc<Mutex<Vec<api::Registered>>> = Arc::default();
    let stats = Stats::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..run.workers {
        let (public, first) = (server.public.clone(), first.clone());
        let (log, registered, stats, stop) =
            (log.clone(), registered.clone(), stats.clone(), stop.clone());
        let pace = run.pace;
        workers.push(tokio::spawn(async move {
            let c = api::client();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let sent = Instant::now();
                let outcome =
                    match api::mixed_step(&c, &public, &stats, &format!("s{w}"), i, &first).await {
                        Ok(Some(r)) => {
                            registered.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                            Outcome::Ok
                        }
                        Ok(None) => Outcome::Ok,
                        Err(o) => o,
                    };
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((sent, outcome));
                tokio::time::sleep(pace).await;
            }
        }));
    }
    tokio::time::sleep(run.duration / 3).await;
    let signalled = Instant::now();
    let (status, took) = server.terminate(Duration::from_secs(30)).await?;
    // Keep the load on a little longer: the server is gone, requests are refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let in_flight_unanswered = log
        .iter()
        .filter(|(sent, o)| *sent + MARGIN <= signalled && matches!(o, Outcome::Transport(_)))
        .count();
    let answered_before_signal = log
        .iter()
        .filter(|(sent, o)| *sent <= signalled && !matches!(o, Outcome::Transport(_)))
        .count();

    // A new process on the same database.
    server.spawn().await?;
    let acked = registered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lost = 0;
    for r in acked.iter().chain(std::iter::once(&first)) {
        if api::whoami(&c, &server.public, &r.token).await.is_err()
            || api::login(&c, &server.public, &r.email, api::PASSWORD)
                .await
                .is_err()
        {
            lost += 1;
        }
    }
    report.figure(format!(
        "SIGTERM under load, {} workers:\n{}\n  exit: {} after {:.0} ms; requests sent ≥ {} ms before the signal left unanswered: {in_flight_unanswered}; {} registrations acknowledged, {lost} lost after a restart",
        run.workers,
        stats.report((run.duration / 3).as_secs_f64() + 0.5),
        status.map_or("none (killed after 30 s)".into(), |s| s.to_string()),
        took.as_secs_f64() * 1000.0,
        MARGIN.as_millis(),
        acked.len(),
    ));
    report.check(
        status.is_some_and(|s| s.success()),
        format!("the server exits cleanly on SIGTERM ({status:?})"),
    );
    report.check(
        in_flight_unanswered == 0,
        format!(
            "requests in flight when the signal came are answered ({in_flight_unanswered} were not)"
        ),
    );
    report.check(
        answered_before_signal > 0 && !acked.is_empty(),
        "the load made progress".into(),
    );
    report.check(
        lost == 0,
        format!(
            "every acknowledged registration and session works after a restart ({lost} do not)"
        ),
    );
    drop(server);
    db.drop_database();
    Ok(report)
}
