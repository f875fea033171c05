//! DPoP (RFC 9449, issue 22) made by hand, so each bad proof can be exactly what an attacker
//! would send: no nonce or a forged one, a replayed proof, another method or URL, a stale
//! `iat`, `HS256`, a signature by another key than the header's `jwk`, a private key in the
//! header, two `DPoP` headers; an app registered with `dpop_bound_access_tokens` that sends no
//! proof. Bound tokens carry `cnf.jkt` (JWT access tokens, introspection) and `token_type`
//! `DPoP`. openid-client's own DPoP (a real client's reading of the RFC) is in `op_peers`.

use crate::op_common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_testkit::fake_oidc::ec_key_pair;
use tessera_testkit::{Backend, TestServer, each_backend};

/// A client's DPoP key pair.
pub struct DpopKey {
    signing: EncodingKey,
    pub public: Value,
    pub private: Value,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl DpopKey {
    pub fn new() -> DpopKey {
        let (signing, public, private) = ec_key_pair();
        DpopKey {
            signing,
            public,
            private,
        }
    }

    /// The RFC 7638 thumbprint of the public key, computed here independently of the server.
    pub fn jkt(&self) -> String {
        let p = &self.public;
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            p["crv"].as_str().unwrap(),
            p["x"].as_str().unwrap(),
            p["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The claims of a good proof.
    pub fn claims(htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> Value {
        let mut c =
            json!({"htm": htm, "htu": htu, "iat": now(), "jti": uuid::Uuid::new_v4().to_string()});
        if let Some(n) = nonce {
            c["nonce"] = json!(n);
        }
        if let Some(t) = token {
            c["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
        }
        c
    }

    /// Signs `claims` under `header` (ES256 with this key, whatever the header says).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let msg = format!("{}.{}", b64(header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &self.signing, Algorithm::ES256)
            .expect("sign");
        format!("{msg}.{sig}")
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public})
    }

    pub fn proof(&self, claims: &Value) -> String {
        self.sign_raw(&self.header(), claims)
    }
}

async fn post(
    s: &TestServer,
    path: &str,
    proofs: &[&str],
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = TestServer::client()
        .post(format!("{}/oidc/{path}", s.public))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    for p in proofs {
        req = req.header("dpop", *p);
    }
    let r = req.send().await.expect("post");
    let st = r.status().as_u16();
    let h = r.headers().clone();
    (st, r.json().await.unwrap_or_default(), h)
}

fn said(v: &Value, code: &str, words: &str) {
    assert_eq!(v["error"], code, "{v}");
    let d = v["error_description"].as_str().unwrap_or_default();
    assert!(d.contains(words), "expected {words:?} in {d:?}");
}

each_backend!(client_credentials_bound_to_a_key_and_bad_proofs_refused);
async fn client_credentials_bound_to_a_key_and_bad_proofs_refused(backend: Backend) {
    let s = server(backend, "").await;
    let m = create_client(
        &s,
        json!({"client_name": "Billing job", "app_type": "machine", "scope": "invoices:read"}),
    )
    .await;
    let id = m["client_id"].as_str().unwrap();
    let secret = m["client_secret"].as_str().unwrap();
    let creds = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let htu = format!("{}/oidc/token", s.public);
    let key = DpopKey::new();

    // Without a nonce: use_dpop_nonce, with one to retry with.
    let (st, v, h) = post(
        &s,
        "token",
        &[&key.proof(&DpopKey::claims("POST", &htu, None, None))],
        &creds,
    )
    .await;
    assert_eq!(st, 400);
    said(&v, "use_dpop_nonce", "nonce");
    let nonce = h["dpop-nonce"].to_str().unwrap().to_string();
    // A forged nonce is no better.
    let (_, v, _) = post(
        &s,
        "token",
        &[&key.proof(&DpopKey::claims("POST", &htu, Some("1.forged"), None))],
        &creds,
    )
    .await;
    said(&v, "use_dpop_nonce", "unknown or too old");

    // With the nonce: a DPoP-bound token that introspection reports with its key.
    let good = key.proof(&DpopKey::claims("POST", &htu, Some(&nonce), None));
    let (st, t, h) = post(&s, "token", &[&good], &creds).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "DPoP");
    assert!(
        h.contains_key("dpop-nonce"),
        "the next nonce comes with the answer"
    );
    let (st, i, _) = post_form(
        &s,
        "token/introspection",
        Some((id, secret)),
        &[("token", t["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(i["token_type"], "DPoP", "{i}");
    assert_eq!(i["cnf"]["jkt"], json!(key.jkt()), "{i}");

    // The same proof again.
    let (st, v, _) = post(&s, "token", &[&good], &creds).await;
    assert_eq!(st, 400);
    said(&v, "invalid_dpop_proof", "used before");

    // Proofs for another request, stale, or not really signed by their key.
    let with = |patch: Value| {
        let mut c = DpopKey::claims("POST", &htu, Some(&nonce), None);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let other = DpopKey::new();
    let cases: Vec<(String, &str)> = vec![
        (
            key.proof(&with(json!({"htm": "GET"}))),
            "`htm` must be `POST`",
        ),
        (
            key.proof(&with(json!({"htu": format!("{}/oidc/me", s.public)}))),
            "`htu` must be",
        ),
        (
            key.proof(&with(json!({"iat": now() - 3600}))),
            "`iat` is too far",
        ),
        (
            key.proof(&with(json!({"iat": now() + 3600}))),
            "`iat` is too far",
        ),
        (
            key.sign_raw(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.public}),
                &with(json!({})),
            ),
            "`typ` `dpop+jwt`",
        ),
        (
            key.sign_raw(
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &with(json!({})),
            ),
            "no `jwk`",
        ),
        (
            key.sign_raw(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.private}),
                &with(json!({})),
            ),
            "private or symmetric",
        ),
        (
            key.sign_raw(
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public}),
                &with(json!({})),
            ),
            "`HS256` is not accepted",
        ),
        // Signed by one key, claiming another: the thumbprint would be the victim's.
        (
            other.sign_raw(&key.header(), &with(json!({}))),
            "does not verify",
        ),
        ("not-a-jwt".to_string(), "not a JWT"),
    ];
    for (proof, words) in cases {
        let (st, v, h) = post(&s, "token", &[&proof], &creds).await;
        assert_eq!(st, 400, "{words}: {v}");
        said(&v, "invalid_dpop_proof", words);
        assert!(h.contains_key("dpop-nonce"));
    }
    let a = key.proof(&DpopKey::claims("POST", &htu, Some(&nonce), None));
    let b = key.proof(&DpopKey::claims("POST", &htu, Some(&nonce), None));
    let (st, v, _) = post(&s, "token", &[&a, &b], &creds).await;
    assert_eq!(st, 400);
    said(&v, "invalid_dpop_proof", "exactly one");

    // An app that must use DPoP cannot get a plain bearer token.
    let bound = create_client(&s, json!({"client_name": "Strict job", "app_type": "machine", "scope": "x", "dpop_bound_access_tokens": true})).await;
    let (st, v, _) = post(
        &s,
        "token",
        &[],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", bound["client_id"].as_str().unwrap()),
            ("client_secret", bound["client_secret"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(st, 400);
    said(&v, "invalid_request", "dpop_bound_access_tokens");

    // Discovery says DPoP is supported, with which algorithms.
    let d: Value = TestServer::client()
        .get(format!(
            "{}/oidc/.well-known/openid-configuration",
            s.public
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        d["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("ES256"))),
        "{d}"
    );
    s.stop().await;
}

/// A user's DPoP-bound access token at userinfo: the proof must cover that token (`ath`) and
/// be signed by the key it is bound to; errors are 401 with a `DPoP` challenge and a nonce.
#[tokio::test]
async fn userinfo_wants_the_bound_keys_proof_over_that_token() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "ann@example.com").await;
    let c = create_client(&s, traditional("http://127.0.0.1:9/callback")).await;
    let b = tessera_testkit::Browser::default();
    let key = DpopKey::new();
    let htu = format!("{}/oidc/token", s.public);
    // A nonce first, then the code exchange with a proof (code_flow's exchange has none, so
    // this test redeems the code itself).
    let (_, _, h) = post(
        &s,
        "token",
        &[&key.proof(&DpopKey::claims("POST", &htu, None, None))],
        &[("grant_type", "client_credentials")],
    )
    .await;
    let nonce = h["dpop-nonce"].to_str().unwrap().to_string();
    let t = code_flow_with_proof(
        &b,
        &s,
        &c,
        "ann@example.com",
        &key.proof(&DpopKey::claims("POST", &htu, Some(&nonce), None)),
    )
    .await;
    assert_eq!(t["token_type"], "DPoP", "{t}");
    let at = t["access_token"].as_str().unwrap();
    let me = format!("{}/oidc/me", s.public);
    let get = |scheme: &'static str, proof: Option<String>| {
        let me = me.clone();
        async move {
            let mut req = TestServer::client()
                .get(&me)
                .header("authorization", format!("{scheme} {at}"));
            if let Some(p) = proof {
                req = req.header("dpop", p);
            }
            let r = req.send().await.unwrap();
            let st = r.status().as_u16();
            let h = r.headers().clone();
            (st, r.json::<Value>().await.unwrap_or_default(), h)
        }
    };
    let (st, v, h) = get(
        "DPoP",
        Some(key.proof(&DpopKey::claims("GET", &me, Some(&nonce), Some(at)))),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["email"], "ann@example.com");
    assert!(h.contains_key("dpop-nonce"));
    // As a bearer token; with a proof over another token; signed by another key; no proof.
    let (st, v, _) = get("Bearer", None).await;
    assert_eq!(st, 401);
    said(&v, "invalid_token", "bound to a DPoP key");
    let (st, v, h) = get(
        "DPoP",
        Some(key.proof(&DpopKey::claims(
            "GET",
            &me,
            Some(&nonce),
            Some("another-token"),
        ))),
    )
    .await;
    assert_eq!(st, 401);
    said(&v, "invalid_dpop_proof", "`ath`");
    let challenge = h["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    let thief = DpopKey::new();
    let (st, v, _) = get(
        "DPoP",
        Some(thief.proof(&DpopKey::claims("GET", &me, Some(&nonce), Some(at)))),
    )
    .await;
    assert_eq!(st, 401);
    said(&v, "invalid_token", "another key");
    let (st, v, _) = get("DPoP", None).await;
    assert_eq!(st, 401);
    said(&v, "invalid_dpop_proof", "header is missing");
    let (st, v, h) = get(
        "DPoP",
        Some(key.proof(&DpopKey::claims("GET", &me, None, Some(at)))),
    )
    .await;
    assert_eq!(st, 401);
    said(&v, "use_dpop_nonce", "nonce");
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"use_dpop_nonce\"")
    );
    s.stop().await;
}

/// `code_flow` (op_common) with a DPoP proof on the code exchange.
async fn code_flow_with_proof(
    b: &tessera_testkit::Browser,
    s: &TestServer,
    c: &Value,
    email: &str,
    proof: &str,
) -> Value {
    let client_id = c["client_id"].as_str().unwrap();
    let secret = c["client_secret"].as_str().unwrap();
    let redirect = c["redirect_uris"][0].as_str().unwrap();
    let p = pkce();
    let url = auth_url(
        s,
        &[
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", "openid email"),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let (st, loc, body) = drive(b, s, &url, email, Some("accept")).await;
    assert_eq!(st, 303, "{loc} {body}");
    let code = param(&loc, "code").expect("a code");
    let (st, t, _) = post(
        s,
        "token",
        &[proof],
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
            ("client_id", client_id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t
}
