//! A UAE PASS emulator: the `idshub` endpoints of `id.uaepass.ae` (or staging's
//! `stg-id.uaepass.ae`) on one loopback port.
//!
//! - `GET /idshub/authorize`: `response_type=code`, `client_id` (unknown: an error page),
//!   `redirect_uri` (must be the registered one), `scope`, `state`, and `acr_values`, which
//!   UAE PASS requires: without one of its authentication levels
//!   (`urn:safelayer:tws:policies:authentication:level:low` for the web, or the mobile
//!   app-to-app level) the browser goes back with `error=invalid_request`. PKCE S256 is
//!   honoured when sent. `user=deny` is the person cancelling: `error=access_denied`.
//! - `POST /idshub/token`, form, the client by **HTTP Basic** only: 401 `invalid_client`,
//!   400 `invalid_grant` (unknown, reused or expired code, another `redirect_uri`, a wrong
//!   `code_verifier`), 400 `unsupported_grant_type`. Success: `access_token`,
//!   `token_type: Bearer`, `expires_in`, `scope`.
//! - `GET /idshub/userinfo`, Bearer: the profile of the person's account level. A `SOP3`
//!   citizen has `idn` (the Emirates ID), English and Arabic names, `nationalityEN`, `gender`;
//!   a `SOP1` account (Emirates ID not verified) only `sub`, `uuid`, `userType`, `email`,
//!   `mobile` and the English first and last names. A bad token is 401 `invalid_token`.
//!
//! Users: Иван Петров (`SOP3`) and Мария Смирнова (`SOP1`).

use crate::common::{
    Client, ConsentText, FrontErrors, Grants, authorize_front, bearer, code_redirect, consent_page,
    esc, oauth_error, random_token, redirect, s256, token_form,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The authentication levels UAE PASS accepts in `acr_values`: the web's and the mobile app's.
pub const ACR_VALUES: [&str; 2] = [
    "urn:safelayer:tws:policies:authentication:level:low",
    "urn:digitalid:authentication:flow:mobileondevice",
];

/// A fake UAE PASS account.
#[derive(Debug, Clone, Copy)]
pub struct UaePassUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub uuid: &'static str,
    /// `SOP1`, `SOP2` or `SOP3`.
    pub user_type: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: &'static str,
    pub mobile: &'static str,
}

/// Иван Петров (`SOP3`: Emirates ID verified) and Мария Смирнова (`SOP1`: not verified).
pub const USERS: [UaePassUser; 2] = [
    UaePassUser {
        key: "ivan",
        uuid: "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e",
        user_type: "SOP3",
        first_name: "Иван",
        last_name: "Петров",
        email: "ivan.petrov@example.ae",
        mobile: "971501234567",
    },
    UaePassUser {
        key: "maria",
        uuid: "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
        user_type: "SOP1",
        first_name: "Мария",
        last_name: "Смирнова",
        email: "maria.smirnova@example.ae",
        mobile: "971507654321",
    },
];

#[derive(Clone)]
struct Code {
    user: UaePassUser,
    redirect_uri: String,
    scope: String,
    challenge: Option<String>,
}

struct Shared {
    client: Client,
    grants: Grants<Code, UaePassUser>,
}

/// A running UAE PASS emulator on 127.0.0.1. Stops when dropped.
pub struct UaePassEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl UaePassEmulator {
    /// A client on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> UaePassEmulator {
        Self::serve(crate::free_loopback_port("UAE PASS").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo`). Needs a Tokio runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<UaePassEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            // The shape of UAE PASS's staging sandbox credentials.
            client: Client::new(
                addr,
                "sandbox_stage_emulated",
                "sandbox_stage_emulated_secret",
            ),
            grants: Grants::new(Duration::from_secs(600)),
        });
        let app = Router::new()
            .route("/idshub/authorize", get(authorize))
            .route("/idshub/token", post(token))
            .route("/idshub/userinfo", get(userinfo))
            .with_state(shared.clone());
        Ok(UaePassEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the `issuer_url`, standing for `https://id.uaepass.ae`.
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Registers the client's redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// The `sub` of the fake user `key`.
    pub fn sub_of(&self, key: &str) -> String {
        let u = USERS
            .iter()
            .find(|u| u.key == key)
            .unwrap_or_else(|| panic!("no fake UAE PASS user `{key}`"));
        format!("UAEPASS/{}", u.uuid)
    }
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>UAE PASS</title>\n<h1>Error</h1>\n<p>{}</p>\n",
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
        client: "invalid_client: unknown client_id",
        redirect: "invalid_request: redirect_uri does not match",
        not_a_url: "invalid_request: redirect_uri",
    };
    let back = match authorize_front(&s.client, &q, &errors, error_page) {
        Ok(back) => back,
        Err(page) => return *page,
    };
    let refuse = |mut back: url::Url, error: &str, description: &str| {
        back.query_pairs_mut()
            .append_pair("error", error)
            .append_pair("error_description", description)
            .append_pair("state", get("state"));
        redirect(&back)
    };
    if !ACR_VALUES.contains(&get("acr_values")) {
        return refuse(
            back,
            "invalid_request",
            "acr_values is missing or not supported",
        );
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        ("", _) => None,
        (c, "S256") => Some(c.to_string()),
        _ => {
            return refuse(
                back,
                "invalid_request",
                "code_challenge_method must be S256",
            );
        }
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            "/idshub/authorize",
            &q,
            &ConsentText {
                lang: "en",
                title: "UAE PASS",
                heading: "Login with UAE PASS (emulator)",
                prompt: "Confirm the login on the UAE PASS app as:",
                cancel: "Cancel",
            },
            USERS.iter().map(|u| (u.key, u.email)),
        );
    };
    if pick == "deny" {
        return refuse(back, "access_denied", "User cancelled the authentication");
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_token(24);
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            scope: get("scope").to_string(),
            challenge,
        },
    );
    code_redirect(back, &code, get("state"))
}

/// The client of a token request: HTTP Basic only, as UAE PASS requires.
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let form = HashMap::new();
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .starts_with("Basic ")
        .then(|| crate::common::client_credentials(headers, &form))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let Some((id, secret)) = basic_client(&headers) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    };
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
            "Unsupported grant type",
        );
    }
    let bad = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code",
        )
    };
    let Some(code) = s.grants.redeem_fresh(get("code")) else {
        return bad();
    };
    if code.redirect_uri != get("redirect_uri")
        || code
            .challenge
            .as_ref()
            .is_some_and(|c| s256(get("code_verifier")) != *c)
    {
        return bad();
    }
    let access = random_token(32);
    s.grants.issue_token(&access, code.user);
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": code.scope,
    }))
    .into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(u) = s.grants.token_user(bearer(&headers)) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is invalid or has expired",
        );
    };
    let mut info = json!({
        "sub": format!("UAEPASS/{}", u.uuid),
        "uuid": u.uuid,
        "userType": u.user_type,
        "email": u.email,
        "mobile": u.mobile,
        "firstnameEN": u.first_name,
        "lastnameEN": u.last_name,
    });
    if u.user_type != "SOP1" {
        let extra = json!({
            "fullnameEN": format!("{} {}", u.first_name, u.last_name),
            "firstnameAR": "إيفان",
            "lastnameAR": "بيتروف",
            "fullnameAR": "إيفان بيتروف",
            "idn": "784198012345671",
            "idType": "ID",
            "gender": "Male",
            "nationalityEN": "RUS",
            "nationalityAR": "روسي",
            "titleEN": "Mr",
            "titleAR": "السيد",
        });
        if let (Some(o), Value::Object(e)) = (info.as_object_mut(), extra) {
            o.extend(e);
        }
    }
    Json(info).into_response()
}
