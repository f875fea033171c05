//! A Microsoft identity platform (Entra ID v2.0 endpoints and Microsoft Graph's `/me`)
//! emulator on one loopback port. The base URL stands for both
//! `https://login.microsoftonline.com` and `https://graph.microsoft.com`; the paths are
//! Microsoft's.
//!
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: `tenant` is `common`,
//!   `organizations`, `consumers`, a directory's tenant id or one of its domains. The issuer is
//!   the template `{base}/{tenantid}/v2.0` for `common` and `organizations`, else the
//!   directory's (`consumers` is the personal accounts' directory
//!   `9188040d-6c67-4c5b-b112-36a304b66dad`). An unknown tenant is HTTP 400 `invalid_tenant`
//!   (AADSTS90002). `jwks_uri` is `/{tenant}/discovery/v2.0/keys` (RS256), PKCE S256, secret
//!   by `client_secret_post` or `client_secret_basic`.
//! - `GET /{tenant}/oauth2/v2.0/authorize`: `client_id` (unknown: AADSTS700016 page),
//!   `redirect_uri` (unregistered: AADSTS50011 page), `response_type=code`, `scope`, `state`,
//!   `nonce`, `response_mode=query`, PKCE. The account picker lists the accounts the tenant
//!   admits; `user=<key>` of an account the tenant does not admit is AADSTS50020's page
//!   (personal account under `organizations`, another directory's user under a single
//!   tenant), `user=deny` returns `error=access_denied` with AADSTS65004.
//! - `POST /{tenant}/oauth2/v2.0/token`, form: errors as Microsoft sends them (HTTP 400/401,
//!   `error`, `error_description` starting with `AADSTSnnnnn:`, `error_codes`, `timestamp`,
//!   `trace_id`, `correlation_id`, `error_uri`): a wrong secret AADSTS7000215, a reused code
//!   AADSTS54005, an unknown or expired code AADSTS70008, a wrong PKCE verifier AADSTS50148.
//!   Success: `token_type`, `scope`, `expires_in`, `ext_expires_in`, `access_token`,
//!   `id_token`, and `refresh_token` with `offline_access`.
//! - id_tokens (v2.0): `ver`, `iss` (the directory's issuer), `sub` (pairwise: per account and
//!   app), `aud`, `iat`, `nbf`, `exp`, `name`, `preferred_username`, `oid`, `tid`, `email`,
//!   the optional claim `xms_edov` (the email's domain is verified) and `nonce`. Test knobs
//!   make a misbehaving or forged upstream: [`MicrosoftEmulator::set_forged_issuer`] and
//!   [`MicrosoftEmulator::set_forged_tid`].
//! - `GET /v1.0/me` (Graph), Bearer: `id` (the object id), `displayName`, `givenName`,
//!   `surname`, `mail`, `userPrincipalName`; HTTP 401 `InvalidAuthenticationToken` otherwise.

use crate::common::{
    Client, ConsentText, Grants, bearer, client_credentials, consent_page, esc, oauth_error,
    random_token, redirect, rsa_signing_key, s256, sign_rs256, token_form, unix_now,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The personal Microsoft accounts' directory.
pub const CONSUMERS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Contoso's directory (domain `contoso.example`).
pub const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Fabrikam's directory (domain `fabrikam.example`).
pub const FABRIKAM: &str = "3c5f1f3e-1b7a-4a9e-9a51-8d6a0c2b7e44";

/// A fake Microsoft account.
#[derive(Debug, Clone, Copy)]
pub struct MicrosoftUser {
    pub key: &'static str,
    /// The directory (`tid`).
    pub tid: &'static str,
    /// The object id (`oid`), unique in its directory.
    pub oid: &'static str,
    pub given_name: &'static str,
    pub surname: &'static str,
    pub email: &'static str,
    /// The optional claim `xms_edov`: the email's domain is verified by the directory.
    pub edov: bool,
}

/// Иван Петров (a personal account), Мария Смирнова (Fabrikam, an email on a domain Fabrikam
/// never verified) and Anna Berg (Contoso, verified).
pub const USERS: [MicrosoftUser; 3] = [
    MicrosoftUser {
        key: "ivan",
        tid: CONSUMERS,
        oid: "00000000-0000-0000-6b3e-2f4a1c9d8e7f",
        given_name: "Иван",
        surname: "Петров",
        email: "ivan.petrov@outlook.com",
        edov: true,
    },
    MicrosoftUser {
        key: "maria",
        tid: FABRIKAM,
        oid: "5d1e2f3a-4b5c-4d6e-8f70-a1b2c3d4e5f6",
        given_name: "Мария",
        surname: "Смирнова",
        email: "maria.smirnova@example.ru",
        edov: false,
    },
    MicrosoftUser {
        key: "anna",
        tid: CONTOSO,
        oid: "a7c3e9f1-2b4d-4f6a-8c0e-1d3f5a7b9c2e",
        given_name: "Anna",
        surname: "Berg",
        email: "anna@contoso.example",
        edov: true,
    },
];

const CODE_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Code {
    user: MicrosoftUser,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    offline: bool,
}

struct Shared {
    client: Client,
    grants: Grants<Code, MicrosoftUser>,
    forged_issuer: Mutex<Option<String>>,
    forged_tid: Mutex<Option<String>>,
}

/// A running Microsoft emulator on 127.0.0.1. Stops when dropped.
pub struct MicrosoftEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl MicrosoftEmulator {
    /// An app registration on a free loopback port; panics when none can be bound, which only
    /// tests want.
    pub async fn start() -> MicrosoftEmulator {
        Self::serve(crate::free_loopback_port("Microsoft").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo`). Needs a Tokio runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<MicrosoftEmulator> {
        let addr = listener.local_addr()?;
        // The signing key is made now, not at the first token request, whose caller would
        // otherwise wait for it (seconds in a debug build, past a 10 s upstream limit on a
        // busy machine).
        rsa_signing_key();
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "6731de76-14a6-49ae-97bc-6eba6914391e",
                "Xq38Q~mT2kLp9wZc4nB7yHs1dF6e.vR8aQ3_zK",
            ),
            grants: Grants::new(CODE_TTL),
            forged_issuer: Mutex::new(None),
            forged_tid: Mutex::new(None),
        });
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/me", get(me))
            .with_state(shared.clone());
        Ok(MicrosoftEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    crate::common::client_accessors!();
    crate::common::grant_accessors!();

    /// `http://127.0.0.1:<port>`: the authority (`issuer_url`) and Graph (`api_base_url`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Registers the app's one redirect URI. Until one is registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        self.shared.client.register_redirect_uri(uri.into());
    }

    /// id_tokens issued from now on say this `iss` (`None`: the directory's), as a forged or
    /// broken upstream would.
    pub fn set_forged_issuer(&self, iss: Option<&str>) {
        *self.shared.forged_issuer.lock().expect("lock") = iss.map(String::from);
    }

    /// id_tokens issued from now on say this `tid` (`None`: the account's).
    pub fn set_forged_tid(&self, tid: Option<&str>) {
        *self.shared.forged_tid.lock().expect("lock") = tid.map(String::from);
    }

    /// The pairwise `sub` the app sees for `key`.
    pub fn sub_of(&self, key: &str) -> String {
        pairwise_sub(user(key), &self.shared.client.client_id)
    }

    /// The account `key`.
    pub fn user(&self, key: &str) -> MicrosoftUser {
        *user(key)
    }
}

fn user(key: &str) -> &'static MicrosoftUser {
    USERS
        .iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("no fake Microsoft user `{key}`"))
}

/// `sub` is pairwise: the same account has another `sub` in another app registration.
fn pairwise_sub(u: &MicrosoftUser, client_id: &str) -> String {
    s256(&format!("{}:{}:{client_id}", u.tid, u.oid))[..43].to_string()
}

/// The directory a tenant segment names: `Some(None)` for the multi-tenant `common` and
/// `organizations`, `None` for an unknown tenant.
fn directory(tenant: &str) -> Option<Option<&'static str>> {
    match tenant.to_ascii_lowercase().as_str() {
        "common" | "organizations" => Some(None),
        "consumers" => Some(Some(CONSUMERS)),
        "contoso.example" => Some(Some(CONTOSO)),
        "fabrikam.example" => Some(Some(FABRIKAM)),
        t => [CONSUMERS, CONTOSO, FABRIKAM]
            .into_iter()
            .find(|d| *d == t)
            .map(Some),
    }
}

/// Whether an account may sign in through `tenant`.
fn admits(tenant: &str, u: &MicrosoftUser) -> bool {
    match (tenant.to_ascii_lowercase().as_str(), directory(tenant)) {
        ("common", _) => true,
        ("organizations", _) => u.tid != CONSUMERS,
        (_, Some(Some(d))) => u.tid == d,
        _ => false,
    }
}

/// Microsoft's JSON error: `error`, `error_description` (`AADSTSnnnnn: …`), `error_codes`,
/// `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
fn aad_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = random_token(12);
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} Timestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

/// The sign-in page's error ("Sorry, but we're having trouble signing you in.").
fn error_page(code: u32, text: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Sign in to your account</title>\n<h1>Sorry, but we’re having trouble signing you in.</h1>\n<p>AADSTS{code}: {}</p>\n",
            esc(text)
        )),
    )
        .into_response()
}

async fn discovery(State(s): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    let Some(dir) = directory(&tenant) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    };
    let b = &s.client.base;
    let issuer = format!("{b}/{}/v2.0", dir.unwrap_or("{tenantid}"));
    Json(json!({
        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "code_challenge_methods_supported": ["plain", "S256"],
    }))
    .into_response()
}

async fn keys() -> Json<Value> {
    let mut jwk = rsa_signing_key().1.clone();
    // Microsoft's keys name the issuer template they sign for.
    jwk["issuer"] = "https://login.microsoftonline.com/{tenantid}/v2.0".into();
    Json(json!({"keys": [jwk]}))
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if directory(&tenant).is_none() {
        return error_page(90002, &format!("Tenant '{tenant}' not found."));
    }
    if get("client_id") != s.client.client_id {
        return error_page(
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory.",
                get("client_id")
            ),
        );
    }
    let redirect_uri = get("redirect_uri");
    if let Some(registered) = s.client.registered_redirect_uri()
        && registered != redirect_uri
    {
        return error_page(
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application."
            ),
        );
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page(
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    if get("response_type") != "code" || !get("scope").split(' ').any(|x| x == "openid") {
        back.query_pairs_mut()
            .append_pair("error", "invalid_request")
            .append_pair(
                "error_description",
                "AADSTS900144: The request must contain response_type=code and the scope openid.",
            )
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        ("", _) => None,
        (c, "S256") => Some(c.to_string()),
        _ => {
            return error_page(
                501491,
                "Invalid size of Code_Challenge parameter or unsupported method.",
            );
        }
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(
            &format!("/{tenant}/oauth2/v2.0/authorize"),
            &q,
            &ConsentText {
                lang: "en",
                title: "Sign in to your account",
                heading: "Pick an account (emulator)",
                prompt: "Which account do you want to use?",
                cancel: "Cancel",
            },
            USERS
                .iter()
                .filter(|u| admits(&tenant, u))
                .map(|u| (u.key, u.email)),
        );
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair(
                "error_description",
                "AADSTS65004: User declined to consent to access the app.",
            )
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(50034, &format!("The user account {pick} does not exist."));
    };
    if !admits(&tenant, &user) {
        return error_page(
            50020,
            &format!(
                "User account '{}' from identity provider does not exist in tenant '{tenant}' and cannot access the application.",
                user.email
            ),
        );
    }
    let code = format!("1.A{}", random_token(96));
    s.grants.issue_code(
        &code,
        Code {
            user,
            redirect_uri: redirect_uri.to_string(),
            nonce: q.get("nonce").cloned(),
            challenge,
            offline: get("scope").split(' ').any(|x| x == "offline_access"),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"))
        .append_pair("session_state", &random_token(16));
    redirect(&back)
}

async fn token(
    State(s): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = token_form(&s.client, &body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = client_credentials(&headers, &form);
    if id != s.client.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{id}' was not found in the directory."),
        );
    }
    if secret != s.client.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
        );
    }
    if get("grant_type") != "authorization_code" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let code = match s.grants.redeem(get("code")) {
        crate::common::Redeemed::Fresh(c) => c,
        crate::common::Redeemed::Used => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            );
        }
        _ => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            );
        }
    };
    if code.redirect_uri != get("redirect_uri") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            500112,
            "The reply address does not match the reply address provided when requesting the authorization code.",
        );
    }
    if let Some(challenge) = &code.challenge
        && s256(get("code_verifier")) != *challenge
    {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
        );
    }
    let u = code.user;
    let b = &s.client.base;
    let tid = s
        .forged_tid
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| u.tid.to_string());
    let iss = s
        .forged_issuer
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| format!("{b}/{}/v2.0", u.tid));
    let now = unix_now();
    let mut c = serde_json::Map::new();
    c.insert("ver".into(), "2.0".into());
    c.insert("iss".into(), iss.into());
    c.insert("sub".into(), pairwise_sub(&u, &s.client.client_id).into());
    c.insert("aud".into(), s.client.client_id.clone().into());
    c.insert("exp".into(), (now + 3600).into());
    c.insert("iat".into(), now.into());
    c.insert("nbf".into(), now.into());
    c.insert(
        "name".into(),
        format!("{} {}", u.given_name, u.surname).into(),
    );
    c.insert("preferred_username".into(), u.email.into());
    c.insert("oid".into(), u.oid.into());
    c.insert("tid".into(), tid.into());
    c.insert("email".into(), u.email.into());
    if u.edov {
        c.insert("xms_edov".into(), true.into());
    }
    if let Some(n) = code.nonce {
        c.insert("nonce".into(), n.into());
    }
    c.insert("uti".into(), random_token(16).into());
    let Some(id_token) = sign_rs256(c) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        );
    };
    let access = format!("EwA{}", random_token(64));
    s.grants.issue_token(&access, u);
    let mut answer = json!({
        "token_type": "Bearer",
        "scope": "openid profile email User.Read",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access,
        "id_token": id_token,
    });
    if code.offline {
        answer["refresh_token"] = format!("M.C5{}", random_token(64)).into();
    }
    Json(answer).into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(u) = s.grants.token_user(bearer(&headers)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure. Invalid audience."}})),
        )
            .into_response();
    };
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": u.oid,
        "displayName": format!("{} {}", u.given_name, u.surname),
        "givenName": u.given_name,
        "surname": u.surname,
        "mail": u.email,
        "userPrincipalName": u.email,
        "preferredLanguage": null,
    }))
    .into_response()
}
