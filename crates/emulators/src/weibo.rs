//! A Sina Weibo Open Platform emulator: `oauth2/authorize`, `oauth2/access_token` and
//! `2/users/show.json`, on one loopback port.
//!
//! - `GET /oauth2/authorize`: `client_id`, `redirect_uri`, `response_type=code`, `state`,
//!   `scope` (optional). An unknown app or a `redirect_uri` outside the app's 授权回调页
//!   ([`WeiboEmulator::register_redirect_uri`]: the same URL or below it) is an error page
//!   (`error_code` 21322 redirect_uri_mismatch, 21323 client id); `user=deny` goes back with
//!   `error=access_denied&error_code=21330`; `user=<key>` (or [`WeiboEmulator::set_next_user`])
//!   picks a person.
//! - `POST /oauth2/access_token` (form; the parameters in the query are read too):
//!   `{access_token, remind_in, expires_in, uid, isRealName}` with `uid` as text. Errors are
//!   HTTP 400 `{error, error_code, request, error_uri}`: 21323 `invalid_client` (unknown app or
//!   wrong secret), 21325 `invalid_grant` (unknown, reused or expired code — codes are the
//!   emulator's ten minutes —, or another `redirect_uri`), 21324 `unsupported_grant_type`.
//! - `GET /2/users/show.json?access_token&uid`: the person (`id` as a number, `idstr`,
//!   `screen_name`, `gender`, avatars). An unknown token is HTTP 401 `{error:
//!   "invalid_access_token", error_code: 21332}` ([`WeiboEmulator::revoke_tokens`]); a `uid`
//!   other than the token's person is 20003 `User does not exists!` (HTTP 400).

use crate::common::{self, Client, ConsentText, Grants, esc, query_and_form, random_hex, redirect};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Weibo account.
#[derive(Debug, Clone, Copy)]
pub struct WeiboUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// Weibo's 64-bit id, as text (`idstr`).
    pub id: &'static str,
    pub screen_name: &'static str,
    /// `m`, `f` or `n`.
    pub gender: &'static str,
}

/// 小明同学 and 王芳 (ids past 2^53, as Weibo's are).
pub const USERS: [WeiboUser; 2] = [
    WeiboUser {
        key: "xiaoming",
        id: "9187664653001234567",
        screen_name: "小明同学",
        gender: "m",
    },
    WeiboUser {
        key: "wangfang",
        id: "9187664653001234569",
        screen_name: "王芳",
        gender: "f",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: WeiboUser,
    redirect_uri: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, WeiboUser>,
}

/// A running Weibo emulator on 127.0.0.1. Stops when dropped.
pub struct WeiboEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl WeiboEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> WeiboEmulator {
        Self::serve(crate::free_loopback_port("Weibo").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<WeiboEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "3426785190", "8c2f5a7e9b1d4c6f0a3e5b7d9c1f2a4e"),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/access_token", post(access_token))
            .route("/2/users/show.json", get(users_show))
            .with_state(shared.clone());
        Ok(WeiboEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.weibo.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://api.weibo.com/oauth2/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/authorize", self.shared.client.base)
    }

    /// The app's 授权回调页: `redirect_uri` must be it or below it. Until one is registered,
    /// any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    crate::common::grant_accessors!();
}

fn error_page(code: u32, error: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>微博-出错了</title>\n<h1>授权出错</h1>\n<p>错误码：{code}</p>\n<p>{}</p>\n",
        esc(error)
    ))
    .into_response()
}

fn api_error(status: StatusCode, code: u32, error: &str, request: &str) -> Response {
    (
        status,
        Json(
            json!({"error": error, "error_code": code, "request": request,
            "error_uri": request}),
        ),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page(21323, "invalid_client: 请求不合法，应用不存在");
    }
    let redirect_uri = get("redirect_uri");
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page(21322, "redirect_uri_mismatch: 重定向地址不匹配");
    };
    if let Some(registered) = s.client.registered_redirect_uri()
        && !redirect_uri.starts_with(&registered)
    {
        return error_page(21322, "redirect_uri_mismatch: 重定向地址不匹配");
    }
    if get("response_type") != "code" {
        return error_page(21324, "unsupported_response_type");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error_uri", "/oauth2/authorize")
            .append_pair("error", "access_denied")
            .append_pair("error_description", "user denied your request.")
            .append_pair("error_code", "21330")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(21327, &format!("no emulated user `{pick}`"));
    };
    let code = random_hex("")[..32].to_string();
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
        },
    );
    back.query_pairs_mut()
        .append_pair("state", get("state"))
        .append_pair("code", &code);
    redirect(&back)
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let text = ConsentText {
        lang: "zh-CN",
        title: "微博登录",
        heading: "微博授权（模拟器）",
        prompt: "授权后，应用将获得你的公开信息。选择要登录的微博帐号：",
        cancel: "取消",
    };
    common::consent_page(
        "/oauth2/authorize",
        q,
        &text,
        USERS.iter().map(|u| (u.key, u.screen_name)),
    )
}

async fn access_token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    s.client.count_token_request();
    let q = query_and_form(q, &body);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let req = "/oauth2/access_token";
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return api_error(StatusCode::BAD_REQUEST, 21323, "invalid_client", req);
    }
    if get("grant_type") != "authorization_code" {
        return api_error(
            StatusCode::BAD_REQUEST,
            21324,
            "unsupported_grant_type",
            req,
        );
    }
    let Some(code) = s
        .grants
        .redeem_fresh(get("code"))
        .filter(|c| c.redirect_uri == get("redirect_uri"))
    else {
        return api_error(StatusCode::BAD_REQUEST, 21325, "invalid_grant", req);
    };
    let access = format!("2.00{}", &random_hex("")[..28]);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "remind_in": "157679999",
        "expires_in": 157679999,
        "uid": code.user.id,
        "isRealName": "true",
    }))
    .into_response()
}

async fn users_show(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let req = "/2/users/show.json";
    let token = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(user) = s.grants.token_user(token) else {
        return api_error(StatusCode::UNAUTHORIZED, 21332, "invalid_access_token", req);
    };
    if q.get("uid").map(String::as_str) != Some(user.id) {
        return api_error(StatusCode::BAD_REQUEST, 20003, "User does not exists!", req);
    }
    let id: Value = user
        .id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or(Value::Null);
    let pic = |size: &str| {
        format!(
            "https://tvax1.sinaimg.cn/crop.0.0.{size}.{size}.{size}/{}.jpg",
            user.key
        )
    };
    Json(json!({
        "id": id,
        "idstr": user.id,
        "class": 1,
        "screen_name": user.screen_name,
        "name": user.screen_name,
        "province": "11",
        "city": "1000",
        "location": "北京",
        "description": "",
        "profile_url": format!("u/{}", user.id),
        "domain": "",
        "gender": user.gender,
        "followers_count": 12,
        "friends_count": 34,
        "verified": false,
        "profile_image_url": pic("50"),
        "avatar_large": pic("180"),
        "avatar_hd": pic("1024"),
    }))
    .into_response()
}
