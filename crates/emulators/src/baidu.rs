//! A Baidu OAuth emulator (`openapi.baidu.com`): `oauth/2.0/authorize`, `oauth/2.0/token` and
//! the REST call `rest/2.0/passport/users/getInfo`, on one loopback port.
//!
//! - `GET /oauth/2.0/authorize`: `response_type=code`, `client_id` (the API Key),
//!   `redirect_uri`, `scope`, `display`, `state`. An unknown app or a `redirect_uri` other than
//!   the registered one ([`BaiduEmulator::register_redirect_uri`]) is an error page;
//!   `user=deny` goes back with `error=access_denied`; `user=<key>` (or
//!   [`BaiduEmulator::set_next_user`]) picks a person.
//! - `GET|POST /oauth/2.0/token`: `grant_type=authorization_code`, `code`, `client_id`,
//!   `client_secret`, `redirect_uri` (query or form). Errors are `{error, error_description}`
//!   with HTTP 400 (the status is the emulator's reading): `invalid_client`, `invalid_grant`
//!   (unknown, reused or expired code — ten minutes —, another `redirect_uri`),
//!   `unsupported_grant_type`.
//! - `GET|POST /rest/2.0/passport/users/getInfo?access_token`: `openid` (per app), a masked
//!   `username`, `portrait`, `sex`, `birthday`; errors with HTTP 200 as `{error_code,
//!   error_msg}`: 110 invalid token ([`BaiduEmulator::revoke_tokens`]), 111 expired.

use crate::common::{self, Client, ConsentText, Grants, Redeemed, esc, random_hex, redirect, s256};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A fake Baidu account.
#[derive(Debug, Clone, Copy)]
pub struct BaiduUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The account name, which Baidu masks (`z***i`).
    pub username: &'static str,
    /// `"1"` male, `"0"` female.
    pub sex: &'static str,
}

/// zhaolei and sunli.
pub const USERS: [BaiduUser; 2] = [
    BaiduUser {
        key: "zhaolei",
        username: "zhaolei",
        sex: "1",
    },
    BaiduUser {
        key: "sunli",
        username: "sunli",
        sex: "0",
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

/// The user's `openid` in the app `client_id`.
pub fn openid(client_id: &str, user: &BaiduUser) -> String {
    let h = s256(&format!("{client_id}/{}", user.key)).replace(['-', '_'], "x");
    format!("o{}", &h[..26])
}

fn masked(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.next_back()) {
        (Some(a), Some(z)) => format!("{a}***{z}"),
        _ => "***".into(),
    }
}

#[derive(Clone)]
struct Code {
    user: BaiduUser,
    redirect_uri: String,
}

struct Shared {
    client: Client,
    expire_tokens: AtomicBool,
    grants: Grants<Code, BaiduUser>,
}

/// A running Baidu emulator on 127.0.0.1. Stops when dropped.
pub struct BaiduEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl BaiduEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> BaiduEmulator {
        Self::serve(crate::free_loopback_port("Baidu").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<BaiduEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "Gx7kYq2mWb9pRt4sVn8cLd3f",
                "hQ5wZ1xK8vB3nM6jT9rY2cF4gP7sD0aE",
            ),
            expire_tokens: AtomicBool::new(false),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth/2.0/authorize", get(authorize))
            .route("/oauth/2.0/token", get(token).post(token))
            .route(
                "/rest/2.0/passport/users/getInfo",
                get(get_info).post(get_info),
            )
            .with_state(shared.clone());
        Ok(BaiduEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://openapi.baidu.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://openapi.baidu.com/oauth/2.0/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth/2.0/authorize", self.shared.client.base)
    }

    /// The only `redirect_uri` accepted from now on (until then, any).
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    crate::common::grant_accessors!();

    /// Whether every token is reported expired (111).
    pub fn expire_tokens(&self, on: bool) {
        self.shared.expire_tokens.store(on, Ordering::SeqCst);
    }

    /// The `openid` of the fake user `key` in this app.
    pub fn openid_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake Baidu user `{key}`"));
        openid(&self.shared.client.client_id, u)
    }
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>百度帐号</title>\n<h1>授权失败</h1>\n<p>{}</p>\n",
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
        return error_page("invalid_client: unknown client id");
    }
    let redirect_uri = get("redirect_uri");
    if s.client
        .registered_redirect_uri()
        .is_some_and(|r| r != redirect_uri)
    {
        return error_page("redirect_uri_mismatch: invalid redirect uri");
    }
    if get("response_type") != "code" {
        return error_page("unsupported_response_type");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("redirect_uri_mismatch: invalid redirect uri");
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "user didnot allow your app access")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
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
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let text = ConsentText {
        lang: "zh-CN",
        title: "百度帐号登录",
        heading: "百度帐号（模拟器）",
        prompt: "选择要登录的百度帐号：",
        cancel: "取消",
    };
    common::consent_page(
        "/oauth/2.0/authorize",
        q,
        &text,
        USERS.iter().map(|u| (u.key, u.username)),
    )
}

fn oauth_error(error: &str, description: &str) -> Response {
    common::oauth_error(StatusCode::BAD_REQUEST, error, description)
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
        return oauth_error("invalid_client", "unknown client id or wrong client secret");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            "unsupported_grant_type",
            "The authorization grant type is not supported",
        );
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => return oauth_error("invalid_grant", "authorization code expired"),
        Redeemed::Unknown | Redeemed::Used => {
            return oauth_error("invalid_grant", "Invalid authorization code");
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return oauth_error("invalid_grant", "redirect_uri mismatch");
    }
    let access = format!("121.{}", &random_hex("")[..28]);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "expires_in": 2592000,
        "refresh_token": format!("122.{}", &random_hex("")[..28]),
        "scope": "basic",
        "session_key": random_hex("")[..24].to_string(),
        "session_secret": random_hex("")[..32].to_string(),
    }))
    .into_response()
}

async fn get_info(
    State(s): State<Arc<Shared>>,
    Query(mut q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    for (k, v) in url::form_urlencoded::parse(&body) {
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let token = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(user) = s.grants.token_user(token) else {
        return Json(
            json!({"error_code": 110, "error_msg": "Access token invalid or no longer valid"}),
        )
        .into_response();
    };
    if s.expire_tokens.load(Ordering::SeqCst) {
        return Json(json!({"error_code": 111, "error_msg": "Access token expired"}))
            .into_response();
    }
    Json(json!({
        "openid": openid(&s.client.client_id, &user),
        "username": masked(user.username),
        "portrait": format!("e2c1{}", &s256(user.key)[..24].to_ascii_lowercase().replace(['-', '_'], "0")),
        "userdetail": "",
        "birthday": "0000-00-00",
        "marriage": "",
        "sex": user.sex,
        "blood": "",
        "is_bind_mobile": "1",
        "is_realname": "1",
    }))
    .into_response()
}
