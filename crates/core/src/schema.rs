//! Identity schemas: JSON Schema documents with Kratos's `ory.sh/kratos` extension, which says
//! which traits are password identifiers and which are verification or recovery addresses.

use crate::text::{self, Text};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// One trait the schema declares, flattened so forms and identifier extraction need not walk the
/// schema again.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitField {
    /// Dotted path below `traits`, e.g. `email` or `name.first`.
    pub path: String,
    pub title: Option<String>,
    pub json_type: String,
    pub format: Option<String>,
    pub required: bool,
    pub password_identifier: bool,
    /// Set by the site (admin API, import, a provider's mapper), never by the user in a
    /// self-service flow: `"tessera": {"read_only": true}` on the property. Only such traits
    /// may be an app's per-app `sub`, since a user-editable one lets users become each other.
    pub read_only: bool,
    pub verification_via: Option<String>,
    pub recovery_via: Option<String>,
    /// `credentials.code.identifier: true`: the channel (`via`, `email` unless said) a one-time
    /// sign-in code for this trait goes by.
    pub code_via: Option<String>,
    pub enumeration: Vec<Value>,
}

impl TraitField {
    /// The HTML input type a form should use for this trait.
    pub fn input_type(&self) -> &'static str {
        match (self.json_type.as_str(), self.format.as_deref()) {
            (_, Some("email")) => "email",
            (_, Some("tel")) => "tel",
            (_, Some("date")) => "date",
            (_, Some("uri")) => "url",
            ("boolean", _) => "checkbox",
            ("integer" | "number", _) => "number",
            _ => "text",
        }
    }
}

/// A compiled identity schema.
pub struct IdentitySchema {
    pub id: String,
    pub raw: Value,
    pub fields: Vec<TraitField>,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for IdentitySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySchema")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What an identity's traits mean for credentials and addresses, per the schema extension.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Extracted {
    pub password_identifiers: Vec<String>,
    pub verifiable: Vec<(String, String)>,
    pub recovery: Vec<(String, String)>,
    /// `(via, address)` of the one-time-code identifiers (`credentials.code`).
    pub code_identifiers: Vec<(String, String)>,
}

/// One validation problem, addressed to a form field when it has one (`traits.email`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: Text,
}

impl IdentitySchema {
    pub fn compile(id: &str, raw: Value) -> Result<Self, String> {
        if !raw.is_object() {
            return Err("an identity schema must be a JSON object".into());
        }
        let traits = raw
            .pointer("/properties/traits")
            .ok_or("the schema has no `properties.traits`: Kratos identity schemas describe the identity's traits under properties.traits")?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&raw)
            .map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        let mut fields = Vec::new();
        collect_fields(traits, "", true, &mut fields);
        Ok(IdentitySchema {
            id: id.to_string(),
            raw,
            fields,
            validator,
        })
    }

    /// Paths of the traits marked read-only for self-service (see [`TraitField::read_only`]).
    pub fn read_only_paths(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| f.read_only)
            .map(|f| f.path.as_str())
    }

    /// Makes the read-only traits of user-submitted `submitted` equal to the site's values in
    /// `site` (the current identity, the mapped upstream data, or nothing at sign-up), and
    /// returns the paths where the user sent something else, so the flow can refuse it.
    pub fn pin_read_only(&self, submitted: &mut Value, site: &Value) -> Vec<String> {
        let mut refused = Vec::new();
        for path in self.read_only_paths() {
            let theirs = lookup(submitted, path).filter(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            });
            let ours = lookup(site, path).filter(|v| !v.is_null());
            if theirs.is_some() && theirs != ours {
                refused.push(path.to_string());
            }
            match ours.cloned() {
                Some(v) => set_path(submitted, path, v),
                None => remove_path(submitted, path),
            }
        }
        refused
    }

    /// Validates traits as Kratos does, returning every problem with a Kratos message id.
    pub fn validate_traits(&self, traits: &Value) -> Vec<FieldError> {
        let doc = serde_json::json!({ "traits": traits });
        self.validator
            .iter_errors(&doc)
            .map(|e| {
                let pointer = e.instance_path().to_string();
                let base = pointer_to_field(&pointer);
                match e.kind() {
                    ValidationErrorKind::Required { property } => {
                        let prop = property.as_str().unwrap_or_default().to_string();
                        let field = match &base {
                            Some(b) => format!("{b}.{prop}"),
                            None => prop.clone(),
                        };
                        FieldError {
                            field: Some(field),
                            message: text::missing_property(&prop),
                        }
                    }
                    ValidationErrorKind::MinLength { limit } => {
                        let actual = e
                            .instance()
                            .as_str()
                            .map(|s| s.chars().count())
                            .unwrap_or(0);
                        FieldError {
                            field: base,
                            message: text::min_length(*limit, actual as u64),
                        }
                    }
                    ValidationErrorKind::Format { format } => FieldError {
                        field: base,
                        message: text::invalid_format(
                            e.instance().as_str().unwrap_or_default(),
                            format,
                        ),
                    },
                    _ => FieldError {
                        field: base,
                        message: text::validation_generic(&e.to_string()),
                    },
                }
            })
            .collect()
    }

    /// Reads identifiers and addresses out of traits according to the `ory.sh/kratos` extension.
    pub fn extract(&self, traits: &Value) -> Extracted {
        let mut out = Extracted::default();
        for f in &self.fields {
            let Some(value) = lookup(traits, &f.path) else {
                continue;
            };
            let values: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            for v in values.into_iter().filter(|v| !v.trim().is_empty()) {
                if f.password_identifier {
                    out.password_identifiers
                        .push(crate::identity::normalize_identifier(v));
                }
                if let Some(via) = &f.verification_via {
                    out.verifiable
                        .push((via.clone(), crate::identity::normalize_address(via, v)));
                }
                if let Some(via) = &f.recovery_via {
                    out.recovery
                        .push((via.clone(), crate::identity::normalize_address(via, v)));
                }
                if let Some(via) = &f.code_via {
                    out.code_identifiers
                        .push((via.clone(), crate::identity::normalize_address(via, v)));
                }
            }
        }
        out.password_identifiers.sort();
        out.password_identifiers.dedup();
        out.code_identifiers.sort();
        out.code_identifiers.dedup();
        out
    }
}

/// `/traits/name/first` → `traits.name.first`; `/traits` → `traits`.
fn pointer_to_field(pointer: &str) -> Option<String> {
    let parts: Vec<&str> = pointer.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("."))
    }
}

/// Looks up a dotted path in a JSON value.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// Deepest nesting accepted in a JSON value built from untrusted input (request bodies, JSON
/// Patch results). serde_json's parser stops at 128 on its own and drops values recursively;
/// identity documents nest a few levels, so 64 leaves room for any real schema and none for a
/// value whose drop could exhaust a thread's stack.
pub const MAX_DEPTH: usize = 64;

/// Refuses a value nested deeper than [`MAX_DEPTH`]. `what` names it in the message.
pub fn check_depth(v: &Value, what: &str) -> Result<(), crate::Error> {
    if depth(v) > MAX_DEPTH {
        return Err(crate::Error::bad_request(format!(
            "{what} is nested more than {MAX_DEPTH} levels deep: flatten it."
        )));
    }
    Ok(())
}

/// How deeply a value nests (a scalar is 0, `{"a": 1}` is 1). Iterative, so it is safe on any
/// value, however deep.
pub fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    max
}

/// Removes a dotted path from a JSON object, if it is there.
pub fn remove_path(value: &mut Value, path: &str) {
    let (parent, key) = match path.rsplit_once('.') {
        Some((p, k)) => (p.split('.').try_fold(&mut *value, |v, k| v.get_mut(k)), k),
        None => (Some(value), path),
    };
    if let Some(Value::Object(m)) = parent {
        m.remove(key);
    }
}

/// Sets a dotted path in a JSON object, creating intermediate objects.
pub fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut cur = value;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, key) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert((*key).to_string(), new);
            return;
        }
        cur = map
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

fn collect_fields(schema: &Value, prefix: &str, parent_required: bool, out: &mut Vec<TraitField>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, sub) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let is_required = parent_required && required.contains(&name.as_str());
        let json_type = match sub.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("string")
                .to_string(),
            _ => "string".into(),
        };
        if json_type == "object" {
            collect_fields(sub, &path, is_required, out);
            continue;
        }
        let ext = sub.get("ory.sh/kratos");
        let ext_str = |p: &str| {
            ext.and_then(|e| e.pointer(p))
                .and_then(Value::as_str)
                .map(String::from)
        };
        out.push(TraitField {
            title: sub.get("title").and_then(Value::as_str).map(String::from),
            format: sub.get("format").and_then(Value::as_str).map(String::from),
            required: is_required,
            password_identifier: ext
                .and_then(|e| e.pointer("/credentials/password/identifier"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            read_only: sub
                .pointer("/tessera/read_only")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            verification_via: ext_str("/verification/via"),
            recovery_via: ext_str("/recovery/via"),
            code_via: ext
                .and_then(|e| e.pointer("/credentials/code/identifier"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .then(|| ext_str("/credentials/code/via").unwrap_or_else(|| "email".into())),
            enumeration: sub
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            json_type,
            path,
        });
    }
}

/// The schema `tessera serve --dev` uses when none is configured: an email that is the password
/// identifier and verification/recovery address, plus an optional first and last name.
pub fn default_schema() -> Value {
    serde_json::json!({
        "$id": "https://tessera.invalid/schemas/default.schema.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Person",
        "type": "object",
        "properties": {
            "traits": {
                "type": "object",
                "properties": {
                    "email": {
                        "type": "string",
                        "format": "email",
                        "title": "E-Mail",
                        "minLength": 3,
                        "maxLength": 320,
                        "ory.sh/kratos": {
                            "credentials": { "password": { "identifier": true } },
                            "verification": { "via": "email" },
                            "recovery": { "via": "email" }
                        }
                    },
                    "name": {
                        "type": "object",
                        "properties": {
                            "first": { "type": "string", "title": "First name", "maxLength": 256 },
                            "last": { "type": "string", "title": "Last name", "maxLength": 256 }
                        }
                    }
                },
                "required": ["email"],
                "additionalProperties": false
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> IdentitySchema {
        IdentitySchema::compile("default", default_schema()).unwrap()
    }

    #[test]
    fn fields_are_flattened_with_extension() {
        let s = schema();
        let email = s.fields.iter().find(|f| f.path == "email").unwrap();
        assert!(email.password_identifier && email.required);
        assert_eq!(email.verification_via.as_deref(), Some("email"));
        assert_eq!(email.input_type(), "email");
        let first = s.fields.iter().find(|f| f.path == "name.first").unwrap();
        assert!(!first.required);
        assert_eq!(first.title.as_deref(), Some("First name"));
    }

    #[test]
    fn missing_required_trait_is_4000002_on_its_field() {
        let errs = schema().validate_traits(&json!({}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field.as_deref(), Some("traits.email"));
        assert_eq!(errs[0].message.id, text::MessageId::MISSING_PROPERTY);
        assert_eq!(errs[0].message.text, "Property email is missing.");
    }

    #[test]
    fn bad_format_is_4000004() {
        let errs = schema().validate_traits(&json!({"email": "not-an-email"}));
        assert_eq!(errs[0].message.id, text::MessageId::INVALID_FORMAT);
        assert_eq!(errs[0].field.as_deref(), Some("traits.email"));
    }

    #[test]
    fn extra_trait_is_refused() {
        let errs = schema().validate_traits(&json!({"email": "a@b.co", "admin": true}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message.id, text::MessageId::VALIDATION_GENERIC);
    }

    #[test]
    fn extracts_case_folded_identifiers() {
        let ex = schema().extract(&json!({"email": " Alice@Example.COM "}));
        assert_eq!(ex.password_identifiers, vec!["alice@example.com"]);
        assert_eq!(
            ex.verifiable,
            vec![("email".to_string(), "alice@example.com".to_string())]
        );
    }

    #[test]
    fn schema_without_traits_is_refused() {
        let err = IdentitySchema::compile("x", json!({"type": "object"})).unwrap_err();
        assert!(err.contains("properties.traits"), "{err}");
    }

    #[test]
    fn set_and_lookup_paths() {
        let mut v = json!({});
        set_path(&mut v, "name.first", json!("Ann"));
        remove_path(&mut v, "name.missing.deeper");
        remove_path(&mut v, "nothing");
        assert_eq!(lookup(&v, "name.first"), Some(&json!("Ann")));
    }

    #[test]
    fn read_only_traits_keep_the_sites_value() {
        let raw = json!({
            "type": "object",
            "properties": {"traits": {"type": "object", "properties": {
                "email": {"type": "string"},
                "employee_id": {"type": "string", "tessera": {"read_only": true}},
            }}}
        });
        let s = IdentitySchema::compile("x", raw).unwrap();
        assert_eq!(s.read_only_paths().collect::<Vec<_>>(), ["employee_id"]);
        let site = json!({"email": "a@b.c", "employee_id": "E4242"});
        // Unchanged, or left out (a disabled field): accepted, the site's value kept.
        let mut same = json!({"email": "x@y.z", "employee_id": "E4242"});
        assert!(s.pin_read_only(&mut same, &site).is_empty());
        let mut left_out = json!({"email": "x@y.z"});
        assert!(s.pin_read_only(&mut left_out, &site).is_empty());
        assert_eq!(left_out["employee_id"], "E4242");
        // Changed: refused, and the site's value is what stays.
        let mut changed = json!({"email": "x@y.z", "employee_id": "E0001"});
        assert_eq!(s.pin_read_only(&mut changed, &site), ["employee_id"]);
        assert_eq!(changed["employee_id"], "E4242");
        // At sign-up the site has no value: a user-chosen one is refused and dropped.
        let mut signup = json!({"email": "x@y.z", "employee_id": "E0001"});
        assert_eq!(s.pin_read_only(&mut signup, &Value::Null), ["employee_id"]);
        assert!(signup.get("employee_id").is_none());
    }

    #[test]
    fn code_identifiers_come_with_their_channel_and_phones_in_e164() {
        let schema = IdentitySchema::compile(
            "code",
            serde_json::json!({"properties": {"traits": {"type": "object", "properties": {
                "email": {"type": "string", "ory.sh/kratos": {
                    "credentials": {"code": {"identifier": true, "via": "email"}},
                    "verification": {"via": "email"}}},
                "phone": {"type": "string", "ory.sh/kratos": {
                    "credentials": {"code": {"identifier": true, "via": "sms"}},
                    "verification": {"via": "sms"}}},
                "nick": {"type": "string", "ory.sh/kratos": {
                    "credentials": {"code": {"identifier": false}}}}
            }}}}),
        )
        .expect("compiles");
        let ex = schema.extract(&serde_json::json!({
            "email": "Li.Wei@Example.CN", "phone": "+7 (912) 345-67-89", "nick": "x"
        }));
        assert_eq!(
            ex.code_identifiers,
            vec![
                ("email".to_string(), "li.wei@example.cn".to_string()),
                ("sms".to_string(), "+79123456789".to_string())
            ]
        );
        assert!(
            ex.verifiable
                .contains(&("sms".to_string(), "+79123456789".to_string()))
        );
    }
}
