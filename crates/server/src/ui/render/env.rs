//! The minijinja environment: every template embedded in the binary, the HTML formatter and
//! the `t(...)` translation function templates call.

use crate::ui::i18n::{self, Lang};
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, State, UndefinedBehavior};
use serde::Serialize;
use std::sync::LazyLock;

/// Every template, by name. Pages extend `base.html`; the partials `messages.html` (a flow's
/// messages) and `flow_forms.html` (its forms, fields and buttons) are included.
pub const TEMPLATES: [(&str, &str); 15] = [
    ("field.html", include_str!("../templates/field.html")),
    ("base.html", include_str!("../templates/base.html")),
    ("messages.html", include_str!("../templates/messages.html")),
    ("login.html", include_str!("../templates/login.html")),
    (
        "lifecycle.html",
        include_str!("../templates/lifecycle.html"),
    ),
    (
        "registration.html",
        include_str!("../templates/registration.html"),
    ),
    ("settings.html", include_str!("../templates/settings.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("welcome.html", include_str!("../templates/welcome.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("device.html", include_str!("../templates/device.html")),
    ("op_error.html", include_str!("../templates/op_error.html")),
    (
        "logout_confirm.html",
        include_str!("../templates/logout_confirm.html"),
    ),
    (
        "signed_out.html",
        include_str!("../templates/signed_out.html"),
    ),
    (
        "flow_forms.html",
        include_str!("../templates/flow_forms.html"),
    ),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, src) in TEMPLATES {
        // Parse errors are caught by the unit tests, which render every template.
        if let Err(e) = env.add_template(name, src) {
            panic!("template {name}: {e}");
        }
    }
    env.set_formatter(html_formatter);
    env.add_function("t", translate);
    env
});

/// Escapes `& < > " '` (minijinja's default also escapes `/`, which makes every URL in an
/// attribute unreadable in the page source); values marked safe pass through, `none` is empty.
fn html_formatter(
    out: &mut minijinja::Output,
    _state: &State,
    value: &JValue,
) -> Result<(), minijinja::Error> {
    let io = |e: std::fmt::Error| {
        minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
    };
    if value.is_safe() {
        return write!(out, "{value}").map_err(io);
    }
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    let text = match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    };
    out.write_str(&esc(&text)).map_err(io)
}

/// `t("key", name=value, …)` in templates: a UI string in the page's language (`lang`).
fn translate(state: &State, key: &str, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let lang = state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::parse))
        .unwrap_or(Lang::En);
    let mut vars = Vec::new();
    for k in kwargs.args() {
        let v: JValue = kwargs.get(k)?;
        vars.push((
            k,
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string()),
        ));
    }
    kwargs.assert_all_used()?;
    if !i18n::has(lang, key) {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("unknown UI string `{key}`"),
        ));
    }
    Ok(i18n::t(lang, key, &vars))
}

/// Renders a template with a context; errors are template bugs, reported as such.
pub fn render(name: &str, ctx: &impl Serialize) -> Result<String, String> {
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| format!("template {name}: {e:#}"))
}

/// HTML-escapes text for an attribute or element (`& < > " '`).
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
