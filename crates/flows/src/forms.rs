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
