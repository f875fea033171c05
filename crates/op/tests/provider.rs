//! `tessera_op::Provider` at its own boundary: no HTTP, an in-memory SQLite store. The rules of
//! the protocol (PKCE, single-use codes, refresh rotation and reuse detection, subjects, signed
//! id_tokens) are checked here; the e2e suites in `crates/tessera/tests/op_*.rs` check the wire.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::crypto::Cipher;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_op::authorize::raw_params;
use tessera_op::client::ClientAuth;
use tessera_op::{Authorize, ErrorCode, OpError, Provider, TokenResponse};
use tessera_store::Store;
use uuid::Uuid;

const RP: &str = "https://app.example.test/callback";
const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters-0123456789";

async fn provider(extra_yaml: &str) -> Provider {
    let yaml = format!(
        "dsn: memory\nserve:\n  public:\n    base_url: https://id.example.test/\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n{extra_yaml}"
    );
    let loaded = tessera_config::load_str("test.yml", &yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let settings =
        tessera_config::resolve(&loaded, true, None).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::connect(&settings.dsn).await.expect("store");
    store.migrate_up().await.expect("migrate");
    let cipher = Arc::new(Cipher::new(&settings.secrets.cipher));
    // No app here has a claims mapper, so no worker is ever started.
    let mappers = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        "/nonexistent".into(),
        vec![],
    ));
    Provider::new(Arc::new(settings), store, cipher, mappers, vec![])
}

/// An active identity in the store and a fresh session of it.
async fn user(p: &Provider) -> (Identity, Session) {
    let now = tessera_core::timefmt::to_rfc3339(tessera_core::timefmt::now_ms());
    let id = Uuid::new_v4();
    let identity: Identity = serde_json::from_value(json!({
        "id": id, "schema_id": "default", "state": "active", "state_changed_at": now,
        "traits": {"email": format!("{id}@example.test")},
        "verifiable_addresses": [], "recovery_addresses": [],
        "metadata_public": null, "metadata_admin": null,
        "created_at": now, "updated_at": now, "organization_id": null,
    }))
    .expect("identity");
    p.store.insert_identity(&identity).await.expect("insert");
    let mut session: Session = serde_json::from_value(json!({
        "id": Uuid::new_v4(), "active": true, "expires_at": "2099-01-01T00:00:00Z",
        "authenticated_at": now, "authenticator_assurance_level": "aal1",
        "authentication_methods": [], "issued_at": now, "devices": [],
    }))
    .expect("session");
    session.identity_id = id;
    (identity, session)
}

/// Registers an app (consent skipped) and returns its id and secret.
async fn app(p: &Provider, metadata: Value) -> (String, Option<String>) {
    let mut m = json!({"redirect_uris": [RP], "skip_consent": true});
    if let (Some(m), Some(extra)) = (m.as_object_mut(), metadata.as_object()) {
        m.extend(extra.clone());
    }
    let (c, secret) = p
        .create_client(serde_json::from_value(m).expect("metadata"))
        .await
        .expect("create client");
    (c.client_id, secret)
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Runs an authorization request to its answer and returns the code.
async fn code(p: &Provider, client_id: &str, session: &Session, scope: &str) -> String {
    let ch = challenge(VERIFIER);
    let raw = raw_params(
        [
            ("client_id", client_id),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "s1"),
            ("code_challenge", &ch),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    match p.authorize(&raw, Some(session)).await.expect("authorize") {
        Authorize::Reply(r) => {
            assert!(r.params.contains(&("state".into(), "s1".into())));
            r.params
                .into_iter()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v)
                .expect("a code")
        }
        other => panic!("expected a reply with a code, got {other:?}"),
    }
}

fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn auth(client_id: &str, secret: Option<&str>) -> ClientAuth {
    ClientAuth {
        basic: None,
        form_id: Some(client_id.into()),
        form_secret: secret.map(str::to_string),
        ..Default::default()
    }
}

async fn exchange(
    p: &Provider,
    client_id: &str,
    secret: Option<&str>,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, OpError> {
    p.token(
        &auth(client_id, secret),
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", RP),
            ("code_verifier", verifier),
        ]),
    )
    .await
}

async fn refresh(
    p: &Provider,
    client_id: &str,
    secret: Option<&str>,
    rt: &str,
) -> Result<TokenResponse, OpError> {
    p.token(
        &auth(client_id, secret),
        &form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]),
    )
    .await
}

/// Verifies an id_token against the published JWKS with jsonwebtoken, as an app would.
async fn verify(p: &Provider, token: &str, client_id: &str) -> (jsonwebtoken::Algorithm, Value) {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(p.jwks().await.expect("jwks")).expect("JWKS shape");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[&p.issuer]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("signature and claims verify")
        .claims;
    (header.alg, claims)
}

#[tokio::test]
async fn code_exchange_checks_pkce_and_signs_rs256_by_default() {
    let p = provider("").await;
    let (_, session) = user(&p).await;
    let (id, secret) = app(&p, json!({})).await;
    let secret = secret.as_deref();

    let c = code(&p, &id, &session, "openid email").await;
    let wrong = exchange(&p, &id, secret, &c, &VERIFIER.replace('a', "b")).await;
    assert_eq!(wrong.map(|_| ()).unwrap_err().code, ErrorCode::InvalidGrant);

    // The code was spent by the failed attempt: a code is tried once.
    let c = code(&p, &id, &session, "openid email").await;
    let t = exchange(&p, &id, secret, &c, VERIFIER)
        .await
        .expect("tokens");
    let (alg, claims) = verify(&p, t.id_token.as_deref().expect("id_token"), &id).await;
    assert_eq!(alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(claims["sub"], json!(session.identity_id.to_string()));
    assert_eq!(claims["sid"], json!(session.id.to_string()));
    assert!(claims["at_hash"].is_string());
    assert_eq!(p.jwks().await.expect("jwks")["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn es256_keys_sign_id_tokens_that_verify_against_the_jwks() {
    let p = provider("oidc_provider:\n  signing_alg: ES256\n").await;
    let (_, session) = user(&p).await;
    let (id, _) = app(&p, json!({"app_type": "spa"})).await;
    let c = code(&p, &id, &session, "openid").await;
    let t = exchange(&p, &id, None, &c, VERIFIER).await.expect("tokens");
    let (alg, claims) = verify(&p, t.id_token.as_deref().expect("id_token"), &id).await;
    assert_eq!(alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["aud"], json!(id));
    // And the provider recognises its own token (an `id_token_hint`).
    let own = p
        .verify_own(t.id_token.as_deref().unwrap_or_default())
        .await
        .expect("verify_own");
    assert_eq!(own.map(|c| c["sub"].clone()), Some(claims["sub"].clone()));
}

#[tokio::test]
async fn a_reused_code_revokes_the_tokens_it_gave() {
    let p = provider("").await;
    let (_, session) = user(&p).await;
    let (id, secret) = app(&p, json!({})).await;
    let secret = secret.as_deref();
    let c = code(&p, &id, &session, "openid").await;
    let t = exchange(&p, &id, secret, &c, VERIFIER)
        .await
        .expect("tokens");
    assert!(p.userinfo(&t.access_token).await.is_ok());

    let again = exchange(&p, &id, secret, &c, VERIFIER).await.map(|_| ());
    let e = again.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(e.description.contains("used already"), "{e}");
    let e = p.userinfo(&t.access_token).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidToken);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_family() {
    let p = provider("").await;
    let (_, session) = user(&p).await;
    let (id, secret) = app(&p, json!({})).await;
    let secret = secret.as_deref();
    let c = code(&p, &id, &session, "openid offline_access").await;
    let t1 = exchange(&p, &id, secret, &c, VERIFIER)
        .await
        .expect("tokens");
    let rt1 = t1
        .refresh_token
        .expect("a refresh token for offline_access");

    let t2 = refresh(&p, &id, secret, &rt1).await.expect("rotation");
    let rt2 = t2.refresh_token.expect("a new refresh token");
    assert_ne!(rt1, rt2);
    assert!(t2.id_token.is_some());

    let reuse = refresh(&p, &id, secret, &rt1)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(reuse.code, ErrorCode::InvalidGrant);
    assert!(reuse.description.contains("used already"), "{reuse}");
    // The whole family is gone: the rotated token and the access tokens.
    let e = refresh(&p, &id, secret, &rt2)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.description, "The refresh token has been revoked.");
    assert_eq!(
        p.userinfo(&t2.access_token).await.unwrap_err().code,
        ErrorCode::InvalidToken
    );
    // Another app cannot use this app's refresh token.
    let (other, other_secret) = app(&p, json!({})).await;
    let e = refresh(&p, &other, other_secret.as_deref(), &rt2)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.description, "The refresh token is not valid.");
}

#[tokio::test]
async fn subjects_are_stable_per_app_public_and_pairwise() {
    let p = provider("").await;
    let (alice, _) = user(&p).await;
    let (bob, _) = user(&p).await;
    let (public, _) = app(&p, json!({})).await;
    let (pw1, _) = app(&p, json!({"subject": "pairwise"})).await;
    // Pairwise subjects are per sector (the redirect URIs' host, OIDC Core §8.1).
    let (pw_same_host, _) = app(&p, json!({"subject": "pairwise"})).await;
    let (pw2, _) = app(
        &p,
        json!({"subject": "pairwise", "redirect_uris": ["https://other.example.test/cb"]}),
    )
    .await;
    let sub = |client_id: String, who: Identity| {
        let p = p.clone();
        async move {
            let c = p.client(&client_id).await.expect("load").expect("app");
            p.subject_for(&c, &who)
                .await
                .expect("subject")
                .expect("has a subject")
        }
    };
    assert_eq!(
        sub(public.clone(), alice.clone()).await,
        alice.id.to_string()
    );
    let a1 = sub(pw1.clone(), alice.clone()).await;
    assert_eq!(a1, sub(pw1.clone(), alice.clone()).await, "stable");
    assert_ne!(a1, alice.id.to_string());
    assert_eq!(a1, sub(pw_same_host, alice.clone()).await, "per sector");
    assert_ne!(a1, sub(pw2.clone(), alice.clone()).await, "per sector");
    assert_ne!(a1, sub(pw1.clone(), bob.clone()).await, "per user");
}

#[tokio::test]
async fn client_credentials_tokens_introspect_as_the_app() {
    let p = provider("").await;
    let (id, secret) = app(
        &p,
        json!({"app_type": "machine", "redirect_uris": [], "scope": "reports:read"}),
    )
    .await;
    let secret = secret.as_deref();
    let t = p
        .token(
            &auth(&id, secret),
            &form(&[("grant_type", "client_credentials")]),
        )
        .await
        .expect("token");
    assert!(t.refresh_token.is_none() && t.id_token.is_none());
    assert_eq!(t.scope, "reports:read");
    let info = p
        .introspect(&auth(&id, secret), &t.access_token)
        .await
        .expect("introspect");
    assert_eq!(info["active"], json!(true));
    assert_eq!(info["client_id"], json!(id));
    // A wrong secret is `invalid_client`.
    let e = p
        .token(
            &auth(&id, Some("wrong")),
            &form(&[("grant_type", "client_credentials")]),
        )
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
}

#[tokio::test]
async fn unknown_grant_types_are_refused_before_anything_else() {
    let p = provider("").await;
    let (id, secret) = app(&p, json!({"app_type": "machine", "redirect_uris": []})).await;
    for g in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let e = p
            .token(&auth(&id, secret.as_deref()), &form(&[("grant_type", g)]))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType, "{g}");
        assert_eq!(
            e.description,
            format!(
                "grant_type `{g}` is not supported: use authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code or urn:ietf:params:oauth:grant-type:token-exchange."
            )
        );
    }
    // A known grant the app is not registered for is `unauthorized_client`, not a fallback.
    let e = p
        .token(
            &auth(&id, secret.as_deref()),
            &form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
        )
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnauthorizedClient);
}

/// One logout decision on `p` for a browser with `session`.
async fn logout(
    p: &Provider,
    params: &HashMap<String, String>,
    session: &Session,
    posted: bool,
    csrf_cookie: Option<&str>,
) -> tessera_op::Logout {
    p.logout(tessera_op::LogoutRequest {
        params,
        session: Some(session),
        posted,
        csrf_cookie,
    })
    .await
    .expect("decided")
}

/// RP-initiated logout (`Provider::logout`): without the app naming this very session, the
/// user is asked first; a confirmation counts only with this browser's CSRF token; a valid
/// `id_token_hint` for the session ends it at once.
#[tokio::test]
async fn logout_asks_unless_hinted_and_refuses_a_forged_confirmation() {
    use tessera_op::Logout;
    let p = provider("").await;
    let (_, session) = user(&p).await;
    p.store
        .insert_session(&session, "hash-of-a-token")
        .await
        .expect("session");
    let (id, secret) = app(&p, json!({})).await;
    let cookie = tessera_core::crypto::random_token();
    let active = |p: &Provider, s: uuid::Uuid| {
        let store = p.store.clone();
        async move { store.get_session(s).await.expect("session").active }
    };

    // A plain link (anyone can send one): asked, nothing ended, the fields carried.
    let params = form(&[("client_id", &id), ("state", "st"), ("ui_locales", "ru")]);
    let asked = logout(&p, &params, &session, false, Some(cookie.as_str())).await;
    assert_eq!(
        asked,
        Logout::Confirm {
            redirect: None,
            fields: vec![
                ("client_id".into(), id.clone()),
                ("state".into(), "st".into()),
                ("ui_locales".into(), "ru".into()),
            ],
        }
    );
    assert!(active(&p, session.id).await);

    // The attacker's confirmation: a token masked from another cookie, or none.
    for forged in [
        tessera_core::crypto::mask_csrf(&tessera_core::crypto::random_token()),
        String::new(),
    ] {
        let params = form(&[("confirm", "yes"), ("csrf_token", &forged)]);
        let refused = logout(&p, &params, &session, true, Some(cookie.as_str())).await;
        assert_eq!(refused, Logout::CsrfRefused);
        assert!(
            active(&p, session.id).await,
            "a forged confirmation ends nothing"
        );
    }
    // A confirmation by GET is no confirmation: asked again.
    let params = form(&[
        ("confirm", "yes"),
        ("csrf_token", &tessera_core::crypto::mask_csrf(&cookie)),
    ]);
    let by_get = logout(&p, &params, &session, false, Some(cookie.as_str())).await;
    assert!(matches!(by_get, Logout::Confirm { .. }), "{by_get:?}");
    assert!(active(&p, session.id).await);

    // The genuine confirmation ends the session.
    let done = logout(&p, &params, &session, true, Some(cookie.as_str())).await;
    assert_eq!(
        done,
        Logout::Done {
            redirect: None,
            frontchannel: vec![]
        }
    );
    assert!(!active(&p, session.id).await);

    // An id_token naming the session ends it without asking.
    let (_, second) = user(&p).await;
    p.store
        .insert_session(&second, "hash-of-another-token")
        .await
        .expect("session");
    let c = code(&p, &id, &second, "openid").await;
    let t = exchange(&p, &id, secret.as_deref(), &c, VERIFIER)
        .await
        .expect("tokens");
    let hint = t.id_token.expect("id_token");
    let params = form(&[("id_token_hint", &hint)]);
    let hinted = logout(&p, &params, &second, false, None).await;
    assert_eq!(
        hinted,
        Logout::Done {
            redirect: None,
            frontchannel: vec![]
        }
    );
    assert!(!active(&p, second.id).await);
}

/// Token exchange (RFC 8693) refuses an expired subject token and a revoked one, with
/// `invalid_request` (§2.2.2), and takes an opaque token issued to the exchanging app itself.
#[tokio::test]
async fn token_exchange_refuses_expired_and_revoked_subject_tokens() {
    const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
    let p = provider("").await;
    let (identity, _) = user(&p).await;
    p.create_api(
        serde_json::from_value(json!({"identifier": "https://api.example.test", "name": "API", "scopes": ["read"], "default": true}))
            .expect("api"),
    )
    .await
    .expect("create api");
    let (id, secret) = app(
        &p,
        json!({"grant_types": ["authorization_code", TE], "scope": "openid read"}),
    )
    .await;
    let now = tessera_core::timefmt::now_ms();
    let row = |token: &str, expires_at: i64| tessera_store::op::GrantRow {
        hash: tessera_core::crypto::token_hash(token),
        kind: "access".into(),
        grant_id: Uuid::new_v4().to_string(),
        client_id: id.clone(),
        identity_id: Some(identity.id),
        data: json!({"scope": "openid read", "sub": identity.id.to_string()}),
        used: false,
        revoked: false,
        created_at: now - 7_200_000,
        expires_at,
    };
    p.store
        .op_insert_tokens(&[row("expired-token", now - 1000)])
        .await
        .expect("insert");
    p.store
        .op_insert_tokens(&[row("live-token", now + 600_000)])
        .await
        .expect("insert");
    let ask = |t: &'static str| {
        form(&[
            ("grant_type", TE),
            ("subject_token", t),
            ("subject_token_type", AT),
        ])
    };
    let e = p
        .token(&auth(&id, secret.as_deref()), &ask("expired-token"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.description, "`subject_token` has expired.");
    // The default API is the target when none is named; its scopes narrow the token.
    let t = p
        .token(&auth(&id, secret.as_deref()), &ask("live-token"))
        .await
        .expect("a live token of the app's own is exchanged");
    assert_eq!(t.scope, "read");
    assert_eq!(
        t.issued_token_type,
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    p.store
        .op_revoke_token(&tessera_core::crypto::token_hash("live-token"))
        .await
        .expect("revoke");
    let e = p
        .token(&auth(&id, secret.as_deref()), &ask("live-token"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.description, "`subject_token` was revoked.");
}
