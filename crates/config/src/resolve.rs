//! Turns a loaded configuration into the resolved settings the server runs with, checking every
//! rule that needs more than a type: secrets long enough, URLs that parse, durations, schema ids.
//! All problems are reported together, each with its key and location.

use crate::load::{ConfigError, Loaded, Problem, problem};
use crate::model::parse_size_kib;
use std::path::PathBuf;
use std::time::Duration;
use tessera_core::duration;
use url::Url;

pub use crate::serve::MIN_SECRET_LENGTH;

#[derive(Debug, Clone)]
pub struct SchemaSource {
    pub id: String,
    pub url: String,
    pub base_dir: Option<PathBuf>,
}

/// One `selfservice.methods.oidc.config.providers[]` entry as written. The social sign-in layer
/// validates it (it knows each provider type's keys); this keeps what it needs to say where a
/// problem is.
#[derive(Debug, Clone)]
pub struct ProviderSource {
    /// Dotted key of the entry, e.g. `selfservice.methods.oidc.config.providers.0`.
    pub key: String,
    pub value: serde_json::Value,
    /// Locations of the entry and of every key inside it, by full dotted key.
    pub locations: std::collections::HashMap<String, crate::Location>,
    /// Directory of the config file that set the entry, for relative `file://` mapper URLs.
    pub base_dir: Option<PathBuf>,
}

impl ProviderSource {
    /// Where `key` (relative to the entry, e.g. `mapper_url`) was set, or the entry itself.
    pub fn location(&self, key: &str) -> crate::Location {
        let full = format!("{}.{key}", self.key);
        self.locations
            .get(&full)
            .or_else(|| self.locations.get(&self.key))
            .cloned()
            .unwrap_or(crate::Location::Default)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub dev: bool,
    pub dsn: String,
    /// `serve.public|admin`: where the listeners bind and their base URLs (`serve.rs`).
    pub serve: crate::serve::ServeSettings,
    /// `secrets.*` (`serve.rs`).
    pub secrets: crate::serve::SecretSettings,
    /// `identity.*`: the identity schemas.
    pub identity: IdentitySettings,
    /// `selfservice.*`: the flows' pages, lifespans and return URLs (`flows.rs`).
    pub flows: crate::flows::FlowSettings,
    /// `selfservice.methods.password` and `hashers.*` (`methods.rs`).
    pub password: crate::methods::PasswordSettings,
    /// `selfservice.methods.oidc` (`methods.rs`).
    pub oidc: crate::methods::OidcSettings,
    /// `session:` (lifespan, cache, cookie).
    pub session: crate::session::SessionSettings,
    /// Every stage's hooks (`selfservice.flows.*.before|after`).
    pub hooks: crate::hooks::HookSettings,
    /// `courier:` (SMTP, retries, templates, send limits).
    pub courier: crate::courier::CourierSettings,
    /// Verification, recovery and their codes (`lifecycle.rs`).
    pub lifecycle: crate::lifecycle::LifecycleSettings,
    /// One-time-code sign-in and sign-up (`account.rs`).
    pub code: crate::account::CodeSettings,
    /// Assurance levels required by `whoami` and settings (`mfa.rs`).
    pub mfa: crate::mfa::MfaSettings,
    /// `log.*` (`serve.rs`).
    pub log: crate::serve::LogSettings,
    /// The hosted UI's sign-in experience (`experience:`).
    pub experience: crate::Experience,
    /// The OpenID Provider's settings (`oidc_provider`, a Tessera extension).
    pub op: OpSettings,
    /// Abuse limits (`limits`, a Tessera extension).
    pub limits: LimitSettings,
    /// Where URL-addressed documents may come from (`sources`, a Tessera extension);
    /// `PUT /admin/identity-config` tightens it further.
    pub sources: crate::source::SourcePolicy,
    /// What each listener adds around the routes: TLS, CORS, the request log (`serve.*`).
    pub edge: crate::edge::EdgeSettings,
}

/// `identity.*`.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub default_schema_id: String,
    /// Empty means "use the built-in default schema".
    pub schemas: Vec<SchemaSource>,
}

pub(crate) fn parse_url(
    loaded: &Loaded,
    key: &str,
    value: &str,
    problems: &mut Vec<Problem>,
) -> Option<Url> {
    match Url::parse(value) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
        Ok(_) => {
            problems.push(problem(
                loaded,
                key,
                format!("`{value}` must be an http:// or https:// URL"),
            ));
            None
        }
        Err(e) => {
            problems.push(problem(
                loaded,
                key,
                format!("`{value}` is not a valid URL ({e}); write e.g. https://auth.example.com/"),
            ));
            None
        }
    }
}

pub(crate) fn parse_duration(
    loaded: &Loaded,
    key: &str,
    value: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    match duration::parse(value) {
        Ok(d) if d > Duration::ZERO => d,
        Ok(_) => {
            problems.push(problem(loaded, key, "must be longer than zero"));
            Duration::from_secs(3600)
        }
        Err(e) => {
            problems.push(problem(loaded, key, format!("{e}; write e.g. 1h or 30m")));
            Duration::from_secs(3600)
        }
    }
}

pub(crate) fn provider_sources(loaded: &Loaded) -> Vec<ProviderSource> {
    let prefix = "selfservice.methods.oidc.config.providers";
    loaded
        .config
        .selfservice
        .methods
        .oidc
        .config
        .providers
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let key = format!("{prefix}.{i}");
            let inner = format!("{key}.");
            let mut locations: std::collections::HashMap<String, crate::Location> = loaded
                .locations
                .iter()
                .filter(|(k, _)| k.starts_with(&inner))
                .map(|(k, l)| (k.clone(), l.clone()))
                .collect();
            locations.insert(key.clone(), loaded.location(&key));
            ProviderSource {
                base_dir: crate::load::base_dir(loaded, &key),
                key,
                value: value.clone(),
                locations,
            }
        })
        .collect()
}

/// Resolves and validates. `generated_secret` is used when no secret is configured in `--dev`.
pub fn resolve(
    loaded: &Loaded,
    dev: bool,
    generated_secret: Option<&str>,
) -> Result<Settings, ConfigError> {
    let c = &loaded.config;
    let mut p = Vec::new();

    let dsn = if c.dsn.trim().is_empty() {
        if dev {
            "sqlite://tessera.db?mode=rwc".to_string()
        } else {
            p.push(problem(loaded, "dsn", "is required: set e.g. `dsn: sqlite:///var/lib/tessera/db.sqlite?_fk=true` or the DSN environment variable (or use --dev)"));
            String::new()
        }
    } else {
        c.dsn.trim().to_string()
    };
    let edge = crate::edge::resolve(loaded, &c.serve, &mut p);
    let serve = crate::serve::resolve_serve(loaded, c, dev, &edge, &mut p);
    let secrets = crate::serve::resolve_secrets(loaded, c, generated_secret, &mut p);
    let identity = resolve_identity(loaded, c, &mut p);
    let flows = crate::flows::resolve_flows(loaded, c, &serve.public_base_url, &mut p);
    let hooks = resolve_hook_files(loaded, c, &mut p);
    let secure_cookies = serve.public_base_url.scheme() == "https" && !dev;
    let session = crate::session::resolve_session(loaded, &c.session, secure_cookies, &mut p);
    let sources = crate::source::SourcePolicy {
        allow_http: c.sources.allow_http,
        allow_private_networks: c.sources.allow_private_networks,
        ..crate::source::SourcePolicy::default()
    };
    let courier = crate::courier::resolve_courier(loaded, &c.courier, &sources, &mut p);
    let code = crate::account::resolve_code_method(loaded, &c.selfservice.methods.code, &mut p);
    let mfa = crate::mfa::resolve_mfa(
        loaded,
        &c.session.whoami.required_aal,
        &c.selfservice.flows.settings.required_aal,
        &mut p,
    );
    let password = crate::methods::resolve_password(loaded, c, &mut p);
    let log = crate::serve::resolve_log(loaded, c, &mut p);
    let provider_ids: Vec<String> = c
        .selfservice
        .methods
        .oidc
        .config
        .providers
        .iter()
        .filter_map(|v| v.get("id").and_then(serde_json::Value::as_str))
        .map(String::from)
        .collect();
    let experience = crate::experience::resolve_experience(
        loaded,
        c.selfservice.methods.password.enabled,
        c.selfservice.methods.oidc.enabled,
        &provider_ids,
        &mut p,
    );
    let op = resolve_op(loaded, &c.oidc_provider, &mut p);
    let limits = resolve_limits(loaded, &c.limits, password.argon2.memory, &mut p);
    let lifecycle = crate::lifecycle::resolve_lifecycle(
        loaded,
        &serve.public_base_url,
        c.limits.enabled,
        &mut p,
    );

    if !p.is_empty() {
        return Err(ConfigError { problems: p });
    }
    Ok(Settings {
        dev,
        dsn,
        serve,
        secrets,
        identity,
        flows,
        password,
        oidc: crate::methods::resolve_oidc(loaded, c),
        session,
        hooks,
        courier,
        lifecycle,
        code,
        mfa,
        log,
        experience,
        op,
        limits,
        sources,
        edge,
    })
}

/// `identity.schemas` (unique ids, URLs of a scheme we read) and `identity.default_schema_id`
/// (one of them, when any are listed).
fn resolve_identity(
    loaded: &Loaded,
    c: &crate::model::Config,
    p: &mut Vec<Problem>,
) -> IdentitySettings {
    let mut seen = std::collections::HashSet::new();
    let mut schemas = Vec::new();
    for (i, s) in c.identity.schemas.iter().enumerate() {
        let key = format!("identity.schemas.{i}");
        if s.id.trim().is_empty() {
            p.push(problem(loaded, &format!("{key}.id"), "must not be empty"));
        }
        if !seen.insert(s.id.clone()) {
            p.push(problem(
                loaded,
                &format!("{key}.id"),
                format!("schema id `{}` is used twice; ids must be unique", s.id),
            ));
        }
        if !(s.url.starts_with("file://")
            || s.url.starts_with("base64://")
            || s.url.starts_with("https://")
            || s.url.starts_with("http://"))
        {
            p.push(problem(
                loaded,
                &format!("{key}.url"),
                format!("`{}` must start with file://, base64:// or https://", s.url),
            ));
        }
        schemas.push(SchemaSource {
            id: s.id.clone(),
            url: s.url.clone(),
            base_dir: crate::load::base_dir(loaded, &format!("{key}.url")),
        });
    }
    let default_schema_id = c.identity.default_schema_id.clone();
    if !schemas.is_empty() && !schemas.iter().any(|s| s.id == default_schema_id) {
        let ids: Vec<&str> = schemas.iter().map(|s| s.id.as_str()).collect();
        p.push(problem(
            loaded,
            "identity.default_schema_id",
            format!(
                "`{default_schema_id}` is not one of the configured schemas ({})",
                ids.join(", ")
            ),
        ));
    }
    IdentitySettings {
        default_schema_id,
        schemas,
    }
}

/// Every flow stage's hooks, from where Kratos keeps them in `selfservice.flows`.
fn resolve_hook_files(
    loaded: &Loaded,
    c: &crate::model::Config,
    p: &mut Vec<Problem>,
) -> crate::hooks::HookSettings {
    let flows = &c.selfservice.flows;
    let after = &flows.registration.after;
    crate::hooks::resolve_hooks(
        loaded,
        &crate::hooks::HookFiles {
            registration_before: &flows.registration.before.hooks,
            registration_after_global: &after.hooks,
            registration_after_password: &after.password.hooks,
            registration_after_oidc: &after.oidc.hooks,
            registration_after_code: &after.code.hooks,
            login_before: &flows.login.before.hooks,
            login_after: &flows.login.after,
            settings_before: &flows.settings.before.hooks,
            settings_after: &flows.settings.after,
            verification_before: &flows.verification.before.hooks,
            verification_after: &flows.verification.after.hooks,
            recovery_before: &flows.recovery.before.hooks,
            recovery_after: &flows.recovery.after.hooks,
        },
        p,
    )
}

/// Schemes a return URL may never use, listed or not: a browser runs (`javascript:`,
/// `vbscript:`) or shows (`data:`, `blob:`, `about:`) what follows them, or reads a local file
/// (`file:`), so sending a signed-in browser there is an injection, not a redirect.
pub const FORBIDDEN_RETURN_SCHEMES: [&str; 6] =
    ["javascript", "data", "vbscript", "file", "blob", "about"];

/// Why a URL cannot be a return URL (`selfservice.allowed_return_urls`, `return_to`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error(
        "`{url}` is not an absolute URL ({reason}); write e.g. https://app.example.com/ or a native app's myapp://callback"
    )]
    Invalid { url: String, reason: String },
    #[error(
        "`{url}` uses the `{scheme}:` scheme, which a browser runs or reads locally rather than navigates to; list an https:// URL or a native app's own scheme (e.g. myapp://callback)"
    )]
    ForbiddenScheme { url: String, scheme: String },
}

/// Parses a return URL as Kratos does (any absolute URL with a scheme: `https://…`, an Expo
/// app's `exp://…`, RFC 8252's `com.example.app:/cb`), refusing the schemes of
/// [`FORBIDDEN_RETURN_SCHEMES`].
pub fn parse_return_url(value: &str) -> Result<Url, ReturnUrlError> {
    let u = Url::parse(value).map_err(|e| ReturnUrlError::Invalid {
        url: value.to_owned(),
        reason: e.to_string(),
    })?;
    // `Url` lowercases the scheme, so `JavaScript:` is caught too.
    if FORBIDDEN_RETURN_SCHEMES.contains(&u.scheme()) {
        return Err(ReturnUrlError::ForbiddenScheme {
            url: value.to_owned(),
            scheme: u.scheme().to_owned(),
        });
    }
    Ok(u)
}

impl Settings {
    /// A `return_to` is honoured only when it shares scheme, host and port with an allowed URL
    /// (or the public base URL) and lies under its path — never an open redirect. As Kratos
    /// (`x/redir.SecureRedirectTo`) any scheme works when an entry lists it, so a native app's
    /// `exp://…/Callback` can be a target; the schemes a browser executes never can, even if
    /// listed. Hosts compare case-insensitively (custom schemes keep the host's case); paths
    /// match at a segment boundary, stricter than Kratos's plain prefix.
    pub fn is_allowed_return(&self, candidate: &str) -> Option<Url> {
        let u = parse_return_url(candidate).ok()?;
        let allowed = self
            .flows
            .allowed_return_urls
            .iter()
            .chain(std::iter::once(&self.serve.public_base_url))
            .chain(std::iter::once(&self.flows.default_return_url));
        for a in allowed {
            // The allowed path is a prefix at a segment boundary: `/app` allows `/app` and
            // `/app/…`, not `/app-other`.
            let prefix = a.path().trim_end_matches('/');
            let path_ok = match u.path().strip_prefix(prefix) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            };
            let same_host = match (a.host_str(), u.host_str()) {
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                (None, None) => true,
                _ => false,
            };
            if a.scheme() == u.scheme()
                && same_host
                && a.port_or_known_default() == u.port_or_known_default()
                && path_ok
            {
                return Some(u);
            }
        }
        None
    }
}

/// The resolved `limits` (see [`crate::model::LimitsConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    pub enabled: bool,
    /// Password hashes computed at once (from the memory budget and the argon2 memory).
    pub hashing_concurrency: usize,
    pub hashing_queue: usize,
    pub failed_login_window: Duration,
    pub failed_per_identifier_and_address: u32,
    pub failed_per_identifier: u32,
    pub failed_per_address: u32,
    pub flows_per_address_per_minute: u32,
    pub token_failures_per_client_per_minute: u32,
    pub trusted_proxy_hops: u32,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub upstream_timeout: Duration,
}

fn resolve_limits(
    loaded: &Loaded,
    c: &crate::model::LimitsConfig,
    argon2_kib: u32,
    p: &mut Vec<Problem>,
) -> LimitSettings {
    let budget_kib = match parse_size_kib(&c.password_hashing.memory) {
        Ok(k) => k,
        Err(e) => {
            p.push(problem(loaded, "limits.password_hashing.memory", e));
            256 * 1024
        }
    };
    if budget_kib < argon2_kib {
        p.push(problem(
            loaded,
            "limits.password_hashing.memory",
            format!(
                "is smaller than one password hash needs (hashers.argon2.memory, {argon2_kib} KiB): raise it or lower the argon2 memory"
            ),
        ));
    }
    let f = &c.failed_logins;
    for (key, v) in [
        (
            "limits.failed_logins.per_identifier_and_address",
            f.per_identifier_and_address,
        ),
        ("limits.failed_logins.per_identifier", f.per_identifier),
        ("limits.failed_logins.per_address", f.per_address),
        (
            "limits.flows_per_address_per_minute",
            c.flows_per_address_per_minute,
        ),
        (
            "limits.token_failures_per_client_per_minute",
            c.token_failures_per_client_per_minute,
        ),
        ("limits.max_connections", c.max_connections),
        (
            "limits.max_connections_per_address",
            c.max_connections_per_address,
        ),
    ] {
        if v == 0 {
            p.push(problem(
                loaded,
                key,
                "must be at least 1 (to switch every limit off, set limits.enabled: false)",
            ));
        }
    }
    let request_timeout = parse_duration(loaded, "limits.request_timeout", &c.request_timeout, p);
    let upstream_timeout = match &c.upstream_timeout {
        // One sign-in makes several upstream calls within one request.
        None => Duration::from_secs(10).min(request_timeout / 2),
        Some(v) => {
            let d = parse_duration(loaded, "limits.upstream_timeout", v, p);
            if d >= request_timeout {
                // A call allowed to outlast the request would be cut off by the request
                // timeout with a bare 503 instead of the sign-in page's message.
                p.push(problem(
                    loaded,
                    "limits.upstream_timeout",
                    format!(
                        "must be shorter than limits.request_timeout ({} s), which bounds the whole sign-in request",
                        request_timeout.as_secs_f64()
                    ),
                ));
            }
            d
        }
    };
    LimitSettings {
        enabled: c.enabled,
        hashing_concurrency: (budget_kib / argon2_kib.max(1)).max(1) as usize,
        hashing_queue: c.password_hashing.queue as usize,
        failed_login_window: parse_duration(loaded, "limits.failed_logins.window", &f.window, p),
        failed_per_identifier_and_address: f.per_identifier_and_address,
        failed_per_identifier: f.per_identifier,
        failed_per_address: f.per_address,
        flows_per_address_per_minute: c.flows_per_address_per_minute,
        token_failures_per_client_per_minute: c.token_failures_per_client_per_minute,
        trusted_proxy_hops: c.trusted_proxy_hops,
        request_timeout,
        header_read_timeout: parse_duration(
            loaded,
            "limits.header_read_timeout",
            &c.header_read_timeout,
            p,
        ),
        write_stall_timeout: parse_duration(
            loaded,
            "limits.write_stall_timeout",
            &c.write_stall_timeout,
            p,
        ),
        max_connections: c.max_connections as usize,
        max_connections_per_address: c.max_connections_per_address as usize,
        upstream_timeout,
    }
}

/// The OpenID Provider's resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSettings {
    /// `RS256` or `ES256`.
    pub signing_alg: String,
    pub key_rotation_overlap: Duration,
    pub code_lifespan: Duration,
    pub access_token_lifespan: Duration,
    pub id_token_lifespan: Duration,
    pub refresh_token_lifespan: Duration,
    pub request_lifespan: Duration,
    /// Dynamic client registration: the initial access token when it is enabled.
    pub registration_token: Option<String>,
}

fn resolve_op(
    loaded: &Loaded,
    c: &crate::model::OidcProviderConfig,
    p: &mut Vec<Problem>,
) -> OpSettings {
    let alg = c.signing_alg.to_ascii_uppercase();
    if alg != "RS256" && alg != "ES256" {
        p.push(problem(
            loaded,
            "oidc_provider.signing_alg",
            format!("`{}` is not supported: use RS256 or ES256", c.signing_alg),
        ));
    }
    let l = &c.lifespans;
    OpSettings {
        signing_alg: alg,
        key_rotation_overlap: parse_duration(
            loaded,
            "oidc_provider.key_rotation_overlap",
            &c.key_rotation_overlap,
            p,
        ),
        code_lifespan: parse_duration(
            loaded,
            "oidc_provider.lifespans.authorization_code",
            &l.authorization_code,
            p,
        ),
        access_token_lifespan: parse_duration(
            loaded,
            "oidc_provider.lifespans.access_token",
            &l.access_token,
            p,
        ),
        id_token_lifespan: parse_duration(
            loaded,
            "oidc_provider.lifespans.id_token",
            &l.id_token,
            p,
        ),
        refresh_token_lifespan: parse_duration(
            loaded,
            "oidc_provider.lifespans.refresh_token",
            &l.refresh_token,
            p,
        ),
        request_lifespan: parse_duration(loaded, "oidc_provider.lifespans.request", &l.request, p),
        registration_token: resolve_registration(loaded, &c.registration, p),
    }
}

/// Open registration would let anyone on the internet create apps that send users' data where
/// they like; enabled registration therefore always needs a long initial access token.
fn resolve_registration(
    loaded: &Loaded,
    r: &crate::model::OidcProviderRegistration,
    p: &mut Vec<Problem>,
) -> Option<String> {
    if !r.enabled {
        return None;
    }
    if r.initial_access_token.chars().count() < 32 {
        p.push(problem(
            loaded,
            "oidc_provider.registration.initial_access_token",
            "dynamic client registration is enabled, so it needs an initial access token of at least 32 characters that callers must present (e.g. `openssl rand -hex 32`); open registration is not offered".to_string(),
        ));
        return None;
    }
    Some(r.initial_access_token.clone())
}
