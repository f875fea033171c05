//! A QQ Connect (QQ互联, `graph.qq.com`) emulator: `/oauth2.0/authorize`, `/oauth2.0/token`,
//! `/oauth2.0/me` and `/user/get_user_info`, on one loopback port.
//!
//! - Authorize: `response_type=code`, `client_id` (APP ID), `redirect_uri`, `state`, `scope`
//!   (comma-separated). An unknown app or a `redirect_uri` outside the app's callback domain
//!   ([`QqEmulator::register_redirect_uri`]) is an error page without a redirect; so is a
//!   cancel (`user=deny`). `user=<key>` (or [`QqEmulator::set_next_user`]) picks a user.
//! - Token (GET): success is **form-encoded text** `access_token=…&expires_in=7776000&
//!   refresh_token=…` (JSON with `fmt=json`); errors are **JSONP** `callback( {"error": n,
//!   "error_description": "…"} );` with HTTP 200: 100000 grant_type, 100001 client_id, 100002
//!   client_secret, 100010 redirect_uri, 100019 unknown or expired code (ten minutes), 100020
//!   reused code.
//! - `/oauth2.0/me?access_token[&unionid=1]`: JSONP `callback( {"client_id", "openid"[,
//!   "unionid"]} );`; 100016 for an unknown token, 100048 for `unionid=1` without the
//!   permission ([`QqEmulator::set_unionid_permission`]).
//! - `/user/get_user_info?access_token&oauth_consumer_key&openid`: `{ret: 0, msg: "", nickname,
//!   gender, figureurl_qq_1, figureurl_qq_2, …}`; errors `{ret ≠ 0, msg}` with HTTP 200
//!   ([`QqEmulator::fail_user_info`] forces one). No email.
//!
//! Error codes whose wording QQ does not document are the emulator's own.

use crate::common::{
    Client, Grants, Redeemed, esc, query_without_user, random_hex, redirect, s256,
};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake QQ user.
#[derive(Debug, Clone, Copy)]
pub struct QqUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub nickname: &'static str,
    /// `男`, `女`.
    pub gender: &'static str,
    pub unionid: &'static str,
    /// Whether the user has a 100×100 avatar (`figureurl_qq_2`).
    pub big_avatar: bool,
}

/// 小明 and 小红.
pub const USERS: [QqUser; 2] = [
    QqUser {
        key: "xiaoming",
        nickname: "小明",
        gender: "男",
        unionid: "UID_6F1B2C3D4E5F60718293A4B5C6D7E8F9",
        big_avatar: true,
    },
    QqUser {
        key: "xiaohong",
        nickname: "小红",
        gender: "女",
        unionid: "UID_0A1B2C3D4E5F60718293A4B5C6D7E8F0",
        big_avatar: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

/// The user's `openid` in app `appid`: 32 upper-case hex digits, another one per app.
pub fn openid(appid: &str, user: &QqUser) -> String {
    let h: String = s256(&format!("{appid}/{}", user.key))
        .bytes()
        .map(|b| format!("{:02X}", b))
        .collect();
    h[..32].to_string()
}

#[derive(Clone)]
struct Code {
    user: QqUser,
    redirect_uri: String,
}

struct Shared {
    client: Client,
    domains: Mutex<Vec<String>>,
    unionid_permission: AtomicBool,
    fail_user_info: AtomicBool,
    grants: Grants<Code, QqUser>,
}

/// A running QQ Connect emulator on 127.0.0.1. Stops when dropped.
pub struct QqEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl QqEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> QqEmulator {
        Self::serve(crate::free_loopback_port("QQ").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<QqEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "101987654", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
            domains: Mutex::new(vec![]),
            unionid_permission: AtomicBool::new(true),
            fail_user_info: AtomicBool::new(false),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2.0/authorize", get(authorize))
            .route("/oauth2.0/token", get(token))
            .route("/oauth2.0/me", get(me))
            .route("/user/get_user_info", get(user_info))
            .with_state(shared.clone());
        Ok(QqEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://graph.qq.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    /// Stands for `https://graph.qq.com/oauth2.0/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2.0/authorize", self.shared.client.base)
    }

    /// Registers the callback domain (host and port) of `uri`; until one is, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        if let Ok(u) = url::Url::parse(&uri.into()) {
            let d = format!(
                "{}:{}",
                u.host_str().unwrap_or_default(),
                u.port_or_known_default().unwrap_or(0)
            );
            self.shared.domains.lock().expect("lock").push(d);
        }
    }

    /// Whether the app was granted the unionid permission (on by default).
    pub fn set_unionid_permission(&self, on: bool) {
        self.shared.unionid_permission.store(on, Ordering::SeqCst);
    }

    /// How long codes issued from now on stay valid (QQ: ten minutes).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// While on, `get_user_info` answers `{"ret": 1002, "msg": "请先登录"}`.
    pub fn fail_user_info(&self, on: bool) {
        self.shared.fail_user_info.store(on, Ordering::SeqCst);
    }

    /// The `openid` of the fake user `key` in this app.
    pub fn openid_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake QQ user `{key}`"));
        openid(&self.shared.client.client_id, u)
    }
}

fn error_page(code: u32, message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>QQ登录</title>\n<h1>很抱歉！出现错误</h1>\n<p>错误码：{code}</p>\n<p>{}</p>\n",
        esc(message)
    ))
    .into_response()
}

fn domain_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("response_type") != "code" {
        return error_page(100000, "缺少参数 response_type 或参数非法");
    }
    if get("client_id") != s.client.client_id {
        return error_page(100008, "client id is illegal");
    }
    let redirect_uri = get("redirect_uri");
    let registered = s.domains.lock().expect("lock").clone();
    match domain_of(redirect_uri) {
        Some(d) if registered.is_empty() || registered.contains(&d) => {}
        _ => {
            return error_page(
                100010,
                "redirect uri is illegal（回调地址与注册时填写的不一致）",
            );
        }
    }
    let pick = s.client.pick(&q);
    if pick.as_deref() == Some("deny") {
        return error_page(100070, "用户取消了授权");
    }
    let Some(pick) = pick else {
        let base = query_without_user(&q);
        let mut items = String::new();
        for u in USERS {
            items.push_str(&format!(
                "<li><a href=\"/oauth2.0/authorize?{}&amp;user={}\">{}</a></li>\n",
                esc(&base),
                u.key,
                esc(u.nickname)
            ));
        }
        return Html(format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>QQ帐号安全登录</title>\n<h1>QQ登录（模拟器）</h1>\n<p>选择要授权的 QQ 帐号：</p>\n<ul>\n{items}</ul>\n<p><a href=\"/oauth2.0/authorize?{}&amp;user=deny\">取消</a></p>\n",
            esc(&base)
        ))
        .into_response();
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(100000, &format!("no emulated user `{pick}`"));
    };
    let code = random_hex("")[..32].to_uppercase();
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
        },
    );
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page(100010, "redirect uri is illegal");
    };
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

/// QQ's JSONP: `callback( {...} );` as `text/html`, as QQ sends it.
fn jsonp(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("callback( {v} );\n"),
    )
        .into_response()
}

fn jsonp_error(code: u32, description: &str) -> Response {
    jsonp(json!({"error": code, "error_description": description}))
}

async fn token(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.client.count_token_request();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return jsonp_error(100000, "param grant_type is wrong or lost ");
    }
    if get("client_id") != s.client.client_id {
        return jsonp_error(100001, "param client_id is wrong or lost ");
    }
    if get("client_secret") != s.client.client_secret {
        return jsonp_error(100002, "param client_secret is wrong or lost ");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Used => return jsonp_error(100020, "code is reused error"),
        Redeemed::Unknown | Redeemed::Expired(_) => {
            return jsonp_error(100019, "code to access token error");
        }
    };
    if get("redirect_uri") != code.redirect_uri {
        return jsonp_error(100010, "redirect uri is illegal");
    }
    let user = code.user;
    let access = random_hex("")[..32].to_uppercase();
    let refresh = random_hex("")[..32].to_uppercase();
    s.grants.issue_token(&access, user);
    if get("fmt") == "json" {
        return Json(
            json!({"access_token": access, "expires_in": "7776000", "refresh_token": refresh}),
        )
        .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("access_token={access}&expires_in=7776000&refresh_token={refresh}"),
    )
        .into_response()
}

async fn me(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let t = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(user) = s.grants.token_user(t) else {
        return jsonp_error(100016, "access token check failed");
    };
    let mut answer = json!({
        "client_id": s.client.client_id,
        "openid": openid(&s.client.client_id, &user),
    });
    if q.get("unionid").map(String::as_str) == Some("1") {
        if !s.unionid_permission.load(Ordering::SeqCst) {
            return jsonp_error(100048, "no permission to access unionid");
        }
        answer["unionid"] = user.unionid.into();
    }
    jsonp(answer)
}

async fn user_info(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let user = s.grants.token_user(get("access_token"));
    let Some(u) = user.filter(|_| !s.fail_user_info.load(Ordering::SeqCst)) else {
        return Json(json!({"ret": 1002, "msg": "请先登录"})).into_response();
    };
    if get("oauth_consumer_key") != s.client.client_id
        || get("openid") != openid(&s.client.client_id, &u)
    {
        return Json(
            json!({"ret": -1, "msg": "client request's parameters are invalid, invalid openid"}),
        )
        .into_response();
    }
    let oid = openid(&s.client.client_id, &u);
    let small = format!("http://thirdqq.qlogo.cn/ek_qqapp/{oid}/40");
    let mut answer = json!({
        "ret": 0,
        "msg": "",
        "is_lost": 0,
        "nickname": u.nickname,
        "gender": u.gender,
        "gender_type": if u.gender == "男" { 1 } else { 2 },
        "province": "",
        "city": "",
        "figureurl": format!("http://qzapp.qlogo.cn/qzapp/{}/{oid}/30", s.client.client_id),
        "figureurl_qq_1": small,
        "is_yellow_vip": "0",
        "vip": "0",
    });
    if u.big_avatar {
        answer["figureurl_qq_2"] = format!("http://thirdqq.qlogo.cn/ek_qqapp/{oid}/100").into();
    }
    Json(answer).into_response()
}
