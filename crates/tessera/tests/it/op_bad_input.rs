//! Bad input to the OpenID Provider, each answered as RFC 6749 / OIDC Core say: errors about the
//! client or its redirect URI are shown to the user and never redirected; the rest go back to
//! the app with `state`; the token endpoint answers `{error, error_description}` with the right
//! status, and 401 `invalid_client` carries `WWW-Authenticate`.

use crate::op_common::*;
use serde_json::{Value, json};
use tessera_testkit::journey::{assert_error_page, location};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "https://rp.example.com/callback";

async fn setup(extra: &str) -> (TestServer, Value) {
    setup_on(Backend::Sqlite, extra).await
}

async fn setup_on(backend: Backend, extra: &str) -> (TestServer, Value) {
    let s = server(backend, extra).await;
    user(&s, "bad@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    (s, c)
}

#[tokio::test]
async fn unregistered_or_mismatched_redirect_uri_is_an_error_page_never_a_redirect() {
    let (s, c) = setup("").await;
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    for bad in [
        "https://evil.example.com/callback",
        "https://rp.example.com/callback/extra",
        "https://rp.example.com/callback?x=1",
        "http://rp.example.com/callback",
    ] {
        let r = b
            .get(
                &auth_url(
                    &s,
                    &[
                        ("client_id", cid),
                        ("redirect_uri", bad),
                        ("response_type", "code"),
                        ("scope", "openid"),
                        ("state", "s"),
                    ],
                ),
                false,
            )
            .await;
        assert_error_page(r, 400, "not one of its registered redirect URIs").await;
    }
    let r = b
        .get(
            &auth_url(
                &s,
                &[
                    ("client_id", "no-such-app"),
                    ("redirect_uri", RP),
                    ("response_type", "code"),
                ],
            ),
            false,
        )
        .await;
    assert_error_page(r, 400, "no-such-app").await;
    let r = b
        .get(
            &auth_url(&s, &[("redirect_uri", RP), ("response_type", "code")]),
            false,
        )
        .await;
    assert_error_page(r, 400, "client_id").await;
    // OpenID Connect requires `redirect_uri` even when the app has only one.
    let r = b
        .get(
            &auth_url(
                &s,
                &[
                    ("client_id", cid),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("state", "s"),
                ],
            ),
            false,
        )
        .await;
    assert_error_page(r, 400, "OpenID Connect requires").await;
    s.stop().await;
}

/// The error that went back to the app (query or fragment), with state.
fn app_error(loc: &str) -> String {
    assert!(loc.starts_with(RP), "{loc}");
    assert_eq!(param(loc, "state").as_deref(), Some("s"), "{loc}");
    param(loc, "error").unwrap_or_default()
}

#[tokio::test]
async fn unsupported_response_type_response_mode_and_pkce_problems_go_back_to_the_app() {
    let (s, c) = setup("").await;
    let cid = c["client_id"].as_str().unwrap();
    let spa = create_client(
        &s,
        json!({"client_name": "SPA", "app_type": "spa", "redirect_uris": [RP]}),
    )
    .await;
    let spa_id = spa["client_id"].as_str().unwrap();
    let b = Browser::default();
    let p = pkce();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("client_id", cid), ("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("client_id", cid), ("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "id_token"),
                ("nonce", "n"),
            ],
            "unauthorized_client",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("response_mode", "web_message"),
            ],
            "invalid_request",
        ),
        (
            vec![("client_id", spa_id), ("response_type", "code")],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", spa_id),
                ("response_type", "code"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("code_challenge", &p.challenge),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("scope", "openid admin"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("prompt", "none login"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("max_age", "soon"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("request_uri", "https://app.example/request.jwt"),
            ],
            "request_uri_not_supported",
        ),
        (
            vec![
                ("client_id", cid),
                ("response_type", "code"),
                ("prompt", "none"),
            ],
            "login_required",
        ),
    ];
    for (mut q, want) in cases {
        q.push(("redirect_uri", RP));
        q.push(("state", "s"));
        if !q.iter().any(|(k, _)| *k == "scope") {
            q.push(("scope", "openid"));
        }
        let r = b.get(&auth_url(&s, &q), false).await;
        assert_eq!(r.status(), 303, "{q:?}");
        let loc = location(&r);
        assert_eq!(app_error(&loc), want, "{q:?} → {loc}");
        assert!(param(&loc, "error_description").is_some_and(|d| !d.is_empty()));
        assert_eq!(param(&loc, "iss"), Some(format!("{}/oidc", s.public)));
    }
    // A repeated parameter is refused before anything else.
    let r = b
        .get(
            &format!(
                "{}&client_id={cid}",
                auth_url(
                    &s,
                    &[
                        ("client_id", cid),
                        ("redirect_uri", RP),
                        ("response_type", "code")
                    ]
                )
            ),
            false,
        )
        .await;
    assert_error_page(r, 400, "repeated").await;
    s.stop().await;
}

each_backend!(a_reused_code_is_refused_and_the_tokens_it_gave_are_revoked);
async fn a_reused_code_is_refused_and_the_tokens_it_gave_are_revoked(backend: Backend) {
    let (s, c) = setup_on(backend, "").await;
    let cid = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    let p = pkce();
    let (_, loc, _) = drive(
        &b,
        &s,
        &auth_url(
            &s,
            &[
                ("client_id", cid),
                ("redirect_uri", RP),
                ("response_type", "code"),
                ("scope", "openid offline_access"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
        "bad@example.com",
        None,
    )
    .await;
    let code = param(&loc, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", RP),
        ("code_verifier", p.verifier.as_str()),
    ];
    // Two redemptions racing: at most one wins, and (security review L2) whatever the
    // winner got is revoked with the rest of the grant.
    let (a, b2) = tokio::join!(
        token(&s, Some((cid, secret)), &form),
        token(&s, Some((cid, secret)), &form)
    );
    let mut statuses = [a.0, b2.0];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 400] || statuses == [400, 400],
        "{backend:?}: {} {}",
        a.1,
        b2.1
    );
    if statuses == [400, 400] {
        // The reuse was seen before the winner stored its tokens: nothing was issued.
        s.stop().await;
        return;
    }
    let t = if a.0 == 200 { a.1 } else { b2.1 };
    let (st, e, _) = token(&s, Some((cid, secret)), &form).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let r = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the access token from the reused code is revoked"
    );
    let (st, e, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "and so is the refresh token"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_expired_code_a_wrong_verifier_and_a_wrong_redirect_uri_are_invalid_grant() {
    let (s, c) =
        setup("oidc_provider:\n  signing_alg: ES256\n  lifespans:\n    authorization_code: 1ms\n")
            .await;
    let cid = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    let p = pkce();
    let start = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let (_, loc, _) = drive(&b, &s, &start, "bad@example.com", None).await;
    let code = param(&loc, "code").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (st, e, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert!(
        e["error_description"].as_str().unwrap().contains("expired"),
        "{e}"
    );
    s.stop().await;

    let (s, c) = setup("").await;
    let cid = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    for (redirect, verifier) in [
        (RP, "x".repeat(43)),
        ("https://rp.example.com/other", String::new()),
    ] {
        let (_, loc, _) = drive(
            &b,
            &s,
            &auth_url(
                &s,
                &[
                    ("client_id", cid),
                    ("redirect_uri", RP),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("code_challenge", &p.challenge),
                    ("code_challenge_method", "S256"),
                ],
            ),
            "bad@example.com",
            None,
        )
        .await;
        let code = param(&loc, "code").unwrap();
        let v = if verifier.is_empty() {
            p.verifier.clone()
        } else {
            verifier
        };
        let (st, e, _) = token(
            &s,
            Some((cid, secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &v),
            ],
        )
        .await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some("invalid_grant")),
            "{e}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn wrong_client_credentials_are_401_invalid_client_with_www_authenticate() {
    let (s, c) = setup("").await;
    let cid = c["client_id"].as_str().unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", RP),
    ];
    for basic in [Some((cid, "wrong-secret")), Some(("no-such-app", "x"))] {
        let (st, e, h) = token(&s, basic, &form).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (401, Some("invalid_client")),
            "{e}"
        );
        assert!(
            h["www-authenticate"].to_str().unwrap().starts_with("Basic"),
            "{h:?}"
        );
    }
    let (st, e, _) = token(
        &s,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", cid),
            ("client_secret", "wrong"),
            ("code", "x"),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")));
    let (st, e, _) = token(
        &s,
        None,
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")));
    // Other token-endpoint mistakes.
    let secret = c["client_secret"].as_str().unwrap();
    let (st, e, _) = token(&s, Some((cid, secret)), &[("code", "x")]).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_request")));
    let (st, e, _) = token(&s, Some((cid, secret)), &[("grant_type", "password")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (st, e, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", "not-a-code"),
            ("redirect_uri", RP),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = TestServer::client()
        .post(format!("{}/oidc/token", s.public))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    s.stop().await;
}

#[tokio::test]
async fn an_unregistered_post_logout_redirect_uri_is_refused_without_redirecting() {
    let (s, c) = setup("").await;
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    for q in [
        format!("client_id={cid}&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2F"),
        "post_logout_redirect_uri=https%3A%2F%2Frp.example.com%2Fsigned-out".to_string(),
        "id_token_hint=not.a.jwt&post_logout_redirect_uri=https%3A%2F%2Frp.example.com%2Fsigned-out".to_string(),
    ] {
        let r = b.get(&format!("{}/oidc/session/end?{q}", s.public), false).await;
        assert_error_page(r, 400, "invalid_request").await;
    }
    s.stop().await;
}

each_backend!(racing_refresh_tokens_leave_no_live_token_behind);
/// Security review L2: two requests racing with the same refresh token. One may win the
/// rotation, the other sees the reuse and revokes the grant; the winner's new tokens must not
/// survive that (they did in 10 of 10 races). Several races, on both backends.
async fn racing_refresh_tokens_leave_no_live_token_behind(backend: Backend) {
    let s = server(backend, "").await;
    user(&s, "race@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let b = Browser::default();
    for round in 0..5 {
        let t = code_flow(&b, &s, &c, "race@example.com", "openid offline_access").await;
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ];
        let (x, y) = tokio::join!(
            token(&s, Some((cid, secret)), &form),
            token(&s, Some((cid, secret)), &form)
        );
        assert!(
            !(x.0 == 200 && y.0 == 200),
            "{backend:?} round {round}: both won"
        );
        for (status, body, _) in [x, y] {
            if status != 200 {
                continue;
            }
            let r = TestServer::client()
                .get(format!("{}/oidc/me", s.public))
                .bearer_auth(body["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                401,
                "{backend:?} round {round}: the winner's access token lives"
            );
            let (st, _, _) = token(
                &s,
                Some((cid, secret)),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", body["refresh_token"].as_str().unwrap()),
                ],
            )
            .await;
            assert_eq!(
                st, 400,
                "{backend:?} round {round}: the winner's refresh token lives"
            );
        }
    }
    s.stop().await;
}
