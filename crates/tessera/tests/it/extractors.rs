//! The typed extractors' refusals (issue 14): ids in URL paths and query parameters are parsed
//! into types before a handler runs, and what does not parse is answered with Kratos's error
//! shape, a 400 and a sentence naming the parameter, never a 500 or a plain-text axum body.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer};

fn c() -> reqwest::Client {
    TestServer::client()
}

/// Creates an identity through the admin API; returns its id.
async fn create(s: &TestServer, body: Value) -> String {
    let r = c()
        .post(format!("{}/admin/identities", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A Kratos 400 whose reason contains `needle`.
async fn assert_kratos_400(r: reqwest::Response, needle: &str) {
    assert_eq!(r.status(), 400, "{needle}");
    let e: Value = r.json().await.expect("a JSON error body");
    assert_eq!(e["error"]["code"], 400, "{e}");
    assert_eq!(e["error"]["status"], "Bad Request", "{e}");
    let reason = e["error"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
}

#[tokio::test]
async fn malformed_ids_in_admin_paths_name_the_id() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    for (method, path, needle) in [
        (
            "GET",
            "/admin/identities/abc",
            "`abc` is not a valid identity id",
        ),
        (
            "DELETE",
            "/admin/identities/abc",
            "`abc` is not a valid identity id",
        ),
        (
            "GET",
            "/admin/identities/1234/sessions",
            "`1234` is not a valid identity id",
        ),
        (
            "GET",
            "/admin/sessions/%27%3B--",
            "`';--` is not a valid session id",
        ),
        (
            "PATCH",
            "/admin/sessions/zz/extend",
            "`zz` is not a valid session id",
        ),
        (
            "PUT",
            "/admin/clients/app/assignments/not-an-id",
            "`not-an-id` is not a valid identity id",
        ),
    ] {
        let r = c()
            .request(method.parse().unwrap(), format!("{}{path}", s.admin))
            .send()
            .await
            .unwrap();
        assert_kratos_400(r, needle).await;
    }
    // The happy path through the same extractor: a real id is found.
    let id = create(&s, json!({"traits": {"email": "ex@example.com"}})).await;
    let r = c()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c()
        .get(format!(
            "{}/admin/identities/{}",
            s.admin,
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a well-formed unknown id is not a 400");
    s.stop().await;
}

#[tokio::test]
async fn malformed_query_parameters_are_refused_with_their_name() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let r = c()
        .get(format!("{}/admin/sessions?active=maybe", s.admin))
        .send()
        .await
        .unwrap();
    assert_kratos_400(r, "active `maybe` must be true or false").await;
    let r = c()
        .get(format!("{}/admin/identities?per_page=9000", s.admin))
        .send()
        .await
        .unwrap();
    assert_kratos_400(r, "page_size `9000` is invalid").await;
    // A parameter given twice is ambiguous: refused rather than one copy silently chosen.
    let r = c()
        .get(format!(
            "{}/admin/identities?page_size=1&page_size=500",
            s.admin
        ))
        .send()
        .await
        .unwrap();
    assert_kratos_400(r, "page_size").await;
    let r = c()
        .get(format!("{}/self-service/errors?id=nope", s.public))
        .send()
        .await
        .unwrap();
    assert_kratos_400(r, "`nope` is not a valid error id").await;
    // Repeated `include_credential` is a list, as in Kratos, not a duplicate.
    let id = create(
        &s,
        json!({"traits": {"email": "inc@example.com"}, "credentials": {"password": {"config": {"password": "a long password 1"}}}}),
    )
    .await;
    let r = c()
        .get(format!(
            "{}/admin/identities/{id}?include_credential=password&include_credential=oidc",
            s.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let i: Value = r.json().await.unwrap();
    assert!(i["credentials"]["password"].is_object(), "{i}");
    s.stop().await;
}
