//! Scenario 2 (in part), several instances on one PostgreSQL database: three `tessera serve`
//! processes share a fresh database, and requests that race for one row are sent to all three
//! at once (each instance addressed directly, which makes the races tighter than a
//! round-robin proxy would):
//!
//! - the first signing key is created once: three first code flows, one per instance, at once;
//!   afterwards every instance publishes the same single key;
//! - each code is redeemed at most once: every code is offered to the three instances at once.
//!   Three presentations of one code are a replay, so the usual answer is that *none* gets
//!   tokens: the loser's presentation revokes what the winner was issued (RFC 6749 4.1.2),
//!   and the winner checks for that revocation after storing its tokens;
//! - each refresh token is rotated at most once: likewise (reuse detection revokes the family);
//! - a session revoked on one instance is refused by the others once `session.cache_ttl` (1 s
//!   by default) has passed;
//! - behind a round-robin TCP proxy (a new connection per request, so a flow created on one
//!   instance is submitted to the next), the steady mixed load is served without an error;
//! - a configuration change made with `tessera identity-config update` on one instance is in
//!   force there only (each instance runs the file it was started with); rolled out by running
//!   it against each instance's admin API, as docs/configuration.md says, it is in force on all
//!   three, whichever the proxy picks.

use crate::api;
use crate::proxy::Proxy;
use crate::stats::Stats;
use crate::tessera::{Tessera, cli};
use crate::{Report, Run};
use anyhow::Result;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("instances", run.backend);
    let db = run.database().await?;
    let config = json!({
        "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}},
        "oidc_provider": {"signing_alg": "ES256"},
    });
    let mut servers = Vec::new();
    for i in 0..3 {
        let dir = db.dir.join(format!("instance-{i}"));
        std::fs::create_dir_all(&dir)?;
        servers.push(Tessera::start(&dir, &db.dsn, config.clone()).await?);
    }
    let c = api::client();
    let app = api::create_app(&c, &servers[0].admin).await?;
    let email = "multi@example.com";
    api::register(&c, &servers[1].public, email)
        .await
        .map_err(|o| anyhow::anyhow!("register: {}", o.label()))?;

    // First signing key: one code flow per instance, at once.
    let mut tasks = Vec::new();
    for s in &servers {
        let (public, app) = (s.public.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            let b = api::browser();
            let c = api::client();
            let code = api::authorize(&b, &public, &app.0, email).await?;
            api::exchange(&c, &public, &app, &code).await
        }));
    }
    let mut first_tokens = Vec::new();
    for t in tasks {
        if let Ok(Ok(v)) = t.await {
            first_tokens.push(v);
        }
    }
    let mut key_sets = Vec::new();
    for s in &servers {
        let jwks: Value = c
            .get(format!("{}/oidc/jwks", s.public))
            .send()
            .await?
            .json()
            .await?;
        let mut kids: Vec<String> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_string))
            .collect();
        kids.sort();
        key_sets.push(kids);
    }

    // Codes and refresh tokens offered to the three instances at once.
    let rounds = run.concurrency / 10;
    let (mut codes_over, mut codes_none, mut refresh_over, mut refresh_none) = (0, 0, 0, 0);
    for r in 0..rounds {
        let b = api::browser();
        let Ok(code) = api::authorize(&b, &servers[r % 3].public, &app.0, email).await else {
            continue;
        };
        let wins = race(&servers, |public| {
            let (app, code) = (app.clone(), code.clone());
            async move { api::exchange(&api::client(), &public, &app, &code).await }
        })
        .await;
        let won = wins.iter().filter(|w| w.is_some()).count();
        codes_over += usize::from(won > 1);
        codes_none += usize::from(won == 0);
        // A refresh token from a code redeemed once, then raced.
        let b = api::browser();
        let Ok(code) = api::authorize(&b, &servers[r % 3].public, &app.0, email).await else {
            continue;
        };
        let Ok(t) = api::exchange(&c, &servers[r % 3].public, &app, &code).await else {
            continue;
        };
        let rt = t["refresh_token"].as_str().unwrap_or_default().to_string();
        let wins = race(&servers, |public| {
            let (app, rt) = (app.clone(), rt.clone());
            async move { api::refresh(&api::client(), &public, &app, &rt).await }
        })
        .await;
        let won = wins.iter().filter(|w| w.is_some()).count();
        refresh_over += usize::from(won > 1);
        refresh_none += usize::from(won == 0);
    }

    // Revocation on one instance reaches the others within session.cache_ttl.
    let token = api::login(&c, &servers[0].public, email, api::PASSWORD)
        .await
        .map_err(|o| anyhow::anyhow!("login: {}", o.label()))?;
    let mut honoured_before = 0;
    for s in &servers {
        if api::whoami(&c, &s.public, &token).await.is_ok() {
            honoured_before += 1;
        }
    }
    let (st, session, _) = api::send(
        c.get(format!("{}/sessions/whoami", servers[0].public))
            .header("X-Session-Token", &token),
    )
    .await
    .map_err(|o| anyhow::anyhow!("whoami: {}", o.label()))?;
    anyhow::ensure!(st == 200, "whoami: {st}");
    let sid = session["id"].as_str().unwrap_or_default();
    let r = c
        .delete(format!("{}/admin/sessions/{sid}", servers[2].admin))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 204, "revoke: {}", r.status());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut honoured_after = 0;
    for s in &servers {
        if api::whoami(&c, &s.public, &token).await.is_ok() {
            honoured_after += 1;
        }
    }

    report.figure(format!(
        "three instances on one database:\n  first code flows at once: {} of 3 acknowledged; key ids published by each instance: {key_sets:?}\n  {rounds} codes each offered to the three at once: {codes_over} redeemed more than once, {codes_none} by none (the replay revoked the grant); {rounds} refresh tokens likewise: {refresh_over} rotated more than once, {refresh_none} by none\n  a session honoured by {honoured_before} of 3 instances, revoked on the third: honoured by {honoured_after} of 3 after 1.5 s (session.cache_ttl 1 s)",
        first_tokens.len(),
    ));
    report.check(
        first_tokens.len() == 3,
        format!(
            "three first code flows at once all succeed ({} did)",
            first_tokens.len()
        ),
    );
    report.check(
        key_sets.iter().all(|k| k.len() == 1 && *k == key_sets[0]),
        format!("the first signing key is created once: every instance publishes the same one key ({key_sets:?})"),
    );
    report.check(
        rounds > 0 && codes_over == 0,
        format!("no code is redeemed more than once across instances ({codes_over} were)"),
    );
    report.check(
        rounds > 0 && refresh_over == 0,
        format!(
            "no refresh token is rotated more than once across instances ({refresh_over} were)"
        ),
    );
    report.check(
        honoured_before == 3 && honoured_after == 0,
        format!("a revoked session is refused everywhere once the cache TTL has passed (before {honoured_before}/3, after {honoured_after}/3)"),
    );
    behind_a_proxy(run, &servers, &mut report).await?;
    drop(servers);
    db.drop_database();
    Ok(report)
}

/// Where a new browser login flow sends the browser (the login page's URL).
const NEW_LOGIN_UI: &str = "https://accounts.example.com/login";

/// The round-robin proxy's load, then a configuration rolled out with `identity-config`.
async fn behind_a_proxy(run: &Run, servers: &[Tessera], report: &mut Report) -> Result<()> {
    let targets = servers
        .iter()
        .map(|s| s.public.trim_start_matches("http://").to_string())
        .collect();
    let proxy = Proxy::round_robin(targets).await?;
    let front = format!("http://127.0.0.1:{}", proxy.port);
    // No kept-alive connections: each request takes the next instance.
    let fresh = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .timeout(api::CLIENT_TIMEOUT)
            .build()
            .unwrap_or_default()
    };
    let first = api::register(&fresh(), &front, "front@example.com")
        .await
        .map_err(|o| anyhow::anyhow!("register through the proxy: {}", o.label()))?;
    let stats = Stats::default();
    let load_for = run.duration / 2;
    let deadline = Instant::now() + load_for;
    let mut workers = Vec::new();
    for w in 0..run.workers {
        let (front, first, stats) = (front.clone(), first.clone(), stats.clone());
        let (c, pace) = (fresh(), run.pace);
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let _ = api::mixed_step(&c, &front, &stats, &format!("p{w}"), i, &first).await;
                tokio::time::sleep(pace).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let spread: Vec<u64> = proxy
        .forwarded
        .iter()
        .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
        .collect();

    // identity-config update on the first instance only, then on each.
    let ui_of = |public: String| async move {
        let r = fresh()
            .get(format!("{public}/self-service/login/browser"))
            .send()
            .await
            .ok()?;
        let loc = r.headers().get("location")?.to_str().ok()?.to_string();
        Some(loc.starts_with(NEW_LOGIN_UI))
    };
    update_login_ui(&servers[0])?;
    let mut after_one = Vec::new();
    for s in servers {
        after_one.push(ui_of(s.public.clone()).await == Some(true));
    }
    for s in &servers[1..] {
        update_login_ui(s)?;
    }
    let mut after_all = 0;
    for _ in 0..9 {
        if ui_of(front.clone()).await == Some(true) {
            after_all += 1;
        }
    }
    report.figure(format!(
        " behind a round-robin proxy (one connection per request), {} workers for {:.0} s:\n{}\n  connections per instance {spread:?}\n  identity-config update on the first instance: in force on {after_one:?}; after running it against each instance: {after_all} of 9 requests through the proxy see it",
        run.workers,
        load_for.as_secs_f64(),
        stats.report(load_for.as_secs_f64()),
    ));
    let failed = stats.requests() - stats.acknowledged();
    report.check(
        failed == 0 && stats.acknowledged() > 0,
        format!(
            "the mixed load through the proxy is served without an error, flows crossing instances ({failed} failed)"
        ),
    );
    let total: u64 = spread.iter().sum();
    report.check(
        spread.iter().all(|n| *n * 5 >= total),
        format!("the proxy spreads the connections over the three ({spread:?})"),
    );
    report.check(
        after_one == [true, false, false],
        format!(
            "an update is in force on the instance it was sent to, and only there ({after_one:?})"
        ),
    );
    report.check(
        after_all == 9,
        format!("rolled out to each instance, it is in force everywhere ({after_all} of 9)"),
    );
    Ok(())
}

/// The roll-out step for one instance, with the CLI as an operator runs it: `identity-config
/// get`, change the login page's URL, `identity-config update`.
fn update_login_ui(server: &Tessera) -> Result<()> {
    let endpoint = ["--endpoint", server.admin.as_str()];
    let got = cli(&[
        &["identity-config"][..],
        &endpoint,
        &["get", "--format", "json"],
    ]
    .concat())?;
    let mut doc: Value = serde_json::from_str(&got)?;
    doc["selfservice"]["flows"]["login"]["ui_url"] = json!(NEW_LOGIN_UI);
    let file = server.dir.join("identity-config.json");
    std::fs::write(&file, serde_json::to_string_pretty(&doc)?)?;
    let path = file.to_string_lossy().into_owned();
    cli(&[
        &["identity-config"][..],
        &endpoint,
        &["update", "--file", &path],
    ]
    .concat())?;
    Ok(())
}

/// Runs `f` against every instance at once; the acknowledged answers, by instance.
async fn race<F, Fut>(servers: &[Tessera], f: F) -> Vec<Option<Value>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Value, api::Outcome>> + Send + 'static,
{
    let tasks: Vec<_> = servers
        .iter()
        .map(|s| tokio::spawn(f(s.public.clone())))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.ok().and_then(Result::ok));
    }
    out
}
