//! The relying-party steps every OpenID Connect provider type shares: PKCE by the discovery
//! document, the authorization URL, the code redemption at the token endpoint, the id_token's
//! verification and the userinfo merge. `generic`, `microsoft` and `apple` are each this core
//! plus what their upstream does differently (an issuer template, a signed client secret), so
//! the exchange and its error handling exist once.

use crate::config::{Pkce, ProviderConfig};
use crate::oidc::{Discovery, Expect, Issuer};
use crate::provider::{AuthRequest, Callback, CallbackIssuer, Tokens, pkce_challenge};
use crate::upstream::{ReadError, Upstream, UpstreamError, oauth_or_status};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`, unless the discovery document lists only `client_secret_post`.
    ByDiscovery,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// One OpenID Connect upstream as a relying party sees it.
pub struct Rp {
    pub cfg: ProviderConfig,
    pub http: Upstream,
    pub issuer: Issuer,
    /// What messages call the upstream ("Microsoft", "the upstream").
    pub name: &'static str,
    /// How a non-2xx token answer is read: RFC 6749's shape unless the upstream has its own
    /// (Twitch's `{status, message}`).
    pub read_error: ReadError,
}

/// What the token endpoint answered, and the tokens in it.
pub struct Redeemed {
    pub tokens: Tokens,
    pub answer: Value,
}

impl Rp {
    pub fn new(cfg: ProviderConfig, http: Upstream, issuer: Issuer, name: &'static str) -> Self {
        Rp {
            cfg,
            http,
            issuer,
            name,
            read_error: oauth_or_status,
        }
    }

    /// The configured scopes, `openid` first (added when missing).
    pub fn scopes(&self) -> String {
        let mut s: Vec<&str> = self.cfg.scope.iter().map(String::as_str).collect();
        if !s.contains(&"openid") {
            s.insert(0, "openid");
        }
        s.join(" ")
    }

    /// The issuer's URL (for Apple, the issuer itself).
    pub fn issuer_url(&self) -> String {
        self.issuer.url().to_string()
    }

    pub async fn discovery(&self) -> Result<Arc<Discovery>, UpstreamError> {
        self.issuer.discovery().await
    }

    /// `pkce`: `force`, `never`, or (`auto`) whether discovery lists S256.
    pub async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(match self.cfg.pkce {
            Pkce::Force => true,
            Pkce::Never => false,
            Pkce::Auto => self
                .discovery()
                .await?
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256"),
        })
    }

    /// The authorization request: `client_id`, `redirect_uri`, `response_type=code`, `scope`,
    /// `state`, `nonce`, `claims` when configured, then `extra`, then the PKCE challenge.
    pub async fn authorization_url(
        &self,
        req: &AuthRequest<'_>,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Result<Url, UpstreamError> {
        let d = self.discovery().await?;
        let auth = if self.cfg.auth_url.is_empty() {
            &d.authorization_endpoint
        } else {
            &self.cfg.auth_url
        };
        let mut url = Url::parse(auth).map_err(|e| UpstreamError::Missing {
            endpoint: "discovery document".into(),
            what: format!("a valid authorization_endpoint ({e})"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", scope)
                .append_pair("state", req.state)
                .append_pair("nonce", req.nonce);
            if !self.cfg.requested_claims.is_null() {
                q.append_pair("claims", &self.cfg.requested_claims.to_string());
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        if self.uses_pkce().await? {
            url.query_pairs_mut()
                .append_pair("code_challenge", &pkce_challenge(req.code_verifier))
                .append_pair("code_challenge_method", "S256");
        }
        Ok(url)
    }

    /// RFC 9207's `iss` callback parameter, as the discovery document promises it.
    pub async fn callback_issuer(&self) -> Option<CallbackIssuer> {
        self.discovery().await.ok().map(|d| CallbackIssuer {
            issuer: d.issuer.clone(),
            required: d.authorization_response_iss_parameter_supported,
        })
    }

    /// Redeems the callback's code with `secret` as the client secret (the configured one, or
    /// Apple's signed JWT); an answer without an id_token is refused.
    pub async fn redeem(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
        auth: ClientAuth,
        secret: &str,
    ) -> Result<Redeemed, UpstreamError> {
        let code = cb.get("code").ok_or_else(|| {
            UpstreamError::Callback(format!("{} sent no authorization code", self.name))
        })?;
        let d = self.discovery().await?;
        let token_url = if self.cfg.token_url.is_empty() {
            d.token_endpoint.clone()
        } else {
            self.cfg.token_url.clone()
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let methods = &d.token_endpoint_auth_methods_supported;
        let post = auth == ClientAuth::Post
            || (!methods.is_empty()
                && !methods.iter().any(|m| m == "client_secret_basic")
                && methods.iter().any(|m| m == "client_secret_post"));
        let mut rb = self
            .http
            .client()
            .post(&token_url)
            .header("accept", "application/json");
        if post {
            form.push(("client_id", &self.cfg.client_id));
            form.push(("client_secret", secret));
        } else {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            rb = rb.basic_auth(enc(&self.cfg.client_id), Some(enc(secret)));
        }
        let endpoint = "token endpoint";
        let t = self
            .http
            .json_with(endpoint, rb.form(&form), self.read_error)
            .await?;
        if let Some(e) = crate::upstream::oauth_error(endpoint, &t) {
            return Err(e);
        }
        let s = |k: &str| t.get(k).and_then(Value::as_str).map(String::from);
        let tokens = Tokens {
            access_token: s("access_token"),
            refresh_token: s("refresh_token"),
            id_token: s("id_token"),
        };
        if tokens.id_token.is_none() {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: "an id_token (is `openid` among the scopes?)".into(),
            });
        }
        Ok(Redeemed { tokens, answer: t })
    }

    /// Verifies the id_token for this client (its id and `additional_id_token_audiences`)
    /// against the attempt's nonce; `iss` must be one of `issuers`.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: &str,
        issuers: &[&str],
    ) -> Result<Map<String, Value>, UpstreamError> {
        let mut audiences = vec![self.cfg.client_id.clone()];
        audiences.extend(self.cfg.additional_id_token_audiences.iter().cloned());
        self.issuer
            .verify_id_token_issued_by(
                id_token,
                &Expect {
                    issuer: issuers.first().copied().unwrap_or_default(),
                    audiences,
                    client_id: &self.cfg.client_id,
                    nonce,
                },
                issuers,
            )
            .await
    }

    /// Merges the userinfo endpoint's answer (configured `userinfo_url`, else discovery's) into
    /// `claims`; OIDC Core §5.3.2: an answer about another `sub` is refused.
    pub async fn merge_userinfo(
        &self,
        access_token: Option<&str>,
        claims: &mut Map<String, Value>,
    ) -> Result<(), UpstreamError> {
        let url = if self.cfg.userinfo_url.is_empty() {
            self.discovery()
                .await?
                .userinfo_endpoint
                .clone()
                .unwrap_or_default()
        } else {
            self.cfg.userinfo_url.clone()
        };
        if url.is_empty() {
            return Ok(());
        }
        let endpoint = "userinfo endpoint";
        let access = access_token.ok_or_else(|| UpstreamError::Missing {
            endpoint: "token endpoint".into(),
            what: "an access_token for the userinfo endpoint".into(),
        })?;
        let info = self
            .http
            .json(endpoint, self.http.client().get(&url).bearer_auth(access))
            .await?;
        let Value::Object(info) = info else {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: "a JSON object".into(),
            });
        };
        if info.get("sub") != claims.get("sub") {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: "the same `sub` as the id_token".into(),
            });
        }
        claims.extend(info);
        Ok(())
    }
}

/// The claims of a JWT *before* its signature is checked, for the one purpose of choosing how
/// to check it (Microsoft's `tid` picks the issuer). Nothing read here is trusted.
pub fn unverified_claims(token: &str) -> Result<Map<String, Value>, UpstreamError> {
    use base64::Engine as _;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| UpstreamError::IdToken("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| UpstreamError::IdToken(format!("payload is not base64url ({e})")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UpstreamError::IdToken(format!("payload is not a JSON object ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_claims_read_the_payload_and_refuse_garbage() {
        use base64::Engine as _;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"tid":"t"}"#);
        let c = unverified_claims(&format!("h.{p}.s")).unwrap();
        assert_eq!(c["tid"], "t");
        assert!(unverified_claims("nodots").is_err());
        assert!(unverified_claims("h.!!!.s").is_err());
        let arr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(unverified_claims(&format!("h.{arr}.s")).is_err());
    }
}
