//! `generic`: any OpenID Connect provider, configured by its `issuer_url`.

use crate::config::{ClaimsSource, Pkce, ProviderConfig};
use crate::oidc::{Expect, Issuer};
use crate::provider::{AuthRequest, Callback, Profile, Provider, Tokens, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

pub struct Generic {
    cfg: ProviderConfig,
    http: Upstream,
    issuer: Issuer,
}

impl Generic {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        if cfg.issuer_url.trim().is_empty() {
            return Err((
                "issuer_url".into(),
                "issuer_url is required for `generic` providers (e.g. https://accounts.example.com); Tessera reads {issuer_url}/.well-known/openid-configuration".into(),
            ));
        }
        let issuer = Issuer::new(&cfg.issuer_url, http.clone());
        Ok(Arc::new(Generic { cfg, http, issuer }))
    }

    fn scopes(&self) -> String {
        let mut s: Vec<&str> = self.cfg.scope.iter().map(String::as_str).collect();
        if !s.contains(&"openid") {
            s.insert(0, "openid");
        }
        s.join(" ")
    }

    async fn endpoint(
        &self,
        configured: &str,
        discovered: Option<&str>,
    ) -> Result<String, UpstreamError> {
        if !configured.is_empty() {
            return Ok(configured.to_string());
        }
        discovered
            .map(String::from)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: "discovery document".into(),
                what: "an endpoint Tessera needs".into(),
            })
    }
}

#[async_trait::async_trait]
impl Provider for Generic {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(match self.cfg.pkce {
            Pkce::Force => true,
            Pkce::Never => false,
            Pkce::Auto => self
                .issuer
                .discovery()
                .await?
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256"),
        })
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let d = self.issuer.discovery().await?;
        let auth = self
            .endpoint(&self.cfg.auth_url, Some(&d.authorization_endpoint))
            .await?;
        let mut url = Url::parse(&auth).map_err(|e| UpstreamError::Missing {
            endpoint: "discovery document".into(),
            what: format!("a valid authorization_endpoint ({e})"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scopes())
                .append_pair("state", req.state)
                .append_pair("nonce", req.nonce);
            if !self.cfg.requested_claims.is_null() {
                q.append_pair("claims", &self.cfg.requested_claims.to_string());
            }
        }
        if self.uses_pkce().await? {
            url.query_pairs_mut()
                .append_pair("code_challenge", &pkce_challenge(req.code_verifier))
                .append_pair("code_challenge_method", "S256");
        }
        Ok(url)
    }

    async fn expected_callback_issuer(&self) -> Option<crate::provider::CallbackIssuer> {
        self.issuer
            .discovery()
            .await
            .ok()
            .map(|d| crate::provider::CallbackIssuer {
                issuer: d.issuer.clone(),
                required: d.authorization_response_iss_parameter_supported,
            })
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = self.code(cb).ok_or_else(|| {
            UpstreamError::Callback("the upstream sent no authorization code".into())
        })?;
        let d = self.issuer.discovery().await?;
        let token_url = self
            .endpoint(&self.cfg.token_url, Some(&d.token_endpoint))
            .await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        // client_secret_basic unless the upstream only takes client_secret_post.
        let methods = &d.token_endpoint_auth_methods_supported;
        let post_only = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        let mut rb = self
            .http
            .client()
            .post(&token_url)
            .header("accept", "application/json");
        if post_only {
            form.push(("client_id", &self.cfg.client_id));
            form.push(("client_secret", &self.cfg.client_secret));
        } else {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            rb = rb.basic_auth(enc(&self.cfg.client_id), Some(enc(&self.cfg.client_secret)));
        }
        let t = self.http.json("token endpoint", rb.form(&form)).await?;
        if let Some(e) = crate::upstream::oauth_error("token endpoint", &t) {
            return Err(e);
        }
        let s = |k: &str| t.get(k).and_then(Value::as_str).map(String::from);
        let tokens = Tokens {
            access_token: s("access_token"),
            refresh_token: s("refresh_token"),
            id_token: s("id_token"),
        };
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: "token endpoint".into(),
                what: "an id_token (is `openid` among the scopes?)".into(),
            })?;
        let mut audiences = vec![self.cfg.client_id.clone()];
        audiences.extend(self.cfg.additional_id_token_audiences.iter().cloned());
        let mut claims = self
            .issuer
            .verify_id_token(
                id_token,
                &Expect {
                    issuer: &d.issuer,
                    audiences,
                    client_id: &self.cfg.client_id,
                    nonce: req.nonce,
                },
            )
            .await?;
        let userinfo_url = if self.cfg.userinfo_url.is_empty() {
            d.userinfo_endpoint.clone().unwrap_or_default()
        } else {
            self.cfg.userinfo_url.clone()
        };
        if self.cfg.claims_source == ClaimsSource::Userinfo && !userinfo_url.is_empty() {
            let access = tokens
                .access_token
                .as_deref()
                .ok_or_else(|| UpstreamError::Missing {
                    endpoint: "token endpoint".into(),
                    what: "an access_token for the userinfo endpoint".into(),
                })?;
            let info = self
                .http
                .json(
                    "userinfo endpoint",
                    self.http.client().get(&userinfo_url).bearer_auth(access),
                )
                .await?;
            let Value::Object(info) = info else {
                return Err(UpstreamError::Missing {
                    endpoint: "userinfo endpoint".into(),
                    what: "a JSON object".into(),
                });
            };
            // OIDC Core §5.3.2: userinfo about someone else must not be used.
            if info.get("sub") != claims.get("sub") {
                return Err(UpstreamError::Missing {
                    endpoint: "userinfo endpoint".into(),
                    what: "the same `sub` as the id_token".into(),
                });
            }
            for (k, v) in info {
                claims.insert(k, v);
            }
        }
        crate::claims::id_token_profile(claims, tokens)
    }
}
