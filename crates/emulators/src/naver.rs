//! A Naver Login emulator: `oauth2.0/authorize`, `oauth2.0/token` (nid.naver.com) and
//! `v1/nid/me` (openapi.naver.com), on one loopback port that stands for both origins.
//!
//! - `GET /oauth2.0/authorize`: `response_type=code`, `client_id`, `redirect_uri` (must be the
//!   app's Callback URL), `state`. An unknown client or another callback is an error page
//!   (HTTP 200, as Naver shows its own). `user=deny` returns `error=access_denied` with
//!   `error_description=Canceled By User`.
//! - `GET|POST /oauth2.0/token`: `grant_type=authorization_code`, `client_id`, `client_secret`,
//!   `code`, `state` (query or form). Every error is **HTTP 200** with `{error,
//!   error_description}`: `invalid_request` "client_secret or client_id is invalid" (wrong
//!   client), `invalid_request` "no valid data in session" (unknown, reused or expired code:
//!   codes live ten minutes), `invalid_request` "invalid state" (another state),
//!   `unsupported_grant_type`. Success: `access_token`, `refresh_token`, `token_type: bearer`,
//!   `expires_in: "3600"` (a string).
//! - `GET /v1/nid/me`, Bearer: `{resultcode: "00", message: "success", response: {id,
//!   nickname, name, email, gender, age, birthday, birthyear, profile_image, mobile,
//!   mobile_e164}}`; a bad token is HTTP 401 `{resultcode: "024", message: "Authentication
//!   failed (인증 실패하였습니다.)"}`.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, Redeemed, authorize_front, code_redirect,
    consent_page, esc, query_and_form, random_token, redirect,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Naver member.
#[derive(Debug, Clone, Copy)]
pub struct NaverUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The member id Naver issues to this app.
    pub id: &'static str,
    pub name: &'static str,
    pub nickname: &'static str,
    /// Empty: the member did not agree to share it.
    pub email: &'static str,
}

/// Иван Петров (shares his email) and Мария Смирнова (does not).
pub const USERS: [NaverUser; 2] = [
    NaverUser {
        key: "ivan",
        id: "32742776",
        name: "Иван Петров",
        nickname: "ivan_p",
        email: "ivan.petrov@naver.com",
    },
    NaverUser {
        key: "maria",
        id: "58120394",
        name: "Мария Смирнова",
        nickname: "maria_s",
        email: "",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: NaverUser,
    state: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, NaverUser>,
}

/// A running Naver emulator on 127.0.0.1. Stops when dropped.
pub struct NaverEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl NaverEmulator {
    /// An application on a free loopback port; panics when none can be bound, which only tests
    /// want.
    pub async fn start() -> NaverEmulator {
        Self::serve(crate::free_loopback_port("Naver").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<NaverEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "jyvqXeaVOVmV1ZcL2wHn", "527300A0_C"),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2.0/authorize", get(authorize))
            .route("/oauth2.0/token", get(token).post(token))
            .route("/v1/nid/me", get(me))
            .with_state(shared.clone());
        Ok(NaverEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for both
    /// `https://nid.naver.com` and `https://openapi.naver.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://nid.naver.com/oauth2.0/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2.0/authorize", self.shared.client.base)
    }

    /// Registers the application's Callback URL. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The member id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Naver user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"ko\"><meta charset=utf-8><title>네이버 : 로그인</title>\n<h1>네이버 로그인</h1>\n<p>{}</p>\n",
        esc(message)
    ))
    .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let errors = FrontErrors {
        client: "잘못된 client_id 입니다. (invalid client_id)",
        redirect: "redirect_uri가 등록된 Callback URL과 다릅니다. (invalid redirect_uri)",
        not_a_url: "invalid redirect_uri",
    };
    let mut back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("unsupported_response_type");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/oauth2.0/authorize",
            &q,
            &ConsentText {
                lang: "ko",
                title: "네이버 : 로그인",
                heading: "네이버 아이디로 로그인 (emulator)",
                prompt: "로그인할 계정을 선택하세요:",
                cancel: "취소",
            },
            USERS.iter().map(|u| (u.key, u.name)),
        );
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("state", get("state"))
            .append_pair("error", "access_denied")
            .append_pair("error_description", "Canceled By User");
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(12);
    s.grants.issue_code(
        &code,
        Code {
            user,
            state: get("state").to_string(),
        },
    );
    code_redirect(back, &code, get("state"))
}

/// Naver's token errors: HTTP 200 with `{error, error_description}`.
fn error(error: &str, description: &str) -> Response {
    Json(json!({"error": error, "error_description": description})).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    s.client.count_token_request();
    let p = query_and_form(q, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return error("unsupported_grant_type", "grant_type is invalid");
    }
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return error("invalid_request", "client_secret or client_id is invalid");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Unknown | Redeemed::Used | Redeemed::Expired(_) => {
            return error("invalid_request", "no valid data in session");
        }
    };
    if code.state != get("state") {
        return error("invalid_request", "invalid state");
    }
    let access = random_token(48);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "refresh_token": random_token(48),
        "token_type": "bearer",
        "expires_in": "3600",
    }))
    .into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(u) = s.grants.token_user(token) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"resultcode": "024", "message": "Authentication failed (인증 실패하였습니다.)"})),
        )
            .into_response();
    };
    let mut response = json!({
        "id": u.id,
        "nickname": u.nickname,
        "name": u.name,
        "gender": "M",
        "age": "30-39",
        "birthday": "04-12",
        "birthyear": "1990",
        "profile_image": format!("https://phinf.pstatic.net/contact/{}.png", u.id),
        "mobile": "010-1234-5678",
        "mobile_e164": "+821012345678",
    });
    if !u.email.is_empty() {
        response["email"] = u.email.into();
    }
    Json(json!({"resultcode": "00", "message": "success", "response": response})).into_response()
}
