//! Malformed requests: each gets a Kratos-shaped error with the right status, never a 500.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer};

async fn err(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], status, "{v}");
    assert!(
        !v["error"]["reason"].as_str().unwrap_or_default().is_empty(),
        "{v}"
    );
    v
}

#[tokio::test]
async fn malformed_bodies_and_ids() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    let v = err(
        c.post(&action)
            .header("content-type", "application/json")
            .body("{\"method\": ")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    err(
        c.post(&action)
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap(),
        415,
    )
    .await;
    let huge = "x".repeat(1024 * 1024 + 10);
    err(
        c.post(&action)
            .header("content-type", "application/json")
            .body(format!("{{\"a\":\"{huge}\"}}"))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    err(
        c.post(format!("{}/admin/identities", s.admin))
            .header("content-type", "application/json")
            .body(format!("{{\"a\":\"{huge}\"}}"))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;

    let unknown = "11111111-2222-3333-4444-555555555555";
    let v = err(
        c.get(format!(
            "{}/self-service/login/flows?id={unknown}",
            s.public
        ))
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
    assert_eq!(v["error"]["id"], "self_service_flow_not_found");
    err(
        c.post(format!("{}/self-service/login?flow={unknown}", s.public))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    err(
        c.get(format!(
            "{}/self-service/login/flows?id=not-a-uuid",
            s.public
        ))
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    err(
        c.post(format!("{}/self-service/login", s.public))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // A registration flow id used as a login flow.
    err(
        c.get(format!(
            "{}/self-service/login/flows?id={}",
            s.public,
            flow["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
    err(
        c.get(format!("{}/no/such/route", s.public))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    err(
        c.delete(format!("{}/self-service/logout/api", s.public))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    err(
        c.delete(format!("{}/self-service/logout/api", s.public))
            .json(&json!({"session_token": "nope"}))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
}

#[tokio::test]
async fn expired_flows_answer_410() {
    let s = TestServer::start(
        Backend::Sqlite,
        "selfservice:\n  flows:\n    login:\n      lifespan: 50ms\n",
    )
    .await;
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let id = flow["id"].as_str().unwrap();
    let v = err(
        c.get(format!("{}/self-service/login/flows?id={id}", s.public))
            .send()
            .await
            .unwrap(),
        410,
    )
    .await;
    assert_eq!(v["error"]["id"], "self_service_flow_expired");
    err(
        c.post(format!("{}/self-service/login?flow={id}", s.public))
            .header("accept", "application/json")
            .json(&json!({"method": "password", "identifier": "a@b.co", "password": "x"}))
            .send()
            .await
            .unwrap(),
        410,
    )
    .await;
}

#[tokio::test]
async fn health_version_and_schemas() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let c = TestServer::client();
    for base in [&s.public, &s.admin] {
        assert_eq!(
            c.get(format!("{base}/health/alive"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let r: Value = c
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "ok");
        let v: Value = c
            .get(format!("{base}/version"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v["version"].as_str().is_some());
    }
    let schema: Value = c
        .get(format!("{}/schemas/default", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(schema["properties"]["traits"]["properties"]["email"].is_object());
    err(
        c.get(format!("{}/schemas/nope", s.public))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

/// Whether the server still answers (a stack overflow would have aborted the process, taking
/// the in-process test server with it).
async fn alive(s: &TestServer) -> bool {
    TestServer::client()
        .get(format!("{}/health/alive", s.public))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// H1 of the security review: a form key of 60,000 dots overflowed the stack while the decoded
/// value was dropped, which aborts the whole process. Every endpoint that reads a body gets the
/// attack; each answers 4xx with an error body and the server stays up.
#[tokio::test]
async fn deeply_nested_form_keys_are_refused_on_every_body_reading_endpoint() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let c = TestServer::client();
    let api_flow = |kind: &'static str| {
        let c = c.clone();
        let url = format!("{}/self-service/{kind}/api", s.public);
        async move {
            let v: Value = c.get(url).send().await.unwrap().json().await.unwrap();
            v["ui"]["action"].as_str().unwrap().to_string()
        }
    };
    let login = api_flow("login").await;
    let registration = api_flow("registration").await;
    let id = "11111111-2222-3333-4444-555555555555";
    let (p, a) = (&s.public, &s.admin);
    // (method, url, must the answer be exactly 400?)
    let targets: Vec<(&str, String, bool)> = vec![
        (
            "POST",
            format!("{p}/self-service/methods/oidc/callback/x"),
            true,
        ),
        ("POST", format!("{p}/self-service/login?flow=x"), true),
        ("POST", login, true),
        (
            "POST",
            format!("{p}/self-service/registration?flow=x"),
            true,
        ),
        ("POST", registration, true),
        ("POST", format!("{p}/self-service/settings?flow=x"), true),
        ("DELETE", format!("{p}/self-service/logout/api"), true),
        ("POST", format!("{p}/ui/consent"), false),
        ("POST", format!("{p}/oidc/auth"), false),
        ("POST", format!("{p}/oidc/token"), false),
        ("POST", format!("{p}/oidc/me"), false),
        ("POST", format!("{p}/oidc/token/revocation"), false),
        ("POST", format!("{p}/oidc/token/introspection"), false),
        ("POST", format!("{p}/oidc/session/end"), false),
        ("POST", format!("{a}/admin/identities"), false),
        ("PATCH", format!("{a}/admin/identities"), false),
        ("PUT", format!("{a}/admin/identities/{id}"), false),
        ("PATCH", format!("{a}/admin/identities/{id}"), false),
        ("POST", format!("{a}/admin/clients"), false),
        ("PUT", format!("{a}/admin/clients/app"), false),
        ("POST", format!("{a}/admin/clients/app/secrets"), false),
        ("PUT", format!("{a}/admin/identity-config"), false),
    ];
    let bodies = [
        format!("{}=x", ".".repeat(60_000)),
        format!("{}=x", vec!["a"; 60_000].join(".")),
        format!("{}=x", vec!["a"; 17].join(".")),
    ];
    for (method, url, exactly_400) in &targets {
        for body in &bodies {
            let r = c
                .request(method.parse().unwrap(), url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: the server did not answer: {e}"));
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            // The OpenID Provider's readers take flat parameters and ignore unknown ones (a
            // signed-out page, an OAuth error); none may fail or fall over.
            assert!(status < 500, "{method} {url} answered {status}: {text}");
            if *exactly_400 {
                assert_eq!(status, 400, "{method} {url}: {text}");
                let v: Value = serde_json::from_str(&text).expect("a Kratos error body");
                assert!(
                    v["error"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("Form field"),
                    "{method} {url}: {v}"
                );
            }
            assert!(alive(&s).await, "{method} {url} took the server down");
        }
    }
    // JSON nested past the limit is refused the same way, before any flow lookup.
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let r = c
        .post(format!("{p}/self-service/login?flow=x"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(alive(&s).await);
}

/// A JSON Patch whose `copy` operations double the identity each time is refused before it
/// grows past the size of a request body, and changes nothing.
#[tokio::test]
async fn a_json_patch_cannot_grow_an_identity_without_bound() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let reg = s
        .register("patch@example.org", "a long enough password 1")
        .await;
    let id = reg["identity"]["id"].as_str().unwrap().to_string();
    let c = TestServer::client();
    let mut ops =
        vec![json!({"op": "add", "path": "/metadata_admin", "value": {"x": "y".repeat(1000)}})];
    for i in 0..40 {
        ops.push(json!({"op": "copy", "from": "/metadata_admin", "path": format!("/metadata_admin/c{i}")}));
    }
    let r = c
        .patch(format!("{}/admin/identities/{id}", s.admin))
        .json(&Value::Array(ops))
        .send()
        .await
        .unwrap();
    let v = err(r, 400).await;
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("larger than")
            || v["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("levels deep"),
        "{v}"
    );
    let after: Value = c
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(after["metadata_admin"].is_null(), "{after}");
}

/// Fuzz-style: random forms, JSON, query strings and cookies against the flow submit paths and
/// the other request decoders of a running server. Nothing may answer 5xx, and the server must
/// still be up after every request. Bounded: a fixed number of cases.
#[test]
fn random_requests_never_crash_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (s, targets) = rt.block_on(async {
        let s = TestServer::start(Backend::Sqlite, "").await;
        let c = TestServer::client();
        let mut targets = vec![
            format!("{}/self-service/methods/oidc/callback/github", s.public),
            format!("{}/self-service/login?flow=x", s.public),
            format!("{}/oidc/token", s.public),
            format!("{}/oidc/auth", s.public),
            format!("{}/sessions/whoami", s.public),
            format!("{}/admin/identities", s.admin),
        ];
        for kind in ["login", "registration"] {
            for ft in ["api", "browser"] {
                let v: Value = c
                    .get(format!("{}/self-service/{kind}/{ft}", s.public))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                targets.push(v["ui"]["action"].as_str().unwrap().to_string());
            }
        }
        (s, targets)
    });
    let key = prop_oneof![
        Just("method".to_string()),
        Just("identifier".to_string()),
        Just("password".to_string()),
        Just("csrf_token".to_string()),
        Just("provider".to_string()),
        Just("traits.email".to_string()),
        "[a-z.]{0,30}",
        any::<String>(),
    ];
    let value = prop_oneof![
        Just("password".to_string()),
        Just("oidc".to_string()),
        Just("github".to_string()),
        any::<String>(),
    ];
    let form = proptest::collection::vec((key, value), 0..12);
    let json_text = "[\\[\\]{}\",:0-9a-z ]{0,200}";
    let strategy = (
        0..targets.len(),
        0u8..3,
        form,
        json_text,
        "[a-zA-Z0-9=&%._-]{0,80}",
        any::<String>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let c = TestServer::client();
    runner
        .run(&strategy, |(t, kind, form, json_text, query, cookie)| {
            let url = &targets[t];
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{sep}{query}");
            let (ctype, body) = match kind {
                0 => (
                    "application/x-www-form-urlencoded",
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&form)
                        .finish(),
                ),
                1 => ("application/json", json_text),
                _ => ("application/json", serde_json::to_string(&form).unwrap()),
            };
            let status = rt.block_on(async {
                let mut req = c
                    .post(&url)
                    .header("content-type", ctype)
                    .header("accept", "application/json")
                    .body(body.clone());
                if let Ok(v) = reqwest::header::HeaderValue::from_str(&cookie) {
                    req = req.header("cookie", v);
                }
                let r = req.send().await.expect("the server answers");
                r.status().as_u16()
            });
            prop_assert!(
                status < 500,
                "{url} with {ctype} {body:?} answered {status}"
            );
            prop_assert!(rt.block_on(alive(&s)), "{url} took the server down");
            Ok(())
        })
        .unwrap();
}
