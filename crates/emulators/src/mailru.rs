//! A Mail.ru OAuth ("Mail ID", `oauth.mail.ru`) emulator: `/login`, `/token` and `/userinfo`
//! on one loopback port.
//!
//! - `GET /login`: `client_id`, `response_type=code`, `scope`, `redirect_uri`, `state`. An
//!   unknown app or a `redirect_uri` other than the registered one
//!   ([`MailruEmulator::register_redirect_uri`]) is an error page; `user=deny` goes back with
//!   `error=access_denied`; `user=<key>` (or [`MailruEmulator::set_next_user`]) picks a user.
//! - `POST /token` (form): `grant_type=authorization_code`, `code`, `redirect_uri`; the client
//!   authenticates with HTTP Basic or with `client_id`/`client_secret` in the body. Errors are
//!   `{error, error_code, error_description}` with HTTP 400: `invalid_client`, `invalid_grant`
//!   (unknown, reused or expired code — ten minutes —, another `redirect_uri`),
//!   `unsupported_grant_type`.
//! - `GET /userinfo?access_token=…`: the person (`id`, `client_id`, `email`, names, `gender`
//!   `m`/`f`, `birthday`, `image`, `locale`); an unknown token is HTTP 401 with
//!   `{error: "invalid_token", error_code: 5, …}` ([`MailruEmulator::revoke_tokens`]).
//!
//! Mail.ru documents its error shapes only in part; the codes above are the emulator's reading.

use crate::common::{Client, Grants, esc, query_without_user, random_hex, redirect};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Mail.ru account.
#[derive(Debug, Clone, Copy)]
pub struct MailruUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub id: &'static str,
    pub email: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// `m` or `f`.
    pub gender: &'static str,
}

/// Ольга Иванова and Пётр Сидоров.
pub const USERS: [MailruUser; 2] = [
    MailruUser {
        key: "olga",
        id: "8473920017354821",
        email: "olga.ivanova@mail.ru",
        first_name: "Ольга",
        last_name: "Иванова",
        gender: "f",
    },
    MailruUser {
        key: "petr",
        id: "8473920017354822",
        email: "petr.sidorov@bk.ru",
        first_name: "Пётр",
        last_name: "Сидоров",
        gender: "m",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: MailruUser,
    redirect_uri: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, MailruUser>,
}

/// A running Mail.ru emulator on 127.0.0.1. Stops when dropped.
pub struct MailruEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl MailruEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> MailruEmulator {
        Self::serve(crate::free_loopback_port("Mail.ru").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<MailruEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "7f3e9a1c2b4d46e8", "d2c4e6f8a0b1c3d5e7f9a1b3c5d7e9f1"),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/login", get(login))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(shared.clone());
        Ok(MailruEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://oauth.mail.ru`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// The app's redirect URI; until set, any absolute URL is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    crate::common::grant_accessors!();
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>Ошибка</title>\n<h1>Ошибка авторизации</h1>\n<p>{}</p>\n",
            esc(message)
        )),
    )
        .into_response()
}

async fn login(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page("Неизвестное приложение (invalid client_id)");
    }
    let redirect_uri = get("redirect_uri");
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("Неверный redirect_uri");
    };
    if s.client
        .registered_redirect_uri()
        .is_some_and(|r| r != redirect_uri)
    {
        return error_page(
            "redirect_uri не совпадает с адресом, указанным в настройках приложения",
        );
    }
    if get("response_type") != "code" {
        return error_page("response_type должен быть code");
    }
    let mut pairs: Vec<(&str, String)> = vec![];
    match s.client.pick(&q).as_deref() {
        None => {
            let base = query_without_user(&q);
            let mut items = String::new();
            for u in USERS {
                items.push_str(&format!(
                    "<li><a href=\"/login?{}&amp;user={}\">{} {}</a> <small>{}</small></li>\n",
                    esc(&base),
                    u.key,
                    esc(u.first_name),
                    esc(u.last_name),
                    esc(u.email)
                ));
            }
            return Html(format!(
                "<!doctype html><html lang=\"ru\"><meta charset=utf-8><title>Вход через Mail</title>\n<h1>Эмулятор Mail.ru</h1>\n<p>Приложение запрашивает доступ. Войти как:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/login?{}&amp;user=deny\">Отмена</a></p>\n",
                esc(&base)
            ))
            .into_response();
        }
        Some("deny") => pairs.push(("error", "access_denied".into())),
        Some(key) => {
            let Some(user) = USERS.iter().find(|u| u.key == key).copied() else {
                return error_page(&format!("no emulated user `{key}`"));
            };
            let code = random_hex("");
            s.grants.issue_code(
                &code,
                Code {
                    user,
                    redirect_uri: redirect_uri.to_string(),
                },
            );
            pairs.push(("code", code));
        }
    }
    pairs.push(("state", get("state").to_string()));
    back.query_pairs_mut().extend_pairs(pairs);
    redirect(&back)
}

fn error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_code": code, "error_description": description})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    s.client.count_token_request();
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = crate::common::client_credentials(&headers, &f);
    if get("grant_type") != "authorization_code" {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            3,
            "unsupported grant_type",
        );
    }
    if id != s.client.client_id || secret != s.client.client_secret {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            2,
            "invalid client_id or client_secret",
        );
    }
    let Some(grant) = s.grants.redeem_fresh(get("code")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            4,
            "code not found or expired",
        );
    };
    if get("redirect_uri") != grant.redirect_uri {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            4,
            "redirect_uri mismatch",
        );
    }
    let access = random_hex("");
    s.grants.issue_token(&access, grant.user);
    Json(json!({
        "access_token": access,
        "refresh_token": random_hex(""),
        "expires_in": 3600,
        "token_type": "bearer",
    }))
    .into_response()
}

async fn userinfo(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(u) = s.grants.token_user(t) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            5,
            "token not found",
        );
    };
    Json(json!({
        "id": u.id,
        "client_id": s.client.client_id,
        "email": u.email,
        "name": format!("{} {}", u.first_name, u.last_name),
        "first_name": u.first_name,
        "last_name": u.last_name,
        "nickname": u.email.split('@').next().unwrap_or_default(),
        "gender": u.gender,
        "birthday": "01.02.1991",
        "locale": "ru_RU",
        "image": format!("https://filin.mail.ru/pic?email={}", u.email),
    }))
    .into_response()
}
