//! The UI container every flow carries: the form action, method, nodes and messages. This is the
//! single source of truth for forms, rendered by the hosted UI and by any custom Kratos UI.

use crate::text::Text;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ui {
    pub action: String,
    pub method: String,
    pub nodes: Vec<Node>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "type")]
    pub kind: String,
    pub group: String,
    pub attributes: Attributes,
    pub messages: Vec<Text>,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Text>,
}

/// A node's attributes. Input nodes (most) carry `name`, `type`, `value`…; Kratos's image
/// (`node_type: "img"`: `id`, `src`, `width`, `height`) and text (`node_type: "text"`: `id`,
/// `text`) nodes carry only their own keys, which [`Attributes`]'s `Serialize` writes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Attributes {
    /// The input's name; for image and text nodes their `id` (`totp_qr`, `totp_secret_key`).
    #[serde(default, alias = "id")]
    pub name: String,
    #[serde(rename = "type", default)]
    pub input_type: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autocomplete: Option<Autocomplete>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub node_type: String,
    /// Image nodes: the image (a `data:` URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// Image nodes: width and height in CSS pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Text nodes: the text shown; anchor nodes: their `title`.
    #[serde(default, alias = "title", skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// Anchor nodes (`node_type: "a"`): where the link goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// Input nodes' wire shape (Kratos's `UiNodeInputAttributes`).
#[derive(Serialize)]
struct InputWire<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    input_type: &'a str,
    #[serde(skip_serializing_if = "Value::is_null")]
    value: &'a Value,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    autocomplete: Option<Autocomplete>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: &'a Option<String>,
    disabled: bool,
    node_type: &'a str,
}

/// `UiNodeImageAttributes`.
#[derive(Serialize)]
struct ImageWire<'a> {
    id: &'a str,
    src: &'a str,
    width: u32,
    height: u32,
    node_type: &'a str,
}

/// `UiNodeAnchorAttributes`.
#[derive(Serialize)]
struct AnchorWire<'a> {
    id: &'a str,
    href: &'a str,
    title: &'a Option<Text>,
    node_type: &'a str,
}

/// `UiNodeTextAttributes`.
#[derive(Serialize)]
struct TextWire<'a> {
    id: &'a str,
    text: &'a Option<Text>,
    node_type: &'a str,
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.node_type.as_str() {
            "img" => ImageWire {
                id: &self.name,
                src: self.src.as_deref().unwrap_or_default(),
                width: self.width.unwrap_or_default(),
                height: self.height.unwrap_or_default(),
                node_type: &self.node_type,
            }
            .serialize(s),
            "a" => AnchorWire {
                id: &self.name,
                href: self.href.as_deref().unwrap_or_default(),
                title: &self.text,
                node_type: &self.node_type,
            }
            .serialize(s),
            "text" => TextWire {
                id: &self.name,
                text: &self.text,
                node_type: &self.node_type,
            }
            .serialize(s),
            _ => InputWire {
                name: &self.name,
                input_type: &self.input_type,
                value: &self.value,
                required: self.required,
                autocomplete: self.autocomplete,
                pattern: &self.pattern,
                disabled: self.disabled,
                node_type: &self.node_type,
            }
            .serialize(s),
        }
    }
}

/// An input's `autocomplete` hint, limited to the values of Kratos's
/// `UiNodeInputAttributeAutocomplete` enum that Ory's released SDKs accept.
///
/// Ory's generated clients (`ory-kratos-client` 25.4.0 for Python, `@ory/client`, the Go SDK)
/// refuse a flow whose node carries any other value, so a free string here once made every
/// native sign-in through them fail (issue 13). Kratos's master added `username` to the enum on
/// 2026-06-16 (f4a876dc1) but does not set it anywhere yet (its password strategy leaves the
/// identifier without a hint) and no released SDK accepts it, so it is left out on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Autocomplete {
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "tel")]
    Tel,
    #[serde(rename = "url")]
    Url,
    #[serde(rename = "current-password")]
    CurrentPassword,
    #[serde(rename = "new-password")]
    NewPassword,
    #[serde(rename = "one-time-code")]
    OneTimeCode,
    #[serde(rename = "username webauthn")]
    UsernameWebauthn,
}

impl Autocomplete {
    /// Every value, in Kratos's order.
    pub const ALL: [Autocomplete; 7] = [
        Autocomplete::Email,
        Autocomplete::Tel,
        Autocomplete::Url,
        Autocomplete::CurrentPassword,
        Autocomplete::NewPassword,
        Autocomplete::OneTimeCode,
        Autocomplete::UsernameWebauthn,
    ];

    /// The wire (and HTML) value.
    pub fn as_str(self) -> &'static str {
        match self {
            Autocomplete::Email => "email",
            Autocomplete::Tel => "tel",
            Autocomplete::Url => "url",
            Autocomplete::CurrentPassword => "current-password",
            Autocomplete::NewPassword => "new-password",
            Autocomplete::OneTimeCode => "one-time-code",
            Autocomplete::UsernameWebauthn => "username webauthn",
        }
    }
}

impl Node {
    pub fn input(group: &str, name: &str, input_type: &str, value: Value) -> Node {
        Node {
            kind: "input".into(),
            group: group.into(),
            attributes: Attributes {
                name: name.into(),
                input_type: input_type.into(),
                value,
                required: false,
                autocomplete: None,
                pattern: None,
                disabled: false,
                node_type: "input".into(),
                src: None,
                width: None,
                height: None,
                text: None,
                href: None,
            },
            messages: vec![],
            meta: Meta::default(),
        }
    }

    /// An image node (Kratos's `img`, e.g. the TOTP QR code), `src` a `data:` URL.
    pub fn image(group: &str, id: &str, src: String, size: u32) -> Node {
        let mut n = Node::input(group, id, "", Value::Null);
        n.kind = "img".into();
        n.attributes.node_type = "img".into();
        n.attributes.src = Some(src);
        n.attributes.width = Some(size);
        n.attributes.height = Some(size);
        n
    }

    /// A text node (Kratos's `text`, e.g. the TOTP secret for typing in).
    pub fn text(group: &str, id: &str, text: Text) -> Node {
        let mut n = Node::input(group, id, "", Value::Null);
        n.kind = "text".into();
        n.attributes.node_type = "text".into();
        n.attributes.text = Some(text);
        n
    }

    /// An anchor node (Kratos's `a`, e.g. "Continue" after a verification).
    pub fn anchor(group: &str, id: &str, href: &str, title: Text) -> Node {
        let mut n = Node::input(group, id, "", Value::Null);
        n.kind = "a".into();
        n.attributes.node_type = "a".into();
        n.attributes.href = Some(href.to_string());
        n.attributes.text = Some(title.clone());
        n.meta.label = Some(title);
        n
    }

    pub fn pattern(mut self, pattern: &str) -> Self {
        self.attributes.pattern = Some(pattern.to_string());
        self
    }

    pub fn required(mut self) -> Self {
        self.attributes.required = true;
        self
    }

    pub fn autocomplete(mut self, value: Autocomplete) -> Self {
        self.attributes.autocomplete = Some(value);
        self
    }

    pub fn label(mut self, label: Text) -> Self {
        self.meta.label = Some(label);
        self
    }

    pub fn csrf(token: &str) -> Node {
        Node::input(
            "default",
            "csrf_token",
            "hidden",
            Value::String(token.into()),
        )
        .required()
    }
}

impl Ui {
    pub fn new(action: String) -> Ui {
        Ui {
            action,
            method: "POST".into(),
            nodes: vec![],
            messages: vec![],
        }
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.attributes.name == name)
    }

    /// Clears messages left by a previous submission so a resubmitted form shows only fresh ones.
    pub fn reset_messages(&mut self) {
        self.messages.clear();
        for n in &mut self.nodes {
            n.messages.clear();
        }
    }

    /// Attaches a message to the node with this name, or to the form when there is no such node.
    pub fn add_message(&mut self, node: Option<&str>, text: Text) {
        match node.and_then(|name| self.node_mut(name)) {
            Some(n) => n.messages.push(text),
            None => self.messages.push(text),
        }
    }

    /// Refills inputs with what the user submitted so a failed form keeps their typing (never
    /// passwords).
    pub fn set_value(&mut self, name: &str, value: Value) {
        if let Some(n) = self.node_mut(name)
            && n.attributes.input_type != "password"
        {
            n.attributes.value = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialised values are exactly the enum Ory's SDKs check, and `as_str` agrees with
    /// serde, so the hosted pages and the API never disagree.
    #[test]
    fn autocomplete_values_are_kratos_enum() {
        let wire: Vec<String> = Autocomplete::ALL
            .iter()
            .map(|a| {
                serde_json::to_value(a)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            wire,
            [
                "email",
                "tel",
                "url",
                "current-password",
                "new-password",
                "one-time-code",
                "username webauthn"
            ]
        );
        for a in Autocomplete::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!(serde_json::from_value::<Autocomplete>("username".into()).is_err());
    }
}
