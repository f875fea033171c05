//! A Yandex ID emulator: Yandex OAuth (`oauth.yandex.ru/authorize`, `/token`) and the profile
//! call (`login.yandex.ru/info`) on one loopback port, with Yandex's parameters, answers and
//! refusals.
//!
//! - `GET /authorize`: `response_type=code`, `client_id`, optional `redirect_uri`, `scope`
//!   (space-separated rights such as `login:info login:email login:avatar`; without it the
//!   rights of the app's settings), `state`, PKCE `code_challenge[_method]` (`S256` or
//!   `plain`). An unknown `client_id`, another `response_type` or a `redirect_uri` that is not
//!   one of the app's registered ones ([`YandexEmulator::register_redirect_uri`]) is an error
//!   **page**, never a redirect, as at Yandex. Otherwise a consent page lists the fake users;
//!   `user=<key>` (or [`YandexEmulator::set_next_user`]) picks one at once, `deny=1` (or
//!   `user=deny`) goes back
//!   with `error=access_denied`.
//! - `POST /token` (form): `grant_type=authorization_code`, `code`, `code_verifier` when the
//!   code was issued with a challenge; the client authenticates with HTTP Basic or with
//!   `client_id`/`client_secret` in the body. Errors are RFC 6749 JSON with HTTP 400:
//!   `unsupported_grant_type`, `invalid_client` (unknown app, wrong secret), `invalid_grant`
//!   (unknown, reused, expired — 10 minutes — or another app's code, wrong verifier). Yandex
//!   takes no `redirect_uri` here: it checks it at `/authorize` only.
//! - `GET /info?format=json`: the token under `Authorization: OAuth <token>` (or the older
//!   `oauth_token` parameter); anything else is HTTP 401. The answer's fields follow the granted
//!   rights: `id`, `login`, `client_id`, `psuid` always; names and `sex` with `login:info`;
//!   `default_email`/`emails` with `login:email`; `default_avatar_id`/`is_avatar_empty` with
//!   `login:avatar`; `birthday` with `login:birthday`; `default_phone` with
//!   `login:default_phone`.

use crate::common::{Client, client_credentials, esc, query_without_user, random_hex, s256};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake Yandex account.
#[derive(Debug, Clone, Copy)]
pub struct YandexUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// Yandex's user id: digits, sent as a JSON string.
    pub id: &'static str,
    pub login: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// `None`: an account without an email (signed up with a phone number).
    pub email: Option<&'static str>,
    /// `None`: no avatar (`is_avatar_empty: true`).
    pub avatar_id: Option<&'static str>,
    pub sex: &'static str,
    pub birthday: Option<&'static str>,
    pub phone: Option<&'static str>,
}

/// Иван Петров (email, avatar), Мария Смирнова (phone only, no avatar), John Smith (email).
pub const USERS: [YandexUser; 3] = [
    YandexUser {
        key: "ivan",
        id: "1000034426",
        login: "ivan.petrov",
        first_name: "Иван",
        last_name: "Петров",
        email: Some("ivan.petrov@yandex.ru"),
        avatar_id: Some("131652443/Qk1RQQ-1"),
        sex: "male",
        birthday: Some("1990-04-12"),
        phone: Some("+79990000001"),
    },
    YandexUser {
        key: "maria",
        id: "1000034427",
        login: "phne-7kq2m4x",
        first_name: "Мария",
        last_name: "Смирнова",
        email: None,
        avatar_id: None,
        sex: "female",
        birthday: None,
        phone: Some("+79990000002"),
    },
    YandexUser {
        key: "john",
        id: "1000034428",
        login: "john.smith",
        first_name: "John",
        last_name: "Smith",
        email: Some("john.smith@yandex.com"),
        avatar_id: Some("28765/enc-1"),
        sex: "male",
        birthday: None,
        phone: None,
    },
];

/// Yandex's confirmation codes live ten minutes.
const CODE_TTL: Duration = Duration::from_secs(600);
/// The rights an app without `scope` gets (those chosen in its settings).
const APP_RIGHTS: &str = "login:info login:email login:avatar";

struct Code {
    client_id: String,
    challenge: Option<(String, String)>,
    user: YandexUser,
    scopes: Vec<String>,
    issued: Instant,
}

struct Token {
    user: YandexUser,
    scopes: Vec<String>,
    client_id: String,
}

struct Shared {
    client: Client,
    redirect_uris: Mutex<Vec<String>>,
    code_ttl: Mutex<Duration>,
    /// The app `/info` names as the token's (`None`: the app that asked for it).
    token_client: Mutex<Option<String>>,
    codes: Mutex<HashMap<String, Code>>,
    tokens: Mutex<HashMap<String, Token>>,
}

/// A running Yandex ID emulator on 127.0.0.1. Stops when dropped.
pub struct YandexEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl YandexEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> YandexEmulator {
        Self::serve(crate::free_loopback_port("Yandex").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<YandexEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            // Yandex's app ids and secrets are 32 hex digits.
            client: Client::new(
                addr,
                "9c3f1e2a7b5d4c6e8f0a1b2c3d4e5f60",
                "e7a1c3b5d7f9e1a3c5b7d9f1e3a5c7b9",
            ),
            redirect_uris: Mutex::new(vec![]),
            code_ttl: Mutex::new(CODE_TTL),
            token_client: Mutex::new(None),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/info", get(info))
            .with_state(shared.clone());
        Ok(YandexEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://login.yandex.ru`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    /// Stands for `https://oauth.yandex.ru/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/authorize", self.shared.client.base)
    }
    /// Stands for `https://oauth.yandex.ru/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.client.base)
    }

    /// Adds a Redirect URI to the app's settings; once one is registered, `/authorize`
    /// refuses every other.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared
            .redirect_uris
            .lock()
            .expect("lock")
            .push(uri.into());
    }

    /// How long codes issued from now on stay valid (Yandex: ten minutes).
    pub fn set_code_ttl(&self, ttl: Duration) {
        *self.shared.code_ttl.lock().expect("lock") = ttl;
    }

    /// Tokens issued from now on are reported by `/info` as another app's (`client_id`), as
    /// a token obtained by some other Yandex app would be; `None` restores the truth.
    pub fn set_token_client_id(&self, client_id: Option<&str>) {
        *self.shared.token_client.lock().expect("lock") = client_id.map(String::from);
    }

    /// Revokes every token issued so far (`/info` then answers 401).
    pub fn revoke_tokens(&self) {
        self.shared.tokens.lock().expect("lock").clear();
    }
}

/// Yandex's error page for a request it cannot send back to the app.
fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>Ошибка</title>\n<h1>Ошибка</h1>\n<p>{}</p>\n",
            esc(message)
        )),
    )
        .into_response()
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(to) else {
        return error_page("redirect_uri is not an absolute URL");
    };
    url.query_pairs_mut().extend_pairs(params);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page("Неизвестное приложение: client_id не найден (invalid_client).");
    }
    if get("response_type") != "code" {
        return error_page("response_type должен быть code или token (unsupported_response_type).");
    }
    let registered = s.redirect_uris.lock().expect("lock").clone();
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) if registered.is_empty() || registered.contains(r) => r.clone(),
        Some(_) => {
            return error_page(
                "redirect_uri не совпадает с Redirect URI, указанным в настройках приложения (redirect_uri mismatch).",
            );
        }
        // With one registered URI, Yandex uses it.
        None => match registered.first() {
            Some(r) => r.clone(),
            None => return error_page("Не указан redirect_uri."),
        },
    };
    let state = get("state");
    let challenge = match (q.get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), m @ ("" | "plain" | "S256")) => Some((
            c.clone(),
            if m.is_empty() { "plain" } else { m }.to_string(),
        )),
        (Some(_), _) => {
            return redirect(
                &redirect_uri,
                &[
                    ("error", "invalid_request"),
                    (
                        "error_description",
                        "code_challenge_method must be plain or S256",
                    ),
                    ("state", state),
                ],
            );
        }
    };
    let pick = s.client.pick(&q);
    if q.contains_key("deny") || pick.as_deref() == Some("deny") {
        return redirect(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
                ("state", state),
            ],
        );
    }
    let Some(pick) = pick else {
        return consent_page(&q);
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let scope = match get("scope") {
        "" => APP_RIGHTS,
        s => s,
    };
    let code = random_hex("")[..16].to_string();
    s.codes.lock().expect("lock").insert(
        code.clone(),
        Code {
            client_id: s.client.client_id.clone(),
            challenge,
            user,
            scopes: scope.split_whitespace().map(String::from).collect(),
            issued: Instant::now(),
        },
    );
    redirect(&redirect_uri, &[("code", &code), ("state", state)])
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/authorize?{}&amp;user={}\">{} {}</a> <small>{} · {}</small></li>\n",
            esc(&base),
            u.key,
            esc(u.first_name),
            esc(u.last_name),
            esc(u.login),
            esc(u.email.unwrap_or("без почты"))
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>Яндекс ID — доступ к данным</title>\n<h1>Эмулятор Яндекс ID</h1>\n<p>Приложение запрашивает доступ: <code>{}</code>. Войти как:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/authorize?{}&amp;deny=1\">Отмена</a></p>\n",
        esc(q.get("scope").map(String::as_str).unwrap_or(APP_RIGHTS)),
        esc(&base)
    ))
    .into_response()
}

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    s.client.count_token_request();
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return token_error("unsupported_grant_type", "Unsupported grant_type");
    }
    let (client_id, secret) = client_credentials(&headers, &f);
    if client_id != s.client.client_id {
        return token_error("invalid_client", "Client not found");
    }
    if secret != s.client.client_secret {
        return token_error("invalid_client", "Wrong client secret");
    }
    // A code works once: whatever happens next, it is gone.
    let Some(code) = s.codes.lock().expect("lock").remove(get("code")) else {
        return token_error("invalid_grant", "Invalid code");
    };
    if code.client_id != client_id {
        return token_error("invalid_grant", "Invalid code");
    }
    if code.issued.elapsed() >= *s.code_ttl.lock().expect("lock") {
        return token_error("invalid_grant", "Code has expired");
    }
    if let Some((challenge, method)) = &code.challenge {
        let verifier = get("code_verifier");
        let computed = if method == "S256" {
            s256(verifier)
        } else {
            verifier.to_string()
        };
        if verifier.is_empty() || &computed != challenge {
            return token_error("invalid_grant", "Invalid code_verifier");
        }
    }
    let access = format!("y0_{}", random_hex("AgAAAA"));
    let token_client = s
        .token_client
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or(client_id);
    s.tokens.lock().expect("lock").insert(
        access.clone(),
        Token {
            user: code.user,
            scopes: code.scopes,
            client_id: token_client,
        },
    );
    Json(json!({
        "token_type": "bearer",
        "access_token": access,
        "expires_in": 31_536_000,
        "refresh_token": format!("1:{}", random_hex("")),
    }))
    .into_response()
}

async fn info(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("OAuth "))
        .map(String::from);
    let Some(t) = from_header.or_else(|| q.get("oauth_token").cloned()) else {
        return (StatusCode::UNAUTHORIZED, "OAuth token is missing").into_response();
    };
    let tokens = s.tokens.lock().expect("lock");
    let Some(tok) = tokens.get(&t) else {
        return (StatusCode::UNAUTHORIZED, "invalid OAuth token").into_response();
    };
    let u = tok.user;
    let has = |right: &str| tok.scopes.iter().any(|x| x == right);
    let mut o = json!({
        "id": u.id,
        "login": u.login,
        "client_id": tok.client_id,
        "psuid": format!("1.AAbC.{}", u.id),
    });
    if has("login:info") {
        o["first_name"] = u.first_name.into();
        o["last_name"] = u.last_name.into();
        o["display_name"] = u.login.into();
        o["real_name"] = format!("{} {}", u.first_name, u.last_name).into();
        o["sex"] = u.sex.into();
    }
    if has("login:email")
        && let Some(e) = u.email
    {
        o["default_email"] = e.into();
        o["emails"] = json!([e]);
    }
    if has("login:avatar") {
        o["default_avatar_id"] = u.avatar_id.unwrap_or("0/0-0").into();
        o["is_avatar_empty"] = u.avatar_id.is_none().into();
    }
    if has("login:birthday") {
        o["birthday"] = u.birthday.map(Value::from).unwrap_or(Value::Null);
    }
    if has("login:default_phone")
        && let Some(p) = u.phone
    {
        o["default_phone"] = json!({"id": 12345678, "number": p});
    }
    Json(o).into_response()
}
