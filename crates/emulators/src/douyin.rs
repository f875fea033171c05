//! A Douyin Open Platform emulator: `platform/oauth/connect/`, `oauth/access_token/` and
//! `oauth/userinfo/`, on one loopback port.
//!
//! - `GET /platform/oauth/connect/`: `client_key`, `response_type=code`, `scope`,
//!   `redirect_uri`, `state`. An unknown app or a `redirect_uri` outside the app's authorized
//!   domain ([`DouyinEmulator::register_redirect_uri`]) is an error page; `user=deny` goes back
//!   with `error_code=2` (the emulator's reading of Douyin's cancel); `user=<key>` (or
//!   [`DouyinEmulator::set_next_user`]) picks a person.
//! - `POST /oauth/access_token/` (form or JSON): `client_key`, `client_secret`, `code`,
//!   `grant_type=authorization_code`. Always HTTP 200: `{"data": {…, "error_code": 0,
//!   "description": ""}, "message": "success"}`, or `data.error_code` 10013 (wrong
//!   `client_key`/`client_secret`), 10007 (unknown, reused or expired code; codes live ten
//!   minutes), 10002 (another `grant_type`) with `"message": "error"`. The codes are the
//!   emulator's reading of Douyin's list.
//! - `POST /oauth/userinfo/` (form or JSON): `access_token`, `open_id`. HTTP 200 with `err_no`
//!   0 and `data`, or `err_no` 28001003 (invalid token, [`DouyinEmulator::revoke_tokens`]) /
//!   28001008 (an `open_id` that is not the token's).
//! - `open_id` differs per app; `union_id` is the same for every app of the developer account.

use crate::common::{self, Client, ConsentText, Grants, Redeemed, esc, random_hex, redirect, s256};
use axum::extract::{Query, State};

use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Douyin account.
#[derive(Debug, Clone, Copy)]
pub struct DouyinUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub nickname: &'static str,
}

/// 小鹿 and 阿杰.
pub const USERS: [DouyinUser; 2] = [
    DouyinUser {
        key: "xiaolu",
        nickname: "小鹿",
    },
    DouyinUser {
        key: "ajie",
        nickname: "阿杰",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

fn id(prefix: &str, seed: &str) -> String {
    let h = s256(seed).replace(['-', '_'], "x");
    format!("{prefix}{}", &h[..32])
}

/// The user's `open_id` in the app `client_key`.
pub fn open_id(client_key: &str, user: &DouyinUser) -> String {
    id("_000", &format!("{client_key}/{}", user.key))
}

/// The user's `union_id` (the same in every app of the developer account).
pub fn union_id(user: &DouyinUser) -> String {
    id("0a1b", user.key)
}

#[derive(Clone)]
struct Code {
    user: DouyinUser,
}

struct Shared {
    client: Client,
    domains: Mutex<Vec<String>>,
    grants: Grants<Code, DouyinUser>,
}

/// A running Douyin emulator on 127.0.0.1. Stops when dropped.
pub struct DouyinEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl DouyinEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> DouyinEmulator {
        Self::serve(crate::free_loopback_port("Douyin").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<DouyinEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "awk3x9q2m7b4t1v8", "9e4c1a7f3b6d2e8a5c0f7b3d1e9a6c4f"),
            domains: Mutex::new(vec![]),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/platform/oauth/connect/", get(connect))
            .route("/oauth/access_token/", post(access_token))
            .route("/oauth/userinfo/", post(userinfo))
            .with_state(shared.clone());
        Ok(DouyinEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://open.douyin.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://open.douyin.com/platform/oauth/connect/`.
    pub fn auth_url(&self) -> String {
        format!("{}/platform/oauth/connect/", self.shared.client.base)
    }

    /// Registers the authorized callback domain of `uri` (host and port). Until one is
    /// registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        if let Some(d) = domain(&uri.into()) {
            self.shared.domains.lock().expect("lock").push(d);
        }
    }

    crate::common::grant_accessors!();

    /// The `open_id` of the fake user `key` in this app.
    pub fn open_id_of(&self, key: &str) -> String {
        open_id(&self.shared.client.client_id, user(key))
    }

    /// The `union_id` of the fake user `key`.
    pub fn union_id_of(&self, key: &str) -> String {
        union_id(user(key))
    }
}

fn user(key: &str) -> &'static DouyinUser {
    USERS
        .iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("no fake Douyin user `{key}`"))
}

fn domain(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_string(),
    })
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>抖音授权</title>\n<h1>授权失败</h1>\n<p>{}</p>\n",
        esc(message)
    ))
    .into_response()
}

async fn connect(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_key") != s.client.client_id {
        return error_page("client_key 错误或应用不存在");
    }
    let redirect_uri = get("redirect_uri");
    let registered = s.domains.lock().expect("lock").clone();
    match domain(redirect_uri) {
        Some(d) if registered.is_empty() || registered.contains(&d) => {}
        _ => return error_page("redirect_uri 与授权回调域不一致"),
    }
    if get("response_type") != "code" {
        return error_page("response_type 参数错误");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("redirect_uri 参数错误");
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_code", "2")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_hex("")[..32].to_string();
    s.grants.issue_code(&code, Code { user });
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"))
        .append_pair("scopes", get("scope"));
    redirect(&back)
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let text = ConsentText {
        lang: "zh-CN",
        title: "抖音授权登录",
        heading: "抖音授权（模拟器）",
        prompt: "使用抖音扫码授权。选择要登录的抖音帐号：",
        cancel: "取消",
    };
    common::consent_page(
        "/platform/oauth/connect/",
        q,
        &text,
        USERS.iter().map(|u| (u.key, u.nickname)),
    )
}

/// Form or JSON parameters of a POST.
fn params(body: &[u8]) -> HashMap<String, String> {
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
        return o
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
    }
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn token_error(code: u32, description: &str) -> Response {
    Json(json!({"data": {"error_code": code, "description": description}, "message": "error"}))
        .into_response()
}

async fn access_token(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    s.client.count_token_request();
    let q = params(&body);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_key") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return token_error(10013, "client_key或client_secret错误");
    }
    if get("grant_type") != "authorization_code" {
        return token_error(10002, "grant_type参数错误");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => return token_error(10007, "code无效或已过期"),
        Redeemed::Unknown | Redeemed::Used => return token_error(10007, "code无效或已过期"),
    };
    let access = format!("act.{}", &random_hex("")[..32]);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "data": {
            "access_token": access,
            "expires_in": 1296000,
            "open_id": open_id(&s.client.client_id, &code.user),
            "refresh_token": format!("rft.{}", &random_hex("")[..32]),
            "refresh_expires_in": 2592000,
            "scope": "user_info",
            "error_code": 0,
            "description": "",
        },
        "message": "success",
    }))
    .into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let q = params(&body);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let log_id = random_hex("2026")[..24].to_string();
    let Some(user) = s.grants.token_user(get("access_token")) else {
        return Json(json!({"err_no": 28001003, "err_msg": "access_token无效", "log_id": log_id, "data": {}}))
            .into_response();
    };
    let oid = open_id(&s.client.client_id, &user);
    if get("open_id") != oid {
        return Json(json!({"err_no": 28001008, "err_msg": "open_id与access_token不匹配", "log_id": log_id, "data": {}}))
            .into_response();
    }
    Json(json!({
        "data": {
            "open_id": oid,
            "union_id": union_id(&user),
            "nickname": user.nickname,
            "avatar": format!("https://p3.douyinpic.com/aweme/100x100/{}.jpeg", user.key),
            "e_account_role": "",
            "error_code": 0,
            "description": "",
        },
        "err_no": 0,
        "err_msg": "",
        "log_id": log_id,
    }))
    .into_response()
}
