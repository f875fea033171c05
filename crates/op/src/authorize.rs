//! The authorization endpoint (OIDC Core §3.1.2, §3.2.2; RFC 6749 §4.1, §4.2; RFC 7636).
//!
//! Errors before the client and its redirect URI are known to be genuine (unknown client,
//! unregistered or mismatched `redirect_uri`) are shown to the user and never sent to the
//! redirect URI. Everything after that goes back to the app, with `state`, in the response mode
//! it asked for. A valid request is stored server-side (`op_requests`) and referred to by id
//! through sign-in and consent, so neither can alter it.

use crate::client::{Client, normalize_response_type};
use crate::{OpError, OpResult, Provider, millis, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// A validated authorization request, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthParams {
    pub client_id: String,
    pub redirect_uri: String,
    /// Normalised (`code`, `id_token`, or `id_token token`).
    pub response_type: String,
    pub response_mode: ResponseMode,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
}

/// An answer sent back to the app: a redirect with the parameters in the query or fragment, or
/// an auto-submitting form (`form_post`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl Reply {
    /// The URL to redirect to (query or fragment modes).
    pub fn url(&self) -> String {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish();
        match self.mode {
            ResponseMode::Fragment => format!("{}#{encoded}", self.redirect_uri),
            _ => {
                let sep = if self.redirect_uri.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}{encoded}", self.redirect_uri)
            }
        }
    }
}

/// An error shown to the user instead of going back to the app.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPage {
    pub status: u16,
    /// The app's name, when the app is known.
    pub app: Option<String>,
    /// The RFC 6749 / OIDC error code.
    pub error: &'static str,
    /// What went wrong, for the page's wording: the error code, or a finer reason
    /// (`unknown_app`, `redirect_uri`, `request_expired`, `no_subject`, `not_assigned`).
    pub reason: &'static str,
    /// The technical description, in English.
    pub message: String,
    /// Where "Back to the app" leads, carrying the error, when the app should hear of it.
    pub back: Option<Reply>,
}

/// What the authorization endpoint does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorize {
    Reply(Reply),
    Page(ErrorPage),
    /// The browser must sign in (or sign in again) first.
    Login {
        to: String,
    },
    /// The user must consent; the request id is the consent form's subject.
    Consent {
        request_id: Uuid,
        /// The app's `ui_locales`, for the consent page's language.
        ui_locales: Option<String>,
    },
}

/// What the consent page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInfo {
    pub client_name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub request_id: Uuid,
    /// Where the answer goes (the app's redirect URI).
    pub redirect_uri: String,
    /// The app's `ui_locales`, for the page's language.
    pub ui_locales: Option<String>,
}

fn page(status: u16, app: Option<&Client>, error: &'static str, message: String) -> Authorize {
    page_because(error, status, app, error, message)
}

/// An error page with a finer reason than its error code (see [`ErrorPage::reason`]).
fn page_because(
    reason: &'static str,
    status: u16,
    app: Option<&Client>,
    error: &'static str,
    message: String,
) -> Authorize {
    Authorize::Page(ErrorPage {
        status,
        app: app.map(|c| c.client_name.clone()),
        error,
        reason,
        message,
        back: None,
    })
}

fn error_reply(p: &AuthParams, issuer: &str, error: &str, description: &str) -> Reply {
    let mut params = vec![
        ("error".to_string(), error.to_string()),
        ("error_description".to_string(), description.to_string()),
    ];
    if let Some(s) = &p.state {
        params.push(("state".into(), s.clone()));
    }
    params.push(("iss".into(), issuer.to_string()));
    Reply {
        redirect_uri: p.redirect_uri.clone(),
        mode: p.response_mode,
        params,
    }
}

/// Parameters in a request: a repeated parameter is an error (RFC 6749 §3.1).
pub type RawParams = HashMap<String, Vec<String>>;

fn one<'a>(raw: &'a RawParams, k: &str) -> Result<Option<&'a str>, String> {
    match raw.get(k).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([v]) if v.is_empty() => Ok(None),
        Some([v]) => Ok(Some(v.as_str())),
        Some(_) => Err(format!("The `{k}` parameter is repeated; send it once.")),
    }
}

impl Provider {
    /// Validates an authorization request, stores it and carries it as far as it can go with
    /// the browser's session.
    pub async fn authorize(
        &self,
        raw: &RawParams,
        session: Option<&Session>,
    ) -> OpResult<Authorize> {
        let p = match self.validate(raw).await? {
            Ok(p) => p,
            Err(a) => return Ok(a),
        };
        let id = Uuid::new_v4();
        let now = now_ms();
        let value = serde_json::to_value(&p).map_err(|e| OpError::server_error(e.to_string()))?;
        self.store
            .op_insert_request(
                id,
                &p.client_id,
                &value,
                now,
                now + millis(self.op().request_lifespan),
            )
            .await?;
        self.proceed(id, p, now, session).await
    }

    async fn validate(&self, raw: &RawParams) -> OpResult<Result<AuthParams, Authorize>> {
        macro_rules! param {
            ($k:expr) => {
                match one(raw, $k) {
                    Ok(v) => v,
                    Err(m) => return Ok(Err(page(400, None, "invalid_request", m))),
                }
            };
        }
        let Some(client_id) = param!("client_id") else {
            return Ok(Err(page(
                400,
                None,
                "invalid_request",
                "The app did not say who it is: the `client_id` parameter is missing.".into(),
            )));
        };
        let Some(client) = self.client(client_id).await? else {
            return Ok(Err(page_because(
                "unknown_app",
                400,
                None,
                "invalid_client",
                format!(
                    "No app with client_id `{client_id}` is registered here. Ask the app's administrator to check its settings."
                ),
            )));
        };
        let redirect_uri = match param!("redirect_uri") {
            Some(r) => r.to_string(),
            // OAuth 2.0 lets an app with one registered URI leave it out; OpenID Connect
            // (scope `openid`) requires it (Core §3.1.2.1).
            None if client.redirect_uris.len() == 1
                && !param!("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) =>
            {
                client.redirect_uris[0].clone()
            }
            None if client.redirect_uris.len() == 1 => {
                return Ok(Err(page_because(
                    "redirect_uri",
                    400,
                    Some(&client),
                    "invalid_request",
                    format!(
                        "The app “{}” did not send a `redirect_uri`, which OpenID Connect requires (Core §3.1.2.1): it must send the exact registered URL.",
                        client.client_name
                    ),
                )));
            }
            None => {
                return Ok(Err(page_because(
                    "redirect_uri",
                    400,
                    Some(&client),
                    "invalid_request",
                    format!(
                        "The app “{}” did not send a `redirect_uri`, and it has several registered: it must say which one.",
                        client.client_name
                    ),
                )));
            }
        };
        if !client.redirect_uris.iter().any(|r| r == &redirect_uri) {
            return Ok(Err(page_because(
                "redirect_uri",
                400,
                Some(&client),
                "invalid_request",
                format!(
                    "The app “{}” asked to send you back to `{redirect_uri}`, which is not one of its registered redirect URIs. Nothing was sent there. The app's administrator must register the exact URL.",
                    client.client_name
                ),
            )));
        }
        // From here on, errors go back to the app.
        let rt = normalize_response_type(param!("response_type").unwrap_or_default());
        let state = param!("state").map(str::to_string);
        let mode_param = param!("response_mode");
        let default_mode = if rt == "code" {
            ResponseMode::Query
        } else {
            ResponseMode::Fragment
        };
        let requested_mode = match mode_param {
            None => Some(default_mode),
            Some("query") => Some(ResponseMode::Query),
            Some("fragment") => Some(ResponseMode::Fragment),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => None,
        };
        let mut p = AuthParams {
            client_id: client.client_id.clone(),
            redirect_uri,
            response_type: rt.clone(),
            response_mode: requested_mode.unwrap_or(default_mode),
            scope: vec![],
            state,
            nonce: None,
            code_challenge: None,
            prompt: vec![],
            max_age: None,
            login_hint: None,
            ui_locales: None,
        };
        let fail = |p: &AuthParams, e: &str, d: String| {
            Ok(Err(Authorize::Reply(error_reply(p, &self.issuer, e, &d))))
        };
        if requested_mode.is_none() {
            return fail(
                &p,
                "invalid_request",
                format!(
                    "response_mode `{}` is not supported: use query, fragment or form_post.",
                    mode_param.unwrap_or_default()
                ),
            );
        }
        if !matches!(rt.as_str(), "code" | "id_token" | "id_token token") {
            return fail(
                &p,
                "unsupported_response_type",
                format!(
                    "response_type `{rt}` is not supported: use code, id_token or `id_token token`."
                ),
            );
        }
        if !client.allows_response_type(&rt) {
            return fail(
                &p,
                "unauthorized_client",
                format!("This app is not registered for response_type `{rt}`."),
            );
        }
        if rt != "code" && p.response_mode == ResponseMode::Query {
            return fail(
                &p,
                "invalid_request",
                "Tokens are never sent in a query string: use response_mode fragment or form_post."
                    .into(),
            );
        }
        let scope: Vec<String> = param!("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if let Some(s) = scope.iter().find(|s| !client.has_scope(s)) {
            return fail(
                &p,
                "invalid_scope",
                format!(
                    "Scope `{s}` is not allowed for this app (allowed: {}).",
                    client.scope
                ),
            );
        }
        if rt != "code" && !scope.iter().any(|s| s == "openid") {
            return fail(
                &p,
                "invalid_scope",
                "An id_token response needs the `openid` scope.".into(),
            );
        }
        p.scope = scope;
        p.nonce = param!("nonce").map(str::to_string);
        if rt != "code" && p.nonce.is_none() {
            return fail(
                &p,
                "invalid_request",
                "The `nonce` parameter is required for implicit responses (OpenID Connect Core §3.2.2.1).".into(),
            );
        }
        let challenge = param!("code_challenge");
        let method = param!("code_challenge_method");
        match (challenge, method) {
            (None, None) => {}
            (None, Some(_)) => {
                return fail(
                    &p,
                    "invalid_request",
                    "code_challenge_method was sent without code_challenge.".into(),
                );
            }
            (Some(c), Some("S256")) => {
                if c.len() < 43 || c.len() > 128 {
                    return fail(
                        &p,
                        "invalid_request",
                        "code_challenge must be 43 to 128 characters (base64url of a SHA-256)."
                            .into(),
                    );
                }
                p.code_challenge = Some(c.to_string());
            }
            (Some(_), None | Some("plain")) => {
                return fail(
                    &p,
                    "invalid_request",
                    "PKCE method `plain` is not allowed: use code_challenge_method=S256.".into(),
                );
            }
            (Some(_), Some(m)) => {
                return fail(
                    &p,
                    "invalid_request",
                    format!("code_challenge_method `{m}` is not supported: use S256."),
                );
            }
        }
        if rt == "code" && client.app_type.is_public() && p.code_challenge.is_none() {
            return fail(
                &p,
                "invalid_request",
                "This app is public: PKCE is required (send code_challenge and code_challenge_method=S256).".into(),
            );
        }
        p.prompt = param!("prompt")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for pr in &p.prompt {
            if !matches!(pr.as_str(), "none" | "login" | "consent" | "select_account") {
                return fail(
                    &p,
                    "invalid_request",
                    format!("prompt `{pr}` is not supported: use none, login or consent."),
                );
            }
        }
        if p.prompt.iter().any(|x| x == "none") && p.prompt.len() > 1 {
            return fail(
                &p,
                "invalid_request",
                "prompt=none cannot be combined with other prompt values.".into(),
            );
        }
        if let Some(m) = param!("max_age") {
            match m.parse::<i64>() {
                Ok(v) if v >= 0 => p.max_age = Some(v),
                _ => {
                    return fail(
                        &p,
                        "invalid_request",
                        format!("max_age `{m}` is not a non-negative number of seconds."),
                    );
                }
            }
        }
        for unsupported in ["request", "request_uri"] {
            if param!(unsupported).is_some() {
                let e = if unsupported == "request" {
                    "request_not_supported"
                } else {
                    "request_uri_not_supported"
                };
                return fail(
                    &p,
                    e,
                    format!("The `{unsupported}` parameter is not supported."),
                );
            }
        }
        p.login_hint = param!("login_hint").map(str::to_string);
        p.ui_locales = param!("ui_locales").map(str::to_string);
        Ok(Ok(p))
    }

    async fn load_request(&self, id: &str) -> OpResult<Result<(Uuid, AuthParams, i64), Authorize>> {
        let expired = || {
            page_because(
                "request_expired",
                400,
                None,
                "invalid_request",
                "This sign-in request has expired or was completed already. Go back to the app and sign in again.".into(),
            )
        };
        let Ok(uuid) = Uuid::parse_str(id.trim()) else {
            return Ok(Err(expired()));
        };
        let Some((_, params, created, expires)) = self.store.op_get_request(uuid).await? else {
            return Ok(Err(expired()));
        };
        if expires < now_ms() {
            return Ok(Err(expired()));
        }
        let p: AuthParams = serde_json::from_value(params)
            .map_err(|e| OpError::server_error(format!("stored request is corrupt: {e}")))?;
        Ok(Ok((uuid, p, created)))
    }

    /// Continues a stored request after sign-in (the login flow's `return_to`).
    pub async fn resume(&self, request_id: &str, session: Option<&Session>) -> OpResult<Authorize> {
        match self.load_request(request_id).await? {
            Ok((id, p, created)) => self.proceed(id, p, created, session).await,
            Err(a) => Ok(a),
        }
    }

    fn login_url(&self, id: Uuid, p: &AuthParams, refresh: bool) -> String {
        let mut to = self
            .settings
            .public_base_url
            .join("self-service/login/browser")
            .map(|u| u.to_string())
            .unwrap_or_default();
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair(
            "return_to",
            &format!("{}/auth/resume?request={id}", self.issuer),
        );
        if refresh {
            q.append_pair("refresh", "true");
        }
        // Carried in the login flow's request_url for the hosted UI to read.
        if let Some(h) = &p.login_hint {
            q.append_pair("login_hint", h);
        }
        if let Some(l) = &p.ui_locales {
            q.append_pair("ui_locales", l);
        }
        to.push('?');
        to.push_str(&q.finish());
        to
    }

    async fn proceed(
        &self,
        id: Uuid,
        p: AuthParams,
        created: i64,
        session: Option<&Session>,
    ) -> OpResult<Authorize> {
        let Some(client) = self.client(&p.client_id).await? else {
            return Ok(page(
                400,
                None,
                "invalid_client",
                "The app of this sign-in request no longer exists.".into(),
            ));
        };
        let none = p.prompt.iter().any(|x| x == "none");
        // The user must sign in (again): with `prompt=none` that is an error for the app.
        let sign_in = |why: &str, again: bool| {
            if none {
                Authorize::Reply(error_reply(&p, &self.issuer, "login_required", why))
            } else {
                Authorize::Login {
                    to: self.login_url(id, &p, again),
                }
            }
        };
        let now = now_ms();
        let Some(session) = session else {
            return Ok(sign_in("The user is not signed in.", false));
        };
        // A sign-in made after this request satisfies both `prompt=login` and `max_age` (even
        // `max_age=0`), so coming back from the login flow never loops.
        let fresh = session.authenticated_at >= created;
        let stale_for_prompt = p.prompt.iter().any(|x| x == "login") && !fresh;
        let too_old = !fresh
            && p.max_age
                .is_some_and(|m| now - session.authenticated_at > m.saturating_mul(1000));
        if stale_for_prompt || too_old {
            return Ok(sign_in(
                "The user's sign-in is older than max_age allows.",
                true,
            ));
        }
        let identity = self.store.get_identity(session.identity_id).await?;
        if client.access == "assigned"
            && !self
                .store
                .op_is_assigned(&client.client_id, identity.id)
                .await?
        {
            let msg = format!(
                "Your account may not use the app “{}”. Ask your administrator to give you access.",
                client.client_name
            );
            let back = error_reply(&p, &self.issuer, "access_denied", &msg);
            if none {
                return Ok(Authorize::Reply(back));
            }
            return Ok(Authorize::Page(ErrorPage {
                status: 403,
                app: Some(client.client_name.clone()),
                error: "access_denied",
                reason: "not_assigned",
                message: msg,
                back: Some(back),
            }));
        }
        if let Err(missing) = self.subject_for(&client, &identity).await? {
            return Ok(page_because(
                "no_subject",
                403,
                Some(&client),
                "access_denied",
                format!(
                    "You cannot sign in to “{}”: {}. Ask the app's administrator, or link that account in your settings.",
                    client.client_name, missing.0
                ),
            ));
        }
        if !client.skip_consent {
            let granted = self
                .store
                .op_consent(&client.client_id, identity.id)
                .await?;
            let covered = granted.as_deref().is_some_and(|g| {
                let g: Vec<&str> = g.split(' ').collect();
                p.scope.iter().all(|s| g.contains(&s.as_str()))
            });
            if !covered || p.prompt.iter().any(|x| x == "consent") {
                if none {
                    return Ok(Authorize::Reply(error_reply(
                        &p,
                        &self.issuer,
                        "consent_required",
                        "The user has not consented to this app yet.",
                    )));
                }
                return Ok(Authorize::Consent {
                    request_id: id,
                    ui_locales: p.ui_locales.clone(),
                });
            }
        }
        if !self.store.op_delete_request(id).await? {
            return Ok(page(
                400,
                Some(&client),
                "invalid_request",
                "This sign-in request was completed already. Go back to the app and sign in again."
                    .into(),
            ));
        }
        self.respond(&client, &identity, session, &p)
            .await
            .map(Authorize::Reply)
    }

    /// What the consent page shows for a pending request, for a signed-in user.
    pub async fn consent_info(&self, request_id: &str) -> OpResult<Result<ConsentInfo, Authorize>> {
        let (id, p, _) = match self.load_request(request_id).await? {
            Ok(x) => x,
            Err(a) => return Ok(Err(a)),
        };
        let Some(client) = self.client(&p.client_id).await? else {
            return Ok(Err(page(
                400,
                None,
                "invalid_client",
                "The app of this sign-in request no longer exists.".into(),
            )));
        };
        Ok(Ok(ConsentInfo {
            client_name: client.client_name,
            client_id: client.client_id,
            scopes: p.scope,
            request_id: id,
            redirect_uri: p.redirect_uri,
            ui_locales: p.ui_locales,
        }))
    }

    /// The user's answer on the consent page.
    pub async fn decide_consent(
        &self,
        request_id: &str,
        session: &Session,
        accept: bool,
    ) -> OpResult<Authorize> {
        let (id, mut p, created) = match self.load_request(request_id).await? {
            Ok(x) => x,
            Err(a) => return Ok(a),
        };
        if !accept {
            if !self.store.op_delete_request(id).await? {
                return Ok(page(
                    400,
                    None,
                    "invalid_request",
                    "This sign-in request was completed already.".into(),
                ));
            }
            return Ok(Authorize::Reply(error_reply(
                &p,
                &self.issuer,
                "access_denied",
                "The user declined to share their account with the app.",
            )));
        }
        self.store
            .op_save_consent(
                &p.client_id,
                session.identity_id,
                &p.scope.join(" "),
                now_ms(),
            )
            .await?;
        // The consent asked for by `prompt=consent` has been given now.
        p.prompt.retain(|x| x != "consent");
        self.proceed(id, p, created, Some(session)).await
    }

    /// The `sub` of `identity` at `client`. `id` and `pairwise` are functions of the identity
    /// id; an expression's value is bound to the identity at its first use and kept for good
    /// (even if the value it was read from changes later), and a value another identity holds
    /// at this app is refused, so no `sub` is ever issued to two identities.
    pub async fn subject_for(
        &self,
        client: &Client,
        identity: &Identity,
    ) -> OpResult<Result<String, crate::subject::MissingSubject>> {
        let salt = self.pairwise_salt().await?;
        let sub = match crate::subject::resolve(client, identity, &salt) {
            Ok(s) => s,
            Err(missing) => return Ok(Err(missing)),
        };
        if client.subject == "id" || client.subject == "pairwise" {
            return Ok(Ok(sub));
        }
        match self
            .store
            .op_bind_subject(&client.client_id, identity.id, &sub, now_ms())
            .await?
        {
            tessera_store::op::Bound::Held(held) => Ok(Ok(held)),
            tessera_store::op::Bound::Taken => Ok(Err(crate::subject::MissingSubject(format!(
                "the identifier this app knows you by (`{}`) already belongs to another account here",
                client.subject
            )))),
        }
    }

    /// The salt of pairwise subjects, generated once per installation.
    pub async fn pairwise_salt(&self) -> OpResult<String> {
        Ok(self
            .store
            .op_meta_get_or_insert("pairwise_salt", &tessera_core::crypto::random_token())
            .await?)
    }

    /// The success answer for a request: a code, or tokens (implicit).
    async fn respond(
        &self,
        client: &Client,
        identity: &Identity,
        session: &Session,
        p: &AuthParams,
    ) -> OpResult<Reply> {
        let sub = self
            .subject_for(client, identity)
            .await?
            .map_err(|m| OpError::new("access_denied", 403, m.0))?;
        let mut params = vec![];
        if p.response_type == "code" {
            let code = self.issue_code(client, identity, session, p, &sub).await?;
            params.push(("code".to_string(), code));
        } else {
            let scopes: Vec<&str> = p.scope.iter().map(String::as_str).collect();
            let mut access = None;
            if p.response_type == "id_token token" {
                let grant_id = Uuid::new_v4().to_string();
                let (at, ttl) = self
                    .issue_access(client, Some(identity.id), &sub, &scopes, &grant_id)
                    .await?;
                params.push(("access_token".into(), at.clone()));
                params.push(("token_type".into(), "Bearer".into()));
                params.push(("expires_in".into(), ttl.to_string()));
                access = Some(at);
            }
            let id_token = self
                .id_token(crate::token::IdTokenInput {
                    client,
                    identity,
                    sub: &sub,
                    scopes: &scopes,
                    nonce: p.nonce.as_deref(),
                    auth_time: session.authenticated_at / 1000,
                    access_token: access.as_deref(),
                    sid: Some(&session.id.to_string()),
                })
                .await?;
            params.push(("id_token".into(), id_token));
            params.push(("scope".into(), p.scope.join(" ")));
        }
        if let Some(s) = &p.state {
            params.push(("state".into(), s.clone()));
        }
        params.push(("iss".into(), self.issuer.clone()));
        Ok(Reply {
            redirect_uri: p.redirect_uri.clone(),
            mode: p.response_mode,
            params,
        })
    }
}

/// Parameters of a query string or form body, keeping repeats (to refuse them).
pub fn raw_params(pairs: impl Iterator<Item = (String, String)>) -> RawParams {
    let mut out: RawParams = HashMap::new();
    for (k, v) in pairs {
        out.entry(k).or_default().push(v);
    }
    out
}
