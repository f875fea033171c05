//! A Twitch OpenID Connect emulator (id.twitch.tv), issuer `{base}/oauth2`:
//! `/oauth2/.well-known/openid-configuration`, `/oauth2/keys`, `/oauth2/authorize`,
//! `/oauth2/token`, `/oauth2/userinfo`.
//!
//! - Discovery lists `client_secret_post` only, no PKCE, and `claims_parameter_supported`.
//! - `GET /oauth2/authorize`: `client_id`, `redirect_uri` (the application's OAuth Redirect
//!   URL), `response_type=code`, `scope` (space-separated), `state`, `nonce`, and OIDC's
//!   `claims` (JSON): the id_token carries `email`, `email_verified`, `picture` and
//!   `preferred_username` only when asked for there, `email` only with `user:read:email`. An
//!   unknown client or redirect URL is an error page; `user=deny` returns
//!   `error=access_denied` with "The user denied you access".
//! - `POST /oauth2/token`, form: `client_id`, `client_secret`, `code`,
//!   `grant_type=authorization_code`, `redirect_uri`. Errors are Twitch's own shape,
//!   `{"status", "message"}`: 400 "invalid client", 403 "invalid client secret", 400 "Invalid
//!   authorization code" (unknown, used or expired: codes live ten minutes), 400 "Parameter
//!   redirect_uri does not match registered URI". Success: `access_token`, `expires_in`,
//!   `id_token` (RS256 on the emulators' key), `refresh_token`, **`scope` as a JSON array**,
//!   `token_type: bearer`.
//! - `GET /oauth2/userinfo`, Bearer: `sub` and what `claims.userinfo` asked for; a bad token
//!   is 401 `{"status": 401, "message": "invalid access token"}`.
//! - `GET /oauth2/validate`, `Authorization: OAuth <token>` (or Bearer): `client_id`, `login`,
//!   `scopes` (an array), `user_id`, `expires_in`; a bad token is 401 `{"status": 401,
//!   "message": "invalid access token"}`.
//!
//! [`TwitchEmulator::set_withheld_scope`] makes people refuse one scope on the consent page,
//! so the token's scope array lacks it; [`TwitchEmulator::set_token_client_id`] hands out
//! access tokens that belong to another application (a token substituted by a broken or
//! hostile upstream), which `validate` then names.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, bearer, consent_pick, esc,
    random_token, redirect, rsa_signing_key, sign_rs256, token_form, unix_now,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Twitch account.
#[derive(Debug, Clone, Copy)]
pub struct TwitchUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The numeric user id.
    pub id: &'static str,
    /// The lower-case account name.
    pub login: &'static str,
    /// The display name (`preferred_username`).
    pub display_name: &'static str,
    pub email: &'static str,
    pub email_verified: bool,
}

/// ИванПетров (a verified address) and МарияС (an address she never verified).
pub const USERS: [TwitchUser; 2] = [
    TwitchUser {
        key: "ivan",
        id: "141981764",
        login: "ivanpetrov",
        display_name: "ИванПетров",
        email: "ivan.petrov@example.ru",
        email_verified: true,
    },
    TwitchUser {
        key: "maria",
        id: "52637281",
        login: "marias",
        display_name: "МарияС",
        email: "maria@example.ru",
        email_verified: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: TwitchUser,
    redirect_uri: String,
    scope: Vec<String>,
    nonce: String,
    claims: Value,
}

#[derive(Clone)]
struct Grant {
    user: TwitchUser,
    scope: Vec<String>,
    claims: Value,
    /// The application the token belongs to.
    client_id: String,
}

struct Shared {
    client: Client,
    withheld_scope: Mutex<Option<String>>,
    token_client_id: Mutex<Option<String>>,
    grants: Grants<Code, Grant>,
}

/// A running Twitch emulator on 127.0.0.1. Stops when dropped.
pub struct TwitchEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl TwitchEmulator {
    /// An application on a free loopback port; panics when none can be bound, which only
    /// tests want.
    pub async fn start() -> TwitchEmulator {
        Self::serve(crate::free_loopback_port("Twitch").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<TwitchEmulator> {
        let addr = listener.local_addr()?;
        // Created now, not at the first sign-in (a debug build takes seconds).
        let _ = rsa_signing_key();
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "hof5gwx0su6owfnys0yan9c87zr6t",
                "41vpdji4e9gif29md0ouet6fktd2",
            ),
            withheld_scope: Mutex::new(None),
            token_client_id: Mutex::new(None),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2/.well-known/openid-configuration", get(discovery))
            .route("/oauth2/keys", get(keys))
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/token", post(token))
            .route("/oauth2/userinfo", get(userinfo))
            .route("/oauth2/validate", get(validate))
            .with_state(shared.clone());
        Ok(TwitchEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `{base}/oauth2`: the `issuer_url` (it stands for `https://id.twitch.tv/oauth2`).
    pub fn issuer(&self) -> String {
        format!("{}/oauth2", self.shared.client.base)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Registers the application's OAuth Redirect URL. Until one is registered, any is
    /// accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// The scope people refuse from now on (`None`: they grant all).
    pub fn set_withheld_scope(&self, scope: Option<&str>) {
        *self.shared.withheld_scope.lock().expect("lock") = scope.map(String::from);
    }

    /// From now on access tokens belong to application `client_id` (`None`: to this one).
    pub fn set_token_client_id(&self, client_id: Option<&str>) {
        *self.shared.token_client_id.lock().expect("lock") = client_id.map(String::from);
    }

    /// The Twitch user id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Twitch user `{key}`"))
    }
}

fn issuer(s: &Shared) -> String {
    format!("{}/oauth2", s.client.base)
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let i = issuer(&s);
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/keys"),
        "response_types_supported": ["id_token", "code", "token", "code id_token", "token id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "claims_supported": ["aud", "exp", "iat", "iss", "sub", "email", "email_verified",
            "picture", "preferred_username", "updated_at"],
        "claims_parameter_supported": true,
    }))
}

async fn keys() -> Json<Value> {
    Json(json!({"keys": [rsa_signing_key().1]}))
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Twitch</title>\n<h1>Something went wrong</h1>\n<p>{}</p>\n",
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
        client: "invalid client",
        redirect: "redirect_mismatch: Parameter redirect_uri does not match registered URI",
        not_a_url: "invalid redirect_uri",
    };
    let mut back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("unsupported_response_type");
    }
    let claims: Value = match get("claims") {
        "" => Value::Null,
        c => match serde_json::from_str(c) {
            Ok(v) => v,
            Err(_) => return error_page("invalid claims parameter"),
        },
    };
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/oauth2/authorize",
            &ConsentText {
                lang: "en",
                title: "Twitch",
                heading: "An application would like to connect to your Twitch account (emulator)",
                prompt: "Authorize as:",
                cancel: "Cancel",
            },
        ),
        USERS.iter().map(|u| (u.key, u.display_name)),
        &back,
        "The user denied you access",
    ) {
        Ok(pick) => pick,
        Err(answer) => return *answer,
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let withheld = s.withheld_scope.lock().expect("lock").clone();
    let code = random_token(22);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope")
                .split(' ')
                .filter(|x| !x.is_empty() && Some(*x) != withheld.as_deref())
                .map(String::from)
                .collect(),
            nonce: get("nonce").to_string(),
            claims,
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("scope", get("scope"))
        .append_pair("state", get("state"));
    redirect(&back)
}

/// Twitch's error answer.
fn twitch_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// The claims of `claims.<part>` (`id_token` or `userinfo`) the grant may show.
fn requested(
    user: &TwitchUser,
    scope: &[String],
    claims: &Value,
    part: &str,
) -> Map<String, Value> {
    let asked = |k: &str| claims.get(part).and_then(|p| p.get(k)).is_some();
    let mut c = Map::new();
    if asked("email") && scope.iter().any(|s| s == "user:read:email") {
        c.insert("email".into(), user.email.into());
        if asked("email_verified") {
            c.insert("email_verified".into(), user.email_verified.into());
        }
    }
    if asked("picture") {
        c.insert(
            "picture".into(),
            format!(
                "https://static-cdn.jtvnw.net/jtv_user_pictures/{}-profile_image-300x300.png",
                user.id
            )
            .into(),
        );
    }
    if asked("preferred_username") {
        c.insert("preferred_username".into(), user.display_name.into());
    }
    c
}

async fn token(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return twitch_error(StatusCode::BAD_REQUEST, "invalid client");
    }
    if get("client_secret") != s.client.client_secret {
        return twitch_error(StatusCode::FORBIDDEN, "invalid client secret");
    }
    if get("grant_type") != "authorization_code" {
        return twitch_error(StatusCode::BAD_REQUEST, "missing or invalid grant_type");
    }
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return twitch_error(StatusCode::BAD_REQUEST, "Invalid authorization code");
    };
    if code.redirect_uri != get("redirect_uri") {
        return twitch_error(
            StatusCode::BAD_REQUEST,
            "Parameter redirect_uri does not match registered URI",
        );
    }
    let access = random_token(22);
    s.grants.issue_token(
        &access,
        Grant {
            user: code.user,
            scope: code.scope.clone(),
            claims: code.claims.clone(),
            client_id: s
                .token_client_id
                .lock()
                .expect("lock")
                .clone()
                .unwrap_or_else(|| s.client.client_id.clone()),
        },
    );
    let mut answer = json!({
        "access_token": access,
        "expires_in": 14_124,
        "refresh_token": random_token(38),
        "scope": code.scope,
        "token_type": "bearer",
    });
    if code.scope.iter().any(|x| x == "openid") {
        let now = unix_now();
        let mut c = requested(&code.user, &code.scope, &code.claims, "id_token");
        for (k, v) in [
            ("aud", json!(s.client.client_id)),
            ("exp", json!(now + 900)),
            ("iat", json!(now)),
            ("iss", json!(issuer(&s))),
            ("sub", json!(code.user.id)),
            ("azp", json!(s.client.client_id)),
        ] {
            c.insert(k.into(), v);
        }
        if !code.nonce.is_empty() {
            c.insert("nonce".into(), code.nonce.clone().into());
        }
        let Some(t) = sign_rs256(c) else {
            return twitch_error(StatusCode::INTERNAL_SERVER_ERROR, "signing failed");
        };
        answer["id_token"] = t.into();
    }
    Json(answer).into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(g) = s.grants.token_user(bearer(&headers)) else {
        return twitch_error(StatusCode::UNAUTHORIZED, "invalid access token");
    };
    let mut c = requested(&g.user, &g.scope, &g.claims, "userinfo");
    c.insert("aud".into(), s.client.client_id.clone().into());
    c.insert("iss".into(), issuer(&s).into());
    c.insert("sub".into(), g.user.id.into());
    Json(Value::Object(c)).into_response()
}

async fn validate(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("OAuth "))
        .unwrap_or_else(|| bearer(&headers));
    let Some(g) = s.grants.token_user(token) else {
        return twitch_error(StatusCode::UNAUTHORIZED, "invalid access token");
    };
    Json(json!({
        "client_id": g.client_id,
        "login": g.user.login,
        "scopes": g.scope,
        "user_id": g.user.id,
        "expires_in": 14_000,
    }))
    .into_response()
}
