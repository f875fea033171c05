//! A LINE Login v2.1 emulator: `oauth2/v2.1/authorize` (access.line.me) and
//! `oauth2/v2.1/token` (api.line.me), on one loopback port that stands for both origins.
//!
//! - `GET /oauth2/v2.1/authorize`: `response_type=code`, `client_id` (the channel ID),
//!   `redirect_uri` (the channel's Callback URL), `state`, `scope` (space-separated, must hold
//!   `openid` for an id_token), `nonce`, optional PKCE S256. A bad request is LINE's error
//!   page (HTTP 400); `user=deny` returns `error=access_denied` with
//!   `error_description=The user has denied the approval`.
//! - `POST /oauth2/v2.1/token`, form: `grant_type=authorization_code`, `code`,
//!   `redirect_uri`, `client_id`, `client_secret`, `code_verifier` after a challenge. Errors
//!   are RFC 6749's with HTTP 400: `invalid_client` "invalid client_secret", `invalid_grant`
//!   "invalid authorization code" (unknown, used or expired: codes live ten minutes),
//!   "redirect_uri does not match", "invalid code_verifier". Success: `access_token`,
//!   `expires_in`, `id_token`, `refresh_token`, `scope`, `token_type: Bearer`. The id_token
//!   is what web login issues: **HS256 signed with the channel secret**, no `kid`, with `iss`,
//!   `sub`, `aud` (the channel ID), `exp`, `iat`, `nonce`, `amr`, `name` and `picture` (with
//!   `profile`), `email` (with `email`, when the account has one).
//!
//! To play a broken or hostile upstream: [`LineEmulator::set_id_token_audience`] issues
//! id_tokens to another channel, [`LineEmulator::set_id_token_nonce`] with another nonce (a
//! token of another sign-in), and [`LineEmulator::set_signing_secret`] signs them with another
//! channel's secret.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, code_redirect, consent_pick, esc,
    oauth_error, random_token, s256, token_form, unix_now,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake LINE account.
#[derive(Debug, Clone, Copy)]
pub struct LineUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The LINE user id (`U` and 32 hex digits).
    pub sub: &'static str,
    pub name: &'static str,
    /// "" for an account without a registered address.
    pub email: &'static str,
}

/// Иван Петров (an address) and Мария Смирнова (none registered with LINE).
pub const USERS: [LineUser; 2] = [
    LineUser {
        key: "ivan",
        sub: "U4af4980629a1b2c3d4e5f6a7b8c9d0e1",
        name: "Иван Петров",
        email: "ivan.petrov@example.ru",
    },
    LineUser {
        key: "maria",
        sub: "U9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e",
        name: "Мария Смирнова",
        email: "",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);
const ISSUER: &str = "https://access.line.me";

#[derive(Clone)]
struct Code {
    user: LineUser,
    redirect_uri: String,
    scope: String,
    nonce: String,
    challenge: String,
}

#[derive(Default)]
struct Faults {
    audience: Option<String>,
    nonce: Option<String>,
    secret: Option<String>,
}

struct Shared {
    client: Client,
    faults: Mutex<Faults>,
    grants: Grants<Code, LineUser>,
}

/// A running LINE Login emulator on 127.0.0.1. Stops when dropped.
pub struct LineEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl LineEmulator {
    /// A channel on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> LineEmulator {
        Self::serve(crate::free_loopback_port("LINE").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<LineEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "1660000000", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
            faults: Mutex::new(Faults::default()),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2/v2.1/authorize", get(authorize))
            .route("/oauth2/v2.1/token", post(token))
            .with_state(shared.clone());
        Ok(LineEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.line.me`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://access.line.me/oauth2/v2.1/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/v2.1/authorize", self.shared.client.base)
    }

    /// Registers the channel's Callback URL. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// From now on id_tokens are issued to channel `aud` (`None`: to this one).
    pub fn set_id_token_audience(&self, aud: Option<&str>) {
        self.shared.faults.lock().expect("lock").audience = aud.map(String::from);
    }

    /// From now on id_tokens carry `nonce` instead of the authorization request's (`None`:
    /// the request's).
    pub fn set_id_token_nonce(&self, nonce: Option<&str>) {
        self.shared.faults.lock().expect("lock").nonce = nonce.map(String::from);
    }

    /// From now on id_tokens are signed with `secret`, another channel's (`None`: this
    /// channel's).
    pub fn set_signing_secret(&self, secret: Option<&str>) {
        self.shared.faults.lock().expect("lock").secret = secret.map(String::from);
    }

    /// The LINE user id of the fake user `key`.
    pub fn sub_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.sub)
            .unwrap_or_else(|| panic!("no fake LINE user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>LINE Login</title>\n<h1>400 Bad Request</h1>\n<p>{}</p>\n",
            esc(message)
        )),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let errors = FrontErrors {
        client: "Invalid client_id",
        redirect: "Invalid redirect_uri value",
        not_a_url: "Invalid redirect_uri value",
    };
    let back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("Unsupported response_type");
    }
    if !get("code_challenge").is_empty() && get("code_challenge_method") != "S256" {
        return error_page("Unsupported code_challenge_method");
    }
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/oauth2/v2.1/authorize",
            &ConsentText {
                lang: "ja",
                title: "LINE Login",
                heading: "LINEでログイン (emulator)",
                prompt: "ログインするアカウント:",
                cancel: "キャンセル",
            },
        ),
        USERS.iter().map(|u| (u.key, u.name)),
        &back,
        "The user has denied the approval",
    ) {
        Ok(pick) => pick,
        Err(answer) => return *answer,
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(15);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope").to_string(),
            nonce: get("nonce").to_string(),
            challenge: get("code_challenge").to_string(),
        },
    );
    code_redirect(back, &code, get("state"))
}

fn id_token(s: &Shared, code: &Code) -> Option<String> {
    let faults = s.faults.lock().expect("lock");
    let has = |x: &str| code.scope.split(' ').any(|y| y == x);
    let now = unix_now();
    let mut c = json!({
        "iss": ISSUER,
        "sub": code.user.sub,
        "aud": faults.audience.clone().unwrap_or_else(|| s.client.client_id.clone()),
        "exp": now + 3600,
        "iat": now,
        "amr": ["linesso"],
    });
    let nonce = faults.nonce.clone().unwrap_or_else(|| code.nonce.clone());
    if !nonce.is_empty() {
        c["nonce"] = nonce.into();
    }
    if has("profile") {
        c["name"] = code.user.name.into();
        c["picture"] = format!("https://profile.line-scdn.net/0h{}", &code.user.sub[1..12]).into();
    }
    if has("email") && !code.user.email.is_empty() {
        c["email"] = code.user.email.into();
    }
    let secret = faults
        .secret
        .clone()
        .unwrap_or_else(|| s.client.client_secret.clone());
    // What web login issues: HS256 under the channel secret, no `kid`.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .ok()
}

async fn token(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let bad = |error: &str, d: &str| oauth_error(StatusCode::BAD_REQUEST, error, d);
    if get("grant_type") != "authorization_code" {
        return bad("unsupported_grant_type", "unsupported grant_type");
    }
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return bad("invalid_client", "invalid client_secret");
    }
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return bad("invalid_grant", "invalid authorization code");
    };
    if code.redirect_uri != get("redirect_uri") {
        return bad("invalid_grant", "redirect_uri does not match");
    }
    if !code.challenge.is_empty() && s256(get("code_verifier")) != code.challenge {
        return bad("invalid_grant", "invalid code_verifier");
    }
    let access = random_token(128);
    s.grants.issue_token(&access, code.user);
    let mut answer = json!({
        "access_token": access,
        "expires_in": 2_592_000,
        "refresh_token": random_token(20),
        "scope": code.scope,
        "token_type": "Bearer",
    });
    if code.scope.split(' ').any(|x| x == "openid") {
        let Some(t) = id_token(&s, &code) else {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "signing failed",
            );
        };
        answer["id_token"] = t.into();
    }
    Json(answer).into_response()
}
