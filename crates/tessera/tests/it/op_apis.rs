//! APIs protected with Tessera's JWT access tokens (issue 22: RFC 8707 resource indicators,
//! RFC 9068 access tokens), checked by software nobody here wrote:
//! - a resource server built on `jose` (npm, peers/op-api.mjs) that trusts nothing but the
//!   JWKS, `iss`, `aud` and `typ`;
//! - `openid-client` (npm) as the app: code + PKCE with `resource`, refresh for the same API,
//!   client credentials with `resource`.
//!
//! And the attacks: a token for another API, `alg: none`, a token re-signed with another key
//! under Tessera's `kid`, resources that are unknown, malformed, not allowed to the app or
//! outside the grant, two resources at the token endpoint, a refresh that tries to widen.
//! The admin API (`/admin/apis`) and `tessera apis` are checked here too, and pushed
//! authorization requests (RFC 9126) with openid-client's PAR support: single use, bound to the
//! app that pushed them, required per app.

use crate::op_common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use tessera_testkit::journey::location;
use tessera_testkit::peers::peers_dir;
use tessera_testkit::{Backend, Browser, TestServer, each_backend};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const RP: &str = "http://127.0.0.1:9/callback";
const BOOKS: &str = "https://books.example.test/api";
const MUSIC: &str = "https://music.example.test/api";
const HINT: &str = "run `bash scripts/test-deps.sh` (installs jose and openid-client into peers/)";

/// `node peers/op-api.mjs` speaking one JSON object per line.
struct Peer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Peer {
    async fn start(config: Value) -> Peer {
        let dir = peers_dir();
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("op-api.mjs"))
            .arg(config.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node op-api.mjs: {e}; {HINT}"));
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the peer answered within 60 s")
            .expect("read peer")
            .expect("the peer printed a line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("peer said: {line}"));
        assert!(v.get("error").is_none(), "the peer failed: {}", v["error"]);
        v
    }

    async fn ask(&mut self, v: Value) -> Value {
        self.stdin
            .write_all(format!("{v}\n").as_bytes())
            .await
            .expect("write peer");
        self.read().await
    }
}

async fn admin(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    s.admin_request(method, path, body.as_ref()).await
}

async fn create_api(s: &TestServer, body: Value) -> Value {
    let (st, v, _) = admin(s, reqwest::Method::POST, "/admin/apis", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    v
}

/// The two APIs and an app allowed both, whose scopes include theirs.
async fn books_and_music(s: &TestServer, app: Value) -> Value {
    create_api(
        s,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books", "write:books"]}),
    )
    .await;
    create_api(
        s,
        json!({"identifier": MUSIC, "name": "Music", "scopes": ["read:music"]}),
    )
    .await;
    let mut body = json!({
        "client_name": "Bookstore",
        "redirect_uris": [RP],
        "scope": "openid email offline_access read:books read:music",
        "resources": [BOOKS, MUSIC],
    });
    if let (Some(b), Some(extra)) = (body.as_object_mut(), app.as_object()) {
        b.extend(extra.clone());
    }
    create_client(s, body).await
}

each_backend!(admin_api_manages_apis_in_kratos_style);
/// Create, list with `Link` pagination, JSON Patch, PUT, delete; refusals in Kratos's error
/// shape, and nothing half-written.
async fn admin_api_manages_apis_in_kratos_style(backend: Backend) {
    let s = server(backend, "").await;
    let books = create_api(&s, json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books"], "access_token_ttl": 600})).await;
    assert_eq!(books["identifier"], BOOKS);
    assert_eq!(books["scopes"], json!(["read:books"]));
    assert_eq!(books["access_token_ttl"], 600);
    assert_eq!(books["signing_alg"], "ES256", "the current key's algorithm");
    assert_eq!(books["default"], false);
    let id = books["id"].as_str().expect("id").to_string();
    // Attacker and typo input: a fragment, plain http, a bad scope, an unknown field.
    for (body, needle) in [
        (
            json!({"identifier": "https://books.example.test/api#x", "name": "X"}),
            "fragment",
        ),
        (
            json!({"identifier": "http://books.example.test/api", "name": "X"}),
            "plain http",
        ),
        (
            json!({"identifier": "https://x.example.test/", "name": "X", "scopes": ["a\"b"]}),
            "scope token",
        ),
        (
            json!({"identifier": "https://x.example.test/", "name": "X", "audience": "y"}),
            "unknown field",
        ),
    ] {
        let (st, v, _) = admin(&s, reqwest::Method::POST, "/admin/apis", Some(body.clone())).await;
        assert_eq!(st, 400, "{body} → {v}");
        assert_eq!(v["error"]["code"], 400);
        assert!(
            v["error"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{v}"
        );
    }
    let (st, v, _) = admin(
        &s,
        reqwest::Method::POST,
        "/admin/apis",
        Some(json!({"identifier": BOOKS, "name": "Again"})),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    create_api(
        &s,
        json!({"identifier": MUSIC, "name": "Music", "default": true}),
    )
    .await;
    let (st, v, _) = admin(
        &s,
        reqwest::Method::POST,
        "/admin/apis",
        Some(
            json!({"identifier": "https://third.example.test/", "name": "Third", "default": true}),
        ),
    )
    .await;
    assert_eq!(st, 409, "a second default: {v}");
    // Paging: one per page, the next page from the Link header.
    let (st, page, h) = admin(&s, reqwest::Method::GET, "/admin/apis?page_size=1", None).await;
    assert_eq!(st, 200);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    let link = h
        .get("link")
        .and_then(|l| l.to_str().ok())
        .expect("Link header")
        .to_string();
    let next = link
        .split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| p.split(['<', '>']).nth(1))
        .expect("a next page")
        .to_string();
    let second: Value = TestServer::client()
        .get(&next)
        .send()
        .await
        .expect("next")
        .json()
        .await
        .expect("json");
    assert_eq!(second.as_array().map(Vec::len), Some(1));
    assert_ne!(page[0]["id"], second[0]["id"]);
    // JSON Patch: add a scope.
    let (st, v, _) = admin(
        &s,
        reqwest::Method::PATCH,
        &format!("/admin/apis/{id}"),
        Some(json!([{"op": "add", "path": "/scopes/-", "value": "write:books"}])),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["scopes"], json!(["read:books", "write:books"]));
    // A patch that breaks the API is refused and changes nothing.
    let (st, v, _) = admin(&s, reqwest::Method::PATCH, &format!("/admin/apis/{id}"), Some(json!([{"op": "replace", "path": "/identifier", "value": "https://books.example.test/#frag"}]))).await;
    assert_eq!(st, 400, "{v}");
    let (_, v, _) = admin(&s, reqwest::Method::GET, &format!("/admin/apis/{id}"), None).await;
    assert_eq!(v["identifier"], BOOKS);
    // An app may only list APIs that exist.
    let r = TestServer::client()
        .post(format!("{}/admin/clients", s.admin))
        .json(&json!({"redirect_uris": [RP], "resources": ["https://nowhere.example.test/"]}))
        .send()
        .await
        .expect("create client");
    assert_eq!(r.status(), 400);
    let (st, _, _) = admin(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/apis/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, v, _) = admin(&s, reqwest::Method::GET, &format!("/admin/apis/{id}"), None).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], 404);
    s.stop().await;
}

#[tokio::test]
async fn cli_creates_lists_and_deletes_apis() {
    let s = server(Backend::Sqlite, "").await;
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .output()
            .await
            .expect("tessera apis")
    };
    let args = |a: &[&str]| {
        let mut v: Vec<String> = vec!["apis".into()];
        v.extend(a.iter().map(|s| s.to_string()));
        v.push("--endpoint".into());
        v.push(s.admin.clone());
        v
    };
    let out = run(args(&[
        "create",
        "--identifier",
        BOOKS,
        "--name",
        "Books",
        "--scope",
        "read:books",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created["scopes"], json!(["read:books"]));
    let out = run(args(&[
        "create",
        "--identifier",
        "https://x.example.test/#f",
        "--name",
        "X",
    ]))
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fragment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(args(&["list"])).await;
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let id = created["id"].as_str().expect("id");
    let out = run(args(&["delete", id])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(args(&["get", id])).await;
    assert!(!out.status.success());
    s.stop().await;
}

#[tokio::test]
async fn openid_client_code_pkce_with_resource_gives_a_jwt_that_jose_verifies() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "reader@example.com").await;
    let c = books_and_music(&s, json!({})).await;
    let mut peer = Peer::start(json!({
        "mode": "code", "issuer": format!("{}/oidc", s.public),
        "client_id": c["client_id"], "client_secret": c["client_secret"], "auth": "client_secret_basic",
        "redirect_uri": RP, "scope": "openid email offline_access read:books",
        "resource": BOOKS, "other_resource": MUSIC,
    }))
    .await;
    let authorize = peer.read().await["authorize"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(authorize.contains("resource="), "{authorize}");
    // Consent names the API's scope.
    let b = Browser::default();
    let (st, _, page) = drive(&b, &s, &authorize, "reader@example.com", None).await;
    assert_eq!(st, 200);
    assert!(
        page.contains("read:books"),
        "the consent page lists the API scope"
    );
    let (st, callback, body) =
        drive(&b, &s, &authorize, "reader@example.com", Some("accept")).await;
    assert_eq!(st, 303, "{callback} {body}");
    let r = peer.ask(json!({"callback": callback})).await["result"].clone();
    let v = &r["verified"];
    assert_eq!(v["ok"], true, "{r}");
    assert_eq!(v["header"]["typ"], "at+jwt");
    assert_eq!(v["claims"]["aud"], BOOKS);
    assert_eq!(v["claims"]["sub"], json!(id));
    assert_eq!(v["claims"]["client_id"], c["client_id"]);
    assert_eq!(v["claims"]["scope"], "read:books");
    assert!(v["claims"]["jti"].is_string() && v["claims"]["auth_time"].is_number());
    assert_eq!(r["id_token_sub"], json!(id));
    assert_eq!(r["wrong_audience"]["ok"], false, "{r}");
    assert_eq!(r["refreshed"]["ok"], true, "{r}");
    assert_eq!(r["refreshed"]["claims"]["aud"], BOOKS);
    assert_eq!(
        r["widened"], "invalid_target",
        "a refresh cannot move to another API: {r}"
    );
    let _ = peer.child.wait().await;
    s.stop().await;
}

#[tokio::test]
async fn client_credentials_jwt_verified_by_jose_and_forgeries_refused() {
    let s = server(Backend::Sqlite, "").await;
    create_api(
        &s,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books"]}),
    )
    .await;
    create_api(
        &s,
        json!({"identifier": MUSIC, "name": "Music", "scopes": ["read:music"]}),
    )
    .await;
    let c = create_client(
        &s,
        json!({"app_type": "machine", "scope": "read:books", "resources": [BOOKS]}),
    )
    .await;
    let (cid, secret) = (
        c["client_id"].as_str().expect("id"),
        c["client_secret"].as_str().expect("secret"),
    );
    let mut peer = Peer::start(json!({
        "mode": "cc", "issuer": format!("{}/oidc", s.public),
        "client_id": cid, "client_secret": secret, "auth": "client_secret_basic", "resource": BOOKS,
    }))
    .await;
    let r = peer.read().await["result"].clone();
    assert_eq!(r["verified"]["ok"], true, "{r}");
    assert_eq!(
        r["verified"]["claims"]["sub"], cid,
        "sub is the app itself (RFC 9068 §2.2)"
    );
    assert_eq!(r["verified"]["claims"]["scope"], "read:books");
    let at = r["access_token"].as_str().expect("token").to_string();
    let _ = peer.child.wait().await;

    // The resource server alone, against tokens an attacker made.
    let mut rs = Peer::start(json!({"mode": "rs", "issuer": format!("{}/oidc", s.public)})).await;
    let ok = rs.ask(json!({"token": at, "audience": BOOKS})).await;
    assert_eq!(ok["ok"], true, "{ok}");
    let other = rs.ask(json!({"token": at, "audience": MUSIC})).await;
    assert_eq!(other["ok"], false, "a token for Books is not one for Music");
    let forged = rs.ask(json!({"forge": at})).await;
    for kind in ["none", "resigned"] {
        let v = rs
            .ask(json!({"token": forged[kind], "audience": BOOKS}))
            .await;
        assert_eq!(v["ok"], false, "{kind}: {v}");
    }
    // Tessera itself refuses them too.
    for kind in ["none", "resigned"] {
        let (_, v, _) = post_form(
            &s,
            "token/introspection",
            Some((cid, secret)),
            &[("token", forged[kind].as_str().unwrap_or_default())],
        )
        .await;
        assert_eq!(v["active"], false, "{kind}: {v}");
    }
    let (_, v, _) = post_form(
        &s,
        "token/introspection",
        Some((cid, secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["aud"], BOOKS);
    // Revoked: introspection says so at once (an API verifying locally sees only `exp`).
    let (st, _, _) = post_form(
        &s,
        "token/revocation",
        Some((cid, secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(st, 200);
    let (_, v, _) = post_form(
        &s,
        "token/introspection",
        Some((cid, secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(v["active"], false, "{v}");
    drop(rs);

    // Resources the app may not have.
    for (resource, why) in [
        ("https://nowhere.example.test/api", "unknown"),
        ("https://books.example.test/api#frag", "fragment"),
        (MUSIC, "not allowed to the app"),
    ] {
        let (st, v, _) = token(
            &s,
            Some((cid, secret)),
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
        assert_eq!(
            (st, v["error"].as_str()),
            (400, Some("invalid_target")),
            "{why}: {v}"
        );
    }
    let (st, v, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", BOOKS),
            ("resource", MUSIC),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_target")),
        "two resources: {v}"
    );
    // No resource, no default API: the opaque token, as before.
    let (st, v, _) = token(
        &s,
        Some((cid, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        v["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("tcc1.")),
        "{v}"
    );
    s.stop().await;
}

each_backend!(authorization_refuses_resources_the_app_may_not_have);
/// `invalid_target` goes back to the app with `state`, before anyone signs in.
async fn authorization_refuses_resources_the_app_may_not_have(backend: Backend) {
    let s = server(backend, "").await;
    let c = books_and_music(&s, json!({"resources": [BOOKS]})).await;
    let cid = c["client_id"].as_str().expect("id");
    let p = pkce();
    for resource in [
        "https://nowhere.example.test/api",
        "https://books.example.test/api#f",
        "relative/path",
        MUSIC,
    ] {
        let url = auth_url(
            &s,
            &[
                ("client_id", cid),
                ("redirect_uri", RP),
                ("response_type", "code"),
                ("scope", "openid read:books"),
                ("state", "st-9"),
                ("resource", resource),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let r = Browser::default().get(&url, false).await;
        let loc = location(&r);
        assert!(loc.starts_with(RP), "{resource}: {loc}");
        assert_eq!(
            param(&loc, "error").as_deref(),
            Some("invalid_target"),
            "{resource}: {loc}"
        );
        assert_eq!(param(&loc, "state").as_deref(), Some("st-9"));
    }
    s.stop().await;
}

#[tokio::test]
async fn openid_client_pushes_its_request_and_a_request_uri_works_once() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "pusher@example.com").await;
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(
        d["pushed_authorization_request_endpoint"],
        json!(format!("{}/oidc/par", s.public))
    );
    // The app may only come through PAR.
    let c = create_client(&s, json!({"client_name": "Pusher", "redirect_uris": [RP], "skip_consent": true, "require_pushed_authorization_requests": true})).await;
    let (cid, secret) = (
        c["client_id"].as_str().expect("id"),
        c["client_secret"].as_str().expect("secret"),
    );
    let p = pkce();
    let plain = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st-p"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let loc = location(&Browser::default().get(&plain, false).await);
    assert_eq!(
        param(&loc, "error").as_deref(),
        Some("invalid_request"),
        "{loc}"
    );
    assert_eq!(param(&loc, "state").as_deref(), Some("st-p"));

    let mut peer = Peer::start(json!({
        "mode": "par", "issuer": format!("{}/oidc", s.public),
        "client_id": cid, "client_secret": secret, "auth": "client_secret_basic",
        "redirect_uri": RP, "scope": "openid email",
    }))
    .await;
    let authorize = peer.read().await["authorize"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        param(&authorize, "request_uri")
            .is_some_and(|u| u.starts_with("urn:ietf:params:oauth:request_uri:")),
        "{authorize}"
    );
    assert!(
        param(&authorize, "scope").is_none(),
        "only client_id and request_uri travel: {authorize}"
    );
    let b = Browser::default();
    let (st, callback, body) =
        drive(&b, &s, &authorize, "pusher@example.com", Some("accept")).await;
    assert_eq!(st, 303, "{callback} {body}");
    let r = peer.ask(json!({"callback": callback})).await["result"].clone();
    assert_eq!(r["sub"], json!(id), "{r}");
    let _ = peer.child.wait().await;

    // The same request_uri again (a replayed link): refused, nothing reaches the app.
    let again = b.get(&authorize, false).await;
    assert_eq!(again.status(), 400);
    assert!(location(&again).is_empty());

    // Pushing with a wrong secret, or a redirect_uri the app did not register.
    let (st, v, _) = post_form(
        &s,
        "par",
        Some((cid, "wrong")),
        &[
            ("response_type", "code"),
            ("redirect_uri", RP),
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );
    let (st, v, _) = post_form(
        &s,
        "par",
        Some((cid, secret)),
        &[
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (st, v, _) = post_form(
        &s,
        "par",
        Some((cid, secret)),
        &[
            ("response_type", "code"),
            ("redirect_uri", RP),
            ("scope", "openid"),
            ("request_uri", "urn:x"),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    // A request_uri pushed by this app cannot be used under another app's client_id.
    let (st, v, _) = post_form(
        &s,
        "par",
        Some((cid, secret)),
        &[
            ("response_type", "code"),
            ("redirect_uri", RP),
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["expires_in"], 60);
    let other = create_client(&s, json!({"redirect_uris": [RP]})).await;
    let url = auth_url(
        &s,
        &[
            ("client_id", other["client_id"].as_str().expect("id")),
            ("request_uri", v["request_uri"].as_str().expect("uri")),
        ],
    );
    let r = Browser::default().get(&url, false).await;
    assert_eq!(r.status(), 400);
    assert!(location(&r).is_empty());
    s.stop().await;
}
