//! Scenario 6 (second half), an upgrade with a pending migration. What a release upgrade does
//! to the state people are in the middle of, as closely as one binary can show it:
//!
//! 1. The server runs on a migrated database and people are mid-way: API and browser sessions,
//!    an API login flow and a browser registration flow created but not submitted, an OpenID
//!    Provider code not yet exchanged and a refresh token not yet used, a social sign-in whose
//!    browser is at the upstream (its state stored, the callback still to come).
//! 2. The server stops (SIGTERM) and `tessera migrate sql down --steps 3` takes the schema back
//!    to what the release before the newest three migrations left, keeping those rows: the
//!    database as the previous version left it, now facing a version with three pending
//!    migrations.
//! 3. The new version's `serve` refuses to start on it, naming the command that fixes it;
//!    `tessera migrate sql up` applies the pending migrations and `serve` starts.
//! 4. Everything from step 1 completes: sessions are honoured, the flows are submitted, the
//!    code is exchanged and the refresh token rotated, the social callback signs in, and the
//!    OpenID Provider publishes the same signing key.
//!
//! Not shown: an older *binary* serving next to a newer one while the schema changes (the
//! suite has one binary); see docs/reliability.md.

use crate::api::{self, Outcome, SocialEnd};
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_testkit::fake_oidc::{Alg, FakeOidc, FakeOptions};

/// Migrations reverted, so as many are pending at the upgrade.
const PENDING: usize = 3;

const MAPPER: &str = r#"local claims = std.extVar('claims');
{ identity: { traits: { email: claims.email } } }
"#;

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("upgrade", run.backend);
    let fake = FakeOidc::start(FakeOptions {
        alg: Alg::ES256,
        claims: json!({"email": "social@example.com", "email_verified": true}),
        ..Default::default()
    })
    .await;
    let db = run.database().await?;
    let config = json!({
        "selfservice": {
            "default_browser_return_url": "https://app.example.com/home",
            "allowed_return_urls": ["https://app.example.com/", api::RP],
            "methods": {"oidc": {"enabled": true, "config": {"providers": [{
                "id": "acme",
                "provider": "generic",
                "client_id": fake.client_id(),
                "client_secret": fake.client_secret(),
                "issuer_url": fake.issuer(),
                "mapper_url": tessera_testkit::config::base64_url(MAPPER),
                "scope": ["email"],
            }]}}},
            "flows": {"registration": {"after": {
                "oidc": {"hooks": [{"hook": "session"}]},
                "password": {"hooks": [{"hook": "session"}]},
            }}},
        },
        "oidc_provider": {"signing_alg": "ES256"},
    });
    let mut server = Tessera::start(&db.dir, &db.dsn, config).await?;
    let public = server.public.clone();
    let c = api::client();
    let fail = |what: &'static str| move |o: Outcome| anyhow::anyhow!("{what}: {}", o.label());

    // 1. State in flight.
    let user = api::register(&c, &public, "upgrade@example.com")
        .await
        .map_err(fail("register"))?;
    let app = api::create_app(&c, &server.admin).await?;
    let browser = api::browser();
    let code = api::authorize(&browser, &public, &app.0, &user.email)
        .await
        .map_err(fail("authorize"))?;
    let code2 = api::authorize(&browser, &public, &app.0, &user.email)
        .await
        .map_err(fail("authorize"))?;
    let tokens = api::exchange(&c, &public, &app, &code2)
        .await
        .map_err(fail("exchange"))?;
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (st, login_flow, _) = api::send(c.get(format!("{public}/self-service/login/api")))
        .await
        .map_err(fail("login flow"))?;
    anyhow::ensure!(st == 200, "login flow: {st}");
    let registrant = api::browser();
    let (st, _, h) = api::send(registrant.get(format!(
        "{public}/self-service/registration/browser?return_to=https://app.example.com/welcome"
    )))
    .await
    .map_err(fail("registration flow"))?;
    anyhow::ensure!(st == 303, "registration flow: {st}");
    let reg_id = flow_id(&h);
    let social = api::browser();
    let upstream = api::social_start(&social, &public, "acme")
        .await
        .map_err(fail("social start"))?;
    let (st, _, h) = api::send(social.get(&upstream))
        .await
        .map_err(fail("upstream"))?;
    anyhow::ensure!(st == 303, "upstream: {st}");
    let callback = location(&h);
    let kids_before = kids(&c, &public).await?;

    // 2. Stop; the schema as the previous release left it.
    let (status, _) = server.terminate(Duration::from_secs(30)).await?;
    anyhow::ensure!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}");
    server.migrate(&["down", "--steps", &PENDING.to_string()])?;
    let pending = server.migrate(&["status"])?;
    let pending_count = pending.lines().filter(|l| l.contains("Pending")).count();

    // 3. The new version refuses to serve until migrated; then it migrates and serves.
    let refused = server.spawn().await.err().map(|e| e.to_string());
    let t = Instant::now();
    server.migrate(&["up"])?;
    server.spawn().await?;
    let upgrade_took = t.elapsed();

    // 4. Everything in flight completes.
    let api_session = api::whoami(&c, &public, &user.token).await.is_ok();
    let browser_session = matches!(
        api::send(browser.get(format!("{public}/sessions/whoami"))).await,
        Ok((200, _, _))
    );
    let id = login_flow["id"].as_str().unwrap_or_default();
    let login_ok = matches!(
        api::send(
            c.post(format!("{public}/self-service/login?flow={id}"))
                .json(&json!({"method": "password", "identifier": user.email, "password": api::PASSWORD})),
        )
        .await,
        Ok((200, _, _))
    );
    let registration_ok = submit_registration(&registrant, &public, &reg_id).await;
    let exchanged = api::exchange(&c, &public, &app, &code).await.is_ok();
    let refreshed = api::refresh(&c, &public, &app, &refresh_token)
        .await
        .is_ok();
    let social_end = api::social_follow(&social, &public, callback).await;
    let social_ok = matches!(social_end, Ok(SocialEnd::SignedIn(_)));
    let kids_after = kids(&c, &public).await?;

    report.figure(format!(
        "stopped with state in flight, {PENDING} newest migrations reverted ({pending_count} pending per `migrate sql status`), migrated up and restarted in {:.1} s:\n  serve before migrating: {}\n  after the upgrade: API session {api_session}, browser session {browser_session}, API login flow submitted {login_ok}, browser registration flow submitted {registration_ok}, code exchanged {exchanged}, refresh token rotated {refreshed}, social callback {}, signing keys {kids_before:?} → {kids_after:?}",
        upgrade_took.as_secs_f64(),
        refused.as_deref().map_or("started (not refused)".into(), |e| format!("refused ({})", first_line_with(e, "schema"))),
        match &social_end {
            Ok(SocialEnd::SignedIn(_)) => "signed in".to_string(),
            Ok(SocialEnd::Refused(m)) => format!("refused ({m})"),
            Err(o) => o.label(),
        },
    ));
    report.check(
        pending_count == PENDING,
        format!("the database faces {PENDING} pending migrations ({pending_count})"),
    );
    report.check(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("migrate sql up")),
        "the new version refuses an unmigrated database, naming the command".into(),
    );
    report.check(
        api_session && browser_session,
        format!("sessions survive the upgrade (API {api_session}, browser {browser_session})"),
    );
    report.check(
        login_ok && registration_ok,
        format!(
            "flows created before it are submitted after it (login {login_ok}, registration {registration_ok})"
        ),
    );
    report.check(
        exchanged && refreshed && kids_before == kids_after,
        format!(
            "the OpenID Provider's code, refresh token and signing key survive it (exchanged {exchanged}, rotated {refreshed}, same key {})",
            kids_before == kids_after
        ),
    );
    report.check(
        social_ok,
        "a social sign-in at the upstream during the upgrade completes".into(),
    );
    drop(server);
    db.drop_database();
    Ok(report)
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h.get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn flow_id(h: &reqwest::header::HeaderMap) -> String {
    location(h)
        .split("flow=")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn first_line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or(text)
        .trim()
}

/// The kids the OpenID Provider publishes.
async fn kids(c: &reqwest::Client, public: &str) -> Result<Vec<String>> {
    let jwks: Value = c
        .get(format!("{public}/oidc/jwks"))
        .send()
        .await?
        .json()
        .await
        .context("jwks")?;
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str().map(str::to_string))
        .collect();
    kids.sort();
    Ok(kids)
}

/// Submits a browser registration flow created before the upgrade.
async fn submit_registration(b: &reqwest::Client, public: &str, id: &str) -> bool {
    let Ok((200, flow, _)) = api::send(
        b.get(format!("{public}/self-service/registration/flows?id={id}"))
            .header("accept", "application/json"),
    )
    .await
    else {
        return false;
    };
    let action = flow["ui"]["action"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let csrf = api::csrf_of(&flow);
    matches!(
        api::send(b.post(action).form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("traits.email", "late@example.com"),
            ("password", api::PASSWORD),
        ]))
        .await,
        Ok((303, _, h)) if location(&h).starts_with("https://app.example.com/welcome")
    )
}
