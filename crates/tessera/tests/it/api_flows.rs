//! Self-service flows through the API (native-app) surface, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use tessera_testkit::{Backend, Config, TestServer, each_backend, message_ids};

/// Registration with a password signs the new user in.
fn session_hook() -> Config {
    Config::new().session_hook(&["password"])
}

async fn flow(s: &TestServer, kind: &str) -> Value {
    TestServer::client()
        .get(format!("{}/self-service/{kind}/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn submit(
    s: &TestServer,
    kind: &str,
    id: &str,
    body: Value,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = TestServer::client()
        .post(format!("{}/self-service/{kind}?flow={id}", s.public))
        .json(&body);
    if let Some(t) = token {
        req = req.header("X-Session-Token", t);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

each_backend!(register_login_whoami_logout);
async fn register_login_whoami_logout(backend: Backend) {
    let s = TestServer::start(backend, session_hook()).await;
    let reg = s
        .register("Alice@Example.com", "correct horse battery")
        .await;
    let token = reg["session_token"]
        .as_str()
        .expect("session hook gives a token")
        .to_string();
    assert_eq!(reg["identity"]["traits"]["email"], "Alice@Example.com");
    assert_eq!(reg["session"]["authenticator_assurance_level"], "aal1");

    let (st, me) = s.whoami(&token).await;
    assert_eq!(st, 200, "{backend:?}");
    assert_eq!(me["identity"]["id"], reg["identity"]["id"]);
    assert_eq!(me["authentication_methods"][0]["method"], "password");
    assert_eq!(
        me["identity"]["verifiable_addresses"][0]["value"],
        "alice@example.com"
    );

    // Identifiers compare case-folded.
    let (st, body) = s.login("ALICE@example.COM", "correct horse battery").await;
    assert_eq!(st, 200, "{body}");
    let token2 = body["session_token"].as_str().unwrap().to_string();
    assert_ne!(token, token2);

    let resp = TestServer::client()
        .delete(format!("{}/self-service/logout/api", s.public))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(s.whoami(&token).await.0, 401);
    assert_eq!(s.whoami(&token2).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn whoami_without_session_is_401_with_kratos_error() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let (st, body) = s.whoami("not-a-token").await;
    assert_eq!(st, 401);
    assert_eq!(body["error"]["id"], "session_inactive");
    assert_eq!(body["error"]["code"], 401);
    let resp = TestServer::client()
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn registration_without_session_hook_returns_identity_only() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let reg = s.register("bob@example.com", "correct horse battery").await;
    assert!(reg.get("session_token").is_none());
    assert_eq!(reg["identity"]["traits"]["email"], "bob@example.com");
    let (st, _) = s.login("bob@example.com", "correct horse battery").await;
    assert_eq!(st, 200);
}

each_backend!(login_failures_carry_kratos_message_ids);
async fn login_failures_carry_kratos_message_ids(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    s.register("carol@example.com", "correct horse battery")
        .await;
    let (st, body) = s.login("carol@example.com", "wrong password here").await;
    assert_eq!(st, 400);
    assert!(
        message_ids(&body).contains(&(String::new(), 4000006)),
        "{body}"
    );
    let (st, body) = s.login("nobody@example.com", "whatever password").await;
    assert_eq!(st, 400);
    assert!(message_ids(&body).contains(&(String::new(), 4000006)));
    // The identifier is kept in the form, never the password.
    let f = flow(&s, "login").await;
    let (st, body) = submit(
        &s,
        "login",
        f["id"].as_str().unwrap(),
        json!({"method": "password", "identifier": "carol@example.com"}),
        None,
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        message_ids(&body).contains(&("password".into(), 4000002)),
        "{body}"
    );
    let node = body["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "identifier")
        .unwrap()
        .clone();
    assert_eq!(node["attributes"]["value"], "carol@example.com");
}

#[tokio::test]
async fn registration_validation_errors() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    s.register("dave@example.com", "correct horse battery")
        .await;
    let cases = [
        (
            json!({"method": "password", "traits": {}, "password": "correct horse battery"}),
            "traits.email",
            4000002,
        ),
        (
            json!({"method": "password", "traits": {"email": "not-an-email"}, "password": "correct horse battery"}),
            "traits.email",
            4000004,
        ),
        (
            json!({"method": "password", "traits": {"email": "erin@example.com"}, "password": "short"}),
            "password",
            4000005,
        ),
        (
            json!({"method": "password", "traits": {"email": "erin@example.com"}, "password": "erin@example.com1"}),
            "password",
            4000005,
        ),
        (
            json!({"method": "password", "traits": {"email": "DAVE@example.com"}, "password": "correct horse battery"}),
            "",
            4000007,
        ),
    ];
    for (body, field, id) in cases {
        let f = flow(&s, "registration").await;
        let (st, out) = submit(
            &s,
            "registration",
            f["id"].as_str().unwrap(),
            body.clone(),
            None,
        )
        .await;
        assert_eq!(st, 400, "{body} -> {out}");
        assert!(
            message_ids(&out).contains(&(field.to_string(), id)),
            "expected {id} on `{field}` for {body}, got {:?}",
            message_ids(&out)
        );
    }
    // The duplicate attempt wrote nothing: still exactly one identity.
    let list: Vec<Value> = TestServer::client()
        .get(format!("{}/admin/identities", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
}

each_backend!(settings_change_password_and_profile);
async fn settings_change_password_and_profile(backend: Backend) {
    let s = TestServer::start(backend, session_hook()).await;
    let reg = s
        .register("frank@example.com", "correct horse battery")
        .await;
    let token = reg["session_token"].as_str().unwrap();
    let f: Value = TestServer::client()
        .get(format!("{}/self-service/settings/api", s.public))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["state"], "show_form");
    assert_eq!(f["identity"]["traits"]["email"], "frank@example.com");
    let id = f["id"].as_str().unwrap();
    let (st, out) = submit(
        &s,
        "settings",
        id,
        json!({"method": "password", "password": "an entirely new secret"}),
        Some(token),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["state"], "success");
    assert_eq!(out["ui"]["messages"][0]["id"], 1050001);
    assert_eq!(
        s.login("frank@example.com", "correct horse battery")
            .await
            .0,
        400
    );
    assert_eq!(
        s.login("frank@example.com", "an entirely new secret")
            .await
            .0,
        200
    );

    let f: Value = TestServer::client()
        .get(format!("{}/self-service/settings/api", s.public))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (st, out) = submit(&s, "settings", f["id"].as_str().unwrap(), json!({"method": "profile", "traits": {"email": "frank2@example.com", "name": {"first": "Frank"}}}), Some(token)).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["identity"]["traits"]["name"]["first"], "Frank");
    // The new email is now the login identifier; the old one is not.
    assert_eq!(
        s.login("frank2@example.com", "an entirely new secret")
            .await
            .0,
        200
    );
    assert_eq!(
        s.login("frank@example.com", "an entirely new secret")
            .await
            .0,
        400
    );

    // Settings need a session.
    let resp = TestServer::client()
        .get(format!("{}/self-service/settings/api", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn api_login_refused_when_already_signed_in() {
    let s = TestServer::start(Backend::Sqlite, session_hook()).await;
    let reg = s
        .register("gina@example.com", "correct horse battery")
        .await;
    let resp = TestServer::client()
        .get(format!("{}/self-service/login/api", s.public))
        .header("X-Session-Token", reg["session_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["id"], "session_already_available");
}

each_backend!(session_survives_server_restart);
async fn session_survives_server_restart(backend: Backend) {
    let dir = tessera_testkit::temp_dir();
    let dsn = tessera_testkit::fresh_dsn(backend, &dir).await;
    let s = TestServer::start_with(backend, dir.clone(), &dsn, session_hook()).await;
    let token = s
        .register("hank@example.com", "correct horse battery")
        .await["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    s.stop().await;
    let s = TestServer::start_with(backend, dir, &dsn, session_hook()).await;
    assert_eq!(s.whoami(&token).await.0, 200, "{backend:?}");
    s.stop().await;
}

/// A password sign-in from `addr` (the address a trusted proxy says it saw).
async fn login_from(
    s: &TestServer,
    addr: &str,
    identifier: &str,
    password: &str,
) -> reqwest::Response {
    let c = TestServer::client();
    let f: Value = c
        .get(format!("{}/self-service/login/api", s.public))
        .header("x-forwarded-for", addr)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    c.post(f["ui"]["action"].as_str().unwrap())
        .header("x-forwarded-for", addr)
        .json(&json!({"method": "password", "identifier": identifier, "password": password}))
        .send()
        .await
        .unwrap()
}

each_backend!(failed_sign_ins_are_limited_without_locking_the_owner_out);
/// Security review M2: failed password sign-ins are limited per identifier and address, per
/// identifier and per address, across instances (counted in the database); a limit answers
/// 429 with `Retry-After` and Kratos's error shape, and the owner at another address still
/// signs in.
async fn failed_sign_ins_are_limited_without_locking_the_owner_out(backend: Backend) {
    let s = TestServer::start(
        backend,
        "limits:\n  trusted_proxy_hops: 1\n  failed_logins:\n    per_identifier_and_address: 3\n    per_identifier: 6\n    per_address: 8\n",
    )
    .await;
    s.register("owner@example.com", "the right password 1")
        .await;
    let attacker = "203.0.113.66";
    for i in 0..3 {
        let r = login_from(&s, attacker, "owner@example.com", &format!("guess {i}!!")).await;
        assert_eq!(r.status(), 400, "{backend:?}: attempt {i}");
    }
    // The fourth guess from there, even the right password, is refused before hashing.
    for pw in ["guess 4!!", "the right password 1"] {
        let r = login_from(&s, attacker, "owner@example.com", pw).await;
        assert_eq!(r.status(), 429, "{backend:?}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=15 * 60).contains(&retry), "{retry}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["id"], "self_service_rate_limited", "{v}");
        assert_eq!(v["error"]["code"], 429);
    }
    // The owner, elsewhere, is not held up.
    let r = login_from(
        &s,
        "198.51.100.1",
        "owner@example.com",
        "the right password 1",
    )
    .await;
    assert_eq!(r.status(), 200, "{backend:?}");
    // A spread-out attack on one identifier meets the per-identifier limit.
    for i in 0..3 {
        let r = login_from(
            &s,
            &format!("192.0.2.{i}"),
            "owner@example.com",
            "nope nope",
        )
        .await;
        assert_eq!(r.status(), 400);
    }
    let r = login_from(&s, "192.0.2.99", "owner@example.com", "nope nope").await;
    assert_eq!(
        r.status(),
        429,
        "{backend:?}: 6 failures for the identifier"
    );
    // One address guessing many identifiers meets the per-address limit.
    let sprayer = "198.18.0.1";
    for i in 0..8 {
        let r = login_from(&s, sprayer, &format!("user{i}@example.com"), "Winter2026!").await;
        assert_eq!(r.status(), 400);
    }
    let r = login_from(&s, sprayer, "someone@example.com", "Winter2026!").await;
    assert_eq!(r.status(), 429, "{backend:?}: 8 failures from the address");
    s.stop().await;
}

/// New flows and failed token requests are limited per address and per app (per instance).
#[tokio::test]
async fn flow_creation_and_token_failures_are_limited() {
    let s = TestServer::start(
        Backend::Sqlite,
        "limits:\n  flows_per_address_per_minute: 5\n  token_failures_per_client_per_minute: 3\n",
    )
    .await;
    let c = TestServer::client();
    // Six new flows: the sixth is refused. The minute may turn over during one round (the
    // count starts again), but not during two in a row.
    let mut limited = false;
    for _round in 0..2 {
        let mut statuses = vec![];
        for _ in 0..6 {
            let r = c
                .get(format!("{}/self-service/login/api", s.public))
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
            if r.status() == 429 {
                assert!(r.headers().contains_key("retry-after"));
            }
        }
        assert!(
            statuses[..5].iter().all(|s| *s == 200 || *s == 429),
            "{statuses:?}"
        );
        if statuses[5] == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the sixth new flow in a minute was not refused");
    // Security review L8: the OP's pending authorizations count against the same limit, and
    // callbacks that store an error for nobody have their own.
    let r = c
        .get(format!(
            "{}/oidc/auth?client_id=x&response_type=code",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let mut callbacks = vec![];
    for _ in 0..12 {
        let r = c
            .get(format!(
                "{}/self-service/methods/oidc/callback/x?state=forged&code=x",
                s.public
            ))
            .send()
            .await
            .unwrap();
        callbacks.push(r.status().as_u16());
    }
    assert!(callbacks.contains(&429), "{callbacks:?}");
    let guess = |secret: &'static str| {
        let c = c.clone();
        let url = format!("{}/oidc/token", s.public);
        async move {
            c.post(url)
                .basic_auth("some-app", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(guess("wrong").await.status(), 401);
    }
    let r = guess("wrong").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
}

/// The peak memory of this process (the server runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Security review M2: 48 concurrent wrong passwords took the server to 3 GB. With 32 MiB per
/// hash and a 64 MiB hashing budget, two hashes run at once, 32 wait, the rest are told to
/// come back (503 with `Retry-After`), and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_keeps_memory_bounded() {
    let s = TestServer::start(
        Backend::Sqlite,
        "hashers:\n  argon2:\n    memory: 32MiB\n    iterations: 1\nlimits:\n  password_hashing:\n    memory: 64MiB\n    queue: 32\n  failed_logins:\n    per_identifier_and_address: 1000\n    per_identifier: 1000\n    per_address: 1000\n",
    )
    .await;
    let flow = flow(&s, "login").await;
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let before = peak_rss_kib();
    let mut tasks = vec![];
    for i in 0..48 {
        let action = action.clone();
        tasks.push(tokio::spawn(async move {
            let r = TestServer::client()
                .post(&action)
                .json(&json!({"method": "password", "identifier": format!("u{i}@example.com"), "password": "wrong password!"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        let (status, retry) = t.await.unwrap();
        if status == 503 {
            assert!(retry, "503 without Retry-After");
        }
        *by_status.entry(status).or_insert(0) += 1;
    }
    let grew_mib = (peak_rss_kib() - before) / 1024;
    println!("48 concurrent wrong passwords: {by_status:?}, peak memory grew by {grew_mib} MiB");
    assert!(
        by_status.get(&503).copied().unwrap_or(0) >= 1,
        "{by_status:?}"
    );
    assert!(
        by_status.keys().all(|s| *s == 400 || *s == 503),
        "{by_status:?}"
    );
    // Unbounded, 48 × 32 MiB = 1.5 GiB; bounded, two hashes' worth plus request overhead.
    assert!(grew_mib < 400, "peak memory grew by {grew_mib} MiB");
}

each_backend!(settings_need_a_recent_sign_in);
/// Security review M3: a password, traits or linked accounts change only within
/// `privileged_session_max_age` of signing in; after that Kratos's `session_refresh_required`
/// and a `refresh=true` login, and then the change goes through.
async fn settings_need_a_recent_sign_in(backend: Backend) {
    let s = TestServer::start(
        backend,
        "selfservice:\n  flows:\n    settings:\n      privileged_session_max_age: 1s\n",
    )
    .await;
    s.register("old@example.com", "first password 123").await;
    let (_, login) = s.login("old@example.com", "first password 123").await;
    let token = login["session_token"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let c = TestServer::client();
    let change = |token: String| {
        let c = c.clone();
        let public = s.public.clone();
        async move {
            let f: Value = c
                .get(format!("{public}/self-service/settings/api"))
                .header("X-Session-Token", &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            c.post(f["ui"]["action"].as_str().unwrap())
                .header("X-Session-Token", &token)
                .json(&json!({"method": "password", "password": "stolen session pw 9"}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = change(token.clone()).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["id"], "session_refresh_required", "{v}");
    let to = v["redirect_browser_to"].as_str().unwrap();
    assert!(
        to.contains("/self-service/login/browser?refresh=true"),
        "{to}"
    );
    // Nothing changed: the old password still signs in.
    assert_eq!(
        s.login("old@example.com", "first password 123").await.0,
        200
    );
    assert_eq!(
        s.login("old@example.com", "stolen session pw 9").await.0,
        400
    );

    // A refresh login (asked to confirm it is them) gives a fresh session that may change it.
    let f: Value = c
        .get(format!("{}/self-service/login/api?refresh=true", s.public))
        .header("X-Session-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(message_ids(&f).iter().any(|(_, id)| *id == 1010003), "{f}");
    let r: Value = c
        .post(f["ui"]["action"].as_str().unwrap())
        .header("X-Session-Token", &token)
        .json(&json!({"method": "password", "identifier": "old@example.com", "password": "first password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = r["session_token"]
        .as_str()
        .expect("a fresh session")
        .to_string();
    let r = change(fresh).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(
        s.login("old@example.com", "stolen session pw 9").await.0,
        200
    );
}
