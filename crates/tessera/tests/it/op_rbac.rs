//! Role-based access control for APIs (Logto's "protect your API … with RBAC"): an API maps
//! roles to its scopes, and a user's JWT access token carries only the scopes their app roles
//! (granted by the app's access rules) and organization roles grant — decided again at every
//! refresh, so taking a role away shrinks the next token.

use crate::op_common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "http://127.0.0.1:9/callback";
const BOOKS: &str = "https://books.example.com/api";

async fn scope_of(s: &TestServer, access_token: &str) -> Vec<String> {
    let claims = verify(s, access_token, BOOKS).await;
    let mut v: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

each_backend!(roles_decide_the_scopes_of_api_tokens);
async fn roles_decide_the_scopes_of_api_tokens(backend: Backend) {
    let s = server(backend, "").await;
    let api = admin_ok(
        &s,
        Method::POST,
        "/admin/apis",
        json!({
            "identifier": BOOKS, "name": "Books", "default": true,
            "scopes": ["read:books", "write:books", "admin:books"],
            "role_scopes": {"editor": ["read:books", "write:books"], "viewer": ["read:books"], "librarian": ["admin:books"]},
        }),
    )
    .await;
    assert_eq!(api["role_scopes"]["viewer"], json!(["read:books"]));
    let mut app = traditional(RP);
    app["scope"] = json!("openid offline_access read:books write:books admin:books");
    app["roles"] = json!(["editor", "viewer"]);
    let c = create_client(&s, app).await;
    let cid = c["client_id"].as_str().expect("client_id").to_string();
    let alice = user(&s, "alice@example.com").await;
    user(&s, "bob@example.com").await;
    let carol = user(&s, "carol@example.com").await;
    let rule = admin_ok(
        &s,
        Method::POST,
        &format!("/admin/clients/{cid}/access-rules"),
        json!({"subject": {"type": "identity", "id": alice}, "app_roles": ["editor"]}),
    )
    .await;
    // An organization role of the same name as a mapped role grants its scopes too.
    admin_ok(
        &s,
        Method::POST,
        "/admin/organization-roles",
        json!({"name": "librarian"}),
    )
    .await;
    admin_ok(
        &s,
        Method::POST,
        "/admin/organizations",
        json!({"alias": "library"}),
    )
    .await;
    admin_ok(
        &s,
        Method::PUT,
        &format!("/admin/organizations/library/members/{carol}"),
        json!({"roles": ["librarian"]}),
    )
    .await;
    let scope = "openid offline_access read:books write:books admin:books";
    let a = code_flow(&Browser::default(), &s, &c, "alice@example.com", scope).await;
    assert_eq!(
        scope_of(&s, a["access_token"].as_str().expect("at")).await,
        ["read:books", "write:books"]
    );
    // No role, no scope: consenting to a scope does not grant it.
    let b = code_flow(&Browser::default(), &s, &c, "bob@example.com", scope).await;
    assert_eq!(
        scope_of(&s, b["access_token"].as_str().expect("at")).await,
        Vec::<String>::new()
    );
    let cz = code_flow(&Browser::default(), &s, &c, "carol@example.com", scope).await;
    assert_eq!(
        scope_of(&s, cz["access_token"].as_str().expect("at")).await,
        ["admin:books"]
    );
    // Taking alice's role away shrinks her next token.
    let rule_id = rule["id"].as_str().expect("rule id");
    let r = TestServer::client()
        .delete(format!(
            "{}/admin/clients/{cid}/access-rules/{rule_id}",
            s.admin
        ))
        .send()
        .await
        .expect("delete rule");
    assert_eq!(r.status(), 204);
    let secret = c["client_secret"].as_str().expect("secret");
    let (st, t, _) = token(
        &s,
        Some((&cid, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", a["refresh_token"].as_str().expect("rt")),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        scope_of(&s, t["access_token"].as_str().expect("at")).await,
        Vec::<String>::new()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_role_mapping_to_a_scope_the_api_does_not_define_is_refused() {
    let s = server(Backend::Sqlite, "").await;
    for (role_scopes, needle) in [
        (json!({"editor": ["delete:books"]}), "role_scopes.editor"),
        (json!({"": ["read:books"]}), "1 to 64 characters"),
    ] {
        let r = TestServer::client()
            .post(format!("{}/admin/apis", s.admin))
            .json(&json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books"], "role_scopes": role_scopes}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap_or_default();
        assert!(body.to_string().contains(needle), "{body}");
    }
    // Nothing was written.
    let list = admin_ok(&s, Method::GET, "/admin/apis", Value::Null).await;
    assert_eq!(list, json!([]));
    s.stop().await;
}
