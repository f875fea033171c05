//! Typed extractors: what handlers used to look up by hand from headers, each with a rejection
//! that answers in Kratos's error shape.
//!
//! - [`Cfg`]: the configuration in force, taken once per request and shared by every extractor
//!   of that request (a reload mid-request cannot mix two configurations).
//! - [`MaybeSession`] / [`SignedIn`]: the caller's session, from `X-Session-Token`,
//!   `Authorization: Bearer` or the session cookie.
//! - [`Csrf`]: the browser's CSRF cookie, checked against forms and issued to pages.
//! - [`Negotiated`]: whether the caller wants JSON (SDKs, SPAs) or a browser answer.
//! - [`KratosQuery`] / [`KratosPath`]: `Query`/`Path` whose rejection is a Kratos 400.
//! - [`KratosBody`]: a JSON or form body, bounded, refused in Kratos's error shape.

use crate::AppState;
use crate::error::ApiError;
use crate::live::Running;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tessera_core::Error;
use tessera_core::session::Session;

/// The configuration snapshot of this request.
#[derive(Clone)]
pub struct Cfg(pub Arc<Running>);

impl Cfg {
    /// The self-service engine of this request's configuration.
    pub fn engine(&self) -> &tessera_flows::Engine {
        &self.0.engine
    }

    /// The OpenID Provider of this request's configuration.
    pub fn op(&self) -> &tessera_op::Provider {
        &self.0.op
    }
}

impl FromRequestParts<AppState> for Cfg {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Cfg>() {
            return Ok(c.clone());
        }
        let c = Cfg(st.live.running());
        parts.extensions.insert(c.clone());
        Ok(c)
    }
}

/// The caller's session, if the request carries a valid one.
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let Cfg(running) = Cfg::from_request_parts(parts, st)
            .await
            .unwrap_or_else(|never| match never {});
        let name = &running.engine.settings.session.cookie.name;
        let token = crate::http::token_in(&parts.headers, name);
        match token {
            Some(t) => Ok(MaybeSession(running.engine.session_from_token(t).await?)),
            None => Ok(MaybeSession(None)),
        }
    }
}

/// A request that must be signed in; without a valid session it is answered 401
/// (`session_inactive`), as Kratos answers.
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        match MaybeSession::from_request_parts(parts, st).await? {
            MaybeSession(Some(s)) => Ok(SignedIn(s)),
            MaybeSession(None) => Err(ApiError(Error::no_session())),
        }
    }
}

impl OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(MaybeSession::from_request_parts(parts, st)
            .await?
            .0
            .map(SignedIn))
    }
}

/// The browser's CSRF cookie (`tessera_csrf_token`). Flows hand it to the engine, which binds
/// it to the flow; the forms checked here (consent, "Sign out?") compare a submitted masked
/// token with it; pages that show a form issue one when the browser has none yet.
pub struct Csrf(pub Option<String>);

impl Csrf {
    /// The cookie's value, as the engine checks it against a flow.
    pub fn cookie(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether a form's masked token unmasks to this browser's cookie (constant time). No
    /// cookie, no match.
    pub fn matches(&self, sent: &str) -> bool {
        tessera_core::crypto::csrf_matches(sent, self.cookie().unwrap_or_default())
    }

    /// The secret to mask into a form, and the cookie to set when the browser has no usable
    /// one yet (a fresh 256-bit token, kept for a year).
    pub fn issue(&self, e: &tessera_flows::Engine) -> (String, Option<axum::http::HeaderValue>) {
        match self.cookie().filter(|v| v.len() >= 32) {
            Some(v) => (v.to_string(), None),
            None => {
                let token = tessera_core::crypto::random_token();
                let c = crate::http::set_cookie(
                    e,
                    crate::http::CSRF_COOKIE,
                    &token,
                    Some(365 * 24 * 3600),
                );
                (token, Some(c))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Csrf(
            crate::http::cookie(&parts.headers, crate::http::CSRF_COOKIE).map(str::to_string),
        ))
    }
}

/// Whether the caller asked for JSON (`Accept: application/json`); browsers get redirects and
/// pages otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub json: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Negotiated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Negotiated {
            json: crate::http::wants_json(&parts.headers),
        })
    }
}

/// A request body read as JSON or an HTML form ([`crate::http::read_body`]: size-capped,
/// bounded keys and depth), refused in Kratos's error shape.
pub struct KratosBody(pub serde_json::Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for KratosBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        crate::http::read_body(&parts.headers, body)
            .await
            .map(KratosBody)
    }
}

/// `Query<T>` answering a malformed query with a Kratos 400 that names the problem.
pub struct KratosQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for KratosQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from_str(q).map(KratosQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(q.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        ApiError(Error::bad_request(format!(
            "The query parameter `{}` is invalid: {}.",
            e.path(),
            e.inner()
        )))
    })
}

/// `Path<T>` answering a malformed path segment (an id that is not a UUID) with a Kratos 400.
/// A segment type that explains itself (the id types below) gives its own sentence; any other
/// failure names the segment and what was expected.
pub struct KratosPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for KratosPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, st).await {
            Ok(axum::extract::Path(v)) => Ok(KratosPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.into_kind() {
                ErrorKind::DeserializeError { message, .. } | ErrorKind::Message(message) => {
                    Err(ApiError(Error::bad_request(message)))
                }
                other => Err(ApiError(Error::bad_request(format!(
                    "The URL path is invalid: {other}. Use the id exactly as the API returned it."
                )))),
            },
            Err(e) => Err(ApiError(Error::bad_request(format!(
                "The URL path is invalid: {}. Use the id exactly as the API returned it.",
                e.body_text()
            )))),
        }
    }
}

/// A UUID path segment that names what it identifies, so a malformed one is refused with a
/// sentence saying which id was wrong (`` `abc` is not a valid identity id: expected a UUID
/// such as … ``). Used as `KratosPath<IdentityId>` or inside a tuple.
macro_rules! uuid_segment {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub uuid::Uuid);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                uuid::Uuid::parse_str(&s)
                    .map($name)
                    .map_err(|_| serde::de::Error::custom(Error::invalid_uuid($what, &s).reason))
            }
        }
    };
}

uuid_segment!(
    /// `{id}` of `/admin/identities/{id}` and an assignment's identity.
    IdentityId,
    "identity id"
);
uuid_segment!(
    /// `{id}` of `/admin/sessions/{id}` and `/sessions/{id}`.
    SessionId,
    "session id"
);
