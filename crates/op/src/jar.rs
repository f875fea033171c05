//! Signed authorization requests (JAR, RFC 9101): the app sends its authorization parameters as
//! a JWT (`request`) signed with a key whose public half it registered (`jwks`), directly or
//! inside a pushed request (PAR). Nothing in the browser's address bar can then change what
//! the app asked for (scope, redirect URI, PKCE challenge), and the request provably comes from
//! the app.
//!
//! The request object's parameters are the request (§6.3): parameters beside it are ignored,
//! except `client_id`, which must be there and agree. Unsigned (`alg: none`) and HMAC objects
//! are refused, as are objects that are expired, live longer than an hour, or are addressed to
//! another issuer. `request_uri` pointing elsewhere than a pushed request stays unsupported:
//! fetching an app-given URL from here would be a server-side request forgery waiting to happen.

use crate::assertion::ASSERTION_ALGS;
use crate::authorize::{RawParams, one};
use crate::{ErrorCode, OpError, OpResult, Provider};
use jsonwebtoken::Validation;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

/// The algorithms a request object may be signed with.
pub const REQUEST_OBJECT_ALGS: &[&str] = ASSERTION_ALGS;

/// Request objects are a few kilobytes at most; this bounds an anonymous caller's work.
const MAX_LEN: usize = 16 * 1024;

/// How far in the future a request object may expire.
const MAX_LIFETIME_S: i64 = 3600;

const LEEWAY_S: u64 = 30;

/// JWT claims of the object itself, not authorization parameters.
const ENVELOPE: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "jti", "sub"];

fn refused(why: impl std::fmt::Display) -> OpError {
    OpError::new(
        ErrorCode::InvalidRequestObject,
        format!("Request object refused: {why}"),
    )
}

impl Provider {
    /// The parameters an authorization request stands for: its request object's when it sent
    /// one (checked), `None` when it sent none. An app registered with
    /// `require_signed_request_object` must send one.
    pub(crate) async fn unpack_request_object(
        &self,
        raw: &RawParams,
    ) -> OpResult<Option<RawParams>> {
        let request = one(raw, "request").map_err(OpError::invalid_request)?;
        let client_id = one(raw, "client_id").map_err(OpError::invalid_request)?;
        let Some(jwt) = request else {
            if let Some(id) = client_id
                && let Some(client) = self.client(id).await?
                && client.require_signed_request_object
            {
                return Err(OpError::invalid_request(format!(
                    "App “{}” must send its authorization requests as signed request objects (`request`, RFC 9101).",
                    client.client_name
                )));
            }
            return Ok(None);
        };
        let Some(client_id) = client_id else {
            return Err(OpError::invalid_request(
                "A request object must come with the `client_id` parameter beside it (RFC 9101 §5).",
            ));
        };
        let Some(client) = self.client(client_id).await? else {
            // The unknown-app page says it best: pass on only the client_id.
            let mut only = RawParams::new();
            only.insert("client_id".into(), vec![client_id.to_string()]);
            return Ok(Some(only));
        };
        if jwt.len() > MAX_LEN {
            return Err(refused("it is longer than 16 KiB."));
        }
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| {
            refused(
                "it is not a signed JWT; unsigned (`alg: none`) request objects are not accepted.",
            )
        })?;
        let alg = format!("{:?}", header.alg);
        if !REQUEST_OBJECT_ALGS.contains(&alg.as_str()) {
            return Err(refused(format!(
                "its algorithm `{alg}` is not accepted; sign with one of {}.",
                REQUEST_OBJECT_ALGS.join(", ")
            )));
        }
        if let Some(want) = &client.request_object_signing_alg
            && *want != alg
        {
            return Err(refused(format!(
                "the app is registered to sign request objects with `{want}`, this one uses `{alg}`."
            )));
        }
        let set: JwkSet = client
            .jwks
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| {
                refused(format!(
                    "app `{client_id}` has registered no keys (`jwks`) to check it with."
                ))
            })?;
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_S;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.set_issuer(&[client_id]);
        v.set_audience(&[self.issuer.as_str()]);
        let (claims, last) =
            crate::assertion::verify_with_keys(&set, header.kid.as_deref(), jwt, &v);
        let Some(claims) = claims else {
            use jsonwebtoken::errors::ErrorKind as K;
            return Err(refused(match last.as_ref().map(|e| e.kind()) {
                None => format!("app `{client_id}` has no registered key that matches it."),
                Some(K::ExpiredSignature) => "it has expired (`exp`).".into(),
                Some(K::ImmatureSignature) => "it is not valid yet (`nbf`).".into(),
                Some(K::InvalidAudience) => {
                    format!("its `aud` must be this issuer, `{}`.", self.issuer)
                }
                Some(K::InvalidIssuer) => "its `iss` must be the app's client_id.".into(),
                Some(K::MissingRequiredClaim(c)) => format!("it has no `{c}` claim."),
                Some(_) => format!(
                    "its signature does not verify with the keys registered for app `{client_id}`."
                ),
            }));
        };
        let now = crate::now_ms() / 1000;
        if claims.get("exp").and_then(Value::as_i64).unwrap_or(0) - now > MAX_LIFETIME_S {
            return Err(refused("it expires more than an hour from now."));
        }
        let Some(obj) = claims.as_object() else {
            return Err(refused("its claims are not a JSON object."));
        };
        if obj
            .get("client_id")
            .is_some_and(|c| c.as_str() != Some(client_id))
        {
            return Err(refused(
                "its `client_id` differs from the one sent beside it.",
            ));
        }
        let mut params = RawParams::new();
        for (k, v) in obj {
            if ENVELOPE.contains(&k.as_str()) {
                continue;
            }
            if k == "request" || k == "request_uri" {
                return Err(refused(format!("it must not itself carry `{k}`.")));
            }
            let values = match v {
                Value::String(s) => vec![s.clone()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(items) if items.iter().all(Value::is_string) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => {
                    return Err(refused(format!(
                        "its `{k}` must be a string (or, for `resource`, a list of strings)."
                    )));
                }
            };
            params.insert(k.clone(), values);
        }
        params.insert("client_id".into(), vec![client_id.to_string()]);
        Ok(Some(params))
    }
}
