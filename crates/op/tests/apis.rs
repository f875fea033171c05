//! APIs and their JWT access tokens (RFC 8707 resource indicators, RFC 9068) at the
//! `Provider`'s boundary: no HTTP, an in-memory SQLite store. The claim set, which API a token
//! is for, narrowing and its refusals, client credentials, introspection after revocation.
//! The wire and a real resource server are in `crates/tessera/tests/it/op_apis.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::crypto::Cipher;
use tessera_core::session::Session;
use tessera_op::authorize::raw_params;
use tessera_op::client::ClientAuth;
use tessera_op::{Authorize, ErrorCode, OpError, Provider, TokenResponse};
use tessera_store::Store;
use uuid::Uuid;

const RP: &str = "https://app.example.test/callback";
const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters-0123456789";
const BOOKS: &str = "https://books.example.test/api";
const MUSIC: &str = "https://music.example.test/api";

async fn provider() -> Provider {
    let yaml = "dsn: memory\nserve:\n  public:\n    base_url: https://id.example.test/\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n";
    let loaded = tessera_config::load_str("test.yml", yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let settings =
        tessera_config::resolve(&loaded, true, None).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::connect(&settings.dsn).await.expect("store");
    store.migrate_up().await.expect("migrate");
    let cipher = Arc::new(Cipher::new(&settings.secrets.cipher));
    let mappers = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        "/nonexistent".into(),
        vec![],
    ));
    Provider::new(Arc::new(settings), store, cipher, mappers, vec![])
}

async fn user(p: &Provider) -> Session {
    let now = tessera_core::timefmt::to_rfc3339(tessera_core::timefmt::now_ms());
    let id = Uuid::new_v4();
    let identity: tessera_core::identity::Identity = serde_json::from_value(json!({
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
    session
}

async fn api(p: &Provider, v: Value) -> Result<tessera_op::Api, tessera_core::Error> {
    p.create_api(serde_json::from_value(v).expect("api input"))
        .await
        .map(|(a, _)| a)
}

/// Two APIs, and a confidential app allowed both, with their scopes among its own.
async fn setup(p: &Provider, metadata: Value) -> (String, String) {
    api(
        p,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books", "write:books"]}),
    )
    .await
    .expect("books");
    api(
        p,
        json!({"identifier": MUSIC, "name": "Music", "scopes": ["read:music"]}),
    )
    .await
    .expect("music");
    let mut m = json!({
        "redirect_uris": [RP], "skip_consent": true,
        "scope": "openid email offline_access read:books write:books read:music",
        "resources": [BOOKS, MUSIC],
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), metadata.as_object()) {
        m.extend(extra.clone());
    }
    let (c, secret) = p
        .create_client(serde_json::from_value(m).expect("metadata"))
        .await
        .expect("create client");
    (c.client_id, secret.unwrap_or_default())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An authorization request with `extra` parameters (e.g. `resource`), to its answer.
async fn authorize(
    p: &Provider,
    client_id: &str,
    session: &Session,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let ch = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut params = pairs(&[
        ("client_id", client_id),
        ("redirect_uri", RP),
        ("response_type", "code"),
        (
            "scope",
            "openid email offline_access read:books write:books",
        ),
        ("state", "s1"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
    ]);
    params.extend(pairs(extra));
    match p
        .authorize(&raw_params(params.into_iter()), Some(session))
        .await
        .expect("authorize")
    {
        Authorize::Reply(r) => r.params,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn auth(client_id: &str, secret: &str) -> ClientAuth {
    ClientAuth {
        basic: None,
        form_id: Some(client_id.into()),
        form_secret: Some(secret.into()),
        ..Default::default()
    }
}

async fn token(
    p: &Provider,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> Result<TokenResponse, OpError> {
    p.token(
        &auth(client.0, client.1),
        &pairs(form).into_iter().collect(),
    )
    .await
}

async fn exchange(
    p: &Provider,
    client: (&str, &str),
    code: &str,
    resource: Option<&str>,
) -> Result<TokenResponse, OpError> {
    let mut f = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", RP),
        ("code_verifier", VERIFIER),
    ];
    if let Some(r) = resource {
        f.push(("resource", r));
    }
    token(p, client, &f).await
}

/// Verifies a JWT access token against the provider's JWKS as an API would: signature, `typ`,
/// `iss`, `aud`.
async fn verify(p: &Provider, jwt: &str, aud: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ {:?}", header.typ));
    }
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(p.jwks().await.expect("jwks")).expect("jwks shape");
    let jwk = jwks
        .find(header.kid.as_deref().unwrap_or_default())
        .ok_or("unknown kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&["https://id.example.test/oidc"]);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn code_with_resource_gives_a_jwt_with_the_rfc_9068_claims() {
    let p = provider().await;
    let (cid, secret) = setup(&p, json!({})).await;
    let s = user(&p).await;
    let reply = authorize(&p, &cid, &s, &[("resource", BOOKS)]).await;
    let code = param(&reply, "code").expect("code");
    let t = exchange(&p, (&cid, &secret), code, Some(BOOKS))
        .await
        .expect("exchange");
    let c = verify(&p, &t.access_token, BOOKS).await.expect("verifies");
    let sub = s.identity_id.to_string();
    assert_eq!(c["iss"], "https://id.example.test/oidc");
    assert_eq!(c["sub"], json!(sub), "sub as the app sees the user");
    assert_eq!(c["aud"], BOOKS);
    assert_eq!(c["client_id"], json!(cid));
    // Granted: openid email offline_access read:books write:books; the token carries the
    // API's scopes among them only.
    assert_eq!(c["scope"], "read:books write:books");
    assert_eq!(t.scope, "read:books write:books");
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert_eq!(t.expires_in, 3600);
    assert!(c["auth_time"].as_i64().is_some());
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    // The same token is refused for another audience.
    assert!(verify(&p, &t.access_token, MUSIC).await.is_err());
    // Introspection answers truthfully, and false once the grant is revoked.
    let i = p
        .introspect(&auth(&cid, &secret), &t.access_token)
        .await
        .expect("introspect");
    assert_eq!(i["active"], true);
    assert_eq!(i["aud"], BOOKS);
    p.revoke(&auth(&cid, &secret), t.refresh_token.as_deref().unwrap())
        .await
        .expect("revoke");
    let i = p
        .introspect(&auth(&cid, &secret), &t.access_token)
        .await
        .expect("introspect");
    assert_eq!(i["active"], false, "{i}");
}

#[tokio::test]
async fn refresh_narrows_to_a_resource_of_the_grant_and_never_widens() {
    let p = provider().await;
    let (cid, secret) = setup(&p, json!({})).await;
    let s = user(&p).await;
    let reply = authorize(&p, &cid, &s, &[("resource", BOOKS)]).await;
    let code = param(&reply, "code").expect("code");
    // No resource at the token endpoint: an opaque token for userinfo, as before.
    let t = exchange(&p, (&cid, &secret), code, None)
        .await
        .expect("exchange");
    assert!(verify(&p, &t.access_token, BOOKS).await.is_err());
    assert!(p.userinfo(&t.access_token).await.is_ok());
    let rt = t.refresh_token.expect("refresh token");
    let r = token(
        &p,
        (&cid, &secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", BOOKS),
            ("scope", "openid read:books"),
        ],
    )
    .await
    .expect("refresh for books");
    let c = verify(&p, &r.access_token, BOOKS).await.expect("verifies");
    assert_eq!(c["scope"], "read:books", "narrowed by the scope asked for");
    // Music is allowed to the app, but not part of this grant: refused.
    let e = token(
        &p,
        (&cid, &secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r.refresh_token.as_deref().unwrap()),
            ("resource", MUSIC),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidTarget, "{e}");
    // The refused request did not spend the refresh token: the app keeps its sign-in.
    let kept = token(
        &p,
        (&cid, &secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r.refresh_token.as_deref().unwrap()),
            ("resource", BOOKS),
        ],
    )
    .await
    .expect("the refresh token still works");
    verify(&p, &kept.access_token, BOOKS)
        .await
        .expect("verifies");
}

#[tokio::test]
async fn unknown_malformed_and_unallowed_resources_are_invalid_target() {
    let p = provider().await;
    let (cid, _) = setup(&p, json!({"resources": [BOOKS]})).await;
    let s = user(&p).await;
    for bad in [
        "https://nowhere.example.test/api",
        "https://books.example.test/api#frag",
        "not a uri",
        MUSIC,
    ] {
        let reply = authorize(&p, &cid, &s, &[("resource", bad)]).await;
        assert_eq!(
            param(&reply, "error"),
            Some("invalid_target"),
            "{bad}: {reply:?}"
        );
        assert_eq!(param(&reply, "state"), Some("s1"));
        assert!(param(&reply, "code").is_none());
    }
}

#[tokio::test]
async fn client_credentials_get_a_jwt_whose_subject_is_the_app() {
    let p = provider().await;
    api(
        &p,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books", "write:books"]}),
    )
    .await
    .expect("books");
    let (c, secret) = p
        .create_client(
            serde_json::from_value(
                json!({"app_type": "machine", "scope": "read:books", "resources": [BOOKS]}),
            )
            .expect("input"),
        )
        .await
        .expect("machine app");
    let (cid, secret) = (c.client_id, secret.unwrap_or_default());
    let t = token(
        &p,
        (&cid, &secret),
        &[("grant_type", "client_credentials"), ("resource", BOOKS)],
    )
    .await
    .expect("cc");
    let claims = verify(&p, &t.access_token, BOOKS).await.expect("verifies");
    assert_eq!(claims["sub"], json!(cid));
    assert_eq!(claims["client_id"], json!(cid));
    assert_eq!(claims["scope"], "read:books");
    assert!(claims.get("auth_time").is_none());
    // write:books is the API's but not the app's.
    let e = token(
        &p,
        (&cid, &secret),
        &[
            ("grant_type", "client_credentials"),
            ("resource", BOOKS),
            ("scope", "write:books"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
    // Introspected as active, then inactive once revoked.
    let a = auth(&cid, &secret);
    assert_eq!(
        p.introspect(&a, &t.access_token).await.expect("i")["active"],
        true
    );
    p.revoke(&a, &t.access_token).await.expect("revoke");
    assert_eq!(
        p.introspect(&a, &t.access_token).await.expect("i")["active"],
        false
    );
    // Without a resource and without a default API: the opaque token, as before.
    let t = token(&p, (&cid, &secret), &[("grant_type", "client_credentials")])
        .await
        .expect("cc");
    assert!(t.access_token.starts_with("tcc1."), "{}", t.access_token);
}

#[tokio::test]
async fn the_default_api_applies_when_no_resource_is_named_and_there_is_at_most_one() {
    let p = provider().await;
    api(
        &p,
        json!({"identifier": BOOKS, "name": "Books", "scopes": ["read:books"], "default": true}),
    )
    .await
    .expect("books");
    let e = api(
        &p,
        json!({"identifier": MUSIC, "name": "Music", "default": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, tessera_core::ErrorKind::Conflict, "{e:?}");
    let (c, secret) = p
        .create_client(
            serde_json::from_value(json!({"app_type": "machine", "scope": "read:books"}))
                .expect("input"),
        )
        .await
        .expect("machine app");
    let t = token(
        &p,
        (&c.client_id, secret.as_deref().unwrap_or_default()),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect("cc");
    let claims = verify(&p, &t.access_token, BOOKS)
        .await
        .expect("a JWT for the default API");
    assert_eq!(claims["scope"], "read:books");
}

#[tokio::test]
async fn api_metadata_is_validated() {
    let p = provider().await;
    for (input, needle) in [
        (
            json!({"identifier": "https://a.example.test/#x", "name": "A"}),
            "fragment",
        ),
        (
            json!({"identifier": "http://a.example.test/", "name": "A"}),
            "plain http",
        ),
        (
            json!({"identifier": format!("https://a.example.test/{}", "x".repeat(600)), "name": "A"}),
            "characters long",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": ""}),
            "`name`",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": "A", "scopes": ["read books"]}),
            "scope token",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": "A", "scopes": ["openid"]}),
            "OpenID Connect scope",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": "A", "access_token_ttl": 5}),
            "out of range",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": "A", "signing_alg": "none"}),
            "signing_alg",
        ),
        (
            json!({"identifier": "https://a.example.test/", "name": "A", "signing_alg": "ES256"}),
            "rotate",
        ),
    ] {
        let e = api(&p, input.clone()).await.unwrap_err();
        assert_eq!(e.kind, tessera_core::ErrorKind::BadRequest, "{input}");
        assert!(e.reason.contains(needle), "{input}: {}", e.reason);
    }
    // http on loopback is fine (development).
    api(
        &p,
        json!({"identifier": "http://127.0.0.1:8080/api", "name": "Local"}),
    )
    .await
    .expect("loopback http");
}

#[tokio::test]
async fn a_pushed_request_is_used_once_and_only_by_its_app() {
    let p = provider().await;
    let (cid, secret) = setup(&p, json!({"require_pushed_authorization_requests": true})).await;
    let s = user(&p).await;
    // Without PAR this app is refused, back at its redirect URI.
    let reply = authorize(&p, &cid, &s, &[]).await;
    assert_eq!(param(&reply, "error"), Some("invalid_request"), "{reply:?}");
    let ch = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let pushed_params = pairs(&[
        ("redirect_uri", RP),
        ("response_type", "code"),
        ("scope", "openid read:books"),
        ("state", "s2"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
        ("resource", BOOKS),
    ]);
    let pushed = p
        .push_request(
            &auth(&cid, &secret),
            &raw_params(pushed_params.clone().into_iter()),
        )
        .await
        .expect("pushed");
    assert_eq!(pushed.expires_in, 60);
    let use_it = |client_id: String| {
        raw_params(
            pairs(&[
                ("client_id", &client_id),
                ("request_uri", &pushed.request_uri),
            ])
            .into_iter(),
        )
    };
    let (other, _) = p
        .create_client(serde_json::from_value(json!({"redirect_uris": [RP]})).expect("input"))
        .await
        .expect("other app");
    // Another app's client_id: refused on a page, and the request is spent.
    match p
        .authorize(&use_it(other.client_id), Some(&s))
        .await
        .expect("authorize")
    {
        Authorize::Page(e) => assert!(e.message.contains("another app"), "{e:?}"),
        a => panic!("expected a page, got {a:?}"),
    }
    let again = p
        .push_request(&auth(&cid, &secret), &raw_params(pushed_params.into_iter()))
        .await
        .expect("pushed again");
    let first =
        raw_params(pairs(&[("client_id", &cid), ("request_uri", &again.request_uri)]).into_iter());
    match p.authorize(&first, Some(&s)).await.expect("authorize") {
        Authorize::Reply(r) => {
            assert_eq!(param(&r.params, "state"), Some("s2"));
            let code = param(&r.params, "code").expect("code");
            let t = exchange(&p, (&cid, &secret), code, Some(BOOKS))
                .await
                .expect("exchange");
            verify(&p, &t.access_token, BOOKS)
                .await
                .expect("the pushed resource holds");
        }
        a => panic!("expected a code, got {a:?}"),
    }
    match p.authorize(&first, Some(&s)).await.expect("authorize") {
        Authorize::Page(e) => assert!(e.message.contains("used already"), "{e:?}"),
        a => panic!("a request_uri works once, got {a:?}"),
    }
    // A wrong secret cannot push.
    let e = p
        .push_request(&auth(&cid, "wrong"), &raw_params(std::iter::empty()))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
}
