//! A WeChat Open Platform emulator: the website QR login (`open.weixin.qq.com/connect/qrconnect`),
//! the in-WeChat authorization (`/connect/oauth2/authorize`) and the two `api.weixin.qq.com`
//! calls sign-in makes (`/sns/oauth2/access_token`, `/sns/userinfo`), on one loopback port.
//!
//! - The authorize pages take `appid`, `redirect_uri`, `response_type=code`, `scope` and
//!   `state`. `qrconnect` accepts only `snsapi_login`; `oauth2/authorize` only `snsapi_base` or
//!   `snsapi_userinfo`. An unknown `appid`, a `redirect_uri` outside the app's registered
//!   callback domain (授权回调域, [`WechatEmulator::register_redirect_uri`]), another scope or
//!   response type is an error page **without a redirect**, as at WeChat. A person who
//!   cancels stays on WeChat's page too (`deny=1` or `user=deny` shows it): WeChat does not
//!   go back to the site. Otherwise a consent page lists the fake users; `user=<key>` (or
//!   [`WechatEmulator::set_next_user`]) picks one at once.
//! - `GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code` and
//!   `GET /sns/userinfo?access_token&openid&lang` answer errors with **HTTP 200** as
//!   `{"errcode", "errmsg"}` (the message ends in `, rid: …` as WeChat's do): 40013 invalid
//!   appid, 40125 invalid appsecret, 40002 invalid grant_type, 40029 invalid code (unknown or
//!   another app's), 40163 code been used, 42003 code expired (codes live ten minutes);
//!   40001 invalid credential, 42001 access_token expired ([`WechatEmulator::expire_tokens`]),
//!   40003 invalid openid, 48001 api unauthorized (a `snsapi_base` token).
//! - `openid` differs per app (appid) for the same person; `unionid` is the same for every app
//!   of the Open Platform account and is sent only while the app is bound to one
//!   ([`WechatEmulator::set_bound_to_open_platform`], on by default). There is no email or phone.

use crate::common::{Client, esc, query_without_user, random_hex, s256};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake WeChat user.
#[derive(Debug, Clone, Copy)]
pub struct WechatUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub nickname: &'static str,
    /// The Open Platform id, the same in every app of the account.
    pub unionid: &'static str,
    /// WeChat's `sex`: 1 male, 2 female, 0 not given (what WeChat sends since October 2021).
    pub sex: u8,
}

/// 张伟, 李娜 and Wang Fang (a Latin nickname).
pub const USERS: [WechatUser; 3] = [
    WechatUser {
        key: "zhangwei",
        nickname: "张伟",
        unionid: "oU5Yyt2xk7Zc9M0eWfG1bQ3hZhWe",
        sex: 0,
    },
    WechatUser {
        key: "lina",
        nickname: "李娜",
        unionid: "oU5Yyt8pQ2nR4sT6uV8wX0yLiNa0",
        sex: 0,
    },
    WechatUser {
        key: "wangfang",
        nickname: "Wang Fang",
        unionid: "oU5Yyt1aB3cD5eF7gH9iJ1kWaNg0",
        sex: 2,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

/// The user's `openid` in the app `appid`: the same person has another one in each app.
pub fn openid(appid: &str, user: &WechatUser) -> String {
    let h = s256(&format!("{appid}/{}", user.key)).replace(['-', '_'], "x");
    format!("o6_bm{}", &h[..23])
}

struct Code {
    user: WechatUser,
    scope: String,
    issued: Instant,
    used: bool,
}

struct Shared {
    client: Client,
    callback_domains: Mutex<Vec<String>>,
    bound: AtomicBool,
    /// Tokens are issued already expired.
    expire_new: AtomicBool,
    code_ttl: Mutex<Duration>,
    codes: Mutex<HashMap<String, Code>>,
    /// access token → (user, scope, expired)
    tokens: Mutex<HashMap<String, (WechatUser, String, bool)>>,
}

/// A running WeChat emulator on 127.0.0.1. Stops when dropped.
pub struct WechatEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl WechatEmulator {
    /// A website app (网站应用) on a free loopback port; panics when none can be bound, which
    /// only tests want.
    pub async fn start() -> WechatEmulator {
        Self::serve(crate::free_loopback_port("WeChat").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<WechatEmulator> {
        Self::serve_app(listener, "wx8f3a2c1e5d7b9a04")
    }

    /// Another app of the same Open Platform account (an Official Account, say): the same
    /// people with the same `unionid`, other `openid`s.
    pub async fn start_app(appid: &str) -> WechatEmulator {
        Self::serve_app(crate::free_loopback_port("WeChat").await, appid)
            .expect("read the emulator's local address")
    }

    fn serve_app(
        listener: tokio::net::TcpListener,
        appid: &str,
    ) -> std::io::Result<WechatEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, appid, "3f9c2b7e1a5d4c8e0b6a2f4d8c1e7a93"),
            callback_domains: Mutex::new(vec![]),
            bound: AtomicBool::new(true),
            expire_new: AtomicBool::new(false),
            code_ttl: Mutex::new(CODE_TTL),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/connect/qrconnect", get(qrconnect))
            .route("/connect/oauth2/authorize", get(in_wechat))
            .route("/sns/oauth2/access_token", get(access_token))
            .route("/sns/userinfo", get(userinfo))
            .with_state(shared.clone());
        Ok(WechatEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.weixin.qq.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    /// Stands for `https://open.weixin.qq.com/connect/qrconnect` (website QR login).
    pub fn qr_auth_url(&self) -> String {
        format!("{}/connect/qrconnect", self.shared.client.base)
    }
    /// Stands for `https://open.weixin.qq.com/connect/oauth2/authorize` (inside WeChat).
    pub fn in_wechat_auth_url(&self) -> String {
        format!("{}/connect/oauth2/authorize", self.shared.client.base)
    }

    /// Registers the callback domain (授权回调域) of `uri`: its host and port. Until one is
    /// registered, any absolute `redirect_uri` is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        if let Some(d) = domain(&uri.into()) {
            self.shared.callback_domains.lock().expect("lock").push(d);
        }
    }

    /// Whether the app is bound to an Open Platform account, i.e. whether `unionid` is sent.
    pub fn set_bound_to_open_platform(&self, on: bool) {
        self.shared.bound.store(on, Ordering::SeqCst);
    }

    /// How long codes issued from now on stay valid (WeChat: ten minutes).
    pub fn set_code_ttl(&self, ttl: Duration) {
        *self.shared.code_ttl.lock().expect("lock") = ttl;
    }

    /// Every token issued so far has expired (`sns/userinfo` answers 42001), and so will the
    /// next ones while `on`.
    pub fn expire_tokens(&self, on: bool) {
        for v in self.shared.tokens.lock().expect("lock").values_mut() {
            v.2 = on;
        }
        self.shared.expire_new.store(on, Ordering::SeqCst);
    }

    /// The `openid` of the fake user `key` in this app.
    pub fn openid_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake WeChat user `{key}`"));
        openid(&self.shared.client.client_id, u)
    }
}

fn domain(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_string(),
    })
}

/// WeChat's page for a request it will not send back to the site (HTTP 200, as WeChat).
fn wechat_page(title: &str, message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>{t}</title>\n<h1>{t}</h1>\n<p>{}</p>\n",
        esc(message),
        t = esc(title)
    ))
    .into_response()
}

async fn qrconnect(s: State<Arc<Shared>>, q: Query<HashMap<String, String>>) -> Response {
    authorize(s, q, &["snsapi_login"], "/connect/qrconnect").await
}

async fn in_wechat(s: State<Arc<Shared>>, q: Query<HashMap<String, String>>) -> Response {
    authorize(
        s,
        q,
        &["snsapi_base", "snsapi_userinfo"],
        "/connect/oauth2/authorize",
    )
    .await
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    scopes: &[&str],
    path: &str,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("appid") != s.client.client_id {
        return wechat_page("参数错误", "appid 参数错误（appid 不存在或不是此类应用）");
    }
    let registered = s.callback_domains.lock().expect("lock").clone();
    let redirect_uri = get("redirect_uri");
    match domain(redirect_uri) {
        Some(d) if registered.is_empty() || registered.contains(&d) => {}
        _ => {
            return wechat_page(
                "参数错误",
                "redirect_uri 参数错误（与后台配置的授权回调域不一致）",
            );
        }
    }
    if get("response_type") != "code" {
        return wechat_page("参数错误", "response_type 参数错误");
    }
    if !scopes.contains(&get("scope")) {
        return wechat_page("参数错误", "Scope 参数错误或没有 Scope 权限");
    }
    let pick = s.client.pick(&q);
    if q.contains_key("deny") || pick.as_deref() == Some("deny") {
        return wechat_page("已取消", "你已取消此次登录");
    }
    let Some(pick) = pick else {
        return consent_page(path, &q);
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return wechat_page("参数错误", &format!("no emulated user `{pick}`"));
    };
    let code = random_hex("0")[..32].to_string();
    s.codes.lock().expect("lock").insert(
        code.clone(),
        Code {
            user,
            scope: get("scope").to_string(),
            issued: Instant::now(),
            used: false,
        },
    );
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return wechat_page("参数错误", "redirect_uri 参数错误");
    };
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

fn consent_page(path: &str, q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"{path}?{}&amp;user={}\">{}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.nickname)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>微信登录</title>\n<h1>微信登录（模拟器）</h1>\n<p>使用微信扫一扫登录。选择要登录的微信用户：</p>\n<ul>\n{items}</ul>\n<p><a href=\"{path}?{}&amp;deny=1\">取消</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

/// `{errcode, errmsg}` with HTTP 200; the message ends in a request id, as WeChat's do.
fn wx_error(code: u32, msg: &str) -> Response {
    let rid = &random_hex("")[..24];
    Json(json!({"errcode": code, "errmsg": format!("{msg}, rid: {rid}")})).into_response()
}

async fn access_token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.client.count_token_request();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("appid") != s.client.client_id {
        return wx_error(40013, "invalid appid");
    }
    if get("secret") != s.client.client_secret {
        return wx_error(40125, "invalid appsecret");
    }
    if get("grant_type") != "authorization_code" {
        return wx_error(40002, "invalid grant_type");
    }
    let mut codes = s.codes.lock().expect("lock");
    let Some(code) = codes.get_mut(get("code")) else {
        return wx_error(40029, "invalid code");
    };
    if code.used {
        return wx_error(40163, "code been used");
    }
    code.used = true;
    if code.issued.elapsed() >= *s.code_ttl.lock().expect("lock") {
        return wx_error(42003, "code expired");
    }
    let (user, scope) = (code.user, code.scope.clone());
    drop(codes);
    let access = random_hex("86_");
    s.tokens.lock().expect("lock").insert(
        access.clone(),
        (user, scope.clone(), s.expire_new.load(Ordering::SeqCst)),
    );
    let mut answer = json!({
        "access_token": access,
        "expires_in": 7200,
        "refresh_token": random_hex("86_r"),
        "openid": openid(&s.client.client_id, &user),
        "scope": scope,
    });
    if s.bound.load(Ordering::SeqCst) {
        answer["unionid"] = user.unionid.into();
    }
    Json(answer).into_response()
}

async fn userinfo(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let token = s
        .tokens
        .lock()
        .expect("lock")
        .get(get("access_token"))
        .cloned();
    let Some((user, scope, expired)) = token else {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    };
    if expired {
        return wx_error(42001, "access_token expired");
    }
    let oid = openid(&s.client.client_id, &user);
    if get("openid") != oid {
        return wx_error(40003, "invalid openid");
    }
    if scope == "snsapi_base" {
        return wx_error(48001, "api unauthorized");
    }
    let mut answer = json!({
        "openid": oid,
        "nickname": user.nickname,
        "sex": user.sex,
        "language": "",
        "city": "",
        "province": "",
        "country": "",
        "headimgurl": format!("https://thirdwx.qlogo.cn/mmopen/vi_32/{}/132", &user.unionid[6..]),
        "privilege": Value::Array(vec![]),
    });
    if s.bound.load(Ordering::SeqCst) {
        answer["unionid"] = user.unionid.into();
    }
    Json(answer).into_response()
}
