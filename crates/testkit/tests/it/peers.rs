//! The oidc-provider peer works as the generic OIDC upstream the social sign-in tests need:
//! discovery, a code + PKCE round trip done by hand, the RFC 9207 `iss`, the `claims`
//! parameter, userinfo, and a denied sign-in. Needs `bash scripts/test-deps.sh` first.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tessera_testkit::peers::OidcProviderPeer;

// Nothing listens there: the test reads the callback URL instead of following it.
const REDIRECT: &str = "http://127.0.0.1:9/self-service/methods/oidc/callback/generic";
const CLIENT: &str = "tessera";
const SECRET: &str = "tessera-secret-0123456789";

fn config() -> Value {
    json!({
        "clients": [
            {"client_id": CLIENT, "client_secret": SECRET, "redirect_uris": [REDIRECT]},
            {"client_id": "post-client", "client_secret": SECRET, "redirect_uris": [REDIRECT],
             "token_endpoint_auth_method": "client_secret_post"}
        ],
        "accounts": {
            "alice": {"email": "alice@example.com", "email_verified": true, "name": "Alice Liddell",
                      "given_name": "Alice", "groups": ["admins", "ops"]},
            "bob": {"email": "bob@example.com", "email_verified": false}
        }
    })
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce(seed: &str) -> Pkce {
    let verifier = format!("{seed}-verifier-{}", "x".repeat(40));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

async fn discovery(peer: &OidcProviderPeer) -> Value {
    reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        peer.issuer()
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("discovery JSON")
}

fn authorize_url(d: &Value, client_id: &str, p: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(d["authorization_endpoint"].as_str().expect("endpoint"))
        .expect("authorization_endpoint");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email profile")
        .append_pair("state", "state-123")
        .append_pair("nonce", "nonce-456")
        .append_pair("code_challenge", &p.challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url.into()
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

async fn verify_id_token(d: &Value, id_token: &str, client_id: &str) -> Value {
    let jwks: JwkSet = reqwest::get(d["jwks_uri"].as_str().expect("jwks_uri"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JWKS JSON");
    let header = jsonwebtoken::decode_header(id_token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[d["issuer"].as_str().expect("issuer")]);
    v.set_audience(&[client_id]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).expect("JWK"), &v)
        .expect("a valid id_token")
        .claims
}

#[tokio::test]
async fn oidc_provider_code_pkce_round_trip() {
    let peer = OidcProviderPeer::start(config()).await;
    assert!(peer.issuer().starts_with("http://127.0.0.1:"));
    let d = discovery(&peer).await;
    assert_eq!(d["issuer"], peer.issuer());
    assert!(
        d["code_challenge_methods_supported"]
            .as_array()
            .expect("array")
            .contains(&json!("S256")),
        "{d}"
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["claims_parameter_supported"], true);

    let browser = OidcProviderPeer::browser_client();
    let p = pkce("one");
    let callback = peer
        .login(&browser, &authorize_url(&d, CLIENT, &p, &[]), "alice")
        .await;
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    let q = query(&callback);
    assert_eq!(q["state"], "state-123");
    assert_eq!(q["iss"], peer.issuer(), "RFC 9207 iss");
    let code = q.get("code").expect("code");

    let http = reqwest::Client::new();
    let token_endpoint = d["token_endpoint"].as_str().expect("token_endpoint");
    // PKCE is required: the right code without the verifier is refused.
    let resp = http
        .post(token_endpoint)
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("JSON");
    assert_eq!(err["error"], "invalid_grant", "{err}");

    let callback = peer
        .login(&browser, &authorize_url(&d, CLIENT, &p, &[]), "alice")
        .await;
    let code = query(&callback)["code"].clone();
    let resp = http
        .post(token_endpoint)
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 200, "stderr: {}", peer.stderr());
    let tokens: Value = resp.json().await.expect("JSON");
    assert_eq!(tokens["token_type"], "Bearer");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let claims = verify_id_token(&d, id_token, CLIENT).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], "nonce-456");
    // oidc-provider's default (conformIdTokenClaims): scope claims come from userinfo only.
    assert!(claims.get("email").is_none(), "{claims}");

    let access_token = tokens["access_token"].as_str().expect("access_token");
    let info: Value = http
        .get(d["userinfo_endpoint"].as_str().expect("userinfo_endpoint"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("JSON");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["name"], "Alice Liddell");
    // A non-standard claim is released with `openid`.
    assert_eq!(info["groups"], json!(["admins", "ops"]));

    // Same browser, same client, more claims: the upstream session is reused, the extra
    // consent granted without a form, and the `claims` parameter puts email in the id_token.
    let p2 = pkce("two");
    let claims_param = json!({"id_token": {"email": null, "groups": null}}).to_string();
    let callback = peer
        .login(
            &browser,
            &authorize_url(&d, CLIENT, &p2, &[("claims", &claims_param)]),
            "alice",
        )
        .await;
    let code = query(&callback)["code"].clone();
    let tokens: Value = http
        .post(token_endpoint)
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p2.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    let claims = verify_id_token(&d, tokens["id_token"].as_str().expect("id_token"), CLIENT).await;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], json!(["admins", "ops"]));
}

#[tokio::test]
async fn oidc_provider_client_secret_post_and_id_token_claims() {
    let mut cfg = config();
    cfg["conform_id_token_claims"] = json!(false);
    let peer = OidcProviderPeer::start(cfg).await;
    let d = discovery(&peer).await;
    let p = pkce("post");
    let callback = peer
        .login(
            &OidcProviderPeer::browser_client(),
            &authorize_url(&d, "post-client", &p, &[]),
            "bob",
        )
        .await;
    let code = query(&callback)["code"].clone();
    let resp = reqwest::Client::new()
        .post(d["token_endpoint"].as_str().expect("token_endpoint"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", "post-client"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 200, "stderr: {}", peer.stderr());
    let tokens: Value = resp.json().await.expect("JSON");
    let claims = verify_id_token(
        &d,
        tokens["id_token"].as_str().expect("id_token"),
        "post-client",
    )
    .await;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email"], "bob@example.com");
    assert_eq!(claims["email_verified"], false);
}

#[tokio::test]
async fn oidc_provider_denied_sign_in_returns_access_denied() {
    let peer = OidcProviderPeer::start(config()).await;
    let d = discovery(&peer).await;
    let callback = peer
        .deny(
            &OidcProviderPeer::browser_client(),
            &authorize_url(&d, CLIENT, &pkce("deny"), &[]),
        )
        .await;
    let q = query(&callback);
    assert_eq!(q["error"], "access_denied", "{callback}");
    assert_eq!(q["state"], "state-123");
    assert_eq!(q["iss"], peer.issuer());
    assert!(!q.contains_key("code"));
}

#[tokio::test]
#[should_panic(expected = "the upstream answered 400")]
async fn oidc_provider_unknown_account_is_refused() {
    let peer = OidcProviderPeer::start(config()).await;
    let d = discovery(&peer).await;
    peer.login(
        &OidcProviderPeer::browser_client(),
        &authorize_url(&d, CLIENT, &pkce("x"), &[]),
        "mallory",
    )
    .await;
}
