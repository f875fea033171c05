//! whoami's answer cache (`session.cache_ttl`): the same answer, served from memory, and never
//! after this instance revoked the session or changed its identity, however long the TTL and
//! however many whoami requests are in flight while the write happens.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer, each_backend};

/// The longest TTL allowed, far longer than any of these tests: only invalidation makes them
/// pass.
const LONG_TTL: &str = "session:\n  cache_ttl: 60s\n";
const PASSWORD: &str = "correct horse battery staple";

async fn signed_in(s: &TestServer, email: &str) -> (String, Value) {
    s.register(email, PASSWORD).await;
    let (status, login) = s.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let token = login["session_token"].as_str().unwrap().to_string();
    (token, login)
}

async fn whoami_raw(s: &TestServer, token: &str) -> (u16, Option<String>, String) {
    let r = TestServer::client()
        .get(format!("{}/sessions/whoami", s.public))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let identity = r
        .headers()
        .get("x-kratos-authenticated-identity-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, identity, r.text().await.unwrap())
}

async fn repeated_answers_are_the_same(backend: Backend) {
    let s = TestServer::start(backend, LONG_TTL).await;
    let (token, login) = signed_in(&s, "same@example.com").await;
    let first = whoami_raw(&s, &token).await;
    let second = whoami_raw(&s, &token).await;
    assert_eq!(first.0, 200);
    assert_eq!(first, second, "a cached answer is the answer");
    let body: Value = serde_json::from_str(&first.2).unwrap();
    assert_eq!(body["id"], login["session"]["id"]);
    assert_eq!(body["identity"]["traits"]["email"], "same@example.com");
    assert_eq!(
        first.1.as_deref(),
        body["identity"]["id"].as_str(),
        "X-Kratos-Authenticated-Identity-Id names the identity"
    );
    // Another session of the same identity has its own answer.
    let (_, other) = s.login("same@example.com", PASSWORD).await;
    let other_token = other["session_token"].as_str().unwrap();
    let (status, _, other_body) = whoami_raw(&s, other_token).await;
    assert_eq!(status, 200);
    let other_body: Value = serde_json::from_str(&other_body).unwrap();
    assert_eq!(other_body["id"], other["session"]["id"]);
    assert_ne!(other_body["id"], body["id"]);
    s.stop().await;
}

/// The attacker holds a stolen token; the admin revokes the session. The very next whoami on
/// this instance must refuse it, although the answer was cached a moment before.
async fn a_revoked_session_is_refused_at_once(backend: Backend) {
    let s = TestServer::start(backend, LONG_TTL).await;
    let (token, login) = signed_in(&s, "revoked@example.com").await;
    assert_eq!(s.whoami(&token).await.0, 200);
    assert_eq!(s.whoami(&token).await.0, 200, "now served from the cache");
    let sid = login["session"]["id"].as_str().unwrap();
    let r = TestServer::client()
        .delete(format!("{}/admin/sessions/{sid}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, body) = s.whoami(&token).await;
    assert_eq!(status, 401, "a revoked session was served: {body}");
    assert_eq!(body["error"]["id"], "session_inactive", "{body}");
    s.stop().await;
}

async fn logout_and_disabling_the_identity_are_immediate(backend: Backend) {
    let s = TestServer::start(backend, LONG_TTL).await;
    let c = TestServer::client();
    let (token, _) = signed_in(&s, "logout@example.com").await;
    assert_eq!(s.whoami(&token).await.0, 200);
    let r = c
        .delete(format!("{}/self-service/logout/api", s.public))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.whoami(&token).await.0, 401, "logged out");

    let (token, login) = signed_in(&s, "disabled@example.com").await;
    assert_eq!(s.whoami(&token).await.0, 200);
    let id = login["session"]["identity"]["id"].as_str().unwrap();
    let r = c
        .patch(format!("{}/admin/identities/{id}", s.admin))
        .json(&json!([{"op": "replace", "path": "/state", "value": "inactive"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(s.whoami(&token).await.0, 401, "identity disabled");
    s.stop().await;
}

async fn an_identity_change_shows_at_once(backend: Backend) {
    let s = TestServer::start(backend, LONG_TTL).await;
    let (token, login) = signed_in(&s, "before@example.com").await;
    assert_eq!(
        s.whoami(&token).await.1["identity"]["metadata_public"],
        Value::Null
    );
    let id = login["session"]["identity"]["id"].as_str().unwrap();
    let r = TestServer::client()
        .patch(format!("{}/admin/identities/{id}", s.admin))
        .json(&json!([{"op": "add", "path": "/metadata_public", "value": {"plan": "gold"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (status, body) = s.whoami(&token).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["identity"]["metadata_public"]["plan"], "gold",
        "{body}"
    );
    s.stop().await;
}

/// whoami requests in flight while the revocation commits may still answer 200 (they began
/// before it), but none that starts after the revocation answered may: a read that raced with
/// the write must not leave the old session cached.
async fn whoami_racing_a_revocation_never_outlives_it(backend: Backend) {
    let s = TestServer::start(backend, LONG_TTL).await;
    for round in 0..3 {
        let (token, login) = signed_in(&s, &format!("race{round}@example.com")).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut hammers = Vec::new();
        for _ in 0..4 {
            let (public, token, stop) = (s.public.clone(), token.clone(), stop.clone());
            hammers.push(tokio::spawn(async move {
                let c = TestServer::client();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = c
                        .get(format!("{public}/sessions/whoami"))
                        .header("X-Session-Token", &token)
                        .send()
                        .await;
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let sid = login["session"]["id"].as_str().unwrap();
        let r = TestServer::client()
            .delete(format!("{}/admin/sessions/{sid}", s.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        // Revoked: from now on every whoami refuses, while the others keep asking.
        for _ in 0..20 {
            assert_eq!(s.whoami(&token).await.0, 401, "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in hammers {
            h.await.unwrap();
        }
        assert_eq!(s.whoami(&token).await.0, 401, "round {round}");
    }
    s.stop().await;
}

each_backend!(
    repeated_answers_are_the_same,
    a_revoked_session_is_refused_at_once,
    logout_and_disabling_the_identity_are_immediate,
    an_identity_change_shows_at_once,
    whoami_racing_a_revocation_never_outlives_it,
);
