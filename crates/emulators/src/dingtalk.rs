//! A DingTalk (钉钉) sign-in emulator: the same paths, parameters, JSON and error shapes as
//! `login.dingtalk.com/oauth2/auth` and `api.dingtalk.com/v1.0/...`, and the same refusals.
//!
//! - `GET /oauth2/auth` checks `client_id`, `response_type=code`, `scope` (`openid` or
//!   `openid corpid`), `prompt=consent` and the registered `redirect_uri`
//!   ([`DingtalkEmulator::register_redirect_uri`]); like DingTalk it shows an error page (400)
//!   for any of these, without redirecting. Then it shows a consent page listing [`USERS`],
//!   each a link that repeats the request with `&user=<key>`. A request carrying `user=<key>`
//!   (or any request after [`DingtalkEmulator::set_next_user`]) picks that user at once and
//!   answers `302` to the `redirect_uri` with `authCode` and `state`.
//! - `POST /v1.0/oauth2/userAccessToken` takes JSON `{clientId, clientSecret, code, grantType}`
//!   and answers `{accessToken, refreshToken, expireIn, corpId?}`. Errors are HTTP 400 with
//!   `{code, message, requestid}`: a wrong client (`invalidClientIdOrSecret`), an unknown,
//!   reused or expired code (`invalidAuthCode`), a wrong `grantType`, a body that is not JSON.
//! - `GET /v1.0/contact/users/me` with `x-acs-dingtalk-access-token`; 401
//!   `InvalidAuthentication` otherwise.
//!
//! The error `code` strings follow DingTalk's style; DingTalk does not publish a complete list.

use crate::common::{Client, esc, query_without_user, random_hex};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake DingTalk account.
#[derive(Debug, Clone, Copy)]
pub struct DingtalkUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub nick: &'static str,
    pub open_id: &'static str,
    pub union_id: &'static str,
    pub email: Option<&'static str>,
    pub mobile: Option<&'static str>,
    pub state_code: &'static str,
}

/// A Chinese name, an email and a mobile number.
pub const ZHANGWEI: DingtalkUser = DingtalkUser {
    key: "zhangwei",
    nick: "张伟",
    open_id: "openZhangWei0001",
    union_id: "unionZhangWei0001",
    email: Some("zhangwei@example.cn"),
    mobile: Some("13800138000"),
    state_code: "86",
};
/// No email (DingTalk only has one when the user added it).
pub const LINA: DingtalkUser = DingtalkUser {
    key: "lina",
    nick: "李娜",
    open_id: "openLiNa0002",
    union_id: "unionLiNa0002",
    email: None,
    mobile: Some("13900139000"),
    state_code: "86",
};
/// A Cyrillic name, an email, no mobile.
pub const OLGA: DingtalkUser = DingtalkUser {
    key: "olga",
    nick: "Ольга Иванова",
    open_id: "openOlga0003",
    union_id: "unionOlga0003",
    email: Some("olga@example.ru"),
    mobile: None,
    state_code: "7",
};
pub const USERS: [DingtalkUser; 3] = [ZHANGWEI, LINA, OLGA];

/// The `corpId` answered when `corpid` was among the scopes.
pub const CORP_ID: &str = "ding0emulatedcorp";

const CODE_TTL: Duration = Duration::from_secs(300);

struct Code {
    user: DingtalkUser,
    corp: bool,
    issued: Instant,
}

struct Shared {
    client: Client,
    codes: Mutex<HashMap<String, Code>>,
    tokens: Mutex<HashMap<String, DingtalkUser>>,
}

/// A running emulator on 127.0.0.1. Stops when dropped.
pub struct DingtalkEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl DingtalkEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> DingtalkEmulator {
        Self::serve(crate::free_loopback_port("DingTalk").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<DingtalkEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "dingemulatedappkey", "emulated-dingtalk-app-secret"),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/oauth2/auth", get(authorize))
            .route("/v1.0/oauth2/userAccessToken", post(access_token))
            .route("/v1.0/contact/users/me", get(me))
            .with_state(shared.clone());
        Ok(DingtalkEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: both the `login.dingtalk.com` and `api.dingtalk.com` origin.
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/auth", self.shared.client.base)
    }
    pub fn token_url(&self) -> String {
        format!("{}/v1.0/oauth2/userAccessToken", self.shared.client.base)
    }

    /// The app's registered redirect URL. Until set, any `redirect_uri` is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>钉钉</title><h1>授权失败</h1><p class=\"error\">{}</p>",
            esc(message)
        )),
    )
        .into_response()
}

/// `{code, message, requestid}` with HTTP 4xx, as DingTalk's API gateway.
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "requestid": random_hex("")})),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page("应用不存在 (unknown client_id)");
    }
    if get("response_type") != "code" {
        return error_page("response_type must be code");
    }
    let mut scopes: Vec<&str> = get("scope").split(' ').filter(|x| !x.is_empty()).collect();
    scopes.sort_unstable();
    if !(scopes == ["openid"] || scopes == ["corpid", "openid"]) {
        return error_page("scope must be `openid` or `openid corpid`");
    }
    if get("prompt") != "consent" {
        return error_page("prompt must be consent");
    }
    let redirect_uri = get("redirect_uri");
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("redirect_uri is not an absolute URL");
    };
    if let Some(reg) = s.client.registered_redirect_uri()
        && reg != redirect_uri
    {
        return error_page(
            "redirect_uri 与应用配置的回调域名不一致 (redirect_uri does not match the registered one)",
        );
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&s, &q);
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_hex("");
    s.codes.lock().expect("lock").insert(
        code.clone(),
        Code {
            user,
            corp: scopes.contains(&"corpid"),
            issued: Instant::now(),
        },
    );
    back.query_pairs_mut()
        .append_pair("authCode", &code)
        .append_pair("state", get("state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

fn consent_page(s: &Shared, q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/oauth2/auth?{}&amp;user={}\">{} — {}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.nick),
            esc(u.email.unwrap_or("无邮箱 (no email)"))
        ));
    }
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>钉钉登录</title>\n<h1>DingTalk emulator: 授权 <code>{}</code></h1>\n<p>选择账号 (choose an account):</p>\n<ul>\n{items}</ul>\n",
        esc(&s.client.client_id)
    ))
    .into_response()
}

async fn access_token(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    s.client.count_token_request();
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "MissingBody",
            "body is mandatory for this action.",
        );
    };
    let get = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or_default();
    if get("grantType") != "authorization_code" {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter.grantType.invalid",
            "grantType 参数不合法",
        );
    }
    if get("clientId") != s.client.client_id || get("clientSecret") != s.client.client_secret {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    // A code works once: whatever happens next, it is gone.
    let code = s.codes.lock().expect("lock").remove(get("code"));
    let Some(code) = code.filter(|c| c.issued.elapsed() <= CODE_TTL) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidAuthCode",
            "不合法的临时授权码",
        );
    };
    let token = random_hex("");
    s.tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), code.user);
    let mut answer = json!({
        "accessToken": token,
        "refreshToken": random_hex(""),
        "expireIn": 7200,
    });
    if code.corp {
        answer["corpId"] = json!(CORP_ID);
    }
    Json(answer).into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let user = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| s.tokens.lock().expect("lock").get(t).copied());
    let Some(u) = user else {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthentication",
            "不合法的access_token",
        );
    };
    let mut v = json!({
        "nick": u.nick,
        "avatarUrl": format!("https://static-legacy.dingtalk.com/media/{}.png", u.open_id),
        "openId": u.open_id,
        "unionId": u.union_id,
        "stateCode": u.state_code,
    });
    if let Some(m) = u.mobile {
        v["mobile"] = json!(m);
    }
    if let Some(e) = u.email {
        v["email"] = json!(e);
    }
    Json(v).into_response()
}
