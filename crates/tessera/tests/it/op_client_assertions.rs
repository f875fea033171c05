//! Apps that authenticate with a signed JWT instead of a secret (`private_key_jwt`, RFC 7523,
//! issue 22). The happy path with `openid-client` is in `op_peers`; here a machine app signs
//! its own assertions so each forgery can be made exactly: another key under the app's `kid`,
//! `HS256` keyed with the public key (algorithm confusion), `alg: none`, a replayed `jti`,
//! expired or too long-lived assertions, a foreign audience, `iss` ≠ `sub`, an assertion
//! naming an app that uses secrets, a secret sent for a key-authenticated app. And the
//! registration refusals: private key material in `jwks`, `jwks_uri`, a missing `jwks`.

use crate::op_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tessera_testkit::fake_oidc::ec_key_pair;
use tessera_testkit::{Backend, TestServer, each_backend};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(&h, claims, key).expect("sign the assertion")
}

/// The claims openid-client sends, for `client_id`, addressed to `aud`.
fn claims(client_id: &str, aud: &str) -> Value {
    json!({"iss": client_id, "sub": client_id, "aud": aud, "jti": uuid::Uuid::new_v4().to_string(),
           "iat": now(), "exp": now() + 60})
}

async fn client_credentials(
    s: &TestServer,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let (st, v, _) = token(s, None, &form).await;
    (st, v)
}

fn refused(got: &(u16, Value), status: u16, code: &str, says: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], code, "{}", got.1);
    let d = got.1["error_description"].as_str().unwrap_or_default();
    assert!(d.contains(says), "expected {says:?} in {d:?}");
}

each_backend!(a_machine_app_signs_its_way_in_and_forgeries_are_refused);
async fn a_machine_app_signs_its_way_in_and_forgeries_are_refused(backend: Backend) {
    let s = server(backend, "").await;
    let (key, mut public, _) = ec_key_pair();
    public["kid"] = json!("k1");
    let m = create_client(
        &s,
        json!({"client_name": "Billing job", "app_type": "machine", "scope": "invoices:read",
               "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}),
    )
    .await;
    assert!(
        m["client_secret"].is_null(),
        "no secret for a key-authenticated app: {m}"
    );
    assert_eq!(m["token_endpoint_auth_method"], "private_key_jwt");
    let id = m["client_id"].as_str().unwrap().to_string();
    let issuer = format!("{}/oidc", s.public);

    // aud = the issuer (what openid-client sends) and aud = the token endpoint both work.
    let first = sign(&key, "k1", &claims(&id, &issuer));
    let ok = client_credentials(&s, &first, &[("scope", "invoices:read")]).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(ok.1["scope"], "invoices:read");
    let at = ok.1["access_token"].as_str().unwrap().to_string();
    let to_endpoint = sign(&key, "k1", &claims(&id, &format!("{issuer}/token")));
    assert_eq!(client_credentials(&s, &to_endpoint, &[]).await.0, 200);
    // Introspection accepts the app too, with a fresh assertion.
    let (st, i, _) = post_form(
        &s,
        "token/introspection",
        None,
        &[
            ("token", &at),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sign(&key, "k1", &claims(&id, &issuer))),
        ],
    )
    .await;
    assert_eq!((st, &i["active"]), (200, &json!(true)), "{i}");

    // A captured assertion cannot be replayed.
    refused(
        &client_credentials(&s, &first, &[]).await,
        401,
        "invalid_client",
        "already used",
    );

    // Another key pair under the app's kid.
    let (other_key, other_public, _) = ec_key_pair();
    refused(
        &client_credentials(&s, &sign(&other_key, "k1", &claims(&id, &issuer)), &[]).await,
        401,
        "invalid_client",
        "does not verify",
    );
    // Algorithm confusion: HS256 keyed with the app's public key.
    let x = other_public["x"].as_str().unwrap().to_string();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = encode(
        &h,
        &claims(&id, &issuer),
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    refused(
        &client_credentials(&s, &hs, &[]).await,
        401,
        "invalid_client",
        "`HS256` is not accepted",
    );
    // alg: none.
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none"})),
        b64(claims(&id, &issuer))
    );
    refused(
        &client_credentials(&s, &none, &[]).await,
        401,
        "invalid_client",
        "refused",
    );
    // Expired, too long-lived, for someone else, iss ≠ sub, no jti.
    let with = |patch: Value| {
        let mut c = claims(&id, &issuer);
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        sign(&key, "k1", &c)
    };
    for (patch, says) in [
        (json!({"exp": now() - 120}), "expired"),
        (json!({"exp": now() + 3600}), "more than 600 s"),
        (json!({"aud": "https://other.example/oidc"}), "`aud`"),
        (json!({"iss": "someone-else"}), "`iss` and `sub`"),
        (json!({"jti": null}), "no `jti`"),
        (json!({"exp": null}), "no `exp`"),
    ] {
        refused(
            &client_credentials(&s, &with(patch.clone()), &[]).await,
            401,
            "invalid_client",
            says,
        );
    }
    // A client_id beside the assertion must name the same app.
    refused(
        &client_credentials(&s, &with(json!({})), &[("client_id", "someone-else")]).await,
        401,
        "invalid_client",
        "differs",
    );
    // The wrong assertion type; an assertion without its type.
    let (st, v, _) = token(
        &s,
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &with(json!({}))),
        ],
    )
    .await;
    refused(&(st, v), 401, "invalid_client", "must be `urn:ietf");
    let (st, v, _) = token(
        &s,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion", &with(json!({}))),
        ],
    )
    .await;
    refused(&(st, v), 400, "invalid_request", "go together");
    // Two methods at once.
    let (st, v, _) = token(
        &s,
        Some((&id, "guess")),
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &with(json!({}))),
        ],
    )
    .await;
    refused(&(st, v), 400, "invalid_request", "more than one method");
    // A secret for the key-authenticated app, and a secret the app was never given.
    let (st, v, _) = token(
        &s,
        Some((&id, "guess")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    refused(&(st, v), 401, "invalid_client", "private_key_jwt");

    // An app that uses secrets cannot be entered with an assertion signed by someone's key.
    let secret_app = create_client(
        &s,
        json!({"client_name": "Payroll", "app_type": "machine", "scope": "payroll:read"}),
    )
    .await;
    let other = secret_app["client_id"].as_str().unwrap();
    refused(
        &client_credentials(&s, &sign(&key, "k1", &claims(other, &issuer)), &[]).await,
        401,
        "invalid_client",
        "authenticates with `client_secret_basic`",
    );
    s.stop().await;
}

#[tokio::test]
async fn registration_refuses_private_keys_remote_key_sets_and_leftover_secrets() {
    let s = server(Backend::Sqlite, "").await;
    let (_, public, private) = ec_key_pair();
    let admin = |body: Value| {
        let s = &s;
        async move {
            let r = TestServer::client()
                .post(format!("{}/admin/clients", s.admin))
                .json(&body)
                .send()
                .await
                .expect("admin");
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let base = json!({"client_name": "Job", "app_type": "machine", "token_endpoint_auth_method": "private_key_jwt"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, says) in [
        (
            with("jwks", json!({"keys": [private]})),
            "private or symmetric key material (`d`)",
        ),
        (
            with("jwks_uri", json!("https://job.example/jwks")),
            "`jwks_uri` is not supported",
        ),
        (base.clone(), "needs `jwks`"),
        (
            json!({"client_name": "Job", "app_type": "machine", "require_signed_request_object": true}),
            "need `jwks`",
        ),
        (
            json!({"client_name": "SPA", "app_type": "spa", "redirect_uris": ["http://127.0.0.1:9/cb"],
                   "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}),
            "must be `none`",
        ),
    ] {
        let (st, v) = admin(body.clone()).await;
        assert_eq!(st, 400, "{body} → {v}");
        assert!(v.to_string().contains(says), "expected {says:?} in {v}");
    }
    let count = TestServer::client()
        .get(format!("{}/admin/clients", s.admin))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        count.as_array().map(Vec::len),
        Some(0),
        "nothing was written: {count}"
    );

    // An app moved from a secret to keys keeps no secret: the old one stops working at once,
    // and no new one can be added.
    let m = create_client(
        &s,
        json!({"client_name": "Job", "app_type": "machine", "scope": "a"}),
    )
    .await;
    let id = m["client_id"].as_str().unwrap();
    let secret = m["client_secret"].as_str().unwrap();
    let (st, _, _) = token(
        &s,
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(st, 200);
    let r = TestServer::client()
        .put(format!("{}/admin/clients/{id}", s.admin))
        .json(
            &json!({"client_name": "Job", "app_type": "machine", "scope": "a",
                      "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (st, v, _) = token(
        &s,
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    refused(&(st, v), 401, "invalid_client", "private_key_jwt");
    let r = TestServer::client()
        .post(format!("{}/admin/clients/{id}/secrets", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("rotate its keys by updating `jwks`")
    );
    s.stop().await;
}
