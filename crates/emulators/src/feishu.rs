//! A Feishu / Lark Open Platform emulator: the authorization page
//! (`accounts.feishu.cn/open-apis/authen/v1/authorize`), the token endpoint
//! (`open.feishu.cn/open-apis/authen/v2/oauth/token`) and `authen/v1/user_info`, on one
//! loopback port.
//!
//! - Authorize: `client_id`, `redirect_uri`, `state`, optional `scope` and PKCE
//!   `code_challenge[_method]`. An unknown app or a `redirect_uri` outside the app's redirect
//!   URL list ([`FeishuEmulator::register_redirect_uri`]) is an error page, never a redirect.
//!   A consent page lists the fake users; `user=<key>` (or [`FeishuEmulator::set_next_user`])
//!   picks one, `user=deny` goes back with `error=access_denied`.
//! - Token: a **JSON** body (`grant_type`, `client_id`, `client_secret`, `code`,
//!   `redirect_uri`, `code_verifier`); anything else is refused. Errors carry Feishu's numeric
//!   `code` beside RFC 6749's fields, with HTTP 400: 20001 invalid_request, 20002
//!   invalid_client (wrong secret, unknown app), 20003 code not found, 20004 code expired
//!   (five minutes), 20065 code used, 20071 redirect_uri mismatch, 20049 PKCE failure
//!   (invalid_grant). Success is `code: 0` with the token fields.
//! - `user_info`: `Authorization: Bearer <token>`; the user in `{code: 0, msg: "success",
//!   data: {…}}`; an unknown token is HTTP 400 with code 99991668, an expired one 99991677
//!   ([`FeishuEmulator::expire_tokens`]).

use crate::common::{
    Client, Grants, Redeemed, esc, query_without_user, random_hex, redirect, s256,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Feishu user of the tenant `tenant_key`.
#[derive(Debug, Clone, Copy)]
pub struct FeishuUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub name: &'static str,
    pub en_name: &'static str,
    /// Set by the tenant's administrator; `None`: no email.
    pub email: Option<&'static str>,
    pub mobile: Option<&'static str>,
    pub union_id: &'static str,
    pub tenant_key: &'static str,
}

/// 张伟 (email), 李娜 (no email), Alex Chen (email); the first two in one tenant.
pub const USERS: [FeishuUser; 3] = [
    FeishuUser {
        key: "zhangwei",
        name: "张伟",
        en_name: "Zhang Wei",
        email: Some("zhangwei@corp.example.cn"),
        mobile: Some("+8613800000001"),
        union_id: "on_94a1ee5551019f18cd73d9f111898cf2",
        tenant_key: "2ed263bf32cf1651",
    },
    FeishuUser {
        key: "lina",
        name: "李娜",
        en_name: "Li Na",
        email: None,
        mobile: Some("+8613800000002"),
        union_id: "on_7c1f0e8d2b3a4c5d6e7f8091a2b3c4d5",
        tenant_key: "2ed263bf32cf1651",
    },
    FeishuUser {
        key: "alex",
        name: "Alex Chen",
        en_name: "Alex Chen",
        email: Some("alex.chen@example.com"),
        mobile: None,
        union_id: "on_5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        tenant_key: "736588c9260f175d",
    },
];

const CODE_TTL: Duration = Duration::from_secs(300);

/// The user's `open_id` in app `app_id`.
pub fn open_id(app_id: &str, user: &FeishuUser) -> String {
    let h = s256(&format!("{app_id}/{}", user.key)).to_lowercase();
    let hex: String = h
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    format!("ou_{hex}")
}

#[derive(Clone)]
struct Code {
    user: FeishuUser,
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
}

struct Shared {
    client: Client,
    redirect_uris: Mutex<Vec<String>>,
    expire: AtomicBool,
    grants: Grants<Code, FeishuUser>,
}

/// A running Feishu emulator on 127.0.0.1. Stops when dropped.
pub struct FeishuEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl FeishuEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> FeishuEmulator {
        Self::serve(crate::free_loopback_port("Feishu").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<FeishuEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "cli_a5ca35a685b0x26e",
                "baBqE5um9LbFGDy3X7LcfxQX1sqpXlwy",
            ),
            redirect_uris: Mutex::new(vec![]),
            expire: AtomicBool::new(false),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/open-apis/authen/v1/authorize", get(authorize))
            .route("/open-apis/authen/v2/oauth/token", post(token))
            .route("/open-apis/authen/v1/user_info", get(user_info))
            .with_state(shared.clone());
        Ok(FeishuEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://open.feishu.cn`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    /// Stands for `https://accounts.feishu.cn/open-apis/authen/v1/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/open-apis/authen/v1/authorize", self.shared.client.base)
    }

    /// Adds a redirect URL to the app's security settings; once one is registered, the
    /// authorization page refuses every other.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared
            .redirect_uris
            .lock()
            .expect("lock")
            .push(uri.into());
    }

    /// How long codes issued from now on stay valid (Feishu: five minutes).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// While on, `user_info` treats every token as expired (code 99991677).
    pub fn expire_tokens(&self, on: bool) {
        self.shared.expire.store(on, Ordering::SeqCst);
    }

    /// The `open_id` of the fake user `key` in this app.
    pub fn open_id_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake Feishu user `{key}`"));
        open_id(&self.shared.client.client_id, u)
    }
}

fn error_page(code: u32, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>飞书 - 授权失败</title>\n<h1>授权失败</h1>\n<p>错误码 {code}：{}</p>\n",
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
        return error_page(20029, "应用不存在（client_id 无效）");
    }
    let registered = s.redirect_uris.lock().expect("lock").clone();
    let redirect_uri = get("redirect_uri");
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page(20029, "redirect_uri 请求不合法");
    };
    if !registered.is_empty() && !registered.iter().any(|r| r == redirect_uri) {
        return error_page(
            20029,
            "redirect_uri 请求不合法（不在应用的重定向 URL 列表中）",
        );
    }
    let challenge = match (q.get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), "S256") => Some(s256_marker(c)),
        (Some(c), "" | "plain") => Some(c.clone()),
        (Some(_), _) => return error_page(20001, "code_challenge_method 无效"),
    };
    let pick = s.client.pick(&q);
    let mut pairs: Vec<(&str, String)> = vec![];
    match pick.as_deref() {
        None => return consent_page(&q),
        Some("deny") => pairs.push(("error", "access_denied".into())),
        Some(key) => {
            let Some(user) = USERS.iter().find(|u| u.key == key).copied() else {
                return error_page(20001, &format!("no emulated user `{key}`"));
            };
            let code = random_hex("");
            s.grants.issue_code(
                &code,
                Code {
                    user,
                    redirect_uri: redirect_uri.to_string(),
                    challenge,
                    scope: get("scope").to_string(),
                },
            );
            pairs.push(("code", code));
        }
    }
    pairs.push(("state", get("state").to_string()));
    back.query_pairs_mut().extend_pairs(pairs);
    redirect(&back)
}

/// A stored S256 challenge, told apart from a plain one.
fn s256_marker(challenge: &str) -> String {
    format!("S256:{challenge}")
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/open-apis/authen/v1/authorize?{}&amp;user={}\">{}</a> <small>{} · {}</small></li>\n",
            esc(&base),
            u.key,
            esc(u.name),
            esc(u.en_name),
            esc(u.email.unwrap_or("无邮箱"))
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>飞书 - 授权登录</title>\n<h1>飞书授权登录（模拟器）</h1>\n<p>选择要登录的飞书用户：</p>\n<ul>\n{items}</ul>\n<p><a href=\"/open-apis/authen/v1/authorize?{}&amp;user=deny\">拒绝</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

fn token_error(code: u32, error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": code, "error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    s.client.count_token_request();
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(b) = json_body
        .then(|| serde_json::from_str::<Value>(&body).ok())
        .flatten()
    else {
        return token_error(20001, "invalid_request", "The request body must be JSON.");
    };
    let get = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return token_error(
            20001,
            "unsupported_grant_type",
            "The grant_type is not supported.",
        );
    }
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return token_error(20002, "invalid_client", "The client secret is invalid.");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Unknown => {
            return token_error(
                20003,
                "invalid_grant",
                "The authorization code is not found.",
            );
        }
        Redeemed::Used => {
            return token_error(
                20065,
                "invalid_grant",
                "The authorization code has been used.",
            );
        }
        Redeemed::Expired(_) => {
            return token_error(
                20004,
                "invalid_grant",
                "The authorization code has expired.",
            );
        }
    };
    if get("redirect_uri") != code.redirect_uri {
        return token_error(20071, "invalid_grant", "The redirect_uri does not match.");
    }
    if let Some(challenge) = &code.challenge {
        let verifier = get("code_verifier");
        let ok = match challenge.strip_prefix("S256:") {
            Some(c) => s256(verifier) == c,
            None => verifier == challenge,
        };
        if verifier.is_empty() || !ok {
            return token_error(20049, "invalid_grant", "PKCE verification failed.");
        }
    }
    let (user, scope) = (code.user, code.scope.clone());
    let access = random_hex("u-");
    s.grants.issue_token(&access, user);
    let mut answer = json!({
        "code": 0,
        "access_token": access,
        "expires_in": 7200,
        "token_type": "Bearer",
        "scope": scope,
    });
    if scope.split(' ').any(|x| x == "offline_access") {
        answer["refresh_token"] = random_hex("ur-").into();
        answer["refresh_token_expires_in"] = 604_800.into();
    }
    Json(answer).into_response()
}

async fn user_info(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| s.grants.token_user(t));
    let Some(u) = token else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 99991668, "msg": "Invalid access token for authorization. Please make a request with token attached."})),
        )
            .into_response();
    };
    if s.expire.load(Ordering::SeqCst) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 99991677, "msg": "Authentication token expired."})),
        )
            .into_response();
    }
    let avatar = format!(
        "https://s1-imfile.feishucdn.com/static-resource/v1/{}~?image_size=72x72",
        &u.union_id[3..15]
    );
    let mut data = json!({
        "name": u.name,
        "en_name": u.en_name,
        "avatar_url": avatar,
        "avatar_thumb": avatar,
        "open_id": open_id(&s.client.client_id, &u),
        "union_id": u.union_id,
        "tenant_key": u.tenant_key,
    });
    if let Some(e) = u.email {
        data["email"] = e.into();
    }
    if let Some(m) = u.mobile {
        data["mobile"] = m.into();
    }
    Json(json!({"code": 0, "msg": "success", "data": data})).into_response()
}
