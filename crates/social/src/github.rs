//! `github`: GitHub's OAuth apps. GitHub has no OpenID Connect for users, so there is no
//! id_token: the subject and profile come from the REST API (`/user`), and the email from
//! `/user/emails`, the only place that says which address is primary and verified.
//!
//! Two GitHub quirks shape this file: the token endpoint reports errors with HTTP 200 (so the
//! answer is always checked for `error`), and the granted scopes come back comma-separated and
//! may differ from the requested ones (so a configured scope that was not granted is an error
//! the user sees, instead of a sign-in that silently lacks an email).
//!
//! `github-app` (Kratos's name) is the same sign-in through a **GitHub App**: the same
//! endpoints, but the token is a user-to-server token (`ghu_…`, which expires, with a
//! `ghr_…` refresh token) whose reach is the app's permissions, not OAuth scopes. So no
//! `scope` is sent or checked, and `/user/emails` is always read: it needs the app's account
//! permission "Email addresses", and an app without it is told so instead of signing people
//! in without an address.

use crate::claims::{normalize_claims, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

pub const AUTH_URL: &str = "https://github.com/login/oauth/authorize";
pub const TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
pub const API_BASE_URL: &str = "https://api.github.com";

pub struct Github {
    cfg: ProviderConfig,
    /// A GitHub App (`github-app`) rather than an OAuth app.
    app: bool,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_url: String,
    emails_url: String,
}

impl Github {
    /// `github`: an OAuth app.
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            " (GitHub → Settings → Developer settings → OAuth Apps → Generate a new client secret)",
        )?;
        Ok(Arc::new(Self::new(cfg, http, false)))
    }

    /// `github-app`: a GitHub App's user-to-server sign-in.
    pub fn make_app(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            " (GitHub → Settings → Developer settings → GitHub Apps → your app → Generate a new client secret)",
        )?;
        Ok(Arc::new(Self::new(cfg, http, true)))
    }

    fn new(cfg: ProviderConfig, http: Upstream, app: bool) -> Github {
        let api = endpoint("", &cfg.api_base_url, API_BASE_URL, "");
        Github {
            app,
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, "", TOKEN_URL, ""),
            user_url: endpoint(&cfg.userinfo_url, "", &api, "/user"),
            emails_url: format!("{api}/user/emails"),
            cfg,
            http,
        }
    }

    fn api_get(&self, url: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .get(url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }
}

/// Whether `wanted` is covered by the granted scopes. GitHub reports the broadest scope it
/// granted: `user` covers `user:email` and `read:user`, `admin:org` covers `read:org`, …
pub fn scope_granted(wanted: &str, granted: &[&str]) -> bool {
    if granted.contains(&wanted) {
        return true;
    }
    match wanted.split_once(':') {
        // `user:email`, `user:follow`, `repo:status`, … are parts of `user`, `repo`.
        Some((parent, _)) if granted.contains(&parent) => true,
        // `read:org` ⊂ `write:org` ⊂ `admin:org`; `read:user` ⊂ `user`.
        Some((level, object)) => {
            let wider: &[&str] = match level {
                "read" => &["write", "admin"],
                "write" => &["admin"],
                _ => &[],
            };
            wider
                .iter()
                .any(|w| granted.contains(&format!("{w}:{object}").as_str()))
                || (object == "user" && granted.contains(&"user"))
        }
        None => false,
    }
}

/// A GitHub App's `/user/emails` refusal: 403 "Resource not accessible by integration" (404
/// on older GitHub Enterprise Server) means the app lacks the account permission "Email
/// addresses", which the administrator must grant; other answers as usual.
fn app_emails_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    match status {
        403 | 404 => UpstreamError::OAuth {
            endpoint: endpoint.into(),
            error: format!("HTTP {status} at /user/emails"),
            description:
                "the GitHub App needs the account permission \"Email addresses\" (read-only)".into(),
        },
        _ => oauth_or_status(endpoint, status, body),
    }
}

/// The mapper's claims from `/user` and, when it was read, `/user/emails`.
pub fn claims_of(user: &Map<String, Value>, emails: Option<&[Value]>) -> Map<String, Value> {
    let mut c = user.clone();
    let s = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Value::String(v.to_string()))
    };
    if let Some(sub) = user.get("id").and_then(subject_string) {
        c.insert("sub".into(), Value::String(sub));
    }
    if let Some(login) = s("login") {
        c.insert("username".into(), login.clone());
        c.insert("nickname".into(), login);
    }
    for (from, to) in [
        ("name", "name"),
        ("avatar_url", "picture"),
        ("html_url", "profile"),
        ("blog", "website"),
    ] {
        c.remove(from);
        if let Some(v) = s(from) {
            c.insert(to.into(), v);
        }
    }
    c.remove("email");
    match emails {
        // The primary address and whether GitHub verified it.
        Some(rows) => {
            if let Some(row) = rows
                .iter()
                .find(|r| r.get("primary").and_then(Value::as_bool) == Some(true))
                && let Some(email) = row.get("email").and_then(Value::as_str)
                && !email.is_empty()
            {
                c.insert("email".into(), Value::String(email.into()));
                c.insert(
                    "email_verified".into(),
                    Value::Bool(row.get("verified").and_then(Value::as_bool) == Some(true)),
                );
            }
        }
        // Only the public profile email: GitHub says nothing about its verification, so
        // `email_verified` stays absent (mappers must treat that as unverified).
        None => {
            if let Some(e) = s("email") {
                c.insert("email".into(), e);
            }
        }
    }
    c
}

#[async_trait::async_trait]
impl Provider for Github {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// GitHub supports PKCE S256 for OAuth apps; sending it costs nothing and protects codes.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(!matches!(self.cfg.pkce, crate::config::Pkce::Never))
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        // A GitHub App's reach is its permissions: GitHub ignores `scope` for it, so none is
        // sent (a Kratos entry that lists scopes still starts).
        let scope = if self.app {
            String::new()
        } else {
            self.cfg.scope.join(" ")
        };
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        pairs.push(("state", req.state));
        if self.uses_pkce().await? {
            pairs.push(("code_challenge", &challenge));
            pairs.push(("code_challenge_method", "S256"));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "GitHub sent no authorization code")?;
        let mut form = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .header("accept", "application/json")
            .form(&form);
        // GitHub answers errors with HTTP 200; `call` refuses them whatever the status.
        let t = oauth2::exchange_code(
            &self.http,
            "token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let access = t.access_token.clone();
        let granted_raw = t.raw.get("scope").and_then(Value::as_str);
        let granted: Vec<&str> = granted_raw
            .unwrap_or_default()
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if granted_raw.is_some() && !self.app {
            let missing: Vec<&str> = self
                .cfg
                .scope
                .iter()
                .map(String::as_str)
                .filter(|w| !scope_granted(w, &granted))
                .collect();
            if !missing.is_empty() {
                return Err(UpstreamError::OAuth {
                    endpoint: "token endpoint".into(),
                    error: "scope_not_granted".into(),
                    description: format!(
                        "the permission(s) {} this site asks for were not granted (granted: {})",
                        missing.join(", "),
                        if granted.is_empty() {
                            "none".to_string()
                        } else {
                            granted.join(", ")
                        }
                    ),
                });
            }
        }
        let user = oauth2::call(
            &self.http,
            "user endpoint",
            self.api_get(&self.user_url, &access),
            oauth_or_status,
        )
        .await?;
        let user = oauth2::object(user, "user endpoint")?;
        let emails = if self.app || scope_granted("user:email", &granted) {
            let read_error = if self.app {
                app_emails_error
            } else {
                oauth_or_status
            };
            let rows = oauth2::call(
                &self.http,
                "emails endpoint",
                self.api_get(&self.emails_url, &access),
                read_error,
            )
            .await?;
            match rows {
                Value::Array(rows) => Some(rows),
                _ => {
                    return Err(UpstreamError::Missing {
                        endpoint: "emails endpoint".into(),
                        what: "a JSON array".into(),
                    });
                }
            }
        } else {
            None
        };
        let claims = claims_of(&user, emails.as_deref());
        let subject =
            claims
                .get("sub")
                .and_then(subject_string)
                .ok_or_else(|| UpstreamError::Missing {
                    endpoint: "user endpoint".into(),
                    what: "the numeric user `id`".into(),
                })?;
        Ok(Profile {
            subject,
            claims: normalize_claims(&claims, None),
            tokens: t.tokens(Some("refresh_token"), None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({
            "id": 583231, "login": "octocat", "name": "The Octocat",
            "email": "public@example.com", "avatar_url": "https://avatars.example/u/583231",
            "html_url": "https://github.com/octocat", "blog": "", "company": "@github"
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn claims_take_the_primary_email_and_its_verified_flag() {
        let emails = [
            json!({"email": "other@example.com", "primary": false, "verified": true}),
            json!({"email": "octo@example.com", "primary": true, "verified": false}),
        ];
        let c = normalize_claims(&claims_of(&user(), Some(&emails)), None);
        assert_eq!(c["sub"], "583231");
        assert_eq!(c["username"], "octocat");
        assert_eq!(c["nickname"], "octocat");
        assert_eq!(c["name"], "The Octocat");
        assert_eq!(c["email"], "octo@example.com");
        assert_eq!(c["email_verified"], false);
        assert_eq!(c["picture"], "https://avatars.example/u/583231");
        assert_eq!(c["profile"], "https://github.com/octocat");
        assert!(c.get("website").is_none(), "an empty blog is no website");
        assert_eq!(c["raw_claims"]["company"], "@github");
        assert_eq!(c["raw_claims"]["id"], 583231);
    }

    #[test]
    fn without_the_emails_call_the_public_email_is_unverified_and_no_primary_means_none() {
        let c = normalize_claims(&claims_of(&user(), None), None);
        assert_eq!(c["email"], "public@example.com");
        assert!(c.get("email_verified").is_none());
        let c = normalize_claims(&claims_of(&user(), Some(&[])), None);
        assert!(c.get("email").is_none());
        let mut u = user();
        u.insert("blog".into(), json!("https://octo.blog"));
        let c = normalize_claims(&claims_of(&u, None), None);
        assert_eq!(c["website"], "https://octo.blog");
    }

    #[test]
    fn a_github_app_without_the_email_permission_is_told_what_to_grant() {
        let body = br#"{"message": "Resource not accessible by integration", "status": "403"}"#;
        let e = app_emails_error("emails endpoint", 403, body);
        assert!(e.user_message("GitHub").contains("Email addresses"), "{e}");
        let e = app_emails_error("emails endpoint", 500, b"boom");
        assert!(
            matches!(e, UpstreamError::Status { status: 500, .. }),
            "{e}"
        );
    }

    #[test]
    fn broader_granted_scopes_cover_narrower_ones() {
        assert!(scope_granted("user:email", &["user:email"]));
        assert!(scope_granted("user:email", &["user"]));
        assert!(scope_granted("read:user", &["user"]));
        assert!(scope_granted("read:org", &["admin:org"]));
        assert!(!scope_granted("user:email", &["read:user"]));
        assert!(!scope_granted("repo", &["repo:status"]));
        assert!(!scope_granted("user:email", &[]));
    }
}
