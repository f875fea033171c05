//! Social sign-in upstreams. A provider is mostly data — endpoints, scopes, how to read the user
//! and turn it into claims — over one shared, tested HTTP layer ([`upstream`]) and one id_token
//! verifier ([`oidc`]). The self-service engine drives the flow (state, continuity, mapping,
//! linking); this crate only talks to upstreams and validates their configuration.
//!
//! Architecture invariant: no database and no inbound HTTP here. Everything an upstream says is
//! untrusted input: every answer is size-capped, time-limited, never followed through a redirect,
//! and turned into an [`UpstreamError`] with a message a user can read and a reason for the log.

pub mod alipay;
pub mod amazon;
pub mod apple;
pub mod baidu;
pub mod bitbucket;
pub mod claims;
pub mod config;
pub mod dingtalk;
pub mod discord;
pub mod douyin;
pub mod facebook;
pub mod feishu;
pub mod fetch;
pub mod generic;
pub mod github;
pub mod google;
pub mod jws;
pub mod kakao;
pub mod line;
pub mod mailru;
pub mod mapping;
pub mod microsoft;
pub mod naver;
pub mod oauth2;
pub mod odnoklassniki;
pub mod oidc;
pub mod oidc_preset;
pub mod oidc_rp;
pub mod patreon;
pub mod provider;
pub mod qq;
pub mod request;
pub mod spotify;
pub mod telegram;
pub mod telegram_oidc;
pub mod twitch;
pub mod types;
pub mod uaepass;
pub mod upstream;
pub mod vk;
pub mod vkid;
pub mod wechat;
pub mod wecom;
pub mod weibo;
pub mod x;
pub mod yandex;

pub use claims::normalize_claims;
pub use config::{ClaimsSource, Pkce, ProviderConfig};
pub use mapping::{Mapped, MappingError};
pub use provider::{AuthRequest, Callback, CallbackIssuer, Profile, Provider, SingleUse, Tokens};
pub use types::ProviderType;
pub use upstream::{Upstream, UpstreamError};

use std::collections::BTreeSet;
use std::sync::Arc;
use tessera_config::{ConfigError, Settings};
use tessera_mapper::{Mapper, MapperPool};

/// One configured provider with its compiled mapper.
#[derive(Clone)]
pub struct Configured {
    /// The entry's provider type (its icon, names and authorization origins).
    pub kind: &'static ProviderType,
    pub provider: Arc<dyn Provider>,
    pub mapper: Mapper,
}

impl Configured {
    pub fn id(&self) -> &str {
        &self.provider.config().id
    }
    pub fn config(&self) -> &ProviderConfig {
        self.provider.config()
    }
    /// What the UI and messages call this provider: the configured `label`, or else the
    /// type's English name (`GitHub`, `VK`), never the raw type id. The hosted UI swaps in the
    /// type's name in the page language ([`types::Names`]) where it has one.
    pub fn display_name(&self) -> &str {
        let label = self.config().label.trim();
        if label.is_empty() {
            self.kind.names.en
        } else {
            label
        }
    }
}

/// The providers a server runs with, in configuration order (which is the button order), and
/// the sandbox their mappers run in.
#[derive(Clone)]
pub struct Social {
    providers: Vec<Configured>,
    pool: MapperPool,
    /// Every `web_hook`'s and courier channel's request, its body compiled, by configuration
    /// key.
    requests: std::collections::HashMap<String, std::sync::Arc<request::Request>>,
    /// The client hooks' requests are sent with (no redirects, time-limited).
    http: reqwest::Client,
}

impl Social {
    /// Validates every provider entry, fetches and compiles every mapper; all problems are
    /// reported together, each with the provider id, the key and its file line.
    pub async fn build(settings: &Settings, pool: MapperPool) -> Result<Social, ConfigError> {
        let http =
            Upstream::with_timeout(settings.limits.upstream_timeout).map_err(|e| ConfigError {
                problems: vec![tessera_config::load::Problem {
                    key: "selfservice.methods.oidc".into(),
                    location: tessera_config::Location::Default,
                    message: format!("the HTTP client for upstream calls could not be built: {e}"),
                }],
            })?;
        let providers = config::build_all(settings, &http).await?;
        let mut requests = std::collections::HashMap::new();
        let mut problems = Vec::new();
        // Web hooks' requests, and the courier's HTTP channels (same shape, same sender).
        let specs = settings
            .hooks
            .web_hooks()
            .into_iter()
            .map(|h| h.request.clone())
            .chain(settings.courier.channels.iter().map(|c| c.request.clone()));
        for spec in specs {
            let spec = &spec;
            match request::Request::build(spec, &settings.sources).await {
                Ok(r) => {
                    requests.insert(spec.key.clone(), std::sync::Arc::new(r));
                }
                Err(message) => problems.push(tessera_config::load::Problem {
                    key: format!("{}.body", spec.key),
                    location: spec.body_location.clone(),
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let http = request::client().map_err(|e| ConfigError {
            problems: vec![tessera_config::load::Problem {
                key: "selfservice.flows".into(),
                location: tessera_config::Location::Default,
                message: format!("the HTTP client for web hooks could not be built: {e}"),
            }],
        })?;
        Ok(Social {
            providers,
            pool,
            requests,
            http,
        })
    }

    /// The compiled request of the web hook configured at `key`.
    pub fn request(&self, key: &str) -> Option<&std::sync::Arc<request::Request>> {
        self.requests.get(key)
    }

    /// The HTTP client for hooks' requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// No providers at all (social sign-in off).
    pub fn empty(pool: MapperPool) -> Social {
        Social {
            providers: vec![],
            pool,
            requests: Default::default(),
            http: reqwest::Client::new(),
        }
    }

    pub fn providers(&self) -> &[Configured] {
        &self.providers
    }

    pub fn get(&self, id: &str) -> Option<&Configured> {
        self.providers.iter().find(|p| p.id() == id)
    }

    /// The origins a social button may send the browser to for authorization: every
    /// configured `auth_url`, `issuer_url` and `api_base_url`, and the type's fixed
    /// authorization origins where no `auth_url` replaces them. The hosted pages' CSP
    /// `form-action` lists them (browsers apply it to the redirect after a form post).
    pub fn authorization_origins(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in &self.providers {
            let c = p.config();
            for u in [&c.auth_url, &c.issuer_url, &c.api_base_url] {
                out.extend(types::origin_of(u));
            }
            if c.auth_url.is_empty() {
                out.extend(p.kind.auth_origins.iter().map(|o| o.to_string()));
            }
        }
        out
    }

    pub fn pool(&self) -> &MapperPool {
        &self.pool
    }

    /// Runs a provider's mapper on normalized claims and checks the output's shape.
    pub async fn map(
        &self,
        provider: &Configured,
        claims: &serde_json::Value,
    ) -> Result<Mapped, MappingError> {
        let out = self
            .pool
            .evaluate(&provider.mapper, claims)
            .await
            .map_err(MappingError::Mapper)?;
        Mapped::from_output(out)
    }
}
