//! A Facebook Login emulator: the login dialog (www.facebook.com/dialog/oauth), the token
//! (graph.facebook.com/oauth/access_token) and Graph's `/me`, unversioned and under a version
//! prefix (`/v19.0/…`), on one loopback port that stands for both origins.
//!
//! - `GET /dialog/oauth`: `client_id` (the App ID: "Invalid App ID" page otherwise),
//!   `redirect_uri` (one of the Valid OAuth Redirect URIs: "URL Blocked" page otherwise),
//!   `state`, `response_type=code`, `scope` (comma- or space-separated permissions), optional
//!   PKCE (`code_challenge_method=S256`). `user=deny` returns Facebook's
//!   `error=access_denied&error_code=200&error_description=Permissions error&error_reason=user_denied`.
//! - `GET` or `POST /oauth/access_token` (query or form): `client_id`, `client_secret`,
//!   `redirect_uri`, `code` (and `code_verifier` after a challenge). Errors are Graph's, HTTP
//!   400 `{"error": {"message", "type": "OAuthException", "code", "error_subcode",
//!   "fbtrace_id"}}`: "Error validating application. Invalid application ID." (101), "Error
//!   validating client secret." (1), "Invalid verification code format." (100), "This
//!   authorization code has been used." (100/36009), "This authorization code has expired."
//!   (100/36007; codes live ten minutes), the redirect_uri mismatch (100/36008). Success:
//!   `access_token`, `token_type: bearer`, `expires_in` (no refresh token).
//! - `GET /me?fields=…&appsecret_proof=…`, the token as Bearer or `access_token`: the asked
//!   fields the person's permissions allow (`email` only with the `email` permission and an
//!   address on file). The app has "Require App Secret" on: without `appsecret_proof`, or with
//!   one that is not the HMAC-SHA256 of the token under the secret **of the app the token was
//!   issued to**, Graph answers 400 `GraphMethodException` (100). A bad token is 400
//!   `OAuthException` (190).
//!
//! [`FacebookEmulator::set_tokens_for_other_app`] makes the token endpoint hand out tokens of
//! another app (what a token obtained elsewhere and replayed looks like), which only that
//! app's secret can prove.

use crate::common::{
    Client, ConsentText, Grants, Redeemed, consent_page, esc, hmac_sha256, query_and_form,
    random_token, redirect, s256,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A fake Facebook account.
#[derive(Debug, Clone, Copy)]
pub struct FacebookUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The app-scoped user id.
    pub id: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// "" for an account without an address (signed up with a phone number).
    pub email: &'static str,
    /// Has a photo (else Facebook's silhouette).
    pub photo: bool,
}

/// Иван Петров (an address, a photo) and Мария Смирнова (signed up with her phone: no address,
/// the silhouette).
pub const USERS: [FacebookUser; 2] = [
    FacebookUser {
        key: "ivan",
        id: "10229876543210987",
        first_name: "Иван",
        last_name: "Петров",
        email: "ivan.petrov@example.ru",
        photo: true,
    },
    FacebookUser {
        key: "maria",
        id: "10221234567890123",
        first_name: "Мария",
        last_name: "Смирнова",
        email: "",
        photo: false,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);
/// The secret of the other app whose tokens [`FacebookEmulator::set_tokens_for_other_app`]
/// hands out.
const OTHER_APP_SECRET: &str = "0ther-app-secret-3c9d1f7e2a";

#[derive(Clone)]
struct Code {
    user: FacebookUser,
    redirect_uri: String,
    scope: Vec<String>,
    challenge: String,
}

#[derive(Clone)]
struct Grant {
    user: FacebookUser,
    scope: Vec<String>,
    /// The secret of the app the token was issued to: what `appsecret_proof` must be keyed with.
    app_secret: &'static str,
}

struct Shared {
    client: Client,
    other_app: AtomicBool,
    grants: Grants<Code, Grant>,
}

/// A running Facebook emulator on 127.0.0.1. Stops when dropped.
pub struct FacebookEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

const APP_SECRET: &str = "8d3f0c2b9a7e6d5c4b3a29180f7e6d5c";

impl FacebookEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> FacebookEmulator {
        Self::serve(crate::free_loopback_port("Facebook").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<FacebookEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(addr, "1234567890123456", APP_SECRET),
            other_app: AtomicBool::new(false),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/dialog/oauth", get(dialog))
            .route("/{version}/dialog/oauth", get(versioned_dialog))
            .route("/oauth/access_token", get(token).post(token))
            .route(
                "/{version}/oauth/access_token",
                get(versioned_token).post(versioned_token),
            )
            .route("/me", get(me))
            .route("/{version}/me", get(versioned_me))
            .with_state(shared.clone());
        Ok(FacebookEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for
    /// `https://graph.facebook.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://www.facebook.com/dialog/oauth`.
    pub fn auth_url(&self) -> String {
        format!("{}/dialog/oauth", self.shared.client.base)
    }

    /// Registers the app's Valid OAuth Redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// From now on the token endpoint hands out tokens issued to another app (`true`), as a
    /// token obtained elsewhere and replayed would be.
    pub fn set_tokens_for_other_app(&self, on: bool) {
        self.shared.other_app.store(on, Ordering::SeqCst);
    }

    /// The app-scoped id of the fake user `key`.
    pub fn id_of(&self, key: &str) -> &'static str {
        USERS
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Facebook user `{key}`"))
    }
}

/// `appsecret_proof` as Graph computes it: hex HMAC-SHA256 of the token under the app secret.
fn proof(secret: &str, token: &str) -> String {
    hmac_sha256(secret.as_bytes(), token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn error_page(title: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Error | Facebook</title>\n<h1>{}</h1>\n<p>{}</p>\n",
            esc(title),
            esc(message)
        )),
    )
        .into_response()
}

/// Graph's error answer (HTTP 400).
fn graph_error(kind: &str, code: u32, subcode: Option<u32>, message: &str) -> Response {
    let mut e =
        json!({"message": message, "type": kind, "code": code, "fbtrace_id": random_token(8)});
    if let Some(s) = subcode {
        e["error_subcode"] = s.into();
    }
    (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response()
}

async fn versioned_dialog(
    state: State<Arc<Shared>>,
    Path(_version): Path<String>,
    q: Query<HashMap<String, String>>,
) -> Response {
    dialog(state, q).await
}

async fn dialog(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page(
            "Invalid App ID",
            "The provided app ID does not look like a valid app ID.",
        );
    }
    let redirect_uri = get("redirect_uri");
    let blocked = || {
        error_page(
            "URL Blocked",
            "This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app domains as Valid OAuth Redirect URIs.",
        )
    };
    if s.client
        .registered_redirect_uri()
        .is_some_and(|r| r != redirect_uri)
    {
        return blocked();
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return blocked();
    };
    if !get("code_challenge").is_empty() && get("code_challenge_method") != "S256" {
        return error_page("Error", "Invalid code_challenge_method.");
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/dialog/oauth",
            &q,
            &ConsentText {
                lang: "en",
                title: "Log in with Facebook",
                heading: "Continue with Facebook (emulator)",
                prompt: "Continue as:",
                cancel: "Cancel",
            },
            USERS.iter().map(|u| (u.key, u.first_name)),
        );
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_code", "200")
            .append_pair("error_description", "Permissions error")
            .append_pair("error_reason", "user_denied")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page("Error", &format!("no emulated user `{pick}`"));
    };
    let code = format!("AQ{}", random_token(96));
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope")
                .split([',', ' '])
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect(),
            challenge: get("code_challenge").to_string(),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

async fn versioned_token(
    state: State<Arc<Shared>>,
    Path(_version): Path<String>,
    q: Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    token(state, q, body).await
}

async fn token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    s.client.count_token_request();
    let form = query_and_form(q, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    const OAUTH: &str = "OAuthException";
    if get("client_id") != s.client.client_id {
        return graph_error(
            OAUTH,
            101,
            None,
            "Error validating application. Invalid application ID.",
        );
    }
    if get("client_secret") != s.client.client_secret {
        return graph_error(OAUTH, 1, None, "Error validating client secret.");
    }
    let code = match s.grants.redeem(get("code")) {
        Redeemed::Fresh(c) => c,
        Redeemed::Used => {
            return graph_error(
                OAUTH,
                100,
                Some(36009),
                "This authorization code has been used.",
            );
        }
        Redeemed::Expired(_) => {
            return graph_error(
                OAUTH,
                100,
                Some(36007),
                "This authorization code has expired.",
            );
        }
        Redeemed::Unknown => {
            return graph_error(OAUTH, 100, None, "Invalid verification code format.");
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return graph_error(
            OAUTH,
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    if !code.challenge.is_empty() && s256(get("code_verifier")) != code.challenge {
        return graph_error(OAUTH, 100, None, "Invalid code verifier.");
    }
    let access = format!("EAA{}", random_token(120));
    let app_secret = if s.other_app.load(Ordering::SeqCst) {
        OTHER_APP_SECRET
    } else {
        APP_SECRET
    };
    s.grants.issue_token(
        &access,
        Grant {
            user: code.user,
            scope: code.scope,
            app_secret,
        },
    );
    Json(json!({"access_token": access, "token_type": "bearer", "expires_in": 5_183_944}))
        .into_response()
}

async fn versioned_me(
    state: State<Arc<Shared>>,
    Path(_version): Path<String>,
    headers: HeaderMap,
    q: Query<HashMap<String, String>>,
) -> Response {
    me(state, headers, q).await
}

async fn me(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bearer = crate::common::bearer(&headers);
    let token = if bearer.is_empty() {
        q.get("access_token")
            .map(String::as_str)
            .unwrap_or_default()
    } else {
        bearer
    };
    let Some(grant) = s.grants.token_user(token) else {
        return graph_error(
            "OAuthException",
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        );
    };
    match q.get("appsecret_proof") {
        None => {
            return graph_error(
                "GraphMethodException",
                100,
                None,
                "API calls from the server require an appsecret_proof argument",
            );
        }
        Some(p) if *p != proof(grant.app_secret, token) => {
            return graph_error(
                "GraphMethodException",
                100,
                None,
                "Invalid appsecret_proof provided in the API argument",
            );
        }
        Some(_) => {}
    }
    let u = grant.user;
    let mut all = Map::new();
    all.insert("id".into(), u.id.into());
    all.insert(
        "name".into(),
        format!("{} {}", u.first_name, u.last_name).into(),
    );
    all.insert("first_name".into(), u.first_name.into());
    all.insert("last_name".into(), u.last_name.into());
    if !u.email.is_empty() && grant.scope.iter().any(|p| p == "email") {
        all.insert("email".into(), u.email.into());
    }
    let picture = if u.photo {
        json!({"data": {"height": 50, "is_silhouette": false, "url": format!("https://platform-lookaside.fbsbx.com/platform/profilepic/?asid={}", u.id), "width": 50}})
    } else {
        json!({"data": {"height": 50, "is_silhouette": true, "url": "https://scontent.xx.fbcdn.net/silhouette.jpg", "width": 50}})
    };
    all.insert("picture".into(), picture);
    // Only the fields asked for (just `id` and `name` when none are).
    let fields = q.get("fields").map(String::as_str).unwrap_or("id,name");
    let out: Map<String, Value> = fields
        .split(',')
        .filter_map(|f| all.get_key_value(f.trim()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Json(Value::Object(out)).into_response()
}
