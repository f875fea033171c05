//! The typed configuration. Field names are Kratos's; every struct refuses unknown keys so a typo
//! is an error, not a silently ignored setting. Nothing here is skipped when serialising: the
//! serialised default *is* the list of keys Tessera knows (used for environment overrides).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dsn: String,
    pub serve: Serve,
    pub secrets: Secrets,
    pub identity: IdentityConfig,
    pub selfservice: SelfService,
    pub session: SessionConfig,
    pub log: LogConfig,
    pub hashers: Hashers,
    /// Tessera extension: the hosted sign-in experience.
    pub experience: crate::experience::ExperienceConfig,
    /// Tessera extension: the OpenID Provider for apps (apps themselves live in the database).
    pub oidc_provider: OidcProviderConfig,
    /// Tessera extension: bounds on what clients, signed in or not, can make the server do.
    pub limits: LimitsConfig,
    /// Tessera extension: where documents named by URL (schemas, mappers) may come from.
    pub sources: SourcesConfig,
    pub courier: crate::courier::CourierConfig,
}

/// `sources:` (Tessera). Schemas and mappers named by `https://` URL are fetched once at load;
/// by default only from public addresses, over TLS, without following redirects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Allow plain `http://` URLs.
    pub allow_http: bool,
    /// Allow URLs that resolve to loopback, private or link-local addresses (an internal
    /// configuration server).
    pub allow_private_networks: bool,
}

/// `limits:` (Tessera). On by default; every number is per window and applies to failures
/// only, so people who sign in correctly never meet a limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub enabled: bool,
    pub password_hashing: HashingLimits,
    pub failed_logins: FailedLoginLimits,
    /// New self-service flows one client address may start per minute (per instance).
    pub flows_per_address_per_minute: u32,
    /// Failed token requests one app (or, unauthenticated, one address) may make per minute
    /// (per instance).
    pub token_failures_per_client_per_minute: u32,
    /// Reverse proxies in front of Tessera that append to `X-Forwarded-For`: the client
    /// address is that many entries from the right. 0 (the default) uses the connection's.
    pub trusted_proxy_hops: u32,
    /// Longest a request may take to be answered (a duration such as `30s`); a slower one is
    /// answered 503 and its work dropped.
    pub request_timeout: String,
    /// Longest a client may take to send a request's headers (slow-loris connections).
    pub header_read_timeout: String,
    /// Longest an answer may wait for a client that reads nothing (slow readers): counted
    /// while no byte can be written, restarted by each write that goes through.
    pub write_stall_timeout: String,
    /// Connections each listener holds open at once; the next ones are closed as soon as they
    /// are accepted, so idle or slow clients cannot take every file descriptor.
    pub max_connections: u32,
    /// Connections one client address (an IPv6 /64) may hold open on a listener at once, so one
    /// source cannot take all of `max_connections` and lock newcomers out. Not applied when
    /// `trusted_proxy_hops` > 0: the peers are then the proxies, where this limit belongs.
    pub max_connections_per_address: u32,
    /// Longest one call to a social sign-in provider may take (token, user info, keys), a
    /// duration such as `10s`. Unset: 10 s, or half of `request_timeout` when that is shorter.
    pub upstream_timeout: Option<String>,
    /// Verification and recovery codes sent per hour (`lifecycle.rs`).
    pub code_sends: crate::lifecycle::CodeSendLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            password_hashing: HashingLimits::default(),
            failed_logins: FailedLoginLimits::default(),
            flows_per_address_per_minute: 300,
            token_failures_per_client_per_minute: 30,
            trusted_proxy_hops: 0,
            request_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            write_stall_timeout: "30s".into(),
            max_connections: 4096,
            max_connections_per_address: 512,
            upstream_timeout: None,
            code_sends: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HashingLimits {
    /// Memory that concurrent password hashing may use in all (a size such as `256MiB`): the
    /// number of hashes computed at once is this divided by `hashers.argon2.memory`.
    pub memory: Value,
    /// Requests that may wait for a hashing slot; more are answered 503 with `Retry-After`.
    pub queue: u32,
}

impl Default for HashingLimits {
    fn default() -> Self {
        HashingLimits {
            memory: Value::String("256MiB".into()),
            queue: 32,
        }
    }
}

/// Failed password sign-ins allowed per `window`, counted in the database (so across all
/// instances). A limit reached answers 429 with `Retry-After` until the window ends; nothing
/// locks an account for longer, and a person at another address is not held up by the
/// per-address limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FailedLoginLimits {
    pub window: String,
    pub per_identifier_and_address: u32,
    pub per_identifier: u32,
    pub per_address: u32,
}

impl Default for FailedLoginLimits {
    fn default() -> Self {
        FailedLoginLimits {
            window: "15m".into(),
            per_identifier_and_address: 10,
            per_identifier: 100,
            per_address: 100,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Serve {
    pub public: Endpoint,
    pub admin: Endpoint,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoint {
    pub base_url: String,
    pub host: String,
    pub port: u16,
    /// Kratos's `serve.public.cors` (refused on the admin listener, which browsers must not
    /// reach at all).
    pub cors: CorsConfig,
    pub tls: TlsConfig,
    pub request_log: RequestLogConfig,
}

/// `serve.public.cors`: Kratos's keys, with its defaults (ory/x `corsx` and Kratos's
/// `driver/config`): off unless `enabled`; then methods GET, POST, PUT, PATCH, DELETE, request
/// headers `Authorization`, `Content-Type`, `X-Session-Token`, exposed `Content-Type` and
/// `Set-Cookie`, credentials allowed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    pub enabled: bool,
    /// Exact origins (`https://app.example.com`), one `*` wildcard inside the host
    /// (`https://*.example.com`), or `*` for any origin.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    /// Accepted for compatibility; a preflight is always answered by Tessera itself.
    pub options_passthrough: bool,
    /// Seconds a browser may cache a preflight answer; 0 sends no `Access-Control-Max-Age`.
    pub max_age: u64,
    /// Accepted for compatibility: refused origins are logged at debug level regardless.
    pub debug: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: false,
            allowed_origins: vec![],
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: ["Authorization", "Content-Type", "X-Session-Token"]
                .map(String::from)
                .to_vec(),
            exposed_headers: ["Content-Type", "Set-Cookie"].map(String::from).to_vec(),
            allow_credentials: true,
            options_passthrough: false,
            max_age: 0,
            debug: false,
        }
    }
}

/// `serve.*.tls`: a PEM certificate chain and private key, each by `path` or `base64`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Newer Ory configurations carry it; TLS is on when a certificate is configured unless
    /// this is `false`.
    pub enabled: Option<bool>,
    pub cert: PemSource,
    pub key: PemSource,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PemSource {
    pub path: String,
    pub base64: String,
}

/// `serve.*.request_log`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// Leave `/health/*` probes out of the request log.
    pub disable_for_health: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    pub default: Vec<String>,
    pub cookie: Vec<String>,
    pub cipher: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub default_schema_id: String,
    pub schemas: Vec<SchemaRef>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            default_schema_id: "default".into(),
            schemas: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchemaRef {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelfService {
    pub default_browser_return_url: String,
    pub allowed_return_urls: Vec<String>,
    pub methods: Methods,
    pub flows: Flows,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Methods {
    pub password: PasswordMethod,
    pub oidc: OidcMethod,
    pub code: crate::account::CodeMethodConfig,
    /// Kratos's `link` method of verification and recovery (`lifecycle.rs`).
    pub link: crate::lifecycle::LinkMethodConfig,
    pub totp: crate::mfa::TotpMethod,
    pub lookup_secret: crate::mfa::LookupSecretMethod,
    pub webauthn: crate::mfa::WebauthnMethod,
    pub passkey: crate::mfa::WebauthnMethod,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordMethod {
    pub enabled: bool,
    pub config: PasswordMethodConfig,
}

impl Default for PasswordMethod {
    fn default() -> Self {
        PasswordMethod {
            enabled: true,
            config: PasswordMethodConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordMethodConfig {
    pub min_password_length: usize,
    pub identifier_similarity_check_enabled: bool,
}

impl Default for PasswordMethodConfig {
    fn default() -> Self {
        PasswordMethodConfig {
            min_password_length: 8,
            identifier_similarity_check_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcMethod {
    pub enabled: bool,
    pub config: OidcMethodConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcMethodConfig {
    /// Provider entries are validated by the social sign-in layer, which knows each type's keys.
    pub providers: Vec<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Flows {
    pub login: FlowConfig,
    pub registration: RegistrationFlowConfig,
    pub settings: SettingsFlowConfig,
    pub logout: LogoutFlowConfig,
    pub error: UiUrlConfig,
    pub verification: crate::lifecycle::LifecycleFlowConfig,
    pub recovery: crate::lifecycle::LifecycleFlowConfig,
}

/// `selfservice.flows.settings`: a flow, plus how recent a sign-in must be to change
/// credentials (Kratos's `privileged_session_max_age`, 15 minutes by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsFlowConfig {
    pub ui_url: String,
    pub lifespan: String,
    pub privileged_session_max_age: String,
    pub before: crate::hooks::BeforeHooks,
    pub after: crate::hooks::SettingsAfter,
    /// `aal1` or `highest_available` (see `mfa.rs`).
    pub required_aal: String,
}

impl Default for SettingsFlowConfig {
    fn default() -> Self {
        SettingsFlowConfig {
            ui_url: String::new(),
            lifespan: "1h".into(),
            privileged_session_max_age: "15m".into(),
            before: Default::default(),
            after: Default::default(),
            required_aal: "highest_available".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    pub ui_url: String,
    pub lifespan: String,
    pub before: crate::hooks::BeforeHooks,
    pub after: crate::hooks::LoginAfter,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            ui_url: String::new(),
            lifespan: "1h".into(),
            before: Default::default(),
            after: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationFlowConfig {
    pub enabled: bool,
    pub ui_url: String,
    pub lifespan: String,
    pub before: crate::hooks::BeforeHooks,
    pub after: RegistrationAfter,
}

impl Default for RegistrationFlowConfig {
    fn default() -> Self {
        RegistrationFlowConfig {
            enabled: true,
            ui_url: String::new(),
            lifespan: "1h".into(),
            before: Default::default(),
            after: RegistrationAfter::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationAfter {
    pub default_browser_return_url: String,
    /// Hooks for every method that has none of its own (Kratos: web hooks only).
    pub hooks: Vec<Hook>,
    pub password: HookList,
    pub oidc: HookList,
    /// A sign-up by one-time code (`selfservice.methods.code.passwordless_enabled`).
    pub code: HookList,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HookList {
    pub default_browser_return_url: String,
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub hook: String,
    #[serde(default)]
    pub config: Value,
}

impl HookList {
    pub fn has(&self, name: &str) -> bool {
        self.hooks.iter().any(|h| h.hook == name)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutFlowConfig {
    pub after: LogoutAfter,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutAfter {
    pub default_browser_return_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UiUrlConfig {
    pub ui_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub lifespan: String,
    pub cookie: SessionCookie,
    /// Tessera extension: how long this instance may answer `whoami` from memory. Writes made
    /// through this instance take effect at once; a revocation made on another instance takes
    /// effect here within this time. `0` turns the cache off.
    pub cache_ttl: String,
    pub whoami: crate::mfa::WhoamiConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifespan: "24h".into(),
            cookie: SessionCookie::default(),
            cache_ttl: "1s".into(),
            whoami: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionCookie {
    pub name: String,
    pub domain: String,
    pub path: String,
    pub same_site: String,
    pub persistent: bool,
}

impl Default for SessionCookie {
    fn default() -> Self {
        SessionCookie {
            name: "tessera_session".into(),
            domain: String::new(),
            path: "/".into(),
            same_site: "Lax".into(),
            persistent: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
    /// Accepted for Kratos compatibility; Tessera never logs secrets either way.
    pub leak_sensitive_values: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
            leak_sensitive_values: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Hashers {
    pub algorithm: String,
    pub argon2: Argon2Config,
}

impl Default for Hashers {
    fn default() -> Self {
        Hashers {
            algorithm: "argon2".into(),
            argon2: Argon2Config::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    /// Bytes as a number or a size such as `64MB` / `128MiB` (Kratos writes sizes).
    pub memory: Value,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Argon2Config {
            // OWASP's current argon2id recommendation (m=19 MiB, t=2, p=1): as strong as
            // Kratos's heavier defaults against offline guessing, at a third of the memory, so
            // a burst of sign-ins cannot take the server's memory.
            memory: Value::String("19MiB".into()),
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Parses `64MB`, `128MiB`, `65536KB` or a plain byte count into KiB.
pub fn parse_size_kib(v: &Value) -> Result<u32, String> {
    let bytes: f64 = match v {
        Value::Number(n) => n.as_f64().ok_or("not a number")?,
        Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let num: f64 = s[..split]
                .parse()
                .map_err(|_| format!("`{s}` is not a size like 64MB"))?;
            let mult = match s[split..].trim().to_ascii_uppercase().as_str() {
                "" | "B" => 1.0,
                "KB" | "K" => 1e3,
                "KIB" => 1024.0,
                "MB" | "M" => 1e6,
                "MIB" => 1048576.0,
                "GB" | "G" => 1e9,
                "GIB" => 1073741824.0,
                other => {
                    return Err(format!(
                        "unknown size unit `{other}` (use B, KB, MB, GB, KiB, MiB, GiB)"
                    ));
                }
            };
            num * mult
        }
        _ => return Err("expected a size such as 64MB".into()),
    };
    let kib = (bytes / 1024.0).round();
    if !(8.0..=4_194_304.0).contains(&kib) {
        return Err("argon2 memory must be between 8KiB and 4GiB".into());
    }
    Ok(kib as u32)
}

/// Tessera extension: the OpenID Provider's signing algorithm and lifespans.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderConfig {
    /// `RS256` (default) or `ES256`: the algorithm of keys generated from now on.
    pub signing_alg: String,
    /// How long a retired signing key stays in the JWKS after `tessera keys rotate`.
    pub key_rotation_overlap: String,
    pub lifespans: OidcProviderLifespans,
    pub registration: OidcProviderRegistration,
}

/// Dynamic client registration (RFC 7591/7592): off unless enabled, and then only for callers
/// holding the initial access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderRegistration {
    pub enabled: bool,
    pub initial_access_token: String,
}

impl Default for OidcProviderConfig {
    fn default() -> Self {
        OidcProviderConfig {
            signing_alg: "RS256".into(),
            key_rotation_overlap: "24h".into(),
            lifespans: OidcProviderLifespans::default(),
            registration: OidcProviderRegistration::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderLifespans {
    pub authorization_code: String,
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
    /// How long a sign-in (login and consent) started by an app may take.
    pub request: String,
}

impl Default for OidcProviderLifespans {
    fn default() -> Self {
        OidcProviderLifespans {
            authorization_code: "1m".into(),
            access_token: "1h".into(),
            id_token: "1h".into(),
            refresh_token: "720h".into(),
            request: "1h".into(),
        }
    }
}
