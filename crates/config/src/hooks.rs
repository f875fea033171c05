//! Kratos's self-service hooks (`selfservice.flows.*.before|after…hooks`): the file model of
//! each stage that takes hooks, and their resolution into [`HookSettings`], which says what runs
//! where. `web_hook`'s outgoing request (`url`, `method`, `headers`, `body`, `auth`) resolves
//! into a [`RequestSpec`], the shape Kratos also uses for the courier's HTTP channel, so the
//! courier can reuse it.
//!
//! Which hook may appear where is Kratos's (`embedx/config.schema.json`); a hook Kratos does not
//! allow at a stage is refused with the list of those it does allow. Hooks Tessera does not run
//! yet are set aside with a warning by `load.rs` before this runs.

use crate::load::{Loaded, Problem, problem};
use crate::model::Hook;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

/// `selfservice.flows.{login,registration,settings,verification,recovery}.before`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BeforeHooks {
    pub hooks: Vec<Hook>,
}

/// `selfservice.flows.login.after`: per method, and `hooks` for every method that has none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginAfter {
    pub hooks: Vec<Hook>,
    pub password: MethodHooks,
    pub oidc: MethodHooks,
    /// A sign-in by one-time code.
    pub code: MethodHooks,
}

/// `selfservice.flows.settings.after`: per method, and `hooks` for every method that has none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsAfter {
    pub hooks: Vec<Hook>,
    pub password: MethodHooks,
    pub profile: MethodHooks,
    pub oidc: MethodHooks,
}

/// One method's `hooks` (its `default_browser_return_url` is set aside by `load.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MethodHooks {
    pub hooks: Vec<Hook>,
}

/// `web_hook`'s `config` as written (Kratos's `selfServiceWebHook`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebHookFile {
    #[serde(default)]
    id: String,
    pub(crate) url: String,
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) auth: Option<AuthFile>,
    #[serde(default)]
    response: ResponseFile,
    #[serde(default)]
    can_interrupt: bool,
    /// Kratos's tracing events; Tessera has no tracing, so it only has to parse.
    #[serde(default)]
    #[allow(dead_code)]
    emit_analytics_event: Option<bool>,
}

impl WebHookFile {
    /// The request part alone (the courier's `request_config`), for [`resolve_request`].
    pub(crate) fn request(
        url: String,
        method: String,
        headers: std::collections::BTreeMap<String, String>,
        body: String,
        auth: Option<AuthFile>,
    ) -> WebHookFile {
        WebHookFile {
            id: String::new(),
            url,
            method,
            headers,
            body,
            auth,
            response: ResponseFile::default(),
            can_interrupt: false,
            emit_analytics_event: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseFile {
    #[serde(default)]
    ignore: bool,
    #[serde(default)]
    parse: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    tag = "type",
    content = "config",
    rename_all = "snake_case"
)]
pub(crate) enum AuthFile {
    ApiKey {
        name: String,
        value: String,
        #[serde(rename = "in")]
        in_: ApiKeyIn,
    },
    BasicAuth {
        user: String,
        password: String,
    },
}

/// Where an `api_key` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyIn {
    Header,
    Cookie,
    /// A query parameter of the URL (Tessera extension: SMS gateways such as SMS.ru take
    /// their key so).
    Query,
}

/// How an outgoing request authenticates (Kratos's `auth`).
#[derive(Clone, PartialEq, Eq)]
pub enum RequestAuth {
    ApiKey {
        name: String,
        value: String,
        in_: ApiKeyIn,
    },
    BasicAuth {
        user: String,
        password: String,
    },
}

/// Never prints the secret part, so a settings dump or a log line cannot leak it.
impl std::fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestAuth::ApiKey { name, in_, .. } => f
                .debug_struct("ApiKey")
                .field("name", name)
                .field("in", in_)
                .field("value", &"<redacted>")
                .finish(),
            RequestAuth::BasicAuth { user, .. } => f
                .debug_struct("BasicAuth")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// An outgoing HTTP request as Kratos configures one (`web_hook`'s config and the courier's
/// `request_config`): checked at load, sent by `tessera_social::request`.
#[derive(Clone, PartialEq)]
pub struct RequestSpec {
    /// The configuration key it came from, for messages and logs.
    pub key: String,
    pub url: Url,
    /// Upper-case HTTP method.
    pub method: String,
    /// Header values are secrets as far as logs go: only the names are ever printed.
    pub headers: Vec<(String, String)>,
    /// The Jsonnet body's URL (`file://`, `base64://`, `https://`), empty for no body.
    pub body: String,
    /// The folder of the configuration file that named the body, for a relative `file://`.
    pub base_dir: Option<std::path::PathBuf>,
    /// Where the body was set, for problems found when it is fetched.
    pub body_location: crate::Location,
    pub auth: Option<RequestAuth>,
}

impl std::fmt::Debug for RequestSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RequestSpec")
            .field("key", &self.key)
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("headers", &names)
            .field("body", &self.body)
            .field("auth", &self.auth)
            .finish()
    }
}

/// A resolved `web_hook`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebHookSpec {
    /// Kratos's optional `id`, for logs.
    pub id: String,
    pub request: RequestSpec,
    /// `response.ignore`: sent in the background, never waited for, retried a few times.
    pub ignore: bool,
    /// `response.parse`: the answer may change the identity before it is saved.
    pub parse: bool,
    /// `can_interrupt`: a 4xx answer refuses the flow with its messages.
    pub can_interrupt: bool,
}

impl WebHookSpec {
    /// Runs before the identity is saved (and can stop the save): Kratos's "pre-persist".
    pub fn blocks(&self) -> bool {
        self.parse || self.can_interrupt
    }
}

/// One hook as the server runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAction {
    /// `session`: sign the new identity in (registration).
    Session,
    /// `revoke_active_sessions`: end every other session of the identity.
    RevokeActiveSessions,
    /// `show_verification_ui` (registration): a browser goes on to the verification page of
    /// the flow the registration started, rather than to the return URL.
    ShowVerificationUi,
    /// `require_verified_address` (login with a password): no session until one of the
    /// identity's addresses is verified (Kratos message 4000010).
    RequireVerifiedAddress,
    WebHook(Arc<WebHookSpec>),
}

/// The hooks of one method at one "after" stage. Kratos runs a method's own hooks, and the
/// stage's global `hooks` only when the method has none, and only after the identity is saved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AfterHooks {
    pub method: Vec<HookAction>,
    pub global: Vec<HookAction>,
}

impl AfterHooks {
    /// Hooks that run before the identity is written (blocking web hooks of the method's list).
    pub fn pre_persist(&self) -> impl Iterator<Item = &Arc<WebHookSpec>> {
        self.method.iter().filter_map(|h| match h {
            HookAction::WebHook(w) if w.blocks() => Some(w),
            _ => None,
        })
    }

    /// Hooks that run after the identity is written: the method's list, or the global one
    /// when the method has none.
    pub fn post_persist(&self) -> &[HookAction] {
        if self.method.is_empty() {
            &self.global
        } else {
            &self.method
        }
    }

    pub fn has(&self, action: &HookAction) -> bool {
        self.post_persist().contains(action)
    }
}

/// Every stage's hooks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSettings {
    pub registration_before: Vec<HookAction>,
    pub registration_after_password: AfterHooks,
    pub registration_after_oidc: AfterHooks,
    pub registration_after_code: AfterHooks,
    pub login_before: Vec<HookAction>,
    pub login_after_password: AfterHooks,
    pub login_after_oidc: AfterHooks,
    pub login_after_code: AfterHooks,
    pub settings_before: Vec<HookAction>,
    pub settings_after_password: AfterHooks,
    pub settings_after_profile: AfterHooks,
    pub settings_after_oidc: AfterHooks,
    /// `selfservice.flows.verification.before.hooks`: when a verification flow is created.
    pub verification_before: Vec<HookAction>,
    /// `selfservice.flows.verification.after.hooks`: when an address is verified (Kratos
    /// has one list for every method here, `code` and `link` alike).
    pub verification_after: Vec<HookAction>,
    /// `selfservice.flows.recovery.before.hooks`: when a recovery flow is created.
    pub recovery_before: Vec<HookAction>,
    /// `selfservice.flows.recovery.after.hooks`: when a recovery code or link signs the
    /// identity in.
    pub recovery_after: Vec<HookAction>,
}

impl HookSettings {
    /// Every web hook, for fetching and compiling their bodies once at start.
    pub fn web_hooks(&self) -> Vec<&Arc<WebHookSpec>> {
        let lists: Vec<&Vec<HookAction>> = vec![
            &self.registration_before,
            &self.login_before,
            &self.settings_before,
            &self.verification_before,
            &self.verification_after,
            &self.recovery_before,
            &self.recovery_after,
        ];
        let afters = [
            &self.registration_after_password,
            &self.registration_after_oidc,
            &self.registration_after_code,
            &self.login_after_password,
            &self.login_after_oidc,
            &self.login_after_code,
            &self.settings_after_password,
            &self.settings_after_profile,
            &self.settings_after_oidc,
        ];
        lists
            .into_iter()
            .chain(afters.into_iter().flat_map(|a| [&a.method, &a.global]))
            .flat_map(|l| l.iter())
            .filter_map(|h| match h {
                HookAction::WebHook(w) => Some(w),
                _ => None,
            })
            .collect()
    }
}

/// The `selfservice.flows` stages that take hooks, as the file model has them.
pub struct HookFiles<'a> {
    pub registration_before: &'a [Hook],
    pub registration_after_global: &'a [Hook],
    pub registration_after_password: &'a [Hook],
    pub registration_after_oidc: &'a [Hook],
    pub registration_after_code: &'a [Hook],
    pub login_before: &'a [Hook],
    pub login_after: &'a LoginAfter,
    pub settings_before: &'a [Hook],
    pub settings_after: &'a SettingsAfter,
    pub verification_before: &'a [Hook],
    pub verification_after: &'a [Hook],
    pub recovery_before: &'a [Hook],
    pub recovery_after: &'a [Hook],
}

const BEFORE: &[&str] = &["web_hook"];
const REGISTRATION_AFTER: &[&str] = &["session", "show_verification_ui", "web_hook"];
const LOGIN_AFTER: &[&str] = &["revoke_active_sessions", "web_hook"];
/// A password or a one-time code: the identity's addresses can be required verified (a code
/// sign-in verifies the address it went to before this hook looks).
const LOGIN_AFTER_PASSWORD: &[&str] = &[
    "revoke_active_sessions",
    "require_verified_address",
    "web_hook",
];
const SETTINGS_AFTER: &[&str] = &["revoke_active_sessions", "web_hook"];
/// Settings' `profile` method and every stage's global `hooks` take web hooks only (so
/// does `verification.after`: Kratos's `selfServiceHooks`).
const WEB_HOOK_ONLY: &[&str] = &["web_hook"];
/// Kratos's `selfServiceAfterRecoveryHooks`.
const RECOVERY_AFTER: &[&str] = &["revoke_active_sessions", "web_hook"];

/// Resolves every stage; problems name the hook's key and line.
pub fn resolve_hooks(loaded: &Loaded, f: &HookFiles<'_>, p: &mut Vec<Problem>) -> HookSettings {
    let r = "selfservice.flows.registration";
    let l = "selfservice.flows.login";
    let s = "selfservice.flows.settings";
    let v = "selfservice.flows.verification";
    let rc = "selfservice.flows.recovery";
    let mut list =
        |key: &str, hooks: &[Hook], allowed: &[&str]| resolve_list(loaded, key, hooks, allowed, p);
    HookSettings {
        registration_before: list(&format!("{r}.before.hooks"), f.registration_before, BEFORE),
        registration_after_password: AfterHooks {
            method: list(
                &format!("{r}.after.password.hooks"),
                f.registration_after_password,
                REGISTRATION_AFTER,
            ),
            global: list(
                &format!("{r}.after.hooks"),
                f.registration_after_global,
                WEB_HOOK_ONLY,
            ),
        },
        registration_after_oidc: AfterHooks {
            method: list(
                &format!("{r}.after.oidc.hooks"),
                f.registration_after_oidc,
                REGISTRATION_AFTER,
            ),
            global: Vec::new(),
        },
        registration_after_code: AfterHooks {
            method: list(
                &format!("{r}.after.code.hooks"),
                f.registration_after_code,
                REGISTRATION_AFTER,
            ),
            global: Vec::new(),
        },
        login_before: list(&format!("{l}.before.hooks"), f.login_before, BEFORE),
        login_after_password: AfterHooks {
            method: list(
                &format!("{l}.after.password.hooks"),
                &f.login_after.password.hooks,
                LOGIN_AFTER_PASSWORD,
            ),
            global: list(
                &format!("{l}.after.hooks"),
                &f.login_after.hooks,
                WEB_HOOK_ONLY,
            ),
        },
        login_after_oidc: AfterHooks {
            method: list(
                &format!("{l}.after.oidc.hooks"),
                &f.login_after.oidc.hooks,
                LOGIN_AFTER,
            ),
            global: Vec::new(),
        },
        login_after_code: AfterHooks {
            method: list(
                &format!("{l}.after.code.hooks"),
                &f.login_after.code.hooks,
                LOGIN_AFTER_PASSWORD,
            ),
            global: Vec::new(),
        },
        settings_before: list(&format!("{s}.before.hooks"), f.settings_before, BEFORE),
        settings_after_password: AfterHooks {
            method: list(
                &format!("{s}.after.password.hooks"),
                &f.settings_after.password.hooks,
                SETTINGS_AFTER,
            ),
            global: list(
                &format!("{s}.after.hooks"),
                &f.settings_after.hooks,
                WEB_HOOK_ONLY,
            ),
        },
        settings_after_profile: AfterHooks {
            method: list(
                &format!("{s}.after.profile.hooks"),
                &f.settings_after.profile.hooks,
                WEB_HOOK_ONLY,
            ),
            global: Vec::new(),
        },
        settings_after_oidc: AfterHooks {
            method: list(
                &format!("{s}.after.oidc.hooks"),
                &f.settings_after.oidc.hooks,
                SETTINGS_AFTER,
            ),
            global: Vec::new(),
        },
        verification_before: list(&format!("{v}.before.hooks"), f.verification_before, BEFORE),
        verification_after: list(
            &format!("{v}.after.hooks"),
            f.verification_after,
            WEB_HOOK_ONLY,
        ),
        recovery_before: list(&format!("{rc}.before.hooks"), f.recovery_before, BEFORE),
        recovery_after: list(
            &format!("{rc}.after.hooks"),
            f.recovery_after,
            RECOVERY_AFTER,
        ),
    }
    .with_globals()
}

impl HookSettings {
    /// Every method of a stage shares the stage's global list.
    fn with_globals(mut self) -> Self {
        self.registration_after_oidc.global = self.registration_after_password.global.clone();
        self.registration_after_code.global = self.registration_after_password.global.clone();
        self.login_after_oidc.global = self.login_after_password.global.clone();
        self.login_after_code.global = self.login_after_password.global.clone();
        self.settings_after_profile.global = self.settings_after_password.global.clone();
        self.settings_after_oidc.global = self.settings_after_password.global.clone();
        self
    }
}

fn resolve_list(
    loaded: &Loaded,
    key: &str,
    hooks: &[Hook],
    allowed: &[&str],
    p: &mut Vec<Problem>,
) -> Vec<HookAction> {
    let mut out = Vec::new();
    for (i, h) in hooks.iter().enumerate() {
        let at = format!("{key}.{i}");
        if !allowed.contains(&h.hook.as_str()) {
            p.push(problem(
                loaded,
                &format!("{at}.hook"),
                format!(
                    "hook `{}` cannot run here; Kratos allows {} at this stage",
                    h.hook,
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            continue;
        }
        let action = match h.hook.as_str() {
            "session" => Some(HookAction::Session),
            "revoke_active_sessions" => Some(HookAction::RevokeActiveSessions),
            "show_verification_ui" => Some(HookAction::ShowVerificationUi),
            "require_verified_address" => Some(HookAction::RequireVerifiedAddress),
            _ => resolve_web_hook(loaded, &at, &h.config, p)
                .map(|w| HookAction::WebHook(Arc::new(w))),
        };
        if let Some(a) = action {
            if out.contains(&a) {
                p.push(problem(
                    loaded,
                    &at,
                    format!(
                        "hook `{}` is listed twice at this stage; Kratos's hook lists hold unique items",
                        h.hook
                    ),
                ));
            } else {
                out.push(a);
            }
        }
    }
    out
}

/// Checks one `web_hook`'s `config`: everything that can be known without the network.
fn resolve_web_hook(
    loaded: &Loaded,
    at: &str,
    config: &Value,
    p: &mut Vec<Problem>,
) -> Option<WebHookSpec> {
    let key = format!("{at}.config");
    if config.is_null() {
        p.push(problem(
            loaded,
            &key,
            "`web_hook` needs a `config` with at least `url` and `method`",
        ));
        return None;
    }
    let file: WebHookFile = match serde_path_to_error::deserialize(config) {
        Ok(f) => f,
        Err(e) => {
            let path = e.path().to_string();
            let k = if path == "." {
                key.clone()
            } else {
                format!("{key}.{path}")
            };
            p.push(problem(
                loaded,
                &k,
                format!(
                    "{}; a web_hook config takes url, method, headers, body, auth (type api_key with config name/value/in, or basic_auth with config user/password), response (ignore, parse), can_interrupt, id, emit_analytics_event",
                    e.inner()
                ),
            ));
            return None;
        }
    };
    let before = p.len();
    if file.response.ignore && (file.response.parse || file.can_interrupt) {
        p.push(problem(
            loaded,
            &format!("{key}.response.ignore"),
            "`response.ignore: true` sends the hook without waiting for its answer, so it cannot also `parse` the answer or `can_interrupt` the flow; choose one",
        ));
    }
    let request = resolve_request(loaded, &key, &file, p);
    (p.len() == before)
        .then_some(())
        .and(request)
        .map(|request| WebHookSpec {
            id: file.id,
            request,
            ignore: file.response.ignore,
            parse: file.response.parse,
            can_interrupt: file.can_interrupt,
        })
}

pub(crate) fn resolve_request(
    loaded: &Loaded,
    key: &str,
    file: &WebHookFile,
    p: &mut Vec<Problem>,
) -> Option<RequestSpec> {
    let before = p.len();
    let url = match Url::parse(&file.url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            p.push(problem(
                loaded,
                &format!("{key}.url"),
                format!("`{}` must be an http:// or https:// URL", file.url),
            ));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            p.push(problem(
                loaded,
                &format!("{key}.url"),
                format!("`{}` has no host", file.url),
            ));
            None
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            p.push(problem(
                loaded,
                &format!("{key}.url"),
                "the URL carries credentials; put them in `auth` (basic_auth) so they are never logged",
            ));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            p.push(problem(
                loaded,
                &format!("{key}.url"),
                format!("`{}` is not a URL ({e})", file.url),
            ));
            None
        }
    };
    let method = file.method.trim().to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
    ) {
        p.push(problem(
            loaded,
            &format!("{key}.method"),
            format!(
                "`{}` is not an HTTP method Tessera sends; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                file.method
            ),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in &file.headers {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            p.push(problem(
                loaded,
                &format!("{key}.headers"),
                format!("`{name}` is not a valid HTTP header name"),
            ));
        } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            p.push(problem(
                loaded,
                &format!("{key}.headers.{name}"),
                "a header value cannot contain line breaks",
            ));
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    let body = file.body.trim().to_string();
    if !body.is_empty()
        && !["file://", "base64://", "https://", "http://"]
            .iter()
            .any(|s| body.starts_with(s))
    {
        p.push(problem(
            loaded,
            &format!("{key}.body"),
            "the body must be the URL of a Jsonnet template: file://…, base64://… or https://… (Kratos's bare file paths are deprecated; prefix the path with file://)",
        ));
    }
    let auth = match &file.auth {
        None => None,
        Some(AuthFile::ApiKey { name, value, in_ }) => {
            if name.trim().is_empty() {
                p.push(problem(
                    loaded,
                    &format!("{key}.auth.config.name"),
                    "the api_key's name (header or cookie name) is empty",
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                p.push(problem(
                    loaded,
                    &format!("{key}.auth.config.value"),
                    "the api_key's value cannot contain line breaks",
                ));
            }
            Some(RequestAuth::ApiKey {
                name: name.clone(),
                value: value.clone(),
                in_: *in_,
            })
        }
        Some(AuthFile::BasicAuth { user, password }) => Some(RequestAuth::BasicAuth {
            user: user.clone(),
            password: password.clone(),
        }),
    };
    (p.len() == before).then_some(())?;
    Some(RequestSpec {
        key: key.to_string(),
        url: url?,
        method,
        headers,
        base_dir: crate::load::base_dir(loaded, &format!("{key}.body")),
        body_location: loaded.location(&format!("{key}.body")),
        body,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use crate::{load_str, resolve};
    use std::collections::HashMap;

    fn settings(flows_yaml: &str) -> Result<crate::Settings, String> {
        let text = format!(
            "dsn: memory\nsecrets:\n  default: [test-secret-0123456789abcdef]\nselfservice:\n  flows:\n{flows_yaml}"
        );
        let loaded = load_str("tessera.yml", &text, &HashMap::new()).map_err(|e| e.to_string())?;
        resolve(&loaded, false, None).map_err(|e| e.to_string())
    }

    #[test]
    fn a_hook_kratos_does_not_allow_at_a_stage_is_refused_with_its_line() {
        let err = settings("    login:\n      after:\n        password:\n          hooks:\n            - hook: session\n")
            .unwrap_err();
        assert!(
            err.contains("selfservice.flows.login.after.password.hooks.0.hook")
                && err.contains("tessera.yml:10")
                && err.contains("`revoke_active_sessions`, `require_verified_address`, `web_hook`"),
            "{err}"
        );
        let err = settings("    settings:\n      after:\n        profile:\n          hooks:\n            - hook: revoke_active_sessions\n")
            .unwrap_err();
        assert!(err.contains("Kratos allows `web_hook`"), "{err}");
    }

    #[test]
    fn stages_resolve_with_method_lists_and_the_global_fallback() {
        let s = settings(
            "    login:\n      after:\n        hooks:\n          - hook: web_hook\n            config: {url: 'https://h.example/all', method: post}\n        oidc:\n          hooks:\n            - hook: revoke_active_sessions\n",
        )
        .unwrap();
        let h = &s.hooks;
        assert_eq!(
            h.login_after_oidc.post_persist(),
            &[super::HookAction::RevokeActiveSessions]
        );
        // Password has no list of its own: the global one runs.
        match h.login_after_password.post_persist() {
            [super::HookAction::WebHook(w)] => {
                assert_eq!(w.request.method, "POST");
                assert_eq!(
                    w.request.key,
                    "selfservice.flows.login.after.hooks.0.config"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.login_after_password.pre_persist().count(), 0);
    }

    #[test]
    fn hooks_after_code_sign_in_and_sign_up_resolve_as_the_passwords_do() {
        let s = settings(
            "    login:\n      after:\n        code:\n          hooks:\n            - hook: revoke_active_sessions\n            - hook: require_verified_address\n    registration:\n      after:\n        code:\n          hooks:\n            - hook: session\n            - hook: web_hook\n              config: {url: 'https://h.example/new', method: post, can_interrupt: true}\n",
        )
        .unwrap();
        let h = &s.hooks;
        assert_eq!(
            h.login_after_code.post_persist(),
            &[
                super::HookAction::RevokeActiveSessions,
                super::HookAction::RequireVerifiedAddress
            ]
        );
        assert_eq!(h.registration_after_code.pre_persist().count(), 1);
        assert!(h.registration_after_code.has(&super::HookAction::Session));
        assert_eq!(h.web_hooks().len(), 1);
        // Kratos's lists still hold: `session` is no login hook.
        let err = settings("    login:\n      after:\n        code:\n          hooks:\n            - hook: session\n")
            .unwrap_err();
        assert!(
            err.contains("selfservice.flows.login.after.code.hooks.0.hook"),
            "{err}"
        );
    }

    #[test]
    fn verification_hooks_run_where_kratos_allows_them() {
        let text = "dsn: memory\nsecrets:\n  default: [test-secret-0123456789abcdef]\nselfservice:\n  flows:\n    login:\n      after:\n        password:\n          hooks:\n            - hook: require_verified_address\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n";
        let loaded = load_str("tessera.yml", text, &HashMap::new()).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let s = resolve(&loaded, false, None).unwrap();
        assert!(
            s.hooks
                .login_after_password
                .has(&super::HookAction::RequireVerifiedAddress)
        );
        assert!(
            s.hooks
                .registration_after_password
                .has(&super::HookAction::ShowVerificationUi)
        );
        // Kratos allows `require_verified_address` after a password login only.
        let oidc = text.replace(
            "password:\n          hooks:\n            - hook: require",
            "oidc:\n          hooks:\n            - hook: require",
        );
        let loaded = load_str("tessera.yml", &oidc, &HashMap::new()).unwrap();
        let e = resolve(&loaded, false, None).unwrap_err();
        assert!(e.to_string().contains("cannot run here"), "{e}");
    }

    #[test]
    fn verification_and_recovery_take_the_hooks_kratos_allows_there() {
        let s = settings(
            "    verification:\n      enabled: true\n      before:\n        hooks:\n          - hook: web_hook\n            config: {url: 'https://h.example/vb', method: post, can_interrupt: true}\n      after:\n        hooks:\n          - hook: web_hook\n            config: {url: 'https://h.example/va', method: post}\n    recovery:\n      enabled: true\n      before:\n        hooks:\n          - hook: web_hook\n            config: {url: 'https://h.example/rb', method: post, response: {ignore: true}}\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n          - hook: web_hook\n            config: {url: 'https://h.example/ra', method: post, response: {parse: true}}\n",
        )
        .unwrap();
        let h = &s.hooks;
        assert_eq!(h.verification_before.len(), 1);
        assert_eq!(h.verification_after.len(), 1);
        assert_eq!(h.recovery_before.len(), 1);
        assert_eq!(h.recovery_after[0], super::HookAction::RevokeActiveSessions);
        assert_eq!(h.web_hooks().len(), 4);
        match &h.recovery_after[1] {
            super::HookAction::WebHook(w) => assert_eq!(
                w.request.key,
                "selfservice.flows.recovery.after.hooks.1.config"
            ),
            other => panic!("{other:?}"),
        }
        // Kratos's lists still hold: verification takes no `revoke_active_sessions`, and a
        // malformed web hook names its key and line.
        let err = settings(
            "    verification:\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n",
        )
        .unwrap_err();
        assert!(
            err.contains("selfservice.flows.verification.after.hooks.0.hook")
                && err.contains("tessera.yml:9")
                && err.contains("Kratos allows `web_hook`"),
            "{err}"
        );
        let err = settings(
            "    recovery:\n      before:\n        hooks:\n          - hook: web_hook\n            config: {url: 'ftp://h.example/x', method: post}\n",
        )
        .unwrap_err();
        assert!(
            err.contains("selfservice.flows.recovery.before.hooks.0.config.url")
                && err.contains("tessera.yml:10"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = settings(
            "    registration:\n      after:\n        password:\n          hooks:\n            - hook: web_hook\n              config:\n                url: https://h.example/x\n                method: POST\n                headers: {X-Secret: hdr-s3cret}\n                auth: {type: basic_auth, config: {user: u, password: pw-s3cret}}\n",
        )
        .unwrap();
        let dump = format!("{:?}", s.hooks);
        assert!(
            dump.contains("X-Secret") && dump.contains("BasicAuth"),
            "{dump}"
        );
        assert!(
            !dump.contains("hdr-s3cret") && !dump.contains("pw-s3cret"),
            "{dump}"
        );
    }
}
