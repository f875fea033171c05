//! An OK.ru (Одноклассники) emulator: `connect.ok.ru/oauth/authorize`, `api.ok.ru/oauth/token.do`
//! and the REST API's `fb.do?method=users.getCurrentUser`, on one loopback port.
//!
//! - `GET /oauth/authorize`: `client_id`, `scope` (`;`-separated), `response_type=code`,
//!   `redirect_uri`, `state`. An unknown app or a `redirect_uri` other than the registered one
//!   ([`OkEmulator::register_redirect_uri`]) is an error page; `GET_EMAIL` without OK's grant
//!   ([`OkEmulator::set_email_permission`]) too. `user=deny` goes back with
//!   `error=access_denied`; `user=<key>` (or [`OkEmulator::set_next_user`]) picks a person.
//! - `POST /oauth/token.do` with `code`, `client_id`, `client_secret`, `redirect_uri`,
//!   `grant_type=authorization_code` in the query string (or a form body): errors are
//!   `{error, error_description}` with HTTP 400 (`invalid_client`; `invalid_grant` for an
//!   unknown, reused or expired code — OK's codes live two minutes — or another
//!   `redirect_uri`); the status is the emulator's reading, OK documents only the body.
//! - `GET|POST /fb.do`: `application_key`, `method`, `format=json`, `access_token`, `sig`, any
//!   other parameters. Errors are HTTP 200 `{error_code, error_msg, error_data}`: 101
//!   PARAM_API_KEY (unknown application key), 104 PARAM_SIGNATURE (a `sig` that is not OK's MD5
//!   over the sorted parameters and `md5(access_token + secret key)`), 102
//!   PARAM_SESSION_EXPIRED (unknown or revoked token, [`OkEmulator::revoke_tokens`]), 3
//!   METHOD (another method). `email` is answered only with `GET_EMAIL` granted and asked for.

use crate::common::{Client, Grants, Redeemed, esc, query_without_user, random_hex, redirect};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A fake OK.ru account.
#[derive(Debug, Clone, Copy)]
pub struct OkUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub uid: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// Empty: the account has no confirmed email.
    pub email: &'static str,
    pub gender: &'static str,
}

/// Иван Петров (with an email) and Мария Смирнова (without).
pub const USERS: [OkUser; 2] = [
    OkUser {
        key: "ivan",
        uid: "574893018273",
        first_name: "Иван",
        last_name: "Петров",
        email: "ivan.petrov@ok.example",
        gender: "male",
    },
    OkUser {
        key: "maria",
        uid: "574893018274",
        first_name: "Мария",
        last_name: "Смирнова",
        email: "",
        gender: "female",
    },
];

const CODE_TTL: Duration = Duration::from_secs(120);

#[derive(Clone)]
struct Code {
    user: OkUser,
    redirect_uri: String,
    scope: String,
}

struct Shared {
    client: Client,
    application_key: String,
    email_permission: AtomicBool,
    /// Tokens map to (user, scope).
    grants: Grants<Code, (OkUser, String)>,
}

/// A running OK.ru emulator on 127.0.0.1. Stops when dropped.
pub struct OkEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

fn md5_hex(data: &str) -> String {
    Md5::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl OkEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> OkEmulator {
        Self::serve(crate::free_loopback_port("OK").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<OkEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "512002841738", "5D1F8E3A9C27B4E6A0F3D8C1"),
            application_key: "CBAFJIICEBABABABA".into(),
            email_permission: AtomicBool::new(true),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token.do", post(token))
            .route("/fb.do", get(api).post(api))
            .with_state(shared.clone());
        Ok(OkEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// The application's public key (`odnoklassniki_application_key`).
    pub fn application_key(&self) -> &str {
        &self.shared.application_key
    }

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.ok.ru`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://connect.ok.ru/oauth/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth/authorize", self.shared.client.base)
    }

    /// The only `redirect_uri` accepted from now on (until then, any).
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// Whether OK's support granted the app `GET_EMAIL` (on by default).
    pub fn set_email_permission(&self, on: bool) {
        self.shared.email_permission.store(on, Ordering::SeqCst);
    }

    crate::common::grant_accessors!();
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>Ошибка</title>\n<h1>Ошибка авторизации</h1>\n<p>{}</p>\n",
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
        return error_page("error=invalid_request: unknown client_id");
    }
    let redirect_uri = get("redirect_uri");
    match s.client.registered_redirect_uri() {
        Some(r) if r != redirect_uri => {
            return error_page("error=invalid_request: redirect_uri mismatch");
        }
        _ => {}
    }
    if get("response_type") != "code" {
        return error_page("error=unsupported_response_type");
    }
    let scope = get("scope").to_string();
    if scope.split(';').any(|p| p == "GET_EMAIL") && !s.email_permission.load(Ordering::SeqCst) {
        return error_page("error=invalid_scope: GET_EMAIL is not granted to the application");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("error=invalid_request: redirect_uri");
    };
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
    let code = random_hex("")[..24].to_string();
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope,
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
            "<li><a href=\"/oauth/authorize?{}&amp;user={}\">{} {}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.first_name),
            esc(u.last_name)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>OK</title>\n<h1>Одноклассники (эмулятор)</h1>\n<p>Приложение запрашивает доступ к вашему профилю. Выберите, кем войти:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/oauth/authorize?{}&amp;user=deny\">Отмена</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    crate::common::oauth_error(StatusCode::BAD_REQUEST, error, description)
}

async fn token(
    State(s): State<Arc<Shared>>,
    Query(mut q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    s.client.count_token_request();
    for (k, v) in url::form_urlencoded::parse(&body) {
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return oauth_error("invalid_client", "Invalid client credentials");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type", "Unsupported grant type");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => return oauth_error("invalid_grant", "Expired code"),
        Redeemed::Unknown | Redeemed::Used => return oauth_error("invalid_grant", "Invalid code"),
    };
    if code.redirect_uri != get("redirect_uri") {
        return oauth_error("invalid_grant", "Invalid redirect_uri");
    }
    let access = format!("-s-{}", &random_hex("")[..28]);
    s.grants.issue_token(&access, (code.user, code.scope));
    Json(json!({
        "access_token": access,
        "token_type": "session",
        "refresh_token": random_hex("")[..30].to_string(),
        "expires_in": 1800,
    }))
    .into_response()
}

fn api_error(code: u32, msg: &str) -> Response {
    Json(json!({"error_code": code, "error_msg": msg, "error_data": Value::Null})).into_response()
}

async fn api(
    State(s): State<Arc<Shared>>,
    Query(mut q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    for (k, v) in url::form_urlencoded::parse(&body) {
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("application_key") != s.application_key {
        return api_error(101, "PARAM_API_KEY : Application key is invalid");
    }
    let token = get("access_token");
    let mut pairs: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "access_token" && k.as_str() != "sig")
        .collect();
    pairs.sort();
    let joined: String = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let expected = md5_hex(&format!(
        "{joined}{}",
        md5_hex(&format!("{token}{}", s.client.client_secret))
    ));
    if !get("sig").eq_ignore_ascii_case(&expected) {
        return api_error(
            104,
            "PARAM_SIGNATURE : Invalid signature. Check that the signature is calculated from all parameters, sorted, and the session secret key",
        );
    }
    let Some((user, scope)) = s.grants.token_user(token) else {
        return api_error(102, "PARAM_SESSION_EXPIRED : Session expired");
    };
    if get("method") != "users.getCurrentUser" {
        return api_error(3, "METHOD : Method is not supported by the emulator");
    }
    let mut answer = json!({
        "uid": user.uid,
        "birthday": "1985-03-14",
        "age": 41,
        "name": format!("{} {}", user.first_name, user.last_name),
        "locale": "ru",
        "gender": user.gender,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "has_email": !user.email.is_empty(),
        "pic_1": format!("https://i.mycdn.me/i?r=AzE{}&fn=w_50", user.uid),
        "pic_2": format!("https://i.mycdn.me/i?r=AzE{}&fn=w_128", user.uid),
        "pic_3": format!("https://i.mycdn.me/i?r=AzE{}&fn=w_190", user.uid),
    });
    let asked = get("fields").is_empty() || get("fields").split(',').any(|f| f == "email");
    if asked && scope.split(';').any(|p| p == "GET_EMAIL") && !user.email.is_empty() {
        answer["email"] = user.email.into();
    }
    Json(answer).into_response()
}
