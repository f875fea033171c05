//! An emulator of VK's legacy OAuth (`oauth.vk.com`) and of the one API method sign-in uses
//! (`api.vk.com/method/users.get`), on one loopback port.
//!
//! It follows VK's documented requests, answers and quirks, and refuses what VK refuses:
//! an unknown `client_id`, an unregistered `redirect_uri` at `/authorize`; a wrong client
//! secret, a code that is unknown, used before, expired or presented with another
//! `redirect_uri` at `/access_token` (`{error, error_description}` with HTTP 401/400). The email
//! arrives **in the token answer**, and only with the `email` scope. `users.get` needs `v` and a
//! valid `access_token`, returns only the fields asked for, and reports errors as
//! `{"error": {"error_code", "error_msg", "request_params"}}` with **HTTP 200**
//! ([`VkEmulator::fail_users_get`] forces one).
//!
//! `/authorize` shows a consent page listing the fake users (with and without email) for a
//! person to pick one. Tests pick without a page: `&user=<key>` on the authorize URL, or
//! [`VkEmulator::set_next_user`]; `&deny=1` declines as a user pressing "Cancel" would.
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_testkit::emulators::vk::VkEmulator;
//! let vk = VkEmulator::start().await;
//! // provider: vk, client_id: vk.client_id(), client_secret: vk.client_secret(),
//! // auth_url: vk.auth_url(), token_url: vk.token_url(), api_base_url: vk.base_url()
//! vk.set_next_user("maria"); // the one without an email
//! # }
//! ```

use crate::common::{esc, random_token};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake VK account. VK ID's emulator signs in the same people.
#[derive(Debug, Clone)]
pub struct FakeVkUser {
    /// What tests pass as `&user=<key>` or to `set_next_user`.
    pub key: String,
    /// The VK user id (VK ID's `user_id` is the same number).
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    /// `None`: the account has no confirmed email, so VK never sends one.
    pub email: Option<String>,
    /// 1 female, 2 male, 0 not given.
    pub sex: u8,
    /// `D.M.YYYY`, or `D.M` when the user hides the year.
    pub bdate: Option<String>,
    pub screen_name: String,
    /// Digits without `+`, as VK ID sends it.
    pub phone: Option<String>,
}

/// Иван Петров (with email), Мария Смирнова (no email), John Smith (with email).
pub fn default_users() -> Vec<FakeVkUser> {
    let u = |key: &str,
             id,
             first: &str,
             last: &str,
             email: Option<&str>,
             sex,
             bdate: Option<&str>,
             screen: &str,
             phone: Option<&str>| FakeVkUser {
        key: key.into(),
        id,
        first_name: first.into(),
        last_name: last.into(),
        email: email.map(Into::into),
        sex,
        bdate: bdate.map(Into::into),
        screen_name: screen.into(),
        phone: phone.map(Into::into),
    };
    vec![
        u(
            "ivan",
            100001,
            "Иван",
            "Петров",
            Some("ivan.petrov@example.ru"),
            2,
            Some("12.4.1990"),
            "ivan_petrov",
            Some("79990000001"),
        ),
        u(
            "maria",
            100002,
            "Мария",
            "Смирнова",
            None,
            1,
            Some("3.9"),
            "id100002",
            Some("79990000002"),
        ),
        u(
            "john",
            100003,
            "John",
            "Smith",
            Some("john.smith@example.com"),
            2,
            None,
            "jsmith",
            None,
        ),
    ]
}

/// The consent page: one link per user (the same authorize request plus `user=<key>`) and a
/// cancel link (`deny=1`).
pub(crate) fn consent_page(
    title: &str,
    path: &str,
    q: &HashMap<String, String>,
    users: &[FakeVkUser],
) -> Response {
    let link = |extra: (&str, &str)| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        let mut keys: Vec<_> = q
            .iter()
            .filter(|(k, _)| *k != "user" && *k != "deny")
            .collect();
        keys.sort();
        for (k, v) in keys {
            ser.append_pair(k, v);
        }
        ser.append_pair(extra.0, extra.1);
        format!("{path}?{}", ser.finish())
    };
    let mut items = String::new();
    for u in users {
        let email = u.email.as_deref().unwrap_or("без email");
        items.push_str(&format!(
            "<li><a href=\"{}\">{} {}</a> <small>id{} · {}</small></li>\n",
            esc(&link(("user", &u.key))),
            esc(&u.first_name),
            esc(&u.last_name),
            u.id,
            esc(email)
        ));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body><h1>{t}</h1>\n<p>Приложение запрашивает доступ к вашему аккаунту. Выберите пользователя:</p>\n<ul>\n{items}</ul>\n<p><a href=\"{}\">Отмена</a></p>\n</body></html>\n",
        esc(&link(("deny", "1"))),
        t = esc(title),
    ))
    .into_response()
}

/// GET query and POST form body together: VK accepts parameters in either.
pub(crate) fn params(q: HashMap<String, String>, body: &str) -> HashMap<String, String> {
    let mut all = q;
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        all.insert(k.into_owned(), v.into_owned());
    }
    all
}

/// An OAuth error answer, `{error, error_description}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub(crate) fn redirect(to: url::Url) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

/// The accessors VK's and VK ID's emulators share over their `shared.app` ([`App`]).
macro_rules! app_accessors {
    () => {
        /// The fake people who can sign in.
        pub fn users(&self) -> &[FakeVkUser] {
            &self.shared.app.users
        }

        /// The next `/authorize` without `user=` signs this user in without showing the page.
        pub fn set_next_user(&self, key: &str) {
            *self.shared.app.next_user.lock().expect("lock") = Some(key.into());
        }

        /// Registers a redirect URI in the app's settings; once one is registered,
        /// `/authorize` refuses every other.
        pub fn register_redirect_uri(&self, uri: &str) {
            self.shared
                .app
                .redirect_uris
                .lock()
                .expect("lock")
                .push(uri.into());
        }

        /// How long codes issued from now on stay valid (VK: one hour; VK ID: ten minutes).
        pub fn set_code_ttl(&self, ttl: Duration) {
            *self.shared.app.code_ttl.lock().expect("lock") = ttl;
        }
    };
}
pub(crate) use app_accessors;

/// Registered redirect URIs (none registered: any absolute URL is accepted, as for a fresh
/// test app) and the code lifetime; shared by both emulators.
pub(crate) struct App {
    pub client_id: String,
    pub redirect_uris: Mutex<Vec<String>>,
    pub code_ttl: Mutex<Duration>,
    pub next_user: Mutex<Option<String>>,
    pub users: Vec<FakeVkUser>,
}

impl App {
    pub fn new(client_id: &str, code_ttl: Duration) -> App {
        App {
            client_id: client_id.into(),
            redirect_uris: Mutex::new(vec![]),
            code_ttl: Mutex::new(code_ttl),
            next_user: Mutex::new(None),
            users: default_users(),
        }
    }

    pub fn redirect_allowed(&self, uri: &str) -> bool {
        let reg = self.redirect_uris.lock().expect("lock");
        url::Url::parse(uri).is_ok() && (reg.is_empty() || reg.iter().any(|r| r == uri))
    }

    /// The user this authorize request picked: `user=<key>`, else the scripted next user.
    /// `Ok(None)` means "show the consent page".
    pub fn pick(&self, q: &HashMap<String, String>) -> Result<Option<FakeVkUser>, String> {
        let key = match q.get("user") {
            Some(k) => Some(k.clone()),
            None => self.next_user.lock().expect("lock").take(),
        };
        match key {
            None => Ok(None),
            Some(k) => self
                .users
                .iter()
                .find(|u| u.key == k)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("no fake user `{k}`")),
        }
    }

    pub fn expired(&self, issued: Instant) -> bool {
        issued.elapsed() >= *self.code_ttl.lock().expect("lock")
    }
}

struct Grant {
    user: FakeVkUser,
    redirect_uri: String,
    scope: String,
    issued: Instant,
}

struct Shared {
    base: String,
    client_secret: String,
    app: App,
    codes: Mutex<HashMap<String, Grant>>,
    tokens: Mutex<HashMap<String, FakeVkUser>>,
    fail_users_get: AtomicBool,
    token_requests: AtomicU64,
    users_get_requests: AtomicU64,
}

/// A running VK emulator on 127.0.0.1. Stops when dropped.
pub struct VkEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl VkEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> VkEmulator {
        Self::serve(crate::free_loopback_port("VK").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<VkEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            client_secret: "vk-protected-key-0123456789".into(),
            // VK's codes live one hour.
            app: App::new("51234567", Duration::from_secs(3600)),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            fail_users_get: AtomicBool::new(false),
            token_requests: AtomicU64::new(0),
            users_get_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/access_token", get(access_token).post(access_token))
            .route("/method/users.get", get(users_get).post(users_get))
            .with_state(shared.clone());
        Ok(VkEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://api.vk.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    /// Stands for `https://oauth.vk.com/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/authorize", self.shared.base)
    }

    /// Stands for `https://oauth.vk.com/access_token`.
    pub fn token_url(&self) -> String {
        format!("{}/access_token", self.shared.base)
    }

    /// The app id (VK's client ids are numbers).
    pub fn client_id(&self) -> &str {
        &self.shared.app.client_id
    }

    /// The app's protected key.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    app_accessors!();

    pub fn user(&self, key: &str) -> &FakeVkUser {
        self.users()
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake VK user `{key}`"))
    }

    /// While on, `users.get` answers HTTP 200 with error 5 "User authorization failed".
    pub fn fail_users_get(&self, on: bool) {
        self.shared.fail_users_get.store(on, Ordering::SeqCst);
    }

    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    pub fn users_get_requests(&self) -> u64 {
        self.shared.users_get_requests.load(Ordering::SeqCst)
    }
}

fn scopes(s: &str) -> Vec<&str> {
    s.split([',', ' ', '+']).filter(|x| !x.is_empty()).collect()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id") != Some(&s.app.client_id) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id is incorrect",
        );
    }
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !s.app.redirect_allowed(&redirect_uri) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is incorrect, check application domain in the settings page",
        );
    }
    let Ok(mut back) = url::Url::parse(&redirect_uri) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bad redirect_uri",
        );
    };
    let mut out: Vec<(&str, String)> = vec![];
    if q.get("response_type").map(String::as_str) != Some("code") {
        out.push(("error", "unsupported_response_type".into()));
        out.push(("error_description", "response_type must be code".into()));
    } else if q.contains_key("deny") {
        out.push(("error", "access_denied".into()));
        out.push(("error_reason", "user_denied".into()));
        out.push(("error_description", "User denied your request".into()));
    } else {
        let user = match s.app.pick(&q) {
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
            Ok(None) => return consent_page("ВКонтакте — вход", "/authorize", &q, &s.app.users),
            Ok(Some(u)) => u,
        };
        let code = random_token(12);
        s.codes.lock().expect("lock").insert(
            code.clone(),
            Grant {
                user,
                redirect_uri: redirect_uri.clone(),
                scope: q.get("scope").cloned().unwrap_or_default(),
                issued: Instant::now(),
            },
        );
        out.push(("code", code));
    }
    if let Some(state) = q.get("state") {
        out.push(("state", state.clone()));
    }
    back.query_pairs_mut().extend_pairs(out);
    redirect(back)
}

async fn access_token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let p = params(q, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.app.client_id {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is incorrect",
        );
    }
    if get("client_secret") != s.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_secret is incorrect",
        );
    }
    if get("code").is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is undefined",
        );
    }
    // Removed on first presentation, whatever happens next: a code is single-use.
    let grant = s.codes.lock().expect("lock").remove(get("code"));
    let Some(grant) = grant.filter(|g| !s.app.expired(g.issued)) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Code is invalid or expired.",
        );
    };
    if get("redirect_uri") != grant.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri is incorrect, check application domain in the settings page",
        );
    }
    let token = random_token(48);
    s.tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), grant.user.clone());
    let mut answer = json!({
        "access_token": token,
        "expires_in": 86400,
        "user_id": grant.user.id,
    });
    if scopes(&grant.scope).contains(&"email")
        && let Some(email) = &grant.user.email
    {
        answer["email"] = email.clone().into();
    }
    Json(answer).into_response()
}

/// VK API errors: HTTP 200, `{"error": {...}}`, with the request's parameters (minus the token)
/// echoed back.
fn api_error(code: u32, msg: &str, p: &HashMap<String, String>) -> Response {
    let mut echoed = vec![json!({"key": "method", "value": "users.get"})];
    for (k, v) in p {
        if k != "access_token" {
            echoed.push(json!({"key": k, "value": v}));
        }
    }
    Json(json!({"error": {"error_code": code, "error_msg": msg, "request_params": echoed}}))
        .into_response()
}

async fn users_get(
    State(s): State<Arc<Shared>>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    s.users_get_requests.fetch_add(1, Ordering::SeqCst);
    let p = if method == Method::POST {
        params(q, &body)
    } else {
        q
    };
    if !p.contains_key("v") {
        return api_error(
            8,
            "Invalid request: method is unavailable without access token or v (version) is required",
            &p,
        );
    }
    let Some(token) = p.get("access_token") else {
        return api_error(5, "User authorization failed: no access_token passed.", &p);
    };
    let user = s.tokens.lock().expect("lock").get(token).cloned();
    let Some(u) = user else {
        return api_error(
            5,
            "User authorization failed: invalid access_token (4).",
            &p,
        );
    };
    if s.fail_users_get.load(Ordering::SeqCst) {
        return api_error(5, "User authorization failed: invalid session.", &p);
    }
    let fields = p.get("fields").cloned().unwrap_or_default();
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    let mut o = json!({
        "id": u.id,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "can_access_closed": true,
        "is_closed": false,
    });
    let mut add = |k: &str, v: Value| {
        if wanted.contains(&k) {
            o[k] = v;
        }
    };
    add(
        "photo_200",
        format!("https://sun9-1.userapi.com/fake/{}_200.jpg", u.id).into(),
    );
    add("sex", u.sex.into());
    if let Some(b) = &u.bdate {
        add("bdate", b.clone().into());
    }
    add("screen_name", u.screen_name.clone().into());
    Json(json!({ "response": [o] })).into_response()
}
