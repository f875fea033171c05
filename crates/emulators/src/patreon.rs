//! A Patreon emulator: `oauth2/authorize`, `api/oauth2/token` and API v2's `identity`
//! (www.patreon.com), on one loopback port.
//!
//! - `GET /oauth2/authorize`: `response_type=code`, `client_id` (unknown: an error page),
//!   `redirect_uri` (must be one of the client's Redirect URIs), `scope` (space-separated:
//!   `identity`, `identity[email]`, `identity.memberships`, …), `state`. `user=deny` returns
//!   `error=access_denied`.
//! - `POST /api/oauth2/token`, form with `client_id` and `client_secret`: 401
//!   `{"error": "invalid_client"}`, 400 `invalid_grant` (unknown, reused or expired code, or
//!   another `redirect_uri`), 400 `unsupported_grant_type`. Success: `access_token`,
//!   `refresh_token`, `expires_in` (a month), `scope`, `token_type: Bearer`, `version`.
//! - `GET /api/oauth2/v2/identity`, Bearer, JSON:API: `data` is the user resource
//!   (`type: "user"`, `id`), with only the attributes `fields[user]` names; `email` only with
//!   the `identity[email]` scope; `include=memberships` adds the relationship and the
//!   `included` resources. A bad token is 401
//!   `{"errors": [{"code": 1, "code_name": "Unauthorized", "detail", "status": "401"}]}`.
//!
//! Users: Иван Петров (a confirmed email) and Мария Смирнова (an email Patreon never
//! confirmed: `is_email_verified: false`).

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, bearer, client_credentials,
    code_redirect, consent_pick, esc, oauth_error, random_token, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Patreon account.
#[derive(Debug, Clone, Copy)]
pub struct PatreonUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The Patreon user id.
    pub id: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: &'static str,
    pub email_verified: bool,
    pub vanity: &'static str,
}

/// Иван Петров (confirmed email) and Мария Смирнова (unconfirmed email).
pub const USERS: [PatreonUser; 2] = [
    PatreonUser {
        key: "ivan",
        id: "3821056",
        first_name: "Иван",
        last_name: "Петров",
        email: "ivan.petrov@example.org",
        email_verified: true,
        vanity: "ivanpetrov",
    },
    PatreonUser {
        key: "maria",
        id: "5510247",
        first_name: "Мария",
        last_name: "Смирнова",
        email: "maria.smirnova@example.ru",
        email_verified: false,
        vanity: "",
    },
];

#[derive(Clone)]
struct Code {
    user: PatreonUser,
    redirect_uri: String,
    scope: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, Code>,
}

/// A running Patreon emulator on 127.0.0.1. Stops when dropped.
pub struct PatreonEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl PatreonEmulator {
    /// A client on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> PatreonEmulator {
        Self::serve(crate::free_loopback_port("Patreon").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo`). Needs a Tokio runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<PatreonEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "Xq3vR8mT2kLp9wZc4nB7yHs1dF6eGj0SvQp4Zr7Tb1Wc5Ny8Ld3Hf6Gj0SvkX2m9",
                "pT7x-emulated-patreon-client-secret-4nB7yHs1dF6eGj0SvQp4Zr7Tb1Wc5Ny",
            ),
            grants: Grants::new(Duration::from_secs(600)),
        });
        let app = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/api/oauth2/token", post(token))
            .route("/api/oauth2/v2/identity", get(identity))
            .with_state(shared.clone());
        Ok(PatreonEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` standing for `https://www.patreon.com`.
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Registers the client's Redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// The Patreon id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Patreon user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Patreon</title>\n<h1>Something went wrong</h1>\n<p>{}</p>\n",
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
        client: "Invalid client_id",
        redirect: "Invalid redirect_uri",
        not_a_url: "Invalid redirect_uri",
    };
    let back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("response_type must be code");
    }
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/oauth2/authorize",
            &ConsentText {
                lang: "en",
                title: "Patreon",
                heading: "Allow access to your Patreon account? (emulator)",
                prompt: "Log in as:",
                cancel: "Deny",
            },
        ),
        USERS.iter().map(|u| (u.key, u.email)),
        &back,
        "",
    ) {
        Ok(pick) => pick,
        Err(answer) => return *answer,
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(24);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope").to_string(),
        },
    );
    code_redirect(back, &code, get("state"))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = client_credentials(&headers, &form);
    if id != s.client.client_id || secret != s.client.client_secret {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code",
        );
    }
    let invalid_grant = || {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
    };
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return invalid_grant().into_response();
    };
    if code.redirect_uri != get("redirect_uri") {
        return invalid_grant().into_response();
    }
    let access = random_token(32);
    s.grants.issue_token(&access, code.clone());
    Json(json!({
        "access_token": access,
        "refresh_token": random_token(32),
        "expires_in": 2_678_400,
        "scope": code.scope,
        "token_type": "Bearer",
        "version": "0.0.1",
    }))
    .into_response()
}

async fn identity(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(grant) = s.grants.token_user(bearer(&headers)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"code": 1, "code_name": "Unauthorized",
                "detail": "The server could not verify that you are authorized to access the URL requested.",
                "id": random_token(12), "status": "401", "title": "Unauthorized"}]})),
        )
            .into_response();
    };
    let u = grant.user;
    let scopes: Vec<&str> = grant.scope.split(' ').collect();
    let all = json!({
        "email": u.email,
        "is_email_verified": u.email_verified,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "full_name": format!("{} {}", u.first_name, u.last_name),
        "image_url": format!("https://c8.patreon.com/3/200/{}", u.id),
        "thumb_url": format!("https://c8.patreon.com/3/100/{}", u.id),
        "url": format!("https://www.patreon.com/user?u={}", u.id),
        "vanity": if u.vanity.is_empty() { Value::Null } else { u.vanity.into() },
        "created": "2019-04-12T09:30:00.000+00:00",
        "about": null,
    });
    // JSON:API sparse fieldsets: only what `fields[user]` names; the email only with its
    // scope.
    let wanted = q.get("fields[user]").cloned().unwrap_or_default();
    let mut attributes = Map::new();
    for f in wanted.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if f == "email" && !scopes.contains(&"identity[email]") {
            continue;
        }
        if let Some(v) = all.get(f) {
            attributes.insert(f.into(), v.clone());
        }
    }
    let mut data = json!({"id": u.id, "type": "user", "attributes": attributes});
    let mut answer =
        json!({"links": {"self": format!("https://www.patreon.com/api/oauth2/v2/user/{}", u.id)}});
    if q.get("include")
        .is_some_and(|i| i.split(',').any(|x| x == "memberships"))
    {
        data["relationships"] =
            json!({"memberships": {"data": [{"id": "a3b1c2d4-0001", "type": "member"}]}});
        answer["included"] = json!([{"id": "a3b1c2d4-0001", "type": "member", "attributes": {}}]);
    }
    answer["data"] = data;
    Json(answer).into_response()
}
