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
