//! Tessera's OpenID Provider against Logto's own SDK (`@logto/node`, peers/logto-client.mjs):
//! an app written for Logto switches its endpoint to Tessera and keeps working. The SDK finds
//! the provider by Logto's discovery path, sends Logto's scope names and `prompt=consent`,
//! verifies the id_token itself, reads userinfo, and gets a JWT access token for an API with a
//! refresh-token grant carrying `resource` (RFC 8707).

use crate::op_common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "http://127.0.0.1:9/callback";
const BOOKS: &str = "https://books.example.com/api";

/// acme with alice as an `admin` member, the Books API, and a Logto-style traditional web app.
async fn setup(s: &TestServer) -> (String, String, Value) {
    admin_ok(
        s,
        Method::POST,
        "/admin/organization-roles",
        json!({"name": "admin"}),
    )
    .await;
    let acme = admin_ok(
        s,
        Method::POST,
        "/admin/organizations",
        json!({"alias": "acme", "name": "Acme Inc."}),
    )
    .await["id"]
        .as_str()
        .expect("organization id")
        .to_string();
    let alice = user(s, "alice@example.com").await;
    admin_ok(
        s,
        Method::PUT,
        &format!("/admin/organizations/{acme}/members/{alice}"),
        json!({"roles": ["admin"]}),
    )
    .await;
    admin_ok(
        s,
        Method::POST,
        "/admin/apis",
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books", "write:books"]}),
    )
    .await;
    let mut app = traditional(RP);
    app["scope"] = json!(
        "openid offline_access profile email urn:logto:scope:organizations urn:logto:scope:organization_roles read:books"
    );
    app["resources"] = json!([BOOKS]);
    let c = create_client(s, app).await;
    (acme, alice, c)
}

/// Starts the SDK app and signs alice in through the browser; returns the app and the URL
/// Tessera sent the browser back to.
async fn sign_in(s: &TestServer, c: &Value, scopes: Value) -> (Peer, String) {
    let mut peer = Peer::start(
        "node",
        "logto-client.mjs",
        json!({
            "endpoint": s.public, "app_id": c["client_id"], "app_secret": c["client_secret"],
            "redirect_uri": RP, "scopes": scopes, "resources": [BOOKS],
        }),
        NODE_HINT,
    )
    .await;
    let authorize = peer.read().await["authorize"]
        .as_str()
        .expect("the SDK's sign-in URL")
        .to_string();
    assert!(
        authorize.starts_with(&format!("{}/oidc/auth?", s.public)),
        "the SDK found the authorization endpoint by discovery: {authorize}"
    );
    assert_eq!(param(&authorize, "prompt").as_deref(), Some("consent"));
    let (st, callback, body) = drive(
        &Browser::default(),
        s,
        &authorize,
        "alice@example.com",
        Some("accept"),
    )
    .await;
    assert_eq!(st, 303, "{callback} {body}");
    (peer, callback)
}

/// The SDK's whole sign-in; returns what it read.
async fn run_sdk(s: &TestServer, c: &Value, scopes: Value) -> Value {
    let (mut peer, callback) = sign_in(s, c, scopes).await;
    assert!(
        param(&callback, "error").is_none(),
        "Tessera refused the SDK's request: {callback}"
    );
    peer.write(json!({"callback": callback})).await;
    let r = peer.read().await["result"].clone();
    let _ = peer.child.wait().await;
    r
}

each_backend!(the_logto_node_sdk_signs_in_and_reads_organizations_and_an_api_token);
async fn the_logto_node_sdk_signs_in_and_reads_organizations_and_an_api_token(backend: Backend) {
    let s = server(backend, "").await;
    let (acme, alice, c) = setup(&s).await;
    let r = run_sdk(
        &s,
        &c,
        json!([
            "email",
            "urn:logto:scope:organizations",
            "urn:logto:scope:organization_roles",
            "read:books"
        ]),
    )
    .await;
    assert_eq!(r["authenticated"], true, "{r}");
    // The id_token the SDK verified (issuer, audience, signature) carries Logto's claims.
    let claims = &r["claims"];
    assert_eq!(claims["sub"], json!(alice), "{r}");
    assert_eq!(claims["aud"], c["client_id"]);
    assert_eq!(claims["iss"], format!("{}/oidc", s.public));
    assert_eq!(claims["organizations"], json!([acme]));
    assert_eq!(
        claims["organization_roles"],
        json!([format!("{acme}:admin")])
    );
    assert_eq!(r["userinfo"]["sub"], json!(alice));
    assert_eq!(r["userinfo"]["email"], "alice@example.com");
    // The API token is a JWT the API verifies on its own from the JWKS.
    let at = r["access_tokens"][BOOKS]
        .as_str()
        .expect("an access token for Books");
    let at_claims = verify(&s, at, BOOKS).await;
    assert_eq!(at_claims["sub"], json!(alice));
    assert_eq!(at_claims["client_id"], c["client_id"]);
    let scope = at_claims["scope"].as_str().unwrap_or_default();
    assert!(
        scope.split(' ').any(|x| x == "read:books"),
        "read:books granted: {at_claims}"
    );
    assert!(
        !scope.split(' ').any(|x| x == "write:books"),
        "a scope the app may not ask for is never granted: {at_claims}"
    );
    s.stop().await;
}

each_backend!(scopes_the_app_was_not_given_refuse_the_sdks_sign_in);
/// A Logto app that asks for organization claims it was not registered for is refused with
/// `invalid_scope` naming the scope: the SDK's scope list cannot widen what the operator
/// allowed the app.
async fn scopes_the_app_was_not_given_refuse_the_sdks_sign_in(backend: Backend) {
    let s = server(backend, "").await;
    setup(&s).await;
    // A second app, registered for sign-in and the API only.
    let mut narrow = traditional(RP);
    narrow["scope"] = json!("openid offline_access profile read:books");
    narrow["resources"] = json!([BOOKS]);
    let c = create_client(&s, narrow).await;
    let (_peer, callback) = sign_in(
        &s,
        &c,
        json!([
            "urn:logto:scope:organizations",
            "urn:logto:scope:organization_roles"
        ]),
    )
    .await;
    assert_eq!(
        param(&callback, "error").as_deref(),
        Some("invalid_scope"),
        "{callback}"
    );
    assert!(
        param(&callback, "error_description")
            .unwrap_or_default()
            .contains("urn:logto:scope:organizations"),
        "the refusal names the scope: {callback}"
    );
    s.stop().await;
}

each_backend!(an_organization_token_request_is_refused_without_spending_the_refresh_token);
/// Logto's organization tokens (a refresh with `organization_id`) are refused by name, and the
/// refusal does not spend the refresh token: the app keeps its sign-in.
async fn an_organization_token_request_is_refused_without_spending_the_refresh_token(
    backend: Backend,
) {
    let s = server(backend, "").await;
    let (acme, _, c) = setup(&s).await;
    let scope = "openid offline_access urn:logto:scope:organizations";
    let t = code_flow(&Browser::default(), &s, &c, "alice@example.com", scope).await;
    let rt = t["refresh_token"].as_str().expect("a refresh token");
    let cid = c["client_id"].as_str().expect("client_id");
    let secret = c["client_secret"].as_str().expect("client_secret");
    let (st, v, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("organization_id", &acme),
        ],
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "invalid_target", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("organization_roles"),
        "{v}"
    );
    let (st, v, _) = token(
        &s,
        Some((cid, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(st, 200, "the refresh token still works: {v}");
    s.stop().await;
}
