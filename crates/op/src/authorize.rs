//! The authorization endpoint (OIDC Core §3.1.2, §3.2.2; RFC 6749 §4.1, §4.2; RFC 7636).
//!
//! Errors before the client and its redirect URI are known to be genuine (unknown client,
//! unregistered or mismatched `redirect_uri`) are shown to the user and never sent to the
//! redirect URI. Everything after that goes back to the app, with `state`, in the response mode
//! it asked for. A valid request is stored server-side (`op_requests`) and referred to by id
//! through sign-in and consent, so neither can alter it.

use crate::client::Client;
use crate::vocab::{PkceMethod, Prompt, ResponseMode, ResponseType, expected_list};
use crate::{ErrorCode, OpError, OpResult, Provider, millis, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use uuid::Uuid;

/// A validated authorization request, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthParams {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// The APIs (RFC 8707 resource indicators) the app asked access for, each checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    /// A device grant's approval (RFC 8628) rather than a redirect: the hash of the user code
    /// it approves. Such a request has no redirect URI; it ends on a page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `acr_values` as the app sent them (space-separated; see [`crate::assurance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
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
            // A `form_post` reply has no URL of its own; this is the query form, for an error
            // page's "Back to the app" link.
            ResponseMode::Query | ResponseMode::FormPost => {
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
    pub reason: PageReason,
    /// The app's name, when the app is known.
    pub app: Option<String>,
    /// The technical description, in English.
    pub message: String,
    /// Where "Back to the app" leads, carrying the error, when the app should hear of it.
    pub back: Option<Reply>,
}

/// What went wrong on an error page: it decides the page's wording and its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageReason {
    /// A malformed request (a parameter repeated or missing) or one completed already.
    InvalidRequest,
    /// No app has this `client_id`.
    UnknownApp,
    /// The app of a stored request was deleted meanwhile.
    AppGone,
    /// The `redirect_uri` is missing or not one the app registered.
    RedirectUri,
    /// The stored request expired or was completed.
    RequestExpired,
    /// The user has no `sub` at this app (or another identity holds it).
    NoSubject,
    /// The app admits assigned identities only, and this one is not.
    NotAssigned,
    /// A device's user code that is unknown, expired or decided already (RFC 8628).
    UserCode,
}

impl PageReason {
    /// The RFC 6749 / OIDC error code the page names.
    pub const fn code(self) -> ErrorCode {
        match self {
            PageReason::InvalidRequest
            | PageReason::RedirectUri
            | PageReason::RequestExpired
            | PageReason::UserCode => ErrorCode::InvalidRequest,
            PageReason::UnknownApp | PageReason::AppGone => ErrorCode::InvalidClient,
            PageReason::NoSubject | PageReason::NotAssigned => ErrorCode::AccessDenied,
        }
    }

    /// The page's reason key (the hosted UI's wording is chosen by it): the error code, or a
    /// finer reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            PageReason::InvalidRequest | PageReason::AppGone => self.code().as_str(),
            PageReason::UnknownApp => "unknown_app",
            PageReason::RedirectUri => "redirect_uri",
            PageReason::RequestExpired => "request_expired",
            PageReason::NoSubject => "no_subject",
            PageReason::NotAssigned => "not_assigned",
            PageReason::UserCode => "user_code",
        }
    }
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
    /// A device grant was decided: the page tells the user to go back to the device.
    DeviceDone {
        app: String,
        approved: bool,
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

pub(crate) fn page(reason: PageReason, app: Option<&Client>, message: String) -> Authorize {
    Authorize::Page(ErrorPage {
        reason,
        app: app.map(|c| c.client_name.clone()),
        message,
        back: None,
    })
}

fn error_reply(p: &AuthParams, issuer: &str, error: ErrorCode, description: &str) -> Reply {
    let mut params = vec![
        ("error".to_string(), error.as_str().to_string()),
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

pub(crate) fn one<'a>(raw: &'a RawParams, k: &str) -> Result<Option<&'a str>, String> {
    match raw.get(k).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([v]) if v.is_empty() => Ok(None),
        Some([v]) => Ok(Some(v.as_str())),
        Some(_) => Err(format!("The `{k}` parameter is repeated; send it once.")),
    }
}

/// The authorization request's parameters, each sent at most once (RFC 6749 §3.1).
#[derive(Debug, Default)]
struct AuthRequest<'a> {
    client_id: Option<&'a str>,
    redirect_uri: Option<&'a str>,
    response_type: Option<&'a str>,
    response_mode: Option<&'a str>,
    scope: Option<&'a str>,
    state: Option<&'a str>,
    nonce: Option<&'a str>,
    code_challenge: Option<&'a str>,
    code_challenge_method: Option<&'a str>,
    prompt: Option<&'a str>,
    max_age: Option<&'a str>,
    login_hint: Option<&'a str>,
    ui_locales: Option<&'a str>,
    acr_values: Option<&'a str>,
    request: Option<&'a str>,
    request_uri: Option<&'a str>,
    /// RFC 8707 lets `resource` repeat: one per API.
    resource: Vec<&'a str>,
}

impl<'a> AuthRequest<'a> {
    /// Takes the parameters this endpoint reads; a repeated one is refused.
    fn parse(raw: &'a RawParams) -> Result<AuthRequest<'a>, String> {
        Ok(AuthRequest {
            client_id: one(raw, "client_id")?,
            redirect_uri: one(raw, "redirect_uri")?,
            response_type: one(raw, "response_type")?,
            response_mode: one(raw, "response_mode")?,
            scope: one(raw, "scope")?,
            state: one(raw, "state")?,
            nonce: one(raw, "nonce")?,
            code_challenge: one(raw, "code_challenge")?,
            code_challenge_method: one(raw, "code_challenge_method")?,
            prompt: one(raw, "prompt")?,
            max_age: one(raw, "max_age")?,
            login_hint: one(raw, "login_hint")?,
            ui_locales: one(raw, "ui_locales")?,
            acr_values: one(raw, "acr_values")?,
            request: one(raw, "request")?,
            request_uri: one(raw, "request_uri")?,
            resource: raw
                .get("resource")
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        })
    }

    fn scopes(&self) -> impl Iterator<Item = &'a str> {
        self.scope.unwrap_or_default().split_whitespace()
    }
}

/// An app and a redirect URI it registered: from here on, errors go back to the app.
struct Target {
    client: Client,
    redirect_uri: String,
}

/// Why validation stopped: an error shown to the user, one returned to the app, or a failure
/// of the provider itself.
enum Stop {
    Page(Authorize),
    Reply(Reply),
    Failed(OpError),
}

impl From<OpError> for Stop {
    fn from(e: OpError) -> Self {
        Stop::Failed(e)
    }
}

/// Phase two: with a genuine app and redirect URI, is the request one this app may make? Every
/// refusal goes back to the app, with `state`, in the response mode it asked for.
fn decide(t: &Target, req: &AuthRequest<'_>, issuer: &str) -> Result<AuthParams, Reply> {
    let client = &t.client;
    let rt = ResponseType::parse_any_order(req.response_type.unwrap_or_default());
    // The mode errors travel in: the one asked for if it is valid, else the response type's.
    let default_mode = rt
        .as_ref()
        .map_or(ResponseMode::Fragment, |rt| rt.default_mode());
    let requested_mode = req
        .response_mode
        .map_or(Ok(default_mode), str::parse::<ResponseMode>);
    let mut p = AuthParams {
        client_id: client.client_id.clone(),
        redirect_uri: t.redirect_uri.clone(),
        // Replaced below once it is known to be valid; refusals do not read it.
        response_type: rt.clone().unwrap_or(ResponseType::Code),
        response_mode: requested_mode.clone().unwrap_or(default_mode),
        scope: vec![],
        state: req.state.map(str::to_string),
        nonce: None,
        code_challenge: None,
        prompt: vec![],
        max_age: None,
        login_hint: None,
        ui_locales: None,
        resource: vec![],
        device: None,
        acr_values: req
            .acr_values
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    };
    let fail = |p: &AuthParams, e: ErrorCode, d: String| Err(error_reply(p, issuer, e, &d));
    if let Err(e) = requested_mode {
        return fail(&p, ErrorCode::InvalidRequest, format!("{e}."));
    }
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                &p,
                ErrorCode::UnsupportedResponseType,
                format!(
                    "response_type `{}` is not supported: use {}.",
                    {
                        let mut words: Vec<&str> = e.value.split_whitespace().collect();
                        words.sort_unstable();
                        words.join(" ")
                    },
                    expected_list(&e.expected)
                ),
            );
        }
    };
    if !client.allows_response_type(rt) {
        return fail(
            &p,
            ErrorCode::UnauthorizedClient,
            format!("This app is not registered for response_type `{rt}`."),
        );
    }
    let implicit = match rt {
        ResponseType::Code => false,
        ResponseType::IdToken | ResponseType::IdTokenToken => true,
    };
    if implicit && p.response_mode == ResponseMode::Query {
        return fail(
            &p,
            ErrorCode::InvalidRequest,
            "Tokens are never sent in a query string: use response_mode fragment or form_post."
                .into(),
        );
    }
    let scope: Vec<String> = req.scopes().map(str::to_string).collect();
    if let Some(s) = scope.iter().find(|s| !client.has_scope(s)) {
        return fail(
            &p,
            ErrorCode::InvalidScope,
            format!(
                "Scope `{s}` is not allowed for this app (allowed: {}).",
                client.scope
            ),
        );
    }
    if implicit && !scope.iter().any(|s| s == "openid") {
        return fail(
            &p,
            ErrorCode::InvalidScope,
            "An id_token response needs the `openid` scope.".into(),
        );
    }
    p.scope = scope;
    p.nonce = req.nonce.map(str::to_string);
    if implicit && p.nonce.is_none() {
        return fail(
            &p,
            ErrorCode::InvalidRequest,
            "The `nonce` parameter is required for implicit responses (OpenID Connect Core §3.2.2.1).".into(),
        );
    }
    match (req.code_challenge, req.code_challenge_method) {
        (None, None) => {}
        (None, Some(_)) => {
            return fail(
                &p,
                ErrorCode::InvalidRequest,
                "code_challenge_method was sent without code_challenge.".into(),
            );
        }
        (Some(_), None | Some("plain")) => {
            return fail(
                &p,
                ErrorCode::InvalidRequest,
                "PKCE method `plain` is not allowed: use code_challenge_method=S256.".into(),
            );
        }
        (Some(c), Some(m)) => match m.parse::<PkceMethod>() {
            Ok(PkceMethod::S256) => {
                if c.len() < 43 || c.len() > 128 {
                    return fail(
                        &p,
                        ErrorCode::InvalidRequest,
                        "code_challenge must be 43 to 128 characters (base64url of a SHA-256)."
                            .into(),
                    );
                }
                p.code_challenge = Some(c.to_string());
            }
            Err(_) => {
                return fail(
                    &p,
                    ErrorCode::InvalidRequest,
                    format!("code_challenge_method `{m}` is not supported: use S256."),
                );
            }
        },
    }
    if !implicit && client.app_type.is_public() && p.code_challenge.is_none() {
        return fail(
            &p,
            ErrorCode::InvalidRequest,
            "This app is public: PKCE is required (send code_challenge and code_challenge_method=S256).".into(),
        );
    }
    for pr in req.prompt.unwrap_or_default().split_whitespace() {
        match pr.parse::<Prompt>() {
            Ok(pr) => p.prompt.push(pr),
            Err(_) => {
                return fail(
                    &p,
                    ErrorCode::InvalidRequest,
                    format!("prompt `{pr}` is not supported: use none, login or consent."),
                );
            }
        }
    }
    if p.prompt.contains(&Prompt::None) && p.prompt.len() > 1 {
        return fail(
            &p,
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other prompt values.".into(),
        );
    }
    if let Some(m) = req.max_age {
        match m.parse::<i64>() {
            Ok(v) if v >= 0 => p.max_age = Some(v),
            _ => {
                return fail(
                    &p,
                    ErrorCode::InvalidRequest,
                    format!("max_age `{m}` is not a non-negative number of seconds."),
                );
            }
        }
    }
    if req.request.is_some() {
        // Only reachable when a request object was not unpacked (it never carries another).
        return fail(
            &p,
            ErrorCode::RequestNotSupported,
            "The `request` parameter could not be used.".into(),
        );
    }
    if req.request_uri.is_some() {
        return fail(
            &p,
            ErrorCode::RequestUriNotSupported,
            "A `request_uri` is accepted only as answered by the pushed authorization request endpoint (PAR); send the request object itself in `request`, or push it.".into(),
        );
    }
    p.login_hint = req.login_hint.map(str::to_string);
    p.ui_locales = req.ui_locales.map(str::to_string);
    Ok(p)
}

impl Provider {
    /// Validates an authorization request, stores it and carries it as far as it can go with
    /// the browser's session.
    pub async fn authorize(
        &self,
        raw: &RawParams,
        session: Option<&Session>,
    ) -> OpResult<Authorize> {
        let pushed = match one(raw, "request_uri") {
            Ok(Some(uri)) if uri.starts_with(PAR_URN) => Some(uri),
            _ => None,
        };
        let p = match pushed {
            Some(uri) => match self.take_pushed(raw, uri).await? {
                Ok(p) => p,
                Err(a) => return Ok(a),
            },
            None => match self.validate(raw).await {
                Ok(p) => p,
                Err(Stop::Page(a)) => return Ok(a),
                Err(Stop::Reply(r)) => return Ok(Authorize::Reply(r)),
                Err(Stop::Failed(e)) => return Err(e),
            },
        };
        if pushed.is_none()
            && let Some(client) = self.client(&p.client_id).await?
            && client.require_pushed_authorization_requests
        {
            return Ok(Authorize::Reply(error_reply(
                &p,
                &self.issuer,
                ErrorCode::InvalidRequest,
                "This app must push its authorization requests first (RFC 9126): POST them to the pushed_authorization_request_endpoint and send the request_uri it answers.",
            )));
        }
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

    /// Validates a request in two phases: [`Provider::identify`] (errors shown to the user),
    /// then [`decide`] (errors returned to the app).
    async fn validate(&self, raw: &RawParams) -> Result<AuthParams, Stop> {
        // A signed request object (JAR) replaces the parameters beside it.
        let unpacked = self.unpack_request_object(raw).await?;
        let raw = unpacked.as_ref().unwrap_or(raw);
        let req = AuthRequest::parse(raw)
            .map_err(|m| Stop::Page(page(PageReason::InvalidRequest, None, m)))?;
        let target = self.identify(&req).await?;
        let mut p = decide(&target, &req, &self.issuer).map_err(Stop::Reply)?;
        // Each API the app names must be one it may ask for (RFC 8707 §2); refusals go back to
        // the app as `invalid_target`.
        for r in req
            .resource
            .iter()
            .filter(|r| **r != crate::membership::LOGTO_ORGANIZATIONS_RESOURCE)
        {
            match self.target_api(&target.client, r).await {
                Ok(api) => {
                    if !p.resource.contains(&api.identifier) {
                        p.resource.push(api.identifier);
                    }
                }
                Err(e) if e.code == ErrorCode::InvalidTarget => {
                    return Err(Stop::Reply(error_reply(
                        &p,
                        &self.issuer,
                        e.code,
                        &e.description,
                    )));
                }
                Err(e) => return Err(Stop::Failed(e)),
            }
        }
        Ok(p)
    }

    /// Phase one: which app asks, and is the `redirect_uri` one it registered? Until both are
    /// known to be genuine, nothing may be sent to the redirect URI, so every error here is
    /// shown to the user.
    async fn identify(&self, req: &AuthRequest<'_>) -> Result<Target, Stop> {
        let Some(client_id) = req.client_id else {
            return Err(Stop::Page(page(
                PageReason::InvalidRequest,
                None,
                "The app did not say who it is: the `client_id` parameter is missing.".into(),
            )));
        };
        let Some(client) = self.client(client_id).await? else {
            return Err(Stop::Page(page(
                PageReason::UnknownApp,
                None,
                format!(
                    "No app with client_id `{client_id}` is registered here. Ask the app's administrator to check its settings."
                ),
            )));
        };
        let refuse = |message: String| {
            Err(Stop::Page(page(
                PageReason::RedirectUri,
                Some(&client),
                message,
            )))
        };
        let redirect_uri = match (req.redirect_uri, client.redirect_uris.as_slice()) {
            (Some(r), _) => r.to_string(),
            // OAuth 2.0 lets an app with one registered URI leave it out; OpenID Connect
            // (scope `openid`) requires it (Core §3.1.2.1).
            (None, [only]) if !req.scopes().any(|x| x == "openid") => only.clone(),
            (None, [_]) => {
                return refuse(format!(
                    "The app “{}” did not send a `redirect_uri`, which OpenID Connect requires (Core §3.1.2.1): it must send the exact registered URL.",
                    client.client_name
                ));
            }
            (None, _) => {
                return refuse(format!(
                    "The app “{}” did not send a `redirect_uri`, and it has several registered: it must say which one.",
                    client.client_name
                ));
            }
        };
        if !client.redirect_uris.iter().any(|r| r == &redirect_uri) {
            return refuse(format!(
                "The app “{}” asked to send you back to `{redirect_uri}`, which is not one of its registered redirect URIs. Nothing was sent there. The app's administrator must register the exact URL.",
                client.client_name
            ));
        }
        Ok(Target {
            client,
            redirect_uri,
        })
    }

    async fn load_request(&self, id: &str) -> OpResult<Result<(Uuid, AuthParams, i64), Authorize>> {
        let expired = || {
            page(PageReason::RequestExpired, None,
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

    /// The second-factor login (Kratos's `aal=aal2`), then back to this request.
    fn step_up_url(&self, id: Uuid) -> String {
        let mut to = self
            .settings
            .serve
            .public_base_url
            .join("self-service/login/browser")
            .unwrap_or_else(|_| self.settings.serve.public_base_url.clone());
        to.query_pairs_mut().append_pair("aal", "aal2").append_pair(
            "return_to",
            &format!("{}/auth/resume?request={id}", self.issuer),
        );
        to.to_string()
    }

    fn login_url(&self, id: Uuid, p: &AuthParams, refresh: bool) -> String {
        let mut to = self
            .settings
            .serve
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

    pub(crate) async fn proceed(
        &self,
        id: Uuid,
        p: AuthParams,
        created: i64,
        session: Option<&Session>,
    ) -> OpResult<Authorize> {
        let Some(client) = self.client(&p.client_id).await? else {
            return Ok(page(
                PageReason::AppGone,
                None,
                "The app of this sign-in request no longer exists.".into(),
            ));
        };
        let none = p.prompt.contains(&Prompt::None);
        // The user must sign in (again): with `prompt=none` that is an error for the app.
        let sign_in = |why: &str, again: bool| {
            if none {
                Authorize::Reply(error_reply(&p, &self.issuer, ErrorCode::LoginRequired, why))
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
        let stale_for_prompt = p.prompt.contains(&Prompt::Login) && !fresh;
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
        // A person holding a second factor completes it when the app asks for aal2, and
        // whenever whoami would ask for it: `acr_values=aal1` lowers nothing.
        if session.authenticator_assurance_level != "aal2"
            && self.settings.mfa.holds_second_factor(&identity)
            && (crate::assurance::asks_aal2(p.acr_values.as_deref())
                || self.settings.mfa.whoami_required_aal
                    == tessera_config::RequiredAal::HighestAvailable)
        {
            if none {
                return Ok(Authorize::Reply(error_reply(
                    &p,
                    &self.issuer,
                    ErrorCode::InteractionRequired,
                    "The user must complete the second factor.",
                )));
            }
            return Ok(Authorize::Login {
                to: self.step_up_url(id),
            });
        }
        if !self.may_use(&client, identity.id).await? {
            let msg = format!(
                "Your account may not use the app “{}”. Ask your administrator to give you access.",
                client.client_name
            );
            let back = error_reply(&p, &self.issuer, ErrorCode::AccessDenied, &msg);
            if none {
                return Ok(Authorize::Reply(back));
            }
            return Ok(Authorize::Page(ErrorPage {
                reason: PageReason::NotAssigned,
                app: Some(client.client_name.clone()),
                message: msg,
                // A device request has no app to go back to.
                back: p.device.is_none().then_some(back),
            }));
        }
        if let Err(missing) = self.subject_for(&client, &identity).await? {
            return Ok(page(
                PageReason::NoSubject,
                Some(&client),
                format!(
                    "You cannot sign in to “{}”: {}. Ask the app's administrator, or link that account in your settings.",
                    client.client_name, missing.0
                ),
            ));
        }
        // A device approval is always confirmed on the consent page, even for first-party apps:
        // the code on the page may have come from someone else's device (RFC 8628 §5.4).
        if !client.skip_consent || p.device.is_some() {
            let granted = self
                .store
                .op_consent(&client.client_id, identity.id)
                .await?;
            let covered = granted.as_deref().is_some_and(|g| {
                let g: Vec<&str> = g.split(' ').collect();
                p.scope.iter().all(|s| g.contains(&s.as_str()))
            });
            if !covered || p.prompt.contains(&Prompt::Consent) {
                if none {
                    return Ok(Authorize::Reply(error_reply(
                        &p,
                        &self.issuer,
                        ErrorCode::ConsentRequired,
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
                PageReason::InvalidRequest,
                Some(&client),
                "This sign-in request was completed already. Go back to the app and sign in again."
                    .into(),
            ));
        }
        if let Some(user_code_hash) = &p.device {
            return self
                .approve_device(&client, &identity, session, &p, user_code_hash)
                .await;
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
                PageReason::AppGone,
                None,
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
                    PageReason::InvalidRequest,
                    None,
                    "This sign-in request was completed already.".into(),
                ));
            }
            if let Some(user_code_hash) = &p.device {
                return self.deny_device(&p.client_id, user_code_hash).await;
            }
            return Ok(Authorize::Reply(error_reply(
                &p,
                &self.issuer,
                ErrorCode::AccessDenied,
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
        p.prompt.retain(|x| *x != Prompt::Consent);
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
            .map_err(|m| OpError::new(crate::ErrorCode::AccessDenied, m.0))?;
        // The app will hear when this session ends (back-channel logout), with this `sub`.
        self.remember_session_app(client, session, &sub).await?;
        let mut params = vec![];
        let with_access = match p.response_type {
            ResponseType::Code => None,
            ResponseType::IdToken => Some(false),
            ResponseType::IdTokenToken => Some(true),
        };
        if let Some(with_access) = with_access {
            let scopes: Vec<&str> = p.scope.iter().map(String::as_str).collect();
            let mut access = None;
            if with_access {
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
                    acr: Some(crate::assurance::acr(session)),
                    amr: Some(&serde_json::json!(crate::assurance::amr(session))),
                })
                .await?;
            params.push(("id_token".into(), id_token));
            params.push(("scope".into(), p.scope.join(" ")));
        } else {
            let code = self.issue_code(client, identity, session, p, &sub).await?;
            params.push(("code".to_string(), code));
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

/// The `request_uri` prefix of pushed requests (RFC 9126 §2.2).
pub const PAR_URN: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request may wait for its authorization request: RFC 9126 §2.2 suggests a
/// short lifetime (its example is 60 s); the browser goes there right away.
pub const PAR_LIFETIME_SECS: i64 = 60;

/// The PAR endpoint's answer (RFC 9126 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

/// The OAuth error an authorization-endpoint refusal carries (the PAR endpoint answers it as
/// JSON instead of redirecting).
fn reply_error(r: &Reply) -> OpError {
    let get = |k: &str| {
        r.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let wire = get("error");
    let code = [
        ErrorCode::UnsupportedResponseType,
        ErrorCode::UnauthorizedClient,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidTarget,
        ErrorCode::RequestNotSupported,
        ErrorCode::RequestUriNotSupported,
    ]
    .into_iter()
    .find(|c| c.as_str() == wire)
    .unwrap_or(ErrorCode::InvalidRequest);
    OpError::new(code, get("error_description"))
}

impl Provider {
    /// The pushed authorization request endpoint (RFC 9126 §2): authenticates the app, validates
    /// the request exactly as `/oidc/auth` would (errors answered as JSON), stores it and
    /// answers a single-use, short-lived `request_uri`.
    pub async fn push_request(
        &self,
        auth: &crate::client::ClientAuth,
        raw: &RawParams,
    ) -> OpResult<Pushed> {
        let client = self.authenticate(auth).await?;
        if raw.contains_key("request_uri") {
            return Err(OpError::invalid_request(
                "A pushed request cannot itself carry a request_uri (RFC 9126 §2.1).",
            ));
        }
        let mut raw = raw.clone();
        raw.insert("client_id".into(), vec![client.client_id.clone()]);
        let p = match self.validate(&raw).await {
            Ok(p) => p,
            Err(Stop::Page(Authorize::Page(e))) => return Err(OpError::invalid_request(e.message)),
            Err(Stop::Page(_)) => {
                return Err(OpError::invalid_request("The request is not valid."));
            }
            Err(Stop::Reply(r)) => return Err(reply_error(&r)),
            Err(Stop::Failed(e)) => return Err(e),
        };
        let secret = tessera_core::crypto::random_token();
        let now = now_ms();
        let params = serde_json::to_value(&p).map_err(|e| OpError::server_error(e.to_string()))?;
        self.store
            .op_insert_par(
                &tessera_core::crypto::token_hash(&secret),
                &client.client_id,
                &params,
                now,
                now + PAR_LIFETIME_SECS * 1000,
            )
            .await?;
        Ok(Pushed {
            request_uri: format!("{PAR_URN}{secret}"),
            expires_in: PAR_LIFETIME_SECS,
        })
    }

    /// The request an authorization request's `request_uri` stands for, taken once. Only
    /// `client_id` is read besides it (RFC 9126 §4: the pushed parameters are the request).
    async fn take_pushed(
        &self,
        raw: &RawParams,
        uri: &str,
    ) -> OpResult<Result<AuthParams, Authorize>> {
        let gone = |client: Option<&Client>| {
            page(
                PageReason::RequestExpired,
                client,
                "This sign-in request (request_uri) is unknown, expired or was used already. Go back to the app and sign in again.".into(),
            )
        };
        let client_id = one(raw, "client_id").ok().flatten();
        let secret = uri.strip_prefix(PAR_URN).unwrap_or_default();
        let Some(row) = self
            .store
            .op_take_par(&tessera_core::crypto::token_hash(secret))
            .await?
        else {
            return Ok(Err(gone(None)));
        };
        if client_id != Some(row.client_id.as_str()) {
            return Ok(Err(page(
                PageReason::InvalidRequest,
                None,
                "The request_uri was pushed by another app than the client_id of this request names.".into(),
            )));
        }
        if row.expires_at < now_ms() {
            return Ok(Err(gone(None)));
        }
        let p: AuthParams = serde_json::from_value(row.params)
            .map_err(|e| OpError::server_error(format!("stored pushed request is corrupt: {e}")))?;
        Ok(Ok(p))
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
