//! A flow's UI nodes as the forms a page shows: one form per method group ([`FormKind`]),
//! with the CSRF token, labelled fields, their messages and the buttons (social buttons with
//! their provider type's icon and local name).

use super::chrome::{MessageView, message_view};
use super::env::esc;
use crate::ui::i18n::{self, Lang};
use serde::Serialize;
use serde_json::Value;
use tessera_config::Experience;
use tessera_core::flow::{Flow, FlowKind};
use tessera_core::text::Text;
use tessera_core::ui::Node;
use tessera_social::ProviderType;

/// What a form is for; templates read it as a lowercase string (`f.kind == 'social'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormKind {
    /// Social sign-in buttons.
    Social,
    /// Fill-the-gaps after a social sign-in (the `oidc` group has fields).
    Gaps,
    /// Settings' profile (traits) form.
    Profile,
    Password,
    /// One-time-code sign-in or sign-up ("email me a code", "text me a code").
    Code,
    /// Settings' link/unlink list.
    Linked,
    /// Any other method group.
    Other,
}

impl FormKind {
    /// The kind of the form of a flow's method group.
    fn of(group: &str, flow: FlowKind, oidc_has_fields: bool) -> FormKind {
        match (group, flow) {
            ("oidc", FlowKind::Settings) => FormKind::Linked,
            ("oidc", _) if oidc_has_fields => FormKind::Gaps,
            ("oidc", _) => FormKind::Social,
            ("profile", _) => FormKind::Profile,
            ("password", _) => FormKind::Password,
            ("code", FlowKind::Login | FlowKind::Registration) => FormKind::Code,
            _ => FormKind::Other,
        }
    }

    /// Whether the sign-in experience shows forms of this kind.
    fn shown(self, x: &Experience) -> bool {
        match self {
            FormKind::Password => x.show_password,
            FormKind::Social | FormKind::Linked => x.show_oidc,
            FormKind::Gaps | FormKind::Profile | FormKind::Code | FormKind::Other => true,
        }
    }

    /// Page order: social buttons first (the quickest way in), then the password form.
    fn rank(self) -> u8 {
        match self {
            FormKind::Social | FormKind::Gaps => 0,
            FormKind::Profile => 1,
            FormKind::Password | FormKind::Code => 2,
            FormKind::Linked => 3,
            FormKind::Other => 4,
        }
    }
}

/// One `<form>`: the hidden inputs every form carries (CSRF), its fields and its buttons.
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    pub action: String,
    pub method: String,
    pub kind: FormKind,
    /// The flow's method group (`totp`, `lookup_secret`, …): settings heads each form with it.
    pub group: String,
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
    /// The HTML `autocomplete` hint: the node's (Kratos's enum), or `username` on the sign-in
    /// identifier, which the wire leaves without one (Ory's SDKs refuse `username`) but which
    /// password managers need on a page.
    pub autocomplete: Option<&'static str>,
    pub pattern: Option<String>,
    pub disabled: bool,
    /// `<select>` choices when the identity schema gives an `enum`.
    pub options: Vec<OptionView>,
    /// Image nodes (`input_type` `img`, the TOTP QR code): the `data:` URL and size.
    pub src: String,
    pub size: u32,
    /// Text nodes (`input_type` `text-node`, the TOTP secret): the text in the page language.
    pub text: String,
    /// The recovery codes of a `lookup_secret_codes` text node, one per entry (the sheet a
    /// person prints); empty for every other node.
    pub codes: Vec<String>,
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
    /// The channels the schema's code identifiers go by (`email`, `sms`, or both), which name
    /// the code button ("Email me a code", "Text me a code") and, when no password identifier
    /// does, the sign-in field ("Email", "Phone number", "Email or phone number").
    pub code_via: Option<&'a str>,
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
        (_, "identifier") if cx.code_via.is_some() => {
            let key = match cx.code_via {
                Some("email") => "identifier.email",
                Some("sms") => "identifier.phone",
                _ => "identifier.email_or_phone",
            };
            i18n::t(cx.lang, key, &[])
        }
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
    let input_type = match a.node_type.as_str() {
        "img" => "img".to_string(),
        "text" => "text-node".to_string(),
        _ => a.input_type.clone(),
    };
    FieldView {
        id: field_id(&n.group, &a.name),
        name: a.name.clone(),
        input_type,
        src: a.src.clone().unwrap_or_default(),
        size: a.width.unwrap_or_default(),
        text: a
            .text
            .as_ref()
            .map(|t| i18n::message(cx.lang, t, false).text)
            .unwrap_or_default(),
        codes: a
            .text
            .as_ref()
            .and_then(|t| t.context.get("secrets"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|m| m.pointer("/context/secret").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        checked: a.value == Value::Bool(true) || value == "true",
        value,
        label,
        label_html,
        required: a.required,
        autocomplete: match a.autocomplete {
            Some(hint) => Some(hint.as_str()),
            None if a.name == "identifier" && a.input_type == "text" => Some("username"),
            None => None,
        },
        pattern: a.pattern.clone(),
        disabled: a.disabled,
        options,
        messages: n
            .messages
            .iter()
            .map(|m| {
                message_view(
                    cx.lang,
                    &localized_message(cx.lang, m, cx.provider_type),
                    true,
                )
            })
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

/// A message naming a provider by its label (the engine's social errors carry `provider` and
/// `provider_id`): the provider type's name in the page language, as on the buttons.
pub fn localized_message(
    lang: Lang,
    m: &Text,
    provider_type: &dyn Fn(&str) -> Option<&'static ProviderType>,
) -> Text {
    let kind = m
        .context
        .get("provider_id")
        .and_then(Value::as_str)
        .and_then(provider_type);
    match kind {
        Some(_) => localized_label(lang, m, kind).0,
        None => m.clone(),
    }
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
    let code_start = n.group == "code"
        && a.name == "method"
        && n.meta.label.as_ref().is_some_and(|l| {
            matches!(
                l.id,
                tessera_core::text::MessageId::LOGIN_CODE
                    | tessera_core::text::MessageId::REGISTRATION_CODE
            )
        });
    let code_label = match (code_start, cx.code_via) {
        (true, Some("email")) => Some(i18n::t(cx.lang, "code.email_me", &[])),
        (true, Some("sms")) => Some(i18n::t(cx.lang, "code.text_me", &[])),
        (true, Some(_)) => Some(i18n::t(cx.lang, "code.email_or_text_me", &[])),
        _ => None,
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
        label: code_label.unwrap_or_else(|| {
            label
                .as_ref()
                .map(|l| i18n::message(cx.lang, l, false).text)
                .unwrap_or_else(|| value.clone())
        }),
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
        let kind = FormKind::of(g, flow.kind, oidc_has_fields);
        if !kind.shown(x) {
            continue;
        }
        let mut nodes: Vec<&Node> = Vec::new();
        if kind == FormKind::Password || (kind == FormKind::Code && flow.kind == FlowKind::Login) {
            nodes.extend(identifier.iter().copied());
        }
        nodes.extend(flow.ui.nodes.iter().filter(|n| n.group == g));
        if flow.kind == FlowKind::Registration && kind != FormKind::Linked {
            nodes.extend(agreement.iter().copied());
        }
        let mut fields: Vec<FieldView> = nodes
            .iter()
            .filter(|n| !is_button(n) && n.attributes.input_type != "hidden")
            .map(|n| field_view(n, cx))
            .collect();
        if kind == FormKind::Code {
            // The shared identifier also sits in the password form: its id must stay unique.
            for f in fields.iter_mut() {
                if let Some(rest) = f.id.strip_prefix("f-default-") {
                    f.id = format!("f-code-{rest}");
                }
            }
        }
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
            group: g.to_string(),
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
        let social = forms.iter().position(|f| f.kind == FormKind::Social);
        let password = forms.iter().position(|f| f.kind == FormKind::Password);
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
    forms.sort_by_key(|f| f.kind.rank());
    forms
}
