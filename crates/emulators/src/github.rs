//! A GitHub OAuth app emulator: the same paths, parameters, JSON and error shapes as
//! `github.com/login/oauth/*` and `api.github.com/user{,/emails}`, and the same refusals.
//!
//! - `GET /login/oauth/authorize` shows a consent page listing [`USERS`]; each is a link that
//!   repeats the request with `&user=<key>`. A request carrying `user=<key>` (or any request
//!   after [`GithubEmulator::set_next_user`]) picks that user at once and answers `302` to the
//!   `redirect_uri` with `code` and `state`; `user=deny` answers `error=access_denied`.
//!   An unknown `client_id` is a 404 page. A `redirect_uri` other than the registered one
//!   ([`GithubEmulator::register_redirect_uri`]) goes back to the registered one with
//!   `error=redirect_uri_mismatch`, as GitHub does.
//! - `POST /login/oauth/access_token` (form): JSON with `Accept: application/json`, otherwise
//!   `application/x-www-form-urlencoded`, as GitHub. Errors come with **HTTP 200**:
//!   `incorrect_client_credentials`, `bad_verification_code` (unknown, reused or expired code,
//!   another client's code, or a PKCE verifier that does not match the challenge), and
//!   `redirect_uri_mismatch` (not the `redirect_uri` of the authorize request).
//! - `GET /user`, `GET /user/emails`: `Authorization: Bearer|token <t>`; 401 "Bad credentials"
//!   otherwise. `/user/emails` needs the `user:email` or `user` scope (404 otherwise).
//!
//! Codes live 10 minutes and work once, as at GitHub.
//!
//! [`GithubEmulator::start_app`] is a **GitHub App** instead (Kratos's `github-app`): the same
//! paths, but scopes are ignored (an app's reach is its permissions), the token answer is a
//! user-to-server token `ghu_…` with `expires_in` 28800 and a `ghr_…` `refresh_token` (the
//! default "expire user authorization tokens" setting), `scope` is empty, and `/user/emails`
//! answers 403 "Resource not accessible by integration" unless the app has the account
//! permission "Email addresses" ([`GithubEmulator::set_email_permission`]; on by default).

use crate::common::{Client, esc, query_without_user, random_hex};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake GitHub account.
#[derive(Debug, Clone, Copy)]
pub struct GithubUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub id: u64,
    pub login: &'static str,
    pub name: &'static str,
    /// `(email, primary, verified)` rows of `/user/emails`.
    pub emails: &'static [(&'static str, bool, bool)],
    /// The public profile email `/user` shows, if any.
    pub public_email: Option<&'static str>,
    pub blog: &'static str,
}

/// Verified primary email, public, with a blog.
pub const OCTOCAT: GithubUser = GithubUser {
    key: "octocat",
    id: 583231,
    login: "octocat",
    name: "The Octocat",
    emails: &[
        ("octocat@example.com", true, true),
        ("octo-old@example.com", false, false),
    ],
    public_email: Some("octocat@example.com"),
    blog: "https://github.blog",
};
/// No email address at all.
pub const NOEMAIL: GithubUser = GithubUser {
    key: "noemail",
    id: 1001,
    login: "no-mail",
    name: "Nomail Person",
    emails: &[],
    public_email: None,
    blog: "",
};
/// A primary email GitHub has not verified.
pub const UNVERIFIED: GithubUser = GithubUser {
    key: "unverified",
    id: 1002,
    login: "unverified-user",
    name: "Una Verified",
    emails: &[("una@example.com", true, false)],
    public_email: Some("una@example.com"),
    blog: "",
};
/// A Cyrillic name and a verified, private email.
pub const IVAN: GithubUser = GithubUser {
    key: "ivan",
    id: 1003,
    login: "ivan-petrov",
    name: "Иван Петров",
    emails: &[("ivan@example.ru", true, true)],
    public_email: None,
    blog: "",
};
pub const USERS: [GithubUser; 4] = [OCTOCAT, NOEMAIL, UNVERIFIED, IVAN];

const CODE_TTL: Duration = Duration::from_secs(600);

struct Code {
    client_id: String,
    redirect_uri: Option<String>,
    challenge: Option<String>,
    user: GithubUser,
    scopes: Vec<String>,
    issued: Instant,
}

struct Shared {
    client: Client,
    /// A GitHub App rather than an OAuth app.
    app: bool,
    email_permission: std::sync::atomic::AtomicBool,
    granted_override: Mutex<Option<Vec<String>>>,
    codes: Mutex<HashMap<String, Code>>,
    tokens: Mutex<HashMap<String, (GithubUser, Vec<String>)>>,
}

/// A running emulator on 127.0.0.1. Stops when dropped.
pub struct GithubEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl GithubEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> GithubEmulator {
        Self::serve(crate::free_loopback_port("GitHub").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<GithubEmulator> {
        Self::serve_as(listener, false)
    }

    /// A GitHub App on a free loopback port; panics when none can be bound.
    pub async fn start_app() -> GithubEmulator {
        Self::serve_app(crate::free_loopback_port("GitHub App").await)
            .expect("read the emulator's local address")
    }

    /// A GitHub App on a listener the caller bound (`tessera demo`).
    pub fn serve_app(listener: tokio::net::TcpListener) -> std::io::Result<GithubEmulator> {
        Self::serve_as(listener, true)
    }

    fn serve_as(listener: tokio::net::TcpListener, app: bool) -> std::io::Result<GithubEmulator> {
        let addr = listener.local_addr()?;
        let (id, secret) = if app {
            ("Iv23liEmulatedApp0001", "emulated-github-app-secret")
        } else {
            ("Iv1.emulated0client", "emulated-github-secret")
        };
        let shared = Arc::new(Shared {
            client: Client::new(addr, id, secret),
            app,
            email_permission: std::sync::atomic::AtomicBool::new(true),
            granted_override: Mutex::new(None),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .with_state(shared.clone());
        Ok(GithubEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: both the `github.com` and the `api.github.com` origin.
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }
    pub fn auth_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.shared.client.base)
    }
    pub fn token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.shared.client.base)
    }

    /// The app's registered "Authorization callback URL". Until set, any `redirect_uri` is
    /// accepted at authorize (the token endpoint still requires the authorize one).
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// A GitHub App: whether it has the account permission "Email addresses" (read-only).
    pub fn set_email_permission(&self, granted: bool) {
        self.shared
            .email_permission
            .store(granted, std::sync::atomic::Ordering::SeqCst);
    }

    /// Grant these scopes instead of the requested ones (a user or organisation policy that
    /// narrowed the grant); `None` grants what was asked.
    pub fn set_granted_scopes(&self, scopes: Option<&[&str]>) {
        *self.shared.granted_override.lock().expect("lock") =
            scopes.map(|s| s.iter().map(|x| x.to_string()).collect());
    }
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(to) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri is not an absolute URL",
        )
            .into_response();
    };
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1><p>This is not the web page you are looking for (unknown client_id).</p>")).into_response();
    }
    let state = get("state");
    let registered = s.client.registered_redirect_uri();
    let redirect_uri = match (q.get("redirect_uri"), &registered) {
        (Some(r), Some(reg)) if r != reg => {
            return redirect(
                reg,
                &[
                    ("error", "redirect_uri_mismatch"),
                    (
                        "error_description",
                        "The redirect_uri MUST match the registered callback URL for this application.",
                    ),
                    (
                        "error_uri",
                        "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
                    ),
                    ("state", state),
                ],
            );
        }
        (Some(r), _) => r.clone(),
        (None, Some(reg)) => reg.clone(),
        (None, None) => {
            return (
                StatusCode::BAD_REQUEST,
                Html("<p>The app has no callback URL: send redirect_uri.</p>"),
            )
                .into_response();
        }
    };
    if q.contains_key("code_challenge") && get("code_challenge_method") != "S256" {
        return redirect(
            &redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "code_challenge_method must be S256"),
                ("state", state),
            ],
        );
    }
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&s, &q);
    };
    if pick == "deny" {
        return redirect(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The user has denied your application access.",
                ),
                ("state", state),
            ],
        );
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("no emulated user `{pick}`"),
        )
            .into_response();
    };
    let code = random_hex("");
    let scopes = get("scope")
        .split([' ', ','])
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    s.codes.lock().expect("lock").insert(
        code.clone(),
        Code {
            client_id: s.client.client_id.clone(),
            redirect_uri: q.get("redirect_uri").cloned(),
            challenge: q.get("code_challenge").cloned(),
            user,
            scopes,
            issued: Instant::now(),
        },
    );
    redirect(&redirect_uri, &[("code", &code), ("state", state)])
}

fn consent_page(s: &Shared, q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        let email = u
            .emails
            .iter()
            .find(|e| e.1)
            .map(|e| format!("{} ({})", e.0, if e.2 { "verified" } else { "unverified" }))
            .unwrap_or_else(|| "no email".into());
        items.push_str(&format!(
            "<li><a href=\"/login/oauth/authorize?{}&amp;user={}\">{} — @{} — {}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.name),
            esc(u.login),
            esc(&email)
        ));
    }
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Authorize application</title>\n<h1>GitHub emulator: authorize <code>{}</code></h1>\n<p>Scopes: <code>{}</code>. Sign in as:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/login/oauth/authorize?{}&amp;user=deny\">Cancel</a></p>\n",
        esc(&s.client.client_id),
        esc(q.get("scope").map(String::as_str).unwrap_or("(none)")),
        esc(&base)
    ))
    .into_response()
}

fn token_error(json_wanted: bool, error: &str, description: &str) -> Response {
    let uri = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
    token_answer(
        json_wanted,
        &[
            ("error", error),
            ("error_description", description),
            ("error_uri", uri),
        ],
    )
}

/// GitHub's token answers are HTTP 200, JSON or form-encoded after the `Accept` header.
fn token_answer(json_wanted: bool, fields: &[(&str, &str)]) -> Response {
    if json_wanted {
        let obj: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Json(Value::Object(obj)).into_response()
    } else {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        (
            [(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

async fn access_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    s.client.count_token_request();
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id || get("client_secret") != s.client.client_secret {
        return token_error(
            json_wanted,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let bad_code = || {
        token_error(
            json_wanted,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        )
    };
    // A code works once: whatever happens next, it is gone.
    let Some(code) = s.codes.lock().expect("lock").remove(get("code")) else {
        return bad_code();
    };
    if code.client_id != get("client_id") || code.issued.elapsed() > CODE_TTL {
        return bad_code();
    }
    if let Some(r) = f.get("redirect_uri")
        && code.redirect_uri.as_ref().is_some_and(|c| c != r)
    {
        return token_error(
            json_wanted,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    if let Some(challenge) = &code.challenge {
        let verifier = get("code_verifier");
        if verifier.is_empty() || &crate::common::s256(verifier) != challenge {
            return bad_code();
        }
    }
    if s.app {
        // A user-to-server token: no scopes, and it expires (8 hours; the refresh token lives
        // about 6 months).
        let token = random_hex("ghu_");
        s.tokens
            .lock()
            .expect("lock")
            .insert(token.clone(), (code.user, vec![]));
        return token_answer(
            json_wanted,
            &[
                ("access_token", &token),
                ("expires_in", "28800"),
                ("refresh_token", &random_hex("ghr_")),
                ("refresh_token_expires_in", "15811200"),
                ("token_type", "bearer"),
                ("scope", ""),
            ],
        );
    }
    let granted = s
        .granted_override
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or(code.scopes);
    let token = random_hex("gho_");
    s.tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), (code.user, granted.clone()));
    token_answer(
        json_wanted,
        &[
            ("access_token", &token),
            ("token_type", "bearer"),
            ("scope", &granted.join(",")),
        ],
    )
}

fn bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
    )
        .into_response()
}

fn authed(s: &Shared, headers: &HeaderMap) -> Option<(GithubUser, Vec<String>)> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("token "))?;
    s.tokens.lock().expect("lock").get(t).cloned()
}

async fn user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some((u, _)) = authed(&s, &headers) else {
        return bad_credentials();
    };
    Json(json!({
        "login": u.login,
        "id": u.id,
        "node_id": format!("MDQ6VXNlcj{}", u.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "html_url": format!("https://github.com/{}", u.login),
        "type": "User",
        "site_admin": false,
        "name": u.name,
        "company": null,
        "blog": u.blog,
        "location": null,
        "email": u.public_email,
        "bio": null,
        "public_repos": 8,
        "followers": 0,
        "following": 0,
        "created_at": "2011-01-25T18:44:36Z",
    }))
    .into_response()
}

async fn emails(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some((u, scopes)) = authed(&s, &headers) else {
        return bad_credentials();
    };
    if s.app && !s.email_permission.load(std::sync::atomic::Ordering::SeqCst) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user", "status": "403"})),
        )
            .into_response();
    }
    if !s.app && !scopes.iter().any(|x| x == "user" || x == "user:email") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user", "status": "404"})),
        )
            .into_response();
    }
    let rows: Vec<Value> = u
        .emails
        .iter()
        .map(|(email, primary, verified)| {
            json!({
                "email": email,
                "primary": primary,
                "verified": verified,
                "visibility": if *primary && u.public_email == Some(email) { json!("public") } else { json!(null) },
            })
        })
        .collect();
    Json(Value::Array(rows)).into_response()
}
