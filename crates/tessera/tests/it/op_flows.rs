//! The OpenID Provider end to end over HTTP: discovery and JWKS, the code flow with PKCE through
//! sign-in and consent, tokens, userinfo, refresh-token rotation and reuse detection (on SQLite
//! and PostgreSQL), single sign-on across apps, prompt/max_age, client credentials,
//! introspection, revocation and RP-initiated logout.

use crate::op_common::*;
use serde_json::{Value, json};
use tessera_testkit::journey::{assert_error_page, location, whoami};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "https://rp.example.com/callback";

#[tokio::test]
async fn discovery_names_every_endpoint_under_the_issuer_and_jwks_has_kid_and_alg() {
    let s = server(Backend::Sqlite, "").await;
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let issuer = format!("{}/oidc", s.public);
    assert_eq!(d["issuer"], json!(issuer));
    for (k, path) in [
        ("authorization_endpoint", "auth"),
        ("token_endpoint", "token"),
        ("userinfo_endpoint", "me"),
        ("jwks_uri", "jwks"),
        ("end_session_endpoint", "session/end"),
        ("revocation_endpoint", "token/revocation"),
        ("introspection_endpoint", "token/introspection"),
    ] {
        assert_eq!(d[k], json!(format!("{issuer}/{path}")), "{k}");
    }
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    // RFC 9207: every authorization response names the issuer.
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    let jwks: Value = reqwest::get(format!("{}/oidc/jwks", s.public))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0]["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(keys[0].get("d").is_none(), "no private part in the JWKS");
    s.stop().await;
}

each_backend!(code_flow_with_pkce_consent_userinfo_refresh_rotation_and_reuse_detection);
async fn code_flow_with_pkce_consent_userinfo_refresh_rotation_and_reuse_detection(
    backend: Backend,
) {
    let s = server(backend, "").await;
    let id = user(&s, "reader@example.com").await;
    let c = create_client(&s, traditional(RP)).await;
    let client_id = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    let t = code_flow(
        &b,
        &s,
        &c,
        "reader@example.com",
        "openid email offline_access",
    )
    .await;
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].is_i64(), "expires_in is an integer: {t}");
    let claims = verify(&s, t["id_token"].as_str().unwrap(), client_id).await;
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(claims["aud"], json!(client_id), "aud is a plain string");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "reader@example.com");
    assert!(claims["at_hash"].is_string());

    let info: Value = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], json!(id));
    assert_eq!(info["email"], "reader@example.com");

    // Rotation: each refresh token works once and yields a new one.
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let (st, t2, _) = token(
        &s,
        Some((client_id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    // Reuse of rt1: refused, and the whole family (rt2 and the access tokens) revoked.
    let (st, e, _) = token(
        &s,
        Some((client_id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (st, e, _) = token(
        &s,
        Some((client_id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let r = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(t2["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Single sign-on: a second app, and the same app again, need no new sign-in; the
    // first app no longer asks for consent.
    let mut other = traditional("https://other.example.com/cb");
    other["skip_consent"] = json!(true);
    let c2 = create_client(&s, other).await;
    let t3 = code_flow(&b, &s, &c2, "nobody-needed@example.com", "openid").await;
    let claims = verify(
        &s,
        t3["id_token"].as_str().unwrap(),
        c2["client_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(claims["sub"], json!(id));
    assert!(
        t3.get("refresh_token").is_none(),
        "no offline_access, no refresh token: {t3}"
    );
    let p = pkce();
    let (st, loc, _) = drive(
        &b,
        &s,
        &auth_url(
            &s,
            &[
                ("client_id", client_id),
                ("redirect_uri", RP),
                ("response_type", "code"),
                ("scope", "openid email"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
        "x",
        None,
    )
    .await;
    assert_eq!(st, 303);
    assert!(param(&loc, "code").is_some(), "consent remembered: {loc}");
    s.stop().await;
}

#[tokio::test]
async fn consent_denied_returns_access_denied_to_the_app() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "deny@example.com").await;
    let c = create_client(&s, traditional(RP)).await;
    let b = Browser::default();
    let url = auth_url(
        &s,
        &[
            ("client_id", c["client_id"].as_str().unwrap()),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "abc"),
        ],
    );
    let (_, page_url, page) = drive(&b, &s, &url, "deny@example.com", None).await;
    assert!(page_url.contains("/ui/consent"), "{page_url}");
    assert!(
        page.contains("Bookstore") && page.contains("deny@example.com"),
        "{page}"
    );
    let (st, loc, _) = drive(&b, &s, &url, "deny@example.com", Some("deny")).await;
    assert_eq!(st, 303);
    assert!(loc.starts_with(RP));
    assert_eq!(param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&loc, "state").as_deref(), Some("abc"));
    s.stop().await;
}

#[tokio::test]
async fn prompt_none_login_and_max_age() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "p@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    let base = [
        ("client_id", cid),
        ("redirect_uri", RP),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s"),
    ];
    // prompt=none without a session: login_required back to the app.
    let mut q = base.to_vec();
    q.push(("prompt", "none"));
    let r = b.get(&auth_url(&s, &q), false).await;
    let loc = location(&r);
    assert!(loc.starts_with(RP), "{loc}");
    assert_eq!(param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&loc, "state").as_deref(), Some("s"));
    // Sign in once; then prompt=none answers with a code at once.
    let (st, loc, _) = drive(&b, &s, &auth_url(&s, &base), "p@example.com", None).await;
    assert_eq!(st, 303);
    assert!(param(&loc, "code").is_some());
    let r = b.get(&auth_url(&s, &q), false).await;
    assert!(param(&location(&r), "code").is_some(), "{}", location(&r));
    // prompt=login sends the browser to sign in again (refresh), then answers.
    let mut q = base.to_vec();
    q.push(("prompt", "login"));
    let r = b.get(&auth_url(&s, &q), false).await;
    let loc = location(&r);
    assert!(
        loc.contains("/self-service/login/browser") && loc.contains("refresh=true"),
        "{loc}"
    );
    let (st, loc, _) = drive(&b, &s, &auth_url(&s, &q), "p@example.com", None).await;
    assert_eq!(st, 303);
    assert!(param(&loc, "code").is_some(), "{loc}");
    // max_age=0 sends the browser to sign in again, once: coming back answers the app.
    let mut q0 = base.to_vec();
    q0.push(("max_age", "0"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (st, loc, _) = drive(&b, &s, &auth_url(&s, &q0), "p@example.com", None).await;
    assert_eq!(st, 303);
    assert!(param(&loc, "code").is_some(), "{loc}");
    // max_age=0 with prompt=none: the sign-in is too old.
    let mut q = base.to_vec();
    q.push(("prompt", "none"));
    q.push(("max_age", "0"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = b.get(&auth_url(&s, &q), false).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("login_required"),
        "{}",
        location(&r)
    );
    s.stop().await;
}

each_backend!(client_credentials_introspection_and_revocation);
async fn client_credentials_introspection_and_revocation(backend: Backend) {
    let s = server(backend, "").await;
    let m = create_client(&s, json!({"client_name": "Billing job", "app_type": "machine", "scope": "invoices:read invoices:write"})).await;
    let id = m["client_id"].as_str().unwrap();
    let secret = m["client_secret"].as_str().unwrap();
    let (st, t, h) = token(
        &s,
        Some((id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "invoices:read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(t["scope"], "invoices:read");
    assert!(t["expires_in"].is_i64());
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let at = t["access_token"].as_str().unwrap();
    // client_secret_post works too; a scope the app does not have is invalid_scope.
    let (st, e, _) = token(
        &s,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_scope")));
    let (st, i, _) = post_form(
        &s,
        "token/introspection",
        Some((id, secret)),
        &[("token", at)],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], json!(id));
    assert_eq!(i["scope"], "invoices:read");
    let (st, _, _) = post_form(&s, "token/revocation", Some((id, secret)), &[("token", at)]).await;
    assert_eq!(st, 200);
    let (_, i, _) = post_form(
        &s,
        "token/introspection",
        Some((id, secret)),
        &[("token", at)],
    )
    .await;
    assert_eq!(i, json!({"active": false}));
    // A token with a forged payload or MAC is not active.
    let (_, t2, _) = token(
        &s,
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let good = t2["access_token"].as_str().unwrap();
    let mut forged = good.to_string();
    forged.pop();
    forged.push(if good.ends_with('A') { 'B' } else { 'A' });
    let (_, i, _) = post_form(
        &s,
        "token/introspection",
        Some((id, secret)),
        &[("token", &forged)],
    )
    .await;
    assert_eq!(i, json!({"active": false}));
    // Another app cannot introspect or revoke it.
    let other = create_client(&s, json!({"app_type": "machine", "scope": "x"})).await;
    let o = (
        other["client_id"].as_str().unwrap(),
        other["client_secret"].as_str().unwrap(),
    );
    let (_, i, _) = post_form(&s, "token/introspection", Some(o), &[("token", good)]).await;
    assert_eq!(i, json!({"active": false}));
    post_form(&s, "token/revocation", Some(o), &[("token", good)]).await;
    let (_, i, _) = post_form(
        &s,
        "token/introspection",
        Some((id, secret)),
        &[("token", good)],
    )
    .await;
    assert_eq!(i["active"], true, "revocation by another app is ignored");
    // Unknown tokens: revocation still 200, introspection inactive.
    let (st, _, _) = post_form(
        &s,
        "token/revocation",
        Some((id, secret)),
        &[("token", "nope")],
    )
    .await;
    assert_eq!(st, 200);
    // A user app may not use client credentials.
    let c = create_client(&s, traditional(RP)).await;
    let (st, e, _) = token(
        &s,
        Some((
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
        )),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    s.stop().await;
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_returns_to_a_registered_uri() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "out@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "out@example.com", "openid").await;
    assert_eq!(whoami(&b, &s).await["active"], true);
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id_token_hint", t["id_token"].as_str().unwrap()),
            (
                "post_logout_redirect_uri",
                "https://rp.example.com/signed-out",
            ),
            ("state", "bye"),
        ])
        .finish();
    let r = b
        .get(&format!("{}/oidc/session/end?{q}", s.public), false)
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://rp.example.com/signed-out?state=bye");
    assert!(whoami(&b, &s).await.get("error").is_some(), "signed out");
    // Signed out already: no question, and without a redirect, Tessera's own page.
    let r = b
        .get(
            &format!("{}/oidc/session/end?client_id={cid}", s.public),
            false,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("signed out"));
    // Signed in, without a hint: a confirmation first, and a forged one is refused.
    code_flow(&b, &s, &c, "out@example.com", "openid").await;
    let end = format!("{}/oidc/session/end", s.public);
    let r = b.get(&format!("{end}?client_id={cid}"), false).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Do you want to sign out"), "{page}");
    assert!(page.contains("<h1>Sign out?</h1>"), "{page}");
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"");
    assert!(!csrf.is_empty(), "a CSRF field: {page}");
    assert!(page.contains("name=\"confirm\" value=\"yes\""), "{page}");
    // In Russian when the app asks for it.
    let r = b
        .get(&format!("{end}?client_id={cid}&ui_locales=ru"), false)
        .await;
    let ru = r.text().await.unwrap();
    assert!(
        ru.contains("<h1>Выйти из аккаунта?</h1>") && ru.contains("name=\"csrf_token\""),
        "{ru}"
    );
    let r = b
        .post_form(
            &end,
            &[
                ("client_id", cid),
                ("confirm", "yes"),
                ("csrf_token", "forged"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(whoami(&b, &s).await["active"], true, "still signed in");
    s.stop().await;
}

#[tokio::test]
async fn login_hint_prefills_the_identifier_and_ui_locales_reaches_the_login_flow() {
    let s = server(Backend::Sqlite, "").await;
    let c = create_client(&s, traditional(RP)).await;
    let b = Browser::default();
    let url = auth_url(
        &s,
        &[
            ("client_id", c["client_id"].as_str().unwrap()),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("login_hint", "hinted@example.com"),
            ("ui_locales", "zh-CN ru"),
        ],
    );
    let r = b.get(&url, false).await;
    let r = b.get(&location(&r), false).await;
    let flow = tessera_testkit::journey::flow_json(
        &b,
        &s,
        "login",
        &tessera_testkit::journey::flow_id_of(&location(&r)),
    )
    .await;
    let node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "identifier")
        .unwrap();
    assert_eq!(node["attributes"]["value"], "hinted@example.com");
    assert!(
        flow["request_url"]
            .as_str()
            .unwrap()
            .contains("ui_locales=zh-CN+ru"),
        "{}",
        flow["request_url"]
    );
    assert!(
        flow["return_to"]
            .as_str()
            .unwrap()
            .contains("/oidc/auth/resume?request=")
    );
    s.stop().await;
}

#[tokio::test]
async fn implicit_id_token_token_carries_an_access_token_with_at_hash() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "imp@example.com").await;
    let c = create_client(&s, json!({"client_name": "Implicit", "redirect_uris": [RP], "grant_types": ["implicit"], "skip_consent": true})).await;
    assert_eq!(c["response_types"], json!(["id_token", "id_token token"]));
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    let url = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "token id_token"),
            ("scope", "openid email"),
            ("nonce", "imp-n"),
            ("state", "imp-s"),
        ],
    );
    let (st, loc, _) = drive(&b, &s, &url, "imp@example.com", None).await;
    assert_eq!(st, 303);
    assert!(
        loc.starts_with(&format!("{RP}#")),
        "tokens only in the fragment: {loc}"
    );
    assert_eq!(param(&loc, "state").as_deref(), Some("imp-s"));
    assert_eq!(param(&loc, "token_type").as_deref(), Some("Bearer"));
    assert!(param(&loc, "expires_in").unwrap().parse::<i64>().is_ok());
    let at = param(&loc, "access_token").unwrap();
    let claims = verify(&s, &param(&loc, "id_token").unwrap(), cid).await;
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(claims["nonce"], "imp-n");
    use base64::Engine as _;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(at.as_bytes());
    assert_eq!(
        claims["at_hash"],
        json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]))
    );
    let info: Value = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "imp@example.com");
    // Implicit answers never go in a query string; a nonce is required.
    let r = b.get(&format!("{url}&response_mode=query"), false).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
    let r = b
        .get(
            &auth_url(
                &s,
                &[
                    ("client_id", cid),
                    ("redirect_uri", RP),
                    ("response_type", "id_token"),
                    ("scope", "openid"),
                    ("state", "x"),
                ],
            ),
            false,
        )
        .await;
    let loc = location(&r);
    assert!(
        loc.contains('#') && param(&loc, "error").as_deref() == Some("invalid_request"),
        "{loc}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_new_user_signs_up_from_the_login_page_and_lands_back_in_the_app() {
    let s = server(
        Backend::Sqlite,
        "selfservice:\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n",
    )
    .await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let b = Browser::default();
    let start = auth_url(
        &s,
        &[
            ("client_id", c["client_id"].as_str().unwrap()),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "new"),
        ],
    );
    let r = b.get(&start, false).await;
    let r = b.get(&location(&r), false).await;
    let page = b.get(&location(&r), false).await.text().await.unwrap();
    // The hosted login page's "Create an account" link keeps where the user is going.
    let signup = page
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .find(|h| h.contains("/self-service/registration/browser?return_to="))
        .unwrap_or_else(|| panic!("no sign-up link that keeps return_to in:\n{page}"))
        .replace("&amp;", "&");
    let signup = if signup.starts_with('/') {
        format!("{}{signup}", s.public)
    } else {
        signup
    };
    let r = b.get(&signup, false).await;
    let id = tessera_testkit::journey::flow_id_of(&location(&r));
    let flow = tessera_testkit::journey::flow_json(&b, &s, "registration", &id).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[
                ("csrf_token", &tessera_testkit::csrf_of(&flow)),
                ("method", "password"),
                ("traits.email", "newbie@example.com"),
                ("password", "correct-horse-battery"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let (st, loc, _) = drive(&b, &s, &location(&r), "x", None).await;
    assert_eq!(st, 303);
    assert!(
        loc.starts_with(RP) && param(&loc, "code").is_some(),
        "{loc}"
    );
    assert_eq!(param(&loc, "state").as_deref(), Some("new"));
    s.stop().await;
}

#[tokio::test]
async fn consent_page_is_the_hosted_page_in_the_apps_language() {
    let s = server(Backend::Sqlite, "").await;
    let c = create_client(&s, traditional(RP)).await;
    let cid = c["client_id"].as_str().unwrap();
    for (i, (tag, allow, deny)) in [
        ("en", "Allow", "Cancel"),
        ("zh-CN", "授权", "取消"),
        ("ru", "Разрешить", "Отмена"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("lang{i}@example.com");
        user(&s, &email).await;
        let b = Browser::default();
        let url = auth_url(
            &s,
            &[
                ("client_id", cid),
                ("redirect_uri", RP),
                ("response_type", "code"),
                ("scope", "openid email"),
                ("state", "st"),
                ("ui_locales", tag),
            ],
        );
        let (st, page_url, _) = drive(&b, &s, &url, &email, None).await;
        assert_eq!(st, 200);
        assert!(page_url.contains("/ui/consent?request="), "{page_url}");
        let r = b.get(&page_url, false).await;
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        // The answer is a 303 to the app, so the app's origin is an allowed form target.
        assert!(
            csp.contains("form-action 'self'") && csp.contains("https://rp.example.com"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("<html lang=\"{tag}\">")), "{page}");
        assert!(
            page.contains("Bookstore") && page.contains(&email),
            "{page}"
        );
        assert!(page.contains("name=\"request\" value=\""), "{page}");
        assert!(
            page.contains(&format!("value=\"accept\">{allow}<")),
            "{page}"
        );
        assert!(page.contains(&format!("value=\"deny\">{deny}<")), "{page}");
        assert!(
            page.contains("/ui/lang?set="),
            "the language switcher: {page}"
        );
        // A consent form without its CSRF token: the hosted error page, not JSON.
        let req = between(&page, "name=\"request\" value=\"", "\"");
        let r = b
            .post_form(
                &format!("{}/ui/consent", s.public),
                &[
                    ("request", req.as_str()),
                    ("decision", "accept"),
                    ("csrf_token", "forged"),
                ],
                false,
            )
            .await;
        let html = assert_error_page(r, 403, "data-reason=\"csrf\"").await;
        assert!(!html.contains("\"error\":"), "{html}");
    }
    s.stop().await;
}

#[tokio::test]
async fn op_error_page_in_russian_names_the_app_and_keeps_the_detail_in_english() {
    let s = server(Backend::Sqlite, "").await;
    let c = create_client(&s, traditional(RP)).await;
    let url = auth_url(
        &s,
        &[
            ("client_id", c["client_id"].as_str().unwrap()),
            ("redirect_uri", "https://evil.example.com/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("ui_locales", "ru"),
        ],
    );
    let r = Browser::default().get(&url, false).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"ru\">"), "{html}");
    assert!(html.contains("Приложение: Bookstore"), "{html}");
    assert!(
        html.contains("<h1>Не удаётся вернуться в приложение</h1>"),
        "{html}"
    );
    assert!(
        html.contains("<span lang=\"en\">The app “Bookstore” asked to send you back to"),
        "{html}"
    );
    assert!(html.contains("Код ошибки: invalid_request"), "{html}");
    // An unknown app, in Chinese by Accept-Language.
    let (_, html) = {
        let r = TestServer::client()
            .get(auth_url(
                &s,
                &[("client_id", "no-such-app"), ("response_type", "code")],
            ))
            .header("accept-language", "zh-CN,zh;q=0.9")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert!(
        html.contains("<html lang=\"zh-CN\">") && html.contains("<h1>未知的应用</h1>"),
        "{html}"
    );
    assert!(html.contains("no-such-app"), "{html}");
    s.stop().await;
}

/// Security review L1: an `id_token_hint` that names another session (here the attacker's own
/// id_token) does not sign the victim out without asking.
#[tokio::test]
async fn another_users_id_token_hint_does_not_end_the_session_silently() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "victim@example.com").await;
    user(&s, "attacker@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let victim = Browser::default();
    code_flow(&victim, &s, &c, "victim@example.com", "openid").await;
    let attacker = Browser::default();
    let t = code_flow(&attacker, &s, &c, "attacker@example.com", "openid").await;
    let hint = t["id_token"].as_str().unwrap();
    // The attacker's page sends the victim's browser here with the attacker's id_token.
    let r = victim
        .get(
            &format!("{}/oidc/session/end?id_token_hint={hint}", s.public),
            false,
        )
        .await;
    assert_eq!(r.status(), 200, "a question, not a sign-out");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("name=\"confirm\" value=\"yes\"")
    );
    assert_eq!(whoami(&victim, &s).await["active"], true, "still signed in");
    // The attacker's own hint ends the attacker's own session at once.
    let r = attacker
        .get(
            &format!("{}/oidc/session/end?id_token_hint={hint}", s.public),
            false,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(whoami(&attacker, &s).await.get("error").is_some());
}

each_backend!(a_deactivated_accounts_tokens_stop_working_at_once);
/// Security review L6: deactivating an account stops its access tokens at once, at userinfo
/// and at introspection, and its refresh tokens.
async fn a_deactivated_accounts_tokens_stop_working_at_once(backend: Backend) {
    let s = server(backend, "").await;
    let id = user(&s, "leaver@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "leaver@example.com", "openid offline_access").await;
    let at = t["access_token"].as_str().unwrap();
    let me = |at: String| {
        let url = format!("{}/oidc/me", s.public);
        async move {
            TestServer::client()
                .get(url)
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let introspect = |tok: String| {
        let url = format!("{}/oidc/token/introspection", s.public);
        async move {
            let v: Value = TestServer::client()
                .post(url)
                .basic_auth(cid, Some(secret))
                .form(&[("token", tok)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].clone()
        }
    };
    assert_eq!(me(at.to_string()).await, 200);
    assert_eq!(introspect(at.to_string()).await, json!(true));
    let r = TestServer::client()
        .patch(format!("{}/admin/identities/{id}", s.admin))
        .json(&json!([{"op": "replace", "path": "/state", "value": "inactive"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(at.to_string()).await, 401);
    assert_eq!(introspect(at.to_string()).await, json!(false));
    assert_eq!(
        introspect(t["refresh_token"].as_str().unwrap().to_string()).await,
        json!(false)
    );
    let (st, _, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(st, 400);
}
