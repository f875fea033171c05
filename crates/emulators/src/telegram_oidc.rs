//! A "Log In with Telegram" OpenID Connect emulator (`oauth.telegram.org`), on one loopback
//! port: discovery, the authorization page, the token endpoint and the signing keys.
//!
//! - `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json` (one RS256 key).
//! - `GET /auth`: `client_id` (the bot id), `redirect_uri` (one of the bot's allowed URLs,
//!   [`TelegramOidcEmulator::register_redirect_uri`]; until one is registered any is accepted),
//!   `response_type=code`, `scope` (must hold `openid`), `state`, `nonce`, and PKCE
//!   (`code_challenge` with `code_challenge_method=S256`, required). An unknown bot or another
//!   `redirect_uri` is an error page; `user=deny` goes back with `error=access_denied`.
//! - `POST /token`: `grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`,
//!   the client authenticated with `client_secret_basic` or `client_secret_post`. Errors are
//!   RFC 6749 JSON: `invalid_client` (401), `invalid_grant` (unknown, reused or expired code,
//!   another `redirect_uri`, a wrong verifier), `unsupported_grant_type`.
//! - The id_token (RS256): `iss`, `aud` (the bot id), `sub` (the user's Telegram id),
//!   `iat`, `exp`, `nonce`, `name`, `preferred_username`, `picture`, and `phone_number` with
//!   the `phone` scope. Never an email.

use crate::common::{
    Client, Grants, Redeemed, client_credentials, esc, oauth_error, query_without_user, random_hex,
    random_token, redirect, s256, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The emulator's id_token signing key (fake, made for this emulator).
const SIGNING_KEY: &str = include_str!("telegram_oidc_key.pem");
const KID: &str = "tg-emulator-1";

/// A fake Telegram account.
#[derive(Debug, Clone, Copy)]
pub struct TelegramUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub id: u64,
    pub name: &'static str,
    pub username: &'static str,
    pub phone: &'static str,
}

/// Иван Петров and Мария Смирнова.
pub const USERS: [TelegramUser; 2] = [
    TelegramUser {
        key: "ivan",
        id: 184_467_321,
        name: "Иван Петров",
        username: "ivan_petrov",
        phone: "+79161234567",
    },
    TelegramUser {
        key: "maria",
        id: 5_512_093_877,
        name: "Мария Смирнова",
        username: "maria_s",
        phone: "+79037654321",
    },
];

const CODE_TTL: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Code {
    user: TelegramUser,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    phone: bool,
}

struct Shared {
    client: Client,
    key: RsaPrivateKey,
    grants: Grants<Code, ()>,
}

/// A running Telegram OIDC emulator on 127.0.0.1. Stops when dropped.
pub struct TelegramOidcEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl TelegramOidcEmulator {
    /// A bot on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> TelegramOidcEmulator {
        Self::serve(crate::free_loopback_port("Telegram OIDC").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<TelegramOidcEmulator> {
        let addr = listener.local_addr()?;
        let key = RsaPrivateKey::from_pkcs8_pem(SIGNING_KEY)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "7712345678", "tg-login-secret-6f1c2a9e4b7d"),
            key,
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/auth", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        Ok(TelegramOidcEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `issuer_url` (it stands for `https://oauth.telegram.org`).
    pub fn issuer(&self) -> &str {
        &self.shared.client.base
    }

    /// Adds `uri` to the bot's allowed URLs.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The Telegram id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> u64 {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Telegram user `{key}`"))
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let b = &s.client.base;
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/auth"),
        "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "phone", "telegram:bot_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "preferred_username", "picture", "phone_number"],
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    let public = s.key.to_public_key();
    Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]}))
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Telegram Login</title>\n<h1>Log in with Telegram</h1>\n<p>{}</p>\n",
        esc(message)
    ))
    .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page("Bot not found (invalid client_id).");
    }
    let redirect_uri = get("redirect_uri");
    if let Some(allowed) = s.client.registered_redirect_uri()
        && allowed != redirect_uri
    {
        return error_page("redirect_uri is not among the bot's allowed URLs.");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("Invalid redirect_uri.");
    };
    if get("response_type") != "code" || !get("scope").split(' ').any(|x| x == "openid") {
        return error_page("Unsupported response_type or scope without openid.");
    }
    if get("code_challenge").is_empty() || get("code_challenge_method") != "S256" {
        return error_page("PKCE with S256 is required.");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(24);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            challenge: get("code_challenge").to_string(),
            nonce: get("nonce").to_string(),
            phone: get("scope").split(' ').any(|x| x == "phone"),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/auth?{}&amp;user={}\">{} (@{})</a></li>\n",
            esc(&base),
            u.key,
            esc(u.name),
            esc(u.username)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Log in with Telegram</title>\n<h1>Log in with Telegram (emulator)</h1>\n<p>Choose the Telegram account to log in with:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/auth?{}&amp;user=deny\">Cancel</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

fn jwt(key: &RsaPrivateKey, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(input.as_bytes()),
        )
        .unwrap_or_default();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = client_credentials(&headers, &form);
    if id != s.client.client_id || secret != s.client.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only authorization_code is supported",
        );
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The authorization code has expired",
            );
        }
        Redeemed::Unknown | Redeemed::Used => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The authorization code is invalid or was already used",
            );
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        );
    }
    if s256(get("code_verifier")) != code.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let u = code.user;
    let mut claims = json!({
        "iss": s.client.base,
        "aud": s.client.client_id,
        "sub": u.id.to_string(),
        "iat": now,
        "exp": now + 3600,
        "name": u.name,
        "preferred_username": u.username,
        "picture": format!("https://t.me/i/userpic/320/{}.jpg", u.username),
    });
    if !code.nonce.is_empty() {
        claims["nonce"] = code.nonce.clone().into();
    }
    if code.phone {
        claims["phone_number"] = u.phone.into();
    }
    Json(json!({
        "access_token": random_hex("tg_"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": jwt(&s.key, &claims),
        "scope": if code.phone { "openid profile phone" } else { "openid profile" },
    }))
    .into_response()
}
