//! A Google (Sign in with Google, OpenID Connect) emulator on one loopback port. The base URL
//! stands for the issuer `https://accounts.google.com`; Google's other hosts
//! (`oauth2.googleapis.com`, `www.googleapis.com`, `openidconnect.googleapis.com`) are paths
//! here, and the discovery document points at them as Google's points at its hosts.
//!
//! - `GET /.well-known/openid-configuration`: Google's discovery document (RS256 only,
//!   `client_secret_post` and `client_secret_basic`, PKCE `plain` and `S256`).
//! - `GET /oauth2/v3/certs`: the JWKS (one RSA key, `kid`, `alg: RS256`, `use: sig`).
//! - `GET /o/oauth2/v2/auth`: `client_id`, `redirect_uri`, `response_type=code`, `scope`,
//!   `state`, `nonce`, `code_challenge[_method]`, `access_type`, `hd`, `prompt`. An unknown
//!   client is Google's "Error 401: invalid_client" page, an unregistered `redirect_uri` its
//!   "Error 400: redirect_uri_mismatch" page, a scope without `openid`/`email`/`profile` "Error
//!   400: invalid_scope". The account chooser lists only accounts of the `hd` domain when one is
//!   asked for, but `user=<key>` picks anyone (as a person editing the URL can: `hd` is a hint);
//!   `user=deny` returns `error=access_denied`. Codes look like Google's (`4/0A…`, with a `/`).
//! - `POST /token` (stands for `https://oauth2.googleapis.com/token`), form: client by
//!   `client_secret_post` or `client_secret_basic`. HTTP 401 `invalid_client` "Unauthorized"
//!   (unknown client or wrong secret), 400 `invalid_grant` "Bad Request" (unknown, reused or
//!   expired code — codes live ten minutes — or another client's), 400 `redirect_uri_mismatch`,
//!   400 `invalid_grant` "Invalid code verifier." / "Missing code verifier.", 400
//!   `unsupported_grant_type`. Success: `access_token` (`ya29.…`), `expires_in`, `scope` (Google's
//!   long scope URLs), `token_type`, `id_token`, and `refresh_token` only with
//!   `access_type=offline`.
//! - `GET /v1/userinfo` (stands for `https://openidconnect.googleapis.com/v1/userinfo`), Bearer:
//!   the same claims as the id_token, or 401 `invalid_request` "Invalid Credentials".
//! - id_tokens: RS256 with the JWKS key; `iss`, `azp`, `aud`, `sub` (21 digits), `email`,
//!   `email_verified` (a boolean), `hd` for Workspace accounts, `at_hash`, `nonce`, names,
//!   `picture`, `iat`, `exp` (one hour). Google writes `iss` with or without `https://`;
//!   [`GoogleEmulator::set_issuer_spelling`] chooses.

use crate::common::{
    Client, Grants, bearer, client_credentials, esc, oauth_error, query_without_user, random_token,
    redirect, rsa_signing_key, s256, sign_rs256, token_form, unix_now,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake Google account.
#[derive(Debug, Clone, Copy)]
pub struct GoogleUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// Google's `sub`: 21 digits.
    pub sub: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    pub email_verified: bool,
    /// The Google Workspace domain (`hd`); `None` for a personal account.
    pub hd: Option<&'static str>,
}

/// Иван Петров (personal, verified gmail), Мария Смирнова (an unverified address), Anna Berg
/// (Workspace `example.com`) and Bob Stone (Workspace `other.example`).
pub const USERS: [GoogleUser; 4] = [
    GoogleUser {
        key: "ivan",
        sub: "108431945226714036012",
        given_name: "Иван",
        family_name: "Петров",
        email: "ivan.petrov@gmail.com",
        email_verified: true,
        hd: None,
    },
    GoogleUser {
        key: "maria",
        sub: "117209384851230977245",
        given_name: "Мария",
        family_name: "Смирнова",
        email: "maria.smirnova@example.ru",
        email_verified: false,
        hd: None,
    },
    GoogleUser {
        key: "anna",
        sub: "102938475610293847561",
        given_name: "Anna",
        family_name: "Berg",
        email: "anna@example.com",
        email_verified: true,
        hd: Some("example.com"),
    },
    GoogleUser {
        key: "bob",
        sub: "110022003300440055006",
        given_name: "Bob",
        family_name: "Stone",
        email: "bob@other.example",
        email_verified: true,
        hd: Some("other.example"),
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

/// How the emulator writes `iss` in its id_tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerSpelling {
    /// The discovery document's issuer (`https://accounts.google.com`).
    Full,
    /// Without the scheme (`accounts.google.com`), as Google also writes it.
    Bare,
    /// Anything else: what an attacker's token would say.
    Other(String),
}

#[derive(Clone)]
struct Code {
    user: GoogleUser,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<(String, String)>,
    offline: bool,
}

struct Shared {
    client: Client,
    grants: Grants<Code, GoogleUser>,
    issuer_spelling: Mutex<IssuerSpelling>,
}

/// A running Google emulator on 127.0.0.1. Stops when dropped.
pub struct GoogleEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl GoogleEmulator {
    /// An OAuth client on a free loopback port; panics when none can be bound, which only tests
    /// want.
    pub async fn start() -> GoogleEmulator {
        Self::serve(crate::free_loopback_port("Google").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<GoogleEmulator> {
        let addr = listener.local_addr()?;
        // The signing key is made now, not at the first token request, whose caller would
        // otherwise wait for it (seconds in a debug build, past a 10 s upstream limit on a
        // busy machine).
        rsa_signing_key();
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "318224559123-k2v0q8mfd1s7h3c5r9tj4nb6pe0ul2ai.apps.googleusercontent.com",
                "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",
            ),
            grants: Grants::new(CODE_TTL),
            issuer_spelling: Mutex::new(IssuerSpelling::Full),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth2/v3/certs", get(certs))
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/v1/userinfo", get(userinfo))
            .with_state(shared.clone());
        Ok(GoogleEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();

    /// `http://127.0.0.1:<port>`: the `issuer_url` (it stands for `https://accounts.google.com`).
    pub fn issuer(&self) -> &str {
        &self.shared.client.base
    }

    /// Registers the OAuth client's one authorized redirect URI. Until one is registered, any is
    /// accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// How id_tokens issued from now on write `iss`.
    pub fn set_issuer_spelling(&self, spelling: IssuerSpelling) {
        *self.shared.issuer_spelling.lock().expect("lock") = spelling;
    }

    /// The `sub` of the fake user `key`.
    pub fn sub_of(&self, key: &str) -> &'static str {
        user(key).sub
    }
}

fn user(key: &str) -> &'static GoogleUser {
    USERS
        .iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("no fake Google user `{key}`"))
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let b = &s.client.base;
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/o/oauth2/v2/auth"),
        "device_authorization_endpoint": format!("{b}/device/code"),
        "token_endpoint": format!("{b}/token"),
        "userinfo_endpoint": format!("{b}/v1/userinfo"),
        "revocation_endpoint": format!("{b}/revoke"),
        "jwks_uri": format!("{b}/oauth2/v3/certs"),
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    }))
}

async fn certs() -> Json<Value> {
    Json(json!({"keys": [rsa_signing_key().1]}))
}

/// Google's error page for a request it will not even show a chooser for.
fn error_page(status: StatusCode, code: &str, what: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Error {}: {code}</title>\n<h1>Access blocked: This app’s request is invalid</h1>\n<p>{}</p>\n<p>Error {}: {code}</p>\n",
            status.as_u16(),
            esc(what),
            status.as_u16()
        )),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return error_page(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    let redirect_uri = get("redirect_uri");
    if let Some(registered) = s.client.registered_redirect_uri()
        && registered != redirect_uri
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            &format!(
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri={redirect_uri}"
            ),
        );
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid parameter value for redirect_uri: Missing scheme",
        );
    };
    if get("response_type") != "code" {
        return error_page(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "Some requested scopes or response types were invalid.",
        );
    }
    let scopes: Vec<&str> = get("scope").split(' ').filter(|s| !s.is_empty()).collect();
    if scopes.is_empty()
        || scopes
            .iter()
            .any(|s| !matches!(*s, "openid" | "email" | "profile"))
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Some requested scopes were invalid.",
        );
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        ("", _) => None,
        (c, m @ ("S256" | "plain")) => Some((c.to_string(), m.to_string())),
        (c, "") => Some((c.to_string(), "plain".to_string())),
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid code_challenge_method.",
            );
        }
    };
    let Some(pick) = s.client.pick(&q) else {
        return chooser(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("no emulated user `{pick}`"),
        );
    };
    let code = format!("4/0A{}", random_token(48));
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            nonce: q.get("nonce").cloned(),
            challenge,
            offline: get("access_type") == "offline",
        },
    );
    back.query_pairs_mut()
        .append_pair("state", get("state"))
        .append_pair("code", &code)
        .append_pair("scope", &long_scopes(&scopes))
        .append_pair("authuser", "0")
        .append_pair("prompt", "consent");
    if let Some(hd) = user.hd {
        back.query_pairs_mut().append_pair("hd", hd);
    }
    redirect(&back)
}

/// Google reports `email` and `profile` as their long scope URLs.
fn long_scopes(scopes: &[&str]) -> String {
    scopes
        .iter()
        .map(|s| match *s {
            "email" => "https://www.googleapis.com/auth/userinfo.email",
            "profile" => "https://www.googleapis.com/auth/userinfo.profile",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The account chooser: with `hd`, only that domain's accounts.
fn chooser(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let hd = q.get("hd").map(String::as_str).unwrap_or_default();
    let mut items = String::new();
    for u in USERS.iter().filter(|u| hd.is_empty() || u.hd == Some(hd)) {
        items.push_str(&format!(
            "<li><a href=\"/o/oauth2/v2/auth?{}&amp;user={}\">{} {} — {}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.given_name),
            esc(u.family_name),
            esc(u.email)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Sign in – Google Accounts</title>\n<h1>Choose an account (emulator)</h1>\n<ul>\n{items}</ul>\n<p><a href=\"/o/oauth2/v2/auth?{}&amp;user=deny\">Cancel</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

fn claims_of(user: &GoogleUser) -> serde_json::Map<String, Value> {
    let mut c = serde_json::Map::new();
    c.insert("sub".into(), user.sub.into());
    if let Some(hd) = user.hd {
        c.insert("hd".into(), hd.into());
    }
    c.insert("email".into(), user.email.into());
    c.insert("email_verified".into(), user.email_verified.into());
    c.insert(
        "name".into(),
        format!("{} {}", user.given_name, user.family_name).into(),
    );
    c.insert(
        "picture".into(),
        format!("https://lh3.googleusercontent.com/a/{}=s96-c", user.key).into(),
    );
    c.insert("given_name".into(), user.given_name.into());
    c.insert("family_name".into(), user.family_name.into());
    c
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
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", get("grant_type")),
        );
    }
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
    };
    if code.redirect_uri != get("redirect_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        );
    }
    if let Some((challenge, method)) = &code.challenge {
        let verifier = get("code_verifier");
        if verifier.is_empty() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Missing code verifier.",
            );
        }
        let computed = if method == "S256" {
            s256(verifier)
        } else {
            verifier.to_string()
        };
        if &computed != challenge {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid code verifier.",
            );
        }
    }
    let access = format!("ya29.a0{}", random_token(60));
    s.grants.issue_token(&access, code.user);
    let iss = match &*s.issuer_spelling.lock().expect("lock") {
        IssuerSpelling::Full => s.client.base.clone(),
        IssuerSpelling::Bare => s
            .client
            .base
            .split_once("://")
            .map(|(_, h)| h.to_string())
            .unwrap_or_default(),
        IssuerSpelling::Other(o) => o.clone(),
    };
    let at_hash = {
        use sha2::{Digest, Sha256};
        URL_SAFE_NO_PAD.encode(&Sha256::digest(access.as_bytes())[..16])
    };
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), iss.into());
    claims.insert("azp".into(), s.client.client_id.clone().into());
    claims.insert("aud".into(), s.client.client_id.clone().into());
    claims.extend(claims_of(&code.user));
    claims.insert("at_hash".into(), at_hash.into());
    if let Some(n) = &code.nonce {
        claims.insert("nonce".into(), n.clone().into());
    }
    let iat = unix_now();
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), (iat + 3600).into());
    let Some(id_token) = sign_rs256(claims) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_failure",
            "signing failed",
        );
    };
    let mut answer = json!({
        "access_token": access,
        "expires_in": 3599,
        "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
        "token_type": "Bearer",
        "id_token": id_token,
    });
    if code.offline {
        answer["refresh_token"] = format!("1//0g{}", random_token(60)).into();
    }
    Json(answer).into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(user) = s.grants.token_user(bearer(&headers)) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
    };
    Json(Value::Object(claims_of(&user))).into_response()
}
