//! Scenario 7, concurrency: many requests racing for the same row.
//!
//! - `n` browsers complete a first social sign-in of one upstream subject at once: exactly one
//!   identity may come out, and every browser must end signed in to it.
//! - `n` API registrations with one email at once: exactly one identity, one 200, the others
//!   refused as a duplicate (a 400 naming the conflict), never a server error.
//! - Settings racing on one identity: one password change against `n / 5` profile changes
//!   (each a new email). "No lost update" means: the password change, once acknowledged, is
//!   never undone by a concurrent profile write; the final email is one that an acknowledged
//!   profile change set; and the identity's login identifiers and addresses are those of the
//!   final email (nothing stale written back by a racing request).

use crate::api::{self, Outcome, PASSWORD};
use crate::stats::Stats;
use crate::{Report, Run};
use anyhow::Result;
use serde_json::{Value, json};
use std::time::Instant;
use tessera_testkit::fake_oidc::{FakeOidc, FakeOptions};

const MAPPER: &str = r#"local claims = { email_verified: false } + std.extVar('claims');
{ identity: { traits: { [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email } } }
"#;

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("concurrency", run.backend);
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let db = run.database().await?;
    let config = json!({
        "selfservice": {
            "default_browser_return_url": "https://app.example.com/home",
            "allowed_return_urls": ["https://app.example.com/"],
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
    });
    let server = crate::tessera::Tessera::start(&db.dir, &db.dsn, config).await?;
    let n = run.concurrency;

    // 1. First social sign-ins of one subject.
    let stats = Stats::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (public, stats) = (server.public.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            api::timed(&stats, "first social sign-in", social_sign_in(&public)).await
        }));
    }
    let mut signed_in = std::collections::BTreeSet::new();
    for t in tasks {
        if let Ok(Ok(id)) = t.await {
            signed_in.insert(id);
        }
    }
    let identities = all_identities(&server.admin).await?;
    report.figure(format!(
        "{n} concurrent first sign-ins of one upstream subject:\n{}\n  identities created {}, distinct identities signed in to {}",
        stats.report(started.elapsed().as_secs_f64()),
        identities.len(),
        signed_in.len()
    ));
    report.check(
        identities.len() == 1,
        format!(
            "exactly one identity for one upstream subject (found {})",
            identities.len()
        ),
    );
    report.check(
        stats.acknowledged() == n as u64 && signed_in.len() == 1,
        format!(
            "every browser ends signed in to that one identity ({} of {n} did, into {} identities)",
            stats.acknowledged(),
            signed_in.len()
        ),
    );

    // 2. Registrations with one email.
    let stats = Stats::default();
    let started = Instant::now();
    let email = "same@example.com";
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (public, stats) = (server.public.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            let c = api::client();
            api::timed(
                &stats,
                "registration, one email",
                api::register(&c, &public, email),
            )
            .await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let same: Vec<Value> = all_identities(&server.admin)
        .await?
        .into_iter()
        .filter(|i| i["traits"]["email"] == email)
        .collect();
    report.figure(format!(
        "{n} concurrent registrations with one email:\n{}\n  identities with that email {}",
        stats.report(started.elapsed().as_secs_f64()),
        same.len()
    ));
    report.check(
        same.len() == 1,
        format!("exactly one identity per email (found {})", same.len()),
    );
    report.check(
        stats.acknowledged() == 1 && stats.count("http 400") == n as u64 - 1,
        format!(
            "one registration acknowledged, every other one refused as a duplicate (400), none failed otherwise (acknowledged {}, 400s {})",
            stats.acknowledged(),
            stats.count("http 400")
        ),
    );

    // 3. Settings racing on one identity.
    settings_race(&server, n / 5, &mut report).await?;
    drop(server);
    db.drop_database();
    Ok(report)
}

/// A whole browser sign-in through the fake upstream; the identity it ends signed in to.
async fn social_sign_in(public: &str) -> Result<String, Outcome> {
    match api::social_sign_in(public, "acme").await? {
        api::SocialEnd::SignedIn(id) => Ok(id),
        api::SocialEnd::Refused(_) => Err(Outcome::Transport("refused")),
    }
}

/// Every identity, from the admin API (a few hundred at most here).
pub async fn all_identities(admin: &str) -> Result<Vec<Value>> {
    let c = api::client();
    let mut out = Vec::new();
    let mut url = format!("{admin}/admin/identities?page_size=500");
    loop {
        let r = c.get(&url).send().await?;
        let next = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| {
                l.split(',')
                    .find(|p| p.contains("rel=\"next\""))
                    .and_then(|p| p.split('<').nth(1))
                    .and_then(|p| p.split('>').next())
                    .map(str::to_string)
            });
        let page: Vec<Value> = r.json().await?;
        out.extend(page);
        match next {
            Some(n) if n.starts_with('/') => url = format!("{admin}{n}"),
            Some(n) => url = n,
            None => break,
        }
    }
    Ok(out)
}

/// One password change racing `k` profile changes on one identity.
async fn settings_race(
    server: &crate::tessera::Tessera,
    k: usize,
    report: &mut Report,
) -> Result<()> {
    let c = api::client();
    let reg = api::register(&c, &server.public, "racer@example.com")
        .await
        .map_err(|o| anyhow::anyhow!("register the racer: {}", o.label()))?;
    let stats = Stats::default();
    let started = Instant::now();
    let new_password = "a-new-password-nobody-guesses";
    let mut tasks = Vec::new();
    {
        let (public, token, stats) = (server.public.clone(), reg.token.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            let c = api::client();
            // A client whose change was refused because the account changed meanwhile
            // (400, nothing saved) submits again, as a person would.
            let mut ok = false;
            for _ in 0..10 {
                let r = api::timed(
                    &stats,
                    "settings: password",
                    api::settings(
                        &c,
                        &public,
                        &token,
                        json!({"method": "password", "password": new_password}),
                    ),
                )
                .await;
                ok = r.is_ok();
                if !matches!(r, Err(Outcome::Status(400))) {
                    break;
                }
            }
            (None, ok)
        }));
    }
    for i in 0..k {
        let (public, token, stats) = (server.public.clone(), reg.token.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            let c = api::client();
            let email = format!("racer-{i}@example.com");
            let r = api::timed(
                &stats,
                "settings: profile",
                api::settings(
                    &c,
                    &public,
                    &token,
                    json!({"method": "profile", "traits": {"email": email}}),
                ),
            )
            .await;
            (Some(email), r.is_ok())
        }));
    }
    let mut password_changed = false;
    let mut emails = Vec::new();
    for t in tasks {
        if let Ok((email, ok)) = t.await {
            match email {
                None => password_changed = ok,
                Some(e) if ok => emails.push(e),
                Some(_) => {}
            }
        }
    }
    let full: Value = c
        .get(format!(
            "{}/admin/identities/{}?include_credential=password",
            server.admin, reg.identity
        ))
        .send()
        .await?
        .json()
        .await?;
    let final_email = full["traits"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let identifiers = full["credentials"]["password"]["identifiers"].clone();
    let addresses: Vec<&str> = full["verifiable_addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["value"].as_str())
        .collect();
    let new_works = api::login(&c, &server.public, &final_email, new_password)
        .await
        .is_ok();
    let old_works = api::login(&c, &server.public, &final_email, PASSWORD)
        .await
        .is_ok();
    report.figure(format!(
        "1 password change racing {k} profile changes on one identity:\n{}\n  password change acknowledged: {password_changed}; final email {final_email}; login identifiers {identifiers}; verifiable addresses {addresses:?}; new password works: {new_works}, old password works: {old_works}",
        stats.report(started.elapsed().as_secs_f64()),
    ));
    report.check(
        !emails.is_empty() && emails.contains(&final_email),
        format!("the final email is one an acknowledged profile change set ({final_email})"),
    );
    report.check(
        identifiers == json!([final_email]),
        format!("the login identifiers are the final email's, nothing stale ({identifiers})"),
    );
    report.check(
        addresses.is_empty() || addresses == [final_email.as_str()],
        format!("the addresses are the final email's, nothing stale ({addresses:?})"),
    );
    report.check(
        password_changed && new_works && !old_works,
        format!(
            "an acknowledged password change is not undone by a racing profile write (new works: {new_works}, old works: {old_works})"
        ),
    );
    Ok(())
}
