//! Emulators of the plain OpenID Connect providers Kratos names — GitLab, Auth0, Slack and
//! LinkedIn — on one loopback port each. They share the OpenID Connect machinery (discovery,
//! RS256 id_tokens on the emulators' key, codes, PKCE when offered) and differ where the
//! providers do, each [`Kind`] with its own paths and answers:
//!
//! - **GitLab** (issuer = the base URL, as gitlab.com or a self-managed instance):
//!   `/oauth/authorize`, `/oauth/token`, `/oauth/userinfo`, `/oauth/discovery/keys`; PKCE S256;
//!   `sub` the numeric user id as a string, `nickname`, `preferred_username`, `groups`; RFC 6749
//!   errors (`invalid_client` 401, `invalid_grant` 400).
//! - **Auth0** (issuer = the base URL **with a trailing `/`**): `/authorize`, `/oauth/token`,
//!   `/userinfo`, `/.well-known/jwks.json`; PKCE S256; `sub` connection-prefixed
//!   (`auth0|…`), `updated_at` an RFC 3339 **string**; `invalid_grant` with HTTP 403.
//! - **Slack** (issuer = the base URL, standing for `https://slack.com`):
//!   `/openid/connect/authorize`, `/api/openid.connect.token`, `/api/openid.connect.userInfo`,
//!   `/openid/connect/keys`; no PKCE; the token answer carries `"ok": true`, and errors come with
//!   **HTTP 200** as `{"ok": false, "error": "invalid_code"}` (`invalid_client_id`,
//!   `bad_client_secret`, `bad_redirect_uri`); namespaced claims
//!   (`https://slack.com/team_id`, `https://slack.com/user_id`, …).
//! - **LinkedIn** (issuer = base URL + `/oauth`, LinkedIn's issuer since 2024):
//!   `/oauth/v2/authorization`, `/oauth/v2/accessToken` (secret in the form only),
//!   `/v2/userinfo` (api.linkedin.com), `/oauth/openid/jwks`; no PKCE (a `code_verifier` is
//!   refused with `invalid_client`, as reported of LinkedIn); `locale` an object
//!   `{"country", "language"}`.
//! - **Salesforce** (issuer = the base URL, standing for `https://login.salesforce.com` or an
//!   org's My Domain): `/services/oauth2/authorize`, `/services/oauth2/token`,
//!   `/services/oauth2/userinfo`, `/id/keys`; PKCE S256; `sub` the identity URL
//!   `https://login.salesforce.com/id/<org id>/<user id>`, with `user_id` and
//!   `organization_id`; userinfo's `updated_at` an RFC 3339 **string**; the token answer
//!   carries `instance_url`, `id`, `issued_at` and `signature`; errors with HTTP 400
//!   (`invalid_client` "invalid client credentials", `invalid_grant` "authentication
//!   failure").
//! - **netID** (issuer = the base URL **with a trailing `/`**, standing for
//!   `https://broker.netid.de/`): `/authorize`, `/token`, `/userinfo`, `/jwks`; PKCE S256;
//!   an opaque pairwise `sub`. netID hands out only the claims the `claims` request parameter
//!   names (`{"userinfo": {"email": {"essential": true}, …}}`): without it, userinfo and the
//!   id_token carry `sub` alone. On netID's consent page the person may decline the claims
//!   not marked essential ([`PresetEmulator::set_declined_claims`]); those are then absent.
//!
//! Users: Иван Петров (verified email) and Мария Смирнова (an unverified email); `user=deny`
//! answers `error=access_denied`. [`PresetEmulator::set_forged_issuer`] makes id_tokens name
//! another issuer, as a forged or broken upstream would.

use crate::common::{
    Client, ConsentText, Grants, bearer, client_credentials, consent_page, oauth_error,
    random_token, redirect, rsa_signing_key, s256, sign_rs256, unix_now,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which provider the emulator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gitlab,
    Auth0,
    Slack,
    Linkedin,
    Salesforce,
    Netid,
}

/// Where a kind keeps its endpoints, relative to the base URL.
struct Paths {
    issuer_suffix: &'static str,
    authorize: &'static str,
    token: &'static str,
    userinfo: &'static str,
    keys: &'static str,
    pkce: bool,
}

impl Kind {
    fn paths(self) -> Paths {
        match self {
            Kind::Gitlab => Paths {
                issuer_suffix: "",
                authorize: "/oauth/authorize",
                token: "/oauth/token",
                userinfo: "/oauth/userinfo",
                keys: "/oauth/discovery/keys",
                pkce: true,
            },
            Kind::Auth0 => Paths {
                issuer_suffix: "/",
                authorize: "/authorize",
                token: "/oauth/token",
                userinfo: "/userinfo",
                keys: "/.well-known/jwks.json",
                pkce: true,
            },
            Kind::Slack => Paths {
                issuer_suffix: "",
                authorize: "/openid/connect/authorize",
                token: "/api/openid.connect.token",
                userinfo: "/api/openid.connect.userInfo",
                keys: "/openid/connect/keys",
                pkce: false,
            },
            Kind::Linkedin => Paths {
                issuer_suffix: "/oauth",
                authorize: "/oauth/v2/authorization",
                token: "/oauth/v2/accessToken",
                userinfo: "/v2/userinfo",
                keys: "/oauth/openid/jwks",
                pkce: false,
            },
            Kind::Salesforce => Paths {
                issuer_suffix: "",
                authorize: "/services/oauth2/authorize",
                token: "/services/oauth2/token",
                userinfo: "/services/oauth2/userinfo",
                keys: "/id/keys",
                pkce: true,
            },
            Kind::Netid => Paths {
                issuer_suffix: "/",
                authorize: "/authorize",
                token: "/token",
                userinfo: "/userinfo",
                keys: "/jwks",
                pkce: true,
            },
        }
    }
}

/// A fake account, the same person at every provider.
#[derive(Debug, Clone, Copy)]
pub struct PresetUser {
    pub key: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    pub email_verified: bool,
}

pub const USERS: [PresetUser; 2] = [
    PresetUser {
        key: "ivan",
        given_name: "Иван",
        family_name: "Петров",
        email: "ivan.petrov@example.org",
        email_verified: true,
    },
    PresetUser {
        key: "maria",
        given_name: "Мария",
        family_name: "Смирнова",
        email: "maria.smirnova@example.ru",
        email_verified: false,
    },
];

#[derive(Clone)]
struct Code {
    user: PresetUser,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    /// netID: what the `claims` parameter asked for, minus what the person declined.
    released: Option<Released>,
}

/// The claims netID releases for one sign-in, per target.
#[derive(Clone, Default)]
struct Released {
    userinfo: Vec<String>,
    id_token: Vec<String>,
}

/// What an access token stands for.
#[derive(Clone)]
struct Granted {
    user: PresetUser,
    released: Option<Released>,
}

/// The claims of `part` (`userinfo`, `id_token`) that a `claims` request names, without the
/// declined ones unless the request marks them essential.
fn released(request: &Value, part: &str, declined: &[String]) -> Vec<String> {
    request
        .get(part)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter(|(k, v)| {
                    v.get("essential").and_then(Value::as_bool) == Some(true)
                        || !declined.contains(k)
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps `sub` and the `names` of `c`.
fn only(c: Map<String, Value>, names: &[String]) -> Map<String, Value> {
    c.into_iter()
        .filter(|(k, _)| k == "sub" || names.contains(k))
        .collect()
}

struct Shared {
    kind: Kind,
    client: Client,
    grants: Grants<Code, Granted>,
    forged_issuer: Mutex<Option<String>>,
    declined: Mutex<Vec<String>>,
}

/// A running emulator of one [`Kind`] on 127.0.0.1. Stops when dropped.
pub struct PresetEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl PresetEmulator {
    /// An OAuth app of `kind` on a free loopback port; panics when none can be bound, which
    /// only tests want.
    pub async fn start(kind: Kind) -> PresetEmulator {
        Self::serve(kind, crate::free_loopback_port("OpenID Connect").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo`). Needs a Tokio runtime.
    pub fn serve(kind: Kind, listener: tokio::net::TcpListener) -> std::io::Result<PresetEmulator> {
        let addr = listener.local_addr()?;
        // The signing key is made now, not at the first token request, whose caller would
        // otherwise wait for it (seconds in a debug build, past a 10 s upstream limit on a
        // busy machine).
        rsa_signing_key();
        let (id, secret) = match kind {
            Kind::Gitlab => (
                "8f1b4e7a2c9d06e35b7a41f8c2d9e06b3a5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e",
                "gloas-3c5e7a9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c",
            ),
            Kind::Auth0 => (
                "kX2m9Qp4Zr7Tb1Wc5Ny8Ld3Hf6Gj0Sv",
                "auth0-secret-Xq3vR8mT2kLp9wZc4nB7yHs1dF6e",
            ),
            Kind::Slack => ("1234567890.9876543210", "3c5e7a9b1d3f5a7c9e1b3d5f7a9c1e3b"),
            Kind::Linkedin => ("86w2f4k9q1z7xa", "WPL_AP1.Xq3vR8mT2kLp9wZc.4nB7yQ=="),
            Kind::Netid => (
                "5c4d7e2a-9b1f-4e8d-a3c6-emulated0netid",
                "netid-emulated-secret-Xq3vR8mT2kLp9wZc4nB7yHs1dF6e",
            ),
            Kind::Salesforce => (
                "3MVG9_emulated.Connected.App.Consumer.Key.0123456789abcdefXYZ",
                "E6F1C0A5B9D2384756ABCDEF0123456789ABCDEF0123456789ABCDEF01234567",
            ),
        };
        let shared = Arc::new(Shared {
            kind,
            client: Client::new(addr, id, secret),
            grants: Grants::new(Duration::from_secs(600)),
            forged_issuer: Mutex::new(None),
            declined: Mutex::new(vec![]),
        });
        let p = kind.paths();
        let discovery_path = format!(
            "{}/.well-known/openid-configuration",
            p.issuer_suffix.trim_end_matches('/')
        );
        let app = Router::new()
            .route(&discovery_path, get(discovery))
            .route(p.keys, get(keys))
            .route(p.authorize, get(authorize))
            .route(p.token, post(token))
            .route(p.userinfo, get(userinfo))
            .with_state(shared.clone());
        Ok(PresetEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// The issuer (`issuer_url`): the base URL, with Auth0's trailing `/` and LinkedIn's
    /// `/oauth`.
    pub fn issuer(&self) -> String {
        issuer(&self.shared)
    }

    /// Registers the app's one redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// id_tokens issued from now on say this `iss` (`None`: the issuer).
    pub fn set_forged_issuer(&self, iss: Option<&str>) {
        *self.shared.forged_issuer.lock().expect("lock") = iss.map(String::from);
    }

    /// netID: the claims people decline on the consent page from now on (those the request
    /// marks essential cannot be declined).
    pub fn set_declined_claims(&self, claims: &[&str]) {
        *self.shared.declined.lock().expect("lock") =
            claims.iter().map(|c| c.to_string()).collect();
    }

    /// The `sub` of the fake user `key` at this provider.
    pub fn sub_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake user `{key}`"));
        sub(self.shared.kind, u)
    }
}

/// The emulated Salesforce org's id.
const SALESFORCE_ORG: &str = "00D5g000004ErtSEAS";

fn issuer(s: &Shared) -> String {
    format!("{}{}", s.client.base, s.kind.paths().issuer_suffix)
}

fn sub(kind: Kind, u: &PresetUser) -> String {
    let n = if u.key == "ivan" { 1 } else { 2 };
    match kind {
        Kind::Gitlab => format!("{}", 4_815_160 + n),
        Kind::Auth0 => format!("auth0|65a1f0c2b3d4e5f60718293{n}"),
        Kind::Slack => format!("U0{n}R7JM3K9"),
        Kind::Linkedin => format!("782bbtaQ{n}Xy9"),
        Kind::Salesforce => {
            format!("https://login.salesforce.com/id/{SALESFORCE_ORG}/0055g00000{n}AbCdAAC")
        }
        Kind::Netid => format!("tpwcPALK0Xt9n3Fhm1bSiT4SENv29ehbwuCCH3BnT{n}U"),
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let b = &s.client.base;
    let p = s.kind.paths();
    let mut d = json!({
        "issuer": issuer(&s),
        "authorization_endpoint": format!("{b}{}", p.authorize),
        "token_endpoint": format!("{b}{}", p.token),
        "userinfo_endpoint": format!("{b}{}", p.userinfo),
        "jwks_uri": format!("{b}{}", p.keys),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": if s.kind == Kind::Linkedin {
            json!(["client_secret_post"])
        } else {
            json!(["client_secret_basic", "client_secret_post"])
        },
        "claims_supported": ["sub", "name", "given_name", "family_name", "email", "email_verified", "picture", "locale"],
    });
    if p.pkce {
        d["code_challenge_methods_supported"] = json!(["plain", "S256"]);
    }
    Json(d)
}

async fn keys() -> Json<Value> {
    Json(json!({"keys": [rsa_signing_key().1]}))
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != s.client.client_id {
        return (
            StatusCode::BAD_REQUEST,
            "invalid_client: the client is not known",
        )
            .into_response();
    }
    let redirect_uri = get("redirect_uri");
    if let Some(registered) = s.client.registered_redirect_uri()
        && registered != redirect_uri
    {
        return (
            StatusCode::BAD_REQUEST,
            "invalid_request: the redirect URI is not registered",
        )
            .into_response();
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "invalid_request: redirect_uri").into_response();
    };
    let challenge = match (
        s.kind.paths().pkce,
        get("code_challenge"),
        get("code_challenge_method"),
    ) {
        (_, "", _) => None,
        (true, c, "S256") => Some(c.to_string()),
        _ => {
            back.query_pairs_mut()
                .append_pair("error", "invalid_request")
                .append_pair("error_description", "PKCE is not supported here")
                .append_pair("state", get("state"));
            return redirect(&back);
        }
    };
    let Some(pick) = s.client.pick(&q) else {
        let path = s.kind.paths().authorize;
        return consent_page(
            path,
            &q,
            &ConsentText {
                lang: "en",
                title: "Authorize application",
                heading: "Sign in (emulator)",
                prompt: "Who signs in?",
                cancel: "Deny",
            },
            USERS.iter().map(|u| (u.key, u.email)),
        );
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair(
                "error_description",
                "The resource owner or authorization server denied the request.",
            )
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return (StatusCode::BAD_REQUEST, "no such emulated user").into_response();
    };
    let released = (s.kind == Kind::Netid).then(|| {
        let request: Value = serde_json::from_str(get("claims")).unwrap_or_default();
        let declined = s.declined.lock().expect("lock").clone();
        Released {
            userinfo: self::released(&request, "userinfo", &declined),
            id_token: self::released(&request, "id_token", &declined),
        }
    });
    let code = random_token(32);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            nonce: q.get("nonce").cloned(),
            challenge,
            released,
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

/// A refusal in the kind's own shape: Slack's `{"ok": false, "error"}` with HTTP 200, Auth0's
/// `invalid_grant` with 403, RFC 6749 otherwise.
fn refuse(kind: Kind, status: StatusCode, error: &str, slack_error: &str) -> Response {
    match kind {
        Kind::Slack => Json(json!({"ok": false, "error": slack_error})).into_response(),
        Kind::Auth0 if error == "invalid_grant" => {
            oauth_error(StatusCode::FORBIDDEN, error, "Invalid authorization code")
        }
        Kind::Salesforce => oauth_error(
            StatusCode::BAD_REQUEST,
            error,
            match error {
                "invalid_client" => "invalid client credentials",
                "invalid_grant" => "authentication failure",
                _ => "invalid request",
            },
        ),
        _ => oauth_error(status, error, "The request was refused."),
    }
}

fn claims(kind: Kind, u: &PresetUser) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("sub".into(), sub(kind, u).into());
    c.insert(
        "name".into(),
        format!("{} {}", u.given_name, u.family_name).into(),
    );
    c.insert("given_name".into(), u.given_name.into());
    c.insert("family_name".into(), u.family_name.into());
    c.insert("email".into(), u.email.into());
    c.insert("email_verified".into(), u.email_verified.into());
    c.insert(
        "picture".into(),
        format!("https://images.example/{}.png", u.key).into(),
    );
    match kind {
        Kind::Gitlab => {
            c.insert("nickname".into(), u.key.into());
            c.insert("preferred_username".into(), u.key.into());
            c.insert("groups".into(), json!(["bookshelf", "bookshelf/admins"]));
        }
        Kind::Auth0 => {
            c.insert("nickname".into(), u.key.into());
            c.insert("updated_at".into(), "2026-01-02T03:04:05.678Z".into());
        }
        Kind::Slack => {
            c.insert("https://slack.com/user_id".into(), sub(kind, u).into());
            c.insert("https://slack.com/team_id".into(), "T0BOOKSHLF".into());
            c.insert("https://slack.com/team_name".into(), "Bookshelf".into());
            c.insert("locale".into(), "en-US".into());
        }
        Kind::Linkedin => {
            c.insert("locale".into(), json!({"country": "RU", "language": "ru"}));
        }
        Kind::Salesforce => {
            let sub = sub(kind, u);
            let user_id = sub.rsplit('/').next().unwrap_or_default().to_string();
            c.insert("user_id".into(), user_id.into());
            c.insert("organization_id".into(), SALESFORCE_ORG.into());
            c.insert("preferred_username".into(), u.email.into());
            c.insert("nickname".into(), u.key.into());
            c.insert("zoneinfo".into(), "Europe/Moscow".into());
            c.insert("user_type".into(), "STANDARD".into());
            c.insert("updated_at".into(), "2026-01-02T03:04:05Z".into());
        }
        Kind::Netid => {
            c.insert("birthdate".into(), "1990-05-17".into());
            c.insert(
                "gender".into(),
                if u.key == "ivan" { "male" } else { "female" }.into(),
            );
        }
    }
    c
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    s.client.count_token_request();
    let k = s.kind;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = client_credentials(&headers, &form);
    if k == Kind::Linkedin && !get("code_verifier").is_empty() {
        return refuse(
            k,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid_client_id",
        );
    }
    if id != s.client.client_id || secret != s.client.client_secret {
        return refuse(
            k,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad_client_secret",
        );
    }
    if get("grant_type") != "authorization_code" {
        return refuse(
            k,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "invalid_grant_type",
        );
    }
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return refuse(k, StatusCode::BAD_REQUEST, "invalid_grant", "invalid_code");
    };
    if code.redirect_uri != get("redirect_uri") {
        return refuse(
            k,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "bad_redirect_uri",
        );
    }
    if let Some(c) = &code.challenge
        && s256(get("code_verifier")) != *c
    {
        return refuse(k, StatusCode::BAD_REQUEST, "invalid_grant", "invalid_code");
    }
    let now = unix_now();
    let mut c = claims(k, &code.user);
    if let Some(r) = &code.released {
        c = only(c, &r.id_token);
    }
    let iss = s
        .forged_issuer
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| issuer(&s));
    c.insert("iss".into(), iss.into());
    c.insert("aud".into(), s.client.client_id.clone().into());
    c.insert("iat".into(), now.into());
    c.insert("exp".into(), (now + 3600).into());
    if let Some(n) = code.nonce {
        c.insert("nonce".into(), n.into());
    }
    let Some(id_token) = sign_rs256(c) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        );
    };
    let access = random_token(32);
    s.grants.issue_token(
        &access,
        Granted {
            user: code.user,
            released: code.released.clone(),
        },
    );
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 7200,
        "id_token": id_token,
        "scope": "openid profile email",
    });
    if k == Kind::Slack {
        answer["ok"] = true.into();
    }
    if k == Kind::Salesforce {
        let b = &s.client.base;
        answer["instance_url"] = b.clone().into();
        answer["id"] = sub(k, &code.user).into();
        answer["issued_at"] = (now * 1000).to_string().into();
        answer["signature"] = random_token(32).into();
    }
    Json(answer).into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(g) = s.grants.token_user(bearer(&headers)) else {
        return match s.kind {
            Kind::Slack => Json(json!({"ok": false, "error": "invalid_auth"})).into_response(),
            _ => oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is invalid",
            ),
        };
    };
    let mut c = claims(s.kind, &g.user);
    if let Some(r) = &g.released {
        c = only(c, &r.userinfo);
    }
    if s.kind == Kind::Slack {
        c.insert("ok".into(), true.into());
    }
    Json(Value::Object(c)).into_response()
}
