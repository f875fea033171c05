//! A Login with Amazon emulator: `ap/oa` (www.amazon.com), `auth/o2/token` and `user/profile`
//! (api.amazon.com), on one loopback port that stands for both origins.
//!
//! - `GET /ap/oa`: `client_id` (the security profile's), `scope` (space-separated, only
//!   `profile`, `profile:user_id`, `postal_code`), `response_type=code`, `redirect_uri` (one
//!   of the Allowed Return URLs), `state`, optional PKCE (`code_challenge`,
//!   `code_challenge_method` S256 or plain). An unknown client or return URL is Amazon's
//!   error page; an unknown scope comes back to the app as `error=invalid_scope`; `user=deny`
//!   as `error=access_denied`, both with an `error_description`.
//! - `POST /auth/o2/token`, form: `grant_type=authorization_code`, `code`, `redirect_uri`,
//!   `client_id`, `client_secret` (or HTTP Basic), `code_verifier` after a challenge. Errors
//!   are RFC 6749's: 401 `invalid_client` "Client authentication failed", 400
//!   `invalid_grant` "The request has an invalid grant parameter : code" (unknown, used or
//!   expired — codes live five minutes — or another redirect URI, or a wrong verifier).
//!   Success: `access_token` (`Atza|…`), `refresh_token` (`Atzr|…`), `token_type: bearer`,
//!   `expires_in: 3600`.
//! - `GET /user/profile`, the token as Bearer, `x-amz-access-token` or `access_token`:
//!   `user_id`, and `name` and `email` with `profile`, `postal_code` with `postal_code`. A bad
//!   token is 401 `{"error": "invalid_token", "error_description": "The request has an
//!   invalid parameter : access_token"}`. [`AmazonEmulator::set_profile_outage`] makes it
//!   answer 500 `{"error": "ServerError", "error_description": "…"}` instead.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, client_credentials, consent_page,
    esc, oauth_error, random_token, redirect, s256, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A fake Amazon customer.
#[derive(Debug, Clone, Copy)]
pub struct AmazonUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub user_id: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub postal_code: &'static str,
}

/// Иван Петров and Мария Смирнова; every Amazon account has an address.
pub const USERS: [AmazonUser; 2] = [
    AmazonUser {
        key: "ivan",
        user_id: "amzn1.account.AGZ3XK7Q2LMN4OPQRSTU5VWXYZ6A",
        name: "Иван Петров",
        email: "ivan.petrov@example.ru",
        postal_code: "101000",
    },
    AmazonUser {
        key: "maria",
        user_id: "amzn1.account.AH7B2C3D4E5F6G7H8J9K0LMNOPQR",
        name: "Мария Смирнова",
        email: "maria@example.ru",
        postal_code: "190000",
    },
];

const CODE_TTL: Duration = Duration::from_secs(300);
const SCOPES: [&str; 3] = ["profile", "profile:user_id", "postal_code"];

#[derive(Clone)]
struct Code {
    user: AmazonUser,
    redirect_uri: String,
    scope: String,
    challenge: String,
    plain: bool,
}

#[derive(Clone)]
struct Grant {
    user: AmazonUser,
    scope: String,
}

struct Shared {
    client: Client,
    outage: AtomicBool,
    grants: Grants<Code, Grant>,
}

/// A running Login with Amazon emulator on 127.0.0.1. Stops when dropped.
pub struct AmazonEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl AmazonEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> AmazonEmulator {
        Self::serve(crate::free_loopback_port("Amazon").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<AmazonEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "amzn1.application-oa2-client.4f2c8e1a9b7d4c6e8f0a2b4c6d8e0f1a",
                "amzn1.oa2-cs.v1.7d1e9c3b5a7f9e1d3c5b7a9f1e3d5c7b9a1f3e5d7c9b1a3f",
            ),
            outage: AtomicBool::new(false),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/ap/oa", get(authorize))
            .route("/auth/o2/token", post(token))
            .route("/user/profile", get(profile))
            .with_state(shared.clone());
        Ok(AmazonEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.amazon.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://www.amazon.com/ap/oa`.
    pub fn auth_url(&self) -> String {
        format!("{}/ap/oa", self.shared.client.base)
    }

    /// Registers the security profile's Allowed Return URL. Until one is registered, any is
    /// accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// From now on `user/profile` answers HTTP 500 with Amazon's `ServerError` (`true`).
    pub fn set_profile_outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    /// The `user_id` of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.user_id)
            .unwrap_or_else(|| panic!("no fake Amazon user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Amazon Sign-In</title>\n<h1>We're sorry!</h1>\n<p>An error occurred when we tried to process your request.</p>\n<p>Error Summary: {}</p>\n",
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
        client: "400 Bad Request — The client_id is not valid (unknown client)",
        redirect: "400 Bad Request — An unknown redirect_uri was provided (it must be an Allowed Return URL)",
        not_a_url: "400 Bad Request — The redirect_uri is not valid",
    };
    let mut back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    let state = get("state").to_string();
    let mut answer = |error: &str, description: &str| {
        back.query_pairs_mut()
            .append_pair("error", error)
            .append_pair("error_description", description)
            .append_pair("state", &state);
        redirect(&back)
    };
    if get("response_type") != "code" {
        return answer("unsupported_response_type", "response_type must be code");
    }
    let scope = get("scope").to_string();
    if scope
        .split(' ')
        .any(|x| !x.is_empty() && !SCOPES.contains(&x))
        || scope.trim().is_empty()
    {
        return answer("invalid_scope", "An unknown scope was requested");
    }
    let plain = match (get("code_challenge"), get("code_challenge_method")) {
        ("", _) => false,
        (_, "S256") => false,
        (_, "plain" | "") => true,
        _ => return answer("invalid_request", "Invalid code_challenge_method"),
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/ap/oa",
            &q,
            &ConsentText {
                lang: "en",
                title: "Amazon Sign-In",
                heading: "Sign in with your Amazon account (emulator)",
                prompt: "Sign in as:",
                cancel: "Cancel",
            },
            USERS.iter().map(|u| (u.key, u.name)),
        );
    };
    if pick == "deny" {
        return answer("access_denied", "The user denied the request.");
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(15);
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
        .append_pair("code", &code)
        .append_pair("scope", get("scope"))
        .append_pair("state", &state);
    redirect(&back)
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
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server",
        );
    }
    let invalid = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The request has an invalid grant parameter : code",
        )
    };
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return invalid();
    };
    let verifier = get("code_verifier");
    let proved = code.challenge.is_empty()
        || if code.plain {
            verifier == code.challenge
        } else {
            s256(verifier) == code.challenge
        };
    if code.redirect_uri != get("redirect_uri") || !proved {
        return invalid();
    }
    let access = format!("Atza|{}", random_token(96));
    s.grants.issue_token(
        &access,
        Grant {
            user: code.user,
            scope: code.scope,
        },
    );
    Json(json!({
        "access_token": access,
        "refresh_token": format!("Atzr|{}", random_token(96)),
        "token_type": "bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

async fn profile(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bearer = crate::common::bearer(&headers);
    let token = [
        bearer,
        headers
            .get("x-amz-access-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        q.get("access_token")
            .map(String::as_str)
            .unwrap_or_default(),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or_default();
    if s.outage.load(Ordering::SeqCst) {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerError",
            "The server encountered an unexpected error. Please try again later.",
        );
    }
    let Some(grant) = s.grants.token_user(token) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The request has an invalid parameter : access_token",
        );
    };
    let u = grant.user;
    let has = |x: &str| grant.scope.split(' ').any(|s| s == x);
    let mut p = json!({"user_id": u.user_id});
    if has("profile") {
        p["name"] = u.name.into();
        p["email"] = u.email.into();
    }
    if has("postal_code") {
        p["postal_code"] = u.postal_code.into();
    }
    Json(p).into_response()
}
