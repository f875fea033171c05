//! Token exchange (RFC 8693) for service-to-service delegation: a service that received a
//! user's access token trades it at the token endpoint for a JWT access token (RFC 9068) to
//! another registered API, acting for that user.
//!
//! The rules, each a refusal with its RFC 8693 §2.2.2 / RFC 6749 §5.2 code:
//! - the app must be confidential and list the grant in its `grant_types` (an operator's
//!   decision: never a default, refused to dynamic registration) — `unauthorized_client`;
//! - `subject_token` is a live access token this server issued (opaque or JWT) or one of its
//!   id_tokens, whose account is active and, for an id_token, whose sign-in (`sid`) still runs;
//!   it must be addressed to the exchanging app: issued to it, or a JWT for an API listed in its
//!   `resources`; DPoP-bound tokens and an app's own client-credentials tokens are not
//!   exchanged. Otherwise `invalid_request`, as RFC 8693 §2.2.2 requires for a subject or actor
//!   token that is invalid or unacceptable;
//! - `actor_token` (optional) must be a live token issued to the exchanging app itself: it
//!   becomes the `act` claim (§4.1), with the subject token's own `act` nested inside;
//! - `resource` or `audience` names one registered API the app may ask for (the default API
//!   when neither is given) — `invalid_target`;
//! - `scope` only narrows: every scope must be in the subject token, allowed to the app and
//!   defined by the API (with the API's role-based scopes applied to the user) —
//!   `invalid_scope`.
//!
//! The issued token joins the subject token's grant (`grant_id`), so revoking that sign-in
//! revokes the exchanged tokens too; it is stored by hash like every user's JWT, so
//! introspection and revocation answer truthfully.

use crate::client::Client;
use crate::token::{TokenResponse, token_type};
use crate::{ErrorCode, OpError, OpResult, Provider, now_ms};
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::crypto;
use tessera_store::op::GrantRow;
use uuid::Uuid;

/// `urn:ietf:params:oauth:token-type:access_token` (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// `urn:ietf:params:oauth:token-type:id_token` (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The token types accepted as `subject_token_type` and `actor_token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    AccessToken,
    IdToken,
}

impl TokenType {
    fn parse(field: &str, v: &str) -> OpResult<TokenType> {
        match v {
            ACCESS_TOKEN_TYPE => Ok(TokenType::AccessToken),
            ID_TOKEN_TYPE => Ok(TokenType::IdToken),
            other => Err(OpError::invalid_request(format!(
                "`{field}` `{other}` is not supported: use {ACCESS_TOKEN_TYPE} (an access token this server issued) or {ID_TOKEN_TYPE} (one of its id_tokens)."
            ))),
        }
    }
}

/// A subject or actor token that passed its checks.
struct Checked {
    /// The account it acts for; `None` for an app's own (client credentials) token.
    identity: Option<Uuid>,
    /// The app it was issued to.
    client_id: String,
    /// Its `sub` as issued.
    sub: String,
    /// The scopes it carries (none for an id_token).
    scopes: Vec<String>,
    /// Its sign-in's grant, when it belongs to one.
    grant_id: Option<String>,
    auth_time: Option<i64>,
    /// The API of a JWT access token.
    resource: Option<String>,
    /// Its own `act` claim (a token that was exchanged already).
    act: Option<Value>,
}

/// Why a token of a deactivated or deleted account is refused.
const GONE: &str = "belongs to an account that is deactivated or no longer exists.";

/// A refusal of `field`'s token (RFC 8693 §2.2.2: `invalid_request`).
fn refused(field: &str, why: &str) -> OpError {
    OpError::invalid_request(format!("`{field}` {why}"))
}

impl Provider {
    /// Whether some app may use token exchange (discovery lists the grant only then); known
    /// for [`crate::client::CLIENT_CACHE_TTL`], or until an app changes through this process.
    pub async fn token_exchange_enabled(&self) -> OpResult<bool> {
        if let Some(known) = self.clients.token_exchange() {
            return Ok(known);
        }
        let any = self
            .list_clients()
            .await?
            .iter()
            .any(|(c, _)| c.allows_grant(crate::GrantType::TokenExchange));
        self.clients.put_token_exchange(any);
        Ok(any)
    }

    /// The token-exchange grant (RFC 8693 §2.1), for an app already authenticated and allowed
    /// the grant by the token endpoint.
    pub(crate) async fn token_exchange(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let subject_token = get("subject_token").ok_or_else(|| {
            OpError::invalid_request(
                "The `subject_token` parameter is missing: send the user's access token (or id_token) to exchange.",
            )
        })?;
        let subject_type = get("subject_token_type").ok_or_else(|| {
            OpError::invalid_request(format!(
                "The `subject_token_type` parameter is missing: use {ACCESS_TOKEN_TYPE} or {ID_TOKEN_TYPE}."
            ))
        })?;
        let subject_type = TokenType::parse("subject_token_type", subject_type)?;
        if let Some(t) = get("requested_token_type")
            && t != ACCESS_TOKEN_TYPE
        {
            return Err(OpError::invalid_request(format!(
                "`requested_token_type` `{t}` is not issued here: token exchange issues access tokens ({ACCESS_TOKEN_TYPE})."
            )));
        }
        let actor = match (get("actor_token"), get("actor_token_type")) {
            (None, None) => None,
            (Some(t), Some(ty)) => Some((t, TokenType::parse("actor_token_type", ty)?)),
            (Some(_), None) => {
                return Err(OpError::invalid_request(
                    "`actor_token_type` is missing: it is required with `actor_token` (RFC 8693 §2.1).",
                ));
            }
            (None, Some(_)) => {
                return Err(OpError::invalid_request(
                    "`actor_token_type` was sent without `actor_token`; send both or neither.",
                ));
            }
        };
        // The target first: an app that names the wrong API learns it before its tokens are
        // looked at.
        let api = match (get("resource"), get("audience")) {
            (Some(r), Some(a)) if r != a => {
                return Err(OpError::new(
                    ErrorCode::InvalidTarget,
                    "`resource` and `audience` name different APIs; an exchanged token is for one API: send one of them.",
                ));
            }
            (Some(t), _) | (None, Some(t)) => self.target_api(client, t).await?,
            (None, None) => self.default_api().await?.ok_or_else(|| {
                OpError::new(
                    ErrorCode::InvalidTarget,
                    "Name the API the exchanged token is for with `resource` (or `audience`): there is no default API.",
                )
            })?,
        };

        let subject = self
            .checked_token("subject_token", subject_token, subject_type)
            .await?;
        let addressed = subject.client_id == client.client_id
            || subject
                .resource
                .as_ref()
                .is_some_and(|r| client.resources.iter().any(|x| x == r));
        if !addressed {
            return Err(refused(
                "subject_token",
                "is not addressed to this app: an app exchanges only tokens issued to it, or access tokens for an API listed in its `resources` (the API it serves).",
            ));
        }
        let Some(identity) = subject.identity else {
            return Err(refused(
                "subject_token",
                "was issued to an app for itself (client credentials); token exchange acts for a user.",
            ));
        };
        if !self.may_use(client, identity).await? {
            return Err(refused(
                "subject_token",
                "belongs to an account that may not use this app (its access rules).",
            ));
        }
        let identity = self
            .usable_identity(identity)
            .await
            .map_err(|_| refused("subject_token", GONE))?;

        let act = match actor {
            None => subject.act.clone(),
            Some((token, ty)) => {
                let a = self.checked_token("actor_token", token, ty).await?;
                if a.client_id != client.client_id {
                    return Err(refused(
                        "actor_token",
                        "was issued to another app: an app can only name itself as the actor.",
                    ));
                }
                let mut act = json!({"sub": a.sub});
                if let Some(prior) = &subject.act {
                    act["act"] = prior.clone();
                }
                Some(act)
            }
        };

        // Scopes only narrow: those of the subject token, allowed to the app, defined by the API.
        let granted: Vec<&str> = subject.scopes.iter().map(String::as_str).collect();
        let scopes: Vec<&str> = match get("scope") {
            Some(asked) => {
                let asked: Vec<&str> = asked.split_whitespace().collect();
                for x in &asked {
                    if !granted.contains(x) {
                        return Err(OpError::invalid_scope(format!(
                            "Scope `{x}` is not in the subject token (it carries: {}); an exchanged token can only narrow it.",
                            if granted.is_empty() {
                                "no scopes".to_string()
                            } else {
                                granted.join(" ")
                            }
                        )));
                    }
                    if !client.has_scope(x) {
                        return Err(OpError::invalid_scope(format!(
                            "Scope `{x}` is not allowed for this app (add it to the app's `scope`)."
                        )));
                    }
                    if !api.defines(x) {
                        return Err(OpError::invalid_scope(format!(
                            "Scope `{x}` is not defined by the API `{}` (it defines: {}).",
                            api.identifier,
                            api.scopes.join(" ")
                        )));
                    }
                }
                asked
            }
            None => granted
                .iter()
                .copied()
                .filter(|s| client.has_scope(s) && api.defines(s))
                .collect(),
        };
        let scopes = if api.role_scopes.is_empty() {
            api.token_scopes(&scopes)
        } else {
            api.user_token_scopes(&scopes, &self.user_roles(client, identity.id).await?)
        };

        let sub = self
            .subject_for(client, &identity)
            .await?
            .map_err(|m| refused("subject_token", &format!("cannot be exchanged: {}", m.0)))?;
        let (jwt, ttl, scope) = self
            .jwt_access(
                &api,
                client,
                &sub,
                scopes,
                subject.auth_time,
                jkt,
                act.as_ref(),
            )
            .await?;
        let now = now_ms();
        let mut data = json!({"scope": scope, "sub": sub, "resource": api.identifier});
        if let Some(jkt) = jkt {
            data["jkt"] = json!(jkt);
        }
        let row = GrantRow {
            hash: crypto::token_hash(&jwt),
            kind: "access".into(),
            // The subject's sign-in: revoking it revokes what was exchanged from it.
            grant_id: subject
                .grant_id
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            client_id: client.client_id.clone(),
            identity_id: Some(identity.id),
            data,
            used: false,
            revoked: false,
            created_at: now,
            expires_at: now + ttl * 1000,
        };
        if !self.store.op_insert_tokens(&[row]).await? {
            return Err(refused(
                "subject_token",
                "was revoked (its sign-in ended) while it was exchanged.",
            ));
        }
        Ok(TokenResponse {
            access_token: jwt,
            token_type: token_type(jkt),
            expires_in: ttl,
            refresh_token: None,
            id_token: None,
            scope,
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
        })
    }

    /// Checks a subject or actor token of type `ty`: issued here, live, its account active.
    async fn checked_token(&self, field: &str, token: &str, ty: TokenType) -> OpResult<Checked> {
        match ty {
            TokenType::AccessToken => {
                let row = self
                    .lookup_token(token)
                    .await?
                    .filter(|r| r.kind == "access")
                    .ok_or_else(|| {
                        refused(field, "is not an access token issued by this server.")
                    })?;
                if row.revoked {
                    return Err(refused(field, "was revoked."));
                }
                if row.expires_at <= now_ms() {
                    return Err(refused(field, "has expired."));
                }
                if row.data.get("jkt").and_then(Value::as_str).is_some() {
                    return Err(refused(
                        field,
                        "is bound to a DPoP key (RFC 9449): only its holder may present it, so it is not exchanged.",
                    ));
                }
                if let Some(id) = row.identity_id {
                    self.usable_identity(id)
                        .await
                        .map_err(|_| refused(field, GONE))?;
                }
                // A JWT's own claims: when the sign-in happened, and who acted before.
                let claims = if token.split('.').count() == 3 {
                    self.verify_access_jwt(token).await?
                } else {
                    None
                };
                let claim = |k: &str| claims.as_ref().and_then(|c| c.get(k)).cloned();
                let s = |k: &str| row.data.get(k).and_then(Value::as_str).map(str::to_string);
                Ok(Checked {
                    identity: row.identity_id,
                    client_id: row.client_id.clone(),
                    sub: s("sub").unwrap_or_default(),
                    scopes: s("scope")
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                    grant_id: Some(row.grant_id.clone()).filter(|g| !g.is_empty()),
                    auth_time: claim("auth_time").and_then(|v| v.as_i64()),
                    resource: s("resource"),
                    act: claim("act").filter(Value::is_object),
                })
            }
            TokenType::IdToken => {
                let claims = self
                    .verify_own(token)
                    .await?
                    .ok_or_else(|| refused(field, "is not an id_token issued by this server."))?;
                let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
                if exp * 1000 <= now_ms() {
                    return Err(refused(field, "has expired."));
                }
                let aud = match claims.get("aud") {
                    Some(Value::String(a)) => a.clone(),
                    Some(Value::Array(a)) if a.len() == 1 => {
                        a[0].as_str().unwrap_or_default().to_string()
                    }
                    _ => return Err(refused(field, "has no single audience.")),
                };
                // The id_token names its sign-in; the sign-in must still be running, so a
                // signed-out or revoked session's id_tokens exchange nothing.
                let session = match claims
                    .get("sid")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    Some(sid) => self.store.get_session(sid).await.ok(),
                    None => None,
                }
                .filter(|s| s.active && s.is_valid_at(now_ms()))
                .ok_or_else(|| {
                    refused(
                        field,
                        "belongs to a sign-in that has ended (or names none).",
                    )
                })?;
                self.usable_identity(session.identity_id)
                    .await
                    .map_err(|_| refused(field, GONE))?;
                Ok(Checked {
                    identity: Some(session.identity_id),
                    client_id: aud,
                    sub: claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    scopes: vec![],
                    grant_id: None,
                    auth_time: claims.get("auth_time").and_then(Value::as_i64),
                    resource: None,
                    act: None,
                })
            }
        }
    }
}
