//! What the app access check costs an authorization (issue 16): a SQLite store with 10,100
//! organizations (100 companies × 10 departments × 9 teams), 50,000 identities and 100,000
//! memberships (a tenth with an organization role), and two apps: one with `access: all` and no
//! rules, one with `access: assigned` and eleven rules (ten organizations with their descendants,
//! one limited to a role, and a group). The same signed-in identities ask both apps for a code,
//! alternating, in the same run; the difference of the p99s is what the check adds.
//!
//! `cargo run --release -p tessera-bench-orgs` (BENCH_ROUNDS, default 3000, per app). Exit
//! status 0 when the check adds < 1 ms at p99, 2 when it adds more, 1 when it could not measure.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::crypto::Cipher;
use tessera_core::session::Session;
use tessera_op::authorize::raw_params;
use tessera_op::{Authorize, Provider};
use tessera_store::Store;
use uuid::Uuid;

const RP: &str = "https://app.example.test/callback";
const ROOTS: usize = 100;
const DEPARTMENTS: usize = 10;
const TEAMS: usize = 9;
const IDENTITIES: usize = 50_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn provider(dir: &std::path::Path) -> Res<Provider> {
    let yaml = format!(
        "dsn: sqlite://{}/bench.db?mode=rwc\nserve:\n  public:\n    base_url: https://id.example.test/\nsecrets:\n  default: [\"bench-secret-0123456789abcdef\"]\noidc_provider:\n  signing_alg: ES256\n",
        dir.display()
    );
    let loaded = tessera_config::load_str("bench.yml", &yaml, &HashMap::new())
        .map_err(|e| format!("config: {e}"))?;
    let settings =
        tessera_config::resolve(&loaded, true, None).map_err(|e| format!("config: {e}"))?;
    let store = Store::connect(&settings.dsn).await?;
    store.migrate_up().await?;
    let cipher = Arc::new(Cipher::new(&settings.secrets.cipher));
    let mappers = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        "/nonexistent".into(),
        vec![],
    ));
    Ok(Provider::new(
        Arc::new(settings),
        store,
        cipher,
        mappers,
        vec![],
    ))
}

/// Bulk rows straight into the file (one transaction), far faster than one API call each.
async fn populate(dir: &std::path::Path) -> Res<(Vec<Uuid>, Vec<String>, String)> {
    use sqlx::Connection;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}/bench.db", dir.display())).await?;
    let mut tx = conn.begin().await?;
    let now = 1_780_000_000_000i64;
    for (id, name) in [("role-admin", "admin"), ("role-member", "member")] {
        sqlx::query("INSERT INTO organization_roles (id, name, description, created_at) VALUES (?, ?, '', ?)")
            .bind(id).bind(name).bind(now).execute(&mut *tx).await?;
    }
    let mut roots = Vec::new();
    let mut teams = Vec::new();
    let org = |id: &str, parent: Option<&str>, alias: String, path: &str| {
        sqlx::query("INSERT INTO organizations (id, parent_id, alias, name, description, id_path, external_id, metadata_public, metadata_admin, created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, NULL, '{}', '{}', ?, ?)")
            .bind(id.to_string()).bind(parent.map(str::to_string)).bind(alias.clone()).bind(alias)
            .bind(path.to_string()).bind(now).bind(now)
    };
    for r in 0..ROOTS {
        let rid = Uuid::new_v4().to_string();
        let rpath = format!("/{rid}/");
        org(&rid, None, format!("corp-{r}"), &rpath)
            .execute(&mut *tx)
            .await?;
        roots.push(rid.clone());
        for d in 0..DEPARTMENTS {
            let did = Uuid::new_v4().to_string();
            let dpath = format!("{rpath}{did}/");
            org(&did, Some(&rid), format!("dept-{d}"), &dpath)
                .execute(&mut *tx)
                .await?;
            for t in 0..TEAMS {
                let tid = Uuid::new_v4().to_string();
                org(
                    &tid,
                    Some(&did),
                    format!("team-{t}"),
                    &format!("{dpath}{tid}/"),
                )
                .execute(&mut *tx)
                .await?;
                teams.push(tid);
            }
        }
    }
    sqlx::query("INSERT INTO groups (id, name, description, external_id, metadata_public, metadata_admin, created_at, updated_at) VALUES ('group-oncall', 'oncall', '', NULL, '{}', '{}', ?, ?)")
        .bind(now).bind(now).execute(&mut *tx).await?;
    let mut identities = Vec::with_capacity(IDENTITIES);
    for i in 0..IDENTITIES {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO identities (id, schema_id, state, state_changed_at, traits, metadata_public, metadata_admin, created_at, updated_at) VALUES (?, 'default', 'active', ?, ?, NULL, NULL, ?, ?)")
            .bind(id.to_string()).bind(now).bind(json!({"email": format!("u{i}@example.test")}).to_string())
            .bind(now).bind(now).execute(&mut *tx).await?;
        // Two teams each, spread over every company: 100,000 memberships.
        for k in 0..2 {
            let team = &teams[(i * 7 + k * 4999) % teams.len()];
            sqlx::query("INSERT INTO organization_members (organization_id, identity_id, source, rule_id, created_at) VALUES (?, ?, 'manual', NULL, ?)")
                .bind(team).bind(id.to_string()).bind(now).execute(&mut *tx).await?;
            if i % 10 == 0 {
                sqlx::query("INSERT INTO organization_member_roles (organization_id, identity_id, role_id) VALUES (?, ?, 'role-admin')")
                    .bind(team).bind(id.to_string()).execute(&mut *tx).await?;
            }
        }
        if i % 100 == 0 {
            sqlx::query("INSERT INTO group_members (group_id, identity_id, created_at) VALUES ('group-oncall', ?, ?)")
                .bind(id.to_string()).bind(now).execute(&mut *tx).await?;
        }
        identities.push(id);
    }
    tx.commit().await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organization_members")
        .fetch_one(&mut conn)
        .await?;
    Ok((
        identities,
        roots,
        format!(
            "{} organizations, {count} memberships",
            ROOTS * DEPARTMENTS * (TEAMS + 1) + ROOTS
        ),
    ))
}

fn session(identity: Uuid) -> Res<Session> {
    let mut s: Session = serde_json::from_value(json!({
        "id": Uuid::new_v4(), "active": true, "expires_at": "2099-01-01T00:00:00Z",
        "authenticated_at": "2026-01-01T00:00:00Z", "authenticator_assurance_level": "aal1",
        "authentication_methods": [], "issued_at": "2026-01-01T00:00:00Z", "devices": [],
    }))?;
    s.identity_id = identity;
    s.authenticated_at = tessera_core::timefmt::now_ms();
    Ok(s)
}

/// One authorization to its code; its duration in ms. Anything but a code is a failed run.
async fn authorize(p: &Provider, client_id: &str, s: &Session) -> Res<f64> {
    let raw = raw_params(
        [
            ("client_id", client_id),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let t = Instant::now();
    let answer = p.authorize(&raw, Some(s)).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    match answer {
        Authorize::Reply(r) if r.params.iter().any(|(k, _)| k == "code") => Ok(ms),
        other => Err(format!("expected a code from {client_id}, got {other:?}").into()),
    }
}

async fn run() -> Res<bool> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let dir = std::env::temp_dir().join(format!("tessera-bench-orgs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let p = provider(&dir).await?;
    let started = Instant::now();
    let (identities, roots, what) = populate(&dir).await?;
    eprintln!(
        "bench-orgs: {what} written in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let app = |access: &str| {
        serde_json::from_value::<tessera_op::ClientInput>(json!({
            "redirect_uris": [RP], "skip_consent": true, "app_type": "spa", "access": access,
            "roles": ["editor"],
        }))
    };
    let (open, _) = p.create_client(app("all")?).await?;
    let (guarded, _) = p.create_client(app("assigned")?).await?;
    let mut rules = vec![json!({"subject": {"type": "group", "id": "oncall"}})];
    rules.push(json!({"subject": {"type": "organization", "id": roots[0], "organization_roles": ["admin"]}, "app_roles": ["editor"]}));
    for r in roots.iter().skip(1).take(10) {
        rules.push(json!({"subject": {"type": "organization", "id": r}}));
    }
    for r in rules {
        let row = p.access_rule_from(&guarded, r).await?;
        p.store.op_insert_access_rule(&row).await?;
    }
    // The identities the guarded app admits (members under one of its companies).
    let mut admitted = Vec::new();
    for id in &identities {
        if admitted.len() >= 200 {
            break;
        }
        if p.store.op_access(&guarded.client_id, *id).await?.is_some() {
            admitted.push(session(*id)?);
        }
    }
    if admitted.is_empty() {
        return Err("no identity is admitted by the guarded app".into());
    }
    // Warm-up, then alternate.
    for s in admitted.iter().take(50) {
        authorize(&p, &open.client_id, s).await?;
        authorize(&p, &guarded.client_id, s).await?;
    }
    let (mut without, mut with) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut check = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let s = &admitted[i % admitted.len()];
        without.push(authorize(&p, &open.client_id, s).await?);
        with.push(authorize(&p, &guarded.client_id, s).await?);
        let t = Instant::now();
        p.may_use(&guarded, s.identity_id).await?;
        check.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for v in [&mut without, &mut with, &mut check] {
        v.sort_by(f64::total_cmp);
    }
    let (p50a, p99a) = (percentile(&without, 0.5), percentile(&without, 0.99));
    let (p50b, p99b) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let added = p99b - p99a;
    println!(
        "{what}, {} admitted identities, {rounds} authorizations per app",
        admitted.len()
    );
    println!("authorize, access: all (no check):      p50 {p50a:.3} ms  p99 {p99a:.3} ms");
    println!("authorize, access: assigned (11 rules): p50 {p50b:.3} ms  p99 {p99b:.3} ms");
    println!(
        "the check alone (may_use):             p50 {:.3} ms  p99 {:.3} ms",
        percentile(&check, 0.5),
        percentile(&check, 0.99)
    );
    println!(
        "the access check adds at p99: {added:.3} ms (target < 1 ms): {}",
        if added < 1.0 { "ok" } else { "MISSED" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(added < 1.0)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("bench-orgs: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
