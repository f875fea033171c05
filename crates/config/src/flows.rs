//! The self-service flows' shared settings (`selfservice.*`): where each flow's page lives, how
//! long a flow lasts, where a browser goes afterwards, which return URLs are allowed, and what
//! registration does. Hooks, verification and recovery have their own modules.

use crate::load::{Loaded, Problem, problem};
use crate::model::Config;
use crate::resolve::{parse_duration, parse_return_url, parse_url};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// `selfservice.default_browser_return_url`, else the hosted welcome page.
    pub default_return_url: Url,
    /// `selfservice.allowed_return_urls`.
    pub allowed_return_urls: Vec<Url>,
    pub error_ui_url: Url,
    /// `selfservice.flows.logout.after.default_browser_return_url`, else the default.
    pub logout_return_url: Url,
    pub login: LoginFlowSettings,
    pub registration: RegistrationFlowSettings,
    pub settings: SettingsFlowSettings,
}

#[derive(Debug, Clone)]
pub struct LoginFlowSettings {
    pub ui_url: Url,
    pub lifespan: Duration,
}

#[derive(Debug, Clone)]
pub struct RegistrationFlowSettings {
    pub enabled: bool,
    pub ui_url: Url,
    pub lifespan: Duration,
    /// The `session` hook after a password registration: signed in at once.
    pub session_after_password: bool,
    /// The `session` hook after a social registration.
    pub session_after_oidc: bool,
    /// `registration.after.password.default_browser_return_url`, else `after.default_…`.
    pub return_url: Option<Url>,
    /// `registration.after.oidc.default_browser_return_url`, else `after.default_…`.
    pub oidc_return_url: Option<Url>,
}

#[derive(Debug, Clone)]
pub struct SettingsFlowSettings {
    pub ui_url: Url,
    pub lifespan: Duration,
    /// How recent a sign-in must be to change a password, traits or linked accounts.
    pub privileged_session_max_age: Duration,
}

/// Resolves the flows' pages, lifespans and return URLs; pages default to the hosted UI under
/// `public_base_url`.
pub(crate) fn resolve_flows(
    loaded: &Loaded,
    c: &Config,
    public_base_url: &Url,
    p: &mut Vec<Problem>,
) -> FlowSettings {
    let flows = &c.selfservice.flows;
    let join = |path: &str| {
        public_base_url
            .join(path)
            .expect("relative path joins onto a base URL")
    };
    let ui = |key: &str, v: &str, path: &str, p: &mut Vec<Problem>| {
        if v.is_empty() {
            join(path)
        } else {
            parse_url(loaded, key, v, p).unwrap_or_else(|| join(path))
        }
    };
    let default_return_url = ui(
        "selfservice.default_browser_return_url",
        &c.selfservice.default_browser_return_url,
        "ui/welcome",
        p,
    );
    let logout_return = &flows.logout.after.default_browser_return_url;
    let logout_return_url = if logout_return.is_empty() {
        default_return_url.clone()
    } else {
        ui(
            "selfservice.flows.logout.after.default_browser_return_url",
            logout_return,
            "ui/login",
            p,
        )
    };
    let mut allowed_return_urls = Vec::new();
    for (i, u) in c.selfservice.allowed_return_urls.iter().enumerate() {
        match parse_return_url(u) {
            Ok(u) => allowed_return_urls.push(u),
            Err(e) => p.push(problem(
                loaded,
                &format!("selfservice.allowed_return_urls.{i}"),
                e.to_string(),
            )),
        }
    }
    let after = &flows.registration.after;
    // The method's own return URL wins over the flow's.
    let after_return = |method: &str, own: &str, p: &mut Vec<Problem>| {
        [own, after.default_browser_return_url.as_str()]
            .into_iter()
            .find(|v| !v.is_empty())
            .and_then(|v| {
                parse_url(
                    loaded,
                    &format!(
                        "selfservice.flows.registration.after.{method}default_browser_return_url"
                    ),
                    v,
                    p,
                )
            })
    };
    let return_url = after_return("", &after.password.default_browser_return_url, p);
    let oidc_return_url = after_return("oidc.", &after.oidc.default_browser_return_url, p);
    let lifespan = |flow: &str, v: &str, p: &mut Vec<Problem>| {
        parse_duration(loaded, &format!("selfservice.flows.{flow}.lifespan"), v, p)
    };
    FlowSettings {
        login: LoginFlowSettings {
            ui_url: ui(
                "selfservice.flows.login.ui_url",
                &flows.login.ui_url,
                "ui/login",
                p,
            ),
            lifespan: lifespan("login", &flows.login.lifespan, p),
        },
        registration: RegistrationFlowSettings {
            enabled: flows.registration.enabled,
            ui_url: ui(
                "selfservice.flows.registration.ui_url",
                &flows.registration.ui_url,
                "ui/registration",
                p,
            ),
            lifespan: lifespan("registration", &flows.registration.lifespan, p),
            session_after_password: after.password.has("session"),
            session_after_oidc: after.oidc.has("session"),
            return_url,
            oidc_return_url,
        },
        settings: SettingsFlowSettings {
            ui_url: ui(
                "selfservice.flows.settings.ui_url",
                &flows.settings.ui_url,
                "ui/settings",
                p,
            ),
            lifespan: lifespan("settings", &flows.settings.lifespan, p),
            privileged_session_max_age: parse_duration(
                loaded,
                "selfservice.flows.settings.privileged_session_max_age",
                &flows.settings.privileged_session_max_age,
                p,
            ),
        },
        error_ui_url: ui(
            "selfservice.flows.error.ui_url",
            &flows.error.ui_url,
            "ui/error",
            p,
        ),
        default_return_url,
        allowed_return_urls,
        logout_return_url,
    }
}
