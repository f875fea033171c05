//! Self-service flows through the API (native-app) surface, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use tessera_testkit::{BACKENDS, TestServer, message_ids};

const SESSION_HOOK: &str = "selfservice:\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n";

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

#[tokio::test]
async fn register_login_whoami_logout_on_every_backend() {
    for backend in BACKENDS {
        let s = TestServer::start(backend, SESSION_HOOK).await;
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
}

#[tokio::test]
async fn whoami_without_session_is_401_with_kratos_error() {
    let s = TestServer::start(tessera_testkit::Backend::Sqlite, "").await;
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
    let s = TestServer::start(tessera_testkit::Backend::Sqlite, "").await;
    let reg = s.register("bob@example.com", "correct horse battery").await;
    assert!(reg.get("session_token").is_none());
    assert_eq!(reg["identity"]["traits"]["email"], "bob@example.com");
    let (st, _) = s.login("bob@example.com", "correct horse battery").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn login_failures_carry_kratos_message_ids() {
    for backend in BACKENDS {
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
}

#[tokio::test]
async fn registration_validation_errors() {
    let s = TestServer::start(tessera_testkit::Backend::Sqlite, "").await;
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

#[tokio::test]
async fn settings_change_password_and_profile() {
    for backend in BACKENDS {
        let s = TestServer::start(backend, SESSION_HOOK).await;
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
}

#[tokio::test]
async fn api_login_refused_when_already_signed_in() {
    let s = TestServer::start(tessera_testkit::Backend::Sqlite, SESSION_HOOK).await;
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

#[tokio::test]
async fn session_survives_server_restart() {
    for backend in BACKENDS {
        let dir = tessera_testkit::temp_dir();
        let dsn = tessera_testkit::fresh_dsn(backend, &dir).await;
        let s = TestServer::start_with(backend, dir.clone(), &dsn, SESSION_HOOK).await;
        let token = s
            .register("hank@example.com", "correct horse battery")
            .await["session_token"]
            .as_str()
            .unwrap()
            .to_string();
        s.stop().await;
        let s = TestServer::start_with(backend, dir, &dsn, SESSION_HOOK).await;
        assert_eq!(s.whoami(&token).await.0, 200, "{backend:?}");
        s.stop().await;
    }
}
