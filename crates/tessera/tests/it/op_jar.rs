//! Signed authorization requests (JAR, RFC 9101, issue 22) made by hand, so each bad request
//! object is exactly what an attacker could send: unsigned (`alg: none`), signed by another key
//! under the app's `kid`, for another issuer, expired or living for days, naming another app,
//! nesting a `request_uri`. The parameters beside an object are ignored (a tampered
//! `redirect_uri` in the address bar changes nothing), an app that must sign cannot be called
//! without, and a pushed request (PAR) may carry the object. openid-client's own JAR is in
//! `op_peers`.

use crate::op_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tessera_testkit::fake_oidc::ec_key_pair;
use tessera_testkit::journey::location;
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "http://127.0.0.1:9/callback";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn object(key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    encode(&h, claims, key).expect("sign the request object")
}

each_backend!(request_objects_carry_the_request_and_forgeries_are_refused);
async fn request_objects_carry_the_request_and_forgeries_are_refused(backend: Backend) {
    let s = server(backend, "").await;
    user(&s, "ann@example.com").await;
    let (key, mut public, _) = ec_key_pair();
    public["kid"] = json!("k1");
    let c = create_client(
        &s,
        json!({"client_name": "Ledger", "app_type": "traditional", "redirect_uris": [RP],
               "skip_consent": true, "jwks": {"keys": [public]}, "require_signed_request_object": true}),
    )
    .await;
    let id = c["client_id"].as_str().unwrap();
    let issuer = format!("{}/oidc", s.public);
    let p = pkce();
    let good = json!({"iss": id, "aud": issuer, "exp": now() + 60, "iat": now(), "client_id": id,
                      "response_type": "code", "redirect_uri": RP, "scope": "openid email",
                      "state": "from-the-object", "nonce": "n", "code_challenge": p.challenge,
                      "code_challenge_method": "S256", "max_age": 600});
    let b = Browser::default();

    // The object is the request: the address bar's redirect_uri, scope and state are ignored.
    let url = auth_url(
        &s,
        &[
            ("client_id", id),
            ("request", &object(&key, &good)),
            ("redirect_uri", "https://evil.example/steal"),
            ("scope", "openid offline_access"),
            ("state", "from-the-bar"),
        ],
    );
    let (st, loc, body) = drive(&b, &s, &url, "ann@example.com", None).await;
    assert_eq!(st, 303, "{loc} {body}");
    assert!(loc.starts_with(RP), "{loc}");
    assert_eq!(param(&loc, "state").as_deref(), Some("from-the-object"));
    let code = param(&loc, "code").expect("a code");
    let (st, t, _) = token(
        &s,
        Some((id, c["client_secret"].as_str().unwrap())),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        t["scope"], "openid email",
        "the object's scope, not the address bar's"
    );

    // Forgeries: each is an error page (never a redirect to a URL nobody vouched for).
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        object(&key, &c)
    };
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let (other_key, _, _) = ec_key_pair();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good)),
            "unsigned",
        ),
        (
            encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(b"guess"),
            )
            .unwrap(),
            "`HS256` is not accepted",
        ),
        (object(&other_key, &good), "does not verify"),
        (
            with(json!({"aud": "https://other.example/oidc"})),
            "`aud` must be this issuer",
        ),
        (with(json!({"iss": "someone-else"})), "`iss` must be"),
        (with(json!({"exp": now() - 600})), "expired"),
        (with(json!({"exp": now() + 86400})), "more than an hour"),
        (with(json!({"exp": null})), "no `exp`"),
        (
            with(json!({"client_id": "someone-else"})),
            "`client_id` differs",
        ),
        (
            with(json!({"request_uri": "https://evil.example/req"})),
            "must not itself carry `request_uri`",
        ),
        (
            with(json!({"claims": {"userinfo": {}}})),
            "must be a string",
        ),
        ("eyJ".to_string(), "not a signed JWT"),
    ];
    for (obj, words) in cases {
        let r = b
            .get(
                &auth_url(&s, &[("client_id", id), ("request", &obj)]),
                false,
            )
            .await;
        assert_eq!(r.status(), 400, "{words}: {}", location(&r));
        let text = r.text().await.unwrap_or_default();
        assert!(text.contains("invalid_request_object"), "{words}: {text}");
        assert!(text.contains(words), "expected {words:?} on the page");
    }
    // Without the object, an app that must sign cannot be called at all.
    let r = b
        .get(
            &auth_url(
                &s,
                &[
                    ("client_id", id),
                    ("response_type", "code"),
                    ("redirect_uri", RP),
                    ("scope", "openid"),
                ],
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("must send its authorization requests as signed request objects")
    );
    // Nor with the object but no client_id beside it.
    let r = b
        .get(&auth_url(&s, &[("request", &object(&key, &good))]), false)
        .await;
    assert_eq!(r.status(), 400);

    // Pushed (PAR): the object is checked the same way; an unsigned one is a JSON error.
    let secret = c["client_secret"].as_str().unwrap();
    let (st, v, _) = post_form(
        &s,
        "par",
        Some((id, secret)),
        &[("request", &with(json!({})))],
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert!(v["request_uri"].is_string());
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good));
    let (st, v, _) = post_form(&s, "par", Some((id, secret)), &[("request", &unsigned)]).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request_object")),
        "{v}"
    );

    // An app without keys cannot use request objects; discovery says they are supported.
    let plain = create_client(&s, traditional(RP)).await;
    let r = b
        .get(
            &auth_url(
                &s,
                &[
                    ("client_id", plain["client_id"].as_str().unwrap()),
                    ("request", &with(json!({}))),
                ],
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("registered no keys")
    );
    let d: Value = TestServer::client()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["request_parameter_supported"], true);
    assert_eq!(d["request_uri_parameter_supported"], false);
    s.stop().await;
}
