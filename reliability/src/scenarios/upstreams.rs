//! Scenario 4, upstreams misbehave: six fake OpenID providers (testkit's `FakeOidc`) behind one
//! server, each a sign-in button:
//!
//! - `good`: a correct upstream, signed in to by steady workers before and during the faults;
//! - `rotating`: a correct upstream whose signing key is replaced twice mid-load (its JWKS then
//!   serves only the new key, so Tessera meets an unknown `kid` and must refetch);
//! - `slow`: its token endpoint answers after Tessera's upstream timeout has passed (set to
//!   4 s by `limits.upstream_timeout`, so the check also shows the key is honoured);
//! - `dropping`: its token endpoint closes the connection without an answer;
//! - `failing`: its token endpoint answers 500;
//! - `garbage`: its token endpoint answers 200 with a body that is not JSON.
//!
//! Checks: the good provider's sign-ins all succeed while the others misbehave, at a p99 close
//! to the one before; no sign-in takes longer than the upstream timeout plus a margin; every
//! failure lands back on the login page with a message that says what happened (never a 500
//! or the error page); after each key rotation sign-ins go on succeeding, and the key set is
//! refetched a bounded number of times.

use crate::api::{self, Outcome, SocialEnd};
use crate::stats::{Stats, percentile};
use crate::tessera::Tessera;
use crate::{Report, Run};
use anyhow::Result;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_testkit::fake_oidc::{Alg, Behavior, FakeOidc, FakeOptions};

/// Tessera's upstream timeout in this scenario (`limits.upstream_timeout`; by default 10 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);
/// What a sign-in may take beyond the upstream timeout (the callback's own work, a busy CI).
const MARGIN: Duration = Duration::from_secs(2);

const MAPPER: &str = r#"local claims = std.extVar('claims');
{ identity: { traits: { email: claims.email } } }
"#;

/// A faulty provider: its id, its fault, the words its users must read.
struct Fault {
    id: &'static str,
    behavior: Behavior,
    says: &'static str,
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            id: "slow",
            behavior: Behavior::TokenHang(UPSTREAM_TIMEOUT + Duration::from_secs(5)),
            says: "did not answer in time",
        },
        Fault {
            id: "dropping",
            behavior: Behavior::TokenDrop,
            says: "could not be reached",
        },
        Fault {
            id: "failing",
            behavior: Behavior::Token500,
            says: "could not use",
        },
        Fault {
            id: "garbage",
            behavior: Behavior::TokenInvalidJson,
            says: "could not use",
        },
    ]
}

async fn fake(id: &str) -> FakeOidc {
    FakeOidc::start(FakeOptions {
        subject: format!("{id}-user"),
        claims: json!({"email": format!("{id}@example.com"), "email_verified": true}),
        alg: Alg::ES256,
        ..Default::default()
    })
    .await
}

fn provider(id: &str, f: &FakeOidc) -> Value {
    json!({
        "id": id,
        "provider": "generic",
        "client_id": f.client_id(),
        "client_secret": f.client_secret(),
        "issuer_url": f.issuer(),
        "mapper_url": tessera_testkit::config::base64_url(MAPPER),
        "scope": ["email"],
    })
}

/// Every sign-in's duration, by provider, for the timeout check.
type Durations = Arc<Mutex<Vec<(&'static str, Duration)>>>;

pub async fn run(run: &Run) -> Result<Report> {
    let mut report = Report::new("upstreams", run.backend);
    let good = fake("good").await;
    let rotating = fake("rotating").await;
    let faults = faults();
    let mut fakes = Vec::new();
    for f in &faults {
        fakes.push(fake(f.id).await);
    }
    let mut providers = vec![provider("good", &good), provider("rotating", &rotating)];
    for (f, fk) in faults.iter().zip(&fakes) {
        providers.push(provider(f.id, fk));
    }
    let db = run.database().await?;
    let config = json!({
        "selfservice": {
            "default_browser_return_url": "https://app.example.com/home",
            "allowed_return_urls": ["https://app.example.com/"],
            "methods": {"oidc": {"enabled": true, "config": {"providers": providers}}},
            "flows": {"registration": {"after": {"oidc": {"hooks": [{"hook": "session"}]}}}},
        },
        "limits": {"upstream_timeout": format!("{}s", UPSTREAM_TIMEOUT.as_secs())},
    });
    let server = Tessera::start(&db.dir, &db.dsn, config).await?;
    // Each upstream once while it behaves: discovery is fetched and cached, identities exist.
    for id in ["good", "rotating"]
        .into_iter()
        .chain(faults.iter().map(|f| f.id))
    {
        let end = api::social_sign_in(&server.public, id)
            .await
            .map_err(|o| anyhow::anyhow!("first sign-in with {id}: {}", o.label()))?;
        anyhow::ensure!(
            matches!(end, SocialEnd::SignedIn(_)),
            "first sign-in with {id}: {end:?}"
        );
    }

    let durations: Durations = Arc::default();
    let lead = Duration::from_secs(2);
    // Long enough for a slow sign-in to reach the timeout.
    let phase = run.duration.max(UPSTREAM_TIMEOUT + Duration::from_secs(1));
    let t0 = Instant::now();
    let fault_at = t0 + lead;
    let end_at = fault_at + phase;
    let (before, during) = (Stats::default(), Stats::default());
    let rotating_stats = Stats::default();
    let faulty = Stats::default();

    // Steady sign-ins through the good and the rotating provider, all along.
    let mut tasks = Vec::new();
    for w in 0..run.workers {
        let (public, durations) = (server.public.clone(), durations.clone());
        let (before, during, rotating_stats) =
            (before.clone(), during.clone(), rotating_stats.clone());
        let pace = run.pace;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end_at {
                // Half the workers sign in with the rotating provider.
                let (id, stats) = if w % 2 == 1 {
                    ("rotating", &rotating_stats)
                } else if Instant::now() < fault_at {
                    ("good", &before)
                } else {
                    ("good", &during)
                };
                sign_in_expecting(&public, id, None, stats, &durations).await;
                tokio::time::sleep(pace).await;
            }
        }));
    }
    tokio::time::sleep_until(fault_at.into()).await;
    for (f, fk) in faults.iter().zip(&fakes) {
        fk.set_behavior(f.behavior.clone());
    }
    // The faulty providers, each by `workers` browsers at once; a slow sign-in is not started
    // when it could not end before the phase does.
    for f in &faults {
        for _ in 0..run.workers {
            let (public, durations, stats) =
                (server.public.clone(), durations.clone(), faulty.clone());
            let (id, says) = (f.id, f.says);
            let pace = run.pace;
            tasks.push(tokio::spawn(async move {
                while Instant::now() + UPSTREAM_TIMEOUT < end_at
                    || (id != "slow" && Instant::now() < end_at)
                {
                    sign_in_expecting(&public, id, Some(says), &stats, &durations).await;
                    tokio::time::sleep(pace).await;
                }
            }));
        }
    }
    // Two key rotations, a third and two thirds into the phase.
    let jwks_before = rotating.jwks_requests();
    tokio::time::sleep(phase / 3).await;
    rotating.rotate_key();
    tokio::time::sleep(phase / 3).await;
    rotating.rotate_key();
    for t in tasks {
        let _ = t.await;
    }
    let jwks_fetches = rotating.jwks_requests() - jwks_before;
    // After the load: one more sign-in each through the good and the rotated upstream.
    let after_good = api::social_sign_in(&server.public, "good").await;
    let after_rotated = api::social_sign_in(&server.public, "rotating").await;

    let durations = durations.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let longest = durations
        .iter()
        .max_by_key(|(_, d)| *d)
        .copied()
        .unwrap_or(("none", Duration::ZERO));
    let slow_ms: Vec<f64> = durations
        .iter()
        .filter(|(id, _)| *id == "slow")
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    let p99 = |s: &Stats| s.percentile_ms(0.99);
    report.figure(format!(
        "six upstreams, four of them faulty for {:.0} s (slow beyond the {} s timeout, dropping connections, 500, not JSON), {} browsers each; one key rotated twice:\n good provider before the faults:\n{}\n good provider during the faults:\n{}\n rotating provider (keys replaced twice):\n{}\n faulty providers (ok = refused with the expected message on the login page):\n{}\n  slow sign-ins gave up after: p50 {:.0} ms, max {:.0} ms; longest sign-in of all: {} {:.0} ms; JWKS fetched {jwks_fetches} times for 2 rotations; afterwards good: {}, rotated: {}",
        phase.as_secs_f64(),
        UPSTREAM_TIMEOUT.as_secs(),
        run.workers,
        before.report(lead.as_secs_f64()),
        during.report(phase.as_secs_f64()),
        rotating_stats.report((lead + phase).as_secs_f64()),
        faulty.report(phase.as_secs_f64()),
        percentile(&slow_ms, 0.5),
        percentile(&slow_ms, 1.0),
        longest.0,
        longest.1.as_secs_f64() * 1000.0,
        describe(&after_good),
        describe(&after_rotated),
    ));
    let failed = |s: &Stats| s.requests() - s.acknowledged();
    report.check(
        failed(&before) + failed(&during) == 0 && during.acknowledged() > 0,
        format!(
            "the good provider's sign-ins all succeed while the others misbehave ({} of {} during did)",
            during.acknowledged(),
            during.requests()
        ),
    );
    // CPU the faulty providers' sign-ins take slows the others down a little on a small
    // machine; waiting on a hung upstream would cost them the whole timeout.
    let bound = (3.0 * p99(&before) + 500.0).max(2000.0);
    report.check(
        p99(&during) <= bound,
        format!(
            "the good provider's p99 stays close to the one before ({:.0} ms during, {:.0} ms before, bound {bound:.0} ms)",
            p99(&during),
            p99(&before)
        ),
    );
    report.check(
        longest.1 <= UPSTREAM_TIMEOUT + MARGIN,
        format!(
            "no sign-in takes longer than the upstream timeout + {} s (longest {:.1} s)",
            MARGIN.as_secs(),
            longest.1.as_secs_f64()
        ),
    );
    report.check(
        !slow_ms.is_empty() && percentile(&slow_ms, 0.0) >= UPSTREAM_TIMEOUT.as_secs_f64() * 900.0,
        format!(
            "a slow upstream is waited for up to the timeout, then given up ({} slow sign-ins)",
            slow_ms.len()
        ),
    );
    report.check(
        faulty.requests() > 0 && failed(&faulty) == 0,
        format!(
            "every failed sign-in is back on the login page with a message saying what happened ({} of {} were)",
            faulty.acknowledged(),
            faulty.requests()
        ),
    );
    report.check(
        failed(&rotating_stats) == 0 && matches!(after_rotated, Ok(SocialEnd::SignedIn(_))),
        format!(
            "sign-ins go on succeeding across key rotations ({} of {} failed)",
            failed(&rotating_stats),
            rotating_stats.requests()
        ),
    );
    report.check(
        (1..=2 * run.workers as u64).contains(&jwks_fetches),
        format!(
            "the key set is refetched after a rotation, and not once per sign-in ({jwks_fetches} fetches, 2 rotations)"
        ),
    );
    report.check(
        matches!(after_good, Ok(SocialEnd::SignedIn(_))),
        "the good provider still works afterwards".into(),
    );
    drop(server);
    db.drop_database();
    Ok(report)
}

/// One browser sign-in through `id`, recorded in `stats` (and its duration in `durations`).
/// `expect`: the words of the refusal message a faulty provider must produce (`None`: it must
/// succeed).
async fn sign_in_expecting(
    public: &str,
    id: &'static str,
    expect: Option<&'static str>,
    stats: &Stats,
    durations: &Durations,
) {
    let started = Instant::now();
    let result = api::social_sign_in(public, id).await;
    let took = started.elapsed();
    let outcome = match (result, expect) {
        (Ok(SocialEnd::SignedIn(_)), None) => Outcome::Ok,
        (Ok(SocialEnd::Refused(m)), Some(says)) if m.contains(says) => Outcome::Ok,
        (Ok(SocialEnd::Refused(m)), _) if m.is_empty() => Outcome::Transport("refused, no message"),
        (Ok(SocialEnd::Refused(_)), _) => Outcome::Transport("refused, another message"),
        (Ok(SocialEnd::SignedIn(_)), Some(_)) => Outcome::Transport("signed in despite the fault"),
        (Err(o), _) => o,
    };
    stats.record(id, &outcome, took);
    durations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, took));
}

fn describe(r: &Result<SocialEnd, Outcome>) -> String {
    match r {
        Ok(SocialEnd::SignedIn(_)) => "signed in".into(),
        Ok(SocialEnd::Refused(m)) => format!("refused ({m})"),
        Err(o) => o.label(),
    }
}
