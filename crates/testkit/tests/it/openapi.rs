//! The OpenAPI check itself: Kratos's document accepts well-formed answers and refuses a field
//! of the wrong type, a missing required field and an unknown enum value, and the middleware
//! records what a wrong answer breaks.

use serde_json::{Value, json};
use tessera_testkit::openapi::{self, Violations, kratos};

/// A login flow as Kratos's `loginFlow` schema wants it.
fn login_flow() -> Value {
    json!({
        "id": "9f1e6b40-3d1c-4b47-9d0e-5d6a2f4b8c11",
        "type": "api",
        "expires_at": "2026-12-03T15:00:00Z",
        "issued_at": "2026-12-03T14:00:00Z",
        "request_url": "http://127.0.0.1:4433/self-service/login/api",
        "state": "choose_method",
        "ui": {
            "action": "http://127.0.0.1:4433/self-service/login?flow=9f1e6b40-3d1c-4b47-9d0e-5d6a2f4b8c11",
            "method": "POST",
            "nodes": [{
                "type": "input",
                "group": "default",
                "attributes": {
                    "name": "identifier", "type": "text", "value": "", "required": true,
                    "disabled": false, "node_type": "input"
                },
                "messages": [],
                "meta": {}
            }, {
                "type": "input",
                "group": "password",
                "attributes": {
                    "name": "password", "type": "password", "required": true,
                    "autocomplete": "current-password", "disabled": false, "node_type": "input"
                },
                "messages": [],
                "meta": {}
            }]
        }
    })
}

#[test]
fn path_templates_resolve_to_the_most_specific() {
    let spec = kratos();
    assert_eq!(
        spec.template("/admin/identities/42").map(|t| t.0),
        Some("/admin/identities/{id}")
    );
    assert_eq!(
        spec.template("/admin/sessions/7/extend").map(|t| t.0),
        Some("/admin/sessions/{id}/extend")
    );
    assert_eq!(
        spec.template("/sessions/whoami").map(|t| t.0),
        Some("/sessions/whoami")
    );
    assert!(spec.template("/oidc/token").is_none());
    assert!(spec.template("/admin/identities/").is_none());
}

#[test]
fn a_conforming_answer_passes() {
    let spec = kratos();
    spec.check("GET", "/self-service/login/api", 200, &login_flow())
        .unwrap();
    spec.check(
        "GET",
        "/sessions/whoami",
        401,
        &json!({"error": {"code": 401, "status": "Unauthorized", "message": "No valid session credentials found in the request.", "id": "session_inactive"}}),
    )
    .unwrap();
    // `nullable` fields take null.
    spec.check("GET", "/self-service/login/api", 200, &{
        let mut f = login_flow();
        f["ui"]["nodes"][0]["attributes"]["value"] = Value::Null;
        f
    })
    .unwrap();
    // Kratos's own wire forms where its generated document differs: error details as a map,
    // and the 422 "move the browser" answer with the error inside `error`.
    spec.check(
        "POST",
        "/self-service/login",
        410,
        &json!({"error": {"code": 410, "message": "gone", "id": "self_service_flow_expired", "details": {"since": "2026-12-03T15:00:00Z"}}}),
    )
    .unwrap();
    spec.check(
        "POST",
        "/self-service/login",
        422,
        &json!({"error": {"code": 422, "message": "browser location change required", "id": "browser_location_change_required"}, "redirect_browser_to": "http://127.0.0.1:1/authorize"}),
    )
    .unwrap();
    assert!(
        spec.check(
            "POST",
            "/self-service/login",
            422,
            &json!({"error": {"code": "422"}})
        )
        .is_err()
    );
    // Not Kratos's path, or not a documented status: nothing to check against.
    spec.check("GET", "/oidc/me", 200, &json!(1)).unwrap();
}

/// Breaks a conforming answer in one way.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn wrong_answers_fail_with_where_and_why() {
    let spec = kratos();
    let cases: [(&str, Breaker, &str); 4] = [
        (
            "an enum value Kratos does not list",
            Box::new(|f| f["ui"]["nodes"][1]["attributes"]["autocomplete"] = json!("nickname")),
            "/ui/nodes/1/attributes/autocomplete",
        ),
        (
            "a field of the wrong type",
            Box::new(|f| f["ui"]["nodes"][0]["attributes"]["disabled"] = json!("no")),
            "/ui/nodes/0/attributes",
        ),
        (
            "a required field missing",
            Box::new(|f| {
                f.as_object_mut().unwrap().remove("expires_at");
            }),
            "expires_at",
        ),
        (
            "a node group Kratos does not have",
            Box::new(|f| f["ui"]["nodes"][0]["group"] = json!("social")),
            "/ui/nodes/0/group",
        ),
    ];
    for (what, break_it, needle) in cases {
        let mut flow = login_flow();
        break_it(&mut flow);
        let err = spec
            .check("GET", "/self-service/login/api", 200, &flow)
            .expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            err.contains("GET /self-service/login/api → 200"),
            "{what}: {err}"
        );
    }
    let err = spec
        .check(
            "GET",
            "/sessions/whoami",
            401,
            &json!({"error": {"code": "401", "message": "x"}}),
        )
        .unwrap_err();
    assert!(err.contains("/error/code"), "{err}");
}

/// The middleware the test servers run: a wrong answer on a Kratos path is recorded (and still
/// delivered unchanged), a right one and a non-Kratos path are not.
#[tokio::test]
async fn the_middleware_records_a_wrong_answer() {
    let found = Violations::default();
    let router = axum::Router::new()
        .route(
            "/sessions/whoami",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": {"code": 401, "message": 7}})),
                )
            }),
        )
        .route(
            "/self-service/login/api",
            axum::routing::get(|| async { axum::Json(login_flow()) }),
        )
        .route(
            "/oidc/me",
            axum::routing::get(|| async { axum::Json(json!({"sub": 1})) }),
        );
    let app = openapi::wrap(router, found.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = reqwest::Client::new();
    let body: Value = c
        .get(format!("http://{addr}/sessions/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["message"], 7, "delivered unchanged");
    for p in ["/self-service/login/api", "/oidc/me"] {
        let r = c.get(format!("http://{addr}{p}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let v = found.take();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].contains("GET /sessions/whoami → 401") && v[0].contains("/error/message"),
        "{v:?}"
    );
}
