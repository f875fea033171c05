//! A Bitbucket Cloud emulator: `site/oauth2/authorize`, `site/oauth2/access_token`
//! (bitbucket.org) and `2.0/user`, `2.0/user/emails` (api.bitbucket.org), on one loopback port
//! that stands for both origins.
//!
//! - `GET /site/oauth2/authorize`: `client_id` (the consumer key), `response_type=code`,
//!   `state`, and `redirect_uri`, which must be the consumer's callback URL. An unknown
//!   consumer or another callback is an error page (HTTP 400). `user=deny` returns
//!   `error=access_denied` with `error_description=access denied by the user`.
//! - `POST /site/oauth2/access_token`, form, the consumer by HTTP Basic (key:secret):
//!   400 `{"error": "invalid_client", "error_description": "Invalid OAuth client credentials"}`,
//!   400 `invalid_grant` "The specified code is not valid." (unknown, used or expired: codes
//!   live ten minutes), 400 `invalid_grant` "Redirect URI mismatch.". Success:
//!   `access_token`, `scopes: "account email"`, `expires_in: 7200`, `refresh_token`,
//!   `token_type: bearer`, `state: authorization_code`.
//! - `GET /2.0/user` and `GET /2.0/user/emails`, Bearer; a bad token is 401
//!   `{"type": "error", "error": {"message": "Access token expired. …"}}`.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, Redeemed, authorize_front, client_credentials,
    code_redirect, consent_pick, esc, random_token, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A fake Bitbucket account.
#[derive(Debug, Clone, Copy)]
pub struct BitbucketUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The account's uuid, without braces.
    pub uuid: &'static str,
    pub nickname: &'static str,
    pub display_name: &'static str,
    pub email: &'static str,
    /// The primary address is confirmed.
    pub confirmed: bool,
}

/// Иван (a confirmed primary address) and Мария (an unconfirmed one).
pub const USERS: [BitbucketUser; 2] = [
    BitbucketUser {
        key: "ivan",
        uuid: "d301aafa-d676-4ee0-88be-962be7417567",
        nickname: "ivan_p",
        display_name: "Иван Петров",
        email: "ivan.petrov@example.ru",
        confirmed: true,
    },
    BitbucketUser {
        key: "maria",
        uuid: "5c3b1e2a-9f4d-4c6b-8a7e-1d2f3a4b5c6d",
        nickname: "maria_s",
        display_name: "Мария Смирнова",
        email: "maria@example.ru",
        confirmed: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: BitbucketUser,
    redirect_uri: String,
}

struct Shared {
    client: Client,
    grants: Grants<Code, BitbucketUser>,
}

/// A running Bitbucket emulator on 127.0.0.1. Stops when dropped.
pub struct BitbucketEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl BitbucketEmulator {
    /// A consumer on a free loopback port; panics when none can be bound, which only tests
    /// want.
    pub async fn start() -> BitbucketEmulator {
        Self::serve(crate::free_loopback_port("Bitbucket").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<BitbucketEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "Zq4hT8vLb2XwR6nYpK",
                "m3Jc9Gf5Wd7Hs1Lk8Np2Qr4Tv6Xy0Ba",
            ),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/site/oauth2/authorize", get(authorize))
            .route("/site/oauth2/access_token", post(token))
            .route("/2.0/user", get(user))
            .route("/2.0/user/emails", get(emails))
            .with_state(shared.clone());
        Ok(BitbucketEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for both
    /// `https://bitbucket.org` and `https://api.bitbucket.org`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://bitbucket.org/site/oauth2/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/site/oauth2/authorize", self.shared.client.base)
    }

    /// Sets the consumer's callback URL. Until one is set, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The uuid (without braces) of the fake user `key`.
    pub fn uuid_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.uuid)
            .unwrap_or_else(|| panic!("no fake Bitbucket user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Bitbucket</title>\n<h1>Invalid request</h1>\n<p>{}</p>\n",
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
        redirect: "redirect_uri does not match",
        not_a_url: "redirect_uri does not match",
    };
    let back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("Unsupported response_type");
    }
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/site/oauth2/authorize",
            &ConsentText {
                lang: "en",
                title: "Bitbucket",
                heading: "Grant access to your Bitbucket account (emulator)",
                prompt: "Log in as:",
                cancel: "Cancel",
            },
        ),
        USERS.iter().map(|u| (u.key, u.display_name)),
        &back,
        "access denied by the user",
    ) {
        Ok(pick) => pick,
        Err(answer) => return *answer,
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(12);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
        },
    );
    code_redirect(back, &code, get("state"))
}

fn error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
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
        return error("invalid_client", "Invalid OAuth client credentials");
    }
    if get("grant_type") != "authorization_code" {
        return error("unsupported_grant_type", "Unsupported grant type");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Unknown | Redeemed::Used | Redeemed::Expired(_) => {
            return error("invalid_grant", "The specified code is not valid.");
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return error("invalid_grant", "Redirect URI mismatch.");
    }
    let access = random_token(60);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "scopes": "account email",
        "expires_in": 7200,
        "refresh_token": random_token(18),
        "token_type": "bearer",
        "state": "authorization_code",
    }))
    .into_response()
}

fn bearer_user(s: &Shared, headers: &HeaderMap) -> Option<BitbucketUser> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    s.grants.token_user(token)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"type": "error", "error": {"message": "Access token expired. Use your refresh token to obtain a new access token."}})),
    )
        .into_response()
}

async fn user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(u) = bearer_user(&s, &headers) else {
        return unauthorized();
    };
    Json(json!({
        "type": "user",
        "uuid": format!("{{{}}}", u.uuid),
        "account_id": format!("557058:{}", &u.uuid[..8]),
        "nickname": u.nickname,
        "display_name": u.display_name,
        "account_status": "active",
        "created_on": "2024-03-01T10:00:00.000000+00:00",
        "links": {"avatar": {"href": format!("https://secure.gravatar.com/avatar/{}.png", u.uuid)}},
    }))
    .into_response()
}

async fn emails(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(u) = bearer_user(&s, &headers) else {
        return unauthorized();
    };
    Json(json!({
        "pagelen": 10,
        "page": 1,
        "size": 2,
        "values": [
            {"type": "email", "email": format!("old-{}", u.email), "is_primary": false, "is_confirmed": true},
            {"type": "email", "email": u.email, "is_primary": true, "is_confirmed": u.confirmed},
        ],
    }))
    .into_response()
}
