//! Codes, tokens and the token-side endpoints: the token endpoint's grants (authorization code
//! with PKCE, refresh token with rotation and reuse detection, client credentials), id_tokens,
//! userinfo, revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Access tokens are opaque to apps. Those issued to users are 256 random bits of which only the
//! SHA-256 is stored: a lookup by hash answers userinfo and introspection, and revocation
//! (including a whole family) takes effect at once on every instance. Every token issued from one
//! authorization shares a `grant_id`: a replayed code or a reused refresh token revokes the whole
//! family.
//!
//! Client-credentials tokens (an app acting as itself; no user, no family) are self-contained
//! instead: `tcc1.<payload>.<HMAC-SHA256>` under a key derived from `secrets.cipher`, so issuing
//! one writes nothing. Introspection and userinfo check the MAC and expiry, that the app still
//! exists, and that the token is not on the revocation list (`op_tokens` rows marked revoked, by
//! hash), so revocation is as immediate as for stored tokens.

use crate::api::Api;
use crate::client::{Client, ClientAuth};
use crate::dpop::{DpopRequest, Presented};
use crate::vocab::{GrantType, expected_list};
use crate::{ErrorCode, OpError, OpResult, Provider, millis, now_ms};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tessera_core::crypto;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_store::op::{GrantRow, Taken};
use uuid::Uuid;

/// The token endpoint's success answer (RFC 6749 §5.1; `expires_in` an integer).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// What a token exchange issued (RFC 8693 §2.2.1); absent for the other grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

pub struct IdTokenInput<'a> {
    pub client: &'a Client,
    pub identity: &'a Identity,
    pub sub: &'a str,
    pub scopes: &'a [&'a str],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub access_token: Option<&'a str>,
    pub sid: Option<&'a str>,
    /// The session's level and methods ([`crate::assurance`]): `acr` and `amr`. Absent in
    /// grants made before they were recorded.
    pub acr: Option<&'a str>,
    pub amr: Option<&'a Value>,
}

/// The grants the token endpoint redeems ([`GrantType::TOKEN_ENDPOINT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenGrant {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    DeviceCode,
    TokenExchange,
}

impl TokenGrant {
    /// `None` for the implicit grant, which only the authorization endpoint answers.
    const fn of(g: GrantType) -> Option<TokenGrant> {
        match g {
            GrantType::AuthorizationCode => Some(TokenGrant::AuthorizationCode),
            GrantType::RefreshToken => Some(TokenGrant::RefreshToken),
            GrantType::ClientCredentials => Some(TokenGrant::ClientCredentials),
            GrantType::DeviceCode => Some(TokenGrant::DeviceCode),
            GrantType::TokenExchange => Some(TokenGrant::TokenExchange),
            GrantType::Implicit => None,
        }
    }
    const fn grant_type(self) -> GrantType {
        match self {
            TokenGrant::AuthorizationCode => GrantType::AuthorizationCode,
            TokenGrant::RefreshToken => GrantType::RefreshToken,
            TokenGrant::ClientCredentials => GrantType::ClientCredentials,
            TokenGrant::DeviceCode => GrantType::DeviceCode,
            TokenGrant::TokenExchange => GrantType::TokenExchange,
        }
    }
}

/// Claims an app's claims mapper may not set.
const PROTECTED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "auth_time",
    "nonce",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "acr",
    "amr",
    "jti",
];

/// The resources (API identifiers) an authorization request named, as kept in a code's or a
/// refresh token's data.
fn grant_resources(d: &Value) -> Vec<String> {
    d.get("resource")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Prefix of self-contained client-credentials access tokens.
const CC_PREFIX: &str = "tcc1.";

/// MAC keys for client-credentials tokens, one per `secrets.cipher` entry (the first signs).
pub fn derive_keys(secrets: &[String]) -> Vec<[u8; 32]> {
    secrets
        .iter()
        .filter_map(|s| {
            let mut mac = Hmac::<Sha256>::new_from_slice(s.as_bytes()).ok()?;
            mac.update(b"tessera/op/client-credentials-access-token/v1");
            Some(mac.finalize().into_bytes().into())
        })
        .collect()
}

pub(crate) fn cc_mac(key: &[u8; 32], payload: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn half_hash(v: &str) -> String {
    let d = Sha256::digest(v.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    valid
        && crypto::constant_time_eq(
            &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            challenge,
        )
}

/// `token_type` of an access token: `DPoP` when bound to a key (RFC 9449 §5).
pub(crate) fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() { "DPoP" } else { "Bearer" }
}

/// A fresh secret (code or token) of `kind` and the row that stores it: only its hash, unused,
/// unrevoked, living `lifespan` from now.
fn new_grant_row(
    kind: &str,
    client: &Client,
    identity: Option<Uuid>,
    data: Value,
    grant_id: &str,
    lifespan: std::time::Duration,
) -> (String, GrantRow) {
    let secret = crypto::random_token();
    let now = now_ms();
    let row = GrantRow {
        hash: crypto::token_hash(&secret),
        kind: kind.into(),
        grant_id: grant_id.to_string(),
        client_id: client.client_id.clone(),
        identity_id: identity,
        data,
        used: false,
        revoked: false,
        created_at: now,
        expires_at: now + millis(lifespan),
    };
    (secret, row)
}

impl Provider {
    pub(crate) async fn issue_code(
        &self,
        client: &Client,
        identity: &Identity,
        session: &Session,
        p: &crate::AuthParams,
        sub: &str,
    ) -> OpResult<String> {
        let (code, _) = self
            .issue_code_for(client, identity, session, p, sub, self.op().code_lifespan)
            .await?;
        Ok(code)
    }

    /// Stores an authorization code living `lifespan` (a device grant's code lives as long as
    /// its device code); returns the code and its hash.
    pub(crate) async fn issue_code_for(
        &self,
        client: &Client,
        identity: &Identity,
        session: &Session,
        p: &crate::AuthParams,
        sub: &str,
        lifespan: std::time::Duration,
    ) -> OpResult<(String, String)> {
        let (code, row) = new_grant_row(
            "code",
            client,
            Some(identity.id),
            json!({
                "redirect_uri": p.redirect_uri,
                "scope": p.scope.join(" "),
                "nonce": p.nonce,
                "code_challenge": p.code_challenge,
                "auth_time": session.authenticated_at / 1000,
                "sid": session.id.to_string(),
                "acr": crate::assurance::acr(session),
                "amr": crate::assurance::amr(session),
                "sub": sub,
                "resource": p.resource,
            }),
            &Uuid::new_v4().to_string(),
            lifespan,
        );
        self.store.op_insert_code(&row).await?;
        Ok((code, row.hash))
    }

    /// Issues an opaque access token; returns it and its lifetime in seconds.
    pub(crate) async fn issue_access(
        &self,
        client: &Client,
        identity: Option<Uuid>,
        sub: &str,
        scopes: &[&str],
        grant_id: &str,
    ) -> OpResult<(String, i64)> {
        let (token, row) = self.access_row(client, identity, sub, scopes, grant_id, None);
        let ttl = (row.expires_at - row.created_at) / 1000;
        // A fresh grant (implicit flow): nothing can have revoked it yet.
        self.store.op_insert_tokens(&[row]).await?;
        Ok((token, ttl))
    }

    fn access_row(
        &self,
        client: &Client,
        identity: Option<Uuid>,
        sub: &str,
        scopes: &[&str],
        grant_id: &str,
        jkt: Option<&str>,
    ) -> (String, GrantRow) {
        let mut data = json!({"scope": scopes.join(" "), "sub": sub});
        if let Some(jkt) = jkt {
            data["jkt"] = json!(jkt);
        }
        new_grant_row(
            "access",
            client,
            identity,
            data,
            grant_id,
            self.op().access_token_lifespan,
        )
    }

    /// The API an access token is for (RFC 8707), or `None` for an opaque token (userinfo).
    /// `granted` is the grant's resources from the authorization request (user grants), `None`
    /// for client credentials. A `resource` named at the token endpoint must be one of the
    /// grant's when the authorization request named any (the token narrows, never widens the
    /// grant, §2.2); without one, the default API applies when the authorization named none.
    async fn token_target(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        granted: Option<&[String]>,
    ) -> OpResult<Option<Api>> {
        if form.contains_key("organization_id")
            || form.get("resource").map(String::as_str)
                == Some(crate::membership::LOGTO_ORGANIZATIONS_RESOURCE)
        {
            return Err(OpError::new(
                ErrorCode::InvalidTarget,
                "Logto organization tokens (`organization_id`, `urn:logto:resource:organizations`) are not issued here: read the `organizations` and `organization_roles` claims from the id_token or userinfo instead.",
            ));
        }
        let asked = form.get("resource").filter(|r| !r.is_empty());
        match (asked, granted) {
            (Some(r), Some(list)) if !list.is_empty() && !list.iter().any(|g| g == r) => {
                Err(OpError::new(
                    ErrorCode::InvalidTarget,
                    format!(
                        "resource `{r}` was not requested in the authorization request (it named {}); a token can only be for one of those.",
                        list.join(", ")
                    ),
                ))
            }
            (Some(r), _) => Ok(Some(self.target_api(client, r).await?)),
            (None, Some(list)) if !list.is_empty() => Ok(None),
            (None, _) => self.default_api().await,
        }
    }

    /// A JWT access token for `api` (RFC 9068): `typ` `at+jwt`, `aud` the API, `scope` the
    /// token's scopes (decided by the caller), signed like id_tokens so the API verifies it
    /// from the JWKS. Returns the token, its lifetime (s) and its scope.
    /// `act` is the acting party of a token exchange (RFC 8693 §4.1).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn jwt_access(
        &self,
        api: &Api,
        client: &Client,
        sub: &str,
        scopes: Vec<String>,
        auth_time: Option<i64>,
        jkt: Option<&str>,
        act: Option<&Value>,
    ) -> OpResult<(String, i64, String)> {
        let now = now_ms() / 1000;
        let scope = scopes.join(" ");
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(api.identifier));
        claims.insert("client_id".into(), json!(client.client_id));
        if !scope.is_empty() {
            claims.insert("scope".into(), json!(scope));
        }
        claims.insert("jti".into(), json!(&crypto::random_token()[..22]));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + api.access_token_ttl));
        if let Some(t) = auth_time {
            claims.insert("auth_time".into(), json!(t));
        }
        // A DPoP-bound token names its key (RFC 9449 §6.1), so an API can demand the proof.
        if let Some(jkt) = jkt {
            claims.insert("cnf".into(), json!({"jkt": jkt}));
        }
        if let Some(act) = act {
            claims.insert("act".into(), act.clone());
        }
        let jwt = self
            .sign_typed(
                &Value::Object(claims),
                Some("at+jwt"),
                Some(api.signing_alg),
            )
            .await?;
        Ok((jwt, api.access_token_ttl, scope))
    }

    /// A user's access token: a JWT for `api` (stored by hash like an opaque one, so
    /// introspection and revocation of its grant answer truthfully), or an opaque token.
    /// Returns the token, its row, its lifetime (s) and its scope.
    #[allow(clippy::too_many_arguments)]
    async fn user_access(
        &self,
        api: Option<&Api>,
        client: &Client,
        identity: Uuid,
        sub: &str,
        scopes: &[&str],
        auth_time: Option<i64>,
        grant_id: &str,
        jkt: Option<&str>,
    ) -> OpResult<(String, GrantRow, i64, String)> {
        let Some(api) = api else {
            let (token, row) = self.access_row(client, Some(identity), sub, scopes, grant_id, jkt);
            let ttl = (row.expires_at - row.created_at) / 1000;
            return Ok((token, row, ttl, scopes.join(" ")));
        };
        // Role-based access control: the scopes the user's app and organization roles grant,
        // decided again at every refresh.
        let token_scopes = if api.role_scopes.is_empty() {
            api.token_scopes(scopes)
        } else {
            api.user_token_scopes(scopes, &self.user_roles(client, identity).await?)
        };
        let (jwt, ttl, scope) = self
            .jwt_access(api, client, sub, token_scopes, auth_time, jkt, None)
            .await?;
        let now = now_ms();
        let row = GrantRow {
            hash: crypto::token_hash(&jwt),
            kind: "access".into(),
            grant_id: grant_id.to_string(),
            client_id: client.client_id.clone(),
            identity_id: Some(identity),
            data: match jkt {
                Some(jkt) => {
                    json!({"scope": scope, "sub": sub, "resource": api.identifier, "jkt": jkt})
                }
                None => json!({"scope": scope, "sub": sub, "resource": api.identifier}),
            },
            used: false,
            revoked: false,
            created_at: now,
            expires_at: now + ttl * 1000,
        };
        Ok((jwt, row, ttl, scope))
    }

    fn refresh_row(
        &self,
        client: &Client,
        identity: Uuid,
        data: Value,
        grant_id: &str,
    ) -> (String, GrantRow) {
        new_grant_row(
            "refresh",
            client,
            Some(identity),
            data,
            grant_id,
            self.op().refresh_token_lifespan,
        )
    }

    /// An app's claims mapper, compiled once per source.
    fn claims_mapper(&self, client_id: &str, source: &str) -> OpResult<tessera_mapper::Mapper> {
        let key = crypto::token_hash(source);
        if let Ok(cache) = self.mapper_cache.lock()
            && let Some(m) = cache.get(&key)
        {
            return Ok(m.clone());
        }
        let compiled =
            tessera_mapper::Mapper::compile(&format!("claims mapper of app {client_id}"), source)
                .map_err(|e| OpError::server_error(format!("claims mapper: {e}")))?;
        if let Ok(mut cache) = self.mapper_cache.lock() {
            if cache.len() > 1000 {
                cache.clear();
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// A signed id_token (OIDC Core §2): `aud` is the client id as a plain string.
    pub async fn id_token(&self, t: IdTokenInput<'_>) -> OpResult<String> {
        let now = now_ms() / 1000;
        let mut claims = Map::new();
        let memberships =
            if t.client.claims_mapper.is_some() || crate::membership::wants_memberships(t.scopes) {
                Some(self.memberships(t.client, t.identity.id).await?)
            } else {
                None
            };
        if let Some(mapper) = &t.client.claims_mapper {
            let compiled = self.claims_mapper(&t.client.client_id, mapper)?;
            let mut input = crate::subject::mapper_input(t.client, t.identity, t.sub, t.scopes);
            if let (Some(m), Some(o)) = (&memberships, input.as_object_mut()) {
                o.extend(m.mapper_view());
            }
            let out = self
                .mappers
                .evaluate(&compiled, &input)
                .await
                .map_err(|e| {
                    OpError::server_error(format!(
                        "the claims mapper of app `{}` failed: {e}",
                        t.client.client_id
                    ))
                })?;
            let extra = out.get("claims").cloned().unwrap_or(out);
            if let Value::Object(m) = extra {
                for (k, v) in m {
                    if !PROTECTED.contains(&k.as_str()) {
                        claims.insert(k, v);
                    }
                }
            }
        }
        claims.extend(crate::subject::scope_claims(t.identity, t.scopes));
        if let Some(m) = &memberships {
            claims.extend(m.claims(t.scopes, true));
        }
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(t.sub));
        claims.insert("aud".into(), json!(t.client.client_id));
        claims.insert("azp".into(), json!(t.client.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert(
            "exp".into(),
            json!(now + millis(self.op().id_token_lifespan) / 1000),
        );
        claims.insert("auth_time".into(), json!(t.auth_time));
        if let Some(n) = t.nonce {
            claims.insert("nonce".into(), json!(n));
        }
        if let Some(at) = t.access_token {
            claims.insert("at_hash".into(), json!(half_hash(at)));
        }
        if let Some(sid) = t.sid {
            claims.insert("sid".into(), json!(sid));
        }
        if let Some(acr) = t.acr {
            claims.insert("acr".into(), json!(acr));
        }
        if let Some(amr) = t.amr.filter(|a| a.is_array()) {
            claims.insert("amr".into(), amr.clone());
        }
        self.sign(&Value::Object(claims)).await
    }

    /// The token endpoint (RFC 6749 §3.2). `form` is the request body.
    pub async fn token(
        &self,
        auth: &ClientAuth,
        form: &HashMap<String, String>,
    ) -> OpResult<TokenResponse> {
        self.token_dpop(
            auth,
            form,
            DpopRequest {
                proof: None,
                method: "POST",
            },
        )
        .await
    }

    /// The token endpoint, with the request's DPoP proof (if any): the tokens it issues are
    /// then bound to the proof's key.
    pub async fn token_dpop(
        &self,
        auth: &ClientAuth,
        form: &HashMap<String, String>,
        dpop: DpopRequest<'_>,
    ) -> OpResult<TokenResponse> {
        let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
        if grant_type.is_empty() {
            return Err(OpError::invalid_request(
                "The `grant_type` parameter is missing.",
            ));
        }
        let unsupported = || {
            OpError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type `{grant_type}` is not supported: use {}.",
                    expected_list(&GrantType::strs(GrantType::TOKEN_ENDPOINT))
                ),
            )
        };
        let grant = grant_type
            .parse::<GrantType>()
            .ok()
            .and_then(TokenGrant::of)
            .ok_or_else(unsupported)?;
        // The proof first: a nonce round trip then costs the app no client assertion.
        let jkt = self.token_binding(dpop).await?;
        let client = self.authenticate(auth).await?;
        if client.dpop_bound_access_tokens && jkt.is_none() {
            return Err(OpError::invalid_request(
                "This app is registered with `dpop_bound_access_tokens`: send a DPoP proof (the `DPoP` header, RFC 9449).",
            ));
        }
        let jkt = jkt.as_deref();
        if !client.allows_grant(grant.grant_type()) {
            return Err(OpError::unauthorized_client(format!(
                "This app is not registered for the `{grant_type}` grant."
            )));
        }
        let issued = match grant {
            TokenGrant::AuthorizationCode => self.exchange_code(&client, form, jkt).await,
            TokenGrant::RefreshToken => self.refresh(&client, form, jkt).await,
            TokenGrant::ClientCredentials => self.client_credentials(&client, form, jkt).await,
            TokenGrant::DeviceCode => self.device_token(&client, form, jkt).await,
            TokenGrant::TokenExchange => self.token_exchange(&client, form, jkt).await,
        }?;
        metrics::counter!("tessera_op_tokens_issued_total", "grant_type" => grant.grant_type().as_str())
            .increment(1);
        Ok(issued)
    }

    async fn exchange_code(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let code = form
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OpError::invalid_request("The `code` parameter is missing."))?;
        let row = match self.store.op_take_code(&crypto::token_hash(code)).await? {
            Taken::Fresh(row) => row,
            Taken::Replayed(used) => {
                // A replay: someone holds a copy of the code. Revoke what it gave (RFC 6749
                // §4.1.2, OAuth 2.0 Security BCP).
                let n = self.store.op_revoke_grant(&used.grant_id).await?;
                tracing::warn!(client_id = %used.client_id, revoked = n, "authorization code reused; its tokens were revoked");
                return Err(OpError::invalid_grant(
                    "The authorization code was used already; the tokens issued from it have been revoked.",
                ));
            }
            Taken::Unknown => {
                return Err(OpError::invalid_grant(
                    "The authorization code is not valid.",
                ));
            }
        };
        if row.client_id != client.client_id {
            return Err(OpError::invalid_grant(
                "The authorization code was issued to another client.",
            ));
        }
        if row.expires_at < now_ms() {
            return Err(OpError::invalid_grant(
                "The authorization code has expired.",
            ));
        }
        let d = &row.data;
        let s = |k: &str| d.get(k).and_then(Value::as_str);
        if form.get("redirect_uri").map(String::as_str) != s("redirect_uri") {
            return Err(OpError::invalid_grant(
                "redirect_uri does not match the one of the authorization request.",
            ));
        }
        match (s("code_challenge"), form.get("code_verifier")) {
            (Some(ch), Some(v)) if pkce_ok(v, ch) => {}
            (Some(_), Some(_)) => {
                return Err(OpError::invalid_grant(
                    "code_verifier does not match the code_challenge.",
                ));
            }
            (Some(_), None) => {
                return Err(OpError::invalid_grant(
                    "code_verifier is missing (the request used PKCE).",
                ));
            }
            (None, Some(_)) => {
                return Err(OpError::invalid_grant(
                    "code_verifier was sent but the authorization request had no code_challenge.",
                ));
            }
            (None, None) if client.app_type.is_public() => {
                return Err(OpError::invalid_grant("PKCE is required for public apps."));
            }
            (None, None) => {}
        }
        self.tokens_for_code(client, &row, form, jkt).await
    }

    /// The tokens an authorization code gives, once it is redeemed and its checks passed (the
    /// code flow's, or a device grant's approval).
    pub(crate) async fn tokens_for_code(
        &self,
        client: &Client,
        row: &GrantRow,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let d = &row.data;
        let s = |k: &str| d.get(k).and_then(Value::as_str);
        let identity_id = row
            .identity_id
            .ok_or_else(|| OpError::server_error("code without identity"))?;
        let identity = self.usable_identity(identity_id).await?;
        let scope = s("scope").unwrap_or_default().to_string();
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        let sub = s("sub").unwrap_or_default().to_string();
        let resources = grant_resources(d);
        let api = self.token_target(client, form, Some(&resources)).await?;
        let auth_time = d.get("auth_time").and_then(Value::as_i64);
        let (access, at_row, ttl, at_scope) = self
            .user_access(
                api.as_ref(),
                client,
                identity_id,
                &sub,
                &scopes,
                auth_time,
                &row.grant_id,
                jkt,
            )
            .await?;
        let mut rows = vec![at_row];
        let refresh = if client.allows_grant(GrantType::RefreshToken)
            && (scopes.contains(&"offline_access") || !scopes.contains(&"openid"))
        {
            let mut data = json!({"scope": scope, "sub": sub, "auth_time": d.get("auth_time"), "sid": d.get("sid"), "acr": d.get("acr"), "amr": d.get("amr"), "resource": resources});
            // A public app's refresh token is bound to its DPoP key too (RFC 9449 §5): with
            // no secret, the key is the only thing that ties the token to the app.
            if let Some(jkt) = jkt
                && client.app_type.is_public()
            {
                data["jkt"] = json!(jkt);
            }
            let (rt, rt_row) = self.refresh_row(client, identity_id, data, &row.grant_id);
            rows.push(rt_row);
            Some(rt)
        } else {
            None
        };
        let id_token = if scopes.contains(&"openid") {
            Some(
                self.id_token(IdTokenInput {
                    client,
                    identity: &identity,
                    sub: &sub,
                    scopes: &scopes,
                    nonce: s("nonce"),
                    auth_time: d.get("auth_time").and_then(Value::as_i64).unwrap_or(0),
                    access_token: Some(&access),
                    sid: s("sid"),
                    acr: s("acr"),
                    amr: d.get("amr"),
                })
                .await?,
            )
        } else {
            None
        };
        if !self.store.op_insert_tokens(&rows).await? {
            return Err(OpError::invalid_grant(
                "The authorization code was used again at the same moment; every token of this sign-in has been revoked. Sign in again.",
            ));
        }
        Ok(TokenResponse {
            access_token: access,
            token_type: token_type(jkt),
            expires_in: ttl,
            refresh_token: refresh,
            id_token,
            scope: at_scope,
            issued_token_type: None,
        })
    }

    pub(crate) async fn usable_identity(&self, id: Uuid) -> OpResult<Identity> {
        let identity =
            self.store.get_identity(id).await.map_err(|_| {
                OpError::invalid_grant("The account of this grant no longer exists.")
            })?;
        if identity.state != tessera_core::identity::IdentityState::Active {
            return Err(OpError::invalid_grant(
                "The account of this grant is deactivated.",
            ));
        }
        Ok(identity)
    }

    async fn refresh(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let token = form
            .get("refresh_token")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OpError::invalid_request("The `refresh_token` parameter is missing."))?;
        // Checks that must not spend the token run on one read of it first: a DPoP-bound
        // refresh token is refused without its key's proof (a thief without the key cannot even
        // burn it), and a `resource` outside the grant is refused (an app that asks for the
        // wrong API keeps its sign-in).
        let hash = crypto::token_hash(token);
        if let Some(peek) = self.store.op_get_token(&hash).await?
            && peek.kind == "refresh"
            && peek.client_id == client.client_id
        {
            if let Some(bound) = peek.data.get("jkt").and_then(Value::as_str)
                && jkt != Some(bound)
            {
                return Err(OpError::invalid_grant(
                    "This refresh token is bound to a DPoP key: send a DPoP proof signed with that key.",
                ));
            }
            if form.get("resource").is_some_and(|r| !r.is_empty())
                || form.contains_key("organization_id")
            {
                self.token_target(client, form, Some(&grant_resources(&peek.data)))
                    .await?;
            }
        }
        let row = match self.store.op_take_refresh(&hash).await? {
            Taken::Fresh(row) => row,
            Taken::Replayed(old) if old.client_id == client.client_id => {
                if old.used {
                    let n = self.store.op_revoke_grant(&old.grant_id).await?;
                    tracing::warn!(client_id = %old.client_id, revoked = n, "refresh token reused; its family was revoked");
                    return Err(OpError::invalid_grant(
                        "The refresh token was used already; every token of this sign-in has been revoked. Sign in again.",
                    ));
                }
                return Err(OpError::invalid_grant(
                    "The refresh token has been revoked.",
                ));
            }
            // Another client's token is as good as unknown to this one.
            Taken::Replayed(_) | Taken::Unknown => {
                return Err(OpError::invalid_grant("The refresh token is not valid."));
            }
        };
        if row.client_id != client.client_id {
            return Err(OpError::invalid_grant(
                "The refresh token was issued to another client.",
            ));
        }
        if row.expires_at < now_ms() {
            return Err(OpError::invalid_grant("The refresh token has expired."));
        }
        let identity_id = row
            .identity_id
            .ok_or_else(|| OpError::server_error("refresh token without identity"))?;
        let identity = self.usable_identity(identity_id).await?;
        // Access is decided again at every refresh: an identity removed from the organization
        // or group that admitted it loses the app now, not when its refresh token expires.
        if !self.may_use(client, identity_id).await? {
            self.store.op_revoke_grant(&row.grant_id).await?;
            return Err(OpError::invalid_grant(
                "The account may no longer use this app.",
            ));
        }
        let d = &row.data;
        let granted = d
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let scope = match form.get("scope").filter(|s| !s.is_empty()) {
            None => granted.clone(),
            Some(asked) => {
                let g: Vec<&str> = granted.split(' ').collect();
                if let Some(x) = asked.split_whitespace().find(|s| !g.contains(s)) {
                    return Err(OpError::invalid_scope(format!(
                        "Scope `{x}` was not granted to this refresh token."
                    )));
                }
                asked.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        let sub = d
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let resources = grant_resources(d);
        let api = self.token_target(client, form, Some(&resources)).await?;
        let (access, at_row, ttl, at_scope) = self
            .user_access(
                api.as_ref(),
                client,
                identity_id,
                &sub,
                &scopes,
                d.get("auth_time").and_then(Value::as_i64),
                &row.grant_id,
                jkt,
            )
            .await?;
        let (rt, rt_row) = self.refresh_row(client, identity_id, d.clone(), &row.grant_id);
        let id_token = if scopes.contains(&"openid") {
            Some(
                self.id_token(IdTokenInput {
                    client,
                    identity: &identity,
                    sub: &sub,
                    scopes: &scopes,
                    nonce: None,
                    auth_time: d.get("auth_time").and_then(Value::as_i64).unwrap_or(0),
                    access_token: Some(&access),
                    sid: d.get("sid").and_then(Value::as_str),
                    acr: d.get("acr").and_then(Value::as_str),
                    amr: d.get("amr"),
                })
                .await?,
            )
        } else {
            None
        };
        if !self.store.op_insert_tokens(&[at_row, rt_row]).await? {
            return Err(OpError::invalid_grant(
                "The refresh token was used again at the same moment; every token of this sign-in has been revoked. Sign in again.",
            ));
        }
        Ok(TokenResponse {
            access_token: access,
            token_type: token_type(jkt),
            expires_in: ttl,
            refresh_token: Some(rt),
            id_token,
            scope: at_scope,
            issued_token_type: None,
        })
    }

    async fn client_credentials(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let asked = form.get("scope").filter(|s| !s.is_empty());
        let scope = match asked {
            None => client.scope.clone(),
            Some(asked) => {
                if let Some(x) = asked.split_whitespace().find(|s| !client.has_scope(s)) {
                    return Err(OpError::invalid_scope(format!(
                        "Scope `{x}` is not allowed for this app."
                    )));
                }
                asked.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        if let Some(api) = self.token_target(client, form, None).await? {
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            if asked.is_some()
                && let Some(x) = scopes.iter().find(|s| !api.defines(s))
            {
                return Err(OpError::invalid_scope(format!(
                    "Scope `{x}` is not defined by the API `{}` (it defines: {}).",
                    api.identifier,
                    api.scopes.join(" ")
                )));
            }
            // An app acting as itself: `sub` is its client id (RFC 9068 §2.2), no `auth_time`.
            let (access, ttl, scope) = self
                .jwt_access(
                    &api,
                    client,
                    &client.client_id,
                    api.token_scopes(&scopes),
                    None,
                    jkt,
                    None,
                )
                .await?;
            return Ok(TokenResponse {
                access_token: access,
                token_type: token_type(jkt),
                expires_in: ttl,
                refresh_token: None,
                id_token: None,
                scope,
                issued_token_type: None,
            });
        }
        let (access, ttl) = self.cc_token(client, &scope, jkt)?;
        Ok(TokenResponse {
            access_token: access,
            token_type: token_type(jkt),
            expires_in: ttl,
            refresh_token: None,
            id_token: None,
            scope,
            issued_token_type: None,
        })
    }

    /// A live access token's row.
    pub(crate) async fn live_access(&self, token: &str) -> OpResult<Option<GrantRow>> {
        let row = self.lookup_token(token).await?;
        Ok(row.filter(|r| !r.revoked && r.expires_at > now_ms()))
    }

    /// A self-contained client-credentials token for an app; returns it and its lifetime (s).
    fn cc_token(&self, client: &Client, scope: &str, jkt: Option<&str>) -> OpResult<(String, i64)> {
        let key = self.at_keys.first().ok_or_else(|| {
            OpError::server_error("no secrets.cipher (or secrets.default) is configured")
        })?;
        let ttl = millis(self.op().access_token_lifespan) / 1000;
        let now = now_ms() / 1000;
        let mut payload = json!({
            "c": client.client_id,
            "s": scope,
            "iat": now,
            "exp": now + ttl,
            "n": &crypto::random_token()[..22],
        });
        if let Some(jkt) = jkt {
            payload["k"] = json!(jkt);
        }
        let payload = payload.to_string();
        let p64 = URL_SAFE_NO_PAD.encode(payload);
        let mac = cc_mac(key, &p64);
        Ok((format!("{CC_PREFIX}{p64}.{mac}"), ttl))
    }

    /// The row a self-contained token stands for, when its MAC is ours.
    fn parse_cc(&self, token: &str) -> Option<GrantRow> {
        let (p64, mac) = token.strip_prefix(CC_PREFIX)?.split_once('.')?;
        let mut ok = false;
        for key in self.at_keys.iter() {
            ok |= crypto::constant_time_eq(&cc_mac(key, p64), mac);
        }
        if !ok {
            return None;
        }
        let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p64).ok()?).ok()?;
        let client_id = payload.get("c")?.as_str()?.to_string();
        Some(GrantRow {
            hash: crypto::token_hash(token),
            kind: "access".into(),
            grant_id: String::new(),
            identity_id: None,
            data: match payload.get("k").and_then(Value::as_str) {
                Some(jkt) => {
                    json!({"scope": payload.get("s")?.as_str()?, "sub": client_id, "jkt": jkt})
                }
                None => json!({"scope": payload.get("s")?.as_str()?, "sub": client_id}),
            },
            client_id,
            used: false,
            revoked: false,
            created_at: payload.get("iat")?.as_i64()? * 1000,
            expires_at: payload.get("exp")?.as_i64()? * 1000,
        })
    }

    /// Any access or refresh token: stored ones by hash, self-contained ones by their MAC (then
    /// checked against the revocation list and the app's existence).
    pub(crate) async fn lookup_token(&self, token: &str) -> OpResult<Option<GrantRow>> {
        // JWT access tokens are about a kilobyte; anything much longer is not ours.
        if token.is_empty() || token.len() > 8192 {
            return Ok(None);
        }
        if token.starts_with(CC_PREFIX) {
            let Some(mut row) = self.parse_cc(token) else {
                return Ok(None);
            };
            if self.client(&row.client_id).await?.is_none() {
                return Ok(None);
            }
            if let Some(listed) = self.store.op_get_token(&row.hash).await? {
                row.revoked = listed.revoked;
            }
            return Ok(Some(row));
        }
        let hash = crypto::token_hash(token);
        if let Some(row) = self.store.op_get_token(&hash).await? {
            return Ok(Some(row));
        }
        // A client-credentials JWT is self-contained like a `tcc1.` token: ours if it verifies,
        // it names the app as its own subject and carries no `auth_time` (users' JWT access
        // tokens always do, and are stored).
        if token.split('.').count() == 3
            && let Some(c) = self.verify_access_jwt(token).await?
            && c.get("auth_time").is_none()
            && let (Some(client_id), Some(sub)) = (
                c.get("client_id").and_then(Value::as_str),
                c.get("sub").and_then(Value::as_str),
            )
            && client_id == sub
            && self.client(client_id).await?.is_some()
        {
            return Ok(Some(GrantRow {
                hash,
                kind: "access".into(),
                grant_id: String::new(),
                client_id: client_id.to_string(),
                identity_id: None,
                data: json!({"scope": c.get("scope").and_then(Value::as_str).unwrap_or_default(), "sub": sub, "resource": c.get("aud"), "jkt": c.get("cnf").and_then(|k| k.get("jkt"))}),
                used: false,
                revoked: false,
                created_at: c.get("iat").and_then(Value::as_i64).unwrap_or(0) * 1000,
                expires_at: c.get("exp").and_then(Value::as_i64).unwrap_or(0) * 1000,
            }));
        }
        Ok(None)
    }

    /// Userinfo (OIDC Core §5.3): `sub` plus the claims of the token's scopes.
    pub async fn userinfo(&self, token: &str) -> OpResult<Value> {
        let bearer = Presented {
            dpop_scheme: false,
            dpop: DpopRequest {
                proof: None,
                method: "GET",
            },
        };
        self.userinfo_presented(token, bearer).await
    }

    /// Userinfo for a token presented as `Bearer` or, DPoP-bound, as `DPoP` with its proof.
    pub async fn userinfo_presented(&self, token: &str, how: Presented<'_>) -> OpResult<Value> {
        let row = self
            .live_access(token)
            .await?
            .filter(|r| r.kind == "access")
            .ok_or_else(|| {
                OpError::invalid_token("The access token is not valid, has expired or was revoked.")
            })?;
        let bound = row.data.get("jkt").and_then(Value::as_str);
        self.check_presentation(token, bound, how, &self.endpoint("me"))
            .await?;
        let Some(identity_id) = row.identity_id else {
            return Err(OpError::invalid_token(
                "This access token was issued to an app for itself (client credentials); it has no user.",
            ));
        };
        let scope = row
            .data
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if !scopes.contains(&"openid") {
            return Err(OpError::new(
                crate::ErrorCode::InsufficientScope,
                "The access token was not granted the `openid` scope.",
            ));
        }
        let identity =
            self.store.get_identity(identity_id).await.map_err(|_| {
                OpError::invalid_token("The account of this token no longer exists.")
            })?;
        // A deactivated account's tokens stop working at once, not when they expire.
        if identity.state != tessera_core::identity::IdentityState::Active {
            return Err(OpError::invalid_token(
                "The account of this token has been deactivated.",
            ));
        }
        let mut claims = crate::subject::scope_claims(&identity, &scopes);
        if crate::membership::wants_memberships(&scopes) {
            let client = self
                .client(&row.client_id)
                .await?
                .ok_or_else(|| OpError::invalid_token("The app of this token no longer exists."))?;
            claims.extend(
                self.memberships(&client, identity_id)
                    .await?
                    .claims(&scopes, false),
            );
        }
        claims.insert(
            "sub".into(),
            row.data.get("sub").cloned().unwrap_or(Value::Null),
        );
        Ok(Value::Object(claims))
    }

    /// Revocation (RFC 7009): revoking a refresh token revokes its whole grant. Unknown tokens
    /// and tokens of other clients are ignored (the answer is always 200).
    pub async fn revoke(&self, auth: &ClientAuth, token: &str) -> OpResult<()> {
        let client = self.authenticate(auth).await?;
        if token.is_empty() {
            return Err(OpError::invalid_request(
                "The `token` parameter is missing.",
            ));
        }
        if let Some(row) = self.lookup_token(token).await?
            && row.client_id == client.client_id
            && !row.revoked
        {
            if row.kind == "refresh" {
                self.store.op_revoke_grant(&row.grant_id).await?;
            } else if row.grant_id.is_empty() {
                // A self-contained token (`tcc1.` or a client-credentials JWT): put it on the
                // revocation list until it expires.
                let listed = GrantRow {
                    grant_id: Uuid::new_v4().to_string(),
                    ..row
                };
                self.store
                    .op_insert_tokens(std::slice::from_ref(&listed))
                    .await?;
                self.store.op_revoke_token(&listed.hash).await?;
            } else {
                self.store.op_revoke_token(&row.hash).await?;
            }
        }
        Ok(())
    }

    /// Introspection (RFC 7662), for confidential clients; a client sees only its own tokens.
    pub async fn introspect(&self, auth: &ClientAuth, token: &str) -> OpResult<Value> {
        let client = self.authenticate(auth).await?;
        if client.app_type.is_public() {
            return Err(OpError::invalid_client(
                "Public apps cannot introspect tokens.",
            ));
        }
        if token.is_empty() {
            return Err(OpError::invalid_request(
                "The `token` parameter is missing.",
            ));
        }
        let row = self.lookup_token(token).await?;
        let Some(row) = row.filter(|r| {
            !r.revoked && !r.used && r.expires_at > now_ms() && r.client_id == client.client_id
        }) else {
            return Ok(json!({"active": false}));
        };
        // Tokens of a deactivated or deleted account are inactive (RFC 7662 §2.2).
        let mut extra = Map::new();
        if let Some(identity_id) = row.identity_id {
            let active = self
                .store
                .get_identity(identity_id)
                .await
                .is_ok_and(|i| i.state == tessera_core::identity::IdentityState::Active);
            if !active {
                return Ok(json!({"active": false}));
            }
            // The membership claims of the granted scopes (RFC 7662 allows extra members), as
            // they are now, so a resource server sees removals at once.
            let scope = row
                .data
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            if crate::membership::wants_memberships(&scopes) {
                extra = self
                    .memberships(&client, identity_id)
                    .await?
                    .claims(&scopes, false);
            }
        }
        let jkt = row.data.get("jkt").and_then(Value::as_str);
        let mut answer = json!({
            "active": true,
            "scope": row.data.get("scope"),
            "client_id": row.client_id,
            "sub": row.data.get("sub"),
            // A JWT access token's audience is its API (RFC 9068); an opaque one's the app.
            "aud": row.data.get("resource").filter(|r| r.is_string()).cloned().unwrap_or_else(|| json!(row.client_id)),
            "iss": self.issuer,
            "iat": row.created_at / 1000,
            "exp": row.expires_at / 1000,
            "token_type": if row.kind == "refresh" { "refresh_token" } else { token_type(jkt) },
        });
        if let Some(jkt) = jkt {
            answer["cnf"] = json!({"jkt": jkt});
        }
        if let Some(o) = answer.as_object_mut() {
            for (k, v) in extra {
                o.entry(k).or_insert(v);
            }
        }
        Ok(answer)
    }

    /// RP-initiated logout (OIDC RP-Initiated Logout 1.0): checks `post_logout_redirect_uri`
    /// against the app's registered ones (app from `client_id` or the `id_token_hint`'s `aud`).
    /// Returns where to send the browser afterwards (with `state`), or `None` for Tessera's
    /// own signed-out page.
    pub async fn end_session(
        &self,
        client_id: Option<&str>,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> OpResult<EndSession> {
        let hinted_sid = match id_token_hint.filter(|h| !h.is_empty()) {
            Some(h) => self
                .verify_own(h)
                .await?
                .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_string)),
            None => None,
        };
        let redirect = self
            .end_session_redirect(client_id, id_token_hint, post_logout_redirect_uri, state)
            .await?;
        Ok(EndSession {
            redirect,
            hinted_sid,
        })
    }

    async fn end_session_redirect(
        &self,
        client_id: Option<&str>,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> OpResult<Option<String>> {
        let hinted = match id_token_hint.filter(|h| !h.is_empty()) {
            Some(h) => Some(self.verify_own(h).await?.ok_or_else(|| {
                OpError::invalid_request("id_token_hint is not an id_token issued by this server.")
            })?),
            None => None,
        };
        let hinted_aud = hinted.as_ref().and_then(|c| c.get("aud")).and_then(|a| {
            a.as_str()
                .map(str::to_string)
                .or_else(|| a.get(0).and_then(Value::as_str).map(str::to_string))
        });
        let client_id = match (client_id.filter(|c| !c.is_empty()), hinted_aud) {
            (Some(c), Some(a)) if c != a => {
                return Err(OpError::invalid_request(
                    "client_id does not match the audience of id_token_hint.",
                ));
            }
            (Some(c), _) => Some(c.to_string()),
            (None, a) => a,
        };
        let Some(uri) = post_logout_redirect_uri.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let Some(client_id) = client_id else {
            return Err(OpError::invalid_request(
                "post_logout_redirect_uri needs client_id or id_token_hint to know which app it belongs to.",
            ));
        };
        let client = self.client(&client_id).await?.ok_or_else(|| {
            OpError::invalid_request(format!(
                "No app with client_id `{client_id}` is registered."
            ))
        })?;
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Err(OpError::invalid_request(format!(
                "`{uri}` is not a registered post_logout_redirect_uri of the app “{}”; nothing was sent there.",
                client.client_name
            )));
        }
        let mut out = url::Url::parse(uri)
            .map_err(|e| OpError::invalid_request(format!("post_logout_redirect_uri: {e}")))?;
        if let Some(s) = state.filter(|s| !s.is_empty()) {
            out.query_pairs_mut().append_pair("state", s);
        }
        Ok(Some(out.to_string()))
    }
}

/// Where RP-initiated logout leads, and whose session the app's `id_token_hint` names.
#[derive(Debug, Clone, PartialEq)]
pub struct EndSession {
    /// The app's registered `post_logout_redirect_uri` (with `state`), if it asked for one.
    pub redirect: Option<String>,
    /// The `sid` of a valid `id_token_hint`: the browser's session may be ended without asking
    /// only when it is this one (RP-Initiated Logout 1.0 §2; anyone can hold *some* id_token).
    pub hinted_sid: Option<String>,
}
