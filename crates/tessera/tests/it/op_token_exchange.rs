//! Token exchange (RFC 8693, issue 22): a service trades the access token a user's app sent it
//! for a JWT access token to another API, acting for that user.
//! - the peer: `openid-client` (npm) makes the exchange with its generic grant request, and a
//!   downstream API built on `jose` verifies the exchanged token from the JWKS alone
//!   (peers/token-exchange.mjs);
//! - the attacks: an app not allowed the grant, a public app asking for it, missing and unknown
//!   token types, foreign and garbage tokens, a token addressed to another service, revoked
//!   sign-ins, a deactivated account, a signed-out id_token, unknown or forbidden targets,
//!   widened scopes, an actor token of another app; and discovery listing the grant exactly
//!   while some app may use it.

use crate::op_common::*;
use serde_json::{Value, json};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "http://127.0.0.1:9/callback";
const BOOKS: &str = "https://books.example.test/api";
const INVENTORY: &str = "https://inventory.example.test/api";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const IDT: &str = "urn:ietf:params:oauth:token-type:id_token";

async fn create_api(s: &TestServer, body: Value) {
    admin_ok(s, reqwest::Method::POST, "/admin/apis", body).await;
}

/// Whether discovery lists the token-exchange grant.
async fn advertised(s: &TestServer) -> bool {
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("discovery json");
    d["grant_types_supported"]
        .as_array()
        .expect("grant_types_supported")
        .iter()
        .any(|g| g == GRANT)
}

/// Two APIs (Books, and the Inventory service Books calls), the user's app (Bookstore) and
/// the Books backend, a machine app allowed token exchange that serves Books.
struct Setup {
    store: Value,
    backend: Value,
}

async fn setup(s: &TestServer) -> Setup {
    create_api(
        s,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books", "write:books"]}),
    )
    .await;
    create_api(
        s,
        json!({"identifier": INVENTORY, "name": "Inventory", "scopes": ["read:books"]}),
    )
    .await;
    let store = create_client(
        s,
        json!({
            "client_name": "Bookstore",
            "redirect_uris": [RP],
            "scope": "openid offline_access read:books write:books",
            "resources": [BOOKS],
        }),
    )
    .await;
    assert!(!advertised(s).await, "no app may exchange tokens yet");
    let backend = create_client(
        s,
        json!({
            "client_name": "Books backend",
            "app_type": "machine",
            "grant_types": ["client_credentials", GRANT],
            "scope": "read:books write:books",
            "resources": [BOOKS, INVENTORY],
        }),
    )
    .await;
    assert_eq!(backend["grant_types"], json!(["client_credentials", GRANT]));
    assert!(advertised(s).await, "the Books backend may exchange tokens");
    Setup { store, backend }
}

fn creds(c: &Value) -> (&str, &str) {
    (
        c["client_id"].as_str().expect("client_id"),
        c["client_secret"].as_str().expect("client_secret"),
    )
}

/// The user signs in to Bookstore with `resource=BOOKS`; returns the token response (a JWT
/// for Books, a refresh token and an id_token).
async fn sign_in(s: &TestServer, b: &Browser, app: &Value, email: &str) -> Value {
    let p = pkce();
    let (cid, secret) = creds(app);
    let url = auth_url(
        s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid offline_access read:books write:books"),
            ("resource", BOOKS),
            ("state", "st"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let (_, loc, body) = drive(b, s, &url, email, Some("accept")).await;
    let code = param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc} {body}"));
    let (st, t, _) = token(
        s,
        Some((cid, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("code_verifier", &p.verifier),
            ("resource", BOOKS),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t
}

/// One exchange by `app` (client_secret_basic) with extra form fields.
async fn exchange(s: &TestServer, app: &Value, form: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("grant_type", GRANT)];
    all.extend_from_slice(form);
    let (st, v, _) = token(s, Some(creds(app)), &all).await;
    (st, v)
}

/// An exchange by `app` of the user's access token `subject`, with `extra` fields.
async fn exchange_at(
    s: &TestServer,
    app: &Value,
    subject: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("subject_token", subject), ("subject_token_type", AT)];
    form.extend_from_slice(extra);
    exchange(s, app, &form).await
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let p = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn openid_client_exchanges_a_users_token_that_jose_verifies() {
    let s = server(Backend::Sqlite, "").await;
    let uid = user(&s, "ann@example.com").await;
    let Setup { store, backend } = setup(&s).await;
    let signed_in = sign_in(&s, &Browser::default(), &store, "ann@example.com").await;
    let subject = signed_in["access_token"].as_str().expect("access_token");
    assert_eq!(claims(subject)["aud"], BOOKS);
    // The backend's own token (client credentials) names it as the actor.
    let (bid, bsecret) = creds(&backend);
    let (st, own, _) = token(
        &s,
        Some((bid, bsecret)),
        &[("grant_type", "client_credentials"), ("resource", BOOKS)],
    )
    .await;
    assert_eq!(st, 200, "{own}");

    let run = |scope: Option<&str>| {
        let mut cfg = json!({
            "issuer": format!("{}/oidc", s.public),
            "client_id": bid, "client_secret": bsecret,
            "subject_token": subject, "subject_token_type": AT,
            "actor_token": own["access_token"], "actor_token_type": AT,
            "resource": INVENTORY,
        });
        if let Some(sc) = scope {
            cfg["scope"] = json!(sc);
        }
        cfg
    };
    let mut peer = Peer::start("node", "token-exchange.mjs", run(None), NODE_HINT).await;
    let out = peer.read().await;
    let _ = peer.child.wait().await;
    let r = &out["result"];
    assert_eq!(r["advertised"], true, "{out}");
    assert_eq!(r["response"]["issued_token_type"], AT, "{out}");
    assert!(
        r["response"]["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{out}"
    );
    assert_eq!(r["response"]["refresh_token"], Value::Null);
    assert_eq!(
        r["verified"]["ok"], true,
        "jose verifies it from the JWKS: {out}"
    );
    assert_eq!(
        r["wrong_audience"]["ok"], false,
        "it is a token for Inventory only"
    );
    let c = &r["verified"]["claims"];
    assert_eq!(c["aud"], INVENTORY);
    assert_eq!(c["sub"], uid.as_str(), "it acts for Ann");
    assert_eq!(c["client_id"], bid);
    // Inventory defines read:books only: write:books narrows away.
    assert_eq!(c["scope"], "read:books");
    assert_eq!(c["act"], json!({"sub": bid}), "RFC 8693 §4.1");
    assert!(c["auth_time"].is_i64(), "{c}");
    assert_eq!(r["verified"]["header"]["typ"], "at+jwt");

    // The exchanged token is live for introspection by the backend, like any user's JWT.
    let exchanged = r["response"]["access_token"].as_str().expect("token");
    let (_, v, _) = post_form(
        &s,
        "token/introspection",
        Some((bid, bsecret)),
        &[("token", exchanged)],
    )
    .await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["aud"], INVENTORY, "{v}");

    // Widening is refused to the peer with invalid_scope (write:books is not Inventory's, and
    // delete:books was never granted).
    for scope in ["read:books write:books", "delete:books"] {
        let mut peer = Peer::start("node", "token-exchange.mjs", run(Some(scope)), NODE_HINT).await;
        let out = peer.read().await;
        let _ = peer.child.wait().await;
        assert_eq!(out["refused"]["error"], "invalid_scope", "{scope}: {out}");
        assert_eq!(out["refused"]["status"], 400, "{out}");
    }
    s.stop().await;
}

each_backend!(token_exchange_refuses_what_it_must);
async fn token_exchange_refuses_what_it_must(backend: Backend) {
    let s = server(backend, "").await;
    user(&s, "bo@example.com").await;
    let Setup {
        store,
        backend: books,
    } = setup(&s).await;
    let b = Browser::default();
    let signed_in = sign_in(&s, &b, &store, "bo@example.com").await;
    let subject = signed_in["access_token"].as_str().expect("access_token");
    let ok_form = [
        ("subject_token", subject),
        ("subject_token_type", AT),
        ("resource", INVENTORY),
    ];
    let (st, v) = exchange(&s, &books, &ok_form).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["issued_token_type"], AT);

    let refused = |st: u16, v: &Value, code: &str, what: &str| {
        assert_eq!(st, 400, "{what}: {v}");
        assert_eq!(v["error"], code, "{what}: {v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.len() > 10),
            "{what}: a reason: {v}"
        );
    };

    // The user's app is not allowed the grant.
    let (st, v) = exchange(&s, &store, &ok_form).await;
    refused(st, &v, "unauthorized_client", "an app without the grant");
    // A public app may not even be registered for it, nor may a machine app sign users in.
    let (st, v, _) = {
        let r = TestServer::client()
            .post(format!("{}/admin/clients", s.admin))
            .json(&json!({"app_type": "spa", "redirect_uris": [RP], "grant_types": ["authorization_code", GRANT]}))
            .send()
            .await
            .expect("admin");
        let st = r.status().as_u16();
        (st, r.json::<Value>().await.unwrap_or_default(), ())
    };
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("confidential"), "{v}");

    // Missing and unknown parameters.
    for (form, what) in [
        (
            vec![("subject_token_type", AT), ("resource", INVENTORY)],
            "no subject_token",
        ),
        (
            vec![("subject_token", subject), ("resource", INVENTORY)],
            "no subject_token_type",
        ),
        (
            vec![
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
                ("resource", INVENTORY),
            ],
            "an unknown subject_token_type",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("actor_token", subject),
                ("resource", INVENTORY),
            ],
            "actor_token without its type",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
                ("resource", INVENTORY),
            ],
            "a refresh token requested",
        ),
        (
            vec![
                ("subject_token", "not-a-token-of-ours"),
                ("subject_token_type", AT),
                ("resource", INVENTORY),
            ],
            "a foreign token",
        ),
        (
            vec![
                (
                    "subject_token",
                    "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
                ),
                ("subject_token_type", AT),
                ("resource", INVENTORY),
            ],
            "an unsigned JWT",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", IDT),
                ("resource", INVENTORY),
            ],
            "an access token passed off as an id_token",
        ),
    ] {
        let (st, v) = exchange(&s, &books, &form).await;
        refused(st, &v, "invalid_request", what);
    }

    // Targets: unknown, not allowed to the app, two different ones, two audiences.
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[("resource", "https://nope.example.test/api")],
    )
    .await;
    refused(st, &v, "invalid_target", "an unknown API");
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[("resource", INVENTORY), ("audience", BOOKS)],
    )
    .await;
    refused(st, &v, "invalid_target", "resource and audience differ");
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[("audience", INVENTORY), ("audience", BOOKS)],
    )
    .await;
    refused(st, &v, "invalid_target", "two audiences");
    let (st, v) = exchange_at(&s, &books, subject, &[("audience", INVENTORY)]).await;
    assert_eq!(
        st, 200,
        "`audience` names the API as well as `resource`: {v}"
    );
    assert_eq!(
        claims(v["access_token"].as_str().expect("at"))["aud"],
        INVENTORY
    );

    // Scopes only narrow.
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[("resource", BOOKS), ("scope", "read:books")],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["scope"], "read:books");
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[("resource", INVENTORY), ("scope", "write:books")],
    )
    .await;
    refused(
        st,
        &v,
        "invalid_scope",
        "a scope the target API does not define",
    );

    // A token addressed to another service: the Inventory backend does not serve Books.
    let inventory = create_client(
        &s,
        json!({"app_type": "machine", "grant_types": [GRANT], "scope": "read:books", "resources": [INVENTORY]}),
    )
    .await;
    let (st, v) = exchange(&s, &inventory, &ok_form).await;
    refused(
        st,
        &v,
        "invalid_request",
        "a token for an API the app does not serve",
    );
    // …nor may it name itself the actor with the Books backend's token.
    let (_, own, _) = token(
        &s,
        Some(creds(&books)),
        &[("grant_type", "client_credentials"), ("resource", BOOKS)],
    )
    .await;
    let (st, v) = exchange_at(
        &s,
        &books,
        subject,
        &[
            ("resource", INVENTORY),
            (
                "actor_token",
                own["access_token"].as_str().expect("cc token"),
            ),
            ("actor_token_type", AT),
        ],
    )
    .await;
    assert_eq!(st, 200, "its own token as actor: {v}");
    let (st, v) = exchange(
        &s,
        &inventory,
        &[
            (
                "subject_token",
                own["access_token"].as_str().expect("cc token"),
            ),
            ("subject_token_type", AT),
            ("resource", INVENTORY),
        ],
    )
    .await;
    refused(
        st,
        &v,
        "invalid_request",
        "another app's client-credentials token",
    );

    // An id_token: only the app it was issued to exchanges it, and only while its sign-in runs.
    let portal = create_client(
        &s,
        json!({
            "client_name": "Portal",
            "redirect_uris": [RP],
            "grant_types": ["authorization_code", "refresh_token", GRANT],
            "scope": "openid offline_access read:books",
            "resources": [BOOKS],
        }),
    )
    .await;
    let portal_tokens = sign_in_plain(&s, &b, &portal).await;
    let id_token = portal_tokens["id_token"].as_str().expect("id_token");
    let (st, v) = exchange(
        &s,
        &portal,
        &[
            ("subject_token", id_token),
            ("subject_token_type", IDT),
            ("resource", BOOKS),
        ],
    )
    .await;
    assert_eq!(st, 200, "the Portal exchanges its own id_token: {v}");
    assert!(
        v.get("scope").is_none_or(|sc| sc == ""),
        "an id_token carries no scopes: {v}"
    );
    let (st, v) = exchange(
        &s,
        &portal,
        &[
            ("subject_token", id_token),
            ("subject_token_type", IDT),
            ("resource", BOOKS),
            ("scope", "read:books"),
        ],
    )
    .await;
    refused(st, &v, "invalid_scope", "scopes from an id_token");
    let (st, v) = exchange(
        &s,
        &books,
        &[
            ("subject_token", id_token),
            ("subject_token_type", IDT),
            ("resource", BOOKS),
        ],
    )
    .await;
    refused(st, &v, "invalid_request", "another app's id_token");

    // Revoking Bookstore's sign-in (its refresh token) revokes what was exchanged from it, and
    // its access token exchanges nothing more.
    let (st, first) = exchange(&s, &books, &ok_form).await;
    assert_eq!(st, 200, "{first}");
    let (st, _, _) = post_form(
        &s,
        "token/revocation",
        Some(creds(&store)),
        &[(
            "token",
            signed_in["refresh_token"].as_str().expect("refresh_token"),
        )],
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = exchange(&s, &books, &ok_form).await;
    refused(st, &v, "invalid_request", "a revoked subject token");
    let (_, v, _) = post_form(
        &s,
        "token/introspection",
        Some(creds(&books)),
        &[("token", first["access_token"].as_str().expect("at"))],
    )
    .await;
    assert_eq!(v["active"], false, "revoked with its sign-in: {v}");

    // A deactivated account's tokens exchange nothing; nor do its id_tokens once signed out.
    let fresh = sign_in(&s, &b, &store, "bo@example.com").await;
    let who = claims(fresh["access_token"].as_str().expect("at"))["sub"].clone();
    admin_ok(
        &s,
        reqwest::Method::PATCH,
        &format!("/admin/identities/{}", who.as_str().expect("sub")),
        json!([{"op": "replace", "path": "/state", "value": "inactive"}]),
    )
    .await;
    let (st, v) = exchange(
        &s,
        &books,
        &[
            ("subject_token", fresh["access_token"].as_str().expect("at")),
            ("subject_token_type", AT),
            ("resource", INVENTORY),
        ],
    )
    .await;
    refused(st, &v, "invalid_request", "a deactivated account");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("deactivated")),
        "{v}"
    );
    let (st, v) = exchange(
        &s,
        &portal,
        &[
            ("subject_token", id_token),
            ("subject_token_type", IDT),
            ("resource", BOOKS),
        ],
    )
    .await;
    refused(
        st,
        &v,
        "invalid_request",
        "an id_token of a deactivated account",
    );

    // Taking the grant away from the last app takes it out of discovery.
    for app in [&books, &inventory, &portal] {
        let id = app["client_id"].as_str().expect("id");
        let r = TestServer::client()
            .delete(format!("{}/admin/clients/{id}", s.admin))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }
    assert!(!advertised(&s).await, "no app may exchange tokens any more");
    s.stop().await;
}

/// A code flow without `resource` for an app whose user is signed in already.
async fn sign_in_plain(s: &TestServer, b: &Browser, app: &Value) -> Value {
    code_flow(b, s, app, "bo@example.com", "openid offline_access").await
}

/// `tessera clients create --token-exchange` allows the grant next to the type's defaults; a
/// public app is refused with the reason.
#[tokio::test]
async fn cli_allows_token_exchange_per_app() {
    let s = server(Backend::Sqlite, "").await;
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = ["clients", "create", "--json", "--endpoint", &s.admin]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(args)
                .output()
                .await
                .expect("tessera clients create")
        }
    };
    let out = run(&[
        "--name",
        "Books backend",
        "--type",
        "machine",
        "--token-exchange",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created["grant_types"], json!(["client_credentials", GRANT]));
    assert!(advertised(&s).await);
    let out = run(&[
        "--name",
        "SPA",
        "--type",
        "spa",
        "--redirect-uri",
        RP,
        "--token-exchange",
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("confidential"), "{err}");
    s.stop().await;
}
