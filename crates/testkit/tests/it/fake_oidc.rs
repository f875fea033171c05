//! The fake OIDC upstream, proven with a plain HTTP client and an independent JWT library: a
//! correct round trip verifies, every refusal is the RFC 6749 one, and each misbehaviour
//! produces exactly the defect it is named after (and nothing else), so a Tessera test that
//! relies on it tests what it claims to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tessera_testkit::fake_oidc::{
    Alg, Behavior, FakeOidc, FakeOptions, WRONG_AUDIENCE, WRONG_ISSUER, WRONG_NONCE,
};

const REDIRECT: &str = "http://127.0.0.1:9/self-service/methods/oidc/callback/fake";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9pjMpdLYW40uWxPh2CWBrpBkuIG5gcKVU3VBWMJRX0";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// GET /authorize; returns the callback URL's query parameters.
async fn authorize(fake: &FakeOidc, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut url = url::Url::parse(&format!("{}/authorize", fake.issuer())).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", fake.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email")
        .append_pair("state", "the-state")
        .extend_pairs(extra);
    let resp = client().get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), 303, "authorize must redirect");
    let location = resp.headers()["location"].to_str().expect("ascii");
    let back = url::Url::parse(location).expect("absolute Location");
    assert!(
        back.as_str().starts_with(REDIRECT),
        "sent back to {back}, not {REDIRECT}"
    );
    back.query_pairs().into_owned().collect()
}

/// A code issued with the test PKCE challenge and nonce `n-0S6_WzA2Mj`.
async fn code(fake: &FakeOidc) -> String {
    let c = challenge(VERIFIER);
    let q = authorize(
        fake,
        &[
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", &c),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    q.get("code").expect("a code").clone()
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
}

async fn exchange(fake: &FakeOidc, auth: Auth<'_>, form: &[(&str, &str)]) -> reqwest::Response {
    let mut body: Vec<(&str, &str)> = vec![("grant_type", "authorization_code")];
    body.extend_from_slice(form);
    let req = client().post(format!("{}/token", fake.issuer()));
    let req = match auth {
        Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            body.push(("client_id", id));
            body.push(("client_secret", secret));
            req
        }
    };
    req.form(&body).send().await.expect("token request")
}

fn basic(fake: &FakeOidc) -> Auth<'_> {
    Auth::Basic(fake.client_id(), fake.client_secret())
}

async fn redeem(fake: &FakeOidc, code: &str) -> reqwest::Response {
    exchange(
        fake,
        basic(fake),
        &[
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// A full sign-in; returns the token response.
async fn tokens(fake: &FakeOidc) -> Value {
    let code = code(fake).await;
    let resp = redeem(fake, &code).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("token JSON")
}

async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.expect("error JSON");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

async fn jwks(fake: &FakeOidc) -> JwkSet {
    client()
        .get(format!("{}/jwks", fake.issuer()))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JWKS JSON")
}

/// Verifies like a strict relying party: signature by the JWKS key named by `kid`, `iss`,
/// `aud`, `exp`.
async fn verify(fake: &FakeOidc, id_token: &str) -> Result<Value, ErrorKind> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| e.into_kind())?;
    let set = jwks(fake).await;
    let kid = header.kid.expect("kid");
    let jwk = set.find(&kid).ok_or(ErrorKind::InvalidKeyFormat)?;
    let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[fake.issuer()]);
    v.set_audience(&[fake.client_id()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(id_token, &key, &v)
        .map(|t| t.claims)
        .map_err(|e| e.into_kind())
}

fn unverified_claims(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("JSON")
}

#[tokio::test]
async fn discovery_advertises_code_pkce_and_iss() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let d: Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            fake.issuer()
        ))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("JSON");
    let i = fake.issuer();
    assert_eq!(d["issuer"], i);
    assert_eq!(d["authorization_endpoint"], format!("{i}/authorize"));
    assert_eq!(d["token_endpoint"], format!("{i}/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{i}/userinfo"));
    assert_eq!(d["jwks_uri"], format!("{i}/jwks"));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(fake.discovery_requests(), 1);
    assert_eq!(fake.jwks_requests(), 0);
}

async fn round_trip(alg: Alg, auth_post: bool) {
    let fake = FakeOidc::start(FakeOptions {
        alg,
        claims: json!({"email": "ann@example.com", "email_verified": true, "groups": ["ops"]}),
        subject: "ann-1".into(),
        ..FakeOptions::default()
    })
    .await;
    let c = challenge(VERIFIER);
    let q = authorize(
        &fake,
        &[
            ("nonce", "nonce-1"),
            ("code_challenge", &c),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(q["state"], "the-state");
    assert_eq!(q["iss"], fake.issuer());
    assert!(!q.contains_key("error"), "{q:?}");
    let auth = if auth_post {
        Auth::Post(fake.client_id(), fake.client_secret())
    } else {
        basic(&fake)
    };
    let resp = exchange(
        &fake,
        auth,
        &[
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let t: Value = resp.json().await.expect("JSON");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "openid email");
    let id_token = t["id_token"].as_str().expect("id_token");
    let access_token = t["access_token"].as_str().expect("access_token");

    let header = jsonwebtoken::decode_header(id_token).expect("header");
    let expected_alg = match alg {
        Alg::RS256 => Algorithm::RS256,
        Alg::ES256 => Algorithm::ES256,
    };
    assert_eq!(header.alg, expected_alg);
    assert_eq!(header.kid.as_deref(), Some(fake.kid().as_str()));
    let claims = verify(&fake, id_token).await.expect("a valid id_token");
    assert_eq!(claims["sub"], "ann-1");
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["groups"], json!(["ops"]));
    let digest = Sha256::digest(access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    let jwk = &jwks(&fake).await.keys[0];
    let jwk_json = serde_json::to_value(jwk).expect("JWK JSON");
    assert_eq!(jwk_json["use"], "sig");
    assert_eq!(jwk_json["kid"], fake.kid());
    assert_eq!(
        jwk_json["alg"],
        if alg == Alg::RS256 { "RS256" } else { "ES256" }
    );

    let info: Value = client()
        .get(format!("{}/userinfo", fake.issuer()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        info,
        json!({"sub": "ann-1", "email": "ann@example.com", "email_verified": true, "groups": ["ops"]})
    );
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.jwks_requests(), 2);
    assert_eq!(fake.authorize_requests(), 1);
    assert_eq!(fake.userinfo_requests(), 1);
}

#[tokio::test]
async fn round_trip_rs256_client_secret_basic() {
    round_trip(Alg::RS256, false).await;
}

#[tokio::test]
async fn round_trip_es256_client_secret_post() {
    round_trip(Alg::ES256, true).await;
}

#[tokio::test]
async fn round_trip_without_pkce_or_nonce() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let q = authorize(&fake, &[]).await;
    let resp = exchange(
        &fake,
        basic(&fake),
        &[("code", &q["code"]), ("redirect_uri", REDIRECT)],
    )
    .await;
    let t: Value = resp.json().await.expect("JSON");
    let claims = verify(&fake, t["id_token"].as_str().expect("id_token"))
        .await
        .expect("valid");
    assert!(claims.get("nonce").is_none(), "{claims}");
}

#[tokio::test]
async fn client_secret_basic_credentials_are_form_urlencoded() {
    let fake = FakeOidc::start(FakeOptions {
        client_id: "app:1".into(),
        client_secret: "s3cret/with:odd chars".into(),
        ..FakeOptions::default()
    })
    .await;
    let code = code(&fake).await;
    // RFC 6749 §2.3.1: each part is form-urlencoded before the Basic encoding.
    let resp = exchange(
        &fake,
        Auth::Basic("app%3A1", "s3cret%2Fwith%3Aodd+chars"),
        &[
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn code_is_single_use() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let code = code(&fake).await;
    assert_eq!(redeem(&fake, &code).await.status(), 200);
    assert_oauth_error(redeem(&fake, &code).await, 400, "invalid_grant").await;
    assert_oauth_error(redeem(&fake, "made-up").await, 400, "invalid_grant").await;
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn pkce_is_enforced() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let wrong = "x".repeat(43);
    for form in [
        vec![("code_verifier", wrong.as_str())],
        vec![("code_verifier", "short")],
        vec![],
    ] {
        let code = code(&fake).await;
        let mut f = vec![("code", code.as_str()), ("redirect_uri", REDIRECT)];
        f.extend(form);
        assert_oauth_error(
            exchange(&fake, basic(&fake), &f).await,
            400,
            "invalid_grant",
        )
        .await;
    }
    // A verifier for a code issued without a challenge is a downgrade attempt.
    let q = authorize(&fake, &[]).await;
    let f = [
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    assert_oauth_error(
        exchange(&fake, basic(&fake), &f).await,
        400,
        "invalid_grant",
    )
    .await;
    // Only S256 is accepted at /authorize.
    let q = authorize(
        &fake,
        &[
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    assert_eq!(q["error"], "invalid_request");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn redirect_uri_must_match() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let code = code(&fake).await;
    let f = [
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ("code_verifier", VERIFIER),
    ];
    assert_oauth_error(
        exchange(&fake, basic(&fake), &f).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn client_authentication_is_checked() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let id = fake.client_id().to_string();
    for auth in [
        Auth::Basic(&id, "wrong"),
        Auth::Post(&id, "wrong"),
        Auth::Basic("other", "tessera-secret"),
    ] {
        let code = code(&fake).await;
        let f = [
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let resp = exchange(&fake, auth, &f).await;
        assert!(resp.headers().contains_key("www-authenticate"));
        assert_oauth_error(resp, 401, "invalid_client").await;
    }
    // No credentials at all.
    let code = code(&fake).await;
    let resp = client()
        .post(format!("{}/token", fake.issuer()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token");
    assert_oauth_error(resp, 401, "invalid_client").await;
    // Two methods at once.
    let resp = client()
        .post(format!("{}/token", fake.issuer()))
        .basic_auth(&id, Some("tessera-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &id),
            ("client_secret", "tessera-secret"),
        ])
        .send()
        .await
        .expect("token");
    assert_oauth_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn unsupported_grant_type() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let resp = client()
        .post(format!("{}/token", fake.issuer()))
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .expect("token");
    assert_oauth_error(resp, 400, "unsupported_grant_type").await;
}

#[tokio::test]
async fn authorize_refuses_unknown_client_without_redirecting() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let resp = client()
        .get(format!(
            "{}/authorize?response_type=code&client_id=intruder&redirect_uri=https://evil.example/",
            fake.issuer()
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
}

/// Each id_token behaviour: the token has exactly its defect, and a strict verifier notices.
#[tokio::test]
async fn id_token_behaviors_produce_their_defect() {
    for alg in [Alg::RS256, Alg::ES256] {
        let fake = FakeOidc::start(FakeOptions {
            alg,
            ..FakeOptions::default()
        })
        .await;
        let issue = |b: Behavior| {
            fake.set_behavior(b);
            async {
                tokens(&fake).await["id_token"]
                    .as_str()
                    .expect("id_token")
                    .to_string()
            }
        };

        let t = issue(Behavior::WrongIss).await;
        assert_eq!(unverified_claims(&t)["iss"], WRONG_ISSUER);
        assert_eq!(verify(&fake, &t).await, Err(ErrorKind::InvalidIssuer));

        let t = issue(Behavior::WrongAud).await;
        assert_eq!(unverified_claims(&t)["aud"], WRONG_AUDIENCE);
        assert_eq!(verify(&fake, &t).await, Err(ErrorKind::InvalidAudience));

        let t = issue(Behavior::WrongNonce).await;
        let claims = verify(&fake, &t).await.expect("otherwise valid");
        assert_eq!(claims["nonce"], WRONG_NONCE);

        let t = issue(Behavior::Expired).await;
        let exp = unverified_claims(&t)["exp"].as_u64().expect("exp");
        assert!(exp + 3000 < jsonwebtoken::get_current_timestamp());
        assert_eq!(verify(&fake, &t).await, Err(ErrorKind::ExpiredSignature));

        let t = issue(Behavior::AlgNone).await;
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "no signature");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("JSON");
        assert_eq!(header["alg"], "none");
        assert_eq!(unverified_claims(&t)["iss"], fake.issuer());
        assert!(verify(&fake, &t).await.is_err());

        let t = issue(Behavior::BadSignature).await;
        let header = jsonwebtoken::decode_header(&t).expect("a well-formed header");
        assert_eq!(header.kid.as_deref(), Some(fake.kid().as_str()));
        assert_eq!(unverified_claims(&t)["iss"], fake.issuer());
        assert_eq!(verify(&fake, &t).await, Err(ErrorKind::InvalidSignature));

        // And back to a valid token, so the defects above are the behaviours', not the fake's.
        let t = issue(Behavior::Normal).await;
        let claims = verify(&fake, &t).await.expect("valid again");
        assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    }
}

#[tokio::test]
async fn token_endpoint_failures() {
    let fake = FakeOidc::start(FakeOptions::default()).await;

    fake.set_behavior(Behavior::TokenInvalidJson);
    let resp = redeem(&fake, &code(&fake).await).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");

    fake.set_behavior(Behavior::Token500);
    let resp = redeem(&fake, &code(&fake).await).await;
    assert_eq!(resp.status(), 500);
    assert!(resp.text().await.expect("body").contains("error"));

    let hang = Duration::from_millis(600);
    fake.set_behavior(Behavior::TokenHang(hang));
    let impatient = client()
        .post(format!("{}/token", fake.issuer()))
        .timeout(Duration::from_millis(150))
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&[("grant_type", "authorization_code"), ("code", "any")])
        .send()
        .await;
    assert!(impatient.expect_err("timed out").is_timeout());
    // The hang delays the answer but does not replace it.
    let code = code(&fake).await;
    let started = Instant::now();
    let resp = redeem(&fake, &code).await;
    assert!(
        started.elapsed() >= hang,
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.token_requests(), 4);
}

#[tokio::test]
async fn authorize_behaviors() {
    let fake = FakeOidc::start(FakeOptions::default()).await;

    fake.set_behavior(Behavior::AuthorizeError {
        error: "access_denied".into(),
        description: "The user said no".into(),
    });
    let q = authorize(&fake, &[]).await;
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_description"], "The user said no");
    assert_eq!(q["state"], "the-state");
    assert_eq!(q["iss"], fake.issuer());
    assert!(!q.contains_key("code"));

    fake.set_behavior(Behavior::AuthorizeWrongIss);
    let q = authorize(&fake, &[]).await;
    assert_eq!(q["iss"], WRONG_ISSUER);
    assert!(q.contains_key("code"));

    fake.set_behavior(Behavior::AuthorizeOmitIss);
    let q = authorize(&fake, &[]).await;
    assert!(!q.contains_key("iss"), "{q:?}");
    assert!(q.contains_key("code"));
}

#[tokio::test]
async fn userinfo_behaviors() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let t = tokens(&fake).await;
    let at = t["access_token"].as_str().expect("access_token");
    let url = format!("{}/userinfo", fake.issuer());

    let resp = client().get(&url).send().await.expect("userinfo");
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(&url)
        .bearer_auth("forged")
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );

    fake.set_behavior(Behavior::UserinfoInvalidJson);
    let resp = client()
        .get(&url)
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "not json{");
}

#[tokio::test]
async fn rotate_key_serves_only_the_new_key() {
    for alg in [Alg::RS256, Alg::ES256] {
        let fake = FakeOidc::start(FakeOptions {
            alg,
            ..FakeOptions::default()
        })
        .await;
        let before = tokens(&fake).await["id_token"]
            .as_str()
            .expect("id_token")
            .to_string();
        let old_set = jwks(&fake).await;
        let old_kid = fake.kid();

        let new_kid = fake.rotate_key();
        assert_ne!(new_kid, old_kid);
        assert_eq!(fake.kid(), new_kid);
        let new_set = jwks(&fake).await;
        assert_eq!(new_set.keys.len(), 1);
        assert!(new_set.find(&new_kid).is_some());
        assert!(new_set.find(&old_kid).is_none(), "old key still served");

        let after = tokens(&fake).await["id_token"]
            .as_str()
            .expect("id_token")
            .to_string();
        let header = jsonwebtoken::decode_header(&after).expect("header");
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        verify(&fake, &after)
            .await
            .expect("verifies with the new JWKS");
        // The old token's kid is gone from the JWKS: a client must not accept it any more...
        assert!(verify(&fake, &before).await.is_err());
        // ...and the new token is not signed by the old key material.
        let old_key = DecodingKey::from_jwk(&old_set.keys[0]).expect("old key");
        let mut v = Validation::new(header.alg);
        v.validate_aud = false;
        let err = jsonwebtoken::decode::<Value>(&after, &old_key, &v).expect_err("old key");
        assert_eq!(err.into_kind(), ErrorKind::InvalidSignature);
        assert_eq!(fake.jwks_requests(), 4);
    }
}

#[tokio::test]
async fn set_claims_switches_the_user_for_new_codes() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let old_code = code(&fake).await;
    fake.set_claims("bob-2", json!({"email": "bob@example.com"}));
    let t = tokens(&fake).await;
    let claims = verify(&fake, t["id_token"].as_str().expect("id_token"))
        .await
        .expect("valid");
    assert_eq!(claims["sub"], "bob-2");
    assert_eq!(claims["email"], "bob@example.com");
    assert!(claims.get("name").is_none(), "{claims}");
    // A code issued before the switch still belongs to the previous user.
    let t: Value = redeem(&fake, &old_code).await.json().await.expect("JSON");
    let claims = unverified_claims(t["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["sub"], "fake-user-1");
}

#[tokio::test]
async fn dropping_the_fake_stops_it() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let url = format!("{}/jwks", fake.issuer());
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client().get(&url).send().await.is_err());
}
