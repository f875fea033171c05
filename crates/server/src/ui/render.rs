//! Rendering: the minijinja environment (templates embedded in the binary) and the view models
//! the templates receive. A view model is built from a flow's UI nodes and messages only — the
//! same ones the JSON API returns — translated into the page language here, so templates only
//! lay things out.

use super::i18n::{self, Lang};
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, State, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;
use std::sync::LazyLock;
use tessera_config::Experience;
use tessera_core::flow::{Flow, FlowKind};
use tessera_core::text::{Text, TextType};
use tessera_core::ui::Node;
use tessera_social::ProviderType;

/// Every template, by name. Pages extend `base.html`; the partials `messages.html` (a flow's
/// messages) and `flow_forms.html` (its forms, fields and buttons) are included.
pub const TEMPLATES: [(&str, &str); 13] = [
    ("field.html", include_str!("templates/field.html")),
    ("base.html", include_str!("templates/base.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("login.html", include_str!("templates/login.html")),
    (
        "registration.html",
        include_str!("templates/registration.html"),
    ),
    ("settings.html", include_str!("templates/settings.html")),
    ("error.html", include_str!("templates/error.html")),
    ("welcome.html", include_str!("templates/welcome.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("op_error.html", include_str!("templates/op_error.html")),
    (
        "logout_confirm.html",
        include_str!("templates/logout_confirm.html"),
    ),
    ("signed_out.html", include_str!("templates/signed_out.html")),
    ("flow_forms.html", include_str!("templates/flow_forms.html")),
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

/// What every page shows around its content.
#[derive(Debug, Clone, Serialize)]
pub struct Chrome {
    /// BCP 47 tag of the page language (`<html lang>`).
    pub lang: String,
    pub langs: Vec<LangLink>,
    pub brand: BrandView,
    pub css_href: String,
    pub theme_href: String,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LangLink {
    pub tag: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrandView {
    pub name: String,
    pub logo_url: Option<String>,
    /// First letter of the brand name, shown when there is no logo.
    pub initial: String,
}

impl Chrome {
    pub fn new(lang: Lang, x: &Experience, here: &str, css_href: &str, theme_href: &str) -> Self {
        Chrome {
            lang: lang.tag().into(),
            langs: i18n::LANGS
                .iter()
                .map(|l| LangLink {
                    tag: l.tag().into(),
                    name: l.native_name().into(),
                    href: switch_href(*l, here),
                    current: *l == lang,
                })
                .collect(),
            brand: BrandView {
                name: x.brand_name.clone(),
                logo_url: x.logo_url.as_ref().map(|u| u.to_string()),
                initial: x
                    .brand_name
                    .chars()
                    .next()
                    .map(|c| c.to_uppercase().to_string())
                    .unwrap_or_default(),
            },
            css_href: css_href.into(),
            theme_href: theme_href.into(),
            terms_url: x.terms_url.as_ref().map(|u| u.to_string()),
            privacy_url: x.privacy_url.as_ref().map(|u| u.to_string()),
        }
    }
}

/// The switcher's link: `/ui/lang?set=<tag>&back=<this page without ui_locales>`. `ui_locales`
/// is dropped so the choice (a cookie) is not overruled by the parameter on the way back.
pub fn switch_href(lang: Lang, here: &str) -> String {
    let back = match here.split_once('?') {
        Some((path, q)) => {
            let kept: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "ui_locales")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(kept)
                    .finish();
                format!("{path}?{q}")
            }
        }
        None => here.to_string(),
    };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("set", lang.tag())
        .append_pair("back", &back)
        .finish();
    format!("/ui/lang?{q}")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageView {
    pub id: u32,
    /// `error`, `info` or `success`.
    pub kind: &'static str,
    pub text: String,
    pub detail: Option<String>,
}

pub fn message_view(lang: Lang, m: &Text, on_field: bool) -> MessageView {
    let said = i18n::message(lang, m, on_field);
    MessageView {
        id: m.id,
        kind: match m.kind {
            TextType::Error => "error",
            TextType::Info => "info",
            TextType::Success => "success",
        },
        text: said.text,
        detail: said.detail,
    }
}

/// One `<form>`: the hidden inputs every form carries (CSRF), its fields and its buttons.
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    pub action: String,
    pub method: String,
    /// `password`, `social`, `gaps` (fill-the-gaps after a social sign-in), `profile` or
    /// `linked` (settings' link/unlink list).
    pub kind: &'static str,
    pub hidden: Vec<HiddenView>,
    /// Fields shown before everything else (registration's agreement, when it covers both the
    /// social buttons and the password fields of one combined form).
    pub pre_fields: Vec<FieldView>,
    /// Social buttons inside a combined registration form, above the password fields.
    pub social: Vec<ButtonView>,
    pub fields: Vec<FieldView>,
    pub buttons: Vec<ButtonView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HiddenView {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldView {
    /// The element id, unique on the page; `<label for>` and error ids derive from it.
    pub id: String,
    pub name: String,
    pub input_type: String,
    pub value: String,
    pub checked: bool,
    pub label: String,
    /// Pre-escaped label with links (the agreement checkbox); otherwise empty.
    pub label_html: String,
    pub required: bool,
    pub autocomplete: Option<String>,
    pub pattern: Option<String>,
    pub disabled: bool,
    /// `<select>` choices when the identity schema gives an `enum`.
    pub options: Vec<OptionView>,
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionView {
    pub value: String,
    pub selected: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ButtonView {
    pub name: String,
    pub value: String,
    pub label: String,
    /// Inline SVG of the provider's icon (social buttons only), decorative.
    pub icon: String,
    pub provider: String,
    /// The provider's name as the page says it (its configured label, or the local name of
    /// its type where that differs, such as 钉钉 for DingTalk in Chinese).
    pub provider_name: String,
    /// Settings: whether this provider is linked (unlink button) or not (link button).
    pub linked: Option<bool>,
}

/// What the page builder needs to know beyond the flow.
pub struct FlowContext<'a> {
    pub lang: Lang,
    pub experience: &'a Experience,
    /// Provider id → its type (icon, local names).
    pub provider_type: &'a dyn Fn(&str) -> Option<&'static ProviderType>,
    /// `enum` choices of a trait by node name (`traits.x`), from the identity schema.
    pub enum_of: &'a dyn Fn(&str) -> Vec<Value>,
    /// Whether every password identifier in the schema is an email (labels the login field).
    pub identifier_is_email: bool,
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn field_id(group: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("f-{group}-{clean}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A sentence with the terms/privacy links in it (`agreement.*` or `notice.*`), escaped.
pub fn agreement_html(lang: Lang, prefix: &str, x: &Experience) -> String {
    let link = |url: &str, key: &str| {
        format!(
            "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">{}</a>",
            esc(url),
            esc(&i18n::t(lang, key, &[]))
        )
    };
    let terms = x
        .terms_url
        .as_ref()
        .map(|u| link(u.as_str(), "agreement.terms_link"));
    let privacy = x
        .privacy_url
        .as_ref()
        .map(|u| link(u.as_str(), "agreement.privacy_link"));
    let (key, vars) = match (terms, privacy) {
        (Some(t), Some(p)) => ("both", vec![("terms", t), ("privacy", p)]),
        (Some(t), None) => ("terms", vec![("terms", t)]),
        (None, Some(p)) => ("privacy", vec![("privacy", p)]),
        (None, None) => return String::new(),
    };
    // Escape the sentence, then put the (already escaped) links into its placeholders.
    let sentence = esc(&i18n::t(lang, &format!("{prefix}.{key}"), &[]));
    let mut out = sentence;
    for (name, html) in vars {
        out = out.replace(&format!("{{{name}}}"), &html);
    }
    out
}

fn field_view(n: &Node, cx: &FlowContext) -> FieldView {
    let a = &n.attributes;
    let label = match (&n.meta.label, a.name.as_str()) {
        (_, "identifier") if cx.identifier_is_email => i18n::t(cx.lang, "identifier.email", &[]),
        (Some(l), _) => i18n::message(cx.lang, l, false).text,
        (None, name) => name.to_string(),
    };
    let label_html = if a.name == "terms_accepted" {
        agreement_html(cx.lang, "agreement", cx.experience)
    } else {
        String::new()
    };
    let value = value_string(&a.value);
    let options = (cx.enum_of)(&a.name)
        .iter()
        .map(|v| {
            let s = value_string(v);
            OptionView {
                selected: s == value,
                value: s,
            }
        })
        .collect();
    FieldView {
        id: field_id(&n.group, &a.name),
        name: a.name.clone(),
        input_type: a.input_type.clone(),
        checked: a.value == Value::Bool(true) || value == "true",
        value,
        label,
        label_html,
        required: a.required,
        autocomplete: a.autocomplete.clone(),
        pattern: a.pattern.clone(),
        disabled: a.disabled,
        options,
        messages: n
            .messages
            .iter()
            .map(|m| message_view(cx.lang, m, true))
            .collect(),
    }
}

/// A provider type's name in the page language.
fn type_name(lang: Lang, kind: &ProviderType) -> &'static str {
    match lang {
        Lang::En => kind.names.en,
        Lang::ZhCn => kind.names.zh_cn,
        Lang::Ru => kind.names.ru,
    }
}

/// A social label in the page language: when the configured label is the English name of a
/// provider type that has local names (`DingTalk`, 钉钉 in Chinese), the type's name in the
/// page language is used.
fn localized_label(lang: Lang, label: &Text, kind: Option<&ProviderType>) -> (Text, String) {
    let mut label = label.clone();
    let configured = label
        .context
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(kind) = kind.filter(|k| k.names.is_localized())
        && configured.eq_ignore_ascii_case(kind.names.en)
    {
        let local = type_name(lang, kind).to_string();
        label.context["provider"] = Value::String(local.clone());
        return (label, local);
    }
    (label, configured)
}

fn button_view(n: &Node, cx: &FlowContext) -> ButtonView {
    let a = &n.attributes;
    let value = value_string(&a.value);
    let social = n.group == "oidc";
    let kind = if social {
        (cx.provider_type)(&value)
    } else {
        None
    };
    let (label, provider_name) = match &n.meta.label {
        Some(l) if social => {
            let (l, name) = localized_label(cx.lang, l, kind);
            (Some(l), name)
        }
        other => (other.clone(), String::new()),
    };
    ButtonView {
        name: a.name.clone(),
        provider_name,
        label: label
            .as_ref()
            .map(|l| i18n::message(cx.lang, l, false).text)
            .unwrap_or_else(|| value.clone()),
        icon: match (social, kind) {
            (false, _) => String::new(),
            (true, Some(k)) => k.icon.trim().to_string(),
            // A button for a provider no longer configured: the generic icon.
            (true, None) => tessera_social::types::DEFAULT_ICON.trim().to_string(),
        },
        provider: kind.map(|k| k.id.to_string()).unwrap_or_default(),
        linked: match a.name.as_str() {
            "unlink" => Some(true),
            "link" => Some(false),
            _ => None,
        },
        value,
    }
}

fn is_button(n: &Node) -> bool {
    matches!(n.attributes.input_type.as_str(), "submit" | "button")
}

/// Splits a flow into the forms a page shows, one per method group, each with the CSRF token
/// and the shared `default` inputs it needs. Groups the experience hides are left out.
pub fn flow_forms(flow: &Flow, cx: &FlowContext) -> Vec<FormView> {
    let x = cx.experience;
    let hidden: Vec<HiddenView> = flow
        .ui
        .nodes
        .iter()
        .filter(|n| n.attributes.input_type == "hidden")
        .map(|n| HiddenView {
            name: n.attributes.name.clone(),
            value: value_string(&n.attributes.value),
        })
        .collect();
    let shared: Vec<&Node> = flow
        .ui
        .nodes
        .iter()
        .filter(|n| n.group == "default" && n.attributes.input_type != "hidden")
        .collect();
    let agreement: Vec<&Node> = shared
        .iter()
        .copied()
        .filter(|n| n.attributes.name == "terms_accepted")
        .collect();
    let identifier: Vec<&Node> = shared
        .iter()
        .copied()
        .filter(|n| n.attributes.name != "terms_accepted")
        .collect();
    let mut groups: Vec<&str> = Vec::new();
    for n in &flow.ui.nodes {
        if n.group != "default" && !groups.contains(&n.group.as_str()) {
            groups.push(&n.group);
        }
    }
    let oidc_has_fields = flow
        .ui
        .nodes
        .iter()
        .any(|n| n.group == "oidc" && !is_button(n) && n.attributes.input_type != "hidden");
    let mut forms = Vec::new();
    for g in groups {
        let kind: &'static str = match (g, flow.kind) {
            ("oidc", FlowKind::Settings) => "linked",
            ("oidc", _) if oidc_has_fields => "gaps",
            ("oidc", _) => "social",
            ("profile", _) => "profile",
            ("password", _) => "password",
            _ => "other",
        };
        let shown = match kind {
            "password" => x.show_password,
            "social" | "linked" => x.show_oidc,
            _ => true,
        };
        if !shown {
            continue;
        }
        let mut nodes: Vec<&Node> = Vec::new();
        if kind == "password" {
            nodes.extend(identifier.iter().copied());
        }
        nodes.extend(flow.ui.nodes.iter().filter(|n| n.group == g));
        if flow.kind == FlowKind::Registration && kind != "linked" {
            nodes.extend(agreement.iter().copied());
        }
        let fields: Vec<FieldView> = nodes
            .iter()
            .filter(|n| !is_button(n) && n.attributes.input_type != "hidden")
            .map(|n| field_view(n, cx))
            .collect();
        let mut buttons: Vec<ButtonView> = nodes
            .iter()
            .filter(|n| is_button(n))
            .map(|n| button_view(n, cx))
            .collect();
        if g == "oidc" {
            let rank = |b: &ButtonView| {
                x.provider_order
                    .iter()
                    .position(|p| *p == b.value)
                    .unwrap_or(usize::MAX)
            };
            buttons.sort_by_key(rank);
        }
        forms.push(FormView {
            action: flow.ui.action.clone(),
            method: flow.ui.method.to_ascii_lowercase(),
            kind,
            hidden: hidden.clone(),
            pre_fields: vec![],
            social: vec![],
            fields,
            buttons,
        });
    }
    // Registration with an agreement: one form, so one checkbox covers the social buttons and
    // the password fields (each button sends only its own name and value).
    if flow.kind == FlowKind::Registration && !agreement.is_empty() {
        let social = forms.iter().position(|f| f.kind == "social");
        let password = forms.iter().position(|f| f.kind == "password");
        if let (Some(si), Some(pi)) = (social, password) {
            let social_form = forms.remove(si);
            let pi = if si < pi { pi - 1 } else { pi };
            let form = &mut forms[pi];
            let (agree, rest): (Vec<FieldView>, Vec<FieldView>) = form
                .fields
                .drain(..)
                .partition(|f| f.name == "terms_accepted");
            form.pre_fields = agree;
            form.fields = rest;
            form.social = social_form.buttons;
        }
    }
    // Social buttons first (the quickest way in), then the password form.
    forms.sort_by_key(|f| match f.kind {
        "social" => 0,
        "gaps" => 0,
        "profile" => 1,
        "password" => 2,
        "linked" => 3,
        _ => 4,
    });
    forms
}

/// `/ui/login`, `/ui/registration` and `/ui/settings`.
#[derive(Debug, Serialize)]
pub struct FlowPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub subtitle: String,
    pub messages: Vec<MessageView>,
    pub forms: Vec<FormView>,
    /// Pre-escaped "By continuing, you agree to …" (login page, when links are set).
    pub notice_html: String,
    /// Login: link to registration; registration: link to login; settings: back link.
    pub switch_href: String,
    pub logout_href: String,
    pub home_href: String,
    pub signed_in_as: String,
}

/// `/ui/error`.
#[derive(Debug, Serialize)]
pub struct ErrorPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub message: String,
    pub code: String,
    pub start_href: String,
}

/// `/ui/welcome`: where a sign-in lands when no `return_to` was given.
#[derive(Debug, Serialize)]
pub struct WelcomePage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub identifier: Option<String>,
    pub settings_href: String,
    pub logout_href: String,
    pub login_href: String,
    pub registration_href: String,
}

/// The data the OpenID Provider's consent step hands to `consent.html`.
///
/// `/ui/consent` (in `op.rs`) fills it from the authorization request and renders it with
/// [`render_consent`]; the form posts the OP's documented fields `csrf_token`, `request` and
/// `decision` (`accept` or `deny`) to `form_action`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    /// The client's display name.
    pub app_name: String,
    /// Requested scopes as sent (`openid profile email …`); known ones get a sentence.
    pub scopes: Vec<String>,
    /// Who is signed in (email, username or id), shown so the user can tell.
    pub user_identifier: String,
    pub form_action: String,
    pub csrf_token: String,
    /// The authorization request's id (the form's `request` field).
    pub request: String,
}

#[derive(Debug, Serialize)]
pub struct ConsentPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub consent: ConsentView,
    /// One sentence per requested scope, in the page language.
    pub scope_lines: Vec<ScopeLine>,
}

#[derive(Debug, Serialize)]
pub struct ScopeLine {
    pub scope: String,
    pub text: String,
}

/// Renders the consent page (see [`ConsentView`]).
pub fn render_consent(chrome: Chrome, view: ConsentView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let scope_lines = view
        .scopes
        .iter()
        .map(|s| {
            let key = format!("consent.scope.{s}");
            let text = if i18n::has(lang, &key) {
                i18n::t(lang, &key, &[])
            } else {
                i18n::t(lang, "consent.scope.other", &[("scope", s.clone())])
            };
            ScopeLine {
                scope: s.clone(),
                text,
            }
        })
        .collect();
    let page = ConsentPage {
        title: i18n::t(lang, "page.consent.title", &[]),
        chrome,
        page: "consent",
        consent: view,
        scope_lines,
    };
    render("consent.html", &page)
}

/// A form back to the app (`form_post` answers): its action and hidden fields.
#[derive(Debug, Clone, Serialize)]
pub struct BackForm {
    pub action: String,
    pub fields: Vec<HiddenView>,
}

/// An OpenID Provider error shown to the user instead of going back to the app.
#[derive(Debug, Clone, Serialize)]
pub struct OpErrorView {
    pub status: u16,
    /// The OAuth error code (`invalid_request`, `access_denied`, …), shown as the error code.
    pub error: String,
    /// The key of the explanation: the error code, or a finer reason from the OP
    /// (`unknown_app`, `redirect_uri`, `request_expired`, `no_subject`, `not_assigned`, `csrf`).
    pub reason: String,
    pub app_name: Option<String>,
    /// The technical description from the OP, in English (shown marked `lang="en"`).
    pub description: String,
    /// "Back to the app" as a link (query or fragment answers)…
    pub back_href: Option<String>,
    /// …or as a form (`form_post` answers).
    pub back_form: Option<BackForm>,
}

#[derive(Debug, Serialize)]
pub struct OpErrorPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub message: String,
    #[serde(flatten)]
    pub error: OpErrorView,
}

/// The reasons with their own wording; any other falls back to `op_error.other.*`.
pub const OP_ERROR_REASONS: [&str; 18] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "login_required",
    "consent_required",
    "interaction_required",
    "invalid_client",
    "unknown_app",
    "redirect_uri",
    "request_expired",
    "no_subject",
    "not_assigned",
    "csrf",
    "other",
];

/// Renders an OpenID Provider error page (see [`OpErrorView`]).
pub fn render_op_error(chrome: Chrome, view: OpErrorView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let reason = [view.reason.as_str(), view.error.as_str()]
        .into_iter()
        .find(|r| i18n::has(lang, &format!("op_error.{r}.title")))
        .unwrap_or("other");
    let page = OpErrorPage {
        title: i18n::t(lang, &format!("op_error.{reason}.title"), &[]),
        message: i18n::t(lang, &format!("op_error.{reason}.text"), &[]),
        chrome,
        page: "op-error",
        error: view,
    };
    render("op_error.html", &page)
}

/// "Sign out?": asked when an app starts a logout without an `id_token_hint`.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutConfirmView {
    pub form_action: String,
    pub csrf_token: String,
    /// The logout request's parameters, carried through the form.
    pub fields: Vec<HiddenView>,
    /// Who is signed in, when known.
    pub user_identifier: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogoutConfirmPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub logout: LogoutConfirmView,
}

pub fn render_logout_confirm(chrome: Chrome, view: LogoutConfirmView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let page = LogoutConfirmPage {
        title: i18n::t(lang, "logout.title", &[]),
        chrome,
        page: "logout",
        logout: view,
    };
    render("logout_confirm.html", &page)
}

#[derive(Debug, Serialize)]
pub struct SignedOutPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
}

/// "You are signed out" (a logout with nowhere to go back to).
pub fn render_signed_out(chrome: Chrome) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let page = SignedOutPage {
        title: i18n::t(lang, "signed_out.title", &[]),
        chrome,
        page: "signed-out",
    };
    render("signed_out.html", &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_core::text;
    use tessera_core::ui::Ui;

    fn experience() -> Experience {
        Experience {
            terms_url: Some(url::Url::parse("https://example.com/terms").unwrap()),
            privacy_url: Some(url::Url::parse("https://example.com/privacy?a=1&b=2").unwrap()),
            provider_order: vec!["vk".into(), "github".into()],
            ..Experience::default()
        }
    }

    fn chrome(lang: Lang) -> Chrome {
        Chrome::new(
            lang,
            &experience(),
            "/ui/login?flow=x&ui_locales=ru",
            "/a.css",
            "/t.css",
        )
    }

    fn registration_flow() -> Flow {
        let mut ui = Ui::new("http://127.0.0.1/self-service/registration?flow=1".into());
        ui.nodes.push(Node::csrf("tok<en>"));
        ui.nodes.push(
            Node::input("password", "traits.email", "email", json!("a@example.com"))
                .required()
                .label(text::label_generated("E-Mail", "traits.email")),
        );
        ui.nodes.push(
            Node::input("password", "traits.plan", "text", Value::Null)
                .label(text::label_generated("Plan", "traits.plan")),
        );
        let mut pw = Node::input("password", "password", "password", Value::Null)
            .required()
            .label(text::label_password());
        pw.messages.push(text::password_policy(
            "password length must be at least 8 characters but only got 3.",
        ));
        ui.nodes.push(pw);
        ui.nodes.push(
            Node::input("password", "method", "submit", json!("password"))
                .label(text::registration_title()),
        );
        for p in ["github", "vk"] {
            ui.nodes.push(
                Node::input("oidc", "provider", "submit", json!(p))
                    .label(text::registration_with(p)),
            );
        }
        let mut agree = Node::input("default", "terms_accepted", "checkbox", json!(false))
            .required()
            .label(text::label_agreement(None, None));
        agree.messages.push(text::agreement_required());
        ui.nodes.push(agree);
        ui.messages.push(text::duplicate_credentials());
        flow_of(FlowKind::Registration, ui)
    }

    fn flow_of(kind: FlowKind, ui: Ui) -> Flow {
        Flow {
            id: uuid::Uuid::nil(),
            flow_type: tessera_core::flow::FlowType::Browser,
            kind,
            expires_at: 0,
            issued_at: 0,
            request_url: String::new(),
            return_to: None,
            ui,
            state: tessera_core::flow::FlowState::ChooseMethod,
            refresh: None,
            requested_aal: None,
            identity: Value::Null,
            created_at: 0,
            updated_at: 0,
            csrf_token: String::new(),
            identity_id: None,
            internal: Default::default(),
            session_token_exchange_code: None,
        }
    }

    fn page(lang: Lang, x: &Experience) -> String {
        let flow = registration_flow();
        let types = |id: &str| tessera_social::types::get(id);
        let enums = |name: &str| {
            if name == "traits.plan" {
                vec![json!("free"), json!("pro")]
            } else {
                vec![]
            }
        };
        let cx = FlowContext {
            lang,
            experience: x,
            provider_type: &types,
            enum_of: &enums,
            identifier_is_email: true,
        };
        let view = FlowPage {
            chrome: chrome(lang),
            page: "registration",
            title: "T".into(),
            subtitle: "S".into(),
            messages: flow
                .ui
                .messages
                .iter()
                .map(|m| message_view(lang, m, false))
                .collect(),
            forms: flow_forms(&flow, &cx),
            notice_html: String::new(),
            switch_href: "/self-service/login/browser".into(),
            logout_href: String::new(),
            home_href: String::new(),
            signed_in_as: String::new(),
        };
        render("registration.html", &view).unwrap()
    }

    #[test]
    fn registration_page_ties_labels_errors_and_csrf_to_every_form() {
        let html = page(Lang::En, &experience());
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{html}"
        );
        // One combined form (the agreement covers social and password sign-up) with the CSRF
        // token, escaped.
        assert_eq!(html.matches("<form ").count(), 1, "{html}");
        assert_eq!(
            html.matches("name=\"csrf_token\" value=\"tok&lt;en&gt;\"")
                .count(),
            1
        );
        // Every input has its label; errors sit next to their field and are linked to it.
        for id in ["f-password-traits-email", "f-password-password"] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(html.contains("aria-describedby=\"f-password-password-err\""));
        assert!(html.contains("The password must be at least 8 characters long."));
        assert!(html.contains("role=\"alert\" data-id=\"4000007\""));
        // The schema's enum becomes a select; the label says which fields are optional.
        assert!(
            html.contains("<select id=\"f-password-traits-plan\""),
            "{html}"
        );
        assert!(html.contains("<option value=\"pro\">pro</option>"));
        assert!(html.contains("(optional)"));
        // The agreement: one real checkbox with links, before the social buttons, with its error.
        assert_eq!(html.matches("name=\"terms_accepted\"").count(), 1);
        assert!(html.find("name=\"terms_accepted\"") < html.find("value=\"vk\""));
        assert!(html.contains("href=\"https://example.com/privacy?a=1&amp;b=2\""));
        assert!(html.contains("Accept the terms to continue."));
        // Provider order from the experience: VK before GitHub; icons inline.
        let (vk, gh) = (
            html.find("value=\"vk\"").unwrap(),
            html.find("value=\"github\"").unwrap(),
        );
        assert!(vk < gh);
        assert!(html.contains("<svg"));
        // No inline script or style anywhere.
        assert!(!html.contains("<script") && !html.contains("style=") && !html.contains("<style"));
        // The switcher drops ui_locales so the chosen language sticks.
        assert!(
            html.contains("/ui/lang?set=ru&amp;back=%2Fui%2Flogin%3Fflow%3Dx\""),
            "{html}"
        );
    }

    #[test]
    fn social_buttons_take_icon_and_local_name_from_the_provider_type() {
        let mut ui = Ui::new("http://127.0.0.1/self-service/login?flow=1".into());
        ui.nodes.push(Node::csrf("t"));
        for (id, label) in [("dt", "DingTalk"), ("gh", "github"), ("gone", "Gone")] {
            ui.nodes.push(
                Node::input("oidc", "provider", "submit", json!(id))
                    .label(text::registration_with(label)),
            );
        }
        let flow = flow_of(FlowKind::Login, ui);
        let types = |id: &str| match id {
            "dt" => tessera_social::types::get("dingtalk"),
            "gh" => tessera_social::types::get("github"),
            _ => None,
        };
        let enums = |_: &str| vec![];
        let x = experience();
        let buttons = |lang| {
            let cx = FlowContext {
                lang,
                experience: &x,
                provider_type: &types,
                enum_of: &enums,
                identifier_is_email: false,
            };
            let mut forms = flow_forms(&flow, &cx);
            assert_eq!(forms.len(), 1);
            forms.remove(0).buttons
        };
        let dingtalk = tessera_social::types::get("dingtalk").map(|t| t.icon.trim());
        let zh = buttons(Lang::ZhCn);
        let by = |id: &str| zh.iter().find(|b| b.value == id).unwrap();
        assert_eq!(by("dt").provider_name, "钉钉");
        assert!(by("dt").label.contains("钉钉"), "{}", by("dt").label);
        assert_eq!(Some(by("dt").icon.as_str()), dingtalk);
        assert_eq!(by("dt").provider, "dingtalk");
        // A type without local names keeps the configured label as written.
        assert_eq!(by("gh").provider_name, "github");
        assert!(by("gh").icon.contains("<svg") && Some(by("gh").icon.as_str()) != dingtalk);
        // A provider no longer configured: the default icon and no type.
        assert_eq!(by("gone").icon, tessera_social::types::DEFAULT_ICON.trim());
        assert_eq!(by("gone").provider, "");
        let en = buttons(Lang::En);
        assert_eq!(en[0].provider_name, "DingTalk");
    }

    #[test]
    fn social_only_hides_password_fields() {
        let x = Experience {
            show_password: false,
            ..experience()
        };
        let html = page(Lang::Ru, &x);
        assert!(!html.contains("type=\"password\""), "{html}");
        assert!(!html.contains("traits.email"));
        assert!(html.contains("Продолжить через vk"));
    }

    #[test]
    fn pages_render_in_every_language_without_english_leftovers() {
        for lang in [Lang::ZhCn, Lang::Ru] {
            let html = page(lang, &experience());
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())));
            for english in [
                "Password",
                "(optional)",
                "Accept the terms",
                "Sign up",
                "already exists",
            ] {
                assert!(
                    !html.contains(english),
                    "{}: `{english}` in\n{html}",
                    lang.tag()
                );
            }
        }
        let ru = page(Lang::Ru, &experience());
        assert!(
            ru.contains("Пароль должен содержать не менее 8 символов."),
            "{ru}"
        );
        let zh = page(Lang::ZhCn, &experience());
        assert!(zh.contains("《服务条款》"), "{zh}");
    }

    #[test]
    fn consent_page_posts_the_op_fields_in_every_language() {
        for (lang, allow, deny) in [
            (Lang::En, "Allow", "Cancel"),
            (Lang::ZhCn, "授权", "取消"),
            (Lang::Ru, "Разрешить", "Отмена"),
        ] {
            let html = render_consent(
                chrome(lang),
                ConsentView {
                    app_name: "Bookstore <WordPress>".into(),
                    scopes: vec!["openid".into(), "email".into(), "custom:read".into()],
                    user_identifier: "li.na@example.com".into(),
                    form_action: "/ui/consent".into(),
                    csrf_token: "c5rf".into(),
                    request: "req-1".into(),
                },
            )
            .unwrap();
            let tag = lang.tag();
            assert!(html.contains(&format!("<html lang=\"{tag}\">")), "{html}");
            assert!(html.contains("Bookstore &lt;WordPress&gt;"), "{html}");
            assert_eq!(html.matches("<form ").count(), 1, "{html}");
            assert!(html.contains("name=\"csrf_token\" value=\"c5rf\""));
            assert!(html.contains("name=\"request\" value=\"req-1\""), "{html}");
            assert!(!html.contains("request_id"), "{html}");
            assert!(html.contains(&format!("name=\"decision\" value=\"accept\">{allow}<")));
            assert!(html.contains(&format!("name=\"decision\" value=\"deny\">{deny}<")));
            assert!(html.contains(&i18n::t(lang, "consent.scope.email", &[])));
            assert!(html.contains("custom:read"));
            assert!(html.contains("li.na@example.com"));
            assert!(!html.contains("<script") && !html.contains("style="));
        }
    }

    fn op_error(reason: &str, error: &str) -> OpErrorView {
        OpErrorView {
            status: 403,
            error: error.into(),
            reason: reason.into(),
            app_name: Some("Учёт <склада>".into()),
            description: "You cannot sign in to “Учёт”: no DingTalk link.".into(),
            back_href: Some("https://app.example/cb?error=access_denied&state=s".into()),
            back_form: None,
        }
    }

    #[test]
    fn op_error_page_explains_in_the_page_language_and_keeps_the_detail_in_english() {
        let html =
            render_op_error(chrome(Lang::Ru), op_error("no_subject", "access_denied")).unwrap();
        assert!(html.contains("<html lang=\"ru\">"), "{html}");
        assert!(html.contains(&format!(
            "<h1>{}</h1>",
            i18n::t(Lang::Ru, "op_error.no_subject.title", &[])
        )));
        assert!(html.contains("Приложение: Учёт &lt;склада&gt;"), "{html}");
        assert!(
            html.contains(
                "<span lang=\"en\">You cannot sign in to “Учёт”: no DingTalk link.</span>"
            )
        );
        assert!(html.contains("Код ошибки: access_denied"));
        assert!(html.contains(
            "href=\"https://app.example/cb?error=access_denied&amp;state=s\">Вернуться в приложение</a>"
        ));
        // Unknown reasons fall back to the error code's wording, then to a general one.
        let html =
            render_op_error(chrome(Lang::ZhCn), op_error("whatever", "invalid_scope")).unwrap();
        assert!(html.contains(&i18n::t(Lang::ZhCn, "op_error.invalid_scope.text", &[])));
        let html = render_op_error(chrome(Lang::En), op_error("x", "y")).unwrap();
        assert!(html.contains("Can&#39;t sign in to the app"), "{html}");
        // form_post: "Back to the app" is a form carrying the error.
        let mut v = op_error("not_assigned", "access_denied");
        v.back_href = None;
        v.back_form = Some(BackForm {
            action: "https://app.example/cb".into(),
            fields: vec![HiddenView {
                name: "error".into(),
                value: "access_denied".into(),
            }],
        });
        let html = render_op_error(chrome(Lang::En), v).unwrap();
        assert!(html.contains(
            "<form class=\"form form-back\" method=\"post\" action=\"https://app.example/cb\">"
        ));
        assert!(html.contains("name=\"error\" value=\"access_denied\""));
        assert!(html.contains(">Back to the app</button>"));
    }

    #[test]
    fn every_op_error_reason_has_a_title_and_text() {
        for lang in i18n::LANGS {
            for r in OP_ERROR_REASONS {
                for part in ["title", "text"] {
                    let key = format!("op_error.{r}.{part}");
                    assert!(i18n::has(lang, &key), "{}: {key}", lang.tag());
                }
            }
        }
    }

    #[test]
    fn logout_confirmation_and_signed_out_pages() {
        for lang in i18n::LANGS {
            let html = render_logout_confirm(
                chrome(lang),
                LogoutConfirmView {
                    form_action: "/oidc/session/end".into(),
                    csrf_token: "c5rf".into(),
                    fields: vec![HiddenView {
                        name: "client_id".into(),
                        value: "app-1".into(),
                    }],
                    user_identifier: Some("ada@example.com".into()),
                },
            )
            .unwrap();
            assert_eq!(html.matches("<form ").count(), 1, "{html}");
            assert!(
                html.contains("name=\"csrf_token\" value=\"c5rf\""),
                "{html}"
            );
            assert!(html.contains("name=\"client_id\" value=\"app-1\""));
            assert!(html.contains(&format!(
                "name=\"confirm\" value=\"yes\">{}<",
                i18n::t(lang, "logout.confirm", &[])
            )));
            assert!(html.contains(&i18n::t(lang, "logout.title", &[])));
            let html = render_signed_out(chrome(lang)).unwrap();
            assert!(
                html.contains(&i18n::t(lang, "signed_out.text", &[])),
                "{html}"
            );
        }
    }

    #[test]
    fn templates_use_only_known_ui_strings() {
        for (name, src) in TEMPLATES {
            for quote in ['\'', '"'] {
                let open = format!("t({quote}");
                let mut rest = src;
                while let Some(i) = rest.find(&open) {
                    let after = &rest[i + open.len()..];
                    let end = after.find(quote).unwrap();
                    let key = &after[..end];
                    for lang in i18n::LANGS {
                        assert!(i18n::has(lang, key), "{name}: unknown UI string `{key}`");
                    }
                    rest = &after[end..];
                }
            }
        }
    }
}
