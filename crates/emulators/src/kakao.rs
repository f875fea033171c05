//! A Kakao Login emulator: `oauth/authorize`, `oauth/token` (kauth.kakao.com) and
//! `v2/user/me` (kapi.kakao.com), on one loopback port that stands for both origins.
//!
//! - `GET /oauth/authorize`: `client_id` (the REST API key), `redirect_uri` (one of the app's
//!   Redirect URIs), `response_type=code`, `state`, `scope` (comma-separated, optional). An
//!   unknown app is Kakao's KOE101 page, another redirect URI KOE006 (HTTP 400). `user=deny`
//!   returns `error=access_denied` with `error_description=User denied access`.
//! - `POST /oauth/token`, form: `grant_type=authorization_code`, `client_id`, `redirect_uri`,
//!   `code`, and `client_secret` (the app has "Client Secret" on, so it is required). Errors
//!   are JSON with Kakao's `error_code`: 401 `invalid_client` "Bad client credentials"
//!   (KOE010), 400 `invalid_grant` "authorization code not found for code=…" (KOE320: unknown,
//!   used or expired; codes live ten minutes), 400 `invalid_grant` "redirect_uri mismatch"
//!   (KOE303). Success: `access_token`, `token_type: bearer`, `refresh_token`, `expires_in`,
//!   `refresh_token_expires_in`, `scope`.
//! - `GET /v2/user/me`, Bearer: `id` (a number), `connected_at`, `properties`, `kakao_account`
//!   (`profile`, `has_email`, `is_email_valid`, `is_email_verified`, `email`); a bad token is
//!   401 `{"msg": "this access token does not exist", "code": -401}`.

use crate::common::{
    Client, ConsentText, Grants, Redeemed, consent_page, esc, random_token, redirect, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Kakao account.
#[derive(Debug, Clone, Copy)]
pub struct KakaoUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub id: u64,
    pub nickname: &'static str,
    pub email: &'static str,
    /// Kakao has verified the address (`is_email_verified`).
    pub verified: bool,
    /// The profile picture is Kakao's default one.
    pub default_image: bool,
}

/// Иван (a verified email, a picture) and Мария (an address Kakao has not verified, the
/// default picture).
pub const USERS: [KakaoUser; 2] = [
    KakaoUser {
        key: "ivan",
        id: 3_142_592_653,
        nickname: "Иван Петров",
        email: "ivan.petrov@kakao.com",
        verified: true,
        default_image: false,
    },
    KakaoUser {
        key: "maria",
        id: 2_718_281_828,
        nickname: "Мария Смирнова",
        email: "maria@example.ru",
        verified: false,
        default_image: true,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: KakaoUser,
    redirect_uri: String,
    scope: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, KakaoUser>,
}

/// A running Kakao emulator on 127.0.0.1. Stops when dropped.
pub struct KakaoEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl KakaoEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> KakaoEmulator {
        Self::serve(crate::free_loopback_port("Kakao").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<KakaoEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "9c2f6a1e8b3d4f5a6b7c8d9e0f1a2b3c",
                "kG7pQ2vXw9sL4mN8rT1yU6iO3aD5fH0j",
            ),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/v2/user/me", get(me).post(me))
            .with_state(shared.clone());
        Ok(KakaoEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for both
    /// `https://kauth.kakao.com` and `https://kapi.kakao.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://kauth.kakao.com/oauth/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth/authorize", self.shared.client.base)
    }

    /// Registers the app's Redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The Kakao id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> u64 {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Kakao user `{key}`"))
    }
}

fn error_page(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"ko\"><meta charset=utf-8><title>Kakao</title>\n<h1>{}</h1>\n<p>{}</p>\n",
            esc(code),
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
    if get("client_id") != s.client.client_id {
        return error_page("KOE101", "앱 관리자 설정 오류 (invalid client_id)");
    }
    let redirect_uri = get("redirect_uri");
    if let Some(registered) = s.client.registered_redirect_uri()
        && registered != redirect_uri
    {
        return error_page("KOE006", "앱 관리자 설정 오류 (redirect_uri mismatch)");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("KOE006", "invalid redirect_uri");
    };
    if get("response_type") != "code" {
        return error_page("KOE004", "response_type must be code");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/oauth/authorize",
            &q,
            &ConsentText {
                lang: "ko",
                title: "카카오계정",
                heading: "카카오계정으로 로그인 (emulator)",
                prompt: "계정을 선택하세요:",
                cancel: "취소",
            },
            USERS.iter().map(|u| (u.key, u.nickname)),
        );
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "User denied access")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page("KOE000", &format!("no emulated user `{pick}`"));
    };
    let code = random_token(64);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope").to_string(),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

fn error(status: StatusCode, error: &str, description: &str, code: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description, "error_code": code})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type is invalid",
            "KOE309",
        );
    }
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
            "KOE010",
        );
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Unknown | Redeemed::Used | Redeemed::Expired(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                &format!("authorization code not found for code={}", get("code")),
                "KOE320",
            );
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri mismatch",
            "KOE303",
        );
    }
    let access = random_token(40);
    s.grants.issue_token(&access, code.user);
    let mut scope = "profile_nickname profile_image account_email".to_string();
    for extra in code.scope.split(',').filter(|x| !x.is_empty()) {
        if !scope.split(' ').any(|x| x == extra) {
            scope.push(' ');
            scope.push_str(extra);
        }
    }
    Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "refresh_token": random_token(40),
        "expires_in": 21599,
        "refresh_token_expires_in": 5_183_999,
        "scope": scope,
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
            Json(json!({"msg": "this access token does not exist", "code": -401})),
        )
            .into_response();
    };
    let image = if u.default_image {
        "http://img1.kakaocdn.net/thumb/R640x640.q70/?fname=http://t1.kakaocdn.net/account_images/default_profile.jpeg"
            .to_string()
    } else {
        format!("http://k.kakaocdn.net/dn/{}/img_640x640.jpg", u.id)
    };
    Json(json!({
        "id": u.id,
        "connected_at": "2026-11-01T08:00:00Z",
        "properties": {"nickname": u.nickname, "profile_image": image, "thumbnail_image": image},
        "kakao_account": {
            "profile_nickname_needs_agreement": false,
            "profile_image_needs_agreement": false,
            "profile": {
                "nickname": u.nickname,
                "thumbnail_image_url": image,
                "profile_image_url": image,
                "is_default_image": u.default_image,
                "is_default_nickname": false,
            },
            "has_email": true,
            "email_needs_agreement": false,
            "is_email_valid": true,
            "is_email_verified": u.verified,
            "email": u.email,
        },
    }))
    .into_response()
}
