//! `generic`: any OpenID Connect provider, configured by its `issuer_url`: the shared relying
//! party ([`crate::oidc_rp`]) with nothing added.

use crate::config::{ClaimsSource, ProviderConfig};
use crate::oidc::Issuer;
use crate::oidc_rp::{ClientAuth, Rp};
use crate::provider::{AuthRequest, Callback, CallbackIssuer, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError};
use std::sync::Arc;
use url::Url;

pub struct Generic {
    rp: Rp,
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
        Ok(Arc::new(Generic {
            rp: Rp::new(cfg, http, issuer, "the upstream"),
        }))
    }
}

#[async_trait::async_trait]
impl Provider for Generic {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        self.rp.authorization_url(req, &self.rp.scopes(), &[]).await
    }

    async fn expected_callback_issuer(&self) -> Option<CallbackIssuer> {
        self.rp.callback_issuer().await
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let r = self
            .rp
            .redeem(cb, req, ClientAuth::ByDiscovery, &self.rp.cfg.client_secret)
            .await?;
        let d = self.rp.discovery().await?;
        let id_token = r.tokens.id_token.as_deref().unwrap_or_default();
        let mut claims = self.rp.verify(id_token, req.nonce, &[&d.issuer]).await?;
        if self.rp.cfg.claims_source == ClaimsSource::Userinfo {
            self.rp
                .merge_userinfo(r.tokens.access_token.as_deref(), &mut claims)
                .await?;
        }
        crate::claims::id_token_profile(claims, r.tokens)
    }
}
