//! A Discord emulator: `oauth2/authorize`, `api/oauth2/token` and `api/users/@me`, on one
//! loopback port (the base URL stands for `https://discord.com`).
//!
//! - `GET /oauth2/authorize`: `client_id`, `redirect_uri`, `response_type=code`, `scope`
//!   (space-separated), `state`, `prompt`. An unknown client is Discord's "Unknown Application"
//!   page, an unregistered `redirect_uri` its "Invalid OAuth2 redirect_uri" page (HTTP 400).
//!   `user=deny` returns `error=access_denied` with Discord's description; `user=<key>` (or
//!   [`DiscordEmulator::set_next_user`]) picks a person; [`DiscordEmulator::set_withheld_scope`]
//!   makes the person untick a scope, so the token's `scope` lacks it.
//! - `POST /api/oauth2/token`, form, client by `client_secret_post` or Basic: HTTP 401
//!   `{"error": "invalid_client"}` (unknown client or wrong secret), 400 `invalid_grant` with
//!   `Invalid "code" in request.` (unknown, reused or expired code: codes live ten minutes) or
//!   `Invalid "redirect_uri" in request.`, 400 `unsupported_grant_type`. Success:
//!   `access_token`, `token_type: Bearer`, `expires_in: 604800`, `refresh_token`, `scope`.
//! - `GET /api/users/@me`, Bearer: the user object (`id` snowflake, `username`,
//!   `discriminator` `"0"`, `global_name`, `avatar`, `email` and `verified` only with the
//!   `email` scope, `locale`, `mfa_enabled`, …), or HTTP 401 `{"message": "401: Unauthorized",
//!   "code": 0}`.

use crate::common::{
    Client, FrontErrors, Grants, Redeemed, authorize_front, code_redirect, esc, query_without_user,
    random_token, redirect, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Discord account.
#[derive(Debug, Clone, Copy)]
pub struct DiscordUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The snowflake.
    pub id: &'static str,
    pub username: &'static str,
    pub global_name: &'static str,
    pub email: &'static str,
    pub verified: bool,
}

/// Иван (a verified email) and Мария (an email Discord has not verified).
pub const USERS: [DiscordUser; 2] = [
    DiscordUser {
        key: "ivan",
        id: "803511102246789120",
        username: "ivan_petrov",
        global_name: "Иван Петров",
        email: "ivan.petrov@example.ru",
        verified: true,
    },
    DiscordUser {
        key: "maria",
        id: "917264513378402305",
        username: "maria.s",
        global_name: "Мария",
        email: "maria@example.ru",
        verified: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: DiscordUser,
    redirect_uri: String,
    scope: String,
}

#[derive(Clone)]
struct Grant {
    user: DiscordUser,
    scope: String,
}

struct Shared {
    client: Client,
    withheld_scope: Mutex<Option<String>>,
    grants: Grants<Code, Grant>,
}

/// A running Discord emulator on 127.0.0.1. Stops when dropped.
pub struct DiscordEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl DiscordEmulator {
    /// An application on a free loopback port; panics when none can be bound, which only tests
    /// want.
    pub async fn start() -> DiscordEmulator {
        Self::serve(crate::free_loopback_port("Discord").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<DiscordEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "1187452093318451200",
                "q7Zr2xK9vLm4Tn8Bw1Yc6Hd3Fs0Gp5Je",
            ),
            withheld_scope: Mutex::new(None),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/api/oauth2/token", post(token))
            .route("/api/users/@me", get(me))
            .with_state(shared.clone());
        Ok(DiscordEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://discord.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://discord.com/oauth2/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/authorize", self.shared.client.base)
    }

    /// Registers the application's one redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The scope people untick on the consent page from now on (`None`: they grant all).
    pub fn set_withheld_scope(&self, scope: Option<&str>) {
        *self.shared.withheld_scope.lock().expect("lock") = scope.map(String::from);
    }

    /// The snowflake of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Discord user `{key}`"))
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Discord</title>\n<h1>Authorization failed</h1>\n<p>{}</p>\n",
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
    let redirect_uri = get("redirect_uri");
    let errors = FrontErrors {
        client: "Unknown Application",
        redirect: "Invalid OAuth2 redirect_uri",
        not_a_url: "Invalid OAuth2 redirect_uri",
    };
    let mut back = match authorize_front(&s.client, &q, &errors, |m| {
        error_page(StatusCode::BAD_REQUEST, m)
    }) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page(StatusCode::BAD_REQUEST, "Invalid response_type");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair(
                "error_description",
                "The resource owner or authorization server denied the request",
            )
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("no emulated user `{pick}`"),
        );
    };
    let withheld = s.withheld_scope.lock().expect("lock").clone();
    let scope = get("scope")
        .split(' ')
        .filter(|x| !x.is_empty() && Some(*x) != withheld.as_deref())
        .collect::<Vec<_>>()
        .join(" ");
    let code = random_token(22);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope,
        },
    );
    code_redirect(back, &code, get("state"))
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/oauth2/authorize?{}&amp;user={}\">{} ({})</a></li>\n",
            esc(&base),
            u.key,
            esc(u.global_name),
            esc(u.username)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Discord</title>\n<h1>An external application wants to access your Discord account (emulator)</h1>\n<ul>\n{items}</ul>\n<p><a href=\"/oauth2/authorize?{}&amp;user=deny\">Cancel</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

fn oauth_error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = crate::common::client_credentials(&headers, &form);
    if id != s.client.client_id || secret != s.client.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let invalid_code = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "Invalid \"code\" in request."}),
        )
    };
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Unknown | Redeemed::Used | Redeemed::Expired(_) => return invalid_code(),
    };
    if code.redirect_uri != get("redirect_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "Invalid \"redirect_uri\" in request."}),
        );
    }
    let access = random_token(22);
    s.grants.issue_token(
        &access,
        Grant {
            user: code.user,
            scope: code.scope.clone(),
        },
    );
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 604800,
        "refresh_token": random_token(22),
        "scope": code.scope,
    }))
    .into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(grant) = s.grants.token_user(token) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401: Unauthorized", "code": 0}),
        );
    };
    let u = grant.user;
    let mut user = json!({
        "id": u.id,
        "username": u.username,
        "avatar": format!("{:032x}", u.id.len() as u128 * 0x9e3779b97f4a7c15),
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "banner": null,
        "accent_color": null,
        "global_name": u.global_name,
        "avatar_decoration_data": null,
        "banner_color": null,
        "mfa_enabled": false,
        "locale": "ru",
        "premium_type": 0,
    });
    if grant.scope.split(' ').any(|x| x == "email") {
        user["email"] = u.email.into();
        user["verified"] = u.verified.into();
    }
    Json(user).into_response()
}
