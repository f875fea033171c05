//! An X (Twitter) OAuth 2.0 emulator: `i/oauth2/authorize` (x.com), `2/oauth2/token` and
//! `2/users/me` (api.x.com), on one loopback port that stands for both origins.
//!
//! - `GET /i/oauth2/authorize`: `response_type=code`, `client_id`, `redirect_uri` (the app's
//!   Callback URI), `scope` (space-separated), `state`, and PKCE, which X requires:
//!   `code_challenge` with `code_challenge_method` `S256` or `plain`. Anything wrong is X's
//!   "Something went wrong" page. `user=deny` returns `error=access_denied`.
//! - `POST /2/oauth2/token`, form: `grant_type=authorization_code`, `code`, `redirect_uri`,
//!   `code_verifier`, and the client by HTTP Basic (confidential clients) or `client_id` in
//!   the form (public clients). Errors are RFC 6749's with HTTP 400: `unauthorized_client`
//!   "Missing valid authorization header" (a confidential client without its Basic
//!   credentials, or the wrong secret), `invalid_request` "Value passed for the authorization
//!   code was invalid." (an unknown, used or expired code — codes live 30 seconds — another
//!   redirect URI, **or a `code_verifier` that does not match the challenge**). Success:
//!   `token_type: bearer`, `expires_in: 7200`, `access_token`, `scope`, and `refresh_token`
//!   with `offline.access`.
//! - `GET /2/users/me?user.fields=…`, Bearer: `{"data": {id, name, username, …}}`; the field
//!   `confirmed_email` only with the `users.email` scope and a confirmed address. A bad token
//!   is 401 `{"title": "Unauthorized", "type": "about:blank", "status": 401, "detail":
//!   "Unauthorized"}`.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, client_credentials, consent_pick,
    esc, oauth_error, random_token, redirect, s256, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake X account.
#[derive(Debug, Clone, Copy)]
pub struct XUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The numeric user id (v1.1's `id_str`).
    pub id: &'static str,
    pub name: &'static str,
    pub username: &'static str,
    /// "" for an account without a confirmed address (signed up with a phone number).
    pub confirmed_email: &'static str,
}

/// Иван Петров (a confirmed address) and Мария Смирнова (a phone-only account).
pub const USERS: [XUser; 2] = [
    XUser {
        key: "ivan",
        id: "1449712345678901234",
        name: "Иван Петров",
        username: "ivanpetrov",
        confirmed_email: "ivan.petrov@example.ru",
    },
    XUser {
        key: "maria",
        id: "987654321",
        name: "Мария Смирнова",
        username: "maria_smirnova",
        confirmed_email: "",
    },
];

const CODE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Code {
    user: XUser,
    redirect_uri: String,
    scope: String,
    challenge: String,
    plain: bool,
}

#[derive(Clone)]
struct Grant {
    user: XUser,
    scope: String,
}

struct Shared {
    client: Client,
    withheld_scope: Mutex<Option<String>>,
    grants: Grants<Code, Grant>,
}

/// A running X emulator on 127.0.0.1. Stops when dropped.
pub struct XEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl XEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> XEmulator {
        Self::serve(crate::free_loopback_port("X").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<XEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "TjNxR2hKbGVfQnZ4Y3o0bTNfeEY6MTpjaQ",
                "Yk3pZ8qW2vN5rT7uX9aC1dF4gH6jK0mL3nP5sR8tV2wY4zB7",
            ),
            withheld_scope: Mutex::new(None),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/i/oauth2/authorize", get(authorize))
            .route("/2/oauth2/token", post(token))
            .route("/2/users/me", get(me))
            .with_state(shared.clone());
        Ok(XEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.x.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://x.com/i/oauth2/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/i/oauth2/authorize", self.shared.client.base)
    }

    /// Registers the app's Callback URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// The scope people refuse from now on (`None`: they grant all).
    pub fn set_withheld_scope(&self, scope: Option<&str>) {
        *self.shared.withheld_scope.lock().expect("lock") = scope.map(String::from);
    }

    /// The numeric id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake X user `{key}`"))
    }
}

/// X's page for an authorization request it will not serve.
fn error_page(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>X</title>\n<h1>Something went wrong</h1>\n<p>You weren’t able to give access to the App. Go back and try logging in again.</p>\n<!-- {} -->\n",
            esc(detail)
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
        client: "unknown client_id",
        redirect: "redirect_uri does not match the app's Callback URI",
        not_a_url: "invalid redirect_uri",
    };
    let mut back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("response_type must be code");
    }
    let plain = match get("code_challenge_method") {
        "S256" => false,
        "plain" => true,
        _ => return error_page("code_challenge_method must be S256 or plain"),
    };
    if get("code_challenge").is_empty() {
        return error_page("code_challenge is required");
    }
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/i/oauth2/authorize",
            &ConsentText {
                lang: "en",
                title: "Authorize app / X",
                heading: "An app wants to access your X account (emulator)",
                prompt: "Authorize as:",
                cancel: "Cancel",
            },
        ),
        USERS.iter().map(|u| (u.key, u.name)),
        &back,
        "",
    ) {
        Ok(pick) => pick,
        Err(answer) => return *answer,
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let withheld = s.withheld_scope.lock().expect("lock").clone();
    let scope = get("scope")
        .split(' ')
        .filter(|x| !x.is_empty() && Some(*x) != withheld.as_deref())
        .collect::<Vec<_>>()
        .join(" ");
    let code = random_token(64);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope,
            challenge: get("code_challenge").to_string(),
            plain,
        },
    );
    back.query_pairs_mut()
        .append_pair("state", get("state"))
        .append_pair("code", &code);
    redirect(&back)
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let bad =
        |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    // The registered app is a confidential client: its Basic credentials are required.
    let (id, secret) = client_credentials(&headers, &HashMap::new());
    if id != s.client.client_id || secret != s.client.client_secret {
        return bad("unauthorized_client", "Missing valid authorization header");
    }
    if get("grant_type") != "authorization_code" {
        return bad(
            "invalid_request",
            "Missing required parameter [grant_type].",
        );
    }
    let invalid_code = || {
        bad(
            "invalid_request",
            "Value passed for the authorization code was invalid.",
        )
    };
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return invalid_code();
    };
    let verifier = get("code_verifier");
    let proved = if code.plain {
        verifier == code.challenge
    } else {
        s256(verifier) == code.challenge
    };
    if code.redirect_uri != get("redirect_uri") || !proved {
        return invalid_code();
    }
    let access = random_token(90);
    s.grants.issue_token(
        &access,
        Grant {
            user: code.user,
            scope: code.scope.clone(),
        },
    );
    let mut answer = json!({
        "token_type": "bearer",
        "expires_in": 7200,
        "access_token": access,
        "scope": code.scope,
    });
    if code.scope.split(' ').any(|x| x == "offline.access") {
        answer["refresh_token"] = random_token(90).into();
    }
    Json(answer).into_response()
}

async fn me(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(grant) = s.grants.token_user(crate::common::bearer(&headers)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})),
        )
            .into_response();
    };
    let u = grant.user;
    let fields: Vec<&str> = q
        .get("user.fields")
        .map(|f| f.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let mut data = json!({"id": u.id, "name": u.name, "username": u.username});
    if fields.contains(&"profile_image_url") {
        data["profile_image_url"] = format!(
            "https://pbs.twimg.com/profile_images/{}/avatar_normal.jpg",
            u.id
        )
        .into();
    }
    if fields.contains(&"confirmed_email")
        && grant.scope.split(' ').any(|x| x == "users.email")
        && !u.confirmed_email.is_empty()
    {
        data["confirmed_email"] = u.confirmed_email.into();
    }
    Json(json!({ "data": data })).into_response()
}
