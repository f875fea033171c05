//! The account lifecycle flows: `selfservice.flows.verification` and
//! `selfservice.flows.recovery` (Kratos's keys), the code method's `lifespan` and
//! `max_submissions` (`selfservice.methods.code.config`), and the send limits on codes
//! (`limits.code_sends`, a Tessera extension: every code is an email somebody pays for and an
//! inbox somebody can be flooded in).
//!
//! `use: code` sends a six-digit code; `use: link` (with `selfservice.methods.link`) sends a
//! link carrying a single-use token. The flows' `before` and `after` hooks (`web_hook`, and
//! `revoke_active_sessions` after recovery) are resolved by `hooks.rs` with every other
//! stage's.

use crate::load::{Loaded, Problem, problem};
use crate::resolve::{parse_duration, parse_url};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// `selfservice.flows.verification` and `selfservice.flows.recovery` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleFlowConfig {
    pub enabled: bool,
    pub ui_url: String,
    pub lifespan: String,
    /// `code` (Kratos's default) or `link`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Send a message saying "nobody has an account here" to an unknown address.
    pub notify_unknown_recipients: bool,
    pub before: crate::hooks::BeforeHooks,
    pub after: LifecycleAfter,
}

impl Default for LifecycleFlowConfig {
    fn default() -> Self {
        LifecycleFlowConfig {
            enabled: false,
            ui_url: String::new(),
            lifespan: "1h".into(),
            use_: "code".into(),
            notify_unknown_recipients: false,
            before: Default::default(),
            after: Default::default(),
        }
    }
}

/// `…after` of verification and recovery.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleAfter {
    pub default_browser_return_url: String,
    pub hooks: Vec<crate::model::Hook>,
}

/// `selfservice.methods.link` (Kratos): the verification and recovery links.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LinkMethodConfig {
    pub enabled: bool,
    pub config: LinkConfig,
}

impl Default for LinkMethodConfig {
    fn default() -> Self {
        LinkMethodConfig {
            enabled: true,
            config: LinkConfig::default(),
        }
    }
}

/// `selfservice.methods.link.config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    /// How long a link holds (it never outlives its flow either).
    pub lifespan: String,
    /// The public URL the links start with; empty: `serve.public.base_url`.
    pub base_url: String,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            lifespan: "1h".into(),
            base_url: String::new(),
        }
    }
}

/// Which method a lifecycle flow uses (`use:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleMethod {
    /// A six-digit code to type in (Kratos's default).
    Code,
    /// A link carrying a single-use token (`GET /self-service/<flow>?flow=&token=`).
    Link,
}

impl LifecycleMethod {
    /// The method's name in Kratos's forms and `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleMethod::Code => "code",
            LifecycleMethod::Link => "link",
        }
    }
}

/// `selfservice.methods.code.config`: how long a code holds and how many wrong tries a flow
/// takes before it must be started again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CodeConfig {
    pub lifespan: String,
    pub max_submissions: u32,
    /// Kratos's fallback for a code sign-in without a code credential (one-time-code sign-in,
    /// which Tessera refuses); read so the key loads.
    pub missing_credential_fallback_enabled: bool,
}

impl Default for CodeConfig {
    fn default() -> Self {
        CodeConfig {
            lifespan: "15m".into(),
            max_submissions: 5,
            missing_credential_fallback_enabled: false,
        }
    }
}

/// `limits.code_sends` (Tessera): codes sent per hour, counted in the database (so across
/// instances). 0 turns one limit off; `limits.enabled: false` turns both off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CodeSendLimits {
    pub per_address_per_hour: u32,
    pub per_client_address_per_hour: u32,
}

impl Default for CodeSendLimits {
    fn default() -> Self {
        CodeSendLimits {
            per_address_per_hour: 5,
            per_client_address_per_hour: 30,
        }
    }
}

/// One lifecycle flow, resolved. `None` in [`LifecycleSettings`] when it is not enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleFlow {
    /// `use:`: what the flow sends.
    pub method: LifecycleMethod,
    pub ui_url: Url,
    pub lifespan: Duration,
    pub notify_unknown_recipients: bool,
    /// `after.default_browser_return_url`. The `before` and `after` hooks resolve with every
    /// other stage's in `hooks.rs` (`HookSettings::{verification,recovery}_{before,after}`).
    pub return_url: Option<Url>,
}

/// Verification, recovery and their codes, as the server runs them.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleSettings {
    pub verification: Option<LifecycleFlow>,
    pub recovery: Option<LifecycleFlow>,
    pub code_lifespan: Duration,
    pub max_submissions: u32,
    pub sends_per_address_per_hour: u32,
    pub sends_per_client_per_hour: u32,
    /// `selfservice.methods.link.enabled` (admin recovery links need it).
    pub link_enabled: bool,
    /// `selfservice.methods.link.config.lifespan`.
    pub link_lifespan: Duration,
    /// `selfservice.methods.link.config.base_url`, else `None` (the public base URL).
    pub link_base_url: Option<Url>,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            verification: None,
            recovery: None,
            code_lifespan: Duration::from_secs(15 * 60),
            max_submissions: 5,
            sends_per_address_per_hour: 5,
            sends_per_client_per_hour: 30,
            link_enabled: true,
            link_lifespan: Duration::from_secs(3600),
            link_base_url: None,
        }
    }
}

/// Resolves both flows. `base` is the public base URL (the hosted pages' default).
pub fn resolve_lifecycle(
    loaded: &Loaded,
    base: &Url,
    limits_enabled: bool,
    p: &mut Vec<Problem>,
) -> LifecycleSettings {
    let c = &loaded.config;
    let code = &c.selfservice.methods.code.config;
    let code_lifespan = parse_duration(
        loaded,
        "selfservice.methods.code.config.lifespan",
        &code.lifespan,
        p,
    );
    if code.max_submissions == 0 {
        p.push(problem(
            loaded,
            "selfservice.methods.code.config.max_submissions",
            "must be at least 1: with 0 no code could ever be entered",
        ));
    }
    let sends = &c.limits.code_sends;
    let off = |n: u32| if limits_enabled { n } else { 0 };
    let link = &c.selfservice.methods.link;
    let link_lifespan = parse_duration(
        loaded,
        "selfservice.methods.link.config.lifespan",
        &link.config.lifespan,
        p,
    );
    let link_base_url = if link.config.base_url.is_empty() {
        None
    } else {
        parse_url(
            loaded,
            "selfservice.methods.link.config.base_url",
            &link.config.base_url,
            p,
        )
    };
    let link_enabled = link.enabled;
    for (key, f) in [
        (
            "selfservice.flows.verification",
            &c.selfservice.flows.verification,
        ),
        ("selfservice.flows.recovery", &c.selfservice.flows.recovery),
    ] {
        if f.enabled && f.use_ == "link" && !link_enabled {
            p.push(problem(
                loaded,
                &format!("{key}.use"),
                "`link` is turned off by selfservice.methods.link.enabled: false; turn it on or set `use: code`",
            ));
        }
    }
    LifecycleSettings {
        verification: resolve_flow(
            loaded,
            "selfservice.flows.verification",
            &c.selfservice.flows.verification,
            base,
            "ui/verification",
            p,
        ),
        recovery: resolve_flow(
            loaded,
            "selfservice.flows.recovery",
            &c.selfservice.flows.recovery,
            base,
            "ui/recovery",
            p,
        ),
        code_lifespan,
        max_submissions: code.max_submissions.max(1),
        sends_per_address_per_hour: off(sends.per_address_per_hour),
        sends_per_client_per_hour: off(sends.per_client_address_per_hour),
        link_enabled,
        link_lifespan,
        link_base_url,
    }
}

fn resolve_flow(
    loaded: &Loaded,
    key: &str,
    f: &LifecycleFlowConfig,
    base: &Url,
    page: &str,
    p: &mut Vec<Problem>,
) -> Option<LifecycleFlow> {
    let method = match f.use_.as_str() {
        "code" => LifecycleMethod::Code,
        "link" => LifecycleMethod::Link,
        other => {
            p.push(problem(
                loaded,
                &format!("{key}.use"),
                format!("`{other}` is not a method: use `code` or `link`"),
            ));
            LifecycleMethod::Code
        }
    };
    let lifespan = parse_duration(loaded, &format!("{key}.lifespan"), &f.lifespan, p);
    let ui_url = if f.ui_url.is_empty() {
        base.join(page).ok()?
    } else {
        parse_url(loaded, &format!("{key}.ui_url"), &f.ui_url, p)?
    };
    let return_url = if f.after.default_browser_return_url.is_empty() {
        None
    } else {
        parse_url(
            loaded,
            &format!("{key}.after.default_browser_return_url"),
            &f.after.default_browser_return_url,
            p,
        )
    };
    f.enabled.then_some(LifecycleFlow {
        method,
        ui_url,
        lifespan,
        notify_unknown_recipients: f.notify_unknown_recipients,
        return_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str) -> (LifecycleSettings, Vec<Problem>) {
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        let base = Url::parse("http://127.0.0.1:4433/").expect("url");
        (resolve_lifecycle(&loaded, &base, true, &mut p), p)
    }

    #[test]
    fn the_quickstart_shape_resolves_with_the_hosted_pages_by_default() {
        let (s, p) = resolve(
            "selfservice:\n  flows:\n    verification:\n      enabled: true\n      use: code\n      after:\n        default_browser_return_url: http://127.0.0.1:4455/welcome\n    recovery:\n      enabled: true\n      use: code\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let v = s.verification.expect("verification on");
        assert_eq!(v.ui_url.as_str(), "http://127.0.0.1:4433/ui/verification");
        assert_eq!(
            v.return_url.map(|u| u.to_string()).as_deref(),
            Some("http://127.0.0.1:4455/welcome")
        );
        assert!(s.recovery.is_some());
        assert_eq!(s.code_lifespan, Duration::from_secs(900));
        assert_eq!(s.max_submissions, 5);
        assert_eq!(s.sends_per_address_per_hour, 5);
    }

    #[test]
    fn off_by_default_and_unknown_methods_are_refused_with_their_line() {
        let (s, p) = resolve("");
        assert!(s.verification.is_none() && s.recovery.is_none() && p.is_empty());
        let (_, p) = resolve(
            "selfservice:\n  flows:\n    recovery:\n      enabled: true\n      use: mail\n",
        );
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["selfservice.flows.recovery.use"], "{p:?}");
        assert_eq!(p[0].location.to_string(), "t.yml:5");
        let (_, p) = resolve(
            "selfservice:\n  methods:\n    code:\n      config:\n        lifespan: soon\n        max_submissions: 0\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn link_is_a_method_with_its_own_lifespan_and_base_url() {
        let (s, p) = resolve(
            "selfservice:\n  methods:\n    link:\n      config:\n        lifespan: 20m\n        base_url: https://id.example.org/\n  flows:\n    verification:\n      enabled: true\n      use: link\n    recovery:\n      enabled: true\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.verification.expect("on").method, LifecycleMethod::Link);
        assert_eq!(s.recovery.expect("on").method, LifecycleMethod::Code);
        assert_eq!(s.link_lifespan, Duration::from_secs(1200));
        assert_eq!(
            s.link_base_url.map(|u| u.to_string()).as_deref(),
            Some("https://id.example.org/")
        );
        // `use: link` with the method turned off cannot send anything: refused, not ignored.
        let (_, p) = resolve(
            "selfservice:\n  methods:\n    link:\n      enabled: false\n  flows:\n    recovery:\n      enabled: true\n      use: link\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "selfservice.flows.recovery.use");
    }
}
