//! A Sign in with Apple (web) emulator on one loopback port; the base URL stands for
//! `https://appleid.apple.com`, the paths are Apple's.
//!
//! - `GET /auth/authorize`: `client_id` (the Services ID; unknown: Apple's `invalid_client`
//!   page), `redirect_uri` (unregistered: `invalid_request` "Invalid web redirect url."),
//!   `response_type` `code` or `code id_token`, `scope` (`name`, `email`, `openid`),
//!   `response_mode` (with `name` or `email` it must be `form_post`: otherwise
//!   `invalid_request` "response_mode must be form_post when name or email scope is
//!   requested."), `state`, `nonce`. The answer is what Apple sends: a page whose form the
//!   browser **POSTs** to the redirect URI (`code`, `state`, `id_token` with `code id_token`,
//!   and `user` — `{"name":{"firstName","lastName"},"email"}` as JSON — **only at the first
//!   authorization** of that Apple ID for this app). `user=deny` posts
//!   `error=user_cancelled_authorize`.
//! - `POST /auth/token`, form, `client_secret_post`: the client secret must be an ES256 JWT
//!   signed with the developer's key ([`AppleEmulator::private_key_pem`], key id
//!   [`AppleEmulator::key_id`]): header `kid`, claims `iss` = team id, `sub` = client id,
//!   `aud` = the issuer, `exp` after now and at most six months after `iat`; anything else is
//!   HTTP 400 `{"error": "invalid_client"}`. Unknown, reused or expired (five minutes) codes
//!   and another `redirect_uri` are `{"error": "invalid_grant"}`. Success: `access_token`,
//!   `token_type`, `expires_in`, `refresh_token`, `id_token`.
//! - `GET /auth/keys`: the JWKS (RS256).
//! - id_tokens: `iss`, `aud`, `exp`, `iat`, `sub` (`001234.<32 hex>.1234`), `nonce`,
//!   `c_hash`, `email`, `email_verified` and `is_private_email` as the **strings** `"true"` /
//!   `"false"` ([`AppleEmulator::set_email_verified`] sends another JSON value), `auth_time`,
//!   `nonce_supported`, `real_user_status`.

use crate::common::{
    Client, ConsentText, Grants, consent_page, esc, random_token, rsa_signing_key, s256,
    sign_rs256, token_form, unix_now,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Apple ID.
#[derive(Debug, Clone, Copy)]
pub struct AppleUser {
    pub key: &'static str,
    /// Apple's `sub`, stable per developer team.
    pub sub: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// What the app sees: the real address, or a private relay address.
    pub email: &'static str,
    pub private_email: bool,
}

/// Иван Петров (shares his address) and Anna Berg (hides hers behind a relay address).
pub const USERS: [AppleUser; 2] = [
    AppleUser {
        key: "ivan",
        sub: "001234.9f8e7d6c5b4a39281706f5e4d3c2b1a0.1234",
        first_name: "Иван",
        last_name: "Петров",
        email: "ivan.petrov@icloud.com",
        private_email: false,
    },
    AppleUser {
        key: "anna",
        sub: "001234.0a1b2c3d4e5f60718293a4b5c6d7e8f9.0321",
        first_name: "Anna",
        last_name: "Berg",
        email: "x7k2m9p4qz@privaterelay.appleid.com",
        private_email: true,
    },
];

const CODE_TTL: Duration = Duration::from_secs(300);
/// Apple's limit on a client secret's lifetime.
const MAX_SECRET_LIFETIME: u64 = 15_777_000;

#[derive(Clone)]
struct Code {
    user: AppleUser,
    redirect_uri: String,
    nonce: Option<String>,
}

struct Shared {
    client: Client,
    grants: Grants<Code, AppleUser>,
    team_id: String,
    key_id: String,
    private_key_pem: String,
    public_key: jsonwebtoken::DecodingKey,
    /// The Apple IDs that already authorized this app (the `user` field is not sent again).
    authorized: Mutex<HashSet<&'static str>>,
    email_verified: Mutex<Value>,
}

/// A running Apple emulator on 127.0.0.1. Stops when dropped.
pub struct AppleEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl AppleEmulator {
    /// A Services ID with a Sign in with Apple key on a free loopback port; panics when none
    /// can be bound, which only tests want.
    pub async fn start() -> AppleEmulator {
        Self::serve(crate::free_loopback_port("Apple").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo`). Needs a Tokio runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<AppleEmulator> {
        let addr = listener.local_addr()?;
        // The signing key is made now, not at the first token request, whose caller would
        // otherwise wait for it (seconds in a debug build, past a 10 s upstream limit on a
        // busy machine).
        rsa_signing_key();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(std::io::Error::other)?;
        let raw = key.public_key_raw();
        let (x, y) = (&raw[1..33], &raw[33..65]);
        let public_key = jsonwebtoken::DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(x),
            &URL_SAFE_NO_PAD.encode(y),
        )
        .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "com.example.bookshelf.web", ""),
            grants: Grants::new(CODE_TTL),
            team_id: "7K2M9P4QZA".into(),
            key_id: "R8T2VX5C3N".into(),
            private_key_pem: key.serialize_pem(),
            public_key,
            authorized: Mutex::new(HashSet::new()),
            email_verified: Mutex::new(json!("true")),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/auth/keys", get(keys))
            .route("/auth/authorize", get(authorize))
            .route("/auth/token", post(token))
            .with_state(shared.clone());
        Ok(AppleEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// The Services ID (`client_id`).
    pub fn client_id(&self) -> &str {
        &self.shared.client.client_id
    }

    /// The user every following authorize request picks (`None`: show the page).
    pub fn set_next_user(&self, key: Option<&str>) {
        self.shared.client.set_next_user(key);
    }

    /// How many token requests the emulator received.
    pub fn token_requests(&self) -> u64 {
        self.shared.client.token_requests()
    }

    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the issuer (`issuer_url`).
    pub fn issuer(&self) -> &str {
        &self.shared.client.base
    }

    /// The developer's Team ID (`apple_team_id`).
    pub fn team_id(&self) -> &str {
        &self.shared.team_id
    }

    /// The Sign in with Apple key's id (`apple_private_key_id`).
    pub fn key_id(&self) -> &str {
        &self.shared.key_id
    }

    /// The `.p8` file's text (`apple_private_key`).
    pub fn private_key_pem(&self) -> &str {
        &self.shared.private_key_pem
    }

    /// Registers the one return URL. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How id_tokens issued from now on write `email_verified` (Apple: `"true"`).
    pub fn set_email_verified(&self, v: Value) {
        *self.shared.email_verified.lock().expect("lock") = v;
    }

    /// The `sub` of the fake user `key`.
    pub fn sub_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.sub)
            .unwrap_or_else(|| panic!("no fake Apple user `{key}`"))
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let b = &s.client.base;
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/auth/authorize"),
        "token_endpoint": format!("{b}/auth/token"),
        "revocation_endpoint": format!("{b}/auth/revoke"),
        "jwks_uri": format!("{b}/auth/keys"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "name"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "is_private_email", "iss", "nonce", "nonce_supported", "real_user_status", "sub", "transfer_sub"],
    }))
}

async fn keys() -> Json<Value> {
    Json(json!({"keys": [rsa_signing_key().1]}))
}

/// Apple's error page for a request it will not show a sign-in for.
fn error_page(error: &str, what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Sign in with Apple</title>\n<h1>Your request could not be completed because of an error.</h1>\n<p>{}: {}</p>\n",
            esc(error),
            esc(what)
        )),
    )
        .into_response()
}

/// The page that posts the answer to the app, as Apple's `form_post` does.
fn form_post(to: &str, fields: &[(&str, String)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                esc(k),
                esc(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Sign in with Apple</title>\n<body onload=\"document.forms[0].submit()\">\n<form method=\"post\" action=\"{}\">\n{inputs}<noscript><button>Continue</button></noscript>\n</form>\n",
        esc(to)
    ))
    .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page("invalid_client", "Invalid client id or web redirect url.");
    }
    let redirect_uri = get("redirect_uri");
    if let Some(registered) = s.client.registered_redirect_uri()
        && registered != redirect_uri
    {
        return error_page("invalid_request", "Invalid web redirect url.");
    }
    let response_type = get("response_type");
    if !matches!(response_type, "code" | "code id_token") {
        return error_page("unsupported_response_type", "Invalid response type.");
    }
    let scopes: Vec<&str> = get("scope").split(' ').filter(|x| !x.is_empty()).collect();
    if scopes
        .iter()
        .any(|x| !matches!(*x, "name" | "email" | "openid"))
    {
        return error_page("invalid_scope", "Invalid scope.");
    }
    if scopes.iter().any(|x| matches!(*x, "name" | "email")) && get("response_mode") != "form_post"
    {
        return error_page(
            "invalid_request",
            "response_mode must be form_post when name or email scope is requested.",
        );
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/auth/authorize",
            &q,
            &ConsentText {
                lang: "en",
                title: "Sign in with Apple",
                heading: "Use your Apple ID (emulator)",
                prompt: "Which Apple ID signs in to Bookshelf?",
                cancel: "Cancel",
            },
            USERS.iter().map(|u| (u.key, u.email)),
        );
    };
    if pick == "deny" {
        return form_post(
            redirect_uri,
            &[
                ("error", "user_cancelled_authorize".into()),
                ("state", get("state").into()),
            ],
        );
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page("invalid_request", &format!("no emulated Apple ID `{pick}`"));
    };
    let code = format!("c{}.0.mxzs.{}", random_hex32(), random_token(16));
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            nonce: q.get("nonce").cloned(),
        },
    );
    let mut fields = vec![("state", get("state").to_string()), ("code", code.clone())];
    if response_type == "code id_token" {
        let Some(t) = id_token(&s, &user, q.get("nonce").map(String::as_str), &code) else {
            return error_page("server_error", "signing failed");
        };
        fields.push(("id_token", t));
    }
    // The name and email come once, at the first authorization, and only when asked for.
    if s.authorized.lock().expect("lock").insert(user.key) && !scopes.is_empty() {
        let mut u = serde_json::Map::new();
        if scopes.contains(&"name") {
            u.insert(
                "name".into(),
                json!({"firstName": user.first_name, "lastName": user.last_name}),
            );
        }
        if scopes.contains(&"email") {
            u.insert("email".into(), user.email.into());
        }
        fields.push(("user", Value::Object(u).to_string()));
    }
    form_post(redirect_uri, &fields)
}

fn random_hex32() -> String {
    s256(&random_token(16))
        .bytes()
        .take(32)
        .map(|b| format!("{:x}", b % 16))
        .collect()
}

fn id_token(s: &Shared, u: &AppleUser, nonce: Option<&str>, code: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let now = unix_now();
    let mut c = serde_json::Map::new();
    c.insert("iss".into(), s.client.base.clone().into());
    c.insert("aud".into(), s.client.client_id.clone().into());
    c.insert("exp".into(), (now + 86400).into());
    c.insert("iat".into(), now.into());
    c.insert("sub".into(), u.sub.into());
    if let Some(n) = nonce {
        c.insert("nonce".into(), n.into());
    }
    c.insert(
        "c_hash".into(),
        URL_SAFE_NO_PAD
            .encode(&Sha256::digest(code.as_bytes())[..16])
            .into(),
    );
    c.insert("email".into(), u.email.into());
    c.insert(
        "email_verified".into(),
        s.email_verified.lock().expect("lock").clone(),
    );
    c.insert(
        "is_private_email".into(),
        if u.private_email { "true" } else { "false" }.into(),
    );
    c.insert("auth_time".into(), now.into());
    c.insert("nonce_supported".into(), true.into());
    c.insert("real_user_status".into(), 2.into());
    sign_rs256(c)
}

fn apple_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

/// Whether the client secret is a JWT signed with the developer's key, for this app, still
/// valid and not made for longer than Apple allows.
fn secret_ok(s: &Shared, secret: &str) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(secret) else {
        return false;
    };
    if header.alg != jsonwebtoken::Algorithm::ES256 || header.kid.as_deref() != Some(&s.key_id) {
        return false;
    }
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_issuer(&[&s.team_id]);
    v.set_audience(&[&s.client.base]);
    v.sub = Some(s.client.client_id.clone());
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    let Ok(data) = jsonwebtoken::decode::<Value>(secret, &s.public_key, &v) else {
        return false;
    };
    let (iat, exp) = (data.claims["iat"].as_u64(), data.claims["exp"].as_u64());
    matches!((iat, exp), (Some(i), Some(e)) if e > i && e - i <= MAX_SECRET_LIFETIME)
}

async fn token(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id || !secret_ok(&s, get("client_secret")) {
        return apple_error("invalid_client");
    }
    if get("grant_type") != "authorization_code" {
        return apple_error("unsupported_grant_type");
    }
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return apple_error("invalid_grant");
    };
    if code.redirect_uri != get("redirect_uri") {
        return apple_error("invalid_grant");
    }
    let Some(id_token) = id_token(&s, &code.user, code.nonce.as_deref(), get("code")) else {
        return apple_error("server_error");
    };
    let access = format!("a{}.0.mxzs.{}", random_hex32(), random_token(16));
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": format!("r{}.0.mxzs.{}", random_hex32(), random_token(16)),
        "id_token": id_token,
    }))
    .into_response()
}
