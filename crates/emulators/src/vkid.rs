//! An emulator of VK ID (`id.vk.com`), VK's OAuth 2.1 sign-in, on one loopback port.
//!
//! It follows VK ID's documented requests and answers and refuses what VK ID refuses:
//! `/authorize` without PKCE S256, with an unknown `client_id` or an unregistered
//! `redirect_uri`; at `POST /oauth2/auth` a code that is unknown, used before or expired, a
//! missing or wrong `code_verifier`, a `device_id` other than the one the callback carried, another
//! `redirect_uri` or `state`. Errors are `{error, error_description}`. The callback carries
//! `code`, `state`, `device_id`, `type` and `expires_in`. `POST /oauth2/user_info` (form
//! `client_id`, `access_token`) answers `{user: {...}}`, with `email` and `phone` only when
//! those scopes were granted.
//!
//! The people are those of the VK emulator ([`super::vk::default_users`]); `/authorize` shows a
//! consent page to pick one, or picks `&user=<key>` / [`VkIdEmulator::set_next_user`] at once.
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_testkit::emulators::vkid::VkIdEmulator;
//! let vkid = VkIdEmulator::start().await;
//! // provider: vkid, client_id: vkid.client_id(), api_base_url: vkid.base_url()
//! # }
//! ```

use crate::common::random_token;
use crate::vk::{App, FakeVkUser, consent_page, oauth_error, params, redirect};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Grant {
    user: FakeVkUser,
    redirect_uri: String,
    state: String,
    scope: String,
    challenge: String,
    device_id: String,
    issued: Instant,
}

struct Shared {
    base: String,
    app: App,
    codes: Mutex<HashMap<String, Grant>>,
    tokens: Mutex<HashMap<String, (FakeVkUser, String)>>,
    token_requests: AtomicU64,
    user_info_requests: AtomicU64,
}

/// A running VK ID emulator on 127.0.0.1. Stops when dropped.
pub struct VkIdEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl VkIdEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> VkIdEmulator {
        Self::serve(crate::free_loopback_port("VK ID").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<VkIdEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            // VK ID's codes live ten minutes (`expires_in: 600` on the callback).
            app: App::new("52345678", Duration::from_secs(600)),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
            user_info_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/oauth2/auth", post(token))
            .route("/oauth2/user_info", post(user_info))
            .with_state(shared.clone());
        Ok(VkIdEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://id.vk.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    pub fn client_id(&self) -> &str {
        &self.shared.app.client_id
    }

    crate::vk::app_accessors!();

    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    pub fn user_info_requests(&self) -> u64 {
        self.shared.user_info_requests.load(Ordering::SeqCst)
    }
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.app.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id is invalid",
        );
    }
    if !s.app.redirect_allowed(get("redirect_uri")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is not a trusted redirect URL of the application",
        );
    }
    let Ok(mut back) = url::Url::parse(get("redirect_uri")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bad redirect_uri",
        );
    };
    let mut out: Vec<(&str, String)> = vec![];
    let refuse = if get("response_type") != "code" {
        Some("response_type must be code")
    } else if get("state").is_empty() {
        Some("state is required")
    } else if get("code_challenge").is_empty() {
        Some("code_challenge is required")
    } else if !get("code_challenge_method").eq_ignore_ascii_case("s256") {
        Some("code_challenge_method must be S256")
    } else {
        None
    };
    if let Some(why) = refuse {
        out.push(("error", "invalid_request".into()));
        out.push(("error_description", why.into()));
    } else if q.contains_key("deny") {
        out.push(("error", "access_denied".into()));
        out.push(("error_description", "user denied access".into()));
    } else {
        let user = match s.app.pick(&q) {
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
            Ok(None) => return consent_page("VK ID — вход", "/authorize", &q, &s.app.users),
            Ok(Some(u)) => u,
        };
        let code = random_token(24);
        let device_id = random_token(32);
        s.codes.lock().expect("lock").insert(
            code.clone(),
            Grant {
                user,
                redirect_uri: get("redirect_uri").into(),
                state: get("state").into(),
                scope: q
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| "vkid.personal_info".into()),
                challenge: get("code_challenge").into(),
                device_id: device_id.clone(),
                issued: Instant::now(),
            },
        );
        out.push(("code", code));
        out.push(("type", "code_v2".into()));
        out.push(("expires_in", "600".into()));
        out.push(("device_id", device_id));
    }
    if !get("state").is_empty() {
        out.push(("state", get("state").into()));
    }
    back.query_pairs_mut().extend_pairs(out);
    redirect(back)
}

async fn token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let p = params(q, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let bad =
        |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    if get("grant_type") != "authorization_code" {
        return bad(
            "unsupported_grant_type",
            "grant_type must be authorization_code",
        );
    }
    if get("client_id") != s.app.client_id {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is invalid",
        );
    }
    for k in [
        "code",
        "code_verifier",
        "device_id",
        "redirect_uri",
        "state",
    ] {
        if get(k).is_empty() {
            return bad("invalid_request", &format!("{k} is missing"));
        }
    }
    // Removed on first presentation, whatever happens next: a code is single-use.
    let grant = s.codes.lock().expect("lock").remove(get("code"));
    let Some(g) = grant.filter(|g| !s.app.expired(g.issued)) else {
        return bad("invalid_grant", "code is invalid or expired");
    };
    if get("device_id") != g.device_id {
        return bad("invalid_grant", "device_id is invalid");
    }
    if get("redirect_uri") != g.redirect_uri {
        return bad("invalid_grant", "redirect_uri is invalid");
    }
    if crate::common::s256(get("code_verifier")) != g.challenge {
        return bad("invalid_grant", "code_verifier is invalid");
    }
    if get("state") != g.state {
        return bad("invalid_request", "state is invalid");
    }
    let access = random_token(48);
    s.tokens
        .lock()
        .expect("lock")
        .insert(access.clone(), (g.user.clone(), g.scope.clone()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // A JWT-shaped id_token; Tessera keeps it but reads the profile from user_info.
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let id_token = format!(
        "{}.{}.{}",
        part(json!({"alg": "RS256", "typ": "JWT"})),
        part(
            json!({"iss": "VK", "sub": g.user.id, "aud": s.app.client_id, "iat": now, "exp": now + 3600})
        ),
        random_token(64)
    );
    Json(json!({
        "refresh_token": random_token(48),
        "access_token": access,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "user_id": g.user.id,
        "state": g.state,
        "scope": g.scope,
    }))
    .into_response()
}

/// `D.M.YYYY` → `DD.MM.YYYY`, as VK ID writes birthdays.
fn birthday(bdate: &str) -> String {
    bdate
        .split('.')
        .map(|p| {
            if p.len() == 1 {
                format!("0{p}")
            } else {
                p.into()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

async fn user_info(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    s.user_info_requests.fetch_add(1, Ordering::SeqCst);
    let p = params(q, &body);
    if p.get("client_id") != Some(&s.app.client_id) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is invalid",
        );
    }
    let found = p
        .get("access_token")
        .and_then(|t| s.tokens.lock().expect("lock").get(t).cloned());
    let Some((u, scope)) = found else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "access_token is missing or invalid",
        );
    };
    let granted: Vec<&str> = scope.split_whitespace().collect();
    let mut user = json!({
        "user_id": u.id.to_string(),
        "first_name": u.first_name,
        "last_name": u.last_name,
        "avatar": format!("https://sun9-1.userapi.com/fake/{}_200.jpg", u.id),
        "sex": u.sex,
        "verified": false,
    });
    if let Some(b) = &u.bdate {
        user["birthday"] = birthday(b).into();
    }
    if granted.contains(&"email")
        && let Some(e) = &u.email
    {
        user["email"] = e.clone().into();
    }
    if granted.contains(&"phone")
        && let Some(ph) = &u.phone
    {
        user["phone"] = ph.clone().into();
    }
    Json(json!({ "user": user })).into_response()
}
