//! A Spotify emulator: `authorize`, `api/token` (accounts.spotify.com) and `v1/me`
//! (api.spotify.com), on one loopback port that stands for both origins.
//!
//! - `GET /authorize`: `client_id`, `response_type=code`, `redirect_uri` (must be one of the
//!   app's Redirect URIs: "INVALID_CLIENT: Invalid redirect URI" otherwise, as Spotify's page
//!   says; an unknown client is "INVALID_CLIENT: Invalid client"), `scope` (space-separated),
//!   `state`, and PKCE's `code_challenge_method=S256` with `code_challenge` (optional).
//!   `user=deny` returns `error=access_denied` (Spotify sends no description);
//!   [`SpotifyEmulator::set_withheld_scope`] makes the person refuse one scope.
//! - `POST /api/token`, form, the client by HTTP Basic (or `client_id`/`client_secret` in the
//!   form): HTTP 400 `{"error": "invalid_client", "error_description": "Invalid client
//!   secret"}`, 400 `invalid_grant` "Invalid authorization code" (unknown, reused or expired:
//!   codes live ten minutes), "Invalid redirect URI", "code_verifier was incorrect",
//!   `unsupported_grant_type`. Success: `access_token`, `token_type: Bearer`, `scope`,
//!   `expires_in: 3600`, `refresh_token`.
//! - `GET /v1/me`, Bearer: `id`, `display_name`, `email` (with `user-read-email`),
//!   `country`/`product`/`explicit_content` (with `user-read-private`), `images`,
//!   `external_urls`, `followers`, `href`, `type`, `uri`; a bad token is 401
//!   `{"error": {"status": 401, "message": "Invalid access token"}}`.

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, Redeemed, authorize_front, client_credentials,
    code_redirect, consent_pick, esc, random_token, s256, token_form,
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

/// A fake Spotify account.
#[derive(Debug, Clone, Copy)]
pub struct SpotifyUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The Spotify user id.
    pub id: &'static str,
    pub display_name: &'static str,
    pub email: &'static str,
    /// With a profile picture.
    pub image: bool,
}

/// Иван Петров (with a picture) and Мария Смирнова.
pub const USERS: [SpotifyUser; 2] = [
    SpotifyUser {
        key: "ivan",
        id: "31ivanpetrovxq7zq3o4vm2a",
        display_name: "Иван Петров",
        email: "ivan.petrov@example.ru",
        image: true,
    },
    SpotifyUser {
        key: "maria",
        id: "mariasmirnova",
        display_name: "Мария Смирнова",
        email: "maria@example.ru",
        image: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: SpotifyUser,
    redirect_uri: String,
    scope: String,
    challenge: String,
}

#[derive(Clone)]
struct Grant {
    user: SpotifyUser,
    scope: String,
}

struct Shared {
    client: Client,
    withheld_scope: Mutex<Option<String>>,
    grants: Grants<Code, Grant>,
}

/// A running Spotify emulator on 127.0.0.1. Stops when dropped.
pub struct SpotifyEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl SpotifyEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> SpotifyEmulator {
        Self::serve(crate::free_loopback_port("Spotify").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<SpotifyEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "5fe01282e44241328a84e7c5cc169165",
                "a7c3f1b2d4e5f60718293a4b5c6d7e8f",
            ),
            withheld_scope: Mutex::new(None),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/api/token", post(token))
            .route("/v1/me", get(me))
            .with_state(shared.clone());
        Ok(SpotifyEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for both
    /// `https://accounts.spotify.com` and `https://api.spotify.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://accounts.spotify.com/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/authorize", self.shared.client.base)
    }

    /// Registers the app's Redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// The scope people refuse from now on (`None`: they grant all).
    pub fn set_withheld_scope(&self, scope: Option<&str>) {
        *self.shared.withheld_scope.lock().expect("lock") = scope.map(String::from);
    }

    /// The Spotify id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Spotify user `{key}`"))
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Error - Spotify</title>\n<h1>Oops! Something went wrong</h1>\n<p>{}</p>\n",
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
        client: "INVALID_CLIENT: Invalid client",
        redirect: "INVALID_CLIENT: Invalid redirect URI",
        not_a_url: "INVALID_CLIENT: Invalid redirect URI",
    };
    let back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    if get("response_type") != "code" {
        return error_page("unsupported_response_type: response_type must be code or token");
    }
    if !get("code_challenge").is_empty() && get("code_challenge_method") != "S256" {
        return error_page("invalid_request: code_challenge_method must be S256");
    }
    let pick = match consent_pick(
        &s.client,
        &q,
        (
            "/authorize",
            &ConsentText {
                lang: "en",
                title: "Spotify – Authorize",
                heading: "Agree to connect your Spotify account (emulator)",
                prompt: "Log in as:",
                cancel: "Cancel",
            },
        ),
        USERS.iter().map(|u| (u.key, u.display_name)),
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
    let code = random_token(96);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope,
            challenge: get("code_challenge").to_string(),
        },
    );
    code_redirect(back, &code, get("state"))
}

fn error(description: &str, error: &str) -> Response {
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
    if id != s.client.client_id {
        return error("Invalid client", "invalid_client");
    }
    if secret != s.client.client_secret {
        return error("Invalid client secret", "invalid_client");
    }
    if get("grant_type") != "authorization_code" {
        return error(
            "grant_type parameter is missing or invalid",
            "unsupported_grant_type",
        );
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => return error("Authorization code expired", "invalid_grant"),
        Redeemed::Unknown | Redeemed::Used => {
            return error("Invalid authorization code", "invalid_grant");
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return error("Invalid redirect URI", "invalid_grant");
    }
    if !code.challenge.is_empty() && s256(get("code_verifier")) != code.challenge {
        return error("code_verifier was incorrect", "invalid_grant");
    }
    let access = random_token(120);
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
        "scope": code.scope,
        "expires_in": 3600,
        "refresh_token": random_token(96),
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
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"status": 401, "message": "Invalid access token"}})),
        )
            .into_response();
    };
    let u = grant.user;
    let has = |scope: &str| grant.scope.split(' ').any(|x| x == scope);
    let images: Value = if u.image {
        json!([{"url": format!("https://i.scdn.co/image/ab6775700000ee85{}", u.id), "height": 300, "width": 300}])
    } else {
        json!([])
    };
    let mut me = json!({
        "id": u.id,
        "display_name": u.display_name,
        "external_urls": {"spotify": format!("https://open.spotify.com/user/{}", u.id)},
        "followers": {"href": null, "total": 3},
        "href": format!("https://api.spotify.com/v1/users/{}", u.id),
        "images": images,
        "type": "user",
        "uri": format!("spotify:user:{}", u.id),
    });
    if has("user-read-email") {
        me["email"] = u.email.into();
    }
    if has("user-read-private") {
        me["country"] = "RU".into();
        me["product"] = "premium".into();
        me["explicit_content"] = json!({"filter_enabled": false, "filter_locked": false});
    }
    Json(me).into_response()
}
