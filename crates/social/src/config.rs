//! Provider entries (`selfservice.methods.oidc.config.providers[]`): Kratos's keys plus
//! Tessera's `userinfo_url`, `api_base_url`, `update_traits_on_login` and `store_tokens`.
//! Everything is checked at start, so a bad entry never reaches a user's sign-in.

use crate::Configured;
use crate::upstream::Upstream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use tessera_config::load::Problem;
use tessera_config::{ConfigError, ProviderSource, Settings};
use tessera_mapper::Mapper;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pkce {
    /// Use PKCE when the upstream's discovery document lists S256 (Kratos's default).
    #[default]
    Auto,
    Force,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimsSource {
    #[default]
    IdToken,
    Userinfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub mapper_url: String,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub issuer_url: String,
    #[serde(default)]
    pub auth_url: String,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub userinfo_url: String,
    #[serde(default)]
    pub api_base_url: String,
    #[serde(default)]
    pub requested_claims: Value,
    #[serde(default)]
    pub pkce: Pkce,
    #[serde(default)]
    pub claims_source: ClaimsSource,
    #[serde(default)]
    pub microsoft_tenant: String,
    #[serde(default)]
    pub subject_source: String,
    #[serde(default)]
    pub apple_team_id: String,
    #[serde(default)]
    pub apple_private_key_id: String,
    #[serde(default)]
    pub apple_private_key: String,
    #[serde(default)]
    pub additional_id_token_audiences: Vec<String>,
    /// Tessera, `wecom`: the self-built app's AgentId (the corp id is `client_id`).
    #[serde(default)]
    pub wecom_agent_id: String,
    /// Tessera, `odnoklassniki`: the application's public key (публичный ключ), which signs
    /// every API call next to `client_id` and the secret key `client_secret`.
    #[serde(default)]
    pub odnoklassniki_application_key: String,
    /// Tessera, `alipay`: Alipay's public key (支付宝公钥, PEM or the console's bare base64),
    /// which verifies every gateway answer; the app's private key is `client_secret`.
    #[serde(default)]
    pub alipay_public_key: String,
    /// Tessera, `google`: the one Google Workspace domain whose accounts may sign in (sent as
    /// `hd`, then checked in the id_token).
    #[serde(default)]
    pub google_hosted_domain: String,
    /// Tessera, `telegram`: how old (Go duration, `5m` by default) a Login Widget result's
    /// `auth_date` may be when it reaches the callback.
    #[serde(default)]
    pub telegram_auth_max_age: String,
    /// Tessera: re-run the mapper on every sign-in and update the traits.
    #[serde(default)]
    pub update_traits_on_login: bool,
    /// Tessera: keep the upstream's tokens (encrypted with `secrets.cipher`).
    #[serde(default)]
    pub store_tokens: bool,
}

impl ProviderConfig {
    /// The configured scopes joined as this upstream spells a list (`" "`, `","`, `";"`), or
    /// its documented default when none are configured.
    pub fn scope_or(&self, default: &str, separator: &str) -> String {
        if self.scope.is_empty() {
            default.to_string()
        } else {
            self.scope.join(separator)
        }
    }
}

fn problem(src: &ProviderSource, key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: if key.is_empty() {
            src.key.clone()
        } else {
            format!("{}.{key}", src.key)
        },
        location: src.location(key),
        message: message.into(),
    }
}

/// Kratos `provider:` values Tessera refuses on purpose, with what to use instead: they are
/// not sign-in providers one could emulate faithfully (Kratos's `jackson` is a SAML bridge run
/// beside it, `fedcm-test` a test fixture of Kratos's own suite).
pub fn refused_kratos_type(provider: &str) -> Option<String> {
    match provider {
        "jackson" => Some(
            "`provider: jackson` (Kratos's bridge to BoxyHQ's SAML Jackson) is not supported: Tessera does not speak SAML. Run SAML Jackson (or another SAML-to-OIDC bridge) and point a `provider: generic` entry at its OpenID Connect side instead (issuer_url: the bridge's OIDC issuer, client_id/client_secret: the bridge's OIDC client)".into(),
        ),
        "fedcm-test" => Some(
            "`provider: fedcm-test` is a fixture of Kratos's own test suite, not a real provider, and Tessera has no FedCM endpoints: remove the entry, or use `provider: generic` with a real OpenID Connect provider's issuer_url".into(),
        ),
        _ => NOT_YET
            .iter()
            .find(|(id, _)| *id == provider)
            .map(|(id, instead)| {
                format!(
                    "`provider: {id}` is a Kratos provider type this version of Tessera does not implement yet (docs/social-sign-in.md lists the ones it does). {instead}"
                )
            }),
    }
}

/// Kratos types not implemented yet, with the way to sign in with that provider meanwhile.
/// The list only shrinks, and is empty now that LINE landed: `it::providers_global2` loads a
/// `kratos.yml` naming every Kratos type and fails when a type is neither implemented nor here.
const NOT_YET: &[(&str, &str)] = &[];

pub(crate) async fn build_all(
    settings: &Settings,
    http: &Upstream,
) -> Result<Vec<Configured>, ConfigError> {
    let mut problems = vec![];
    let mut out: Vec<Configured> = vec![];
    let mut seen: HashMap<String, String> = HashMap::new();
    for src in &settings.oidc.providers {
        match build_one(src, http, &settings.sources).await {
            Ok(c) => {
                let id = c.id().to_string();
                if let Some(first) = seen.get(&id) {
                    problems.push(problem(
                        src,
                        "id",
                        format!("duplicate provider id `{id}` (also used by `{first}`): ids are the callback URL's path segment and must be unique"),
                    ));
                    continue;
                }
                seen.insert(id, src.key.clone());
                out.push(c);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError { problems })
    }
}

async fn build_one(
    src: &ProviderSource,
    http: &Upstream,
    sources: &tessera_config::source::SourcePolicy,
) -> Result<Configured, Vec<Problem>> {
    let cfg: ProviderConfig = serde_path_to_error::deserialize(&src.value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        let hint = if inner.contains("unknown field") {
            format!("{inner}; provider entries take Kratos's keys (id, provider, label, client_id, client_secret, mapper_url, scope, issuer_url, auth_url, token_url, requested_claims, pkce, claims_source, ...) and Tessera's userinfo_url, api_base_url, update_traits_on_login, store_tokens, wecom_agent_id, odnoklassniki_application_key, alipay_public_key, google_hosted_domain, telegram_auth_max_age")
        } else {
            inner
        };
        vec![problem(src, &key, hint)]
    })?;
    let mut p = vec![];
    let who = format!("provider `{}`", cfg.id);
    if cfg.id.is_empty()
        || !cfg
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.push(problem(src, "id", format!("`{}` is not a valid provider id: use letters, digits, `-`, `_` or `.` (it becomes the callback URL's path segment)", cfg.id)));
    }
    if cfg.client_id.trim().is_empty() {
        p.push(problem(
            src,
            "client_id",
            format!("{who}: client_id is required (the OAuth2 client id from the upstream's developer console)"),
        ));
    }
    for (key, value) in [
        ("issuer_url", &cfg.issuer_url),
        ("auth_url", &cfg.auth_url),
        ("token_url", &cfg.token_url),
        ("userinfo_url", &cfg.userinfo_url),
        ("api_base_url", &cfg.api_base_url),
    ] {
        if !value.is_empty() {
            match Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(problem(
                    src,
                    key,
                    format!("{who}: `{value}` is not an http(s) URL"),
                )),
            }
        }
    }
    if !cfg.requested_claims.is_null() && !cfg.requested_claims.is_object() {
        p.push(problem(
            src,
            "requested_claims",
            format!("{who}: requested_claims must be an object, as in OIDC Core §5.5 (e.g. {{\"id_token\": {{\"email\": {{\"essential\": true}}}}}})"),
        ));
    }
    let mapper = if cfg.mapper_url.trim().is_empty() {
        p.push(problem(src, "mapper_url", format!("{who}: mapper_url is required: a Jsonnet mapper as base64://..., file://... or https://... (see docs/providers)")));
        None
    } else {
        // An uploaded configuration's errors never show what a fetched mapper contains.
        let hide = sources.hide_content_in_errors && !cfg.mapper_url.starts_with("base64://");
        match crate::fetch::document(&cfg.mapper_url, src.base_dir.as_deref(), sources).await {
            Err(e) => {
                p.push(problem(src, "mapper_url", format!("{who}: {e}")));
                None
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => {
                    p.push(problem(
                        src,
                        "mapper_url",
                        format!("{who}: the mapper is not UTF-8 text"),
                    ));
                    None
                }
                Ok(source) => match Mapper::compile(&format!("{who} mapper"), &source) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let message = match (&e, hide) {
                            (_, false) => e.to_string(),
                            (
                                tessera_mapper::MapperError::Syntax {
                                    name, line, column, ..
                                },
                                true,
                            ) => format!(
                                "{name} does not compile at line {line}, column {column} (details are not shown for documents fetched for an uploaded configuration; run `tessera mapper test` on the server)"
                            ),
                            (_, true) => format!(
                                "{who} mapper does not compile (details are not shown for documents fetched for an uploaded configuration; run `tessera mapper test` on the server)"
                            ),
                        };
                        p.push(problem(src, "mapper_url", message));
                        None
                    }
                },
            },
        }
    };
    let kind = crate::types::get(&cfg.provider);
    let provider = match (kind, refused_kratos_type(&cfg.provider)) {
        (None, Some(why)) => {
            p.push(problem(src, "provider", format!("{who}: {why}")));
            None
        }
        (None, None) => {
            p.push(problem(
                src,
                "provider",
                format!(
                    "{who}: unknown provider type `{}`; this version supports: {}",
                    cfg.provider,
                    crate::types::ids().join(", ")
                ),
            ));
            None
        }
        (Some(kind), _) => match (kind.make)(cfg.clone(), http.for_provider(&cfg.id)) {
            Ok(pr) => Some((kind, pr)),
            Err((key, message)) => {
                p.push(problem(src, &key, format!("{who}: {message}")));
                None
            }
        },
    };
    match (provider, mapper) {
        (Some((kind, provider)), Some(mapper)) if p.is_empty() => Ok(Configured {
            kind,
            provider,
            mapper,
        }),
        _ => Err(p),
    }
}
