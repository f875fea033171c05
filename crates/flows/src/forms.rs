//! Form nodes derived from the identity schema and helpers for reading submitted bodies.

use serde_json::Value;
use tessera_core::schema::{IdentitySchema, lookup};
use tessera_core::text;
use tessera_core::ui::{Autocomplete, Node, Ui};

/// One input per trait, in the schema's order (group `default` on registration, `profile` on
/// settings, as Kratos).
pub fn trait_nodes(ui: &mut Ui, schema: &IdentitySchema, group: &str, values: &Value) {
    for f in &schema.fields {
        let name = format!("traits.{}", f.path);
        let value = lookup(values, &f.path).cloned().unwrap_or(Value::Null);
        let mut node = Node::input(group, &name, f.input_type(), value);
        if f.required {
            node = node.required();
        }
        if f.read_only {
            // Shown, never sent: the site sets it (see `IdentitySchema::pin_read_only`).
            node.attributes.disabled = true;
        }
        // As Kratos's `NewInputFieldFromSchema`: the hint follows the trait's format, whether
        // or not it is an identifier.
        if let Some(hint) = match f.input_type() {
            "email" => Some(Autocomplete::Email),
            "tel" => Some(Autocomplete::Tel),
            "url" => Some(Autocomplete::Url),
            _ => None,
        } {
            node = node.autocomplete(hint);
        }
        let title = f.title.clone().unwrap_or_else(|| f.path.clone());
        node = node.label(text::label_generated(&title, &name));
        ui.nodes.push(node);
    }
}

pub fn password_node(group: &str, name: &str, autocomplete: Autocomplete) -> Node {
    Node::input(group, name, "password", Value::Null)
        .required()
        .autocomplete(autocomplete)
        .label(text::label_password())
}

pub fn submit_node(group: &str, value: &str, label: tessera_core::text::Text) -> Node {
    Node::input(group, "method", "submit", Value::String(value.into())).label(label)
}

/// The agreement checkbox (`terms_accepted`, group `default`) of registration forms when the
/// sign-in experience sets terms or privacy links.
pub fn agreement_node(terms_url: Option<&str>, privacy_url: Option<&str>) -> Node {
    Node::input("default", "terms_accepted", "checkbox", Value::Bool(false))
        .required()
        .label(text::label_agreement(terms_url, privacy_url))
}

pub fn str_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// Reads the method a submission chose (Kratos's `method` field).
pub fn method(body: &Value) -> &str {
    str_field(body, "method").unwrap_or_default()
}

/// A yes/no button or checkbox: JSON `true`, or the form value `"true"`.
pub fn flag(body: &Value, name: &str) -> bool {
    match body.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The method of a settings submission. Some of Kratos's settings buttons carry their own name
/// rather than `method` (the recovery codes' `lookup_secret_regenerate`, `…_reveal`,
/// `…_confirm`, `…_disable`, and `totp_unlink`), and Kratos takes the method from them, so a
/// plain HTML form with one of those buttons works without a `method` field.
pub fn settings_method(body: &Value) -> &str {
    match method(body) {
        "" if [
            "lookup_secret_regenerate",
            "lookup_secret_reveal",
            "lookup_secret_confirm",
            "lookup_secret_disable",
        ]
        .iter()
        .any(|b| flag(body, b)) =>
        {
            "lookup_secret"
        }
        "" if flag(body, "totp_unlink") => "totp",
        m => m,
    }
}

#[cfg(test)]
mod tests {
    use super::settings_method;
    use serde_json::json;

    /// The hosted settings page posts the recovery-code and unlink buttons without `method`, as
    /// Kratos's own UI does; a stated method is never overridden, and a button set to `false`
    /// chooses nothing.
    #[test]
    fn a_settings_button_names_its_method_as_in_kratos() {
        for b in [
            "lookup_secret_regenerate",
            "lookup_secret_reveal",
            "lookup_secret_confirm",
            "lookup_secret_disable",
        ] {
            assert_eq!(settings_method(&json!({b: "true"})), "lookup_secret", "{b}");
            assert_eq!(settings_method(&json!({b: true})), "lookup_secret", "{b}");
        }
        assert_eq!(settings_method(&json!({"totp_unlink": "true"})), "totp");
        assert_eq!(
            settings_method(&json!({"method": "profile", "totp_unlink": "true"})),
            "profile"
        );
        assert_eq!(
            settings_method(&json!({"lookup_secret_confirm": "false"})),
            ""
        );
        assert_eq!(settings_method(&json!({})), "");
    }
}
