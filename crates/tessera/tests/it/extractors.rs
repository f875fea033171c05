//! The typed extractors' refusals (issue 14): ids in URL paths and query parameters are parsed
//! into types before a handler runs, and what does not parse is answered with Kratos's error
//! shape, a 400 and a sentence naming the parameter, never a 500 or a plain-text axum body.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer};

/// `method url` on the server; the status and the body (`Null` when it is not JSON).
async fn call(method: &str, url: String) -> (u16, Value) {
    let r = TestServer::client()
        .request(method.parse().expect("a method"), url)
        .send()
        .await
        .expect("an answer");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Each `(method, url, needle)` is answered with a Kratos 400 whose reason says `needle`.
async fn assert_refused(cases: &[(&str, String, &str)]) {
    for (method, url, needle) in cases {
        let (status, e) = call(method, url.clone()).await;
        assert_eq!(status, 400, "{method} {url}: {e}");
        assert_eq!(e["error"]["code"], 400, "{e}");
        assert_eq!(e["error"]["status"], "Bad Request", "{e}");
        let reason = e["error"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
}

/// Creates an identity on the server's engine (the admin API's own rule); returns its id.
async fn create(s: &TestServer, body: Value) -> String {
    let identity = s.engine.0.create_identity(&body).await.expect("created");
    identity.id.to_string()
}

#[tokio::test]
async fn malformed_ids_in_admin_paths_name_the_id() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let a = |path: &str| format!("{}{path}", s.admin);
    let identity = "is not a valid identity id";
    assert_refused(&[
        ("GET", a("/admin/identities/abc"), identity),
        ("DELETE", a("/admin/identities/abc"), identity),
        ("GET", a("/admin/identities/1234/sessions"), identity),
        (
            "PUT",
            a("/admin/clients/app/assignments/not-an-id"),
            identity,
        ),
        (
            "GET",
            a("/admin/sessions/%27%3B--"),
            "`';--` is not a valid session id",
        ),
        (
            "PATCH",
            a("/admin/sessions/zz/extend"),
            "`zz` is not a valid session id",
        ),
    ])
    .await;
    // The happy path through the same extractor: a real id is found, an unknown one is not.
    let id = create(&s, json!({"traits": {"email": "ex@example.com"}})).await;
    assert_eq!(
        call("GET", a(&format!("/admin/identities/{id}"))).await.0,
        200
    );
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = call("GET", a(&format!("/admin/identities/{unknown}"))).await;
    assert_eq!(status, 404, "a well-formed unknown id is not a 400");
    s.stop().await;
}

#[tokio::test]
async fn malformed_query_parameters_are_refused_with_their_name() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let a = |path: &str| format!("{}{path}", s.admin);
    assert_refused(&[
        (
            "GET",
            a("/admin/sessions?active=maybe"),
            "active `maybe` must be true or false",
        ),
        (
            "GET",
            a("/admin/identities?per_page=9000"),
            "page_size `9000` is invalid",
        ),
        // A parameter given twice is ambiguous: refused rather than one copy silently chosen.
        (
            "GET",
            a("/admin/identities?page_size=1&page_size=500"),
            "page_size",
        ),
        (
            "GET",
            format!("{}/self-service/errors?id=nope", s.public),
            "`nope` is not a valid error id",
        ),
    ])
    .await;
    // Repeated `include_credential` is a list, as in Kratos, not a duplicate.
    let id = create(
        &s,
        json!({"traits": {"email": "inc@example.com"}, "credentials": {"password": {"config": {"password": "a long password 1"}}}}),
    )
    .await;
    let (status, i) = call(
        "GET",
        a(&format!(
            "/admin/identities/{id}?include_credential=password&include_credential=oidc"
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert!(i["credentials"]["password"].is_object(), "{i}");
    s.stop().await;
}
