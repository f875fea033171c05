//! `microsoft`: Microsoft Entra ID (work and school accounts) and personal Microsoft accounts,
//! OpenID Connect at `https://login.microsoftonline.com/{microsoft_tenant}/v2.0`, as Kratos's
//! `microsoft` type.
//!
//! What differs from `generic`:
//! - `microsoft_tenant` (required) picks who may sign in: `common` (anyone), `organizations`
//!   (work and school accounts only), `consumers` (personal accounts only), or one directory by
//!   its tenant id or a verified domain;
//! - the discovery document of `common` and `organizations` names the issuer as a template,
//!   `https://login.microsoftonline.com/{tenantid}/v2.0`. The token's `tid` (read before the
//!   signature is checked, only to choose the issuer; it must be a UUID) fills it in, and the
//!   token must then verify with exactly that issuer, signed with a key of the discovery
//!   document's JWKS. A token whose `iss` names another directory than its `tid` is refused,
//!   and so is a personal account's token under `organizations`;
//! - there is no `email_verified`: Microsoft says whether the email's domain is verified by the
//!   optional claim `xms_edov` (configure it in the app registration's token configuration).
//!   `email_verified` is set true only when `xms_edov` is true, so mappers that take an email
//!   only when it is verified stay safe from the "nOAuth" takeover (an unverified `email` set
//!   by another directory's admin);
//! - `subject_source`: empty or `userinfo` (Kratos's default): the token's `sub`, which is
//!   pairwise (one per app registration); `me` (Kratos): the user's object id from Microsoft
//!   Graph `GET /v1.0/me` (needs the `User.Read` scope); `tid_oid` (Tessera): `<tid>:<oid>`
//!   from the verified token, the same for the person across app registrations without a
//!   Graph call (an `oid` alone is unique only within its directory).
//!
//! Tessera's `issuer_url` moves the authority (`https://login.microsoftonline.us` for a
//! national cloud, an emulator in tests) and `api_base_url` the Graph origin.

use crate::config::ProviderConfig;
use crate::oidc::Issuer;
use crate::oidc_rp::{ClientAuth, Rp, unverified_claims};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

/// Where Microsoft's OpenID Connect endpoints are.
pub const AUTHORITY: &str = "https://login.microsoftonline.com";
/// Microsoft Graph.
pub const GRAPH: &str = "https://graph.microsoft.com";
/// The directory (`tid`) of every personal Microsoft account.
pub const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The placeholder of the `common` and `organizations` discovery documents' issuer.
const TENANT_PLACEHOLDER: &str = "{tenantid}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Sub,
    GraphMe,
    TidOid,
}

pub struct Microsoft {
    rp: Rp,
    tenant: String,
    subject: Subject,
    graph: String,
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form (how `tid` and `oid` are written).
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The discovery document of `{authority}/{tenant}/v2.0` may name the issuer as the
/// `{tenantid}` template (`common`, `organizations`) or by the directory's id (a domain
/// tenant, `consumers`), under the same authority.
fn document_issuer_ok(fetched_for: &str, said: &str) -> bool {
    if said == fetched_for {
        return true;
    }
    let authority = fetched_for
        .strip_suffix("/v2.0")
        .and_then(|s| s.rsplit_once('/'))
        .map(|(a, _)| a);
    let tenant = authority
        .and_then(|a| said.strip_prefix(a))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix("/v2.0"));
    tenant.is_some_and(|t| t == TENANT_PLACEHOLDER || is_uuid(t))
}

impl Microsoft {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        crate::oauth2::require_secret(
            &cfg,
            ": a client secret of the app registration (Microsoft Entra admin center → App registrations → Certificates & secrets)",
        )?;
        let tenant = cfg.microsoft_tenant.trim().to_string();
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        {
            return Err((
                "microsoft_tenant".into(),
                format!(
                    "`{}` is not a tenant: give `common` (any account), `organizations` (work and school accounts), `consumers` (personal accounts), or your directory's tenant id or verified domain",
                    cfg.microsoft_tenant
                ),
            ));
        }
        let subject = match cfg.subject_source.as_str() {
            "" | "userinfo" => Subject::Sub,
            "me" => Subject::GraphMe,
            "tid_oid" => Subject::TidOid,
            other => {
                return Err((
                    "subject_source".into(),
                    format!(
                        "`{other}` is not a subject source for `microsoft`: use `userinfo` (the token's `sub`, the default), `me` (the object id from Microsoft Graph) or `tid_oid` (`<tid>:<oid>` from the token)"
                    ),
                ));
            }
        };
        let authority = if cfg.issuer_url.trim().is_empty() {
            AUTHORITY.to_string()
        } else {
            cfg.issuer_url.trim_end_matches('/').to_string()
        };
        let graph = if cfg.api_base_url.trim().is_empty() {
            GRAPH.to_string()
        } else {
            cfg.api_base_url.trim_end_matches('/').to_string()
        };
        let issuer = Issuer::with_document_issuer_rule(
            &format!("{authority}/{tenant}/v2.0"),
            http.clone(),
            document_issuer_ok,
        );
        Ok(Arc::new(Microsoft {
            rp: Rp::new(cfg, http, issuer, "Microsoft"),
            tenant: tenant.to_ascii_lowercase(),
            subject,
            graph,
        }))
    }

    /// The issuer this token must have been issued by: the discovery document's, with the
    /// token's `tid` in the `{tenantid}` template. `tid` is not trusted yet; the signature and
    /// `iss` checks that follow decide.
    fn expected_issuer(&self, template: &str, id_token: &str) -> Result<String, UpstreamError> {
        let unverified = unverified_claims(id_token)?;
        let tid = unverified
            .get("tid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !is_uuid(tid) {
            return Err(UpstreamError::IdToken(
                "`tid` is missing or not a tenant id (a UUID)".into(),
            ));
        }
        if self.tenant == "organizations" && tid.eq_ignore_ascii_case(CONSUMERS_TENANT) {
            return Err(UpstreamError::Callback(
                "this site accepts only work or school Microsoft accounts, not personal ones; sign in with your organization's account".into(),
            ));
        }
        Ok(template.replace(TENANT_PLACEHOLDER, tid))
    }

    async fn graph_id(&self, access_token: Option<&str>) -> Result<String, UpstreamError> {
        let endpoint = "Microsoft Graph /me";
        let access = access_token.ok_or_else(|| UpstreamError::Missing {
            endpoint: "token endpoint".into(),
            what: "an access_token for Microsoft Graph".into(),
        })?;
        let me = self
            .rp
            .http
            .json(
                endpoint,
                self.rp
                    .http
                    .client()
                    .get(format!("{}/v1.0/me", self.graph))
                    .bearer_auth(access),
            )
            .await?;
        crate::upstream::required_text(&me, "id", endpoint).map(String::from)
    }
}

#[async_trait::async_trait]
impl Provider for Microsoft {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        self.rp.authorization_url(req, &self.rp.scopes(), &[]).await
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
        let issuer = self.expected_issuer(&d.issuer, id_token)?;
        let mut claims = self.rp.verify(id_token, req.nonce, &[&issuer]).await?;
        // Microsoft sends no `email_verified`: `xms_edov` (the email's domain is verified by
        // the directory) is the only sign, and anything else is not trusted.
        let edov = claims
            .get("xms_edov")
            .is_some_and(|v| v == &Value::Bool(true) || v == "1" || v == "true");
        claims.insert("email_verified".into(), Value::Bool(edov));
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(String::from);
        let subject = match self.subject {
            Subject::Sub => None,
            Subject::GraphMe => Some(self.graph_id(r.tokens.access_token.as_deref()).await?),
            Subject::TidOid => {
                let (tid, oid) = (text("tid"), text("oid"));
                match (tid, oid) {
                    (Some(t), Some(o)) if is_uuid(&o) => Some(format!("{t}:{o}")),
                    _ => {
                        return Err(UpstreamError::IdToken(
                            "`oid` is missing (is `profile` among the scopes?), so `subject_source: tid_oid` has no subject".into(),
                        ));
                    }
                }
            }
        };
        if let Some(s) = subject {
            claims.insert("sub".into(), Value::String(s));
        }
        crate::claims::id_token_profile(claims, r.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: serde_json::Value) -> Result<Arc<dyn Provider>, (String, String)> {
        let mut v = serde_json::json!({"id": "ms", "provider": "microsoft", "client_id": "c", "client_secret": "s", "microsoft_tenant": "common"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let cfg: ProviderConfig = serde_json::from_value(v).expect("entry");
        Microsoft::make(cfg, Upstream::new().expect("client"))
    }

    #[test]
    fn tenant_and_subject_source_are_checked_at_start() {
        assert!(entry(serde_json::json!({})).is_ok());
        for ok in [
            "organizations",
            "consumers",
            "contoso.onmicrosoft.com",
            CONSUMERS_TENANT,
        ] {
            assert!(
                entry(serde_json::json!({"microsoft_tenant": ok})).is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "https://login.microsoftonline.com/common", "a/b"] {
            let Err((key, why)) = entry(serde_json::json!({"microsoft_tenant": bad})) else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(key, "microsoft_tenant");
            assert!(why.contains("organizations"), "{why}");
        }
        for ok in ["userinfo", "me", "tid_oid"] {
            assert!(entry(serde_json::json!({"subject_source": ok})).is_ok());
        }
        let Err((key, why)) = entry(serde_json::json!({"subject_source": "email"})) else {
            panic!("accepted");
        };
        assert_eq!(key, "subject_source");
        assert!(why.contains("tid_oid"), "{why}");
        let Err((key, _)) = entry(serde_json::json!({"client_secret": ""})) else {
            panic!("no secret accepted");
        };
        assert_eq!(key, "client_secret");
    }

    #[test]
    fn the_discovery_issuer_may_be_the_template_or_a_tenant_id_of_the_same_authority() {
        let common = "https://login.microsoftonline.com/common/v2.0";
        assert!(document_issuer_ok(
            common,
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        ));
        assert!(document_issuer_ok(
            "https://login.microsoftonline.com/contoso.com/v2.0",
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
        ));
        assert!(!document_issuer_ok(
            common,
            "https://evil.example/{tenantid}/v2.0"
        ));
        assert!(!document_issuer_ok(
            common,
            "https://login.microsoftonline.com/not-a-uuid/v2.0"
        ));
        assert!(!document_issuer_ok(
            common,
            "https://login.microsoftonline.com/{tenantid}"
        ));
        assert!(is_uuid(CONSUMERS_TENANT));
        assert!(!is_uuid("9188040d6c674c5bb11236a304b66dad"));
    }
}
