//! Scenario 1, kill -9 under load: the real `tessera` binary under a steady mixed load (API
//! sign-ups, password logins, OpenID Provider code flows with their code exchanges and
//! refreshes) is SIGKILLed and restarted `kills` times on the same database. Afterwards:
//!
//! - every acknowledged registration exists, with its password credential (identifier = the
//!   email), its address, and its password still working;
//! - every identity in the database is whole (a password credential with an identifier: no
//!   half-written registration, acknowledged or not);
//! - every acknowledged session still works;
//! - no code is redeemed twice (each code acknowledged is offered again: never accepted after
//!   one success);
//! - no refresh family has two valid tokens: the newest acknowledged token of a family whose
//!   every rotation was acknowledged still works, and then no other token of it does.

use crate::api::{self, Code, Outcome};
use crate::stats::{self, Stats};
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::Result;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the server acknowledged, shared by the workers.
#[derive(Default)]
struct Ledger {
    registered: Vec<api::Registered>,
    sessions: Vec<String>,
    /// Codes received, with whether their exchange was acknowledged.
    codes: Vec<(Code, bool)>,
    families: Vec<Family>,
}

struct Family {
    /// Every refresh token issued to this family that the client saw, oldest first.
    tokens: Vec<String>,
    /// A rotation's answer was lost (the server may have rotated): the newest token is not
    /// known any more, so only "at most one valid" is checked.
    uncertain: bool,
    /// The newest acknowledged token was refused during the load.
    refused: bool,
    busy: bool,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("kill9", run.backend);
    let db = run.database().await?;
    let config = json!({
        "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}},
        "oidc_provider": {"signing_alg": "ES256"},
    });
    let mut server = Tessera::start(&db.dir, &db.dsn, config).await?;
    let c = api::client();
    let app = api::create_app(&c, &server.admin).await?;
    // The people who sign in to the app (registered before the load, so they exist).
    let mut op_users = Vec::new();
    for i in 0..run.workers {
        let email = format!("op-user-{i}@example.com");
        api::register(&c, &server.public, &email)
            .await
            .map_err(|o| anyhow::anyhow!("register {email}: {}", o.label()))?;
        op_users.push(email);
    }

    let ledger: Shared = Arc::default();
    let stats = Stats::default();
    let deadline = Instant::now() + run.duration;
    let mut workers = Vec::new();
    for (w, op_user) in op_users.iter().enumerate() {
        let (public, app, ledger, stats) = (
            server.public.clone(),
            app.clone(),
            ledger.clone(),
            stats.clone(),
        );
        let op_user = op_user.clone();
        let pace = run.pace;
        workers.push(tokio::spawn(async move {
            let c = api::client();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                step(w, i, &c, &public, &app, &op_user, &ledger, &stats).await;
                tokio::time::sleep(pace).await;
            }
        }));
    }

    // The killer: evenly spread SIGKILLs, each followed by a restart.
    let mut restart_ms = Vec::new();
    let gap = run.duration / (run.kills + 1);
    let mut rss = Vec::new();
    for _ in 0..run.kills {
        tokio::time::sleep(gap).await;
        if let Some(pid) = server.pid() {
            rss.extend(stats::rss_kib(pid));
        }
        server.kill9()?;
        let t = Instant::now();
        server.spawn().await?;
        restart_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for w in workers {
        let _ = w.await;
    }
    let load_secs = run.duration.as_secs_f64();
    let mut fds = None;
    if let Some(pid) = server.pid() {
        rss.extend(stats::rss_kib(pid));
        fds = stats::open_fds(pid);
    }

    // Verification, on the last instance.
    let l = std::mem::take(&mut *lock(&ledger));
    let mut lost_registrations = Vec::new();
    let mut broken_passwords = 0;
    for r in &l.registered {
        let full: Value = c
            .get(format!(
                "{}/admin/identities/{}?include_credential=password",
                server.admin, r.identity
            ))
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let ok = full["traits"]["email"] == r.email.as_str()
            && full["credentials"]["password"]["identifiers"] == json!([r.email])
            && full["verifiable_addresses"][0]["value"] == r.email.as_str();
        if !ok {
            lost_registrations.push(format!("{} ({}): {full}", r.email, r.identity));
        } else if api::login(&c, &server.public, &r.email, api::PASSWORD)
            .await
            .is_err()
        {
            broken_passwords += 1;
        }
    }
    let everyone = super::concurrency::all_identities(&server.admin).await?;
    let mut half_written = Vec::new();
    for i in &everyone {
        let id = i["id"].as_str().unwrap_or_default();
        let full: Value = c
            .get(format!(
                "{}/admin/identities/{id}?include_credential=password",
                server.admin
            ))
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let idents = full["credentials"]["password"]["identifiers"]
            .as_array()
            .map_or(0, Vec::len);
        if idents == 0 || full["verifiable_addresses"].as_array().map_or(0, Vec::len) == 0 {
            half_written.push(id.to_string());
        }
    }
    let mut lost_sessions = 0;
    for t in &l.sessions {
        if api::whoami(&c, &server.public, t).await.is_err() {
            lost_sessions += 1;
        }
    }
    // Refresh families first: offering a used code again revokes what it issued (RFC 6749
    // 4.1.2), which would make every family look lost.
    let mut lost_rotations = l.families.iter().filter(|f| f.refused).count();
    let (mut two_valid, mut certain) = (0, 0);
    for f in &l.families {
        let mut valid = 0;
        if !f.uncertain {
            certain += 1;
            if let Some(newest) = f.tokens.last() {
                if api::refresh(&c, &server.public, &app, newest).await.is_ok() {
                    valid += 1;
                } else {
                    lost_rotations += 1;
                }
            }
        }
        for t in &f.tokens {
            if api::refresh(&c, &server.public, &app, t).await.is_ok() {
                valid += 1;
            }
        }
        if valid > 1 {
            two_valid += 1;
        }
    }

    let mut codes_twice = 0;
    let mut codes_redeemed_late = 0;
    for (code, redeemed) in &l.codes {
        if api::exchange(&c, &server.public, &app, code).await.is_ok() {
            if *redeemed {
                codes_twice += 1;
            } else {
                codes_redeemed_late += 1;
                // Redeemed now: a second try must fail.
                if api::exchange(&c, &server.public, &app, code).await.is_ok() {
                    codes_twice += 1;
                }
            }
        }
    }
    let codes_acked = l.codes.iter().filter(|(_, r)| *r).count();
    report.figure(format!(
        "steady mixed load, {} workers, {} × kill -9 + restart:\n{}\n  restarts to ready: {}; server RSS before each kill / at the end (KiB): {rss:?}; open file descriptors at the end: {}\n  acknowledged: {} registrations, {} sessions, {} codes received ({} exchanged), {} refresh families ({} with every rotation acknowledged, {} rotations)\n  lost: {} registrations, {} passwords, {} sessions; half-written identities {} of {}; codes redeemed twice {}; codes redeemable after the run that were unacknowledged {}; refresh families with two valid tokens {}; acknowledged rotations refused {}",
        run.workers,
        run.kills,
        stats.report(load_secs),
        restart_ms.iter().map(|m| format!("{m:.0} ms")).collect::<Vec<_>>().join(", "),
        fds.map_or("unknown".into(), |n| n.to_string()),
        l.registered.len(),
        l.sessions.len(),
        l.codes.len(),
        codes_acked,
        l.families.len(),
        certain,
        l.families.iter().map(|f| f.tokens.len().saturating_sub(1)).sum::<usize>(),
        lost_registrations.len(),
        broken_passwords,
        lost_sessions,
        half_written.len(),
        everyone.len(),
        codes_twice,
        codes_redeemed_late,
        two_valid,
        lost_rotations,
    ));
    report.check(
        stats.acknowledged() > 0 && !l.registered.is_empty() && codes_acked > 0,
        "the load made progress (registrations and code exchanges acknowledged)".into(),
    );
    report.check(
        lost_registrations.is_empty(),
        format!("every acknowledged registration exists with its credential and address (lost: {lost_registrations:?})"),
    );
    report.check(
        broken_passwords == 0,
        format!("every acknowledged registration's password works ({broken_passwords} do not)"),
    );
    report.check(
        half_written.is_empty(),
        format!("no half-written identity ({half_written:?})"),
    );
    report.check(
        lost_sessions == 0,
        format!("every acknowledged session works ({lost_sessions} do not)"),
    );
    report.check(
        codes_twice == 0,
        format!("no code redeemed twice ({codes_twice} were)"),
    );
    report.check(
        two_valid == 0,
        format!("no refresh family with two valid tokens ({two_valid} have)"),
    );
    report.check(
        lost_rotations == 0,
        format!("every acknowledged refresh rotation survived ({lost_rotations} did not)"),
    );
    drop(server);
    db.drop_database();
    Ok(report)
}

/// One operation of worker `w`, chosen by the iteration number: sign-up, login, an OP code
/// flow (authorize, exchange, first refresh), or the refresh of an earlier family.
#[allow(clippy::too_many_arguments)]
async fn step(
    w: usize,
    i: u64,
    c: &reqwest::Client,
    public: &str,
    app: &(String, String),
    op_user: &str,
    ledger: &Shared,
    stats: &Stats,
) {
    match i % 4 {
        0 => {
            let email = format!("w{w}-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
            if let Ok(r) = api::timed(stats, "sign-up", api::register(c, public, &email)).await {
                let mut l = lock(ledger);
                l.sessions.push(r.token.clone());
                l.registered.push(r);
            }
        }
        1 => {
            let who = {
                let l = lock(ledger);
                let n = l.registered.len();
                (n > 0).then(|| l.registered[(i as usize * 7 + w) % n].email.clone())
            };
            if let Some(email) = who
                && let Ok(t) =
                    api::timed(stats, "login", api::login(c, public, &email, api::PASSWORD)).await
            {
                lock(ledger).sessions.push(t);
            }
        }
        2 => {
            let b = api::browser();
            let Ok(code) = api::timed(
                stats,
                "authorize",
                api::authorize(&b, public, &app.0, op_user),
            )
            .await
            else {
                return;
            };
            let idx = {
                let mut l = lock(ledger);
                l.codes.push((code.clone(), false));
                l.codes.len() - 1
            };
            if let Ok(t) =
                api::timed(stats, "code exchange", api::exchange(c, public, app, &code)).await
            {
                let rt = t["refresh_token"].as_str().unwrap_or_default().to_string();
                let mut l = lock(ledger);
                l.codes[idx].1 = true;
                l.families.push(Family {
                    tokens: vec![rt],
                    uncertain: false,
                    refused: false,
                    busy: false,
                });
            }
        }
        _ => {
            let picked = {
                let mut l = lock(ledger);
                let n = l.families.len();
                (0..n)
                    .map(|k| (k + i as usize) % n)
                    .find(|&k| !l.families[k].busy && !l.families[k].uncertain)
                    .map(|k| {
                        l.families[k].busy = true;
                        (k, l.families[k].tokens.last().cloned().unwrap_or_default())
                    })
            };
            let Some((k, rt)) = picked else { return };
            let r = api::timed(stats, "refresh", api::refresh(c, public, app, &rt)).await;
            let mut l = lock(ledger);
            let f = &mut l.families[k];
            f.busy = false;
            match r {
                Ok(t) => f
                    .tokens
                    .push(t["refresh_token"].as_str().unwrap_or_default().to_string()),
                // No answer: the rotation may or may not have happened.
                Err(Outcome::Transport(_)) => f.uncertain = true,
                // The newest acknowledged token refused: an acknowledged rotation was lost.
                Err(Outcome::Status(400 | 401)) => {
                    f.refused = true;
                    f.uncertain = true;
                }
                Err(_) => f.uncertain = true,
            }
        }
    }
}
